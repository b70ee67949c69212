"""Built-in statistics on small synthetic photos with known noise, blur, JPEG quality and exposure."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from qusr_cli.errors import InputError, QusrError
from qusr_cli.prior.builtin_critic import (
    BuiltinCritic,
    blockiness,
    central_crop,
    flat_quantile_bias,
    haar_diagonal,
    luma,
    mad_sigma,
    measure_quality,
    noise_gradient_energy,
)
from qusr_cli.prior.critic import Critic, make_critic


def scene(height: int = 128, width: int = 128, seed: int = 0) -> torch.Tensor:
    """A (1, 3, H, W) photo stand-in: a smooth gradient, a textured half, a bright disk and a dark box."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    plane = 0.25 + 0.4 * x + 0.15 * y
    plane += 0.08 * np.sin(2 * np.pi * x * width / 7.0) * np.sin(2 * np.pi * y * height / 9.0) * (x > 0.5)
    plane[(x - 0.3) ** 2 + (y - 0.35) ** 2 < 0.15**2] = 0.8
    plane[(y > 0.65) & (y < 0.9) & (x > 0.1) & (x < 0.45)] = 0.1
    tint = np.random.default_rng(seed).uniform(0.8, 1.0, size=3)
    rgb = np.clip(plane[None] * tint[:, None, None], 0, 1)
    return quantize(torch.tensor(rgb, dtype=torch.float32)[None])


def quantize(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0, 1) * 255).round() / 255


def with_noise(image: torch.Tensor, sigma: float, grey: bool = False, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (1, 1, *image.shape[-2:]) if grey else image.shape
    return quantize(image + torch.randn(shape, generator=generator) * sigma / 255)


def to_pillow(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def from_pillow(picture: Image.Image) -> torch.Tensor:
    return torch.tensor(np.asarray(picture.convert("RGB")), dtype=torch.float32).permute(2, 0, 1)[None] / 255


def pillow_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    return from_pillow(to_pillow(image).filter(ImageFilter.GaussianBlur(sigma))) if sigma else image


def pillow_jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    to_pillow(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return from_pillow(Image.open(buffer))


def test_haar_diagonal_cancels_ramps_and_keeps_white_noise_std():
    ramp = torch.arange(64.0)[None, :] * 0.3 + torch.arange(64.0)[:, None] * 0.7
    assert haar_diagonal(ramp).abs().max() < 1e-4
    noise = torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
    assert haar_diagonal(noise).std().item() == pytest.approx(1.0, rel=0.02)
    assert mad_sigma(haar_diagonal(noise).flatten()).item() == pytest.approx(1.0, rel=0.03)


def test_flat_quantile_bias_matches_simulated_block_estimates():
    blocks = torch.randn(20000, 64, generator=torch.Generator().manual_seed(1))
    simulated = torch.quantile(mad_sigma(blocks), 0.25).item()
    assert flat_quantile_bias(0.25, 64) == pytest.approx(simulated, rel=0.02)


def test_noise_gradient_energy_matches_simulated_white_noise():
    noise = torch.randn(400, 400, generator=torch.Generator().manual_seed(2)) * 0.1
    dx = noise[:-1, 1:] - noise[:-1, :-1]
    dy = noise[1:, :-1] - noise[:-1, :-1]
    assert (dx**2 + dy**2).mean().item() == pytest.approx(noise_gradient_energy(0.1, None), rel=0.03)


@pytest.mark.parametrize("grey", [False, True], ids=["colour-noise", "grey-noise"])
def test_noise_sigma_is_within_a_quarter_and_monotone(grey):
    clean = scene()
    estimates = [measure_quality(with_noise(clean, sigma, grey=grey))[0].noise.value for sigma in (5, 15, 30)]
    for sigma, estimate in zip((5, 15, 30), estimates):
        assert estimate == pytest.approx(sigma, rel=0.25)
    assert estimates == sorted(estimates)


def test_texture_and_edges_do_not_read_as_noise():
    assert measure_quality(scene())[0].noise.level == "none"


def test_noise_levels_in_words():
    assert measure_quality(with_noise(scene(), 5))[0].noise.level == "low"
    assert measure_quality(with_noise(scene(), 30))[0].noise.level == "heavy"


def test_blur_estimate_rises_with_gaussian_blur():
    clean = scene()
    reports = [measure_quality(pillow_blur(clean, sigma))[0] for sigma in (0, 1, 2, 3)]
    estimates = [r.blur.value for r in reports]
    assert all(a < b for a, b in zip(estimates, estimates[1:])), estimates
    assert reports[0].blur.level == "sharp"
    assert reports[-1].blur.level == "very blurry"


def test_noise_does_not_pass_for_sharpness():
    blurred = pillow_blur(scene(), 3)
    assert measure_quality(with_noise(blurred, 15))[0].blur.level in ("blurry", "very blurry")


def test_jpeg_blockiness_rises_as_quality_falls():
    clean = scene()
    measured = [measure_quality(pillow_jpeg(clean, quality)) for quality in (95, 50, 15)]
    blocks = [stats["blockiness"] for _, stats in measured]
    levels = [report.jpeg.level for report, _ in measured]
    assert blocks == sorted(blocks) and blocks[0] < blocks[-1]
    assert levels[0] == "none"
    assert levels[1] in ("mild", "strong")
    assert levels[2] in ("strong", "severe")
    assert measure_quality(clean)[0].jpeg.level == "none"


def test_blockiness_finds_the_grid_after_a_crop():
    compressed = luma(pillow_jpeg(scene(), 15))
    assert blockiness(compressed[3:, 5:]) == pytest.approx(blockiness(compressed), rel=0.15)
    assert blockiness(compressed[3:, 5:]) > blockiness(luma(scene())[3:, 5:])


@pytest.mark.parametrize(
    ("offset", "scale", "level"),
    [(0.0, 0.15, "underexposed"), (0.05, 0.3, "dark"), (0.0, 1.0, "well exposed"), (0.55, 0.4, "bright")],
)
def test_exposure_levels(offset, scale, level):
    image = quantize(offset + scale * scene())
    report, _ = measure_quality(image)
    assert report.exposure.level == level
    assert report.exposure.value == pytest.approx(luma(image).mean().item(), abs=1e-6)


def test_clipped_fractions_and_contrast():
    image = scene()
    image[..., :, :64] = 1.0
    report, stats = measure_quality(image)
    assert stats["clipped_highlights"] == pytest.approx(0.5, abs=0.03)
    assert stats["clipped_shadows"] < 0.01
    assert report.contrast.value == pytest.approx(luma(image).std(correction=0).item(), rel=1e-4)
    assert measure_quality(torch.full((1, 3, 64, 64), 0.5))[0].contrast.level == "flat"


def test_critique_names_heavy_noise_and_a_clean_photo_reads_clean():
    critic = BuiltinCritic()
    noisy = critic.assess(with_noise(scene(), 30))
    assert "heavy noise" in noisy.critique
    assert noisy.source == "builtin"
    assert critic.assess(scene()).critique == "a clean, sharp, well exposed photo"


def test_small_images_work_and_tiny_ones_are_refused():
    small = with_noise(scene(32, 32), 15)
    assert measure_quality(small)[0].noise.value == pytest.approx(15, rel=0.35)
    with pytest.raises(InputError):
        measure_quality(torch.rand(1, 3, 12, 40))


def test_central_crop_keeps_the_grid_alignment():
    image = torch.arange(1300 * 1100, dtype=torch.float32).reshape(1, 1, 1300, 1100)
    crop = central_crop(image, 1024)
    assert crop.shape[-2:] == (1024, 1024)
    top, left = divmod(int(crop[0, 0, 0, 0].item()), 1100)
    assert top % 16 == 0 and left % 16 == 0
    assert central_crop(image[..., :200, :300]).shape[-2:] == (200, 300)


def test_factory_builds_the_builtin_critic_and_knows_none():
    critic = make_critic("builtin")
    assert isinstance(critic, Critic) and critic.name == "builtin"
    assert make_critic("none") is None
    with pytest.raises(QusrError, match="builtin"):
        make_critic("oracle")

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from qusr_cli.degradations import kernels
from qusr_cli.degradations.pipeline import (
    KERNEL_TYPES,
    LIGHT,
    DegradationConfig,
    convolve,
    degrade,
    gaussian_noise,
    jpeg,
    lr_blur_sigma,
    severity,
)


def texture(size: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth random texture with edges: detail at several scales, values inside (0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(3, size // 8, size // 8, generator=generator)
    image = torch.nn.functional.interpolate(coarse[None], size=(size, size), mode="bicubic", align_corners=False)[0]
    fine = torch.rand(3, size, size, generator=generator)
    return (0.7 * image + 0.3 * fine).clamp(0.05, 0.95)


def mean_gradient(image: torch.Tensor) -> float:
    vertical = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return float(vertical + (image[..., 1:] - image[..., :-1]).abs().mean())


@pytest.fixture(scope="module")
def draws():
    config = DegradationConfig()
    hr = texture(64)
    return config, [degrade(hr, config, seed) for seed in range(160)]


def test_output_is_lr_sized_8bit_and_deterministic(draws):
    config, samples = draws
    hr = texture(64)
    for lr, _ in samples[:20]:
        assert lr.shape == (3, 16, 16)
        assert lr.min() >= 0 and lr.max() <= 1
        assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4)
    again, params = degrade(hr, config, 7)
    assert torch.equal(again, samples[7][0]) and params == samples[7][1]
    assert not torch.equal(samples[7][0], samples[8][0])


def test_drawn_parameters_respect_the_config_ranges(draws):
    config, samples = draws
    params = [p for _, p in samples]
    for p in params:
        assert p["kernel1_size"] in config.kernel_sizes
        assert config.resize_range[0] <= p["resize1_scale"] <= config.resize_range[1]
        low, high = config.poisson_scale_range if p["noise1_poisson"] else config.noise_range
        assert low <= p["noise1_level"] <= high
        assert config.jpeg_range[0] <= p["jpeg1_quality"] <= config.jpeg_range[1]
        assert config.jpeg_range2[0] <= p["jpeg_quality"] <= config.jpeg_range2[1]
        if p["second_order"]:
            assert config.resize_range2[0] <= p["resize2_scale"] <= config.resize_range2[1]
            low, high = config.poisson_scale_range2 if p["noise2_poisson"] else config.noise_range2
            assert low <= p["noise2_level"] <= high
        else:
            assert p["noise2_sigma"] == 0 and p["blur2_sigma"] == 0 and p["resize2_scale"] == 1
        if p["final_sinc_cutoff"]:
            assert config.final_sinc_cutoff[0] <= p["final_sinc_cutoff"] <= config.final_sinc_cutoff[1]
        assert 0 <= p["severity"] <= 1
    # Frequencies of the random branches: 160 draws, bounds at about four standard deviations.
    second = np.mean([p["second_order"] for p in params])
    gray = np.mean([p["noise1_gray"] for p in params])
    poisson = np.mean([p["noise1_poisson"] for p in params])
    assert abs(second - config.second_order_prob) < 0.17
    assert abs(gray - config.gray_noise_prob) < 0.17
    assert abs(poisson - (1 - config.gaussian_noise_prob)) < 0.17
    assert len({p["kernel1_type"] for p in params}) >= 4
    assert {p["resize1_scale"] > 1 for p in params} == {True, False}


def test_gaussian_kernel_sigma_range_is_respected():
    config = replace(DegradationConfig(), kernel_probs=(1, 0, 0, 0, 0, 0), sinc_prob=0.0,
                     kernel_sizes=(21,), blur_sigma=(0.5, 2.5))
    sigmas = [degrade(texture(32), config, seed)[1]["blur1_sigma"] for seed in range(40)]
    assert min(sigmas) >= 0.5 - 0.01 and max(sigmas) <= 2.5 + 0.01
    assert max(sigmas) - min(sigmas) > 1.0


def test_kernels_are_normalised_and_gaussian_sigma_is_recovered():
    for kernel in (kernels.gaussian_kernel(21, 1.5, 1.5, 0.0), kernels.gaussian_kernel(21, 0.7, 2.0, 0.6),
                   kernels.generalized_gaussian_kernel(15, 1.0, 2.0, 1.0, 0.7),
                   kernels.plateau_kernel(15, 1.2, 1.2, 0.0, 1.5), kernels.sinc_kernel(13, math.pi / 3)):
        assert kernel.shape[0] == kernel.shape[1]
        assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-9)
    assert kernels.gaussian_equivalent_sigma(kernels.gaussian_kernel(21, 1.5, 1.5, 0.0)) == pytest.approx(1.5, rel=0.01)
    # Anisotropic: the equivalent σ is the RMS of the two axes.
    aniso = kernels.gaussian_equivalent_sigma(kernels.gaussian_kernel(31, 1.0, 2.0, 0.4))
    assert aniso == pytest.approx(math.sqrt((1.0 + 4.0) / 2), rel=0.02)
    assert KERNEL_TYPES[-1] == "sinc"


def test_requested_gaussian_noise_sigma_is_measured_on_a_flat_image():
    flat = torch.full((3, 128, 128), 0.5)
    noise = gaussian_noise(tuple(flat.shape), 12.0, gray=False, generator=torch.Generator().manual_seed(0))
    assert float(((flat + noise) - flat).std()) * 255 == pytest.approx(12.0, rel=0.03)
    gray = gaussian_noise(tuple(flat.shape), 12.0, gray=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def _flat_noise_run(gray_prob: float) -> list[tuple[float, dict]]:
    # Only noise changes a flat image (blurs and resizes keep it flat), so the LR's deviation from grey
    # is the noise after the pipeline's resizes, which the reported noise_sigma must follow.
    config = replace(DegradationConfig(), gaussian_noise_prob=1.0, gray_noise_prob=gray_prob,
                     noise_range=(15.0, 15.0), second_order_prob=0.0, final_sinc_prob=0.0,
                     jpeg_range=(95, 95), jpeg_range2=(95, 95))
    flat = torch.full((3, 256, 256), 0.5)
    runs = []
    for seed in range(6):
        lr, params = degrade(flat, config, seed)
        runs.append((float((lr - 0.5).std()) * 255, params))
    return runs


def test_reported_lr_noise_sigma_matches_the_noise_in_the_output():
    runs = _flat_noise_run(gray_prob=1.0)
    for measured, params in runs:
        assert params["noise1_sigma"] == pytest.approx(15.0, rel=0.05)
        assert measured == pytest.approx(params["noise_sigma"], rel=0.12)
    # The resizes shrink the noise differently per draw, and the label follows.
    assert max(p["noise_sigma"] for _, p in runs) > 2 * min(p["noise_sigma"] for _, p in runs)


def test_colour_noise_label_is_before_jpeg_chroma_subsampling():
    # JPEG's 4:2:0 chroma averages colour noise over 2x2 pixels, so the output keeps 60-100% of it.
    for measured, params in _flat_noise_run(gray_prob=0.0):
        assert 0.6 * params["noise_sigma"] < measured < 1.0 * params["noise_sigma"]


def test_lower_jpeg_quality_gives_more_error():
    image = texture(64, seed=3)
    errors = [float((jpeg(image, q) - image).abs().mean()) for q in (20, 50, 90)]
    assert errors[0] > errors[1] > errors[2]


def test_larger_blur_leaves_less_gradient_energy():
    image = texture(64, seed=4)
    energies = [mean_gradient(convolve(image, kernels.gaussian_kernel(21, s, s, 0.0))) for s in (0.5, 1.5, 3.0)]
    assert mean_gradient(image) > energies[0] > energies[1] > energies[2]


def test_larger_reported_blur_in_the_pipeline_means_a_softer_lr():
    base = replace(DegradationConfig(), kernel_probs=(1, 0, 0, 0, 0, 0), sinc_prob=0.0, kernel_sizes=(21,),
                   resize_probs=(0, 0, 1), noise_range=(1.0, 1.0), poisson_scale_range=(0.05, 0.05),
                   second_order_prob=0.0, final_sinc_prob=0.0, jpeg_range=(95, 95), jpeg_range2=(95, 95))
    hr = texture(128, seed=5)
    sharp_lr, sharp = degrade(hr, replace(base, blur_sigma=(0.3, 0.3)), 1)
    soft_lr, soft = degrade(hr, replace(base, blur_sigma=(3.0, 3.0)), 1)
    assert soft["blur_sigma"] > sharp["blur_sigma"]
    assert mean_gradient(soft_lr) < 0.8 * mean_gradient(sharp_lr)


def test_label_formulas():
    assert lr_blur_sigma(2.0, 0.0, 1.0, 1.0, 4) == pytest.approx(0.5)
    # A resize to half the LR size costs resolution: extra blur beyond the optical part.
    assert lr_blur_sigma(2.0, 0.0, 1.0, 0.125, 4) > lr_blur_sigma(2.0, 0.0, 1.0, 1.0, 4)
    assert severity(0.0, 0.0, 95.0) == pytest.approx(0.0)
    assert severity(30.0, 2.0, 30.0) == pytest.approx(1.0)
    assert severity(5.0, 0.5, 80.0) < severity(20.0, 1.5, 40.0)


def test_light_preset_draws_first_order_mild_degradations_only():
    hr = texture(64)
    light = [degrade(hr, LIGHT, seed)[1] for seed in range(60)]
    for p in light:
        assert p["second_order"] == 0.0 and p["kernel1_size"] == 13
        assert 0.5 <= p["resize1_scale"] <= 1.5
        assert LIGHT.jpeg_range[0] <= p["jpeg1_quality"] <= LIGHT.jpeg_range[1]
        assert LIGHT.jpeg_range2[0] <= p["jpeg_quality"] <= LIGHT.jpeg_range2[1]
        if not p["noise1_poisson"]:
            assert 1.0 <= p["noise1_level"] <= 15.0
    heavy = [degrade(hr, DegradationConfig(), seed)[1] for seed in range(60)]
    for label in ("noise_sigma", "blur_sigma", "severity"):
        assert np.mean([p[label] for p in light]) < np.mean([p[label] for p in heavy])

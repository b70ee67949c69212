"""PSNR/SSIM on Y and NIQE: hand-derived values, an independent SSIM, and NIQE's known behaviour."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from qusr_cli.metrics import niqe_score, psnr_y, ssim_y
from qusr_cli.metrics.fidelity import rgb_to_y
from qusr_cli.metrics.niqe import (
    PRISTINE_PARAMS,
    aggd_mean,
    aggd_ratio,
    fit_aggd,
    gaussian_window,
    imresize_half,
    mvg_distance,
    niqe_plane,
)

REALSET65 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "eval" / "realset65"
needs_realset65 = pytest.mark.skipif(not REALSET65.is_dir(), reason="../shared/data/eval/realset65 not present")

Y_SPAN = 65.481 + 128.553 + 24.966  # 219: the Y step for a grey step of 255


def realset65_rgb(name: str) -> np.ndarray:
    with Image.open(REALSET65 / name) as image:
        return np.asarray(image.convert("RGB"))


def random_image(seed: int, h: int = 32, w: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def add_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noisy = image + np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


# --- colour -------------------------------------------------------------------------------------

def test_y_channel_maps_black_and_white_to_studio_range():
    rgb = np.array([[[0.0, 0.0, 0.0], [255.0, 255.0, 255.0]]])
    np.testing.assert_allclose(rgb_to_y(rgb), [[16.0, 16.0 + Y_SPAN]])


# --- PSNR ---------------------------------------------------------------------------------------

def test_psnr_of_constant_grey_offset_matches_hand_value():
    target = random_image(0) // 2
    pred = target + 10
    # a grey step of 10 moves Y by 10 * 219 / 255 everywhere, so MSE is that squared
    expected = 20 * math.log10(255 / (10 * Y_SPAN / 255))
    assert psnr_y(pred, target) == pytest.approx(expected, abs=1e-9)


def test_psnr_identical_is_infinite_and_border_crop_ignores_border_errors():
    target = random_image(1)
    assert psnr_y(target, target) == math.inf
    pred = target.copy()
    pred[:3] = 255 - pred[:3]
    assert psnr_y(pred, target) < 20
    assert psnr_y(pred, target, crop_border=3) == math.inf


def test_float_tensor_and_uint8_inputs_agree():
    a, b = random_image(2), random_image(3)
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255
    assert psnr_y(ta, tb) == pytest.approx(psnr_y(a, b), abs=1e-5)
    assert ssim_y(ta[0], tb[0], crop_border=2) == pytest.approx(ssim_y(a, b, crop_border=2), abs=1e-7)


def test_mismatched_sizes_and_bad_layouts_are_rejected():
    with pytest.raises(ValueError, match="sizes differ"):
        psnr_y(random_image(0, 32, 40), random_image(0, 32, 41))
    with pytest.raises(ValueError):
        psnr_y(np.zeros((3, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8))


# --- SSIM ---------------------------------------------------------------------------------------

def test_ssim_of_identical_images_is_one():
    image = random_image(4)
    assert ssim_y(image, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_flat_images_is_the_luminance_term():
    grey_a = np.full((16, 16, 3), 100, np.uint8)
    grey_b = np.full((16, 16, 3), 140, np.uint8)
    # no variance anywhere: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    mu_a, mu_b = 16 + 100 * Y_SPAN / 255, 16 + 140 * Y_SPAN / 255
    c1 = (0.01 * 255) ** 2
    assert ssim_y(grey_a, grey_b) == pytest.approx((2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1), abs=1e-9)


def test_ssim_falls_as_noise_grows():
    clean = np.asarray(Image.fromarray(random_image(5, 64, 64)).filter(ImageFilter.GaussianBlur(2)))
    light, heavy = add_noise(clean, 4, seed=6), add_noise(clean, 30, seed=6)
    assert 1.0 > ssim_y(light, clean) > ssim_y(heavy, clean) > 0.0


def naive_ssim_y(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM straight from the definition: one explicit 11x11 Gaussian-weighted window per position."""
    ya = 16 + (a.astype(np.float64) @ [65.481, 128.553, 24.966]) / 255
    yb = 16 + (b.astype(np.float64) @ [65.481, 128.553, 24.966]) / 255
    grid = np.arange(11) - 5
    window = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * 1.5 ** 2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(ya.shape[0] - 10):
        for j in range(ya.shape[1] - 10):
            pa, pb = ya[i:i + 11, j:j + 11], yb[i:i + 11, j:j + 11]
            ma, mb = (window * pa).sum(), (window * pb).sum()
            va, vb = (window * (pa - ma) ** 2).sum(), (window * (pb - mb) ** 2).sum()
            cov = (window * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_naive_window_by_window_implementation():
    a = random_image(7, 24, 27)
    b = add_noise(a, 20, seed=8)
    assert ssim_y(a, b) == pytest.approx(naive_ssim_y(a, b), abs=1e-10)
    assert ssim_y(a, b, crop_border=3) == pytest.approx(naive_ssim_y(a[3:-3, 3:-3], b[3:-3, 3:-3]), abs=1e-10)


# --- NIQE building blocks -----------------------------------------------------------------------

def test_mscn_window_is_the_one_stored_with_the_pristine_model():
    with np.load(PRISTINE_PARAMS) as params:
        stored = params["gaussian_window"]
    np.testing.assert_allclose(gaussian_window(), stored, atol=1e-15)


def test_aggd_ratio_at_gaussian_and_laplacian_shapes():
    # (E|x|)^2 / E[x^2] is 2/pi for a Gaussian (shape 2) and 1/2 for a Laplacian (shape 1)
    np.testing.assert_allclose(aggd_ratio(np.array([2.0, 1.0])), [2 / math.pi, 0.5], rtol=1e-12)


def test_aggd_fit_recovers_shape_and_scales_of_known_samples():
    rng = np.random.default_rng(9)
    n = 200_000
    gaussian = rng.normal(0.0, 3.0, n)
    laplacian = rng.laplace(0.0, 2.0, n)
    # sigma 1 on the left, 2 on the right, sides weighted 1:2 as their scales: an AGGD of shape 2
    skewed = np.where(rng.random(n) < 1 / 3, -np.abs(rng.normal(0, 1, n)), np.abs(rng.normal(0, 2, n)))
    shape, left, right = fit_aggd(np.stack([gaussian, laplacian, skewed]))
    np.testing.assert_allclose(shape, [2.0, 1.0, 2.0], atol=0.03)
    # a GGD of shape 2 has scale sigma * sqrt(2); a Laplacian of scale b has shape-1 scale b
    np.testing.assert_allclose(left, [3 * math.sqrt(2), 2.0, math.sqrt(2)], rtol=0.02)
    np.testing.assert_allclose(right, [3 * math.sqrt(2), 2.0, 2 * math.sqrt(2)], rtol=0.02)
    assert aggd_mean(shape[2:], left[2:], right[2:])[0] == pytest.approx(skewed.mean(), rel=0.03)


def test_aggd_fit_of_one_sided_samples_follows_matlab():
    shape, left, right = fit_aggd(np.array([[0.5, 1.0, 2.0, 0.0]]))
    # no negative sample: the left scale is undefined and so is the ratio matched to the grid,
    # where MATLAB's min over all-NaN values returns the first grid shape, 0.2
    assert np.isnan(left[0])
    assert shape[0] == pytest.approx(0.2)
    assert np.isfinite(right[0]) and right[0] > 0


def test_imresize_half_keeps_a_ramp_in_the_interior_and_a_constant_everywhere():
    ramp = np.tile(np.arange(1.0, 33.0), (32, 1))  # value = 1-based column index
    half = imresize_half(ramp)
    assert half.shape == (16, 16)
    # MATLAB samples output column u at input position 2u - 1/2; a symmetric, normalised kernel
    # reproduces a linear ramp wherever it does not reach the mirrored border
    u = np.arange(1, 17)
    np.testing.assert_allclose(half[:, 3:-3], np.broadcast_to(2 * u[3:-3] - 0.5, (16, 10)), atol=1e-12)
    np.testing.assert_allclose(imresize_half(np.full((20, 30), 7.0)), 7.0, atol=1e-12)


def test_mvg_distance_hand_value():
    eye = np.eye(2)
    assert mvg_distance(np.array([3.0, 4.0]), eye, np.zeros(2), eye) == pytest.approx(5.0)
    # averaging the covariances halves the variance along the difference, scaling D by sqrt(2)
    assert mvg_distance(np.array([3.0, 4.0]), 0.5 * eye, np.zeros(2), 1.5 * eye) == pytest.approx(5.0)
    assert mvg_distance(np.array([3.0, 4.0]), 0.25 * eye, np.zeros(2), 0.25 * eye) == pytest.approx(10.0)


def test_niqe_rejects_images_without_a_whole_block_and_flat_images():
    with pytest.raises(ValueError, match="96x96"):
        niqe_score(random_image(0, 95, 200))
    with pytest.raises(ValueError, match="flat"):
        niqe_plane(np.full((96, 96), 128.0))
    with pytest.raises(ValueError, match="channel"):
        niqe_score(random_image(0, 96, 96), channel="lab")


# --- NIQE on real images ------------------------------------------------------------------------

# (file, crop box, our grey and Y NIQE, then pyiqa 0.1.16's grey and Y NIQE with the same pristine
# model). pyiqa runs MATLAB's imresize in float32 and we in float64, hence gaps of a few thousandths.
PINNED = [
    ("OST_120.png", (200, 200, 392, 392), 3.3227629942, 3.2831147582, 3.3251661131, 3.2834412964),
    ("dog.png", (64, 64, 256, 256), 16.1835748263, 16.0118108708, 16.1835739987, 16.0118121471),
    ("Canon_045_LR4.png", (100, 50, 388, 242), 9.0737893478, 9.1477635865, 9.0737893448, 9.1477635110),
]


@needs_realset65
@pytest.mark.parametrize(("name", "box", "grey", "y", "pyiqa_grey", "pyiqa_y"), PINNED)
def test_niqe_pinned_on_realset65_crops(name, box, grey, y, pyiqa_grey, pyiqa_y):
    with Image.open(REALSET65 / name) as image:
        crop = np.asarray(image.convert("RGB").crop(box))
    ours_grey, ours_y = niqe_score(crop), niqe_score(crop, channel="y")
    assert ours_grey == pytest.approx(grey, abs=1e-4)
    assert ours_y == pytest.approx(y, abs=1e-4)
    assert ours_grey == pytest.approx(pyiqa_grey, abs=0.005)
    assert ours_y == pytest.approx(pyiqa_y, abs=0.005)


@needs_realset65
def test_niqe_crop_border_equals_scoring_the_cropped_image():
    image = realset65_rgb("OST_120.png")[:300, :300]
    assert niqe_score(image, crop_border=6) == pytest.approx(niqe_score(image[6:-6, 6:-6]), abs=1e-12)


@needs_realset65
def test_niqe_rises_with_heavy_noise_and_heavy_blur():
    clean = realset65_rgb("OST_120.png")[:384, :384]
    noisy = add_noise(clean, 25, seed=10)
    blurred = np.asarray(Image.fromarray(clean).filter(ImageFilter.GaussianBlur(3)))
    score = niqe_score(clean)
    assert score + 2 < niqe_score(noisy)
    assert score + 2 < niqe_score(blurred)

"""Full-reference fidelity: PSNR and SSIM on the Y channel, computed the way SR papers report them.

The conventions are those of BasicSR (and so of most 4x SR tables): RGB is converted to the BT.601
"studio swing" Y channel in the 0-255 range (not rounded), an optional border is cropped, PSNR
uses a peak of 255, and SSIM uses an 11x11 Gaussian window (sigma 1.5) over the valid region only,
with K1 = 0.01 and K2 = 0.03.

Images are either uint8 arrays (H, W, 3) in RGB order, as read from a PNG, or float tensors/arrays
(1, 3, H, W) or (3, H, W) in [0, 1], as the upscaler produces them. Float inputs are used as they
are, not quantised to 8 bits: quantise first to reproduce a score measured on saved files.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
PEAK = 255.0

ImageLike = np.ndarray | torch.Tensor


def as_rgb255(image: ImageLike) -> np.ndarray:
    """The image as float64 (H, W, 3) RGB in the 0-255 range.

    uint8 arrays are read as (H, W, 3); float tensors/arrays as (1, 3, H, W) or (3, H, W) in [0, 1].
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float64).numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"a uint8 image must be (H, W, 3) RGB, got shape {image.shape}")
        return image.astype(np.float64)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected uint8 (H, W, 3) or float (1, 3, H, W) in [0, 1], got {image.dtype}")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"a float image must be (1, 3, H, W) or (3, H, W), got shape {image.shape}")
    return image.astype(np.float64).transpose(1, 2, 0) * PEAK


def rgb_to_y(rgb255: np.ndarray) -> np.ndarray:
    """BT.601 luma in the 0-255 range: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.

    R, G, B are 0-255 values, so Y spans 16 (black) to 235 (white), as MATLAB's rgb2ycbcr.
    """
    return 16.0 + rgb255 @ np.array([65.481, 128.553, 24.966]) / PEAK


def crop(plane: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels on every side (none for 0)."""
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return plane
    if 2 * border >= min(plane.shape[:2]):
        raise ValueError(f"crop_border {border} leaves nothing of a {plane.shape[0]}x{plane.shape[1]} image")
    return plane[border:-border, border:-border]


def _y_pair(pred: ImageLike, target: ImageLike, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    pred_rgb, target_rgb = as_rgb255(pred), as_rgb255(target)
    if pred_rgb.shape != target_rgb.shape:
        raise ValueError(f"image sizes differ: {pred_rgb.shape[:2]} vs {target_rgb.shape[:2]}")
    return rgb_to_y(crop(pred_rgb, crop_border)), rgb_to_y(crop(target_rgb, crop_border))


def psnr_from_mse(mse: float, peak: float = PEAK) -> float:
    """PSNR = 10 log10(peak^2 / MSE) in dB; infinite for identical images."""
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def psnr_y(pred: ImageLike, target: ImageLike, crop_border: int = 0) -> float:
    """PSNR (dB, peak 255) between the Y channels, after cropping ``crop_border`` pixels."""
    y_pred, y_target = _y_pair(pred, target, crop_border)
    return psnr_from_mse(float(np.mean((y_pred - y_target) ** 2)))


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """w_i = exp(-(i - c)^2 / (2 sigma^2)) / sum_j w_j, with c the centre index (size - 1) / 2."""
    offsets = np.arange(size) - (size - 1) / 2.0
    weights = np.exp(-(offsets ** 2) / (2.0 * sigma * sigma))
    return weights / weights.sum()


def filter_valid(plane: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """Separable filtering by outer(k, k), keeping only positions where the window fits inside."""
    taps = len(kernel_1d)
    rows = sum(w * plane[i:plane.shape[0] - taps + 1 + i] for i, w in enumerate(kernel_1d))
    return sum(w * rows[:, i:rows.shape[1] - taps + 1 + i] for i, w in enumerate(kernel_1d))


def ssim_map(x: np.ndarray, y: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """SSIM = ((2 mu_x mu_y + C1)(2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)).

    Local statistics use the 11x11 Gaussian window (sigma 1.5) over valid positions only;
    C1 = (K1 peak)^2 and C2 = (K2 peak)^2 with K1 = 0.01, K2 = 0.03.
    """
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {x.shape[0]}x{x.shape[1]}")
    kernel = gaussian_kernel_1d(SSIM_WINDOW, SSIM_SIGMA)
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    mu_x, mu_y = filter_valid(x, kernel), filter_valid(y, kernel)
    var_x = filter_valid(x * x, kernel) - mu_x ** 2
    var_y = filter_valid(y * y, kernel) - mu_y ** 2
    cov_xy = filter_valid(x * y, kernel) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim_y(pred: ImageLike, target: ImageLike, crop_border: int = 0) -> float:
    """Mean SSIM between the Y channels (0-255 range), after cropping ``crop_border`` pixels."""
    y_pred, y_target = _y_pair(pred, target, crop_border)
    return float(ssim_map(y_pred, y_target).mean())

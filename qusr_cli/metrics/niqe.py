"""NIQE, the "completely blind" natural image quality evaluator (Mittal, Soundararajan, Bovik 2013).

This follows the authors' MATLAB release (``computequality.m``) and pyiqa's port of it, which is
what SR papers report: lower is better. Where the two differ numerically, pyiqa is followed (see
:func:`mscn_window`), so scores can be set beside published ones.

1. The image is reduced to one channel: by default the grey channel 0.299 R + 0.587 G + 0.114 B
   rounded to integers (pyiqa's default), optionally BT.601 Y, also rounded; then cropped to whole
   96x96 blocks.
2. At two scales (the image, then the image shrunk by 2 with MATLAB's antialiased bicubic
   imresize), the MSCN coefficients are computed with a 7x7 Gaussian window (sigma 7/6), and every
   block (96x96, then 48x48) gives 18 features: an AGGD fit of the MSCN values (shape, mean of the
   two scales) and AGGD fits of the products of each value with its four neighbours (shape, mean,
   left scale, right scale).
3. A Gaussian fitted to the blocks' 36-dimensional features is compared with the Gaussian of
   pristine images by the distance of :func:`mvg_distance`.

Every block counts: the MATLAB release computes a sharpness per block but uses it only when it
fits the pristine model (keeping blocks above 0.75 of the maximum), never when scoring an image.

The pristine model is the one from the MATLAB release, as shipped by BasicSR (data/NOTICE).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from qusr_cli.metrics.fidelity import ImageLike, as_rgb255, crop, rgb_to_y

PRISTINE_PARAMS = Path(__file__).with_name("data") / "niqe_pris_params.npz"
BLOCK = 96  # also the smallest side NIQE can score: a smaller image has no block
MSCN_WINDOW = 7
MSCN_SIGMA = 7.0 / 6.0
MSCN_C = 1.0  # keeps flat regions from dividing by zero; the MATLAB release's constant for 0-255 data
SHAPE_GRID = 0.2 + 0.001 * np.arange(9801)  # AGGD shapes 0.2..10 in steps of 0.001, as in MATLAB
# Neighbour offsets (rows, columns) of the four products: horizontal, vertical, two diagonals.
NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])
CHANNELS = ("gray", "y")


def rgb_to_gray(rgb255: np.ndarray) -> np.ndarray:
    """Grey = 0.299 R + 0.587 G + 0.114 B on 0-255 values (the Y of YIQ), not rounded."""
    return rgb255 @ GREY_WEIGHTS


def to_channel(rgb255: np.ndarray, channel: str) -> np.ndarray:
    """The rounded 0-255 plane NIQE is computed on: ``"gray"`` (pyiqa's default) or ``"y"`` (BT.601)."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, not {channel!r}")
    plane = rgb_to_gray(rgb255) if channel == "gray" else rgb_to_y(rgb255)
    # MATLAB and pyiqa score 8-bit planes; rounding here keeps their scores reproducible
    return np.round(plane)


def gaussian_window(size: int = MSCN_WINDOW, sigma: float = MSCN_SIGMA) -> np.ndarray:
    """MATLAB's fspecial('gaussian', size, sigma): w_ij = exp(-(i^2 + j^2) / (2 sigma^2)) / sum(w).

    i and j run over -(size - 1)/2 .. (size - 1)/2.
    """
    offsets = np.arange(size) - (size - 1) / 2.0
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * sigma * sigma))
    return weights / weights.sum()


def mscn_window() -> np.ndarray:
    """The 7x7 window as pyiqa applies it: the Gaussian's weights rounded to float32.

    The rounding matters only where the image is perfectly flat (saturated skies, flat graphics):
    there I - mu is pure rounding residue, and the float32 weights, whose sum misses 1 by about
    1e-8, give every such pixel the same sign, as in pyiqa. With exact weights, such blocks score
    up to 0.6 NIQE away from pyiqa's (measured on Real-ESRGAN outputs of RealSet65), while pyiqa's
    numbers are the ones SR papers report.
    """
    return gaussian_window().astype(np.float32).astype(np.float64)


def filter_replicate(plane: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MATLAB imfilter(plane, window, 'replicate'): same-size correlation, edges extended."""
    size = window.shape[0]
    padded = np.pad(plane, size // 2, mode="edge")
    h, w = plane.shape
    out = np.zeros_like(plane)
    for i in range(size):
        for j in range(size):
            out += window[i, j] * padded[i:i + h, j:j + w]
    return out


def mscn(plane: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients: (I - mu) / (sigma + C).

    mu = G * I and sigma = sqrt(|G * I^2 - mu^2|), with G the 7x7 Gaussian window (sigma 7/6),
    replicate borders, and C = 1.
    """
    window = mscn_window()
    mu = filter_replicate(plane, window)
    sigma = np.sqrt(np.abs(filter_replicate(plane * plane, window) - mu * mu))
    return (plane - mu) / (sigma + MSCN_C)


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5 (MATLAB imresize's 'bicubic').

    k(x) = 1.5|x|^3 - 2.5|x|^2 + 1 for |x| <= 1; -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 for 1 < |x| <= 2; else 0.
    """
    ax = np.abs(x)
    near = (1.5 * ax - 2.5) * ax * ax + 1.0
    far = ((-0.5 * ax + 2.5) * ax - 4.0) * ax + 2.0
    return np.where(ax <= 1, near, np.where(ax <= 2, far, 0.0))


def resize_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, each (out_len, taps), of MATLAB's antialiased bicubic imresize.

    Output pixel u (1-based) samples the input at x = u / s + (1 - 1 / s) / 2; when shrinking
    (s < 1) the kernel is stretched to s k(s t) so it also low-passes. Weights are normalised to sum
    to 1 and indices beyond the edges are mirrored (the edge pixel repeated, MATLAB's 'symmetric').
    """
    stretch = min(scale, 1.0)
    width = 4.0 / stretch
    centres = np.arange(1, out_len + 1) / scale + 0.5 * (1.0 - 1.0 / scale)
    first = np.floor(centres - width / 2.0)
    taps = math.ceil(width) + 2
    indices = first[:, None] + np.arange(taps)[None, :]
    weights = stretch * cubic(stretch * (centres[:, None] - indices))
    weights /= weights.sum(axis=1, keepdims=True)
    zero_based = indices.astype(np.int64) - 1
    mirrored = np.mod(zero_based, 2 * in_len)
    mirrored = np.where(mirrored >= in_len, 2 * in_len - 1 - mirrored, mirrored)
    return mirrored, weights


def imresize_half(plane: np.ndarray) -> np.ndarray:
    """MATLAB imresize(plane, 0.5) (bicubic, antialiased), rows first then columns."""
    h, w = plane.shape
    # one gather per tap keeps memory at one output-sized array, not taps of them
    index, weight = resize_weights(h, (h + 1) // 2, 0.5)
    plane = sum(weight[:, t, None] * plane[index[:, t]] for t in range(index.shape[1]))
    index, weight = resize_weights(w, (w + 1) // 2, 0.5)
    return sum(weight[None, :, t] * plane[:, index[:, t]] for t in range(index.shape[1]))


def _gamma(x: np.ndarray) -> np.ndarray:
    return np.exp(np.vectorize(math.lgamma, otypes=[np.float64])(x))


def aggd_ratio(shape: np.ndarray) -> np.ndarray:
    """rho(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)): (E|x|)^2 / E[x^2] of a GGD with shape a."""
    return _gamma(2.0 / shape) ** 2 / (_gamma(1.0 / shape) * _gamma(3.0 / shape))


@lru_cache(maxsize=1)
def _shape_tables() -> tuple[np.ndarray, np.ndarray]:
    """rho(a) and sqrt(Gamma(1/a) / Gamma(3/a)) over SHAPE_GRID."""
    a = SHAPE_GRID
    return aggd_ratio(a), np.sqrt(_gamma(1.0 / a) / _gamma(3.0 / a))


def nearest_shape_index(target: np.ndarray) -> np.ndarray:
    """Index into SHAPE_GRID of the shape whose rho is nearest ``target`` (argmin |rho(a) - target|).

    rho rises monotonically on the grid, so a binary search finds the two neighbours; ties go to the
    smaller shape, as MATLAB's min does. A NaN target gets index 0, as min over all-NaN does in
    MATLAB (and argmin in pyiqa), so undefined blocks get the same shape 0.2 there and here.
    """
    ratio = _shape_tables()[0]
    safe = np.where(np.isnan(target), ratio[0], target)
    upper = np.clip(np.searchsorted(ratio, safe), 1, len(ratio) - 1)
    lower = upper - 1
    pick_upper = np.abs(ratio[upper] - safe) < np.abs(ratio[lower] - safe)
    return np.where(pick_upper, upper, lower)


def fit_aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row: shape a, left scale b_l, right scale b_r.

    s_l, s_r = RMS of the negative / positive samples, g = s_l / s_r,
    r = mean(|x|)^2 / mean(x^2), R = r (g^3 + 1)(g + 1) / (g^2 + 1)^2,
    a = argmin over the grid of |rho(a) - R|, b_{l,r} = s_{l,r} sqrt(Gamma(1/a) / Gamma(3/a)).
    As in MATLAB, a side without samples has an undefined (NaN) scale, and then so is R, which
    the grid search maps to the first shape (see :func:`nearest_shape_index`).
    """
    negative, positive = samples < 0, samples > 0
    squares = samples * samples
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((squares * negative).sum(axis=1) / negative.sum(axis=1))
        right = np.sqrt((squares * positive).sum(axis=1) / positive.sum(axis=1))
        g = left / right
        r = np.abs(samples).mean(axis=1) ** 2 / squares.mean(axis=1)
        r_norm = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    index = nearest_shape_index(r_norm)
    scale_factor = _shape_tables()[1][index]
    return SHAPE_GRID[index], left * scale_factor, right * scale_factor


def aggd_mean(shape: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Mean of an AGGD: (b_r - b_l) Gamma(2/a) / Gamma(1/a)."""
    return (right - left) * _gamma(2.0 / shape) / _gamma(1.0 / shape)


def split_blocks(plane: np.ndarray, block: int) -> np.ndarray:
    """The plane's whole block x block tiles as an array (n_blocks, block, block)."""
    h, w = plane.shape[0] // block, plane.shape[1] // block
    tiles = plane[:h * block, :w * block].reshape(h, block, w, block)
    return tiles.transpose(0, 2, 1, 3).reshape(h * w, block, block)


def block_features(coefficients: np.ndarray, block: int) -> np.ndarray:
    """The 18 NIQE features of each block of MSCN coefficients, as (n_blocks, 18).

    Per block: AGGD shape and (b_l + b_r) / 2 of the coefficients, then for each neighbour
    direction the AGGD shape, mean, b_l and b_r of the products with the (circularly) shifted block.
    """
    blocks = split_blocks(coefficients, block)
    n = len(blocks)
    shape, left, right = fit_aggd(blocks.reshape(n, -1))
    features = [shape, (left + right) / 2.0]
    for shift in NEIGHBOUR_SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        shape, left, right = fit_aggd(products.reshape(n, -1))
        features += [shape, aggd_mean(shape, left, right), left, right]
    return np.stack(features, axis=1)


def niqe_features(plane: np.ndarray) -> np.ndarray:
    """Per-block features at both scales, (n_blocks, 36), of a 0-255 plane."""
    rows, cols = plane.shape[0] // BLOCK, plane.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        raise ValueError(f"NIQE needs at least {BLOCK}x{BLOCK} pixels, got {plane.shape[0]}x{plane.shape[1]}")
    plane = plane[:rows * BLOCK, :cols * BLOCK].astype(np.float64)
    fine = block_features(mscn(plane), BLOCK)
    coarse = block_features(mscn(imresize_half(plane)), BLOCK // 2)
    return np.concatenate([fine, coarse], axis=1)


def nan_mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB nanmean (column means over defined values) and nancov (rows with any NaN dropped).

    Like MATLAB's cov, a single observation gets a zero covariance (normalised by N, not N - 1).
    """
    defined = ~np.isnan(features)
    complete = features[defined.all(axis=1)]
    if len(complete) == 0:
        raise ValueError("NIQE is undefined here: no block has both positive and negative "
                         "normalised coefficients (the image is flat)")
    mean = np.where(defined, features, 0.0).sum(axis=0) / defined.sum(axis=0)
    return mean, np.cov(complete, rowvar=False, ddof=1 if len(complete) > 1 else 0)


def mvg_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """D = sqrt((mu_a - mu_b)^T ((Sigma_a + Sigma_b) / 2)^+ (mu_a - mu_b)), ^+ the pseudo-inverse."""
    diff = mu_a - mu_b
    return float(np.sqrt(diff @ np.linalg.pinv((cov_a + cov_b) / 2.0) @ diff))


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """Mean (36,) and covariance (36, 36) of the pristine-image features."""
    with np.load(PRISTINE_PARAMS) as params:
        return params["mu_pris_param"].reshape(-1), params["cov_pris_param"]


def niqe_plane(plane: np.ndarray) -> float:
    """NIQE of a 0-255 single-channel plane (at least 96x96; extra rows/columns are ignored)."""
    mu, cov = nan_mean_cov(niqe_features(plane))
    mu_pristine, cov_pristine = pristine_model()
    return mvg_distance(mu_pristine, cov_pristine, mu, cov)


def niqe_score(image: ImageLike, channel: str = "gray", crop_border: int = 0) -> float:
    """NIQE of an RGB image (lower is better).

    ``image``: uint8 (H, W, 3) RGB, or float (1, 3, H, W) / (3, H, W) in [0, 1].
    ``channel``: ``"gray"`` (0.299/0.587/0.114, pyiqa's default) or ``"y"`` (BT.601 luma).
    ``crop_border``: pixels dropped on every side first.
    """
    return niqe_plane(to_channel(crop(as_rgb255(image), crop_border), channel))

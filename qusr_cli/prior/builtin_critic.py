"""Deterministic image statistics that fill a QualityReport without any learned weights.

Every estimator works on float images in [0, 1] at their own resolution, because resizing would
change the very noise and blur being measured; large photos are cropped instead (central_crop).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from qusr_cli.errors import InputError
from qusr_cli.prior.critic import CriticResult
from qusr_cli.prior.report import QualityReport, critique_from_report

# Consistency constant of the median absolute deviation for a zero-mean Gaussian: median(|x|) = 0.6745 sigma.
_MAD_TO_SIGMA = 0.6745
# Asymptotic standard deviation of the MAD sigma estimate, in units of sigma / sqrt(samples).
_MAD_ESTIMATE_SPREAD = 1.1664
_NOISE_BLOCK = 8  # side of a noise block in Haar coefficients (16x16 pixels)
_NOISE_FLAT_QUANTILE = 0.25
_MIN_NOISE_BLOCKS = 8
_CLIP_LOW = 2.0 / 255.0
_CLIP_HIGH = 253.0 / 255.0
_MAX_CLIPPED_IN_BLOCK = 0.05

_MIN_SIDE = 16
# Noise, blur and blocking are local, so large photos are measured on a central crop this big.
_ANALYSIS_SIDE = 1024
# Crop origins on this grid keep the JPEG 8x8 grid and the 2x2 Haar pairs where they were.
_CROP_ALIGN = 16

_BLUR_PROBE_SIGMA = 2.5
_BLUR_EXPONENT = 1.36
_BLUR_INTRINSIC_SIGMA = 1.04
# Ratios this close to 1 mean "no measurable detail left"; capping keeps the inverse finite (s about 16).
_BLUR_MAX_RATIO = 0.97
_BLUR_BLOCK = 16
_BLUR_EDGE_FRACTION = 0.25

_JPEG_BLOCK = 8
# Steps smaller than one 8-bit level are rounding, not structure.
_JPEG_STEP_FLOOR = 1.0 / 255.0
_JPEG_LOG_RATIO_LIMIT = math.log(8.0)
# (log blockiness, JPEG quality): the median log blockiness measured at each Pillow quality, see
# jpeg_quality_from_blockiness.
_JPEG_CALIBRATION = (
    (0.039, 100.0),
    (0.049, 95.0),
    (0.062, 90.0),
    (0.103, 80.0),
    (0.146, 70.0),
    (0.217, 60.0),
    (0.292, 50.0),
    (0.391, 40.0),
    (0.426, 30.0),
    (0.592, 20.0),
    (0.682, 15.0),
    (0.777, 10.0),
    (0.892, 5.0),
)


def luma(image: torch.Tensor) -> torch.Tensor:
    """BT.601 luma, the Y that JPEG compresses: Y = 0.299 R + 0.587 G + 0.114 B, shape (H, W)."""
    rgb = image.reshape(-1, *image.shape[-3:])[0].to(torch.float32)
    if rgb.shape[0] == 1:
        return rgb[0]
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("chw,c->hw", rgb[:3], weights)


def haar_diagonal(plane: torch.Tensor) -> torch.Tensor:
    """Finest Haar diagonal subband: HH = (a - b - c + d) / 2 over each 2x2 block [[a, b], [c, d]].

    The 1/2 makes the transform orthonormal, so white noise of std sigma gives HH of std sigma, and
    any locally linear ramp cancels exactly.
    """
    h, w = plane.shape[-2] // 2 * 2, plane.shape[-1] // 2 * 2
    p = plane[..., :h, :w]
    return (p[..., 0::2, 0::2] - p[..., 0::2, 1::2] - p[..., 1::2, 0::2] + p[..., 1::2, 1::2]) / 2


def mad_sigma(coefficients: torch.Tensor) -> torch.Tensor:
    """Donoho's robust noise estimate over the last dimension: sigma = median(|HH|) / 0.6745.

    The median of an even count is the mean of the two middle values; torch.median would return the
    lower one, which biases small blocks low.
    """
    ordered = coefficients.abs().sort(dim=-1).values
    n = ordered.shape[-1]
    median = (ordered[..., (n - 1) // 2] + ordered[..., n // 2]) / 2
    return median / _MAD_TO_SIGMA


def flat_quantile_bias(quantile: float, samples: int) -> float:
    """Expected ratio of the q-quantile of per-block MAD estimates to the true sigma, on pure noise.

    Each block estimate is about N(sigma, (1.1664 sigma / sqrt(n))^2), so its q-quantile is
    sigma * (1 + z_q * 1.1664 / sqrt(n)), z_q being the standard normal q-quantile.
    """
    z = math.sqrt(2.0) * torch.erfinv(torch.tensor(2.0 * quantile - 1.0)).item()
    return 1.0 + z * _MAD_ESTIMATE_SPREAD / math.sqrt(samples)


def _blocks(plane: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping size x size tiles of a (H, W) plane as rows of a (tiles, size*size) matrix."""
    h, w = plane.shape[-2] // size * size, plane.shape[-1] // size * size
    tiles = plane[:h, :w].reshape(h // size, size, w // size, size).permute(0, 2, 1, 3)
    return tiles.reshape(-1, size * size)


def noise_sigma_plane(plane: torch.Tensor) -> float:
    """Noise sigma of one [0, 1] plane in 8-bit levels, from the flattest blocks of its Haar HH band.

    sigma = 255 * Q_0.25(median(|HH_block|) / 0.6745) / flat_quantile_bias(0.25, 64):
    Donoho's MAD estimate per 16x16-pixel block, the lower quartile of those so that texture and
    edges (which raise a block's estimate) are ignored, divided by the bias that taking a lower
    quartile has on pure noise. Blocks with clipped pixels are skipped since clipping hides noise.
    Images with fewer than 8 usable blocks (about 64x64 pixels) fall back to the MAD of the whole band.
    """
    hh = haar_diagonal(plane)
    blocks = _blocks(hh, _NOISE_BLOCK)
    pixels = _blocks(plane, 2 * _NOISE_BLOCK)
    clipped = ((pixels <= _CLIP_LOW) | (pixels >= _CLIP_HIGH)).float().mean(dim=1)
    usable = blocks[clipped <= _MAX_CLIPPED_IN_BLOCK]
    if usable.shape[0] < _MIN_NOISE_BLOCKS:
        return 255.0 * mad_sigma(hh.flatten()).item()
    per_block = mad_sigma(usable)
    lower = torch.quantile(per_block, _NOISE_FLAT_QUANTILE).item()
    return 255.0 * lower / flat_quantile_bias(_NOISE_FLAT_QUANTILE, _NOISE_BLOCK**2)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps g[t] = exp(-t^2 / (2 sigma^2)) / sum, for |t| <= ceil(3 sigma)."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-(t**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def gaussian_blur_images(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel of (B, C, H, W) images with mirrored borders."""
    taps = gaussian_kernel(sigma).to(images)
    radius = taps.numel() // 2
    b, c, h, w = images.shape
    x = images.reshape(b * c, 1, h, w)
    # Mirroring needs the pad to be shorter than the side; replicate covers tiny images.
    mode = "reflect" if min(h, w) > radius else "replicate"
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=mode), taps.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode=mode), taps.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def gaussian_blur(plane: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (H, W) plane with mirrored borders."""
    return gaussian_blur_images(plane[None, None], sigma)[0, 0]


def gradient_energy_blocks(plane: torch.Tensor, block: int = _BLUR_BLOCK) -> torch.Tensor:
    """Per-block mean of squared forward differences.

    E = mean over the block of (I[y, x+1] - I[y, x])^2 + (I[y+1, x] - I[y, x])^2.
    """
    dx = plane[:-1, 1:] - plane[:-1, :-1]
    dy = plane[1:, :-1] - plane[:-1, :-1]
    energy = dx**2 + dy**2
    size = min(block, *energy.shape)
    return _blocks(energy, size).mean(dim=1)


def noise_gradient_energy(noise_sigma: float, probe_sigma: float | None) -> float:
    """Expected per-pixel gradient energy of white noise of std s, optionally after a Gaussian blur.

    E = 2 s^2 sum_t (g * d)[t]^2 sum_t g[t]^2 with d = [1, -1] the forward difference and g the blur
    taps (g = [1] without blur, giving E = 4 s^2): the x and y differences each see the difference
    kernel along one axis and the plain blur along the other.
    """
    taps = torch.ones(1) if probe_sigma is None else gaussian_kernel(probe_sigma)
    differenced = torch.cat([taps, torch.zeros(1)]) - torch.cat([torch.zeros(1), taps])
    return 2.0 * noise_sigma**2 * (differenced**2).sum().item() * (taps**2).sum().item()


def blur_prefilter_sigma(noise_sigma: float) -> float:
    """Pre-blur applied before measuring sharpness: sigma_a = min(1, s / 25), s the noise in 8-bit levels.

    Heavy noise carries most of the finest-scale gradient energy, and subtracting its expected share
    leaves a difference of two large, uncertain numbers; measuring above a scale that grows with the
    noise keeps the noise share small at the cost of resolution on blurs below sigma_a.
    """
    return min(1.0, noise_sigma / 25.0)


def reblur_ratio(plane: torch.Tensor, noise_sigma: float, prefilter_sigma: float) -> float:
    """How much gradient energy survives a stronger blur: R = E(g_b * I) / E(g_a * I), sigma_b = 2.5.

    g_a is the noise-dependent pre-blur (none when sigma_a = 0). A sharp image loses most of its
    gradient energy (R small), an already blurred one little (R near 1). E is averaged over the
    quarter of 16x16 blocks with the most energy after g_b, where edges and texture carry the
    sharpness and noise has been smoothed away, and the expected noise energy
    (noise_gradient_energy, noise sigma in [0, 1] units) is subtracted from both terms.
    """
    reference = gaussian_blur(plane, prefilter_sigma) if prefilter_sigma > 0 else plane
    probe = gaussian_blur(plane, _BLUR_PROBE_SIGMA)
    reference_energy = gradient_energy_blocks(reference)
    probe_energy = gradient_energy_blocks(probe)
    count = max(1, round(probe_energy.numel() * _BLUR_EDGE_FRACTION))
    chosen = torch.topk(probe_energy, count).indices
    reference_noise = noise_gradient_energy(noise_sigma, prefilter_sigma if prefilter_sigma > 0 else None)
    signal = reference_energy[chosen].mean().item() - reference_noise
    kept = probe_energy[chosen].mean().item() - noise_gradient_energy(noise_sigma, _BLUR_PROBE_SIGMA)
    if signal <= 0.0:
        return 1.0
    return min(max(kept / signal, 0.0), 1.0)


def blur_sigma_from_ratio(ratio: float, prefilter_sigma: float) -> float:
    """Gaussian-equivalent blur sigma (input pixels) from the re-blur ratio, by a calibrated model.

    Model: the mean gradient energy after a total Gaussian blur t falls as (t^2 + s0^2)^-p, so
    R = ((s^2 + s0^2 + a^2) / (s^2 + s0^2 + b^2))^p with a = prefilter_sigma, b = 2.5; solving,
    with q = R^(1/p): s = sqrt((q b^2 - a^2) / (1 - q) - s0^2), clamped at 0.
    Calibration: p = 1.36, s0 = 1.04, least-squares fitted to the mean ratio of six synthetic
    dead-leaves images (disks with 1/r^3 radii, rendered at 4x and area-downsampled to 128x128 so
    that s = 0 is as sharp as a well-downsampled photo) blurred by s = 0..4 in steps of 0.5, with
    a = 0, 0.5 and 1. The fitted mean ratio is within 0.023 of the measured one; the mean estimate
    is within 0.05 of the true s for s >= 1, and single images scatter up to about 0.5 either side,
    depending on how much fine detail they contain.
    """
    q = min(max(ratio, 1e-6), _BLUR_MAX_RATIO) ** (1.0 / _BLUR_EXPONENT)
    variance = (q * _BLUR_PROBE_SIGMA**2 - prefilter_sigma**2) / (1.0 - q) - _BLUR_INTRINSIC_SIGMA**2
    return math.sqrt(max(variance, 0.0))


def boundary_log_ratios(plane: torch.Tensor) -> torch.Tensor:
    """Mean clamped log step ratio at each of the 8 column phases.

    L[p] = mean clamp(log((s + e) / (a + e)), -log 8, log 8), where s = |I[y, x+1] - I[y, x]| is the
    step between columns x and x+1 with x = p (mod 8), a = (|I[y, x] - I[y, x-1]| +
    |I[y, x+2] - I[y, x+1]|) / 2 the steps beside it, and e = 1/255.
    Averaging logs lets every position count the same, so busy texture (where s and a are both
    large) does not drown the flat regions where JPEG blocking shows; the clamp keeps a few long
    straight edges that happen to share a column phase from passing for a block grid.
    """
    steps = (plane[:, 1:] - plane[:, :-1]).abs()
    step = steps[:, 1:-1]
    beside = (steps[:, :-2] + steps[:, 2:]) / 2
    log_ratio = torch.log((step + _JPEG_STEP_FLOOR) / (beside + _JPEG_STEP_FLOOR))
    log_ratio = log_ratio.clamp(-_JPEG_LOG_RATIO_LIMIT, _JPEG_LOG_RATIO_LIMIT).mean(dim=0)
    phase = torch.arange(1, log_ratio.numel() + 1, device=plane.device) % _JPEG_BLOCK
    return torch.stack([log_ratio[phase == p].mean() for p in range(_JPEG_BLOCK)])


def blockiness(plane: torch.Tensor) -> float:
    """How much steps on an 8-pixel grid exceed the steps inside the blocks, as a ratio (1 = none).

    B = exp(mean over x and y of [max_p L[p] - median_{q != p*} L[q]]) with L from
    boundary_log_ratios: the geometric-mean ratio of boundary steps to inside-block steps, relative
    to the same ratio at the other phases. Taking the strongest phase finds the grid even after a
    crop; on an uncompressed image it leaves a small bias (B about 1.04).
    """
    excess = []
    for oriented in (plane, plane.T):
        ratios = boundary_log_ratios(oriented)
        strongest = int(ratios.argmax())
        others = torch.cat([ratios[:strongest], ratios[strongest + 1 :]])
        excess.append((ratios[strongest] - others.median()).item())
    return math.exp(sum(excess) / len(excess))


def jpeg_quality_from_blockiness(value: float) -> float:
    """Estimated JPEG quality (1-100) by linear interpolation of log B in a measured table.

    Calibration (_JPEG_CALIBRATION): 54 synthetic luma images (four dead-leaves and two gradient,
    disk and texture images, each clean or with noise sigma 5 or 15, blur sigma 0, 1 or 2, tinted
    to RGB) saved by Pillow at qualities 5..100; the table holds the median log B per quality. The
    10-90 % spread is wide (at quality 50, log B from 0.12 to 0.51), so treat the estimate as a level
    rather than a number.
    """
    log_b = math.log(max(value, 1e-6))
    table = _JPEG_CALIBRATION
    if log_b <= table[0][0]:
        return table[0][1]
    for (x0, q0), (x1, q1) in zip(table, table[1:]):
        if log_b <= x1:
            return q0 + (q1 - q0) * (log_b - x0) / (x1 - x0)
    return table[-1][1]


def exposure_stats(image: torch.Tensor, plane: torch.Tensor) -> tuple[float, float, float]:
    """Mean luma and the clipped fractions.

    Shadows are clipped where every channel is <= 2/255, highlights where any channel is >= 253/255.
    """
    rgb = image.reshape(-1, *image.shape[-3:])[0]
    shadows = (rgb.amax(dim=0) <= _CLIP_LOW).float().mean().item()
    highlights = (rgb.amax(dim=0) >= _CLIP_HIGH).float().mean().item()
    return plane.mean().item(), shadows, highlights


def rms_contrast(plane: torch.Tensor) -> float:
    """RMS contrast: the standard deviation of luma, sqrt(mean((Y - mean Y)^2))."""
    return plane.std(correction=0).item()


def central_crop(image: torch.Tensor, side: int = _ANALYSIS_SIDE) -> torch.Tensor:
    """The central side x side window (or less on smaller images), its origin on a 16-pixel grid."""
    height, width = image.shape[-2:]
    top = (height - min(height, side)) // 2 // _CROP_ALIGN * _CROP_ALIGN
    left = (width - min(width, side)) // 2 // _CROP_ALIGN * _CROP_ALIGN
    return image[..., top : top + side, left : left + side]


def measure_quality(image: torch.Tensor) -> tuple[QualityReport, dict[str, float]]:
    """Run every estimator on a (1, C, H, W) [0, 1] image: the report and the raw statistics behind it."""
    if image.shape[-1] < _MIN_SIDE or image.shape[-2] < _MIN_SIDE:
        raise InputError(
            f"image is {image.shape[-1]}x{image.shape[-2]} pixels; "
            f"quality analysis needs at least {_MIN_SIDE}x{_MIN_SIDE}"
        )
    image = image.detach().to(torch.float32).clamp(0.0, 1.0)
    plane = luma(image)
    # Exposure and contrast are global and cheap; the local measures run on the centre, where the
    # subject and its sharpness usually are, to keep multi-megapixel inputs under a second.
    local = central_crop(image)
    local_plane = luma(local)
    channels = local.reshape(-1, *local.shape[-3:])[0]
    # Per-channel sigma is what the degradation adds, whether the noise is grey or colour; luma
    # would read colour noise 0.67x lower than grey noise of the same sigma.
    noise = sum(noise_sigma_plane(c) for c in channels) / channels.shape[0]
    luma_noise = noise_sigma_plane(local_plane)
    prefilter = blur_prefilter_sigma(luma_noise)
    ratio = reblur_ratio(local_plane, luma_noise / 255.0, prefilter)
    block = blockiness(local_plane)
    mean_luma, shadows, highlights = exposure_stats(image, plane)
    report = QualityReport.from_values(
        noise_sigma=noise,
        blur_sigma=blur_sigma_from_ratio(ratio, prefilter),
        jpeg_quality=jpeg_quality_from_blockiness(block),
        exposure=mean_luma,
        contrast=rms_contrast(plane),
    )
    stats = {
        "luma_noise_sigma": luma_noise,
        "reblur_ratio": ratio,
        "blockiness": block,
        "clipped_shadows": shadows,
        "clipped_highlights": highlights,
    }
    return report, stats


class BuiltinCritic:
    """Critique from deterministic image statistics; fast, needs no weights."""

    name = "builtin"

    def assess(self, image: torch.Tensor) -> CriticResult:
        report, stats = measure_quality(image)
        return CriticResult(report=report, critique=critique_from_report(report), source=self.name, stats=stats)

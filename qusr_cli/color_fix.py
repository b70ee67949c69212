"""Colour correction after sampling: diffusion can drift in colour, the fidelity estimate does not.

Both methods keep the sample's detail and take colour (low frequencies or channel statistics) from a
reference, g(y) by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WAVELET_LEVELS = 5
_BINOMIAL = torch.tensor([1.0, 2.0, 1.0]) / 4.0


def _dilated_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """One à trous level: separable [1,2,1]/4 kernel with holes of size ``dilation``, replicate padding."""
    channels = image.shape[1]
    kernel = _BINOMIAL.to(image.device, image.dtype)
    horizontal = kernel.view(1, 1, 1, 3).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, 3, 1).repeat(channels, 1, 1, 1)
    out = F.conv2d(F.pad(image, (dilation, dilation, 0, 0), mode="replicate"), horizontal,
                   dilation=(1, dilation), groups=channels)
    return F.conv2d(F.pad(out, (0, 0, dilation, dilation), mode="replicate"), vertical,
                    dilation=(dilation, 1), groups=channels)


def wavelet_low_frequency(image: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """Low band of an à trous (stationary) wavelet decomposition: blur with dilations 1, 2, …, 2^(L−1)."""
    for level in range(levels):
        image = _dilated_blur(image, 2 ** level)
    return image


def wavelet_color_fix(sample: torch.Tensor, reference: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """x = (sample − low(sample)) + low(reference): detail from the sample, colour from the reference."""
    return sample - wavelet_low_frequency(sample, levels) + wavelet_low_frequency(reference, levels)


def adain_color_fix(sample: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x = (sample − μ_s)/σ_s · σ_r + μ_r per channel (adaptive instance normalisation)."""
    mu_s = sample.mean(dim=(2, 3), keepdim=True)
    sd_s = sample.std(dim=(2, 3), keepdim=True)
    mu_r = reference.mean(dim=(2, 3), keepdim=True)
    sd_r = reference.std(dim=(2, 3), keepdim=True)
    return (sample - mu_s) / (sd_s + eps) * sd_r + mu_r


COLOR_FIXES = {
    "wavelet": wavelet_color_fix,
    "adain": adain_color_fix,
    "none": lambda sample, reference: sample,
}


def apply_color_fix(method: str, sample: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    try:
        fix = COLOR_FIXES[method]
    except KeyError:
        raise ValueError(f"unknown colour fix {method!r} (choose {', '.join(COLOR_FIXES)})") from None
    return fix(sample, reference)

"""Training targets made sharper than the photos: an unsharp mask on the HR crop.

Real-ESRGAN trains its L1 and perceptual terms against unsharp-masked ground truth: an L1-trained net
predicts a blur of what the LR allows, and a sharper target moves that prediction toward crisp edges.
The mask leaves flat regions alone, so the photos' own noise and grain are not amplified into the target.
"""

from __future__ import annotations

import torch

from qusr_cli.prior.builtin_critic import gaussian_blur_images

SHARPEN_SIGMA = 2.0          # HR pixels: half an LR pixel, the scale 4x upscaling loses first
SHARPEN_THRESHOLD = 10 / 255  # residuals below this are flat regions or noise, left as they are


def unsharp_mask(hr: torch.Tensor, amount: float, sigma: float = SHARPEN_SIGMA,
                 threshold: float = SHARPEN_THRESHOLD) -> torch.Tensor:
    """x̃ = clamp(x + a·m·(x − G_σ∗x), 0, 1), with the soft mask m = G_σ ∗ 1[|x − G_σ∗x| > t] (max over RGB)."""
    detail = hr - gaussian_blur_images(hr, sigma)
    edges = (detail.abs().amax(1, keepdim=True) > threshold).to(hr.dtype)
    mask = gaussian_blur_images(edges, sigma)
    return (hr + amount * mask * detail).clamp(0.0, 1.0)

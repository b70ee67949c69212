"""The learned critic: a small CNN trained on synthetic degradations estimates noise, blur and JPEG.

It reads 64×64 crops (the LR size it was trained on) from a grid over the photo and averages the
estimates, so a large photo costs at most ``max_crops`` small forward passes. Exposure and contrast
need no learning: they are measured from the image, as the built-in critic does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qusr_cli.archs.critic_net import decode_estimates
from qusr_cli.prior.builtin_critic import exposure_stats, luma, rms_contrast
from qusr_cli.prior.critic import CriticResult
from qusr_cli.prior.report import QualityReport, critique_from_report
from qusr_cli.weights.checkpoint import load_checkpoint

CROP = 64


def default_critic_file() -> Path:
    """The default model's critic checkpoint, size and sha256 checked by the registry like every model file."""
    from qusr_cli.weights import load_registry, resolve_component

    return resolve_component(load_registry().model().component("critic"), allow_download=False)


def grid_crops(image: torch.Tensor, crop: int = CROP, per_side: int = 4) -> torch.Tensor:
    """Up to per_side² crops of crop×crop at evenly spaced positions of a (1, 3, H, W) image.

    An image smaller than one crop is returned whole: the net pools globally and accepts any size.
    """
    height, width = image.shape[-2:]
    if height < crop or width < crop:
        return image
    tops = torch.linspace(0, height - crop, min(per_side, height // crop + 1)).round().long().unique()
    lefts = torch.linspace(0, width - crop, min(per_side, width // crop + 1)).round().long().unique()
    return torch.cat([image[:, :, t:t + crop, l:l + crop] for t in tops.tolist() for l in lefts.tolist()])


def report_from_estimates(image: torch.Tensor, noise_sigma: float, blur_sigma: float,
                          jpeg_quality: float) -> QualityReport:
    """A QualityReport from estimated degradations plus exposure and contrast measured on ``image``."""
    plane = luma(image)
    mean_luma, _, _ = exposure_stats(image, plane)
    return QualityReport.from_values(noise_sigma=noise_sigma, blur_sigma=blur_sigma, jpeg_quality=jpeg_quality,
                                     exposure=mean_luma, contrast=rms_contrast(plane))


class LearnedCritic:
    """``Critic`` backed by the trained ``critic_cnn`` checkpoint."""

    name = "learned"

    def __init__(self, weights: str | Path | None = None, model: nn.Module | None = None,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model if model is not None else load_checkpoint(weights or default_critic_file(), role="critic",
                                                                     device=self.device)

    @torch.no_grad()
    def estimate(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image estimates {noise_sigma, blur_sigma, jpeg_quality, severity} for a (B, 3, h, w) batch."""
        return decode_estimates(self.model(images.to(self.device, torch.float32)).float().cpu())

    @torch.no_grad()
    def assess(self, image: torch.Tensor) -> CriticResult:
        image = image.detach().float().clamp(0, 1)
        crops = grid_crops(image[:1])
        outputs = self.model(crops.to(self.device)).float().cpu().mean(dim=0, keepdim=True)
        estimates = {k: float(v[0]) for k, v in decode_estimates(outputs).items()}
        report = report_from_estimates(image, estimates["noise_sigma"], estimates["blur_sigma"],
                                       estimates["jpeg_quality"])
        return CriticResult(report=report, critique=critique_from_report(report), source=self.name,
                            stats={"severity": estimates["severity"], "crops": float(len(crops))})

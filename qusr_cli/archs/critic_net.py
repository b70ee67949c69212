"""Learned critic: a small CNN that reads an LR photo and regresses its degradation parameters.

Noise, blur and JPEG show in the energy of fine detail, which spans orders of magnitude between a
clean and a damaged photo, while the picture's own content dominates its plain pixels. So the net
sees the image next to its high-pass residual x − box3(x), pools its conv features as mean and log
standard deviation, and its head also gets the log mean magnitude of that residual and of the
horizontal gradient per channel (without these, a plain CNN trained for the few hundred steps here
never left the mean answer). Fully convolutional before the pooling: any input of 8 px or more.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from qusr_cli.archs.contract import ArchDescriptor
from qusr_cli.weights.rules import Int, ListOf, OneOf

# What the outputs mean, in order; the training targets are scaled so each lies roughly in [0, 1].
CRITIC_TARGETS = ("log_noise", "blur", "jpeg", "severity")
HIGH_PASS_GAIN = 10.0  # residuals of a few levels would otherwise be invisible next to the image
LOG_FLOOR = 1e-4
# The target codec: what each output means in the units of QualityReport.from_values. It belongs to
# the net (training encodes labels with it, the learned critic decodes estimates with it).
NOISE_LOG_SCALE = math.log(31.0)  # ln(1 + 30): the largest first-order noise σ maps to 1
BLUR_SCALE = 2.0                  # LR pixels
JPEG_SCALE = 100.0


def high_pass(image: torch.Tensor) -> torch.Tensor:
    """r = x − box3(x): the image minus its 3×3 mean (replicate padding)."""
    return image - F.avg_pool2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def detail_energy(image: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """[ln mean|r|, ln mean|∂x image|] per channel: (B, 2C)."""
    gradient = (image[..., 1:] - image[..., :-1]).abs().mean(dim=(-2, -1))
    return torch.cat([torch.log(residual.abs().mean(dim=(-2, -1)) + LOG_FLOOR),
                      torch.log(gradient + LOG_FLOOR)], dim=1)


class CriticNet(nn.Module):
    arch_name = "critic_cnn"
    config_bounds = {"width": Int(1, 512), "in_channels": Int(1, 4),
                     "targets": ListOf(OneOf(CRITIC_TARGETS), 1, len(CRITIC_TARGETS))}

    def __init__(self, width: int = 32, in_channels: int = 3, targets: tuple[str, ...] | list[str] = CRITIC_TARGETS):
        super().__init__()
        self.config = {"width": width, "in_channels": in_channels, "targets": list(targets)}
        widths = (width, width, 2 * width, 4 * width)
        layers: list[nn.Module] = [nn.Conv2d(2 * in_channels, widths[0], 3, padding=1), nn.SiLU()]
        for previous, current in zip(widths, widths[1:]):
            layers += [nn.Conv2d(previous, current, 3, stride=2, padding=1), nn.SiLU(),
                       nn.Conv2d(current, current, 3, padding=1), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * widths[-1] + 2 * in_channels, 2 * width), nn.SiLU(),
                                  nn.Linear(2 * width, len(targets)))

    @property
    def descriptor(self) -> ArchDescriptor:
        return ArchDescriptor(scale=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, len(targets)) scaled estimates."""
        residual = high_pass(image)
        features = self.features(torch.cat([image * 2.0 - 1.0, HIGH_PASS_GAIN * residual], dim=1))
        pooled = [features.mean(dim=(-2, -1)), torch.log(features.std(dim=(-2, -1)) + 1e-3),
                  detail_energy(image, residual)]
        return self.head(torch.cat(pooled, dim=1))


def encode_targets(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """t = [ln(1 + σn)/ln 31, σb/2, q/100, severity] from the degradation parameters, (B, 4)."""
    return torch.stack([torch.log1p(params["noise_sigma"].float()) / NOISE_LOG_SCALE,
                        params["blur_sigma"].float() / BLUR_SCALE,
                        params["jpeg_quality"].float() / JPEG_SCALE,
                        params["severity"].float()], dim=1)


def decode_estimates(outputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inverse of ``encode_targets``, clamped to meaningful values: σn, σb ≥ 0, q ∈ [1, 100], s ∈ [0, 1]."""
    return {"noise_sigma": torch.expm1(outputs[:, 0].clamp_min(0) * NOISE_LOG_SCALE),
            "blur_sigma": (outputs[:, 1] * BLUR_SCALE).clamp_min(0),
            "jpeg_quality": (outputs[:, 2] * JPEG_SCALE).clamp(1, 100),
            "severity": outputs[:, 3].clamp(0, 1)}

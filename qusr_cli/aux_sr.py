"""Stage 1: the bicubic baseline up(y) and the fidelity-oriented auxiliary estimate g(y)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bicubic_upsample(lr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """up(y): bicubic upsampling (antialias off: it only matters when shrinking)."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def auxiliary_estimate(aux_net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """g(y), clamped to the valid pixel range so ψ measures disagreement, not overshoot."""
    return aux_net(lr).clamp(0.0, 1.0)

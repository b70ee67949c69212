"""Stage 2 (UPSR): where is the LR image ambiguous, and how much diffusion noise goes there."""

from __future__ import annotations

import torch

DEFAULT_FLOOR = 0.4       # b: flat regions still get 40% of the noise
DEFAULT_PSI_MAX = 0.05    # ψmax on [0,1] pixels: differences above it count as full uncertainty


def uncertainty(aux_hr: torch.Tensor, up_hr: torch.Tensor) -> torch.Tensor:
    """ψ = ½·|g(y) − up(y)|, per pixel and channel."""
    return 0.5 * (aux_hr - up_hr).abs()


def noise_weight(psi: torch.Tensor, floor: float = DEFAULT_FLOOR, psi_max: float = DEFAULT_PSI_MAX) -> torch.Tensor:
    """w = b + (1 − b)·clamp(ψ/ψmax, 0, 1)."""
    return floor + (1.0 - floor) * (psi / psi_max).clamp(0.0, 1.0)

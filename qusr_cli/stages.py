"""The pipeline stated once: stages 1–2 (up, g, ψ, w) and the stage-4 chain on one window of the image.

The engine (``upscaler.py``), training (``train/denoiser.py``) and validation (``train/validate.py``)
all call these two functions, with b and ψmax from the denoiser's header, so the maps a denoiser is
trained on are the maps it is run on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from qusr_cli.archs import Conditioning
from qusr_cli.aux_sr import auxiliary_estimate, bicubic_upsample
from qusr_cli.diffusion.sampler import NoiseSource, sample_residual_shift
from qusr_cli.diffusion.schedule import ResShiftScheduler
from qusr_cli.noise import NoiseField
from qusr_cli.uncertainty import noise_weight, uncertainty


@dataclass(frozen=True)
class StageMaps:
    """up(y), g(y), ψ and w at HR size, (B, 3, sH, sW) each, float32."""

    up: torch.Tensor
    aux: torch.Tensor
    psi: torch.Tensor
    weight: torch.Tensor

    def conditioning(self, context: torch.Tensor | None = None,
                     context_mask: torch.Tensor | None = None) -> Conditioning:
        return Conditioning(self.up, self.aux, context, context_mask)


def stage_maps(aux_net: nn.Module, lr: torch.Tensor, floor: float, psi_max: float) -> StageMaps:
    """Stages 1–2 on a (B, 3, H, W) LR batch: up(y), g(y), ψ = ½|g − up| and w(ψ; b, ψmax)."""
    up = bicubic_upsample(lr.float(), aux_net.descriptor.scale)
    aux = auxiliary_estimate(aux_net, lr).float()
    psi = uncertainty(aux, up)
    return StageMaps(up, aux, psi, noise_weight(psi, floor, psi_max))


def field_noise(fields: Sequence[NoiseField], top: int, left: int, height: int, width: int,
                device: torch.device) -> NoiseSource:
    """Draw k of each field over HR rows [top, top+height) and columns [left, left+width), one sample per field."""
    def noise_for(draw: int) -> torch.Tensor:
        return torch.cat([f.window(draw, top, left, height, width) for f in fields]).to(device)
    return noise_for


def denoise(denoiser: nn.Module, scheduler: ResShiftScheduler, maps: StageMaps, fields: Sequence[NoiseField],
            top: int = 0, left: int = 0, context: torch.Tensor | None = None,
            context_mask: torch.Tensor | None = None, noise_weighting: bool = True,
            on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """Stage 4 on one window whose HR origin is (top, left): one sample per noise field, (len(fields), 3, h, w).

    ``scheduler.set_timesteps`` must have been called. ``noise_weighting=False`` runs with w = 1 (the
    ablation without UPSR's weighting). ``on_step`` is called after each step (for progress bars).
    """
    weight = maps.weight if noise_weighting else torch.ones_like(maps.weight)
    count = len(fields)
    height, width = maps.up.shape[-2:]
    cond = maps.conditioning(context, context_mask).expand(count)
    noise = field_noise(fields, top, left, height, width, maps.up.device)
    return sample_residual_shift(denoiser, scheduler, cond, weight.expand(count, -1, -1, -1), noise, on_step)

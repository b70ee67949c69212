"""Stage 4b: the reverse residual-shift chain, x_T → … → x̂0, with noise scaled by w."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from qusr_cli.archs.contract import Conditioning
from qusr_cli.diffusion.schedule import ResShiftScheduler

# noise_for(draw) -> standard normal noise shaped like the HR image, on the caller's device
NoiseSource = Callable[[int], torch.Tensor]


def sample_residual_shift(denoiser: nn.Module, scheduler: ResShiftScheduler, cond: Conditioning,
                          weight: torch.Tensor, noise_for: NoiseSource,
                          on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """Run ``scheduler.num_steps`` denoiser calls. Draw 0 is the prior's noise, draw k the k-th step's.

    ``on_step`` is called after each step (for progress bars)."""
    x_t = scheduler.prior(cond.up, weight, noise_for(0))
    for draw, index in enumerate(scheduler.timesteps, start=1):
        tau = torch.full((x_t.shape[0],), scheduler.tau_at(index), device=x_t.device, dtype=torch.float32)
        output = denoiser(x_t, tau, cond)
        x0_pred = scheduler.predict_x0(output, float(scheduler.etas[index]), x_t, cond.up, cond.aux, weight)
        noise = noise_for(draw) if index > 0 else None
        x_t = scheduler.step(x0_pred, index, x_t, weight, noise)
        if on_step is not None:
            on_step()
    return x_t

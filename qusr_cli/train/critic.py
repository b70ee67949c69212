"""Training the learned critic: regress the degradation labels of ``degrade`` from the LR image alone.

Targets are scaled to about [0, 1] by ``archs.critic_net.encode_targets`` so one L1 weighs them alike.
Validation reports the mean absolute error per label, in the labels' own units, on a fixed set of
degraded crops of photos the critic never trains on, next to the error of always answering the
held-out mean (what the net must beat to be informative).
"""

from __future__ import annotations

import random

import torch
from torch import nn

from qusr_cli.archs.critic_net import CRITIC_TARGETS, CriticNet, decode_estimates, encode_targets


def held_out_images(count: int, every: int = 12, offset: int = 5) -> list[int]:
    """Indices offset, offset + every, … below ``count``: spread over the folder, not just its tail."""
    return list(range(offset, count, every))


def per_label_mae(estimates: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> dict[str, float]:
    """MAE_k = mean |estimate_k − truth_k| for each label, in its own unit."""
    return {name: float((estimates[name] - params[name].to(estimates[name])).abs().mean()) for name in estimates}


class CriticTask:
    role = "critic"

    def __init__(self, width: int = 32, held_out: dict | None = None):
        self.model = CriticNet(width=width, targets=CRITIC_TARGETS)
        self.held_out = held_out

    def loss(self, model: nn.Module, batch: dict, rng: random.Random) -> tuple[torch.Tensor, dict[str, float]]:
        prediction = model(batch["lr"]).float()
        errors = (prediction - encode_targets(batch["params"])).abs().mean(dim=0)
        return errors.mean(), {f"l1_{name}": float(e.detach()) for name, e in zip(CRITIC_TARGETS, errors)}

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        if self.held_out is None:
            return {}
        device = next(model.parameters()).device
        estimates = decode_estimates(model(self.held_out["lr"].to(device)).float().cpu())
        truth = {name: self.held_out["params"][name].float() for name in estimates}
        ours = per_label_mae(estimates, truth)
        baseline = per_label_mae({k: v.mean().expand_as(v) for k, v in truth.items()}, truth)
        return {**{f"mae_{k}": v for k, v in ours.items()}, **{f"mean_guess_mae_{k}": v for k, v in baseline.items()}}

    def header(self) -> dict:
        return {}

    def info(self) -> dict:
        return {"loss": "L1 on scaled targets " + ", ".join(CRITIC_TARGETS),
                "params": sum(p.numel() for p in self.model.parameters()),
                "held_out_samples": 0 if self.held_out is None else len(self.held_out["lr"])}

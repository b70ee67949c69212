"""Perceptual terms that need no downloaded weights: a fixed, seeded, randomly initialised CNN.

No pretrained VGG or LPIPS backbone can be fetched where qusr trains, but a deep net with random
weights already responds to local structure (edges, texture, their arrangement), and matching its
features or their Gram statistics has been shown to work as a perceptual loss for super-resolution.

The network is built exactly like this, so a seed gives the same network on every machine:

- input: RGB in [0, 1], normalised as (x − 0.5) / 0.25;
- stages of widths ``widths`` (default 32, 64, 128); each stage is two 3x3 convolutions with
  reflection padding, each followed by ReLU; a 2x2 average pool sits between stages;
- the features of a stage are its output before the pool;
- weights are drawn in module order (stage by stage, first conv then second) from one
  ``torch.Generator().manual_seed(seed)`` on the CPU as ``randn(out, in, 3, 3) · √(2 / (9·in))`` (He
  normal), in float32; every bias is zero; nothing is ever trained.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTHS = (32, 64, 128)
DEFAULT_SEED = 20240611


class RandomFeatures(nn.Module):
    """φ_l(x) for l = 1 … len(widths): the fixed random CNN described in the module docstring."""

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS, seed: int = DEFAULT_SEED):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        weights = []
        channels = 3
        for width in widths:
            for fan_in in (channels, width):
                scale = math.sqrt(2.0 / (9 * fan_in))
                weights.append(nn.Parameter(torch.randn(width, fan_in, 3, 3, generator=generator) * scale,
                                            requires_grad=False))
            channels = width
        self.weights = nn.ParameterList(weights)
        self.widths = tuple(widths)
        self.seed = seed

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - 0.5) / 0.25
        features = []
        for stage in range(len(self.widths)):
            if stage:
                x = F.avg_pool2d(x, 2)
            for weight in self.weights[2 * stage:2 * stage + 2]:
                x = F.relu(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight.to(x.dtype)))
            features.append(x)
        return features


def gram(features: torch.Tensor) -> torch.Tensor:
    """G = φ φᵀ / (C·H·W) per image, φ reshaped to (C, H·W)."""
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def random_feature_loss(network: RandomFeatures, prediction: torch.Tensor, target: torch.Tensor,
                        gram_weight: float = 1.0) -> torch.Tensor:
    """L_rf = Σ_l [ mean|φ_l(x̂) − φ_l(x)| + γ·mean|G(φ_l(x̂)) − G(φ_l(x))| ] / mean|φ_l(x)|.

    Dividing by the target's mean activation (no gradient) gives every depth the same weight,
    whatever the scale of its random features.
    """
    total = prediction.new_zeros((), dtype=torch.float32)
    for ours, theirs in zip(network(prediction.float()), network(target.float()), strict=True):
        theirs = theirs.detach()
        scale = theirs.abs().mean().clamp_min(1e-6)
        term = (ours - theirs).abs().mean()
        if gram_weight:
            term = term + gram_weight * (gram(ours) - gram(theirs)).abs().mean() / scale
        total = total + term / scale
    return total

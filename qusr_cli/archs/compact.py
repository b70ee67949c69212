"""Compact fidelity SR net g: a plain stack of 3x3 convs at LR size, PixelShuffle(4) at the end.

All work happens at the input's resolution, so it is the cheapest 4x net that still learns
edges; the output is a residual over nearest-neighbour upsampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CompactSR(nn.Module):
    arch_name = "compact"

    def __init__(self, num_feat: int = 32, num_conv: int = 8, scale: int = 4, in_channels: int = 3):
        super().__init__()
        self.config = {"num_feat": num_feat, "num_conv": num_conv, "scale": scale, "in_channels": in_channels}
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, in_channels * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.upsample = nn.PixelShuffle(scale)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=self.scale, mode="nearest")
        return base + self.upsample(self.body(lr))

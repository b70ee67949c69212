"""Compact fidelity SR net g: a plain stack of 3x3 convs at LR size, PixelShuffle(4) at the end.

All work happens at the input's resolution, so it is the cheapest 4x net that still learns
edges; the output is a residual over an interpolation of the input. Real-ESRGAN's compact nets add
nearest-neighbour upsampling (the default, so their weights load as they are); qusr trains with
``upsample="bicubic"`` and a zero-initialised last conv, so an untrained g already equals bicubic
and training only has to learn the correction, which matters when training time is short.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qusr_cli.archs.contract import ArchDescriptor
from qusr_cli.weights.rules import Int, OneOf


class CompactSR(nn.Module):
    arch_name = "compact"
    config_bounds = {"num_feat": Int(1, 256), "num_conv": Int(1, 64), "scale": Int(1, 8),
                     "in_channels": Int(1, 4), "upsample": OneOf(("nearest", "bicubic"))}

    def __init__(self, num_feat: int = 32, num_conv: int = 8, scale: int = 4, in_channels: int = 3,
                 upsample: str = "nearest"):
        super().__init__()
        if upsample not in ("nearest", "bicubic"):
            raise ValueError(f"upsample must be nearest or bicubic, not {upsample!r}")
        self.config = {"num_feat": num_feat, "num_conv": num_conv, "scale": scale, "in_channels": in_channels,
                       "upsample": upsample}
        self.scale = scale
        self.upsample_mode = upsample
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, in_channels * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.upsample = nn.PixelShuffle(scale)
        # With PyTorch's default conv init the features of a fresh 32x8 stack fall from std 0.22 after
        # the first layer to about 0.03 from the third on (inputs in [0, 1]): the input barely reaches the
        # last conv. He init for PReLU's starting slope keeps it alive.
        for layer in self.body[:-1]:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, a=0.25)
                nn.init.zeros_(layer.bias)
        if upsample == "bicubic":
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    @property
    def descriptor(self) -> ArchDescriptor:
        # about four feature maps alive at once (VmHWM growth on the CPU, 64 channels: 1.07–1.15 KB per
        # LR pixel at 128² and 256²), plus the upsampled base and output
        return ArchDescriptor(scale=self.scale, bytes_per_lr_pixel=16 * self.config["num_feat"] + 400)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=self.scale, mode=self.upsample_mode)
        return base + self.upsample(self.body(lr))

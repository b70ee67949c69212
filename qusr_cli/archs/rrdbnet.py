"""RRDBNet (ESRGAN's generator) with the parameter names of Real-ESRGAN's implementation.

Keeping those names means the public Real-ESRGAN x4plus weights, once converted to safetensors,
load with a plain ``load_state_dict``: conv_first, body.N.rdb{1,2,3}.conv{1..5}, conv_body,
conv_up1, conv_up2, conv_hr, conv_last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qusr_cli.archs.contract import ArchDescriptor
from qusr_cli.weights.rules import Int

RESIDUAL_SCALE = 0.2  # ESRGAN scales every dense-block residual by 0.2 to keep deep stacks stable


class DenseBlock(nn.Module):
    """Five densely connected 3x3 convs; each sees the block input and all earlier outputs."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), 0.2))
        return x + RESIDUAL_SCALE * self.conv5(torch.cat(features, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside one scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.rdb1 = DenseBlock(num_feat, num_grow_ch)
        self.rdb2 = DenseBlock(num_feat, num_grow_ch)
        self.rdb3 = DenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    arch_name = "rrdbnet"
    config_bounds = {"num_feat": Int(1, 256), "num_block": Int(1, 64), "num_grow_ch": Int(1, 256),
                     "scale": Int(1, 8), "in_channels": Int(1, 4)}

    def __init__(self, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32, scale: int = 4,
                 in_channels: int = 3):
        super().__init__()
        if scale != 4:
            raise ValueError("RRDBNet here is the 4x variant only")
        self.config = {"num_feat": num_feat, "num_block": num_block, "num_grow_ch": num_grow_ch,
                       "scale": scale, "in_channels": in_channels}
        self.conv_first = nn.Conv2d(in_channels, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, in_channels, 3, 1, 1)

    @property
    def descriptor(self) -> ArchDescriptor:
        # the HR tail dominates: 64-channel maps at 16 HR pixels per LR pixel (VmHWM growth on the CPU,
        # x4plus at 128²: 12.9 KB per LR pixel)
        return ArchDescriptor(scale=self.config["scale"], bytes_per_lr_pixel=200 * self.config["num_feat"])

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(lr)
        feat = feat + self.conv_body(self.body(feat))
        for conv_up in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv_up(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

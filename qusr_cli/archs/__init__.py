"""Every network qusr can build, registered in this one place by the name its checkpoints carry.

Adding an architecture: one file in this folder (a ``nn.Module`` with ``arch_name``, ``config``, its
``config_bounds`` and ``descriptor``; a denoiser also takes ``context_dim`` and ``residual_base`` and is called as
``net(x_t, tau, cond)``), plus one ``REGISTRY.register`` line below.
"""

from __future__ import annotations

from torch import nn

from qusr_cli.archs.compact import CompactSR
from qusr_cli.archs.contract import ArchDescriptor, ArchRegistry, Conditioning
from qusr_cli.archs.critic_net import CriticNet
from qusr_cli.archs.rrdbnet import RRDBNet
from qusr_cli.archs.unet import DenoiserUNet

__all__ = ["REGISTRY", "ArchDescriptor", "Conditioning", "CompactSR", "CriticNet", "DenoiserUNet", "RRDBNet",
           "build_architecture"]

REGISTRY = ArchRegistry()
REGISTRY.register(CompactSR, role="aux")
REGISTRY.register(RRDBNet, role="aux")
REGISTRY.register(DenoiserUNet, role="denoiser")
REGISTRY.register(CriticNet, role="critic")


def build_architecture(name: str, config: dict) -> nn.Module:
    return REGISTRY.build(name, config)

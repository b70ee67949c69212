"""Architecture registry: one file per architecture, looked up by the name stored in a checkpoint."""

from __future__ import annotations

from torch import nn

from qusr_cli.archs.compact import CompactSR
from qusr_cli.archs.rrdbnet import RRDBNet
from qusr_cli.archs.unet import DenoiserUNet

__all__ = ["ARCHITECTURES", "CompactSR", "DenoiserUNet", "RRDBNet", "build_architecture", "register_architecture"]

ARCHITECTURES: dict[str, type[nn.Module]] = {
    cls.arch_name: cls for cls in (CompactSR, RRDBNet, DenoiserUNet)
}


def register_architecture(cls: type[nn.Module]) -> type[nn.Module]:
    """Add an architecture (usable as a class decorator); its ``arch_name`` is the checkpoint key."""
    ARCHITECTURES[cls.arch_name] = cls
    return cls


def build_architecture(name: str, config: dict) -> nn.Module:
    try:
        cls = ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {name!r} (known: {known})") from None
    return cls(**config)
from qusr_cli.archs import critic_net  # noqa: E402,F401  (registers itself; needs register_architecture above)

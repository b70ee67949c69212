"""What a network promises its callers, and the one registry that maps checkpoint names to networks.

As in spandrel, callers ask a net's ``descriptor`` (scale, size multiple, prior-token width, dtypes)
instead of assuming; a checkpoint names its architecture, and ``REGISTRY`` builds it from that name.
Registering a name twice is an error, so a second file cannot silently replace a network.

A denoiser is called as ``denoiser(x_t, tau, cond)``: ``cond`` is a :class:`Conditioning`, one named
bundle, so a new architecture reads what it needs by name and ignores the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from qusr_cli.weights.format import ROLES

ALL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class ArchDescriptor:
    """scale: output side / input side (1 for nets that read an image and return numbers);
    size_multiple: input sides must be multiples of it (callers pad, see ``tiling.pad_to_multiple``);
    context_dim: width of the prior tokens a denoiser cross-attends to (None: it reads no tokens);
    dtypes: the compute dtypes the net has been run in and gives usable output;
    bytes_per_lr_pixel: peak working memory of one fp32 inference call per LR pixel of the image (the
    engine sizes its tiles from it; 0: not measured, for nets the engine does not tile)."""

    scale: int
    size_multiple: int = 1
    context_dim: int | None = None
    dtypes: tuple[torch.dtype, ...] = ALL_DTYPES
    bytes_per_lr_pixel: int = 0


@dataclass(frozen=True)
class Conditioning:
    """What a denoiser sees besides x_τ and τ: up(y) and g(y) at HR size, prior tokens (B, L, D) and their
    mask (B, L), True where a token is real; no tokens means the null prior."""

    up: torch.Tensor
    aux: torch.Tensor
    context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None

    def expand(self, batch: int) -> Conditioning:
        """The same conditioning for ``batch`` samples (one image, several candidates)."""
        return replace(self, up=self.up.expand(batch, -1, -1, -1), aux=self.aux.expand(batch, -1, -1, -1))


def add_residual_base(output: torch.Tensor, cond: Conditioning, residual_base: str) -> torch.Tensor:
    """x̂0 = output + base, base = g(y) ("aux"), up(y) ("up") or 0 ("none": the scheduler adds its own)."""
    if residual_base == "aux":
        return cond.aux + output
    if residual_base == "up":
        return cond.up + output
    return output


RESIDUAL_BASES = ("aux", "up", "none")


@dataclass(frozen=True)
class ArchEntry:
    name: str
    role: str
    cls: type[nn.Module]


class ArchRegistry:
    """Architectures by checkpoint name, each with the role it plays in the pipeline."""

    def __init__(self) -> None:
        self._entries: dict[str, ArchEntry] = {}

    def register(self, cls: type[nn.Module], *, role: str) -> type[nn.Module]:
        """Add ``cls`` under its ``arch_name``. It must state ``config_bounds``: for each constructor
        argument a header may set, a rule of ``weights.rules`` (checked before the net is built)."""
        name = cls.arch_name
        if role not in ROLES:
            raise ValueError(f"architecture {name!r}: role must be one of {', '.join(ROLES)}, not {role!r}")
        if not isinstance(getattr(cls, "config_bounds", None), dict):
            raise ValueError(f"architecture {name!r} states no config_bounds: a hostile header could size it freely")
        if name in self._entries:
            raise ValueError(f"architecture {name!r} is already registered (by {self._entries[name].cls.__module__})")
        self._entries[name] = ArchEntry(name, role, cls)
        return cls

    def names(self, role: str | None = None) -> list[str]:
        return sorted(name for name, entry in self._entries.items() if role is None or entry.role == role)

    def entry(self, name: str, role: str | None = None) -> ArchEntry:
        entry = self._entries.get(name)
        if entry is None or (role is not None and entry.role != role):
            kind = f"{role} " if role else ""
            raise KeyError(f"unknown {kind}architecture {name!r} (known: {', '.join(self.names(role))})")
        return entry

    def build(self, name: str, config: dict) -> nn.Module:
        return self.entry(name).cls(**config)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

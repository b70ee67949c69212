"""A loaded model: the aux net g, the denoiser, an optional learned critic, and their settings.

Settings that belong to how the denoiser was trained (schedule, noise-weight floor b and ψmax, the
text encoder) are read from the denoiser checkpoint's header, so a file alone says how to run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qusr_cli.archs import ArchDescriptor
from qusr_cli.errors import WeightsError
from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint
from qusr_cli.weights.header import DiffusionSettings, is_placeholder

__all__ = ["DiffusionSettings", "ModelBundle", "load_bundle"]


@dataclass
class ModelBundle:
    name: str
    aux: nn.Module
    denoiser: nn.Module | None    # None: a plain SR model, whose output is g(y)
    settings: DiffusionSettings
    critic_path: Path | None = None
    placeholder: bool = False

    @property
    def descriptor(self) -> ArchDescriptor:
        """The denoiser's (scale, size multiple, dtypes); a plain SR model's come from its aux net."""
        return (self.denoiser or self.aux).descriptor

    def to(self, device: torch.device) -> "ModelBundle":
        self.aux.to(device)
        if self.denoiser is not None:
            self.denoiser.to(device)
        return self


def load_bundle(name: str, files: dict[str, Path]) -> ModelBundle:
    """Load from resolved, verified component files: ``aux`` required, ``denoiser`` and ``critic`` optional."""
    aux = load_checkpoint(files["aux"], role="aux")
    denoiser = load_checkpoint(files["denoiser"], role="denoiser") if "denoiser" in files else None
    infos = [checkpoint_info(files[role]) for role in ("aux", "denoiser") if role in files]
    if denoiser is not None and aux.descriptor.scale != denoiser.descriptor.scale:
        raise WeightsError(f"model {name}: its aux net upscales {aux.descriptor.scale}x but its denoiser "
                           f"{denoiser.descriptor.scale}x")
    return ModelBundle(
        name=name, aux=aux, denoiser=denoiser,
        settings=DiffusionSettings.from_info(infos[1]) if denoiser is not None else DiffusionSettings(),
        critic_path=files.get("critic"),
        placeholder=any(is_placeholder(info) for info in infos),
    )

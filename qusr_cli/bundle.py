"""A loaded model: the aux net g, the denoiser, an optional learned critic, and their settings.

Settings that belong to how the denoiser was trained (schedule, noise-weight floor b and ψmax, the
text encoder) are read from the denoiser checkpoint's header, so a file alone says how to run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from qusr_cli.diffusion.schedule import ResShiftScheduler
from qusr_cli.uncertainty import DEFAULT_FLOOR, DEFAULT_PSI_MAX
from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint


@dataclass
class DiffusionSettings:
    schedule: dict = field(default_factory=dict)  # ResShiftScheduler fields; missing ones keep defaults
    floor: float = DEFAULT_FLOOR
    psi_max: float = DEFAULT_PSI_MAX
    text_encoder: str = "minilm"

    @classmethod
    def from_info(cls, info: dict) -> "DiffusionSettings":
        """Training writes the schedule under "scheduler"; "diffusion" may add b, ψmax and the encoder."""
        extra = info.get("diffusion", {})
        return cls(schedule=dict(info.get("scheduler", {})),
                   **{k: extra[k] for k in ("floor", "psi_max", "text_encoder") if k in extra})

    def scheduler(self) -> ResShiftScheduler:
        return ResShiftScheduler.from_config(self.schedule)


@dataclass
class ModelBundle:
    name: str
    aux: nn.Module
    denoiser: nn.Module | None    # None: a plain SR model, whose output is g(y)
    settings: DiffusionSettings
    critic_path: Path | None = None
    placeholder: bool = False

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
    return ModelBundle(
        name=name, aux=aux, denoiser=denoiser,
        settings=DiffusionSettings.from_info(infos[1]) if denoiser is not None else DiffusionSettings(),
        critic_path=files.get("critic"),
        placeholder=any(info.get("placeholder", False) for info in infos),
    )

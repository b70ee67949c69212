"""Safetensors checkpoints that describe themselves: the header names architecture, role and config.

Only safetensors are ever read (no pickle), so loading an untrusted file cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from qusr_cli.archs import build_architecture
from qusr_cli.errors import WeightsError, first_line
from qusr_cli.weights.format import ARCH_KEY, CONFIG_KEY, INFO_KEY, ROLE_KEY, ROLES, checkpoint_info, read_metadata

__all__ = ["checkpoint_info", "load_checkpoint", "read_metadata", "save_checkpoint"]


def save_checkpoint(path: str | Path, model: nn.Module, *, role: str, info: dict | None = None,
                    dtype: torch.dtype = torch.float32) -> Path:
    """Write ``model``'s weights (as ``dtype``) with arch, role, config and ``info`` in the header."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    metadata = {ARCH_KEY: model.arch_name, ROLE_KEY: role, CONFIG_KEY: json.dumps(model.config),
                INFO_KEY: json.dumps(info or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, *, role: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Build the architecture named in the header and load its weights in fp32, in eval mode."""
    path = Path(path)
    metadata = read_metadata(path)
    if role is not None and metadata[ROLE_KEY] != role:
        raise WeightsError(f"{path}: is a {metadata[ROLE_KEY]} checkpoint, expected {role}")
    try:
        model = build_architecture(metadata[ARCH_KEY], json.loads(metadata[CONFIG_KEY]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot build its architecture ({first_line(exc)})") from None
    try:
        with safe_open(str(path), framework="pt") as handle:
            state = {k: handle.get_tensor(k) for k in handle.keys()}
        expected = model.state_dict()
        state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise WeightsError(f"{path}: weights do not match its architecture ({first_line(exc)})") from None
    return model.to(device).eval()

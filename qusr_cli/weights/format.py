"""The qusr checkpoint format: a safetensors file whose header names its architecture, role and config.

A leaf module (no torch, no other qusr weights module), so the registry, the Hub code and the
checkpoint loader can all read it without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from qusr_cli.errors import WeightsError, first_line

ROLES = ("aux", "denoiser", "critic")
ARCH_KEY = "qusr.arch"
ROLE_KEY = "qusr.role"
CONFIG_KEY = "qusr.config"
INFO_KEY = "qusr.info"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header's metadata; raises WeightsError for a file that is not a qusr safetensors checkpoint."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None
    missing = [k for k in (ARCH_KEY, ROLE_KEY, CONFIG_KEY) if k not in metadata]
    if missing:
        raise WeightsError(f"{path}: safetensors header lacks {', '.join(missing)}; not a qusr checkpoint")
    return metadata


def checkpoint_info(path: str | Path) -> dict:
    """The ``info`` dict of the header (training record, diffusion settings, placeholder flag, ...)."""
    try:
        info = json.loads(read_metadata(path).get(INFO_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: {INFO_KEY} is not JSON ({exc.msg})") from None
    if not isinstance(info, dict):
        raise WeightsError(f"{path}: {INFO_KEY} must be a JSON object")
    return info

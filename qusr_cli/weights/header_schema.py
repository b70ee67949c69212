"""What a checkpoint header may say, checked before anything is built from it.

A file can pass its sha256 check and still carry a header that is not JSON, has a string where a
number belongs, or asks for an architecture so large that building it exhausts memory before any
weight is read. ``validate_header`` checks every section against its rules and returns the parsed
sections, or raises WeightsError naming the first problem. Each architecture states the bounds of
its own config (``config_bounds``, required by ``archs.REGISTRY``).

The size bounds are generous (several times the largest published model of each family) but finite:
they are what keeps a hostile header from allocating gigabytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from qusr_cli.archs import REGISTRY
from qusr_cli.errors import WeightsError
from qusr_cli.weights.format import ROLES
from qusr_cli.weights.header import DiffusionSettings
from qusr_cli.weights.rules import check_fields


@dataclass(frozen=True)
class ValidHeader:
    arch: str
    role: str
    config: dict
    info: dict


def _json_object(metadata: dict[str, str], key: str, required: bool) -> dict:
    if key not in metadata:
        if required:
            raise WeightsError(f"header lacks {key}; not a qusr checkpoint")
        return {}
    try:
        value = json.loads(metadata[key])
    except (TypeError, ValueError):
        raise WeightsError(f"header {key} is not valid JSON") from None
    if not isinstance(value, dict):
        raise WeightsError(f"header {key} must be a JSON object, not {type(value).__name__}")
    return value


def validate_header(metadata: dict[str, str]) -> ValidHeader:
    """Every section of a qusr header checked: role known, config within its architecture's bounds, the
    info's sections the engine reads within theirs. (The typed classes of ``weights.header`` then read
    the info; the architecture registry refuses names it does not know.)"""
    for key in ("qusr.arch", "qusr.role"):
        if key not in metadata:
            raise WeightsError(f"header lacks {key}; not a qusr checkpoint")
    arch, role = metadata["qusr.arch"], metadata["qusr.role"]
    if role not in ROLES:
        raise WeightsError(f"header names unknown role {role!r} (known: {', '.join(ROLES)})")
    config = _json_object(metadata, "qusr.config", required=True)
    if arch in REGISTRY:  # a name the registry does not know is refused when it is asked to build it
        check_fields("qusr.config", config, REGISTRY.entry(arch).cls.config_bounds)
    info = _json_object(metadata, "qusr.info", required=False)
    DiffusionSettings.from_info(info)  # the sections the engine samples by, checked by their owner
    return ValidHeader(arch, role, config, info)

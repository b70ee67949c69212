"""What a checkpoint header may say, checked before anything is built from it.

A file can pass its sha256 check and still carry a header that is not JSON, has a string where a
number belongs, or asks for an architecture so large that building it exhausts memory before any
weight is read. ``validate_header`` checks every section against the schema below and returns the
parsed sections, or raises WeightsError naming the first problem.

The size bounds are generous (several times the largest published model of each family) but finite:
they are what keeps a hostile header from allocating gigabytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from numbers import Real

from qusr_cli.errors import WeightsError
from qusr_cli.weights.format import ROLES


@dataclass(frozen=True)
class Int:
    low: int
    high: int

    def check(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, not {type(value).__name__}"
        if not self.low <= value <= self.high:
            return f"must be between {self.low} and {self.high}, not {value}"
        return None


@dataclass(frozen=True)
class Number:
    low: float
    high: float

    def check(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, Real):
            return f"must be a number, not {type(value).__name__}"
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return f"must be between {self.low:g} and {self.high:g}, not {value}"
        return None


@dataclass(frozen=True)
class OneOf:
    choices: tuple

    def check(self, value) -> str | None:
        if isinstance(value, bool) or value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, not {value!r}"
        return None


@dataclass(frozen=True)
class ListOf:
    item: Int | OneOf
    min_length: int
    max_length: int

    def check(self, value) -> str | None:
        if not isinstance(value, list) or not self.min_length <= len(value) <= self.max_length:
            return f"must be a list of {self.min_length} to {self.max_length} items"
        return next((f"item {k} {problem}" for k, v in enumerate(value)
                     if (problem := self.item.check(v)) is not None), None)


@dataclass(frozen=True)
class Text:
    max_length: int = 200

    def check(self, value) -> str | None:
        if not isinstance(value, str) or len(value) > self.max_length:
            return f"must be a string of at most {self.max_length} characters"
        return None


#: Constructor arguments each shipped architecture accepts, with their bounds. An architecture
#: registered elsewhere (``archs.REGISTRY``) without an entry here is built with no size bounds: give
#: it one. A name known to neither is refused when the registry is asked to build it.
ARCHITECTURE_CONFIGS: dict[str, dict] = {
    "compact": {"num_feat": Int(1, 256), "num_conv": Int(1, 64), "scale": Int(1, 8),
                "in_channels": Int(1, 4), "upsample": OneOf(("nearest", "bicubic"))},
    "rrdbnet": {"num_feat": Int(1, 256), "num_block": Int(1, 64), "num_grow_ch": Int(1, 256),
                "scale": Int(1, 8), "in_channels": Int(1, 4)},
    "unet": {"base_width": Int(4, 512), "channel_mult": ListOf(Int(1, 16), 1, 6), "num_res_blocks": Int(1, 8),
             "attention_heads": Int(1, 64), "context_dim": Int(1, 4096), "scale": Int(1, 8),
             "residual_base": OneOf(("aux", "up", "none"))},
    "critic_cnn": {"width": Int(1, 512), "in_channels": Int(1, 4),
                   "targets": ListOf(OneOf(("log_noise", "blur", "jpeg", "severity")), 1, 4)},
}

#: The parts of the ``info`` section the engine reads (the rest is a free-form training record).
SCHEDULER_FIELDS = {"kappa": Number(1e-3, 100.0), "etas_end": Number(1e-6, 1.0), "min_noise_level": Number(1e-6, 1.0),
                    "power": Number(1e-3, 10.0), "prediction_type": OneOf(("sample", "blend")),
                    "aux_error": Number(0.0, 10.0), "noise_scale": Number(0.0, 10.0),
                    "last_noise_scale": Number(0.0, 10.0)}
DIFFUSION_FIELDS = {"floor": Number(0.0, 1.0), "psi_max": Number(1e-6, 1.0), "text_encoder": Text()}


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


def _check_fields(section: str, values, schema: dict, *, allow_unknown: bool = False) -> None:
    if not isinstance(values, dict):
        raise WeightsError(f"header {section} must be a JSON object, not {type(values).__name__}")
    for key, value in values.items():
        rule = schema.get(key)
        if rule is None:
            if allow_unknown:
                continue
            raise WeightsError(f"header {section}: unknown field {key!r} (known: {', '.join(schema)})")
        problem = rule.check(value)
        if problem is not None:
            raise WeightsError(f"header {section}.{key} {problem}")


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
    if arch in ARCHITECTURE_CONFIGS:
        _check_fields("qusr.config", config, ARCHITECTURE_CONFIGS[arch])
    info = _json_object(metadata, "qusr.info", required=False)
    _check_fields("qusr.info.scheduler", info.get("scheduler", {}), SCHEDULER_FIELDS, allow_unknown=True)
    _check_fields("qusr.info.diffusion", info.get("diffusion", {}), DIFFUSION_FIELDS, allow_unknown=True)
    return ValidHeader(arch, role, config, info)

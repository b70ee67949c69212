"""The sections of a checkpoint's ``info`` header, each one typed class that writes and reads it.

Training builds these objects and writes ``to_info()``; loading reads them back with ``from_info()``,
which raises WeightsError naming the entry for a value of the wrong type. No other code assembles
or picks apart header dicts.

    DiffusionSettings  "scheduler", "diffusion"   how the denoiser samples (the engine reads it)
    TrainingData       "data", "crop", ...        which photos and degradations it was trained on
    TrainingRun        "task", "loop", ...        the loop's record: steps, time, hardware, validation
    DenoiserSources    "aux", "critic", ...       which frozen nets a denoiser was trained against
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qusr_cli.errors import WeightsError
from qusr_cli.weights.rules import Number, OneOf, Text, check_fields
from qusr_cli.uncertainty import DEFAULT_FLOOR, DEFAULT_PSI_MAX

DEFAULT_TEXT_ENCODER = "minilm"

_NUMBER = (int, float)


def _typed(section: dict, key: str, kinds: type | tuple[type, ...], where: str) -> Any:
    """``section[key]`` if it has one of ``kinds`` (a bool is no number here), else WeightsError."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    value = section[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise WeightsError(f"checkpoint header: {where}.{key} must be {names}, not {value!r}")
    return value


def _table(info: dict, key: str) -> dict:
    value = info.get(key, {})
    if not isinstance(value, dict):
        raise WeightsError(f"checkpoint header: {key} must be a table, not {value!r}")
    return value


#: The parts of the ``info`` section the engine samples by, with their bounds (the rest is a free-form
#: training record).
SCHEDULER_FIELDS = {"kappa": Number(1e-3, 100.0), "etas_end": Number(1e-6, 1.0), "min_noise_level": Number(1e-6, 1.0),
                    "power": Number(1e-3, 10.0), "prediction_type": OneOf(("sample", "blend")),
                    "aux_error": Number(0.0, 10.0), "noise_scale": Number(0.0, 10.0),
                    "last_noise_scale": Number(0.0, 10.0)}
DIFFUSION_FIELDS = {"floor": Number(0.0, 1.0), "psi_max": Number(1e-6, 1.0), "text_encoder": Text()}



@dataclass(frozen=True)
class DiffusionSettings:
    """How to sample with a denoiser: its scheduler config, the noise-weight floor b and ψmax, the text encoder.

    ``schedule`` holds ``ResShiftScheduler`` fields; missing ones keep the scheduler's defaults, so
    headers written before a field existed still load.
    """

    schedule: dict = field(default_factory=dict)
    floor: float = DEFAULT_FLOOR
    psi_max: float = DEFAULT_PSI_MAX
    text_encoder: str = DEFAULT_TEXT_ENCODER

    @classmethod
    def from_info(cls, info: dict) -> DiffusionSettings:
        """The ``scheduler`` and ``diffusion`` sections, every field within its bounds (WeightsError if not)."""
        schedule = _table(info, "scheduler")
        check_fields("scheduler", schedule, SCHEDULER_FIELDS, allow_unknown=True)
        extra = _table(info, "diffusion")
        check_fields("diffusion", extra, DIFFUSION_FIELDS, allow_unknown=True)
        return cls(schedule=dict(schedule), **{key: extra[key] for key in DIFFUSION_FIELDS if key in extra})

    def to_info(self, *, text: bool = True) -> dict:
        """``text=False``: a denoiser trained without text priors names no encoder."""
        diffusion = {"floor": self.floor, "psi_max": self.psi_max}
        if text:
            diffusion["text_encoder"] = self.text_encoder
        return {"scheduler": dict(self.schedule), "diffusion": diffusion}

    def scheduler(self):
        from qusr_cli.diffusion.schedule import ResShiftScheduler

        return ResShiftScheduler.from_config(self.schedule)


@dataclass(frozen=True)
class TrainingData:
    """``data`` is what the run was told (a path relative to the repository, or a set name), never resolved
    to this machine's absolute path."""

    data: str
    crop: int
    images: int
    hr_scales: list[float] = field(default_factory=lambda: [1.0])
    min_detail: float = 0.0
    degradation: dict = field(default_factory=dict)
    light_share: float = 0.0
    light_degradation: dict | None = None
    teacher_cache: dict | None = None  # the cache's manifest (teacher, seed, shard size) when crops came from one
    procedural_share: float = 0.0
    procedural: dict | None = None  # the procedural source (dead leaves) when procedural_share > 0

    def to_info(self) -> dict:
        info = asdict(self)
        for key, used in (("light_degradation", self.light_share), ("teacher_cache", self.teacher_cache),
                          ("procedural_share", self.procedural_share), ("procedural", self.procedural_share)):
            if not used:
                del info[key]
        return info

    @classmethod
    def from_info(cls, info: dict) -> TrainingData:
        kinds = {"data": str, "crop": int, "images": int, "hr_scales": list, "min_detail": _NUMBER,
                 "degradation": dict, "light_share": _NUMBER, "light_degradation": dict, "teacher_cache": dict,
                 "procedural_share": _NUMBER, "procedural": dict}
        return cls(**{key: _typed(info, key, kind, "info") for key, kind in kinds.items() if key in info})


@dataclass(frozen=True)
class TrainingRun:
    task: dict
    loop: dict
    steps_done: int
    wall_time_s: float
    hardware: dict
    git_commit: str | None
    validation: dict | None
    # CPU seconds of the training process counted since step cpu_counted_from_step (0: the whole run);
    # absent (None) in files trained before CPU time was counted
    cpu_time_s: float | None = None
    cpu_counted_from_step: int = 0

    def to_info(self) -> dict:
        return asdict(self)

    @classmethod
    def from_info(cls, info: dict) -> TrainingRun:
        kinds = {"task": dict, "loop": dict, "steps_done": int, "wall_time_s": _NUMBER, "hardware": dict,
                 "git_commit": (str, type(None)), "validation": (dict, type(None))}
        missing = [key for key in kinds if key not in info]
        if missing:
            raise WeightsError(f"checkpoint header: no training record ({', '.join(missing)} missing)")
        optional = {"cpu_time_s": (*_NUMBER, type(None)), "cpu_counted_from_step": int}
        return cls(**{key: _typed(info, key, kind, "info") for key, kind in {**kinds, **optional}.items()
                      if key in info})


@dataclass(frozen=True)
class DenoiserSources:
    """The frozen nets a denoiser trained against, as the paths it was given (relative stays relative)."""

    aux: str
    critic: str | None = None
    text_prior: bool = True

    def to_info(self) -> dict:
        return asdict(self)

    @classmethod
    def from_info(cls, info: dict) -> DenoiserSources:
        kinds = {"aux": str, "critic": (str, type(None)), "text_prior": bool}
        return cls(**{key: _typed(info, key, kind, "info") for key, kind in kinds.items() if key in info})


# Where a file's weights come from and under what licence: copied into every file derived from it
# (a teacher cache's manifest, a cut net, a run started from one), so the notice travels with them.
PROVENANCE_KEYS = ("source", "licence")


def provenance(info: dict) -> dict:
    """The source and licence entries of a header's ``info``, those it has."""
    return {key: info[key] for key in PROVENANCE_KEYS if key in info}


def is_placeholder(info: dict) -> bool:
    """Whether the header marks the weights as untrained stand-ins (``"placeholder": true``)."""
    return _typed(info, "placeholder", bool, "info") if "placeholder" in info else False



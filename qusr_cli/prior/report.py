"""The structured quality report shared by every critic and by training, and the words it becomes.

Training writes captions from the true degradation parameters through `QualityReport.from_values`
and `critique_from_report`; critics at inference go through the same two functions, so the text
encoder sees one vocabulary in both places.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import NamedTuple

from qusr_cli.errors import QusrError


@dataclass(frozen=True)
class Measurement:
    """One measured attribute: its value, the unit it is in, and the plain-word level it falls in."""

    value: float
    unit: str
    level: str


class _Scale(NamedTuple):
    unit: str
    # Ascending upper bounds, one per level; a value belongs to the first level whose bound exceeds it.
    bounds: tuple[float, ...]
    levels: tuple[str, ...]
    # The level that needs no mention in a critique.
    fine: str


# Every threshold lives here. Noise and blur are in the units of the degradation parameters that
# training samples (8-bit noise sigma, Gaussian sigma in low-resolution pixels), so a caption written
# from true parameters and one written from estimates land on the same words.
LEVEL_TABLE: dict[str, _Scale] = {
    "noise": _Scale(
        "sigma (8-bit levels)", (2.5, 7.0, 16.0, math.inf), ("none", "low", "moderate", "heavy"), "none"
    ),
    "blur": _Scale(
        "Gaussian sigma (input pixels)",
        (0.6, 1.5, 2.5, math.inf),
        ("sharp", "slightly soft", "blurry", "very blurry"),
        "sharp",
    ),
    "jpeg": _Scale(
        "JPEG quality (1-100)", (25.0, 50.0, 80.0, math.inf), ("severe", "strong", "mild", "none"), "none"
    ),
    "exposure": _Scale(
        "mean luma (0-1)",
        (0.12, 0.30, 0.70, 0.85, math.inf),
        ("underexposed", "dark", "well exposed", "bright", "overexposed"),
        "well exposed",
    ),
    "contrast": _Scale(
        "luma standard deviation (0-1)", (0.04, 0.10, 0.28, math.inf), ("flat", "low", "normal", "high"), "normal"
    ),
}


def level_for(attribute: str, value: float) -> str:
    """The level of `value` on the scale of `attribute`: the first level whose upper bound exceeds it."""
    scale = LEVEL_TABLE[attribute]
    if not math.isfinite(value):
        raise ValueError(f"{attribute} value must be finite, got {value}")
    return next(level for bound, level in zip(scale.bounds, scale.levels) if value < bound)


@dataclass(frozen=True)
class QualityReport:
    """What is wrong with a photo, attribute by attribute (see LEVEL_TABLE for units and levels)."""

    noise: Measurement
    blur: Measurement
    jpeg: Measurement
    exposure: Measurement
    contrast: Measurement

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_values(
        cls, *, noise_sigma: float, blur_sigma: float, jpeg_quality: float, exposure: float, contrast: float
    ) -> "QualityReport":
        """A report from raw values in LEVEL_TABLE units, each given its level from that table.

        Training passes the true degradation parameters: noise sigma per channel in 8-bit levels,
        blur as the Gaussian sigma in low-resolution pixels (a kernel applied before a k-times
        downscale counts as sigma / k), jpeg_quality 100 when no JPEG step was applied.
        """
        values = {
            "noise": noise_sigma,
            "blur": blur_sigma,
            "jpeg": jpeg_quality,
            "exposure": exposure,
            "contrast": contrast,
        }
        return cls(
            **{
                name: Measurement(float(value), LEVEL_TABLE[name].unit, level_for(name, value))
                for name, value in values.items()
            }
        )


# The first phrase of each tuple is the canonical wording; the rest are synonyms for varied captions,
# chosen to resemble what a multimodal LLM writes so its free text embeds near the training captions.
# Blur and exposure phrases are adjectives because they also fill "a clean, sharp, dim photo".
_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "noise": {
        "none": ("no visible noise", "noise-free", "no grain"),
        "low": ("light noise", "slight noise", "a little grain", "mild sensor noise"),
        "moderate": ("moderate noise", "noticeable noise", "visible grain", "medium sensor noise"),
        "heavy": ("heavy noise", "strong noise", "lots of noise", "heavy grain", "severe sensor noise"),
    },
    "blur": {
        "sharp": ("sharp", "crisp", "in-focus"),
        "slightly soft": ("slightly soft", "a bit soft", "mild blur", "slightly out of focus"),
        "blurry": ("blurry", "soft details", "noticeable blur", "out of focus"),
        "very blurry": ("very blurry", "heavily blurred", "strong blur", "badly out of focus"),
    },
    "jpeg": {
        "none": ("no compression artifacts", "no JPEG artifacts", "clean compression"),
        "mild": ("mild JPEG artifacts", "slight compression artifacts", "light JPEG ringing"),
        "strong": ("strong JPEG blocking", "heavy compression artifacts", "visible 8x8 blocks"),
        "severe": ("severe JPEG blocking", "extreme compression artifacts", "badly compressed and blocky"),
    },
    "exposure": {
        "underexposed": ("underexposed", "very dark", "too dark"),
        "dark": ("dim", "dark", "low-light"),
        "well exposed": ("well exposed", "properly exposed", "evenly exposed"),
        "bright": ("bright", "brightly lit", "bright-toned"),
        "overexposed": ("overexposed", "washed-out", "blown-out"),
    },
    "contrast": {
        "flat": ("flat contrast", "almost no contrast", "washed-out tones"),
        "low": ("low contrast", "dull contrast", "muted tones"),
        "normal": ("normal contrast", "good contrast"),
        "high": ("high contrast", "harsh contrast", "punchy contrast"),
    },
}

_OVERALL_QUALITY: dict[str, tuple[str, ...]] = {
    "clean": ("clean", "high-quality", "pristine"),
    "slightly degraded": ("slightly degraded", "mostly clean", "lightly damaged"),
    "degraded": ("degraded", "low-quality", "damaged"),
    "heavily degraded": ("heavily degraded", "very low-quality", "badly damaged"),
}
_PHOTO_WORDS = ("photo", "picture", "image", "shot")

# Attributes listed as clauses; exposure goes into the overall phrase instead ("a dim photo").
_CLAUSE_ATTRIBUTES = ("noise", "blur", "jpeg", "contrast")
_FINE_MENTION_PROBABILITY = 0.3


def _severity(report: QualityReport) -> int:
    """Total distance from fine: sum over clause attributes of |index(level) - index(fine level)|."""
    total = 0
    for name in _CLAUSE_ATTRIBUTES:
        levels = LEVEL_TABLE[name].levels
        total += abs(levels.index(getattr(report, name).level) - levels.index(LEVEL_TABLE[name].fine))
    return total


def _overall_quality(severity: int) -> str:
    """Overall words for a severity: 0 clean, 1-2 slightly degraded, 3-5 degraded, 6+ heavily degraded."""
    if severity == 0:
        return "clean"
    if severity <= 2:
        return "slightly degraded"
    if severity <= 5:
        return "degraded"
    return "heavily degraded"


def critique_from_report(report: QualityReport, rng: random.Random | None = None) -> str:
    """A short critique naming what is wrong with the photo, then an overall phrase.

    Without `rng` the wording is canonical and deterministic, e.g.
    "heavy noise, slightly soft, strong JPEG blocking; a heavily degraded, dim photo" or, for a
    clean photo, "a clean, sharp, well exposed photo". With `rng` the synonyms, clause order and
    template vary, and fine attributes are sometimes mentioned too, so that training sees the spread
    of wordings a free-form critic produces.
    """

    def pick(options: tuple[str, ...]) -> str:
        return options[0] if rng is None else rng.choice(options)

    def mention_fine() -> bool:
        return rng is not None and rng.random() < _FINE_MENTION_PROBABILITY

    severity = _severity(report)
    clauses = []
    for name in _CLAUSE_ATTRIBUTES:
        level = getattr(report, name).level
        # A clean photo's overall phrase already says "sharp".
        if level != LEVEL_TABLE[name].fine or (mention_fine() and not (severity == 0 and name == "blur")):
            clauses.append(pick(_PHRASES[name][level]))
    if rng is not None and rng.random() < 0.5:
        rng.shuffle(clauses)

    quality = pick(_OVERALL_QUALITY[_overall_quality(severity)])
    photo = pick(_PHOTO_WORDS)
    exposure = pick(_PHRASES["exposure"][report.exposure.level])
    if severity == 0:
        overall = f"a {quality}, {pick(_PHRASES['blur']['sharp'])}, {exposure} {photo}"
    elif report.exposure.level != LEVEL_TABLE["exposure"].fine or mention_fine():
        overall = f"a {quality}, {exposure} {photo}"
    else:
        overall = f"a {quality} {photo}"

    if not clauses:
        return overall
    if rng is None:
        return f"{', '.join(clauses)}; {overall}"
    if len(clauses) > 1 and rng.random() < 0.5:
        listed = f"{', '.join(clauses[:-1])} and {clauses[-1]}"
    else:
        listed = ", ".join(clauses)
    templates = ["{listed}; {overall}", "{overall}: {listed}", "{listed}. {overall}"]
    if severity > 0:
        templates.append("problems: {listed}; {overall}")
    template = rng.choice(templates)
    return template.format(listed=listed, overall=overall)


def compose_prior_text(critique: str | None, user_prompt: str | None, mode: str = "extend") -> str | None:
    """The text the prior encodes: the critique, the user's prompt, or the critique then the prompt.

    mode "replace" uses the user's prompt instead of the critique (the critique stays when the prompt
    is empty); mode "extend" appends the prompt to the critique. None when both are empty, which
    the pipeline turns into the null prior.
    """
    if mode not in ("extend", "replace"):
        raise QusrError(f"unknown prompt mode '{mode}': use 'extend' or 'replace'")
    critique = (critique or "").strip()
    user_prompt = (user_prompt or "").strip()
    if mode == "replace" and user_prompt:
        return user_prompt
    if critique and user_prompt:
        separator = " " if critique[-1] in ".;:!?" else "; "
        return f"{critique}{separator}{user_prompt}"
    return critique or user_prompt or None

"""Field rules for checkpoint headers: each says what a value may be, with bounds.

Shared by the header's sections (``weights.header``) and the whole-header check
(``weights.header_schema``): a hostile header must not allocate gigabytes or smuggle a string where
a number belongs, and every section states its own rules once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from qusr_cli.errors import WeightsError


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


def check_fields(section: str, values, schema: dict, *, allow_unknown: bool = False) -> None:
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

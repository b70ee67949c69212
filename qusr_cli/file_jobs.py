"""One file job of `qusr batch` as the Ray engine's actors run it: upscale one file, or say why not.

A job is (source, target), planned on the driver (``plan.plan_jobs`` decides what is skipped). Its
outcome is a row of the summary: done with the output size, or failed with the one-line reason; a bad
file never stops a batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from qusr_cli.errors import QusrError
from qusr_cli.files import upscale_file
from qusr_cli.options import UpscaleOptions
from qusr_cli.upscaler import Upscaler


@dataclass(frozen=True)
class JobSettings:
    """What every job of a batch shares besides the upscaler."""

    options: UpscaleOptions
    scale: float = 4.0
    max_pixels: int | None = None


class JobOutcome(NamedTuple):
    source: Path
    status: str  # done or failed
    detail: str  # output size, or why it failed
    seconds: float


def run_file_job(upscaler: Upscaler, source: Path, target: Path, settings: JobSettings) -> JobOutcome:
    started = time.perf_counter()
    try:
        done = upscale_file(upscaler, source, target, settings.options, scale=settings.scale,
                            max_pixels=settings.max_pixels)
    except QusrError as exc:
        return JobOutcome(source, "failed", str(exc), time.perf_counter() - started)
    return JobOutcome(source, "done", f"{done.output_size[0]}x{done.output_size[1]}", time.perf_counter() - started)

"""One file job of `qusr batch`: the per-file work every batch engine runs, on this machine or on Ray.

A job is (source, target). Its outcome is a row of the summary: ok with the output size, skipped
because the target exists, or failed with the one-line reason; a bad file never stops a batch.
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
    skip_existing: bool = False


class JobOutcome(NamedTuple):
    source: Path
    status: str  # ok, skipped, failed
    detail: str  # output size, or why it was skipped or failed
    seconds: float


def batch_target(folder: Path, output_dir: Path, source: Path, ext: str) -> Path:
    """Where `qusr batch` writes ``source``: the same place under ``output_dir``, with extension ``ext``."""
    return (output_dir / source.relative_to(folder)).with_suffix("." + ext.lstrip("."))


def run_file_job(upscaler: Upscaler, source: Path, target: Path, settings: JobSettings) -> JobOutcome:
    started = time.perf_counter()
    if settings.skip_existing and target.exists():
        return JobOutcome(source, "skipped", "exists", 0.0)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        done = upscale_file(upscaler, source, target, settings.options, scale=settings.scale,
                            max_pixels=settings.max_pixels)
    except QusrError as exc:
        return JobOutcome(source, "failed", str(exc), time.perf_counter() - started)
    except OSError as exc:  # e.g. the output folder cannot be made
        return JobOutcome(source, "failed", f"{target}: {exc.strerror or exc}", time.perf_counter() - started)
    return JobOutcome(source, "ok", f"{done.output_size[0]}x{done.output_size[1]}", time.perf_counter() - started)

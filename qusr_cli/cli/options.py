"""Options shared by `upscale`, `batch` and `explain`, declared once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qusr_cli.plan import DEFAULT_SUFFIX

if TYPE_CHECKING:
    from qusr_cli.upscaler import UpscaleOptions


class ColorFix(str, Enum):
    wavelet = "wavelet"
    adain = "adain"
    none = "none"


class CriticKind(str, Enum):
    builtin = "builtin"
    mllm = "mllm"
    none = "none"


class PromptMode(str, Enum):
    extend = "extend"
    replace = "replace"


class Selector(str, Enum):
    niqe = "niqe"


class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class DtypeName(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


Steps = Annotated[int, typer.Option(min=1, max=50, help="Diffusion steps (one checkpoint serves 1-50).")]
Scale = Annotated[float, typer.Option(min=0.1, max=16.0, help="Final scale; the model runs at 4x, then resizes.")]
Seed = Annotated[int, typer.Option(help="Noise seed: same seed, same output on one device.")]
Device = Annotated[DeviceName, typer.Option(help="auto picks CUDA, then MPS, then the CPU.")]
Dtype = Annotated[DtypeName, typer.Option(help="auto: bf16/fp16 on CUDA, bf16 on CPUs with native bf16, else fp32.")]
Tile = Annotated[int | None, typer.Option(min=32, help="LR tile size in pixels (default: from free memory).")]
Color = Annotated[ColorFix, typer.Option("--color-fix", help="Colour correction against g(y).")]
Prompt = Annotated[str | None, typer.Option(help="Your own words about the photo, added to the critique.")]
PromptModeOpt = Annotated[PromptMode, typer.Option("--prompt-mode", help="extend or replace the critique.")]
Critic = Annotated[CriticKind, typer.Option(help="Who writes the quality critique.")]
Model = Annotated[str | None, typer.Option(help="Model name from weights.toml (default: its default).")]
Weights = Annotated[Path | None, typer.Option(help="weights.toml or checkpoint folder (or $QUSR_WEIGHTS).")]
Threads = Annotated[int | None, typer.Option(min=1, help="CPU threads (default: $QUSR_THREADS or all cores).")]
MaxPixels = Annotated[int | None, typer.Option(min=1, help="Largest input in pixels (default: Pillow's guard).")]
Candidates = Annotated[int, typer.Option(min=1, max=16, help="Best of N: draw N samples, keep the one --select likes most.")]
Select = Annotated[Selector, typer.Option(help="No-reference score that picks among --candidates.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress or notes on stderr; errors still show.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Suffix = Annotated[str | None, typer.Option(
    help=f"Added to each output's name (default: {DEFAULT_SUFFIX!r} next to the input, none in another folder).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite/--no-overwrite", help="Replace outputs that exist; by default they are left alone (skipped).")]
Download = Annotated[bool, typer.Option("--download/--no-download",
                                        help="Fetch missing weights from the Hub (local files are always used first).")]


def upscale_options(steps: int, seed: int, tile: int | None, color_fix: ColorFix, prompt: str | None,
                    prompt_mode: PromptMode, candidates: int = 1) -> UpscaleOptions:
    from qusr_cli.upscaler import UpscaleOptions  # here: importing the engine loads torch

    return UpscaleOptions(steps=steps, seed=seed, tile=tile, color_fix=color_fix.value, prompt=prompt,
                          prompt_mode=prompt_mode.value, candidates=candidates)

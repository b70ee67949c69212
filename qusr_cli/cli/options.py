"""Options shared by several commands, declared once: single aliases and the option groups that fill
``EngineOptions`` (model and device), ``UpscaleOptions`` (sampling) and ``LoopConfig`` (training loop)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from qusr_cli.cli.groups import OptionGroup
from qusr_cli.options import DETAIL_MIN_STEPS, EngineOptions, UpscaleOptions
from qusr_cli.plan import DEFAULT_SUFFIX


class ColorFix(str, Enum):
    wavelet = "wavelet"
    adain = "adain"
    none = "none"


class CriticKind(str, Enum):
    """The engine's critic vocabulary (``loading.ENGINE_CRITICS``)."""

    auto = "auto"
    builtin = "builtin"
    learned = "learned"
    mllm = "mllm"
    none = "none"


class PromptMode(str, Enum):
    extend = "extend"
    replace = "replace"


class Selector(str, Enum):
    niqe = "niqe"


class DtypeName(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


Scale = Annotated[float, typer.Option(min=0.1, max=16.0, help="Final scale; the model runs at 4x, then resizes.")]
Seed = Annotated[int, typer.Option(help="Noise seed: same seed, same output on one device.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps; auto picks CUDA, then MPS, then the CPU.")]
Dtype = Annotated[DtypeName, typer.Option(help="auto: bf16/fp16 on CUDA, bf16 on CPUs with native bf16, else fp32.")]
Tile = Annotated[int | None, typer.Option(min=32, help="LR tile size in pixels (default: from free memory).")]
Prompt = Annotated[str | None, typer.Option(help="Your own words about the photo, added to the critique.")]
PromptModeOpt = Annotated[PromptMode, typer.Option("--prompt-mode", help="extend or replace the critique.")]
Model = Annotated[str | None, typer.Option(help="Model name from weights.toml (default: its default).")]
Weights = Annotated[Path | None, typer.Option(help="weights.toml or checkpoint folder (or $QUSR_WEIGHTS).")]
Threads = Annotated[int | None, typer.Option(min=1, help="CPU threads (default: $QUSR_THREADS or all cores).")]
MaxPixels = Annotated[int | None, typer.Option(min=1, help="Largest input in pixels (default: Pillow's guard).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress or notes on stderr; errors still show.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Suffix = Annotated[str | None, typer.Option(
    help=f"Added to each output's name (default: {DEFAULT_SUFFIX!r} next to the input, none in another folder).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite/--no-overwrite", help="Replace outputs that exist; by default they are left alone (skipped).")]
# batch also takes issue 11's --skip-existing, which scripts pass: another name for the default --no-overwrite.
BatchOverwrite = Annotated[bool, typer.Option(
    "--overwrite/--no-overwrite", " /--skip-existing",
    help="Replace outputs that exist; by default they are left alone (skipped; --skip-existing says the same).")]
Workers = Annotated[int, typer.Option(min=1, help="Worker processes, each with its own model (1: this process).")]
DegradationWorkers = Annotated[int, typer.Option(
    "--workers", min=0, help="Worker processes that degrade training crops (0: this process).")]
Prefetch = Annotated[int, typer.Option(min=0, help="Files decoded ahead while the model computes (0: none).")]


ENGINE = OptionGroup(EngineOptions, {
    "model": (Model, None),
    "weights": (Weights, None),
    "device": (Device, "auto"),
    "dtype": (Dtype, DtypeName.auto),
    "threads": (Threads, None),
    "critic": (Annotated[CriticKind, typer.Option(
        help="Who writes the quality critique: auto (the model's learned critic, else builtin), builtin "
             "(image statistics), learned, mllm or none.")], CriticKind.auto),
    "allow_download": (Annotated[bool, typer.Option(
        "--download/--no-download", help="Fetch missing weights from the Hub (local files are always used "
                                         "first).")], True),
}, panel="Model and device")

SAMPLING = OptionGroup(UpscaleOptions, {
    "steps": (Annotated[int, typer.Option(min=1, max=50, help="Diffusion steps (one checkpoint serves 1-50).")], 5),
    "seed": (Seed, 0),
    "tile": (Tile, None),
    "color_fix": (Annotated[ColorFix, typer.Option("--color-fix", help="Colour correction against g(y).")],
                  ColorFix.wavelet),
    "prompt": (Prompt, None),
    "prompt_mode": (PromptModeOpt, PromptMode.extend),
    "candidates": (Annotated[int, typer.Option(
        min=1, max=16, help="Best of N: draw N samples, keep the one --select likes most.")], 1),
    "select": (Annotated[Selector, typer.Option(help="No-reference score that picks among --candidates.")],
               Selector.niqe),
    "detail": (Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Fidelity (0) to invented detail (1): the sampler's posterior noise in "
                               f"every step but the last, so it acts from --steps {DETAIL_MIN_STEPS} on. Default: the "
                               "model's own setting.")], None),
}, panel="Sampling")


def _loop_config(*, warmup: int, **values):
    import torch

    from qusr_cli.train.loop import LoopConfig

    # Seeded before the task builds its model, so the initial weights repeat too.
    torch.manual_seed(values["seed"])
    return LoopConfig(warmup=min(warmup, max(1, values["steps"] // 10)), **values)


Batch = Annotated[int, typer.Option("--batch", min=1, help="Crops per step.")]
TrainThreads = Annotated[int, typer.Option("--threads", min=1, help="PyTorch threads (1 is fastest on a busy CPU).")]
TrainDevice = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
TrainSeed = Annotated[int, typer.Option("--seed", help="Seeds crops, degradations and the loop.")]
Amp = Annotated[str, typer.Option("--amp", help="auto (bf16 on CUDA only), bf16, fp16 or none.")]

LOOP = OptionGroup(_loop_config, {
    "steps": (Annotated[int, typer.Option("--steps", min=1, help="Total optimizer steps.")], 2000),
    "batch": (Batch, 16),
    "lr": (Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")], 2e-4),
    "threads": (TrainThreads, 1),
    "device": (TrainDevice, "auto"),
    "seed": (TrainSeed, 0),
    "val_every": (Annotated[int, typer.Option("--val-every", min=0,
                                              help="Validate every N steps (0: never).")], 500),
    "save_every": (Annotated[int, typer.Option("--save-every", min=1,
                                               help="Save weights + resume state every N steps.")], 100),
    "keep_every": (Annotated[int, typer.Option("--keep-every", min=0, help=(
        "Also keep the weights of every Nth step in <out>/snapshots/ (0: none), for a quality-against-"
        "CPU-hours curve (benchmarks/training_curve.py)."))], 0),
    "num_workers": (DegradationWorkers, 1),
    "warmup": (Annotated[int, typer.Option("--warmup", min=0, help="Linear warm-up steps.")], 100),
    "amp": (Amp, "auto"),
}, panel="Training loop")


def _recipe(**values):
    from qusr_cli.train.recipe import PerceptualRecipe

    if not any(values[key] for key in ("hr_weight", "teacher_weight", "feature_weight", "gan_weight")):
        raise typer.BadParameter("with --hr-weight 0 the loss needs another term: --teacher-weight, "
                                 "--feature-weight or --gan-weight", param_hint="--hr-weight")
    return PerceptualRecipe(**values)


RECIPE = OptionGroup(_recipe, {
    "teacher_weight": (Annotated[float, typer.Option(
        "--teacher-weight", min=0.0, help="λ of L1 to the teacher's output (needs --teacher-cache).")], 0.0),
    "feature_weight": (Annotated[float, typer.Option(
        "--feature-weight", min=0.0, help="λ of the random-CNN feature + Gram loss.")], 0.0),
    "gan_weight": (Annotated[float, typer.Option(
        "--gan-weight", min=0.0, help="λ of the adversarial term (0: no discriminator).")], 0.0),
    "discriminator_width": (Annotated[int, typer.Option(
        "--disc-width", min=4, help="U-Net discriminator base channels.")], 32),
    "discriminator_lr": (Annotated[float, typer.Option("--disc-lr", help="Discriminator Adam learning rate.")], 1e-4),
    "procedural_share": (Annotated[float, typer.Option(
        "--procedural-share", min=0.0, max=1.0, help="Share of dead-leaves crops among the photos'.")], 0.0),
    "teacher_gate": (Annotated[bool, typer.Option(
        "--teacher-gate/--no-teacher-gate", help="Use the teacher only on crops where its output is nearer "
                                                 "the HR crop than bicubic is.")], False),
    "sharpen_hr": (Annotated[float, typer.Option(
        "--sharpen-hr", min=0.0, max=2.0, help="Unsharp-mask amount of the HR target of the L1, FFT and "
                                               "feature terms (0: the photo as it is).")], 0.0),
    "hr_weight": (Annotated[float, typer.Option(
        "--hr-weight", min=0.0, help="λ of L1 to the HR crop (0 with --teacher-weight: pure distillation).")], 1.0),
    "teacher_as_real": (Annotated[bool, typer.Option(
        "--teacher-as-real/--hr-as-real", help="What the feature term matches and the discriminator calls real: "
                                               "the teacher's output (needs --teacher-cache) or the HR crop.")],
                        False),
}, panel="Perceptual recipe")

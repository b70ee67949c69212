"""`qusr train aux|critic|denoiser`: train the three models of the embedded default on HR photos.

Each command writes ``<out>/<role>.safetensors`` (EMA weights, fp16, loadable by the engine as it is),
``<out>/log.jsonl`` and ``<out>/resume/``; running the same command again continues from there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qusr_cli.cli import options as opt
from qusr_cli.cli.common import command_group, parse_numbers
from qusr_cli.cli.groups import grouped
from qusr_cli.errors import InputError
from qusr_cli.eval_sets import DEFAULT_VAL_SET

if TYPE_CHECKING:  # the training stack (torch) is imported inside the commands, so `qusr --help` stays fast
    from qusr_cli.train.dataset import DegradedCrops
    from qusr_cli.train.loop import LoopConfig
    from qusr_cli.train.recipe import PerceptualRecipe


class AuxArch(str, Enum):
    compact = "compact"
    rrdbnet = "rrdbnet"


class AuxUpsample(str, Enum):
    bicubic = "bicubic"
    nearest = "nearest"


class ResidualBase(str, Enum):
    blend = "blend"
    aux = "aux"
    up = "up"
    none = "none"


train_app = command_group(help="Train the aux net, the learned critic or the denoiser on a folder of HR photos.",
                          epilog="Examples:\n\n  qusr train aux --data photos/ --out runs/aux\n\n"
                                 "  qusr train denoiser --data photos/ --out runs/denoiser --aux runs/aux/aux.safetensors")


@train_app.callback()
def _under_torchrun() -> None:
    """Launched by torchrun, only rank 0 prints (see qusr_cli/train/distributed.py)."""
    if os.environ.get("RANK", "0") != "0":  # checked here so that torch is not imported for --help
        from qusr_cli.train import distributed

        distributed.quiet_other_ranks()


DataOpt = Annotated[Path, typer.Option("--data", help="Folder of clean HR photos.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Run folder: checkpoint, log.jsonl, resume state.")]
CropOpt = Annotated[int, typer.Option("--crop", min=16, help="HR crop size (multiple of 4; LR is crop/4).")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from <out>/resume if present.")]
InitOpt = Annotated[Path | None, typer.Option(
    "--init", help="Start from this checkpoint's weights when <out>/resume holds no state (same architecture): "
                   "a lost run folder restarts from the last kept weights.")]
ValDirOpt = Annotated[str, typer.Option(
    "--val-dir", help="Paired lq/ gt/ set for validation: a folder, or a set name under ../shared/data/eval/.")]
MaxImagesOpt = Annotated[int, typer.Option("--max-images", min=0, help="Use only the first N photos (0: all).")]
MinDetailOpt = Annotated[float, typer.Option(
    "--min-detail", min=0.0, help="Redraw HR crops whose mean neighbour difference (8-bit luma levels) is "
                                  "below this (0: keep every crop).")]
LightShareOpt = Annotated[float, typer.Option(
    "--light-share", min=0.0, max=1.0, help="Share of crops degraded with the milder first-order LIGHT preset "
                                            "instead of the Real-ESRGAN pipeline.")]
HrScalesOpt = Annotated[str, typer.Option(
    "--hr-scales", help="Photos are also shrunk by these factors and crops drawn from every level "
                        "(1: as they are).")]
TeacherCacheOpt = Annotated[Path | None, typer.Option(
    "--teacher-cache", help="Read crops and teacher outputs from a `qusr train teacher-cache` folder "
                            "(its crop options replace these).")]


@contextmanager
def _data_errors() -> Iterator[None]:
    """A missing data folder, a folder without photos or bad crop options end the command with one line."""
    try:
        yield
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _crops(data: Path, **options) -> DegradedCrops:
    from qusr_cli.train.dataset import DegradedCrops

    with _data_errors():
        return DegradedCrops(data, **options)


def _photo_options(max_images: int, hr_scales: str, min_detail: float, light_share: float) -> dict:
    """The crop options of ``DegradedCrops`` from the photo options every training command shares."""
    return {"images": slice(max_images or None), "hr_scales": tuple(parse_numbers(hr_scales, "--hr-scales", float)),
            "min_detail": min_detail, "light_share": light_share}


def _unless_missing(what: str, load: Callable[[], Any]) -> Any:
    """``load()``, or None with a line saying why when its set is not on this machine."""
    try:
        return load()
    except InputError as exc:
        typer.echo(f"qusr: no {what}: {exc}", err=True)
        return None


def _pairs(val_dir: str, val_every: int):
    """The validation pairs, or None when validation is off or the set is not on this machine."""
    from qusr_cli.train.validate import load_pairs

    return _unless_missing("validation", lambda: load_pairs(val_dir)) if val_every else None


def _niqe_crops(spec: str, count: int):
    """Centre crops of a no-reference set for NIQE validation, or None when off or not on this machine."""
    from qusr_cli.train.validate import load_centre_crops

    return _unless_missing("NIQE validation", lambda: load_centre_crops(spec, count)) if count else None


def _source(data: Path, crop: int, seed: int, recipe: PerceptualRecipe, teacher_cache: Path | None,
            **crop_options):
    """The training samples: degraded crops of ``data``, or a teacher cache's; with dead leaves mixed in
    when the recipe has a procedural share, and teacher fields on every sample when there is a cache."""
    for needs_teacher, option in ((recipe.teacher_weight, "--teacher-weight"),
                                  (recipe.teacher_as_real, "--teacher-as-real")):
        if needs_teacher and teacher_cache is None:
            raise InputError(f"{option} needs --teacher-cache (make one with `qusr train teacher-cache`)")
    if teacher_cache is not None:
        from qusr_cli.train.teacher_cache import TeacherShards

        with _data_errors():
            dataset = TeacherShards(teacher_cache, crop=crop)
    else:
        dataset = _crops(data, crop=crop, seed=seed, **crop_options)
    if recipe.procedural_share or teacher_cache is not None:
        from qusr_cli.train.procedural import DeadLeavesCrops, MixedSource

        leaves = (DeadLeavesCrops(crop=crop, seed=seed, light_share=crop_options.get("light_share", 0.0))
                  if recipe.procedural_share else None)
        dataset = MixedSource(dataset, leaves, recipe.procedural_share, seed=seed)
    return dataset


def _init_record(init: Path) -> dict:
    """Where a run's first weights came from, with the source and licence their header carries on
    (a g cut from Real-ESRGAN keeps its notice through every run trained from it)."""
    from qusr_cli.weights.checkpoint import read_header
    from qusr_cli.weights.header import provenance

    info = read_header(init).info
    inherited = {**info.get("initialised_from_provenance", {}), **provenance(info),
                 **({"truncated_from": info["truncated_from"]} if "truncated_from" in info else {})}
    return {"initialised_from": str(init), **({"initialised_from_provenance": inherited} if inherited else {})}


def _train(task, dataset, data: Path, out: Path, crop: int, config: LoopConfig, resume: bool,
           extra: dict | None = None, init: Path | None = None) -> None:
    from qusr_cli.train.dataset import make_loader
    from qusr_cli.train.loop import train
    from qusr_cli.weights.header import TrainingData

    record = TrainingData(data=str(data), crop=crop, **dataset.describe())
    initialised = _init_record(init) if init is not None else {}
    path = train(task, lambda start: make_loader(dataset, config.batch, start, config.steps, config.num_workers),
                 config, out, resume=resume, info={**record.to_info(), **initialised, **(extra or {})}, init=init)
    typer.echo(str(path))


@train_app.command("aux", epilog="Examples:\n\n  qusr train aux --data photos/ --out runs/aux --steps 2000\n\n"
                                 "  qusr train aux --data photos/ --out runs/aux --device cuda --batch 64")
@grouped(config=opt.LOOP.with_defaults(steps=2000, batch=16, lr=5e-4, val_every=500, warmup=100), recipe=opt.RECIPE)
def aux_command(data: DataOpt, out: OutOpt, config: LoopConfig, recipe: PerceptualRecipe, crop: CropOpt = 256,
                resume: ResumeOpt = True, init: InitOpt = None, teacher_cache: TeacherCacheOpt = None,
                val_dir: ValDirOpt = DEFAULT_VAL_SET, max_images: MaxImagesOpt = 0,
                hr_scales: HrScalesOpt = "1,0.7,0.5,0.35", min_detail: MinDetailOpt = 6.0,
                light_share: LightShareOpt = 0.0,
                arch: Annotated[AuxArch, typer.Option(
                    "--arch", help="compact (CompactSR) or rrdbnet (a shallow Real-ESRGAN RRDBNet).")]
                    = AuxArch.compact,
                num_feat: Annotated[int, typer.Option("--width", help="Channels.")] = 48,
                num_conv: Annotated[int, typer.Option("--depth", help="CompactSR 3x3 conv layers.")] = 10,
                num_block: Annotated[int, typer.Option("--blocks", min=1, help="RRDBNet blocks.")] = 4,
                upsample: Annotated[AuxUpsample, typer.Option(
                    "--upsample", help="What a CompactSR's output is a residual over.")] = AuxUpsample.bicubic
                ) -> None:
    """Auxiliary net g, L1 to the HR crop (UPSR's fidelity g), plus any recipe terms.

    Example: qusr train aux --data ../shared/data/train --out runs/aux --steps 3000

    Restoring g: --teacher-cache runs/teacher-cache --teacher-weight 2

    Distilled g: qusr weights truncate runs/realesrgan-x4plus.safetensors --blocks 4 --out runs/rrdb4.safetensors,
    then --arch rrdbnet --blocks 4 --width 64 --init runs/rrdb4.safetensors --teacher-cache runs/teacher-cache
    --teacher-weight 1 --hr-weight 0
    """
    from qusr_cli.train.aux import AuxTask

    dataset = _source(data, crop, config.seed, recipe, teacher_cache,
                      **_photo_options(max_images, hr_scales, min_detail, light_share))
    task = AuxTask(num_feat=num_feat, num_conv=num_conv, upsample=upsample.value, arch=arch.value, num_block=num_block,
                   val_pairs=_pairs(val_dir, config.val_every), recipe=recipe)
    _train(task, dataset, data, out, crop, config, resume, init=init)


@train_app.command("critic", epilog="Examples:\n\n  qusr train critic --data photos/ --out runs/critic")
@grouped(config=opt.LOOP.with_defaults(steps=600, batch=32, lr=1e-3, val_every=200, warmup=50))
def critic_command(data: DataOpt, out: OutOpt, config: LoopConfig, crop: CropOpt = 256, resume: ResumeOpt = True,
                   light_share: LightShareOpt = 0.0,
                   held_out: Annotated[int, typer.Option("--held-out", min=1,
                                                         help="Degraded crops of held-out photos to score.")] = 192,
                   width: Annotated[int, typer.Option("--width", help="CriticNet base channels.")] = 32) -> None:
    """Learned critic: regress noise σ, blur σ, JPEG quality and severity from the LR image.

    Every 12th photo (from the 6th) is held out of training; validation scores the critic on fixed
    degraded crops of those.

    Example: qusr train critic --data ../shared/data/train --out runs/critic --steps 600
    """
    from qusr_cli.train.critic import CriticTask, held_out_images
    from qusr_cli.train.dataset import fixed_batch, list_images

    with _data_errors():
        photos = list_images(data)
    holdout = held_out_images(len(photos))
    train_images = [i for i in range(len(photos)) if i not in holdout]
    evaluation = fixed_batch(_crops(data, crop=crop, seed=config.seed + 1_000_003, images=holdout,
                                    light_share=light_share), range(held_out))
    task = CriticTask(width=width, held_out=evaluation)
    dataset = _crops(data, crop=crop, seed=config.seed, images=train_images, light_share=light_share)
    _train(task, dataset, data, out, crop, config, resume, {"held_out_images": [photos[i].name for i in holdout]})


def _denoiser_arch(name: str) -> str:
    from qusr_cli.archs import REGISTRY

    if name not in REGISTRY.names("denoiser"):
        raise typer.BadParameter(f"{name!r} is no denoiser architecture (registered: "
                                 f"{', '.join(REGISTRY.names('denoiser'))})")
    return name


def _arch_options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs, each VALUE read as JSON when it parses (numbers, lists, true/false), else as text."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise InputError(f"--arch-option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@train_app.command("denoiser", epilog="Examples:\n\n  qusr train denoiser --data photos/ --out runs/denoiser "
                                      "--aux runs/aux/aux.safetensors --critic runs/critic/critic.safetensors")
@grouped(config=opt.LOOP.with_defaults(steps=4000, batch=8, lr=2e-4, val_every=500, warmup=200), recipe=opt.RECIPE)
def denoiser_command(data: DataOpt, out: OutOpt, config: LoopConfig, recipe: PerceptualRecipe,
                     aux: Annotated[Path, typer.Option("--aux", help="Trained aux checkpoint (frozen g).")],
                     crop: CropOpt = 256, resume: ResumeOpt = True, init: InitOpt = None,
                     val_dir: ValDirOpt = DEFAULT_VAL_SET, max_images: MaxImagesOpt = 0,
                     hr_scales: HrScalesOpt = "1,0.7,0.5,0.35", min_detail: MinDetailOpt = 6.0,
                     light_share: LightShareOpt = 0.0,
                     critic: Annotated[Path | None, typer.Option(
                         "--critic", help="Learned critic checkpoint; without it every prior is written "
                                          "from the true parameters.")] = None,
                     arch: Annotated[str, typer.Option(
                         "--arch", callback=_denoiser_arch, help="Registered denoiser architecture to build.")]
                     = "unet",
                     arch_option: Annotated[list[str] | None, typer.Option(
                         "--arch-option", help="KEY=VALUE passed to the architecture's constructor (repeatable).")]
                     = None,
                     width: Annotated[int | None, typer.Option(
                         "--width", help="UNet base width (--arch-option base_width=N).")] = None,
                     channel_mult: Annotated[str | None, typer.Option(
                         "--channel-mult", help="UNet width multipliers per level, e.g. 1,2,2.")] = None,
                     aux_error: Annotated[float | None, typer.Option(
                         "--aux-error", min=1e-3, help="σ_g of the blend: RMS error of g on [0, 1] pixels "
                                                       "(default: measured on 64 training crops).")] = None,
                     residual_base: Annotated[ResidualBase, typer.Option(
                         "--residual-base", help="What the net's output is added to: blend (of x_τ and g, "
                                                 "weighted by their noise), aux (g), up (bicubic) or none.")]
                     = ResidualBase.blend,
                     fft_weight: Annotated[float, typer.Option("--fft-weight", help="λ of the FFT-magnitude L1.")]
                     = 0.05,
                     null_prob: Annotated[float, typer.Option("--null-prob", help="Share of null-prior samples.")]
                     = 0.15,
                     critic_prob: Annotated[float, typer.Option(
                         "--critic-prob", help="Share of priors from the critic's estimate.")] = 0.25,
                     text: Annotated[bool, typer.Option("--text/--no-text",
                                                        help="Train with text priors (MiniLM).")] = True,
                     noise_scale: Annotated[float, typer.Option(
                         "--noise-scale", min=0.0, help="Sampling: scale of the reverse steps' posterior noise "
                                                        "(1: ResShift), kept in the header.")] = 1.0,
                     last_noise_scale: Annotated[float, typer.Option(
                         "--last-noise-scale", min=0.0, help="Sampling: the same for the step into τ = 0, whose "
                                                             "noise the last call cannot remove.")] = 0.0,
                     teacher_cache: TeacherCacheOpt = None,
                     niqe_set: Annotated[str, typer.Option(
                         "--niqe-set", help="Real photos whose LR centre crops validation scores by NIQE "
                                            "(a set name or folder).")] = "realset65",
                     niqe_crops: Annotated[int, typer.Option(
                         "--niqe-crops", min=0, help="How many of them (0: no NIQE validation).")] = 8) -> None:
    """Residual-shift denoiser, with the frozen aux net g and critique priors.

    Example: qusr train denoiser --data ../shared/data/train --aux runs/aux/aux.safetensors --out runs/den

    Perceptual recipe: --teacher-cache runs/teacher-cache --teacher-weight 1 --feature-weight 0.1
    --gan-weight 0.1 --procedural-share 0.2
    """
    from qusr_cli.prior.learned_critic import LearnedCritic
    from qusr_cli.train.denoiser import DenoiserTask, measure_aux_error
    from qusr_cli.weights.checkpoint import load_checkpoint
    from qusr_cli.weights.header import DenoiserSources

    arch_config = _arch_options(arch_option or [])
    if width is not None:
        arch_config["base_width"] = width
    if channel_mult is not None:
        arch_config["channel_mult"] = tuple(parse_numbers(channel_mult, "--channel-mult", int))
    encoder = None
    if text:
        from qusr_cli.prior.text_encoder import TextEncoder

        encoder = TextEncoder(source="minilm")
    aux_net = load_checkpoint(aux, role="aux")
    dataset = _source(data, crop, config.seed, recipe, teacher_cache,
                      **_photo_options(max_images, hr_scales, min_detail, light_share))
    if aux_error is None and residual_base is ResidualBase.blend:
        aux_error = measure_aux_error(aux_net, dataset)
        typer.echo(f"σ_g of g on 64 training crops: {aux_error:.4f}")
    try:
        task = DenoiserTask(aux_net, encoder, critic=LearnedCritic(critic) if critic else None, arch=arch,
                            residual_base=residual_base.value, fft_weight=fft_weight,
                            **({} if aux_error is None else {"aux_error": aux_error}), null_prob=null_prob,
                            critic_prob=critic_prob, val_pairs=_pairs(val_dir, config.val_every),
                            niqe_crops=_niqe_crops(niqe_set, niqe_crops if config.val_every else 0),
                            noise_scale=noise_scale, last_noise_scale=last_noise_scale,
                            recipe=recipe, **arch_config)
    except (TypeError, ValueError) as exc:  # an option the architecture's constructor does not take or refuses
        raise InputError(f"--arch {arch}: {exc}") from None
    sources = DenoiserSources(aux=str(aux), critic=str(critic) if critic else None, text_prior=text)
    _train(task, dataset, data, out, crop, config, resume, sources.to_info(), init=init)


@train_app.command("validate", epilog="Examples:\n\n  qusr train validate --aux runs/aux/aux.safetensors "
                                      "--denoiser runs/denoiser/denoiser.safetensors --steps 5")
def validate_command(aux: Annotated[Path, typer.Option("--aux", help="Aux checkpoint (g).")],
                     denoiser: Annotated[Path | None, typer.Option("--denoiser", help="Denoiser checkpoint.")] = None,
                     critic: Annotated[Path | None, typer.Option(
                         "--critic", help="Learned critic checkpoint: also score qusr with its critique as prior.")]
                     = None,
                     val_dir: ValDirOpt = DEFAULT_VAL_SET,
                     steps: Annotated[int, typer.Option("--steps", min=1, help="Sampling steps.")] = 5,
                     seed: opt.Seed = 0,
                     threads: Annotated[int, typer.Option("--threads", min=1, help="PyTorch threads.")] = 1,
                     noise_scale: Annotated[float | None, typer.Option(
                         "--noise-scale", min=0.0, help="Override the header's posterior-noise scale.")] = None,
                     last_noise_scale: Annotated[float | None, typer.Option(
                         "--last-noise-scale", min=0.0, help="Override the header's last-step noise scale.")] = None,
                     json_out: Annotated[Path | None, typer.Option("--json", help="Also write the scores here.")]
                     = None) -> None:
    """Score bicubic, g alone and qusr (null prior, and learned-critic prior) on a paired LR/GT set.

    A set too small for NIQE (``niqe_fits``) gets no NIQE column.

    Example: qusr train validate --aux runs/aux/aux.safetensors --denoiser runs/den/denoiser.safetensors
    """
    from rich.console import Console
    from rich.table import Table

    import torch

    from qusr_cli.train.validate import evaluate, load_pairs, niqe_fits
    from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint
    from qusr_cli.weights.header import DiffusionSettings

    torch.set_num_threads(threads)
    pairs = load_pairs(val_dir)
    niqe = niqe_fits(pairs.gt)
    aux_net = load_checkpoint(aux, role="aux")
    results = {"bicubic": evaluate("bicubic", pairs, niqe=niqe),
               "aux (g alone)": evaluate("aux", pairs, aux_net=aux_net, niqe=niqe)}
    if denoiser is not None:
        model = load_checkpoint(denoiser, role="denoiser")
        settings = DiffusionSettings.from_info(checkpoint_info(denoiser))
        overrides = {"noise_scale": noise_scale, "last_noise_scale": last_noise_scale}
        settings = replace(settings, schedule={**settings.schedule,
                                               **{k: v for k, v in overrides.items() if v is not None}})
        results[f"qusr {steps} steps, null prior"] = evaluate("qusr", pairs, aux_net=aux_net, denoiser=model,
                                                              steps=steps, seed=seed, settings=settings, niqe=niqe)
        if critic is not None:
            from qusr_cli.prior.learned_critic import LearnedCritic
            from qusr_cli.prior.text_encoder import TextEncoder

            judge, encoder = LearnedCritic(critic), TextEncoder(source="minilm")
            contexts = [encoder.encode(judge.assess(pairs.lr[i:i + 1]).critique) for i in range(len(pairs.lr))]
            results[f"qusr {steps} steps, learned-critic prior"] = evaluate(
                "qusr", pairs, aux_net=aux_net, denoiser=model, steps=steps, seed=seed, contexts=contexts,
                settings=settings, niqe=niqe)
    table = Table(title=f"{val_dir} ({len(pairs.lr)} pairs), Y channel, 4-px border")
    for column in ("method", "PSNR-Y (dB)", "SSIM-Y", "sharpness (grad. energy / GT)") + (("NIQE",) if niqe else ()):
        table.add_column(column)
    for name, score in results.items():
        table.add_row(name, f"{score['psnr_y']:.2f}", f"{score['ssim_y']:.4f}", f"{score['sharpness']:.3f}",
                      *([f"{score['niqe']:.2f}"] if niqe else []))
    Console().print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2))


@train_app.command("teacher-cache", epilog="Examples:\n\n  qusr train teacher-cache --data photos/ --out runs/teacher "
                                           "--teacher realesrgan/aux.safetensors --count 2000")
def teacher_cache_command(data: DataOpt,
                          out: Annotated[Path, typer.Option("--out", help="Cache folder (manifest + shards).")],
                          teacher: Annotated[Path, typer.Option(
                              "--teacher", help="Teacher SR checkpoint, e.g. Real-ESRGAN x4plus from "
                                                "`qusr weights import-ncnn`.")],
                          count: Annotated[int, typer.Option("--count", min=1, help="Samples to cache.")] = 10_000,
                          shard_size: Annotated[int, typer.Option("--shard-size", min=1,
                                                                  help="Samples per shard file.")] = 64,
                          batch: opt.Batch = 8, crop: CropOpt = 256, threads: opt.TrainThreads = 1,
                          device: opt.TrainDevice = "auto", seed: opt.TrainSeed = 0, amp: opt.Amp = "auto",
                          max_images: MaxImagesOpt = 0, hr_scales: HrScalesOpt = "1,0.7,0.5,0.35",
                          min_detail: MinDetailOpt = 6.0, light_share: LightShareOpt = 0.3,
                          workers: opt.DegradationWorkers = 0,
                          eval_dir: Annotated[Path, typer.Option(
                              "--eval-dir", help="Evaluation images that must not be among the training photos.")]
                          = Path("../shared/data/eval")) -> None:
    """Degrade training crops and store a teacher's restoration of each (resumable; run it in the background).

    Training reads the cache with ``--teacher-cache``: its samples are the same stream of crops a
    training run with the same crop options would draw.
    """
    import torch

    from qusr_cli.devices import resolve_device
    from qusr_cli.train.dataset import list_images
    from qusr_cli.train.loop import autocast_dtype
    from qusr_cli.train.teacher_cache import build_teacher_cache, check_disjoint, file_digest
    from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint
    from qusr_cli.weights.header import provenance

    torch.set_num_threads(threads)
    with _data_errors():
        files = list_images(data)[:max_images or None]
        digests = check_disjoint(files, eval_dir)
    dataset = _crops(data, crop=crop, seed=seed, **_photo_options(max_images, hr_scales, min_detail, light_share))
    run_device = resolve_device(device)
    net = load_checkpoint(teacher, role="aux", device=run_device)
    if run_device.type == "cpu":
        net.to(memory_format=torch.channels_last)  # oneDNN's blocked kernels, as the engine does
    description = {"data": data.name, "photos": {p.name: digest[:16] for p, digest in digests.items()},
                   "teacher": {"sha256": file_digest(teacher), "arch": net.arch_name,
                               **provenance(checkpoint_info(teacher))}}

    def report(progress) -> None:
        typer.echo(f"shard {progress.shard}/{progress.shards}  {progress.samples_per_s:.2f} samples/s", err=True)

    with _data_errors():
        shards = build_teacher_cache(dataset, net, out, count=count, description=description, shard_size=shard_size,
                                     batch=batch, autocast_dtype=autocast_dtype(run_device, amp), workers=workers,
                                     progress=report)
    typer.echo(f"{out}: {shards} shards, {shards * shard_size} samples")

"""`qusr train aux|critic|denoiser`: train the three models of the embedded default on HR photos.

Each command writes ``<out>/<role>.safetensors`` (EMA weights, fp16, loadable by the engine as it is),
``<out>/log.jsonl`` and ``<out>/resume/``; running the same command again continues from there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated

import torch
import typer

from qusr_cli.cli.common import one_line_errors
from qusr_cli.errors import InputError
from qusr_cli.train.dataset import DegradedCrops, make_loader
from qusr_cli.train import distributed
from qusr_cli.train.loop import LoopConfig, train
from qusr_cli.train.validate import DEFAULT_VAL_DIR, load_pairs, niqe_fits


class AuxUpsample(str, Enum):
    bicubic = "bicubic"
    nearest = "nearest"


class ResidualBase(str, Enum):
    blend = "blend"
    aux = "aux"
    up = "up"
    none = "none"


train_app = typer.Typer(help="Train the aux net, the learned critic or the denoiser on a folder of HR photos.",
                        no_args_is_help=True)


@train_app.callback()
def _under_torchrun() -> None:
    """Launched by torchrun, only rank 0 prints (see qusr_cli/train/distributed.py)."""
    distributed.quiet_other_ranks()

DataOpt = Annotated[Path, typer.Option("--data", help="Folder of clean HR photos.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Run folder: checkpoint, log.jsonl, resume state.")]
StepsOpt = Annotated[int, typer.Option("--steps", min=1, help="Total optimizer steps.")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="Crops per step.")]
CropOpt = Annotated[int, typer.Option("--crop", min=16, help="HR crop size (multiple of 4; LR is crop/4).")]
LrOpt = Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, help="PyTorch threads (1 is fastest on a busy CPU).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds crops, degradations and the loop.")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from <out>/resume if present.")]
ValEveryOpt = Annotated[int, typer.Option("--val-every", min=0, help="Validate every N steps (0: never).")]
SaveEveryOpt = Annotated[int, typer.Option("--save-every", min=1, help="Save weights + resume state every N steps.")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, help="DataLoader worker processes for degradations.")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Linear warm-up steps.")]
AmpOpt = Annotated[str, typer.Option("--amp", help="auto (bf16 on CUDA only), bf16, fp16 or none.")]
ValDirOpt = Annotated[Path, typer.Option("--val-dir", help="Paired lq/ gt/ folder for validation.")]
MaxImagesOpt = Annotated[int, typer.Option("--max-images", min=0, help="Use only the first N photos (0: all).")]


def _numbers(text: str, kind: type) -> tuple:
    try:
        return tuple(kind(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated {kind.__name__}s, got {text!r}") from None


MinDetailOpt = Annotated[float, typer.Option(
    "--min-detail", min=0.0, help="Redraw HR crops whose mean neighbour difference (8-bit luma levels) is "
                                  "below this (0: keep every crop).")]
LightShareOpt = Annotated[float, typer.Option(
    "--light-share", min=0.0, max=1.0, help="Share of crops degraded with the milder first-order LIGHT preset "
                                            "instead of the Real-ESRGAN pipeline.")]
HrScalesOpt = Annotated[str, typer.Option(
    "--hr-scales", help="Photos are also shrunk by these factors and crops drawn from every level "
                        "(1: as they are).")]


def _one_line_errors(command: Callable) -> Callable:
    """Run a command inside :func:`one_line_errors`, as the other commands do."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        with one_line_errors():
            return command(*args, **kwargs)
    return wrapper


@contextmanager
def _data_errors() -> Iterator[None]:
    """A missing data folder, a folder without photos or bad crop options end the command with one line."""
    try:
        yield
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _crops(data: Path, **options) -> DegradedCrops:
    with _data_errors():
        return DegradedCrops(data, **options)


def _loop_config(steps: int, batch: int, lr: float, threads: int, device: str, seed: int, val_every: int,
                 save_every: int, workers: int, warmup: int, amp: str) -> LoopConfig:
    # Seeded before the task builds its model, so the initial weights repeat too.
    torch.manual_seed(seed)
    return LoopConfig(steps=steps, batch=batch, lr=lr, threads=threads, device=device, seed=seed,
                      val_every=val_every, save_every=save_every, num_workers=workers,
                      warmup=min(warmup, max(1, steps // 10)), amp=amp)


def _pairs(val_dir: Path, val_every: int):
    return load_pairs(val_dir) if val_every and (val_dir / "lq").is_dir() else None


def _train(task, dataset: DegradedCrops, data: Path, out: Path, crop: int, config: LoopConfig, resume: bool,
           extra: dict | None = None) -> None:
    info = {"data": str(data.resolve()), "crop": crop, "images": len(dataset.images),
            "hr_scales": list(dataset.hr_scales), "min_detail": dataset.min_detail,
            "degradation": dataset.config.as_dict(), "light_share": dataset.light_share,
            **({"light_degradation": dataset.light_config.as_dict()} if dataset.light_share else {}),
            **(extra or {})}
    path = train(task, lambda start: make_loader(dataset, config.batch, start, config.steps, config.num_workers),
                 config, out, resume=resume, info=info)
    typer.echo(str(path))


@train_app.command("aux")
@_one_line_errors
def aux_command(data: DataOpt, out: OutOpt, steps: StepsOpt = 2000, batch: BatchOpt = 16, crop: CropOpt = 256,
                lr: LrOpt = 5e-4, threads: ThreadsOpt = 1, device: DeviceOpt = "auto", seed: SeedOpt = 0,
                resume: ResumeOpt = True, val_every: ValEveryOpt = 500, save_every: SaveEveryOpt = 100,
                workers: WorkersOpt = 1, warmup: WarmupOpt = 100, amp: AmpOpt = "auto",
                val_dir: ValDirOpt = DEFAULT_VAL_DIR, max_images: MaxImagesOpt = 0,
                hr_scales: HrScalesOpt = "1,0.7,0.5,0.35", min_detail: MinDetailOpt = 6.0,
                light_share: LightShareOpt = 0.0,
                num_feat: Annotated[int, typer.Option("--width", help="CompactSR channels.")] = 48,
                num_conv: Annotated[int, typer.Option("--depth", help="CompactSR 3x3 conv layers.")] = 10,
                upsample: Annotated[AuxUpsample, typer.Option(
                    "--upsample", help="What g's output is a residual over.")] = AuxUpsample.bicubic) -> None:
    """Auxiliary fidelity net g (CompactSR), L1 to the HR crop."""
    from qusr_cli.train.aux import AuxTask

    config = _loop_config(steps, batch, lr, threads, device, seed, val_every, save_every, workers, warmup, amp)
    task = AuxTask(num_feat=num_feat, num_conv=num_conv, upsample=upsample.value, val_pairs=_pairs(val_dir, val_every))
    dataset = _crops(data, crop=crop, seed=seed, images=slice(max_images or None),
                     hr_scales=_numbers(hr_scales, float), min_detail=min_detail, light_share=light_share)
    _train(task, dataset, data, out, crop, config, resume)


@train_app.command("critic")
@_one_line_errors
def critic_command(data: DataOpt, out: OutOpt, steps: StepsOpt = 600, batch: BatchOpt = 32, crop: CropOpt = 256,
                   lr: LrOpt = 1e-3, threads: ThreadsOpt = 1, device: DeviceOpt = "auto", seed: SeedOpt = 0,
                   resume: ResumeOpt = True, val_every: ValEveryOpt = 200, save_every: SaveEveryOpt = 100,
                   workers: WorkersOpt = 1, warmup: WarmupOpt = 50, amp: AmpOpt = "auto",
                   light_share: LightShareOpt = 0.0,
                   held_out: Annotated[int, typer.Option("--held-out", min=1,
                                                         help="Degraded crops of held-out photos to score.")] = 192,
                   width: Annotated[int, typer.Option("--width", help="CriticNet base channels.")] = 32) -> None:
    """Learned critic: regress noise σ, blur σ, JPEG quality and severity from the LR image.

    Every 12th photo (from the 6th) is held out of training; validation scores the critic on fixed
    degraded crops of those.
    """
    from qusr_cli.train.critic import CriticTask, held_out_images
    from qusr_cli.train.dataset import fixed_batch, list_images

    config = _loop_config(steps, batch, lr, threads, device, seed, val_every, save_every, workers, warmup, amp)
    with _data_errors():
        count = len(list_images(data))
    holdout = held_out_images(count)
    train_images = [i for i in range(count) if i not in holdout]
    evaluation = fixed_batch(_crops(data, crop=crop, seed=seed + 1_000_003, images=holdout,
                                    light_share=light_share), range(held_out))
    task = CriticTask(width=width, held_out=evaluation)
    dataset = _crops(data, crop=crop, seed=seed, images=train_images, light_share=light_share)
    _train(task, dataset, data, out, crop, config, resume,
           {"held_out_images": [list_images(data)[i].name for i in holdout]})


@train_app.command("denoiser")
@_one_line_errors
def denoiser_command(data: DataOpt, out: OutOpt,
                     aux: Annotated[Path, typer.Option("--aux", help="Trained aux checkpoint (frozen g).")],
                     steps: StepsOpt = 4000, batch: BatchOpt = 8, crop: CropOpt = 256, lr: LrOpt = 2e-4,
                     threads: ThreadsOpt = 1, device: DeviceOpt = "auto", seed: SeedOpt = 0,
                     resume: ResumeOpt = True, val_every: ValEveryOpt = 500, save_every: SaveEveryOpt = 100,
                     workers: WorkersOpt = 1, warmup: WarmupOpt = 200, amp: AmpOpt = "auto",
                     val_dir: ValDirOpt = DEFAULT_VAL_DIR, max_images: MaxImagesOpt = 0,
                     hr_scales: HrScalesOpt = "1,0.7,0.5,0.35", min_detail: MinDetailOpt = 6.0,
                     light_share: LightShareOpt = 0.0,
                     critic: Annotated[Path | None, typer.Option(
                         "--critic", help="Learned critic checkpoint; without it every prior is written "
                                          "from the true parameters.")] = None,
                     width: Annotated[int, typer.Option("--width", help="UNet base width.")] = 32,
                     aux_error: Annotated[float | None, typer.Option(
                         "--aux-error", min=1e-3, help="σ_g of the blend: RMS error of g on [0, 1] pixels "
                                                       "(default: measured on 64 training crops).")] = None,
                     residual_base: Annotated[ResidualBase, typer.Option(
                         "--residual-base", help="What the UNet's output is added to: blend (of x_τ and g, "
                                                 "weighted by their noise), aux (g), up (bicubic) or none.")]
                     = ResidualBase.blend,
                     channel_mult: Annotated[str, typer.Option("--channel-mult", help="Width multipliers per level.")]
                     = "1,2,2",
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
                                                             "noise the last call cannot remove.")] = 0.0) -> None:
    """Residual-shift denoiser, with the frozen aux net g and critique priors."""
    from qusr_cli.prior.learned_critic import LearnedCritic
    from qusr_cli.train.denoiser import DenoiserTask, measure_aux_error
    from qusr_cli.uncertainty import DEFAULT_FLOOR, DEFAULT_PSI_MAX
    from qusr_cli.weights.checkpoint import load_checkpoint

    config = _loop_config(steps, batch, lr, threads, device, seed, val_every, save_every, workers, warmup, amp)
    encoder = None
    if text:
        from qusr_cli.prior.text_encoder import TextEncoder

        encoder = TextEncoder(source="minilm").encode
    aux_net = load_checkpoint(aux, role="aux")
    dataset = _crops(data, crop=crop, seed=seed, images=slice(max_images or None),
                     hr_scales=_numbers(hr_scales, float), min_detail=min_detail, light_share=light_share)
    if aux_error is None and residual_base is ResidualBase.blend:
        aux_error = measure_aux_error(aux_net, dataset)
        typer.echo(f"σ_g of g on 64 training crops: {aux_error:.4f}")
    task = DenoiserTask(aux_net, encoder,
                        critic=LearnedCritic(critic) if critic else None, base_width=width,
                        channel_mult=_numbers(channel_mult, int), residual_base=residual_base.value,
                        fft_weight=fft_weight, **({} if aux_error is None else {"aux_error": aux_error}),
                        null_prob=null_prob, critic_prob=critic_prob, val_pairs=_pairs(val_dir, val_every),
                        noise_scale=noise_scale, last_noise_scale=last_noise_scale)
    # The engine reads these two entries back from the header to sample as the denoiser was trained.
    diffusion = {"floor": DEFAULT_FLOOR, "psi_max": DEFAULT_PSI_MAX, **({"text_encoder": "minilm"} if text else {})}
    _train(task, dataset, data, out, crop, config, resume,
           {"aux": str(aux.resolve()), "critic": str(critic.resolve()) if critic else None, "text_prior": text,
            "scheduler": task.scheduler.config, "diffusion": diffusion})


@train_app.command("validate")
@_one_line_errors
def validate_command(aux: Annotated[Path, typer.Option("--aux", help="Aux checkpoint (g).")],
                     denoiser: Annotated[Path | None, typer.Option("--denoiser", help="Denoiser checkpoint.")] = None,
                     critic: Annotated[Path | None, typer.Option(
                         "--critic", help="Learned critic checkpoint: also score qusr with its critique as prior.")]
                     = None,
                     val_dir: ValDirOpt = DEFAULT_VAL_DIR,
                     steps: Annotated[int, typer.Option("--steps", min=1, help="Sampling steps.")] = 5,
                     seed: SeedOpt = 0, threads: ThreadsOpt = 1,
                     noise_scale: Annotated[float | None, typer.Option(
                         "--noise-scale", min=0.0, help="Override the header's posterior-noise scale.")] = None,
                     last_noise_scale: Annotated[float | None, typer.Option(
                         "--last-noise-scale", min=0.0, help="Override the header's last-step noise scale.")] = None,
                     json_out: Annotated[Path | None, typer.Option("--json", help="Also write the scores here.")]
                     = None) -> None:
    """Score bicubic, g alone and qusr (null prior, and learned-critic prior) on a paired LR/GT set.

    A set too small for NIQE (``niqe_fits``) gets no NIQE column.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from qusr_cli.bundle import DiffusionSettings
    from qusr_cli.train.validate import evaluate
    from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint

    torch.set_num_threads(threads)
    pairs = load_pairs(val_dir)
    niqe = niqe_fits(pairs.gt)
    aux_net = load_checkpoint(aux, role="aux")
    results = {"bicubic": evaluate("bicubic", pairs, niqe=niqe),
               "aux (g alone)": evaluate("aux", pairs, aux_net=aux_net, niqe=niqe)}
    if denoiser is not None:
        model = load_checkpoint(denoiser, role="denoiser")
        scheduler = DiffusionSettings.from_info(checkpoint_info(denoiser)).scheduler()
        overrides = {"noise_scale": noise_scale, "last_noise_scale": last_noise_scale}
        scheduler = replace(scheduler, **{k: v for k, v in overrides.items() if v is not None})
        results[f"qusr {steps} steps, null prior"] = evaluate("qusr", pairs, aux_net=aux_net, denoiser=model,
                                                              steps=steps, seed=seed, scheduler=scheduler, niqe=niqe)
        if critic is not None:
            from qusr_cli.prior.learned_critic import LearnedCritic
            from qusr_cli.prior.text_encoder import TextEncoder

            judge, encoder = LearnedCritic(critic), TextEncoder(source="minilm")
            contexts = [encoder.encode(judge.assess(pairs.lr[i:i + 1]).critique) for i in range(len(pairs.lr))]
            results[f"qusr {steps} steps, learned-critic prior"] = evaluate(
                "qusr", pairs, aux_net=aux_net, denoiser=model, steps=steps, seed=seed, contexts=contexts,
                scheduler=scheduler, niqe=niqe)
    table = Table(title=f"{val_dir} ({len(pairs.lr)} pairs), Y channel, 4-px border")
    for column in ("method", "PSNR-Y (dB)", "SSIM-Y", "sharpness (grad. energy / GT)") + (("NIQE",) if niqe else ()):
        table.add_column(column)
    for name, score in results.items():
        table.add_row(name, f"{score['psnr_y']:.2f}", f"{score['ssim_y']:.4f}", f"{score['sharpness']:.3f}",
                      *([f"{score['niqe']:.2f}"] if niqe else []))
    Console().print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2))

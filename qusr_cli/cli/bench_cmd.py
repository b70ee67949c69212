"""`qusr bench`: quality and speed of qusr against bicubic, Lanczos, Real-ESRGAN, g alone and outside tools."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from qusr_cli.cli import options as opt
from qusr_cli.cli.common import parse_numbers
from qusr_cli.cli.groups import grouped
from qusr_cli.options import EngineOptions

DEFAULT_SETS = ("realset65", "imagenet-val32")
BENCH_EXAMPLES = """Examples:

  qusr bench --set realset65 --limit 8 --methods bicubic,aux,qusr --steps-list 5

  qusr bench --set photos/ --methods qusr --speed-sizes 64,256 --speed-repeats 3

  qusr bench --set realset65 --limit 8 --methods bicubic,qusr --steps-list 5 --detail-list 0,0.5,1"""


@grouped(engine=opt.ENGINE.without(critic="auto", allow_download=False))
def bench(
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="Evaluation set: a name under ../shared/data/eval/ (from the repository or the working "
                      "folder) or a folder path; repeat for several. Default: realset65 and imagenet-val32.")] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: bicubic, lanczos, realesrgan, aux, qusr.")]
        = "bicubic,realesrgan,aux,qusr",
    out: Annotated[Path, typer.Option(help="Work folder: cached outputs, results.json, report.md, plots.")]
        = Path("runs/bench"),
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N images of each set.")] = None,
    steps_list: Annotated[str, typer.Option(help="qusr step counts to compare.")] = "1,3,5,10",
    ablations: Annotated[bool, typer.Option(help="Also run qusr with w = 1, with the prior off, and with the "
                                                 "statistics critic instead of the learned one.")] = False,
    ablation_steps: Annotated[int, typer.Option(min=1, max=50, help="Steps for the ablations and best-of-N.")] = 5,
    candidates_list: Annotated[str, typer.Option(help="Best-of-N sizes to compare, e.g. 1,2,4.")] = "",
    detail_list: Annotated[str, typer.Option(help="--detail values (0..1) to compare at --ablation-steps, "
                                                  "e.g. 0,0.25,0.5,1; the crops sheet shows each.")] = "",
    external: Annotated[list[str] | None, typer.Option(
        help="Outside method NAME=CMD; CMD gets {in} (a folder of LR PNGs) and {out} (where to write 4x "
             "images of the same names). Split like a shell line, never run by a shell.")] = None,
    synthetic: Annotated[list[Path] | None, typer.Option(
        help="Folder of clean photos: adds a set of LR/GT pairs made by the Real-ESRGAN degradations "
             "at --seed.")] = None,
    speed_sizes: Annotated[str, typer.Option(help="Square LR sizes for the speed pass ('' to skip it).")]
        = "64,128,256,512",
    speed_repeats: Annotated[int, typer.Option(min=1, help="Timed calls per method and size (median kept).")] = 1,
    memory_sizes: Annotated[str, typer.Option(help="LR sizes WxH for the memory pass: peak RSS of upscaling one "
                                                   "such photo file in a fresh process, e.g. 3000x2000 ('' skips "
                                                   "it; sizes up to 400x300 are also compared with the "
                                                   "unstreamed output).")] = "",
    realesrgan_weights: Annotated[Path | None, typer.Option(
        help="Real-ESRGAN x4plus as a qusr RRDBNet checkpoint (default: OUT/realesrgan-x4plus.safetensors).")]
        = None,
    realesrgan_outputs: Annotated[Path | None, typer.Option(
        help="Folder of Real-ESRGAN outputs made before (e.g. runs/realesrgan-realset65), used instead of "
             "recomputing any that match an input's name and 4x size; without the weights file, only these "
             "are scored.")] = None,
    reuse: Annotated[bool, typer.Option("--reuse/--no-reuse", help="Keep cached outputs, metrics and timings.")]
        = True,
    extra_metrics: Annotated[bool, typer.Option(help="MUSIQ/CLIPIQA/MANIQA/LPIPS when pyiqa and its weights "
                                                     "are installed.")] = True,
    plots: Annotated[bool, typer.Option(help="Write PNG charts (needs matplotlib: the bench extra).")] = True,
    seed: opt.Seed = 0,
    *,
    engine: EngineOptions,
) -> None:
    """Benchmark quality (PSNR/SSIM/NIQE) and speed (time, memory, FLOPs) against baselines.

    Example: qusr bench --set realset65 --methods bicubic,aux,qusr --limit 8 --speed-sizes ''
    """
    from qusr_cli.bench.memory import parse_sizes
    from qusr_cli.bench.methods import EngineConfig, plan_methods
    from qusr_cli.bench.runner import Bench, BenchConfig

    specs = plan_methods([m.strip() for m in methods.split(",") if m.strip()],
                         steps_list=parse_numbers(steps_list, "--steps-list", minimum=1), ablations=ablations,
                         candidates_list=parse_numbers(candidates_list, "--candidates-list", minimum=1),
                         ablation_steps=ablation_steps, externals=external or [],
                         detail_list=parse_numbers(detail_list, "--detail-list", float, minimum=0.0, maximum=1.0))
    engine = EngineConfig(**{**asdict(engine), "weights": str(engine.weights) if engine.weights else None},
                          seed=seed, realesrgan_weights=str(realesrgan_weights) if realesrgan_weights else None)
    config = BenchConfig(sets=list(sets or DEFAULT_SETS), methods=specs, out=out, engine=engine, limit=limit,
                         synthetic=list(synthetic or []),
                         speed_sizes=parse_numbers(speed_sizes, "--speed-sizes", minimum=8),
                         speed_repeats=speed_repeats, memory_sizes=parse_sizes(memory_sizes), reuse=reuse, realesrgan_outputs=realesrgan_outputs,
                         extra_metrics=extra_metrics, plots=plots, ablation_steps=ablation_steps)
    results = Bench(config, log=lambda text: typer.echo(f"qusr bench: {text}", err=True)).run()
    typer.echo((out / "report.md").read_text())
    typer.echo(f"qusr bench: wrote {out / 'report.md'}, {out / 'results.json'}"
               + "".join(f", {p}" for p in results["plots"]), err=True)

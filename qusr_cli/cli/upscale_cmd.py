"""`qusr upscale` (one photo) and `qusr batch` (a folder): thin layers over files.upscale_file."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from qusr_cli.cli import options as opt
from qusr_cli.cli.common import stderr
from qusr_cli.cli.groups import grouped
from qusr_cli.errors import InputError
from qusr_cli.file_jobs import JobOutcome, JobSettings, batch_target, run_file_job
from qusr_cli.files import read_checked, upscale_image
from qusr_cli.heatmaps import save_explanation
from qusr_cli.imageio import IMAGE_SUFFIXES, default_output_path
from qusr_cli.options import EngineOptions, UpscaleOptions


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def upscale(
    source: Annotated[Path, typer.Argument(help="Input image.", show_default=False)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file; its extension picks the format.")] = None,
    scale: opt.Scale = 4.0,
    heatmaps: Annotated[Path | None, typer.Option(help="Also write the uncertainty/noise-weight maps here.")] = None,
    max_pixels: opt.MaxPixels = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    *,
    engine: EngineOptions,
    options: UpscaleOptions,
) -> None:
    """Upscale one photo 4x (or --scale).

    Example: qusr upscale photo.jpg -o photo_4x.png --steps 5 --seed 1
    """
    output = output or default_output_path(source)
    image = read_checked(source, output, max_pixels)
    upscaler = engine.load()
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True, disable=as_json) as bar:
        task = bar.add_task(f"upscaling {source.name}", total=None)
        done = upscale_image(upscaler, image, output, options, scale=scale,
                             progress=lambda n, total: bar.update(task, completed=n, total=total))
    seconds = time.perf_counter() - started
    if heatmaps is not None:
        explanation = upscaler.explain(done.lr, options, prior=done.result.prior)
        save_explanation(explanation, heatmaps, source.stem, upscaler.bundle.settings.floor,
                         upscaler.bundle.settings.psi_max)
    candidates = options.candidates
    summary = {"input": str(source), "output": str(output), "input_size": done.input_size,
               "output_size": done.output_size, "seconds": round(seconds, 3), "steps": options.steps,
               "seed": options.seed, "tile": done.result.tile, "prior": done.result.prior.text,
               "chosen_seed": done.result.seed,
               "candidate_scores": {options.select: done.result.candidate_scores} if candidates > 1 else None}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        if candidates > 1:
            scores = ", ".join(f"{s:.2f}" for s in done.result.candidate_scores)
            stderr.print(f"{options.select} of the {candidates} candidates: {scores}; kept seed {done.result.seed}")
        stderr.print(f"wrote {output} ({done.output_size[0]}x{done.output_size[1]}) in {seconds:.1f} s")


def find_images(folder: Path, recursive: bool, exclude: Path | None) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    found = []
    for path in pattern:
        if exclude is not None and path.resolve().is_relative_to(exclude):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    return sorted(found)


class BatchEngine(str, Enum):
    local = "local"
    ray = "ray"


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of images.", show_default=False)],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Where outputs go (default: FOLDER_qusr).")] = None,
    recursive: Annotated[bool, typer.Option(help="Include subfolders (their layout is kept).")] = False,
    skip_existing: Annotated[bool, typer.Option(help="Leave outputs that already exist alone.")] = False,
    ext: Annotated[str, typer.Option(help="Output format extension.")] = "png",
    scale: opt.Scale = 4.0,
    max_pixels: opt.MaxPixels = None,
    runner: Annotated[BatchEngine, typer.Option(
        "--engine", help="local: this process; ray: Ray Data actors on this machine or a cluster "
                         "(pip install 'qusr\\[ray]').", rich_help_panel="Ray")] = BatchEngine.local,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to join, e.g. auto or ray://head:10001 (default: start a local Ray).",
        rich_help_panel="Ray")] = None,
    actors_per_node: Annotated[int | None, typer.Option(
        min=1, help="Upscalers per node (default: one per GPU, or one per --threads CPUs).",
        rich_help_panel="Ray")] = None,
    gpus_per_actor: Annotated[float | None, typer.Option(
        min=0.0, help="GPUs per upscaler; fractions share a GPU (default: 1 where there are GPUs, else 0).",
        rich_help_panel="Ray")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Files handed to an upscaler at a time.",
                                            rich_help_panel="Ray")] = 1,
    *,
    engine: EngineOptions,
    options: UpscaleOptions,
) -> None:
    """Upscale every image in a folder; one bad file does not stop the rest (exit 1 if any failed).

    Example: qusr batch photos/ -o photos_4x/ --recursive --skip-existing
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    output_dir = output_dir or folder.with_name(folder.name + "_qusr")
    sources = find_images(folder, recursive, output_dir.resolve())
    if not sources:
        raise InputError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    settings = JobSettings(options, scale=scale, max_pixels=max_pixels, skip_existing=skip_existing)
    jobs = [(source, batch_target(folder, output_dir, source, ext)) for source in sources]
    if runner is BatchEngine.ray:
        from qusr_cli.ray_batch import RayLayout, run_on_ray

        rows = run_on_ray(jobs, engine, settings, RayLayout(address, actors_per_node, gpus_per_actor, batch_size))
    else:
        rows = _run_locally(jobs, settings, engine.load())
    failed = _summary(rows, folder, output_dir)
    if failed:
        raise typer.Exit(1)


def _run_locally(jobs, settings: JobSettings, upscaler) -> list[JobOutcome]:
    rows = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr) as bar:
        task = bar.add_task("batch", total=len(jobs))
        for source, target in jobs:
            bar.update(task, description=source.name)
            rows.append(run_file_job(upscaler, source, target, settings))
            bar.advance(task)
    return rows


def _summary(rows: list[JobOutcome], folder: Path, output_dir: Path) -> int:
    table = Table(title=f"qusr batch: {folder} -> {output_dir}")
    for column in ("file", "status", "output / reason", "seconds"):
        table.add_column(column)
    styles = {"ok": "green", "skipped": "yellow", "failed": "red"}
    for source, status, detail, seconds in rows:
        table.add_row(str(source.relative_to(folder)), f"[{styles[status]}]{status}[/]", detail, f"{seconds:.1f}")
    stderr.print(table)
    failed = sum(1 for row in rows if row[1] == "failed")
    stderr.print(f"{len(rows) - failed} done, {failed} failed")
    return failed

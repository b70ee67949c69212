"""`qusr upscale` (one photo) and `qusr batch` (a folder): thin layers over files.py and runner.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table

from qusr_cli.cli import options as opt
from qusr_cli.cli.common import stderr
from qusr_cli.cli.groups import grouped
from qusr_cli.errors import InputError, raise_pending_interrupt
from qusr_cli.files import read_checked, upscale_image
from qusr_cli.heatmaps import save_explanation
from qusr_cli.imageio import IMAGE_SUFFIXES, default_output_path
from qusr_cli.jobs import find_images, plan_jobs, prepare_output_folder
from qusr_cli.options import EngineOptions, UpscaleOptions
from qusr_cli.runner import FileOutcome, JobSettings, upscale_files
from qusr_cli.safe_write import clean_stale_temp_files, make_folder


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
    clean_stale_temp_files(output.parent)
    if heatmaps is not None:
        make_folder(heatmaps, "--heatmaps folder")
    upscaler = engine.load()
    raise_pending_interrupt()
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True, disable=as_json) as bar:
        task = bar.add_task(escape(f"upscaling {source.name}"), total=None)
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
        stderr.print(escape(f"wrote {output} ({done.output_size[0]}x{done.output_size[1]}) in {seconds:.1f} s"))


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of images.", show_default=False)],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Where outputs go (default: FOLDER_qusr).")] = None,
    recursive: Annotated[bool, typer.Option(help="Include subfolders (their layout is kept).")] = False,
    skip_existing: Annotated[bool, typer.Option(help="Leave outputs that already exist alone.")] = False,
    ext: Annotated[str, typer.Option(help="Output format extension.")] = "png",
    scale: opt.Scale = 4.0,
    max_pixels: opt.MaxPixels = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, each with its own model (1: this process).")] = 1,
    prefetch: Annotated[int, typer.Option(min=0, help="Files decoded ahead while the model computes (0: none).")] = 2,
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
    sources = find_images(folder, recursive, output_dir)
    if not sources:
        raise InputError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    jobs, notes = plan_jobs(sources, folder, output_dir, ext)
    prepare_output_folder(output_dir, jobs)
    for note in notes:
        stderr.print(f"qusr: {escape(note)}")
    settings = JobSettings(options, scale=scale, max_pixels=max_pixels, skip_existing=skip_existing)
    outcomes: list[FileOutcome] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    try:
        executor, source = ("processes", engine) if workers > 1 else ("prefetch", engine.load())
        with Progress(*columns, console=stderr) as bar:
            task = bar.add_task("batch", total=len(jobs))

            def advance(outcome: FileOutcome) -> None:
                outcomes.append(outcome)
                bar.update(task, advance=1, description=escape(outcome.job.source.name))

            upscale_files(source, jobs, settings, executor=executor, workers=workers, prefetch=prefetch,
                          on_outcome=advance)
    finally:  # also when interrupted: what was done is said
        failed = _summary(outcomes, len(jobs), folder, output_dir)
    if failed:
        raise typer.Exit(1)


def _summary(outcomes: list[FileOutcome], planned: int, folder: Path, output_dir: Path) -> int:
    table = Table(title=escape(f"qusr batch: {folder} -> {output_dir}"))
    for column in ("file", "status", "output / reason", "seconds"):
        table.add_column(column)
    styles = {"ok": "green", "skipped": "yellow", "failed": "red"}
    for outcome in outcomes:
        table.add_row(escape(str(outcome.job.source.relative_to(folder))),
                      f"[{styles[outcome.status]}]{outcome.status}[/]", escape(outcome.detail), f"{outcome.seconds:.1f}")
    stderr.print(table)
    counts = {status: sum(1 for o in outcomes if o.status == status) for status in styles}
    line = f"{counts['ok']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    if len(outcomes) < planned:
        line += f", {planned - len(outcomes)} not started"
    stderr.print(line)
    return counts["failed"]

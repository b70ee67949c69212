"""`qusr upscale` (one photo) and `qusr batch` (a folder): thin layers over files.upscale_file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from qusr_cli.cli import options as opt
from qusr_cli.cli.common import stderr
from qusr_cli.cli.groups import grouped
from qusr_cli.errors import InputError, QusrError
from qusr_cli.files import read_checked, upscale_file, upscale_image
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


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of images.", show_default=False)],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Where outputs go (default: FOLDER_qusr).")] = None,
    recursive: Annotated[bool, typer.Option(help="Include subfolders (their layout is kept).")] = False,
    skip_existing: Annotated[bool, typer.Option(help="Leave outputs that already exist alone.")] = False,
    ext: Annotated[str, typer.Option(help="Output format extension.")] = "png",
    scale: opt.Scale = 4.0,
    max_pixels: opt.MaxPixels = None,
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
    upscaler = engine.load()
    rows = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr) as bar:
        task = bar.add_task("batch", total=len(sources))
        for source in sources:
            target = (output_dir / source.relative_to(folder)).with_suffix("." + ext.lstrip("."))
            bar.update(task, description=source.name)
            started = time.perf_counter()
            if skip_existing and target.exists():
                rows.append((source, "skipped", "exists", 0.0))
            else:
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    done = upscale_file(upscaler, source, target, options, scale=scale, max_pixels=max_pixels)
                    rows.append((source, "ok", f"{done.output_size[0]}x{done.output_size[1]}",
                                 time.perf_counter() - started))
                except QusrError as exc:
                    rows.append((source, "failed", str(exc), time.perf_counter() - started))
            bar.advance(task)
    failed = _summary(rows, folder, output_dir)
    if failed:
        raise typer.Exit(1)


def _summary(rows, folder: Path, output_dir: Path) -> int:
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

"""`qusr upscale` (files, globs, `-`) and `qusr batch` (a folder): thin layers over files.upscale_file.

Paths are planned and checked (qusr_cli.plan) before the model loads; the engine is imported inside
the commands so that `qusr --help` does not load torch.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from qusr_cli.cli import options as opt
from qusr_cli.cli.groups import grouped
from qusr_cli.cli.output import Output
from qusr_cli.errors import InputError, QusrError
from qusr_cli.formats import OUTPUT_FORMATS
from qusr_cli.options import EngineOptions, UpscaleOptions
from qusr_cli.plan import (DEFAULT_SUFFIX, STDIO, Job, expand_inputs, explain_empty_folder, find_images,
                            make_folders, plan_jobs)

UPSCALE_EXAMPLES = """Examples:

  qusr upscale photo.jpg                      # writes photo_qusr.jpg next to it

  qusr upscale photo.jpg -o big.avif --steps 5 --seed 7

  qusr upscale a.jpg b.png "scans/*.tif" -o out/ --suffix _x4

  cat photo.jpg | qusr upscale - -o - > big.png

  qusr upscale photo.jpg -o out.png --heatmaps maps/ --json"""

BATCH_EXAMPLES = """Examples:

  qusr batch photos/                          # writes photos_qusr/, same names

  qusr batch photos/ -o photos_x4/ --recursive --ext avif

  qusr batch photos/ -o photos/ --suffix _x4 --overwrite --json"""


def _load(engine: EngineOptions, out: Output):
    with out.status("loading model…"):  # the engine's import (torch) is part of it
        return engine.load()


class BatchEngine(str, Enum):
    local = "local"
    ray = "ray"


@dataclass
class Row:
    source: Path
    status: str            # done, skipped or failed
    detail: str            # output size, or why it was skipped or failed
    output: Path
    seconds: float = 0.0
    summary: dict | None = None


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def upscale(
    sources: Annotated[list[str], typer.Argument(help="Image files, globs (quote them), or - for stdin.",
                                                 show_default=False)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (its extension picks the "
                                                "format; - for PNG on stdout), or a folder for several inputs.")] = None,
    suffix: opt.Suffix = None, overwrite: opt.Overwrite = False, scale: opt.Scale = 4.0,
    heatmaps: Annotated[Path | None, typer.Option(help="Also write the uncertainty/noise-weight maps here.")] = None,
    max_pixels: opt.MaxPixels = None, as_json: opt.Json = False, quiet: opt.Quiet = False,
    *,
    engine: EngineOptions,
    options: UpscaleOptions,
) -> None:
    """Upscale photos 4x (or --scale). An existing output is left alone unless --overwrite."""
    out = Output(quiet=quiet, as_json=as_json)
    inputs = expand_inputs(sources)
    if output is not None and len(inputs) > 1:
        if not output.is_dir() and (output.exists() or output.suffix.lower() in OUTPUT_FORMATS):
            raise InputError(f"{output}: {len(inputs)} inputs need -o to be a folder, not a file")
        make_folders([output])
    jobs = plan_jobs(inputs, output, suffix=suffix, ext=None, overwrite=overwrite)
    if as_json and any(job.target == STDIO for job in jobs):
        raise InputError("--json and an image on stdout cannot share it; give -o a file")
    if len(jobs) == 1 and jobs[0].skip:
        raise InputError(f"{jobs[0].target}: exists; use --overwrite to replace it")
    rows, loading = _run(jobs, engine, options, out, scale=scale, max_pixels=max_pixels, heatmaps=heatmaps,
                         stop_on_error=len(jobs) == 1)
    if len(rows) == 1:
        _report_one(rows[0], loading, out, options)
    elif _summary(rows, loading, out, title="qusr upscale"):
        raise typer.Exit(1)


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of images.", show_default=False)],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Where outputs go (default: FOLDER_qusr).")] = None,
    recursive: Annotated[bool, typer.Option(help="Include subfolders (their layout is kept).")] = False,
    ext: Annotated[str, typer.Option(help="Output format extension.")] = "png",
    suffix: opt.Suffix = None, overwrite: opt.Overwrite = False, scale: opt.Scale = 4.0,
    heatmaps: Annotated[Path | None, typer.Option(help="Also write each photo's uncertainty/noise-weight maps here.")] = None,
    max_pixels: opt.MaxPixels = None, as_json: opt.Json = False, quiet: opt.Quiet = False,
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
    """Upscale every image in a folder; one bad file does not stop the rest (exit 1 if any failed)."""
    out = Output(quiet=quiet, as_json=as_json)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    if runner is BatchEngine.ray and heatmaps is not None:
        raise InputError("--heatmaps works with the local engine only")
    output_dir = output_dir or folder.with_name(folder.name + "_qusr")
    in_place = output_dir.resolve() == folder.resolve()
    if in_place and not suffix:
        suffix = DEFAULT_SUFFIX  # outputs beside their inputs need names of their own
    sources = find_images(folder, recursive, output_dir.resolve())
    if in_place:  # earlier outputs are not inputs
        sources = [s for s in sources if not s.stem.endswith(suffix)]
    if not sources:
        raise InputError(explain_empty_folder(folder, recursive))
    jobs = plan_jobs(sources, output_dir, suffix=suffix, ext=ext, overwrite=overwrite, base=folder)
    make_folders(sorted({job.target.parent for job in jobs if not job.skip}))
    if runner is BatchEngine.ray:
        rows = _run_on_ray(jobs, engine, options, scale=scale, max_pixels=max_pixels, address=address,
                           actors_per_node=actors_per_node, gpus_per_actor=gpus_per_actor, batch_size=batch_size)
        loading = 0.0  # each actor loads its own model; Ray's log shows it
    else:
        rows, loading = _run(jobs, engine, options, out, scale=scale, max_pixels=max_pixels, heatmaps=heatmaps,
                             stop_on_error=False, base=folder)
    if _summary(rows, loading, out, title=f"qusr batch: {folder} -> {output_dir}"):
        raise typer.Exit(1)


def _run(jobs: list[Job], engine: EngineOptions, options: UpscaleOptions, out: Output, *, scale: float,
         max_pixels: int | None, heatmaps: Path | None, stop_on_error: bool,
         base: Path | None = None) -> tuple[list[Row], float]:
    """Load once, then upscale each job; returns the rows and the seconds spent loading (imports included)."""
    rows = [Row(job.source, "skipped", job.skip, job.target) for job in jobs if job.skip]
    todo = [job for job in jobs if not job.skip]
    if not todo:
        return rows, 0.0
    started = time.perf_counter()
    upscaler = _load(engine, out)
    loading = time.perf_counter() - started
    encoder = upscaler.text_encoder
    with out.progress() as bar:
        files = bar.add_task("files", total=len(todo)) if len(todo) > 1 else None
        for job in todo:
            name = "stdin" if job.source == STDIO else job.source.name
            steps = bar.add_task(f"upscaling {name}", total=None)
            if encoder is not None:  # a new critique loads the text encoder first: say so on the bar
                encoder.on_load = lambda steps=steps: bar.update(steps, description="loading the text encoder…")
            encoder_before = getattr(encoder, "load_seconds", 0.0)
            started = time.perf_counter()
            try:
                # refresh=True draws every step at once: a step takes far longer than a redraw
                done = _upscale_job(upscaler, job, options, scale, max_pixels,
                                    lambda n, total, steps=steps, name=name: bar.update(
                                        steps, completed=n, total=total, description=f"upscaling {name}",
                                        refresh=True))
            except QusrError as exc:
                if stop_on_error:
                    raise
                rows.append(Row(job.source, "failed", str(exc), job.target, time.perf_counter() - started))
            else:
                loaded = getattr(encoder, "load_seconds", 0.0) - encoder_before
                loading += loaded
                row = Row(job.source, "done", f"{done.output_size[0]}x{done.output_size[1]}", job.target,
                          time.perf_counter() - started - loaded, _file_summary(done, job, options))
                if heatmaps is not None:
                    row.summary["heatmaps"] = _write_heatmaps(upscaler, done, options, heatmaps, job, base, out)
                rows.append(row)
            bar.remove_task(steps)
            if files is not None:
                bar.advance(files)
    return rows, loading


def _run_on_ray(jobs: list[Job], engine: EngineOptions, options: UpscaleOptions, *, scale: float,
                max_pixels: int | None, **layout) -> list[Row]:
    """The jobs still to do, on Ray actors (see qusr_cli/ray_batch.py); skips were decided here, as locally."""
    from qusr_cli.file_jobs import JobSettings
    from qusr_cli.ray_batch import RayLayout, run_on_ray

    rows = [Row(job.source, "skipped", job.skip, job.target) for job in jobs if job.skip]
    todo = [job for job in jobs if not job.skip]
    outcomes = run_on_ray([(job.source, job.target) for job in todo], engine, JobSettings(options, scale, max_pixels),
                          RayLayout(**layout)) if todo else []
    return rows + [Row(job.source, o.status, o.detail, job.target, o.seconds) for job, o in zip(todo, outcomes)]


def _upscale_job(upscaler, job: Job, options: UpscaleOptions, scale: float, max_pixels: int | None, progress):
    from qusr_cli.files import upscale_file

    with tempfile.TemporaryDirectory(prefix="qusr-stdio-") as scratch:
        source, target = job.source, job.target
        if source == STDIO:
            source = Path(scratch) / "stdin"
            source.write_bytes(sys.stdin.buffer.read())
        if target == STDIO:
            target = Path(scratch) / "stdout.png"
        done = upscale_file(upscaler, source, target, options, scale=scale, max_pixels=max_pixels, progress=progress)
        if job.target == STDIO:
            with target.open("rb") as encoded:
                shutil.copyfileobj(encoded, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return done


def _write_heatmaps(upscaler, done, options, folder: Path, job: Job, base: Path | None, out: Output) -> list[str]:
    from qusr_cli.heatmaps import explanation_in_words, save_explanation

    stem = "stdin" if job.source == STDIO else (
        job.source.relative_to(base).with_suffix("").as_posix().replace("/", "_") if base else job.source.stem)
    explanation = upscaler.explain(done.lr, options, prior=done.result.prior)
    settings = upscaler.bundle.settings
    words = explanation_in_words(explanation, settings.floor, upscaler.plain_sr)
    written = save_explanation(explanation, folder, stem, settings.floor, settings.psi_max, words)
    out.note(f"heatmaps: wrote {', '.join(str(p) for p in written)}")
    return [str(p) for p in written]


def _file_summary(done, job: Job, options) -> dict:
    result = done.result
    return {"input": "-" if job.source == STDIO else str(job.source),
            "output": "-" if job.target == STDIO else str(job.target),
            "input_size": done.input_size, "output_size": done.output_size, "steps": options.steps,
            "seed": options.seed, "tile": result.tile, "prior": result.prior.text, "chosen_seed": result.seed,
            "candidate_scores": result.candidate_scores or None}


def _report_one(row: Row, loading: float, out: Output, options: UpscaleOptions) -> None:
    summary = row.summary
    summary.update(seconds=round(loading + row.seconds, 3), loading_seconds=round(loading, 3),
                   work_seconds=round(row.seconds, 3))
    if summary["candidate_scores"]:
        select = options.select
        summary["candidate_scores"] = {select: summary["candidate_scores"]}
        scores = ", ".join(f"{s:.2f}" for s in summary["candidate_scores"][select])
        out.note(f"{select} of the {options.candidates} candidates: {scores}; kept seed {summary['chosen_seed']}")
    out.result(summary)
    written = "PNG to standard output" if summary["output"] == "-" else summary["output"]
    out.note(f"wrote {written} ({row.detail}) in {loading + row.seconds:.1f} s: "
             f"{loading:.1f} s loading the model, {row.seconds:.1f} s upscaling")


def _summary(rows: list[Row], loading: float, out: Output, title: str) -> int:
    """Print the table (or JSON) and the done/skipped/failed counts; returns how many failed."""
    counts = {status: sum(row.status == status for row in rows) for status in ("done", "skipped", "failed")}
    work = sum(row.seconds for row in rows)
    payload = {**counts, "loading_seconds": round(loading, 3), "work_seconds": round(work, 3),
               "files": [{"input": str(row.source), "output": str(row.output), "status": row.status,
                          "detail": row.detail, "seconds": round(row.seconds, 3)} for row in rows]}

    def table() -> Table:
        shown = Table(title=escape(title))
        for column in ("file", "status", "output / reason", "seconds"):
            shown.add_column(column)
        styles = {"done": "green", "skipped": "yellow", "failed": "red"}
        for row in rows:
            shown.add_row(escape(str(row.source)), f"[{styles[row.status]}]{row.status}[/]", escape(row.detail),
                          f"{row.seconds:.1f}")
        return shown

    if out.as_json:
        out.result(payload)
    else:
        out.show(table)
    out.note(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed "
             f"({loading:.1f} s loading the model, {work:.1f} s upscaling)")
    return counts["failed"]

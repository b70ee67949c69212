"""`qusr upscale` (files, globs, `-`) and `qusr batch` (a folder): jobs planned by qusr_cli.plan, run by
the file-job runner (qusr_cli.runner), reported here.

Paths are planned and checked before the model loads; the engine is imported inside the commands so
that `qusr --help` does not load torch.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from qusr_cli.cli import options as opt
from qusr_cli.cli.groups import grouped
from qusr_cli.cli.output import Output
from qusr_cli.errors import FileFailed, InputError
from qusr_cli.formats import OUTPUT_FORMATS
from qusr_cli.options import DETAIL_MIN_STEPS, EngineOptions, UpscaleOptions
from qusr_cli.plan import (DEFAULT_SUFFIX, STDIO, Job, expand_inputs, explain_empty_folder, find_images, plan_jobs,
                           prepare_output_folders)
from qusr_cli.safe_write import make_folder

log = logging.getLogger("qusr")

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


class BatchEngine(str, Enum):
    local = "local"
    ray = "ray"


@dataclass
class Row:
    job: Job               # as planned: its source or output may be "-"
    status: str            # done, skipped or failed
    detail: str            # output size, or why it was skipped or failed
    seconds: float = 0.0   # work only: loading the text encoder counts as loading
    summary: dict | None = None
    exit_code: int = 0


@dataclass
class Run:
    """A run so far: rows in the order jobs finish, and the seconds spent loading (imports included)."""

    planned: int
    rows: list[Row]
    loading: float = 0.0
    base: Path | None = None  # the batch's folder: the summary names files relative to it


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def upscale(
    sources: Annotated[list[str], typer.Argument(help="Image files, globs (quote them), or - for stdin.",
                                                 show_default=False)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (its extension picks the "
                                                "format; - for PNG on stdout), or a folder for several inputs.")] = None,
    suffix: opt.Suffix = None, overwrite: opt.Overwrite = False, scale: opt.Scale = 4.0,
    heatmaps: Annotated[Path | None, typer.Option(help="Also write the uncertainty/noise-weight maps here.")] = None,
    max_pixels: opt.MaxPixels = None, workers: opt.Workers = 1, prefetch: opt.Prefetch = 2,
    as_json: opt.Json = False, quiet: opt.Quiet = False,
    *,
    engine: EngineOptions,
    options: UpscaleOptions,
) -> None:
    """Upscale photos 4x (or --scale). An existing output is left alone unless --overwrite."""
    out = Output(quiet=quiet, as_json=as_json)
    inputs = expand_inputs(sources)
    folder = output if output is not None and len(inputs) > 1 else None
    if folder is not None and not folder.is_dir() and (folder.exists() or folder.suffix.lower() in OUTPUT_FORMATS):
        raise InputError(f"{folder}: {len(inputs)} inputs need -o to be a folder, not a file")
    jobs, notes = plan_jobs(inputs, output, suffix=suffix, overwrite=overwrite)
    if as_json and any(job.output == STDIO for job in jobs):
        raise InputError("--json and an image on stdout cannot share it; give -o a file")
    if len(jobs) == 1 and jobs[0].skip:
        raise InputError(f"{jobs[0].output}: exists; use --overwrite to replace it")
    run = _run(jobs, notes, engine, options, out, scale=scale, max_pixels=max_pixels, heatmaps=heatmaps,
               workers=workers, prefetch=prefetch, output_dir=folder, what="-o folder",
               title=None if len(jobs) == 1 else "qusr upscale")
    if len(jobs) == 1:
        _report_one(run, out, options)
    elif _failed(run):
        raise typer.Exit(1)


@grouped(engine=opt.ENGINE, options=opt.SAMPLING)
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of images.", show_default=False)],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Where outputs go (default: FOLDER_qusr).")] = None,
    recursive: Annotated[bool, typer.Option(help="Include subfolders (their layout is kept).")] = False,
    ext: Annotated[str, typer.Option(help="Output format extension.")] = "png",
    suffix: opt.Suffix = None, overwrite: opt.BatchOverwrite = False, scale: opt.Scale = 4.0,
    heatmaps: Annotated[Path | None, typer.Option(help="Also write each photo's uncertainty/noise-weight maps here.")] = None,
    max_pixels: opt.MaxPixels = None, workers: opt.Workers = 1, prefetch: opt.Prefetch = 2,
    as_json: opt.Json = False, quiet: opt.Quiet = False,
    runner: Annotated[BatchEngine, typer.Option(
        "--engine", help="local: this machine's processes (--workers); ray: Ray Data actors on this machine or a "
                         "cluster (pip install 'qusr\\[ray]').", rich_help_panel="Ray")] = BatchEngine.local,
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
    ray = None
    if runner is BatchEngine.ray:
        from qusr_cli.ray_batch import RayLayout, import_ray

        import_ray()  # a missing extra is said before anything is planned or made
        ray = RayLayout(address, actors_per_node, gpus_per_actor, batch_size)
    output_dir = output_dir or folder.with_name(folder.name + "_qusr")
    in_place = output_dir.resolve() == folder.resolve()
    if in_place and not suffix:
        suffix = DEFAULT_SUFFIX  # outputs beside their inputs need names of their own
    sources = find_images(folder, recursive, output_dir)
    if in_place:  # earlier outputs are not inputs
        sources = [s for s in sources if not s.stem.endswith(suffix)]
    if not sources:
        raise InputError(explain_empty_folder(folder, recursive))
    jobs, notes = plan_jobs(sources, output_dir, suffix=suffix, ext=ext, overwrite=overwrite, base=folder)
    run = _run(jobs, notes, engine, options, out, scale=scale, max_pixels=max_pixels, heatmaps=heatmaps,
               workers=workers, prefetch=prefetch, output_dir=output_dir, what="--output-dir",
               title=f"qusr batch: {folder} -> {output_dir}", base=folder, ray=ray)
    if _failed(run):
        raise typer.Exit(1)


def _run(jobs: list[Job], notes: list[str], engine: EngineOptions, options: UpscaleOptions, out: Output, *,
         scale: float, max_pixels: int | None, heatmaps: Path | None, workers: int, prefetch: int,
         output_dir: Path | None, what: str, title: str | None, base: Path | None = None, ray=None) -> Run:
    """Prepare the output folders, load once, run the jobs through the runner (or on Ray, given a
    ``ray_batch.RayLayout``); with a ``title``, the summary follows, also when the run is interrupted
    (what was done is said) but not after an error that ends it (its one line says why)."""
    prepare_output_folders(jobs, output_dir, what)
    if heatmaps is not None:
        make_folder(heatmaps, "--heatmaps folder")
    for note in notes:
        log.warning(note)
    if options.detail_is_inert:
        log.warning("--detail changes nothing at --steps %d: it acts from --steps %d on", options.steps,
                    DETAIL_MIN_STEPS)
    run = Run(len(jobs), [Row(job, "skipped", job.skip) for job in jobs if job.skip], base=base)
    try:
        todo = [job for job in jobs if not job.skip]
        if todo:
            from qusr_cli.runner import JobSettings

            settings = JobSettings(options, scale=scale, max_pixels=max_pixels, heatmaps=heatmaps)
            if ray is not None:
                from qusr_cli.ray_batch import run_on_ray

                # each actor loads its own model; Ray's log shows it
                run.rows += [Row(o.job, o.status, o.detail, o.seconds, o.summary, o.exit_code)
                             for o in run_on_ray(todo, engine, settings, ray)]
            else:
                _execute(todo, run, engine, settings, out, workers=workers, prefetch=prefetch)
    except KeyboardInterrupt:
        if title is not None:
            _summary(run, out, title)
        raise
    if title is not None:
        _summary(run, out, title)
    return run


def _execute(todo: list[Job], run: Run, engine: EngineOptions, settings, out: Output, *, workers: int,
             prefetch: int) -> None:
    from qusr_cli.runner import upscale_files

    with tempfile.TemporaryDirectory(prefix="qusr-stdio-") as scratch:
        planned = {_on_disk(job, Path(scratch)): job for job in todo}
        started = time.perf_counter()
        if workers > 1:  # each worker process loads its own model
            executor, upscaler = "processes", engine
        else:
            executor = "prefetch"
            with out.status("loading model…"):  # the engine's import (torch) is part of it
                upscaler = engine.load()
        run.loading += time.perf_counter() - started
        encoder = getattr(upscaler, "text_encoder", None)
        encoder_seen = getattr(encoder, "load_seconds", 0.0)
        with out.progress() as bar:
            files = bar.add_task("files", total=len(todo)) if len(todo) > 1 else None
            steps = {}

            def on_step(job: Job, done: int, total: int | None) -> None:
                description = f"upscaling {_name(planned[job])}"
                if job not in steps:
                    steps[job] = task = bar.add_task(description, total=None)
                    if encoder is not None:  # a new critique loads the text encoder first: say so on the bar
                        encoder.on_load = lambda: bar.update(task, description="loading the text encoder…")
                # refresh=True draws every step at once: a step takes far longer than a redraw
                bar.update(steps[job], completed=done, total=total, description=description, refresh=True)

            def on_outcome(outcome) -> None:
                nonlocal encoder_seen
                loaded = getattr(encoder, "load_seconds", 0.0) - encoder_seen
                encoder_seen += loaded
                run.loading += loaded
                job = planned[outcome.job]
                run.rows.append(Row(job, outcome.status, outcome.detail, max(0.0, outcome.seconds - loaded),
                                    outcome.summary, outcome.exit_code))
                if outcome.summary and outcome.summary.get("heatmaps"):
                    out.note(f"heatmaps: wrote {', '.join(outcome.summary['heatmaps'])}")
                if outcome.job in steps:
                    bar.remove_task(steps.pop(outcome.job))
                if files is not None:
                    bar.advance(files)
                if job.output == STDIO and outcome.status == "done":
                    with outcome.job.output.open("rb") as encoded:
                        shutil.copyfileobj(encoded, sys.stdout.buffer)
                    sys.stdout.buffer.flush()

            upscale_files(upscaler, list(planned), settings, executor=executor, workers=workers, prefetch=prefetch,
                          on_outcome=on_outcome, on_step=on_step)


def _on_disk(job: Job, scratch: Path) -> Job:
    """``job`` with standard input saved to a file in ``scratch`` and standard output a file there: the
    runner reads and writes files."""
    if job.source == STDIO:
        job = replace(job, source=scratch / "stdin")
        job.source.write_bytes(sys.stdin.buffer.read())
    if job.output == STDIO:
        job = replace(job, output=scratch / "stdout.png")
    return job


def _name(job: Job) -> str:
    return "stdin" if job.source == STDIO else job.source.name


def _report_one(run: Run, out: Output, options: UpscaleOptions) -> None:
    row, loading = run.rows[0], run.loading
    if row.status == "failed":
        raise FileFailed(row.detail, row.exit_code)
    summary = {"input": str(row.job.source), "output": str(row.job.output), **row.summary,
               "steps": options.steps, "seed": options.seed,
               "seconds": round(loading + row.seconds, 3), "loading_seconds": round(loading, 3),
               "work_seconds": round(row.seconds, 3)}
    if summary["candidate_scores"]:
        select = options.select
        summary["candidate_scores"] = {select: summary["candidate_scores"]}
        scores = ", ".join(f"{s:.2f}" for s in summary["candidate_scores"][select])
        out.note(f"{select} of the {options.candidates} candidates: {scores}; kept seed {summary['chosen_seed']}")
    out.result(summary)
    written = "PNG to standard output" if row.job.output == STDIO else summary["output"]
    out.note(f"wrote {written} ({row.detail}) in {loading + row.seconds:.1f} s: "
             f"{loading:.1f} s loading the model, {row.seconds:.1f} s upscaling")


def _failed(run: Run) -> int:
    return sum(row.status == "failed" for row in run.rows)


def _summary(run: Run, out: Output, title: str) -> None:
    """Print the table (or JSON) and the done/skipped/failed counts (and those not started, if interrupted)."""
    rows = run.rows
    counts = {status: sum(row.status == status for row in rows) for status in ("done", "skipped", "failed")}
    not_started = run.planned - len(rows)
    work = sum(row.seconds for row in rows)
    payload = {**counts, "not_started": not_started, "loading_seconds": round(run.loading, 3),
               "work_seconds": round(work, 3),
               "files": [{"input": str(row.job.source), "output": str(row.job.output), "status": row.status,
                          "detail": row.detail, "seconds": round(row.seconds, 3)} for row in rows]}

    def table() -> Table:
        shown = Table(title=escape(title))
        for column in ("file", "status", "output / reason", "seconds"):
            shown.add_column(column)
        styles = {"done": "green", "skipped": "yellow", "failed": "red"}
        for row in rows:
            name = row.job.source.relative_to(run.base) if run.base else row.job.source
            shown.add_row(escape(str(name)), f"[{styles[row.status]}]{row.status}[/]", escape(row.detail),
                          f"{row.seconds:.1f}")
        return shown

    if out.as_json:
        out.result(payload)
    else:
        out.show(table)
    line = f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    if not_started:
        line += f", {not_started} not started"
    out.note(f"{line} ({run.loading:.1f} s loading the model, {work:.1f} s upscaling)")

"""The file-job runner: many image files through one engine, each file on its own.

``upscale_files`` runs ``plan.Job``s and reports one ``FileOutcome`` per job, in job order. Nothing a
single file does stops the run: any exception while reading, upscaling or writing it becomes a
failed outcome with a one-line reason. Only an interruption (Ctrl-C, SIGTERM) ends a run early, and
then the file being written is either complete or removed (writes are atomic).

``upscale_one`` is the whole per-file work in one importable function, for any other executor
(Ray Data, a job queue) to call. The executors here:

- ``sequential``: read, upscale, write, one file after the other.
- ``prefetch``: a reader thread decodes the next files and a writer thread encodes and writes the
  last one while the engine computes (the overlap Real-ESRGAN's inference script uses).
- ``processes``: worker processes, each building its own engine from an ``EngineOptions`` (plain
  ``cuda`` spreads them over the visible GPUs; ``cuda:N`` pins them all to one).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from qusr_cli.devices import worker_devices
from qusr_cli.errors import QusrError, describe_failure, raise_pending_interrupt, reraise_if_interrupted
from qusr_cli.files import FileResult, Rendered, read_checked, render
from qusr_cli.heatmaps import write_explanation
from qusr_cli.imageio import LoadedImage
from qusr_cli.options import EngineOptions, UpscaleOptions
from qusr_cli.plan import Job
from qusr_cli.safe_write import remove_unfinished_temp_files
from qusr_cli.upscaler import Upscaler

EXECUTORS = ("sequential", "prefetch", "processes")


@dataclass(frozen=True)
class JobSettings:
    """What every job of one run shares."""

    options: UpscaleOptions = field(default_factory=UpscaleOptions)
    scale: float = 4.0
    max_pixels: int | None = None
    heatmaps: Path | None = None  # also write each file's uncertainty/noise-weight maps here (job.stem names them)


#: (job, steps done, steps in all or None before the first): a file's diffusion steps as they finish.
StepCallback = Callable[[Job, int, "int | None"], None]


@dataclass(frozen=True)
class FileOutcome:
    job: Job
    status: str      # "done", "skipped" or "failed"
    detail: str      # "WxH" of what was written, or why not
    seconds: float
    exit_code: int = 0  # failed: what a command run on this file alone exits with (2: the file or a path)
    summary: dict | None = None  # done: sizes, tile, prior, the seed kept, candidate scores, heatmaps written


def _failed(job: Job, exc: Exception, started: float) -> FileOutcome:
    reraise_if_interrupted(exc)
    code = exc.exit_code if isinstance(exc, QusrError) else 1
    return FileOutcome(job, "failed", describe_failure(exc), time.perf_counter() - started, code)


def _summary(done: FileResult, heatmaps: list[Path]) -> dict:
    result = done.result
    return {"input_size": done.input_size, "output_size": done.output_size, "tile": result.tile,
            "prior": result.prior.text, "chosen_seed": result.seed,
            "candidate_scores": result.candidate_scores or None,
            **({"heatmaps": [str(p) for p in heatmaps]} if heatmaps else {})}


# ---- the three stages of one file ---------------------------------------------------------------
# Each returns its result or a failed FileOutcome; none lets an Exception out.

def read_job(job: Job, settings: JobSettings) -> LoadedImage | FileOutcome:
    started = time.perf_counter()
    if job.skip:
        return FileOutcome(job, "skipped", job.skip, 0.0)
    try:
        return read_checked(job.source, job.output, settings.max_pixels)
    except Exception as exc:  # noqa: BLE001 - the point: no file may end the run
        return _failed(job, exc, started)


def compute_job(upscaler: Upscaler, job: Job, image: LoadedImage, settings: JobSettings,
                on_step: StepCallback | None = None) -> Rendered | FileOutcome:
    started = time.perf_counter()
    try:
        if on_step is not None:
            on_step(job, 0, None)
        rendered = render(upscaler, image, job.output, settings.options, scale=settings.scale,
                          progress=None if on_step is None else partial(on_step, job))
        if settings.heatmaps is not None:
            *_, rendered.heatmaps = write_explanation(upscaler, image.rgb, settings.options, settings.heatmaps,
                                                      job.stem, prior=rendered.result.prior)
        return rendered
    except Exception as exc:  # noqa: BLE001
        return _failed(job, exc, started)


def write_job(job: Job, rendered: Rendered, started: float) -> FileOutcome:
    try:
        done = rendered.write()
    except Exception as exc:  # noqa: BLE001
        return _failed(job, exc, started)
    return FileOutcome(job, "done", f"{done.output_size[0]}x{done.output_size[1]}", time.perf_counter() - started,
                       summary=_summary(done, rendered.heatmaps))


def upscale_one(upscaler: Upscaler, job: Job, settings: JobSettings,
                on_step: StepCallback | None = None) -> FileOutcome:
    """The whole work on one file; never raises for anything the file or its output path does."""
    started = time.perf_counter()
    image = read_job(job, settings)
    if isinstance(image, FileOutcome):
        return image
    rendered = compute_job(upscaler, job, image, settings, on_step)
    if isinstance(rendered, FileOutcome):
        return rendered
    return write_job(job, rendered, started)


# ---- executors ------------------------------------------------------------------------------------

def upscale_files(engine: Upscaler | EngineOptions, jobs: Iterable[Job], settings: JobSettings = JobSettings(), *,
                  executor: str = "prefetch", workers: int = 2, prefetch: int = 2,
                  on_outcome: Callable[[FileOutcome], None] | None = None,
                  on_step: StepCallback | None = None) -> list[FileOutcome]:
    """Run every job; returns the outcomes in job order, each also passed to ``on_outcome`` when known.

    ``engine`` is a ready Upscaler, or an EngineOptions to build one from (``processes`` needs the spec:
    each worker builds its own). ``prefetch`` is how many decoded files may wait for the engine.
    ``on_step`` hears each file's diffusion steps (in this process; worker processes do not report them).
    """
    jobs = list(jobs)
    outcomes: list[FileOutcome] = []

    def report(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    if executor == "processes":
        if not isinstance(engine, EngineOptions):
            raise ValueError("the processes executor needs an EngineOptions: each worker builds its own engine")
        _run_in_processes(engine, jobs, settings, workers, report)
        return outcomes
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
    upscaler = engine.load() if isinstance(engine, EngineOptions) else engine
    if executor == "sequential" or prefetch < 1:
        for job in jobs:
            raise_pending_interrupt()
            report(upscale_one(upscaler, job, settings, on_step))
    else:
        _run_prefetched(upscaler, jobs, settings, prefetch, report, on_step)
    return outcomes


def _run_prefetched(upscaler: Upscaler, jobs: list[Job], settings: JobSettings, depth: int,
                    report: Callable[[FileOutcome], None], on_step: StepCallback | None) -> None:
    stop = threading.Event()
    loaded: queue.Queue = queue.Queue(maxsize=depth)

    def read_ahead() -> None:
        try:
            for job in jobs:
                hand_over((time.perf_counter(), read_job(job, settings)))
                if stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread, which must not wait forever
            hand_over((time.perf_counter(), exc))

    def hand_over(item) -> None:
        while not stop.is_set():
            try:
                loaded.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    reader = threading.Thread(target=read_ahead, name="qusr-reader", daemon=True)
    writer = ThreadPoolExecutor(1, thread_name_prefix="qusr-writer")
    pending: deque[Future] = deque()
    reader.start()
    try:
        for job in jobs:
            raise_pending_interrupt()
            started, image = loaded.get()
            if isinstance(image, BaseException):
                raise image
            result = image if isinstance(image, FileOutcome) else compute_job(upscaler, job, image, settings, on_step)
            if isinstance(result, FileOutcome):
                finished: Future = Future()
                finished.set_result(result)
                pending.append(finished)
            else:
                pending.append(writer.submit(write_job, job, result, started))
            while pending and (pending[0].done() or len(pending) > 1):
                report(pending.popleft().result())
        while pending:
            report(pending.popleft().result())
    finally:
        stop.set()
        # A write under way completes (or removes its temp file) before an interruption ends the run.
        writer.shutdown(wait=True, cancel_futures=True)


# ---- worker processes -------------------------------------------------------------------------------

_worker: dict = {}
WORKER_DIED = "its worker process ended unexpectedly (killed, or out of memory)"


def _end_worker(_signum, _frame) -> None:
    # The parent ends workers with SIGTERM when the run is interrupted. The pool's worker loop would
    # catch an exception raised here and go on, so end at once, minus the temp file being written.
    remove_unfinished_temp_files()
    os._exit(143)


def _start_worker(spec: EngineOptions, settings: JobSettings, devices) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends the workers
    signal.signal(signal.SIGTERM, _end_worker)
    _worker["settings"] = settings
    try:
        _worker["upscaler"] = replace(spec, device=devices.get()).load()
    except Exception as exc:  # noqa: BLE001 - reported to the parent by the first job
        _worker["error"] = exc if isinstance(exc, QusrError) else QusrError(
            f"a worker could not build the engine: {describe_failure(exc)}")


def _job_in_worker(job: Job) -> FileOutcome:
    if "error" in _worker:
        raise _worker["error"]
    return upscale_one(_worker["upscaler"], job, _worker["settings"])


def _run_in_processes(spec: EngineOptions, jobs: list[Job], settings: JobSettings, workers: int,
                      report: Callable[[FileOutcome], None]) -> None:
    """At most two jobs per worker in flight. A worker that dies (the kernel's OOM killer) fails the
    jobs in flight, not the run: the pool is started again for the rest."""
    workers = max(1, min(workers, len(jobs)))
    remaining = deque(jobs)
    while remaining:
        pool = _start_pool(spec, settings, workers)
        in_flight: deque[tuple[Job, Future]] = deque()
        try:
            while remaining or in_flight:
                raise_pending_interrupt()
                while remaining and len(in_flight) < 2 * workers:
                    job = remaining.popleft()
                    in_flight.append((job, pool.submit(_job_in_worker, job)))
                job, future = in_flight.popleft()
                try:
                    report(future.result())
                except BrokenProcessPool:
                    report(FileOutcome(job, "failed", WORKER_DIED, 0.0))
                    for job, _ in in_flight:
                        report(FileOutcome(job, "failed", WORKER_DIED, 0.0))
                    in_flight.clear()
                    break
        except BaseException:
            for child in multiprocessing.active_children():  # this run's workers: nothing else is a child
                child.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _start_pool(spec: EngineOptions, settings: JobSettings, workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: a forked copy of a process that has started PyTorch's threads can deadlock.
    context = multiprocessing.get_context("spawn")
    devices = context.Queue()
    for device in worker_devices(spec.device, workers):
        devices.put(device)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(spec, settings, devices))

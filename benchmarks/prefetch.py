"""What read/write prefetching buys: the same folder through `upscale_files`, sequential vs prefetch.

    QUSR_THREADS=1 python benchmarks/prefetch.py [FOLDER] [--steps 1 5] [--rounds 3]

FOLDER defaults to ../shared/data/eval/imagenet-val32/lq (32 PNG photos of 64x64). One engine (the
default embedded model) serves every run, so only the executor differs; rounds alternate the two
executors to spread the noise of a shared machine evenly, and the median is reported. Outputs go to a
temporary folder and are checked to be byte-identical between the executors.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qusr_cli.options import EngineOptions  # noqa: E402
from qusr_cli.plan import find_images, plan_jobs, prepare_output_folders  # noqa: E402
from qusr_cli.runner import JobSettings, compute_job, read_job, upscale_files, write_job  # noqa: E402
from qusr_cli.upscaler import UpscaleOptions  # noqa: E402


def timed_run(upscaler, folder: Path, out: Path, settings: JobSettings, executor: str) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    jobs, _ = plan_jobs(find_images(folder), out, ext="png", base=folder)
    prepare_output_folders(jobs, out)
    started = time.perf_counter()
    outcomes = upscale_files(upscaler, jobs, settings, executor=executor, prefetch=2)
    seconds = time.perf_counter() - started
    assert all(o.status == "done" for o in outcomes), [o.detail for o in outcomes if o.status != "done"]
    return seconds, {p.name: p.read_bytes() for p in out.iterdir()}


def stage_seconds(upscaler, folder: Path, out: Path, settings: JobSettings) -> dict[str, float]:
    """Seconds spent decoding, computing and encoding+writing, summed over the folder, one file after another:
    the most prefetching can hide is the smaller of compute and the rest, given a free core."""
    shutil.rmtree(out, ignore_errors=True)
    jobs, _ = plan_jobs(find_images(folder), out, ext="png", base=folder)
    prepare_output_folders(jobs, out)
    totals = {"decode": 0.0, "compute": 0.0, "encode+write": 0.0}
    for job in jobs:
        t0 = time.perf_counter()
        image = read_job(job, settings)
        t1 = time.perf_counter()
        rendered = compute_job(upscaler, job, image, settings)
        t2 = time.perf_counter()
        write_job(job, rendered, t2)
        t3 = time.perf_counter()
        for stage, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2)):
            totals[stage] += seconds
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=REPO.parent / "shared/data/eval/imagenet-val32/lq")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    threads = int(os.environ.get("QUSR_THREADS", "1"))
    upscaler = EngineOptions(device="cpu", threads=threads).load()
    count = len(find_images(args.folder))
    print(f"{count} files from {args.folder.name}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch threads {threads}, dtype {upscaler.dtype}")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        for steps in args.steps:
            settings = JobSettings(UpscaleOptions(steps=steps))
            times: dict[str, list[float]] = {"sequential": [], "prefetch": []}
            outputs = {}
            timed_run(upscaler, args.folder, out, settings, "sequential")  # warm-up: caches, allocator
            for _ in range(args.rounds):
                for executor in times:
                    seconds, outputs[executor] = timed_run(upscaler, args.folder, out, settings, executor)
                    times[executor].append(seconds)
            same = outputs["sequential"] == outputs["prefetch"]
            stages = stage_seconds(upscaler, args.folder, out, settings)
            medians = {k: statistics.median(v) for k, v in times.items()}
            print(f"steps {steps}: sequential {medians['sequential']:.2f} s ({count / medians['sequential']:.2f} files/s), "
                  f"prefetch {medians['prefetch']:.2f} s ({count / medians['prefetch']:.2f} files/s), "
                  f"speed-up x{medians['sequential'] / medians['prefetch']:.2f}; identical outputs: {same}; stages: "
                  f"{', '.join(f'{k} {v:.2f} s' for k, v in stages.items())}; "
                  f"all runs: { {k: [round(t, 2) for t in v] for k, v in times.items()} }")


if __name__ == "__main__":
    main()

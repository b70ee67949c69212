"""Start-up cost of the `qusr` command, measured as a user sees it: whole processes, median of N runs.

    python benchmarks/startup.py [--repeats 5] [--photo ../shared/data/eval/realset65/dog1.jpeg]

Rows: `qusr --version`, `qusr --help`, and `qusr upscale` on a 64x64 crop of the photo with the
embedded default model. For upscale, "work" is the time the command itself reports for the upscale
(reading, the five stages, writing); "overhead" is the rest of the process (Python, imports, loading
the model). The first upscale row starts from an empty prior-token cache (the text encoder loads);
the second is the usual case, the critique already cached. Prints a Markdown table.

On a busy machine wall-clock times grow with the load, so the table also gives each process's CPU
time (user + system), and a second table splits one cached upscale's CPU time into its phases
(measured inside the process, same code path as the command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = REPO / ".." / "shared" / "data" / "eval" / "realset65" / "dog1.jpeg"


# Runs in a child process: CPU seconds (user + system) after each phase of one cached upscale.
PHASES = """
import json, resource, sys, time
from pathlib import Path
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
marks = {"Python start-up": cpu()}
from qusr_cli.cli.entry import collect_garbage_less_often
collect_garbage_less_often()  # as the `qusr` executable does first
from qusr_cli.cli.app import app
marks["CLI import (typer, rich, qusr's command modules)"] = cpu()
from qusr_cli.loading import load_upscaler
from qusr_cli.plan import Job
from qusr_cli.runner import JobSettings, upscale_one
marks["engine import (torch, numpy, Pillow, qusr's stages)"] = cpu()
upscaler = load_upscaler(device="cpu", threads=1)
marks["model load (checkpoints, critic, cached prior tokens)"] = cpu()
outcome = upscale_one(upscaler, Job(Path(sys.argv[1]), Path(sys.argv[2])), JobSettings())
assert outcome.status == "done", outcome.detail
marks["upscale itself (read, 5 steps, write)"] = cpu()
print(json.dumps(marks))
import gc
gc.freeze()  # as the `qusr` executable does before exit
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def qusr(*args: str, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and stdout of one `qusr` process."""
    cpu_before, started = children_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "qusr_cli.cli", *args], capture_output=True, text=True,
                          env=env, check=True)
    return time.perf_counter() - started, children_cpu() - cpu_before, done.stdout


def upscale_once(photo: Path, out: Path, env: dict[str, str]) -> tuple[float, float, float]:
    total, cpu, stdout = qusr("upscale", str(photo), "-o", str(out), "--overwrite", "--json", "--threads", "1",
                              "--device", "cpu", env=env)
    return total, cpu, json.loads(stdout)["work_seconds"]


def phases(photo: Path, out: Path, env: dict[str, str]) -> dict[str, float]:
    cpu_before = children_cpu()
    done = subprocess.run([sys.executable, "-c", PHASES, str(photo), str(out)], capture_output=True, text=True,
                          env=env, check=True)
    total = children_cpu() - cpu_before
    marks = json.loads(done.stdout)
    names = list(marks)
    split = {name: marks[name] - (marks[names[i - 1]] if i else 0.0) for i, name in enumerate(names)}
    return {**split, "exit (interpreter shutdown)": total - marks[names[-1]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="qusr-startup-"))
    env = {**os.environ, "QUSR_THREADS": "1", "HF_HUB_OFFLINE": "1", "QUSR_CACHE": str(scratch / "cache"),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        photo = scratch / "photo64.png"
        with Image.open(args.photo) as image:
            image.convert("RGB").crop((100, 100, 164, 164)).save(photo)
        load_before = os.getloadavg()[0]
        rows = []
        for label, argv in (("qusr --version", ["--version"]), ("qusr --help", ["--help"])):
            qusr(*argv, env=env)  # warm the file cache and bytecode once
            runs = [qusr(*argv, env=env) for _ in range(args.repeats)]
            rows.append((label, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                         None, None))
        cold = []
        for _ in range(args.repeats):
            shutil.rmtree(scratch / "cache", ignore_errors=True)
            cold.append(upscale_once(photo, scratch / "out.png", env))
        warm = [upscale_once(photo, scratch / "out.png", env) for _ in range(args.repeats)]
        for label, runs in (("qusr upscale 64x64, critique not cached", cold),
                            ("qusr upscale 64x64, critique cached", warm)):
            rows.append((label, statistics.median(t for t, _, _ in runs), statistics.median(c for _, c, _ in runs),
                         statistics.median(w for _, _, w in runs), statistics.median(t - w for t, _, w in runs)))
        split = [phases(photo, scratch / "out.png", env) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, median of "
          f"{args.repeats} runs, load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end\n")
    print("| command | whole process, wall (s) | whole process, CPU (s) | upscale itself, wall (s) | overhead, wall (s) |")
    print("| --- | --- | --- | --- | --- |")
    for label, total, cpu, work, overhead in rows:
        shown = ("-", "-") if work is None else (f"{work:.2f}", f"{overhead:.2f}")
        print(f"| `{label}` | {total:.2f} | {cpu:.2f} | {shown[0]} | {shown[1]} |")
    print("\n| phase of a cached `qusr upscale` 64x64 | CPU (s) |\n| --- | --- |")
    for name in split[0]:
        print(f"| {name} | {statistics.median(run[name] for run in split):.2f} |")


if __name__ == "__main__":
    main()

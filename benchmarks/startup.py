"""Start-up cost of the `qusr` command, measured as a user sees it: whole processes, median of N runs.

    python benchmarks/startup.py [--repeats 5] [--photo ../shared/data/eval/realset65/dog1.jpeg]

Rows: `qusr --version`, `qusr --help`, and `qusr upscale` on a 64x64 crop of the photo with the
embedded default model. For upscale, "work" is the time the command itself reports for the upscale
(reading, the five stages, writing); "overhead" is the rest of the process (Python, imports, loading
the model). The first upscale row starts from an empty prior-token cache (the text encoder loads);
the second is the usual case, the critique already cached. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def qusr(*args: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "qusr_cli.cli", *args], capture_output=True, text=True,
                          env=env, check=True)
    return time.perf_counter() - started, done.stdout


def upscale_once(photo: Path, out: Path, env: dict[str, str]) -> tuple[float, float]:
    total, stdout = qusr("upscale", str(photo), "-o", str(out), "--overwrite", "--json", "--threads", "1",
                         "--device", "cpu", env=env)
    return total, json.loads(stdout)["work_seconds"]


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
        rows = []
        for label, argv in (("qusr --version", ["--version"]), ("qusr --help", ["--help"])):
            qusr(*argv, env=env)  # warm the file cache and bytecode once
            times = [qusr(*argv, env=env)[0] for _ in range(args.repeats)]
            rows.append((label, statistics.median(times), None, None))
        cold = []
        for _ in range(args.repeats):
            shutil.rmtree(scratch / "cache", ignore_errors=True)
            cold.append(upscale_once(photo, scratch / "out.png", env))
        warm = [upscale_once(photo, scratch / "out.png", env) for _ in range(args.repeats)]
        for label, runs in (("qusr upscale 64x64, critique not cached", cold),
                            ("qusr upscale 64x64, critique cached", warm)):
            rows.append((label, statistics.median(t for t, _ in runs), statistics.median(w for _, w in runs),
                         statistics.median(t - w for t, w in runs)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"median of {args.repeats} runs, load average {load:.1f} at the end\n")
    print("| command | whole process (s) | upscale itself (s) | overhead (s) |")
    print("| --- | --- | --- | --- |")
    for label, total, work, overhead in rows:
        shown = ("-", "-") if work is None else (f"{work:.2f}", f"{overhead:.2f}")
        print(f"| `{label}` | {total:.2f} | {shown[0]} | {shown[1]} |")


if __name__ == "__main__":
    main()

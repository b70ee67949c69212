"""The memory pass of the bench: peak RSS of upscaling one large file, each size in a fresh process.

Peak RSS (VmHWM) only ever grows, so every size runs in its own process: ``python -m
qusr_cli.bench.memory REQUEST RESULT``. The worker upscales an LR photo file to a PNG (the format
that streams, see ``band_writer``) at the default settings, exactly as ``qusr upscale`` does. With
``compare`` it also writes the same output the unstreamed way (the whole float canvas) and says
whether the decoded pixels are identical; that doubles the memory, so it is for small sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from qusr_cli.bench.datasets import save_png
from qusr_cli.bench.measure import current_rss_bytes, now_iso, peak_rss_bytes
from qusr_cli.bench.methods import EngineConfig
from qusr_cli.errors import QusrError
from qusr_cli.eval_sets import REPO_ROOT
from qusr_cli.imageio import read_rgb8

TARGET_BYTES = 1.5e9  # issue 13: a 3000x2000 LR photo on the CPU at the default settings


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'3000x2000,400x300' -> [(3000, 2000), (400, 300)] as (width, height)."""
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        width, sep, height = part.partition("x")
        if not sep or not width.isdigit() or not height.isdigit() or min(int(width), int(height)) < 8:
            raise QusrError(f"--memory-sizes: expected WIDTHxHEIGHT of at least 8x8, got {part!r}")
        sizes.append((int(width), int(height)))
    return sizes


def memory_input(source: Path, size: tuple[int, int], out_dir: Path) -> Path:
    """A photo-like LR input of ``size`` (W, H): ``source`` resized (Lanczos), written once."""
    path = out_dir / f"lr-{size[0]}x{size[1]}.png"
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        photo = Image.fromarray(read_rgb8(source))
        save_png(path, np.asarray(photo.resize(size, Image.Resampling.LANCZOS)))
    return path


def memory_pass(engine: EngineConfig, sizes: list[tuple[int, int]], source: Path, out: Path,
                compare_up_to: int = 400 * 300, log=print) -> list[dict]:
    """One fresh worker process per size; images of at most ``compare_up_to`` pixels are also compared."""
    rows = []
    for size in sizes:
        lr_path = memory_input(source, size, out / "memory" / "inputs")
        compare = size[0] * size[1] <= compare_up_to
        log(f"memory: {size[0]}x{size[1]} (fresh process{', compared with the unstreamed path' if compare else ''})")
        rows.append(_run_worker({"engine": engine.to_dict(), "input": str(lr_path), "compare": compare}))
    return rows


def _run_worker(request: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="qusr-memory-") as work:
        request = {**request, "work": work}
        request_path, answer_path = Path(work) / "request.json", Path(work) / "result.json"
        request_path.write_text(json.dumps(request))
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        done = subprocess.run([sys.executable, "-m", "qusr_cli.bench.memory", str(request_path), str(answer_path)],
                              capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": path})
        if done.returncode != 0 or not answer_path.exists():
            lines = done.stderr.strip().splitlines()
            return {"input": request["input"], "error": lines[-1] if lines else f"exit status {done.returncode}"}
        return json.loads(answer_path.read_text())


def memory_worker(request_path: Path, result_path: Path) -> None:
    from qusr_cli.files import read_checked, render
    from qusr_cli.options import UpscaleOptions

    request = json.loads(request_path.read_text())
    engine = EngineConfig(**request["engine"])
    upscaler = engine.load()
    rss_loaded = current_rss_bytes()
    options = UpscaleOptions(seed=engine.seed)
    streamed = Path(request["work"]) / "streamed.png"
    started = time.perf_counter()
    done = render(upscaler, read_checked(Path(request["input"]), streamed), streamed, options).write()
    seconds = time.perf_counter() - started
    result = {"input": request["input"], "lr_size": list(done.input_size), "output_size": list(done.output_size),
              "seconds": seconds, "tile": done.result.tile, "peak_rss_bytes": peak_rss_bytes(),
              "rss_loaded_bytes": rss_loaded, "device": str(upscaler.device), "measured_at": now_iso()}
    if request["compare"]:
        result["identical_to_unstreamed"] = _same_as_unstreamed(upscaler, done, streamed, options)
    result_path.write_text(json.dumps(result))


def _same_as_unstreamed(upscaler, done, streamed: Path, options) -> bool:
    from qusr_cli.imageio import read_image, write_image

    whole = streamed.with_name("whole.png")
    write_image(whole, upscaler.upscale(done.lr, options).image, like=read_image(done.source))
    with Image.open(streamed) as ours, Image.open(whole) as theirs:
        return ours.mode == theirs.mode and np.array_equal(np.asarray(ours), np.asarray(theirs))


if __name__ == "__main__":
    memory_worker(Path(sys.argv[1]), Path(sys.argv[2]))

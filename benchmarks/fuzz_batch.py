"""The fuzz campaign of issue 11, as a benchmark: the full corpus (tests/fuzz/corpus.py) through `qusr batch`.

    python benchmarks/fuzz_batch.py [--work DIR] [--steps 1]

Runs, each as a separate `qusr` process on the default (embedded) model:
1. the whole corpus to PNG (--recursive, so the markup-named subfolder counts too);
2. the valid files with oversized or odd EXIF to JPEG (EXIF > 64 KB must not fail a file);
3. a 4100-pixel-wide photo to WebP (over WebP's 16383-pixel side: refused before compute);
4. interruptions: SIGINT, SIGTERM and SIGKILL during start-up, after the first output and half-way
   through a batch of valid photos, each followed by a --skip-existing run that must complete the
   rest exactly once.

Then prints files, refused, written, tracebacks, aborted runs, temp files left and wrong outputs. A
wrong output is a written file qusr cannot read back, of the wrong size, or (for photos with the
corpus's marker) not upright. Also listed: valid files refused, refusals qusr did not expect
("unexpected …" rows), and files expected to be refused that were written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fuzz.corpus import Entry, make_corpus  # noqa: E402
from qusr_cli.imageio import read_image  # noqa: E402
from qusr_cli.plan import find_images, plan_jobs  # noqa: E402

TEMP_SUFFIX = ".tmp"


def qusr(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "QUSR_THREADS": "1"}
    # A shell starts background jobs (nohup … &) with SIGINT ignored, and children inherit that:
    # give qusr the default disposition, as a terminal would, or the SIGINT runs test nothing.
    return subprocess.Popen([sys.executable, "-m", "qusr_cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def run(*args: str) -> tuple[int, str]:
    process = qusr(*args)
    _, err = process.communicate()
    return process.returncode, err


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX)] if folder.exists() else []


def quadrant_is_top_left(path: Path) -> bool:
    loaded = read_image(path)
    luma = loaded.rgb[0].mean(0).numpy()
    h, w = luma.shape
    quadrants = [luma[: h // 2, : w // 2], luma[: h // 2, w // 2:], luma[h // 2:, : w // 2], luma[h // 2:, w // 2:]]
    return int(np.argmax([q.mean() for q in quadrants])) == 0


def check_output(entry: Entry, output: Path, scale: int = 4) -> str | None:
    """Why ``output`` is wrong, or None."""
    try:
        loaded = read_image(output)
    except Exception as exc:  # noqa: BLE001 - any failure to read back is the finding
        return f"cannot be read back: {exc}"
    height, width = loaded.rgb.shape[-2:]
    if entry.size is not None and (width, height) != (entry.size[0] * scale, entry.size[1] * scale):
        return f"is {width}x{height}, expected {entry.size[0] * scale}x{entry.size[1] * scale}"
    if entry.marker and not quadrant_is_top_left(output):
        return "is not upright (the bright quadrant is not top-left)"
    return None


def corpus_run(work: Path, steps: str) -> dict:
    corpus = work / "corpus"
    entries = make_corpus(corpus)
    out = work / "out_png"
    started = time.perf_counter()
    code, err = run("batch", str(corpus), "-o", str(out), "--recursive", "--steps", steps)
    seconds = time.perf_counter() - started
    jobs, _ = plan_jobs(find_images(corpus, True, out), out, ext="png", base=corpus)
    output_of = {job.source: job.output for job in jobs}
    result = {"files": len(entries), "written": 0, "refused": 0, "wrong": [], "valid_refused": [],
              "written_not_refusable": [], "seconds": seconds, "runs": [(code, err)]}
    for entry in entries:
        output = output_of.get(entry.path)
        if output is not None and output.exists():
            result["written"] += 1
            problem = check_output(entry, output)
            if problem:
                result["wrong"].append(f"{entry.path.name}: output {problem}")
            if entry.expect == "refuse":
                result["written_not_refusable"].append(entry.path.name)
        else:
            result["refused"] += 1
            if entry.expect == "write":
                result["valid_refused"].append(entry.path.name)
    result["temp_left"] = temp_files(out)
    return result


def metadata_runs(work: Path, steps: str) -> list[tuple[int, str, int]]:
    """EXIF > 64 KB to JPEG, and an output too wide for WebP: (exit code, stderr, outputs written)."""
    runs = []
    exif = work / "exif_to_jpeg"
    exif.mkdir()
    for path in (work / "corpus").glob("meta_exif_*"):
        shutil.copy(path, exif / path.name)
    out = work / "out_jpg"
    code, err = run("batch", str(exif), "-o", str(out), "--ext", "jpg", "--steps", steps)
    runs.append((code, err, len(list(out.glob("*.jpg")))))
    wide = work / "wide"
    wide.mkdir()
    Image.fromarray(np.full((5, 4100, 3), 128, np.uint8)).save(wide / "wide.png")
    code, err = run("batch", str(wide), "-o", str(work / "out_webp"), "--ext", "webp", "--steps", steps)
    runs.append((code, err, len(list((work / "out_webp").glob("*.webp")))))
    return runs


def interruption_runs(work: Path, steps: str) -> list[dict]:
    """Signals at three moments of a batch of valid photos (during start-up, after the first output,
    after half of them); then a --skip-existing run must complete the rest exactly once."""
    photos = work / "photos"
    photos.mkdir()
    count = 8
    for k in range(count):
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photos / f"p{k}.png")
    results = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        for moment, outputs_first in (("start-up", 0), ("first output", 1), ("half done", count // 2)):
            out = work / f"out_{sig.name}_{moment.replace(' ', '_')}"
            process = qusr("batch", str(photos), "-o", str(out), "--steps", "4")
            if outputs_first:
                while len(list(out.glob("*.png")) if out.exists() else []) < outputs_first and process.poll() is None:
                    time.sleep(0.02)
            else:
                time.sleep(0.3)
            process.send_signal(sig)
            _, err = process.communicate()
            finished_before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} if out.exists() else {}
            partial = [p.name for p in out.glob("*.png") if not _readable(p)] if out.exists() else []
            left_by_kill = len(temp_files(out))
            code, resume_err = run("batch", str(photos), "-o", str(out), "--skip-existing", "--steps", steps)
            rewritten = [n for n, t in finished_before.items() if (out / n).stat().st_mtime_ns != t]
            results.append({"signal": sig.name, "moment": moment, "exit": process.returncode, "stderr": err,
                            "done_before": len(finished_before), "partial": partial, "temp_after_kill": left_by_kill,
                            "temp_after_resume": len(temp_files(out)), "resume_exit": code,
                            "resume_stderr": resume_err, "rewritten": rewritten,
                            "complete": sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in photos.glob("*.png"))})
    return results


def _readable(path: Path) -> bool:
    try:
        read_image(path)
    except Exception:  # noqa: BLE001
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a new temp folder).")
    parser.add_argument("--steps", default="1")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="qusr-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)

    corpus = corpus_run(work, args.steps)
    extra = metadata_runs(work, args.steps)
    interrupts = interruption_runs(work, args.steps)

    all_stderr = [err for _, err in corpus["runs"]] + [err for _, err, _ in extra] + \
                 [r["stderr"] + r["resume_stderr"] for r in interrupts]
    tracebacks = sum(err.count("Traceback") for err in all_stderr)
    unexpected = sum(err.count("unexpected ") for err in all_stderr)
    batch_codes = [code for code, _ in corpus["runs"]] + [code for code, _, _ in extra] + [r["resume_exit"] for r in interrupts]
    aborted = sum(code not in (0, 1) for code in batch_codes)
    expected_exit = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -9}
    aborted += sum(r["exit"] != expected_exit[r["signal"]] for r in interrupts)  # a lost signal counts too
    temp_left = len(corpus["temp_left"]) + sum(r["temp_after_resume"] for r in interrupts)
    wrong = corpus["wrong"] + [f"interrupted run left a partial {n}" for r in interrupts for n in r["partial"]]
    wrong += [f"--skip-existing rewrote {n}" for r in interrupts for n in r["rewritten"]]
    wrong += [f"{r['signal']} at {r['delay']} s: resume did not complete the batch" for r in interrupts if not r["complete"]]
    jpeg_code, jpeg_err, jpeg_written = extra[0]
    webp_code, webp_err, webp_written = extra[1]

    print(f"work folder: {work}")
    print(f"files                 {corpus['files']}")
    print(f"refused               {corpus['refused']}")
    print(f"written               {corpus['written']}")
    print(f"tracebacks            {tracebacks}")
    print(f"aborted runs          {aborted} of {len(batch_codes) + len(interrupts)}")
    print(f"temp files left       {temp_left}")
    print(f"wrong outputs         {len(wrong)}")
    print(f"unexpected refusals   {unexpected}")
    print(f"valid files refused   {len(corpus['valid_refused'])} {corpus['valid_refused'][:10]}")
    print(f"refusable but written {len(corpus['written_not_refusable'])} {corpus['written_not_refusable'][:10]}")
    print(f"corpus run            {corpus['seconds']:.0f} s, exit {corpus['runs'][0][0]}")
    print(f"EXIF > 64 KB to JPEG  exit {jpeg_code}, {jpeg_written} written")
    print(f"WebP 16400 px wide    exit {webp_code}, {webp_written} written: {webp_err.strip().splitlines()[-1:]}")
    for r in interrupts:
        print(f"{r['signal']:>7} at {r['moment']:<12}: exit {r['exit']}, {r['done_before']} done before, temp files "
              f"after the signal {r['temp_after_kill']}, after the resume {r['temp_after_resume']}; resume exit "
              f"{r['resume_exit']}, complete {r['complete']}, rewritten {len(r['rewritten'])}")
    for line in wrong[:20]:
        print("WRONG:", line)


if __name__ == "__main__":
    main()

"""Quality against CPU-hours of one training run: `qusr bench` of each kept snapshot, one curve.

    python benchmarks/training_curve.py runs/aux-features --companions runs/cand/shipped \\
        --start-hours 2.0 --limit 8 --out runs/curve-features

A run trained with `--keep-every N` keeps `snapshots/<role>-step-<N>.safetensors`; `--checkpoint`
adds other files of the same run (a copy kept before snapshots existed). Each one is benched as
`<role>.safetensors` beside the `--companions` folder's other files (g alone: no companions; g
under the shipped denoiser: the shipped model's folder), by the bench's own code, so its numbers
are the bench's. The x axis is the CPU time recorded in each file's header plus `--start-hours`
(what the run it started from with `--init` cost). For files trained partly before CPU time was
counted, the steps before that are charged their wall time × threads from the run's log, an upper
bound on one busy machine, and the point is drawn hollow.

Writes OUT/curve.json, OUT/curve.md (a table) and OUT/curve.png (needs matplotlib: the bench extra).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from qusr_cli.bench.methods import EngineConfig, plan_methods
from qusr_cli.bench.runner import Bench, BenchConfig
from qusr_cli.weights.checkpoint import read_header
from qusr_cli.weights.header import TrainingRun

def logged_wall_s(run: Path, step: int) -> float | None:
    """Wall seconds the run's log records at ``step`` (its last train line at or before it)."""
    wall = None
    log = run / "log.jsonl"
    for line in log.read_text().splitlines() if log.exists() else []:
        record = json.loads(line)
        if record.get("type") == "train" and record["step"] <= step:
            wall = record["wall_s"]
    return wall


def cpu_hours(run: Path, record: TrainingRun) -> tuple[float, bool]:
    """(CPU-hours to reach this file, whether part of it is estimated from wall time)."""
    counted = record.cpu_time_s or 0.0
    since = record.cpu_counted_from_step if record.cpu_time_s is not None else record.steps_done
    if since == 0:
        return counted / 3600, False
    wall = logged_wall_s(run, since)
    if wall is None:
        raise SystemExit(f"training_curve: {run}/log.jsonl does not reach step {since}; cannot charge the "
                         "steps before CPU time was counted")
    return (counted + wall * record.loop["threads"]) / 3600, True


def evenly_spaced(items: list, count: int) -> list:
    """``count`` of ``items`` at even spacing, the first and the last among them (all when count is 0)."""
    if count <= 0 or count >= len(items):
        return items
    if count == 1:
        return items[-1:]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def candidate_folder(checkpoint: Path, role: str, companions: Path | None, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(companions.glob("*.safetensors")) if companions else []:
        if path.stem != role:
            shutil.copyfile(path, folder / path.name)
    shutil.copyfile(checkpoint, folder / f"{role}.safetensors")
    return folder


def bench_point(folder: Path, method: str, args: argparse.Namespace) -> dict:
    """NIQE on --niqe-set and PSNR-Y on --psnr-set, as `qusr bench` scores them."""
    specs = plan_methods([method], steps_list=[args.steps], ablations=False, candidates_list=[],
                         ablation_steps=args.steps, externals=[])
    config = BenchConfig(sets=sorted({args.niqe_set, args.psnr_set}), methods=specs, out=folder / "bench",
                         engine=EngineConfig(weights=str(folder), threads=args.threads, dtype="fp32"),
                         limit=args.limit, extra_metrics=False, plots=False)
    results = Bench(config, log=lambda text: print(f"training_curve: {text}", file=sys.stderr)).run()
    scores = {set_name: entry["methods"][specs[0].name]["metrics"] for set_name, entry in results["quality"].items()}
    by_name = {Path(name).name: metrics for name, metrics in scores.items()}
    return {"niqe": by_name[Path(args.niqe_set).name]["niqe"], "psnr_y": by_name[Path(args.psnr_set).name]["psnr_y"]}


def plot(points: list[dict], path: Path, title: str, axes_labels: dict[str, str],
         bars: dict[str, float]) -> Path | None:
    """One panel per measure; the bar each must reach is drawn too, so the scale shows the distance left."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(1, len(axes_labels), figsize=(5 * len(axes_labels), 3.6))
    for axis, (key, label) in zip(axes, axes_labels.items(), strict=True):
        xs = [p["cpu_hours"] for p in points]
        axis.plot(xs, [p[key] for p in points], color="tab:blue")
        for p in points:
            axis.scatter(p["cpu_hours"], p[key], color="tab:blue",
                         facecolors="none" if p["estimated"] else "tab:blue")
        if key in bars:
            axis.axhline(bars[key], color="tab:red", linestyle="--", label=f"bar {bars[key]:g}")
            axis.legend(loc="best")
        axis.set_xlabel("CPU-hours of training")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="A `qusr train` run folder.")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="Another file of this run to include (repeatable).")
    parser.add_argument("--companions", type=Path, help="Model folder whose other files join each snapshot.")
    parser.add_argument("--start-hours", type=float, default=0.0,
                        help="CPU-hours of the run this one started from (--init).")
    parser.add_argument("--limit", type=int, default=8, help="First N images of each set.")
    parser.add_argument("--niqe-set", default="realset65", help="Set scored by NIQE (a name or a folder).")
    parser.add_argument("--psnr-set", default="imagenet-val32", help="Paired set scored by PSNR-Y.")
    parser.add_argument("--steps", type=int, default=5, help="qusr steps when there is a denoiser.")
    parser.add_argument("--points", type=int, default=0,
                        help="Bench only this many snapshots, evenly spaced, first and last included (0: all).")
    parser.add_argument("--niqe-bar", type=float, default=4.45, help="NIQE to reach (drawn; Real-ESRGAN's).")
    parser.add_argument("--psnr-bar", type=float, default=23.5, help="PSNR-Y to reach (drawn).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    files = evenly_spaced(sorted((args.run / "snapshots").glob("*.safetensors")), args.points) + args.checkpoint
    if not files:
        raise SystemExit(f"training_curve: {args.run} has no snapshots/ (train with --keep-every) and no "
                         "--checkpoint was given")
    points = []
    for path in files:
        header = read_header(path)
        record = TrainingRun.from_info(header.info)
        folder = candidate_folder(path, header.role, args.companions, args.out / f"step-{record.steps_done:07d}")
        method = "qusr" if (folder / "denoiser.safetensors").exists() else "aux"
        hours, estimated = cpu_hours(args.run, record)
        points.append({"step": record.steps_done, "cpu_hours": args.start_hours + hours, "estimated": estimated,
                       "method": method, **bench_point(folder, method, args)})
    points.sort(key=lambda p: p["cpu_hours"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps(points, indent=2))
    labels = {"niqe": f"{Path(args.niqe_set).name} NIQE", "psnr_y": f"{Path(args.psnr_set).name} PSNR-Y"}
    rows = [f"| step | CPU-hours | {labels['niqe']} | {labels['psnr_y']} |", "|---:|---:|---:|---:|"]
    rows += [f"| {p['step']} | {p['cpu_hours']:.2f}{'*' if p['estimated'] else ''} | "
             f"{p['niqe']:.2f} | {p['psnr_y']:.2f} |" for p in points]
    (args.out / "curve.md").write_text("\n".join(rows) + "\n")
    drawn = plot(points, args.out / "curve.png", f"{args.run.name}: first {args.limit} images per set", labels,
                 {"niqe": args.niqe_bar, "psnr_y": args.psnr_bar})
    print("\n".join(rows))
    print(f"training_curve: wrote {args.out / 'curve.json'}, {args.out / 'curve.md'}"
          + (f", {drawn}" if drawn else " (no plot: matplotlib missing)"), file=sys.stderr)


if __name__ == "__main__":
    main()

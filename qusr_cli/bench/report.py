"""Summaries of the per-image records, and the run's report as JSON and as markdown tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

from qusr_cli.bench.methods import MethodSpec, qusr_name
from qusr_cli.imageio import atomic_write

MB = 1 << 20
# column label, metric key, decimals, whether higher is better
CORE_COLUMNS = (("PSNR-Y", "psnr_y", 2, True), ("SSIM-Y", "ssim_y", 4, True), ("NIQE", "niqe", 2, False))
EXTRA_COLUMNS = (("MUSIQ", "musiq", 2, True), ("CLIPIQA", "clipiqa", 3, True), ("MANIQA", "maniqa", 3, True),
                 ("LPIPS", "lpips", 4, False))


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2)
    atomic_write(path, lambda handle: handle.write(text.encode()))


def _mean(values: list) -> float | None:
    """The mean when every image has the value; a mean over some images would not compare across methods."""
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def summarize_method(spec: MethodSpec, records: list[dict]) -> dict:
    keys = sorted({key for record in records for key in record.get("metrics", {})})
    seconds = [r["seconds"] for r in records if r.get("seconds") is not None]
    return {
        "group": spec.group,
        "images": len(records),
        "metrics": {key: _mean([r.get("metrics", {}).get(key) for r in records]) for key in keys},
        "seconds_per_image": sum(seconds) / len(seconds) if seconds else None,
        "timed_images": len(seconds),
    }


def speed_row(name: str, size: int, stored: dict) -> dict:
    row = {"method": name, "lr_side": size}
    if "error" in stored:
        return {**row, "error": stored["error"]}
    height, width = stored["lr_size"]
    output_pixels = height * width * 16
    seconds = stored["seconds"]
    flops = stored.get("flops")
    device_peak = stored.get("device_peak_bytes")
    return {
        **row,
        "seconds": seconds,
        "times": stored["times"],
        "output_mpix_per_s": output_pixels / 1e6 / seconds,
        "peak_rss_mb": stored["peak_rss_bytes"] / MB,
        "rss_ready_mb": stored["rss_ready_bytes"] / MB if stored.get("rss_ready_bytes") else None,
        "device_peak_mb": device_peak / MB if device_peak is not None else None,
        "flops": flops,
        "flops_per_output_pixel": flops / output_pixels if flops else None,
        "gflops_per_s": flops / seconds / 1e9 if flops else None,
        "device": stored.get("device"),
        "measured_at": stored.get("measured_at"),
    }


def best_of_n(quality: dict, specs: list[MethodSpec], steps: int) -> dict:
    """Per set: NIQE and PSNR of best-of-N against N = 1 at the same step count, and what it cost in time."""
    base_name = qusr_name(steps)
    variants = sorted((s for s in specs if s.kind == "qusr" and s.candidates > 1 and s.steps == steps),
                      key=lambda s: s.candidates)
    if not variants:
        return {}
    table = {}
    for set_name, entry in quality.items():
        base = entry["methods"].get(base_name)
        if base is None or "error" in base:
            continue
        rows = []
        for n, name in [(1, base_name)] + [(s.candidates, s.name) for s in variants]:
            summary = entry["methods"].get(name)
            if summary is None or "error" in summary:
                continue
            metrics, base_metrics = summary["metrics"], base["metrics"]
            rows.append({
                "n": n, "method": name,
                "niqe": metrics.get("niqe"), "psnr_y": metrics.get("psnr_y"),
                "niqe_gain": _difference(base_metrics.get("niqe"), metrics.get("niqe")),
                "psnr_gain": _difference(metrics.get("psnr_y"), base_metrics.get("psnr_y")),
                "seconds_per_image": summary["seconds_per_image"],
                "time_ratio": (summary["seconds_per_image"] / base["seconds_per_image"]
                               if summary["seconds_per_image"] and base["seconds_per_image"] else None),
            })
        table[set_name] = rows
    return table


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _fmt(value, decimals: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{decimals}f}"


def _sig(value, digits: int = 3) -> str:
    """Significant digits, for quantities spanning orders of magnitude (milliseconds to minutes)."""
    return "–" if value is None else f"{value:.{digits}g}"


def _signed(value, decimals: int = 2) -> str:
    return "–" if value is None else f"{value:+.{decimals}f}"


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = ["# qusr bench", ""]
    lines.append(f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB"
                 + (f", GPU {machine['gpu']}" if machine.get("gpu") else ""))
    lines.append(f"- torch {machine['torch']}, device {machine['device']}, {machine['dtype']}, "
                 f"{machine['threads']} thread(s)")
    lines.append(f"- Date {machine['date']}, commit {machine['git_commit'] or 'unknown'}")
    model = results.get("model")
    if model:
        files = ", ".join(f"{role} {sha[:12]}" for role, sha in model.items() if role != "name")
        lines.append(f"- Model {model['name']} ({files})")
    lines.append("")
    for set_name, entry in results["quality"].items():
        lines += _quality_table(set_name, entry)
        rows = results["best_of_n"].get(set_name)
        if rows:
            lines += _best_of_n_table(rows)
    if results["speed"]:
        lines += _speed_table(results["speed"])
    if results.get("memory"):
        lines += _memory_table(results["memory"])
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in results["notes"]] + [""]
    return "\n".join(lines)


def _quality_table(set_name: str, entry: dict) -> list[str]:
    methods = entry["methods"]
    present = {key for summary in methods.values() for key, v in summary.get("metrics", {}).items() if v is not None}
    columns = [c for c in CORE_COLUMNS + EXTRA_COLUMNS if c[1] in present]
    truth = "with ground truth" if entry["has_gt"] else "no ground truth"
    lines = [f"## {set_name}: {entry['images']} images, {truth}", "",
             "| method | " + " | ".join(f"{label} {'↑' if up else '↓'}" for label, _, _, up in columns)
             + " | s / image |",
             "|---|" + "---:|" * (len(columns) + 1)]
    for name, summary in methods.items():
        if "error" in summary:
            lines.append(f"| {name} | " + " | ".join("–" for _ in columns) + f" | failed: {summary['error']} |")
            continue
        cells = [_fmt(summary["metrics"].get(key), decimals) for _, key, decimals, _ in columns]
        timing = _sig(summary["seconds_per_image"])
        if summary["seconds_per_image"] is not None and summary["timed_images"] < summary["images"]:
            timing += f" ({summary['timed_images']} timed)"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {timing} |")
    return lines + [""]


def _best_of_n_table(rows: list[dict]) -> list[str]:
    lines = ["Best of N (N seeds, the lowest-NIQE sample kept):", "",
             "| N | method | NIQE | NIQE gained | PSNR-Y | PSNR gained | s / image | time × |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['n']} | {row['method']} | {_fmt(row['niqe'])} | {_signed(row['niqe_gain'])} | "
                     f"{_fmt(row['psnr_y'])} | {_signed(row['psnr_gain'])} | {_sig(row['seconds_per_image'])} | "
                     f"{_fmt(row['time_ratio'])} |")
    return lines + [""]


def _speed_table(rows: list[dict]) -> list[str]:
    lines = ["## Speed", "",
             "One fresh process per method and size; one untimed warm-up call on a 64x64 crop, then the "
             "median of the timed calls. RSS loaded: the process after loading and warm-up; peak RSS: its "
             "high-water mark over the whole run (VmHWM).", "",
             "| method | LR size | s | output MP/s | RSS loaded MB | peak RSS MB | GPU peak MB | kFLOP / output px "
             "| GFLOP/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        size = f"{row['lr_side']}²"
        if "error" in row:
            lines.append(f"| {row['method']} | {size} | failed: {row['error']} | | | | | | |")
            continue
        per_pixel = row["flops_per_output_pixel"] / 1e3 if row["flops_per_output_pixel"] else None
        lines.append(f"| {row['method']} | {size} | {_sig(row['seconds'])} | {_sig(row['output_mpix_per_s'])} | "
                     f"{_fmt(row['rss_ready_mb'], 0)} | {_fmt(row['peak_rss_mb'], 0)} | "
                     f"{_fmt(row['device_peak_mb'], 0)} | {_sig(per_pixel)} | "
                     f"{_sig(row['gflops_per_s'])} |")
    return lines + [""]


def _memory_table(rows: list[dict]) -> list[str]:
    lines = ["## Memory", "",
             "One fresh process per size: `qusr upscale` of an LR photo to PNG at the default settings (the "
             "output streamed in bands). Peak RSS: the process's high-water mark (VmHWM), target 1500 MB at "
             "3000x2000. Identical: the decoded output equals the unstreamed (whole-canvas) path's.", "",
             "| LR size | output MP | tile | s | RSS loaded MB | peak RSS MB | identical |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {Path(row['input']).stem} | failed: {row['error']} | | | | | |")
            continue
        width, height = row["lr_size"]
        out_w, out_h = row["output_size"]
        identical = {True: "yes", False: "NO", None: "not compared"}[row.get("identical_to_unstreamed")]
        lines.append(f"| {width}x{height} | {_fmt(out_w * out_h / 1e6, 1)} | {row['tile']} | {_sig(row['seconds'])} | "
                     f"{_fmt(row['rss_loaded_bytes'] / 1e6, 0)} | {_fmt(row['peak_rss_bytes'] / 1e6, 0)} | "
                     f"{identical} |")
    return lines + [""]

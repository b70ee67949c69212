"""Figures: perception-distortion and time-vs-size charts (matplotlib, the ``bench`` extra), crop sheets (Pillow)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from qusr_cli.bench.datasets import read_rgb, to_uint8
from qusr_cli.bench.methods import MethodSpec, qusr_name
from qusr_cli.errors import QusrError
from qusr_cli.eval_sets import EvalSet
from qusr_cli.imageio import read_rgb8

CROP_SIDE = 48        # LR pixels: 192 output pixels per cell, shown 1:1
SHEET_ROWS = 3
LABEL_LINE = 14
MARKERS = "osD^v<>P*X"


def require_matplotlib():
    """pyplot on the file-only Agg backend, or a one-line error saying how to get it."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise QusrError("plots need matplotlib: pip install 'qusr[bench]' (or run with --no-plots)") from None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def perception_distortion(results: dict, set_name: str, out: Path) -> Path | None:
    """PSNR (x) against NIQE (y, lower is better): the perception-distortion plane, one point per method."""
    entry = results["quality"][set_name]
    points = [(name, s["metrics"]["psnr_y"], s["metrics"]["niqe"]) for name, s in entry["methods"].items()
              if "error" not in s and s["metrics"].get("psnr_y") is not None and s["metrics"].get("niqe") is not None]
    if not points:
        return None
    plt = require_matplotlib()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.get_cmap("tab20")
    # a legend rather than labels at the points: methods often land on top of each other
    for index, (name, psnr, niqe) in enumerate(points):
        axes.scatter(psnr, niqe, color=colours(index % 20), marker=MARKERS[index % len(MARKERS)], label=name)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    axes.set_xlabel("PSNR-Y (dB), higher = closer to the ground truth")
    axes.set_ylabel("NIQE, lower = more natural")
    axes.set_title(f"Perception-distortion, {set_name} ({entry['images']} images)")
    axes.grid(alpha=0.3)
    path = out / f"perception-distortion-{set_name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def time_vs_size(results: dict, out: Path) -> Path | None:
    rows = [row for row in results["speed"] if "error" not in row]
    if not rows:
        return None
    plt = require_matplotlib()
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = sorted((row["lr_side"], row["seconds"]) for row in rows if row["method"] == method)
        axes.plot([s for s, _ in mine], [t for _, t in mine], marker="o", label=method)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("LR input side (pixels, square)")
    axes.set_ylabel("seconds per image")
    machine = results["machine"]
    axes.set_title(f"{machine['device']} {machine['dtype']}, {machine['threads']} thread(s)")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    path = out / "time-vs-size.png"
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def sheet_columns(specs: list[MethodSpec], steps: int) -> list[tuple[str, str]]:
    """(label, method) for the sheet: bicubic, Real-ESRGAN, g and one qusr, those that ran, then
    each value of a detail sweep."""
    names = {s.name for s in specs}
    qusr = [s.name for s in specs if s.kind == "qusr" and s.group == "method"]
    chosen = qusr_name(steps) if qusr_name(steps) in names else (qusr[-1] if qusr else None)
    wanted = [("bicubic", "bicubic"), ("Real-ESRGAN", "realesrgan"), ("g (aux)", "aux"), (chosen, chosen)]
    wanted += [(f"--detail {s.detail:g}", s.name) for s in specs if s.group == "detail"]
    return [(label, name) for label, name in wanted if name in names]


def busiest_window(pixels: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left of the side x side window with the most gradient energy: where methods differ most."""
    gray = pixels.astype(np.float64).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    height, width = energy.shape
    if height < side or width < side:
        return 0, 0
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, side // 4)
    best, where = -1.0, (0, 0)
    for top in range(0, height - side + 1, step):
        for left in range(0, width - side + 1, step):
            total = (integral[top + side, left + side] - integral[top, left + side]
                     - integral[top + side, left] + integral[top, left])
            if total > best:
                best, where = total, (top, left)
    return where


def crops_sheet(eval_set: EvalSet, specs: list[MethodSpec], out: Path, steps: int) -> Path | None:
    """Same crop of the first images: LR (nearest-neighbour 4x) | each method, labelled."""
    outputs = out / "outputs" / eval_set.name
    columns = [(label, outputs / name) for label, name in sheet_columns(specs, steps)]
    return side_by_side(eval_set, columns, out / f"crops-{eval_set.name}.png") if columns else None


def side_by_side(eval_set: EvalSet, columns: list[tuple[str, Path]], path: Path,
                 rows_wanted: int = SHEET_ROWS) -> Path | None:
    """The busiest LR window of each of the first images that every folder has an output of: LR
    (nearest-neighbour 4x) | each (label, folder of ``<image>.png`` outputs), labelled."""
    rows = []
    for image in eval_set.images:
        if len(rows) == rows_wanted:
            break
        paths = [folder / f"{image.name}.png" for _, folder in columns]
        if not all(p.exists() for p in paths):
            continue
        lr = to_uint8(read_rgb(image.lr))
        side = min(CROP_SIDE, *lr.shape[:2])
        top, left = busiest_window(lr, side)
        cells = [Image.fromarray(lr[top:top + side, left:left + side]).resize((4 * side, 4 * side),
                                                                              Image.Resampling.NEAREST)]
        for output in paths:
            hr = read_rgb8(output)
            cells.append(Image.fromarray(hr[4 * top:4 * (top + side), 4 * left:4 * (left + side)]))
        rows.append((image.name, cells))
    if not rows:
        return None
    labels = ["LR (nearest)"] + [label for label, _ in columns]
    cell = max(c.width for _, cells in rows for c in cells)
    # per row: the image's name on one line, the column labels on the next, then the crops
    header = 2 * LABEL_LINE + 4
    sheet = Image.new("RGB", (cell * len(labels), (cell + header) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, cells) in enumerate(rows):
        y = r * (cell + header)
        draw.text((4, y + 2), f"{eval_set.name} / {name}", fill="black")
        for c, (label, image) in enumerate(zip(labels, cells, strict=True)):
            draw.text((c * cell + 4, y + 2 + LABEL_LINE), label, fill="black")
            sheet.paste(image, (c * cell, y + header))
    sheet.save(path)
    return path

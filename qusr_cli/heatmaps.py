"""Colour-mapped pictures of stage 2 for people: ψ and w with a labelled colour bar, and an overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from qusr_cli.safe_write import atomic_write, make_folder

# Anchor colours of matplotlib's perceptually uniform "viridis" map, at 0, 1/8, …, 1; hand-listed so
# the core install needs no matplotlib.
_VIRIDIS_ANCHORS = np.array([
    (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
    (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)], dtype=np.float64)
BAR_WIDTH = 90


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0,1] to viridis RGB (uint8), linear between the anchors."""
    positions = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
    clipped = np.clip(values, 0.0, 1.0)
    channels = [np.interp(clipped, positions, _VIRIDIS_ANCHORS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def _channel_mean(map_: torch.Tensor) -> np.ndarray:
    return map_[0].float().mean(0).cpu().numpy()


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def render_heatmap(map_: torch.Tensor, low: float, high: float, title: str, unit_note: str) -> Image.Image:
    """Heatmap of a (1,C,H,W) map averaged over channels, scaled from ``low`` to ``high``, with a colour bar."""
    values = (_channel_mean(map_) - low) / (high - low)
    heat = Image.fromarray(colormap(values))
    height = heat.height
    canvas = Image.new("RGB", (heat.width + BAR_WIDTH, height), "white")
    canvas.paste(heat, (0, 0))
    margin = max(12, height // 12)
    bar_height = max(height - 2 * margin, 8)
    gradient = colormap(np.linspace(1.0, 0.0, bar_height)[:, None].repeat(16, axis=1))
    bar_left = heat.width + 8
    canvas.paste(Image.fromarray(gradient), (bar_left, margin))
    draw = ImageDraw.Draw(canvas)
    font = _font(max(9, min(14, height // 20)))
    draw.text((heat.width + 4, 1), title, fill="black", font=font)
    for fraction in (0.0, 0.5, 1.0):
        y = margin + round((1 - fraction) * (bar_height - 1))
        label = f"{low + fraction * (high - low):.3g}" + ("+" if fraction == 1.0 and unit_note else "")
        draw.line([(bar_left + 16, y), (bar_left + 20, y)], fill="black")
        draw.text((bar_left + 22, y - 6), label, fill="black", font=font)
    if unit_note:
        draw.text((heat.width + 4, height - margin + 2), unit_note, fill="black", font=font)
    return canvas


def render_overlay(image: torch.Tensor, map_: torch.Tensor, low: float, high: float,
                   opacity: float = 0.55) -> Image.Image:
    """The map's colours laid over a grey version of ``image`` (1,3,H,W), so regions can be recognised."""
    grey = image[0].float().mean(0).clamp(0, 1).cpu().numpy()
    heat = colormap((_channel_mean(map_) - low) / (high - low)).astype(np.float64)
    blended = (1 - opacity) * (grey[..., None] * 255.0) + opacity * heat
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))


def save_explanation(explanation, folder: Path, stem: str, floor: float, psi_max: float) -> list[Path]:
    """Write ψ and w heatmaps, the w overlay and g(y) as PNGs into ``folder``; returns their paths."""
    make_folder(folder, "--heatmaps folder")
    pictures = {
        "uncertainty": render_heatmap(explanation.psi, 0.0, psi_max, "psi", "[0,1] px"),
        "noise_weight": render_heatmap(explanation.weight, floor, 1.0, "w", f"b={floor:g}"),
        "overlay": render_overlay(explanation.up, explanation.weight, floor, 1.0),
        "aux": Image.fromarray((explanation.aux[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)),
    }
    written = []
    for name, picture in pictures.items():
        path = folder / f"{stem}_{name}.png"
        atomic_write(path, lambda handle, picture=picture: picture.save(handle, format="PNG"))
        written.append(path)
    return written

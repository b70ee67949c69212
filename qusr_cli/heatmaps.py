"""Pictures of stages 2 and 3 for people: one captioned figure, and the separate maps for tools.

The figure puts the photo, where detail will be invented, and g(y) side by side, each captioned in
words, with a colour bar and a header that says what the critic found. Where detail is invented is
drawn as an orange tint over a grey copy of the photo, so places that keep the photo stay plain grey
instead of taking on a colour map's darkest hue.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from qusr_cli.prior.report import LEVEL_TABLE, QualityReport
from qusr_cli.safe_write import atomic_write, make_folder

# Anchor colours of matplotlib's perceptually uniform "viridis" map, at 0, 1/8, …, 1; hand-listed so
# the core install needs no matplotlib.
_VIRIDIS_ANCHORS = np.array([
    (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
    (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)], dtype=np.float64)
TINT = np.array([255.0, 110.0, 0.0])  # orange: "detail invented here"
TINT_OPACITY = 0.85
PANEL_SIDE = 360     # largest side of one figure panel, in pixels
GAP = 16
INK = (20, 20, 20)
MUTED = (90, 90, 90)


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


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return right - left


def render_heatmap(map_: torch.Tensor, low: float, high: float, title: str, unit_note: str,
                   clipped_above: bool = False) -> Image.Image:
    """Viridis heatmap of a (1,C,H,W) map (channel mean) from ``low`` to ``high``, with a labelled colour bar.

    The bar's title sits above it, its three labels beside it, and ``unit_note`` below it, so no two
    texts share a line. ``clipped_above``: values over ``high`` exist and are drawn as ``high`` ("+").
    """
    values = (_channel_mean(map_) - low) / (high - low)
    heat = Image.fromarray(colormap(values))
    font = _font(max(9, min(13, heat.height // 18)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [f"{low + fraction * (high - low):.3g}" + ("+" if fraction == 1.0 and clipped_above else "")
              for fraction in (0, 0.5, 1)]
    width = 30 + max(_text_width(probe, text, font) for text in (*labels, title, unit_note))
    canvas = Image.new("RGB", (heat.width + width, heat.height), "white")
    canvas.paste(heat, (0, 0))
    draw = ImageDraw.Draw(canvas)
    line = font.size + 4
    # the end labels are centred on the bar's ends: half a line of room keeps them off the texts around
    bar_top, bar_bottom = line + line // 2 + 2, heat.height - (line + line // 2 + 2 if unit_note else line // 2 + 2)
    bar_height = max(bar_bottom - bar_top, 8)
    bar_left = heat.width + 6
    gradient = colormap(np.linspace(1.0, 0.0, bar_height)[:, None].repeat(12, axis=1))
    canvas.paste(Image.fromarray(gradient), (bar_left, bar_top))
    draw.text((bar_left, 2), title, fill=INK, font=font)
    for fraction, label in zip((0.0, 0.5, 1.0), labels):
        y = bar_top + round((1 - fraction) * (bar_height - 1))
        draw.line([(bar_left + 12, y), (bar_left + 16, y)], fill=INK)
        draw.text((bar_left + 18, y), label, fill=INK, font=font, anchor="lm")
    if unit_note:
        draw.text((bar_left, heat.height - line), unit_note, fill=MUTED, font=font)
    return canvas


def _tinted(grey: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Orange over grey in proportion to ``amount`` in [0,1]: (H,W) grey 0-255 in, (H,W,3) uint8 out."""
    alpha = (np.clip(amount, 0.0, 1.0) * TINT_OPACITY)[..., None]
    return ((1 - alpha) * grey[..., None] + alpha * TINT).round().clip(0, 255).astype(np.uint8)


def render_overlay(image: torch.Tensor, weight: torch.Tensor, floor: float) -> Image.Image:
    """Where detail will be invented: ``image`` (1,3,H,W) in grey, tinted orange as w rises from b to 1."""
    grey = image[0].float().mean(0).clamp(0, 1).cpu().numpy() * 255.0
    return Image.fromarray(_tinted(grey, (_channel_mean(weight) - floor) / (1.0 - floor)))


def findings_in_words(report: QualityReport | None, critique: str | None) -> str:
    """What the critic found, as one sentence: the problems first, then what is fine."""
    if report is None:
        return f"The critic's words: {critique}." if critique else "No critic looked at this photo (--critic none, or a model without a denoiser)."
    nouns = {"noise": "noise", "jpeg": "JPEG artefacts", "contrast": "contrast"}
    problems, fine = [], []
    for name, measurement in report.to_dict().items():
        level = measurement["level"]
        words = f"{level} {nouns[name]}" if name in nouns else level
        if name == "noise" and level == "none" or name == "jpeg" and level == "none":
            words = f"no {nouns[name]}"
        (fine if level == LEVEL_TABLE[name].fine else problems).append(words)
    found = f"The critic found {', '.join(problems)}" if problems else "The critic found nothing wrong"
    return f"{found}; {', '.join(fine)}." if fine else f"{found}."


def invented_in_words(weight: torch.Tensor, floor: float) -> str:
    """How much of the picture gets full noise, some, or stays at the floor, in plain words."""
    share = (weight.float().mean(1) - floor) / (1.0 - floor)
    full = (share >= 0.999).float().mean().item()
    some = ((share > 0.1) & (share < 0.999)).float().mean().item()
    return (f"Detail will be invented on {full:.1%} of the picture (full noise) and partly on {some:.1%}; "
            f"the other {1 - full - some:.1%} gets the least noise and stays close to the photo.")


PLAIN_SR_WORDS = "This model is a plain SR net: its output is g(y), and no diffusion invents detail on top of it."


def explanation_in_words(explanation, floor: float, plain_sr: bool = False) -> tuple[str, str]:
    """What the critic found, and how much of the picture gets invented detail: two plain sentences."""
    critic = explanation.prior.critic
    findings = findings_in_words(critic.report if critic else None, critic.critique if critic else None)
    return findings, PLAIN_SR_WORDS if plain_sr else invented_in_words(explanation.weight, floor)


def render_figure(explanation, floor: float, name: str, words: tuple[str, str]) -> Image.Image:
    """Photo | where detail will be invented (with its colour bar) | g(y), captioned, under a header."""
    up, aux = explanation.up, explanation.aux
    height, width = up.shape[-2:]
    factor = PANEL_SIDE / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    photo = Image.fromarray(_to_uint8(up)).resize(size, Image.Resampling.LANCZOS)
    overlay = render_overlay(up, explanation.weight, floor).resize(size, Image.Resampling.LANCZOS)
    estimate = Image.fromarray(_to_uint8(aux)).resize(size, Image.Resampling.LANCZOS)
    panels = [
        (photo, "Your photo", "the input, enlarged 4x by plain bicubic interpolation"),
        (overlay, "Where detail will be invented",
         "orange: the model draws new detail; grey: it keeps your photo"),
        (estimate, "g(y): the SR net's 4x estimate",
         "the picture the diffusion starts from and corrects"),
    ]
    title_font, text_font, small_font = _font(18), _font(14), _font(12)
    wrap = max(20, size[0] // 7)
    header = [f"qusr explain: {name}", *words]
    header_lines = [header[0]] + [line for text in header[1:] for line in textwrap.wrap(text, 3 * wrap)]
    caption_lines = max(1 + len(textwrap.wrap(note, wrap)) for _, _, note in panels)
    header_height = 12 + 24 + 19 * (len(header_lines) - 1) + 8
    bar_block = 62
    canvas_width = GAP + 3 * (size[0] + GAP)
    canvas_height = header_height + size[1] + 8 + 19 * caption_lines + bar_block + GAP
    canvas = Image.new("RGB", (canvas_width, canvas_height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 12
    draw.text((GAP, y), header_lines[0], fill=INK, font=title_font)
    y += 24
    for line in header_lines[1:]:
        draw.text((GAP, y), line, fill=INK, font=text_font)
        y += 19
    top = header_height
    for index, (picture, caption, note) in enumerate(panels):
        left = GAP + index * (size[0] + GAP)
        canvas.paste(picture, (left, top))
        text_y = top + size[1] + 8
        draw.text((left, text_y), caption, fill=INK, font=text_font)
        for line in textwrap.wrap(note, wrap):
            text_y += 19
            draw.text((left, text_y), line, fill=MUTED, font=small_font)
    bar_top = top + size[1] + 8 + 19 * caption_lines + 8
    _draw_tint_bar(canvas, draw, GAP + size[0] + GAP, bar_top, size[0], floor, small_font)
    return canvas


def _draw_tint_bar(canvas: Image.Image, draw: ImageDraw.ImageDraw, left: int, top: int, width: int,
                   floor: float, font) -> None:
    """The overlay's colour bar: noise weight w from the floor b to 1 over mid-grey, labelled in words."""
    ramp = _tinted(np.full((14, width), 128.0), np.linspace(0.0, 1.0, width)[None, :].repeat(14, axis=0))
    canvas.paste(Image.fromarray(ramp), (left, top))
    draw.rectangle([left, top, left + width - 1, top + 13], outline=MUTED)
    labels = [(0.0, f"w = {floor:g}: least noise", "la"), (0.5, f"{(floor + 1) / 2:g}", "ma"),
              (1.0, "w = 1: full noise", "ra")]
    taken: list[tuple[float, float]] = []
    for fraction, text, anchor in labels:  # ends first, so the middle label is dropped if it would collide
        x = left + round(fraction * (width - 1))
        draw.line([(x, top + 14), (x, top + 18)], fill=INK)
        text_width = _text_width(draw, text, font)
        start = {"la": x, "ma": x - text_width / 2, "ra": x - text_width}[anchor]
        span = (start - 6, start + text_width + 6)
        if any(span[0] < other[1] and other[0] < span[1] for other in taken):
            continue
        taken.append(span)
        draw.text((x, top + 20), text, fill=INK, font=font, anchor=anchor)
    draw.text((left, top + 38), "noise weight w: the more noise, the more detail is invented", fill=MUTED, font=font)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def save_explanation(explanation, folder: Path, stem: str, floor: float, psi_max: float,
                     words: tuple[str, str]) -> list[Path]:
    """Write the figure (``*_explain.png``) and, for tools, ψ and w heatmaps, the overlay and g(y); returns paths.

    Texts drawn into images stay in ASCII: Pillow's built-in font has no Greek letters.
    """
    make_folder(folder, "folder for the maps")
    pictures = {
        "explain": render_figure(explanation, floor, stem, words),
        "uncertainty": render_heatmap(explanation.psi, 0.0, psi_max, "uncertainty psi", "|g(y) - up(y)| / 2",
                                      clipped_above=True),
        "noise_weight": render_heatmap(explanation.weight, floor, 1.0, "noise weight w", f"floor b = {floor:g}"),
        "overlay": render_overlay(explanation.up, explanation.weight, floor),
        "aux": Image.fromarray(_to_uint8(explanation.aux)),
    }
    written = []
    for name, picture in pictures.items():
        path = folder / f"{stem}_{name}.png"
        atomic_write(path, lambda handle, picture=picture: picture.save(handle, format="PNG"))
        written.append(path)
    return written


def write_explanation(upscaler, lr: torch.Tensor, options, folder: Path, stem: str, prior=None):
    """Explain ``lr`` (1,3,H,W) with ``upscaler`` and write the figure and the maps into ``folder``.

    Returns the explanation, its two sentences in words and the paths written; ``prior``, when given, is
    the one the upscale already built (the critic does not run twice).
    """
    explanation = upscaler.explain(lr, options, prior=prior)
    settings = upscaler.bundle.settings
    words = explanation_in_words(explanation, settings.floor, upscaler.plain_sr)
    return explanation, words, save_explanation(explanation, folder, stem, settings.floor, settings.psi_max, words)

"""Stage 5a: run any image through the per-tile stages in bounded memory, without visible seams.

Like Real-ESRGAN's tiler, the LR image is cut into overlapping tiles; unlike it, overlapping
outputs are not cropped but cross-faded with a raised-cosine window, because a diffusion sample is
not identical across tiles and a hard cut would show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F


BAND_ROWS = 128  # HR rows yielded at a time by blend_bands


@dataclass(frozen=True)
class Tile:
    top: int
    left: int
    height: int
    width: int


def axis_tiles(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Start offsets and the common size of the fewest tiles of at most ``tile`` covering ``length``.

    The tiles are split evenly (size = ⌈(L − o)/n⌉ + o for n tiles), so an image just over one tile
    is not covered by two nearly full tiles doing the same work twice.
    """
    if length <= tile:
        return [0], length
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length - overlap) / count) + overlap
    return [min(i * (size - overlap), length - size) for i in range(count)], size


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    rows, tile_height = axis_tiles(height, tile, overlap)
    cols, tile_width = axis_tiles(width, tile, overlap)
    return [Tile(top, left, tile_height, tile_width) for top in rows for left in cols]


def ramp(length: int, fade: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """1-D blend weights: raised cosine ½(1 − cos(π(k+½)/fade)) over ``fade`` samples on faded sides."""
    weights = torch.ones(length)
    fade = min(fade, length // 2)
    if fade > 0:
        rise = 0.5 * (1 - torch.cos(math.pi * (torch.arange(fade) + 0.5) / fade))
        if fade_start:
            weights[:fade] = rise
        if fade_end:
            weights[length - fade:] = rise.flip(0)
    return weights


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad bottom and right so both sides are multiples of ``multiple`` (replicate if tiny)."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


# run_tile(lr_tile, tile) -> HR tile (1, C, tile.height*scale, tile.width*scale) on the CPU
TileFunction = Callable[[torch.Tensor, Tile], torch.Tensor]


def context_span(start: int, stop: int, length: int, margin: int, multiple: int) -> tuple[int, int]:
    """[start − margin, stop + margin] within [0, length], grown inside the image to a multiple of ``multiple``.

    Growing into real pixels (never padding) keeps every tile's input a view of the same image, so
    a tile reaching the image border sees the border exactly as the whole image does. ``length``
    must itself be a multiple of ``multiple``.
    """
    low, high = max(0, start - margin), min(length, stop + margin)
    short = -(high - low) % multiple
    extra_high = min(short, length - high)
    return low - (short - extra_high), high + extra_high


def blend_bands(lr: torch.Tensor, run_tile: TileFunction, tile_size: int, overlap: int, scale: int = 4,
                on_tile_done: Callable[[int, int], None] | None = None, margin: int = 0,
                multiple: int = 1) -> Iterator[torch.Tensor]:
    """Σ_tiles window·f(tile) / Σ_tiles window, yielded top to bottom in finished bands of HR rows.

    Only one row of tiles is blended at a time: once a tile row is done, the HR rows above the next
    row's top are final and leave as a band, so memory holds one tile row's band, never the canvas.
    Each tile is run with ``margin`` extra LR pixels of context on every side the image continues
    (cropped off again before blending), so tile borders see what the whole image would show them;
    tile inputs are multiples of ``multiple`` pixels (the image's sides must be too).
    """
    _, _, height, width = lr.shape
    if height % multiple or width % multiple:
        raise ValueError(f"image sides {height}x{width} must be multiples of {multiple}; pad first")
    tiles = plan_tiles(height, width, tile_size, overlap)
    tops = sorted({tile.top for tile in tiles})
    band_top = 0  # LR row of the band's first row
    canvas = weights = None
    done = 0
    for row, top in enumerate(tops):
        for tile in (t for t in tiles if t.top == top):
            out = _tile_output(lr, run_tile, tile, margin, multiple, scale)
            if canvas is None:
                canvas = torch.zeros(1, out.shape[1], tile.height * scale, width * scale)
                weights = torch.zeros(1, 1, tile.height * scale, width * scale)
            fade = overlap * scale
            window = (ramp(tile.height * scale, fade, tile.top > 0, tile.top + tile.height < height)[:, None]
                      * ramp(tile.width * scale, fade, tile.left > 0, tile.left + tile.width < width)[None, :])
            rows = slice((tile.top - band_top) * scale, (tile.top - band_top + tile.height) * scale)
            cols = slice(tile.left * scale, (tile.left + tile.width) * scale)
            canvas[:, :, rows, cols] += out * window
            weights[:, :, rows, cols] += window
            done += 1
            if on_tile_done is not None:
                on_tile_done(done, len(tiles))
        finished = canvas.shape[2] if row + 1 == len(tops) else (tops[row + 1] - band_top) * scale
        # In slices, so that dividing never makes a second band-sized tensor.
        for start in range(0, finished, BAND_ROWS):
            stop = min(finished, start + BAND_ROWS)
            yield canvas[:, :, start:stop] / weights[:, :, start:stop]
        if row + 1 == len(tops):
            return
        # Move the rows the next tile row still blends into to the top, in place: a new band would
        # double the band's memory for a moment.
        for buffer in (canvas, weights):
            kept = buffer.shape[2] - finished
            buffer[:, :, :kept] = buffer[:, :, finished:].clone()
            buffer[:, :, kept:] = 0
        band_top = tops[row + 1]


def _tile_output(lr: torch.Tensor, run_tile: TileFunction, tile: Tile, margin: int, multiple: int,
                 scale: int) -> torch.Tensor:
    """f(tile) on the CPU, run with its context and cropped back to the tile."""
    _, _, height, width = lr.shape
    top, bottom = context_span(tile.top, tile.top + tile.height, height, margin, multiple)
    left, right = context_span(tile.left, tile.left + tile.width, width, margin, multiple)
    context = Tile(top, left, bottom - top, right - left)
    out = run_tile(lr[:, :, top:bottom, left:right], context).float().cpu()
    rows = slice((tile.top - top) * scale, (tile.top - top + tile.height) * scale)
    cols = slice((tile.left - left) * scale, (tile.left - left + tile.width) * scale)
    return out[:, :, rows, cols]


def run_tiled(lr: torch.Tensor, run_tile: TileFunction, tile_size: int, overlap: int, scale: int = 4,
              on_tile_done: Callable[[int, int], None] | None = None, margin: int = 0,
              multiple: int = 1) -> torch.Tensor:
    """The whole HR canvas: every band of :func:`blend_bands` stacked."""
    return torch.cat(list(blend_bands(lr, run_tile, tile_size, overlap, scale, on_tile_done, margin, multiple)),
                     dim=2)

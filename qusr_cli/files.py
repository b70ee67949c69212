"""The file edge of the engine: one image file in, one upscaled file out, nothing half-written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from qusr_cli.band_writer import write_bands
from qusr_cli.imageio import LoadedImage, check_output_path, output_layout, output_samples, read_image, write_image
from qusr_cli.upscaler import UpscaleOptions, UpscaleResult, Upscaler, resize_output


@dataclass
class FileResult:
    source: Path
    output: Path
    input_size: tuple[int, int]     # (width, height)
    output_size: tuple[int, int]
    lr: torch.Tensor
    result: UpscaleResult


def resize_alpha(alpha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Alpha is not diffused (invented detail in a mask looks wrong): antialiased bicubic to ``size``."""
    return F.interpolate(alpha, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def alpha_rows(alpha: torch.Tensor, top: int, rows: int, factor: int) -> torch.Tensor:
    """Rows top … top+rows of ``resize_alpha(alpha)`` at ``factor``x, from the few LR rows they depend on."""
    height, width = alpha.shape[-2:]
    # Bicubic reaches 2 LR rows each side; 3 keep the cut edge out of the rows returned.
    low = max(0, top // factor - 3)
    high = min(height, -(-(top + rows) // factor) + 3)
    part = resize_alpha(alpha[:, :, low:high], ((high - low) * factor, width * factor))
    return part[:, :, top - low * factor:top - low * factor + rows]


def upscale_image(upscaler: Upscaler, image: LoadedImage, output: Path, options: UpscaleOptions, *,
                  scale: float = 4.0, progress=None) -> FileResult:
    """Upscale and write; at the model's scale with one candidate the output is streamed in bands (band_writer)."""
    height, width = image.rgb.shape[-2:]
    if scale != upscaler.scale or options.candidates > 1:
        # The final resize and the choice among candidates need the whole output.
        result = upscaler.upscale(image.rgb, options, progress=progress)
        rgb = resize_output(result.image, (height, width), scale)
        alpha = None if image.alpha is None else resize_alpha(image.alpha, tuple(rgb.shape[-2:]))
        write_image(output, rgb, like=image, alpha=alpha)
        return FileResult(image.path, output, (width, height), (rgb.shape[-1], rgb.shape[-2]), image.rgb, result)
    size = (width * upscaler.scale, height * upscaler.scale)
    layout = output_layout(output, image, image.alpha is not None)

    def samples(bands):
        top = 0
        for rows in bands:  # a few rows each (tiling.BAND_ROWS): the conversion makes float copies of them
            alpha = None if image.alpha is None else alpha_rows(image.alpha, top, rows.shape[2], upscaler.scale)
            top += rows.shape[2]
            yield output_samples(layout, rows, alpha)

    result = upscaler.upscale_streamed(image.rgb, options, lambda bands: write_bands(output, layout, size, samples(bands)),
                                       progress=progress)
    return FileResult(image.path, output, (width, height), size, image.rgb, result)


def read_checked(source: Path, output: Path, max_pixels: int | None = None) -> LoadedImage:
    """Fail on the output path before decoding, and on the input before any model work."""
    check_output_path(source, output)
    return read_image(source, max_pixels=max_pixels)


def upscale_file(upscaler: Upscaler, source: Path, output: Path, options: UpscaleOptions, *,
                 scale: float = 4.0, max_pixels: int | None = None, progress=None) -> FileResult:
    image = read_checked(source, output, max_pixels)
    return upscale_image(upscaler, image, output, options, scale=scale, progress=progress)

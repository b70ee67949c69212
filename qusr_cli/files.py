"""The file edge of the engine: one image file in, one upscaled file out, nothing half-written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from qusr_cli.band_writer import write_bands
from qusr_cli.imageio import (LoadedImage, check_output_path, check_output_size, output_layout, output_samples,
                              read_image, write_image)
from qusr_cli.upscaler import UpscaleOptions, UpscaleResult, Upscaler, resize_output, scaled_size


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


@dataclass
class Rendered:
    """An upscaled image for the write stage: its pixels, or nothing when it was streamed to its file."""

    image: LoadedImage
    output: Path
    result: UpscaleResult
    size: tuple[int, int]              # (width, height) of the output
    rgb: torch.Tensor | None = None    # None: already written, band by band, while it was computed
    alpha: torch.Tensor | None = None
    heatmaps: list[Path] = field(default_factory=list)  # its maps, when asked for (already written)

    def write(self) -> FileResult:
        if self.rgb is not None:
            write_image(self.output, self.rgb, like=self.image, alpha=self.alpha)
        height, width = self.image.rgb.shape[-2:]
        return FileResult(self.image.path, self.output, (width, height), self.size, self.image.rgb, self.result)


def render(upscaler: Upscaler, image: LoadedImage, output: Path, options: UpscaleOptions, *,
           scale: float = 4.0, progress=None) -> Rendered:
    """Upscale ``image`` for ``output``. At the model's scale with one candidate the output is streamed to
    its file in bands as it is computed (band_writer: a large image is never whole in memory as floats),
    so it is written when this returns; otherwise ``Rendered.write`` writes it."""
    height, width = image.rgb.shape[-2:]
    check_output_size(output, scaled_size((width, height), scale))
    if scale != upscaler.scale or options.candidates > 1:
        # The final resize and the choice among candidates need the whole output.
        result = upscaler.upscale(image.rgb, options, progress=progress)
        rgb = resize_output(result.image, (height, width), scale)
        alpha = None if image.alpha is None else resize_alpha(image.alpha, tuple(rgb.shape[-2:]))
        return Rendered(image, output, result, (rgb.shape[-1], rgb.shape[-2]), rgb, alpha)
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
    return Rendered(image, output, result, size)


def read_checked(source: Path, output: Path, max_pixels: int | None = None) -> LoadedImage:
    """Fail on the output path before decoding, and on the input before any model work."""
    check_output_path(source, output)
    return read_image(source, max_pixels=max_pixels)

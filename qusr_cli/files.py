"""The file edge of the engine: one image file in, one upscaled file out, nothing half-written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from qusr_cli.imageio import LoadedImage, check_output_path, check_output_size, read_image, write_image
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


@dataclass
class Rendered:
    """An upscaled image not yet written: what the compute stage hands to the write stage."""

    image: LoadedImage
    output: Path
    rgb: torch.Tensor
    alpha: torch.Tensor | None
    result: UpscaleResult
    heatmaps: list[Path] = field(default_factory=list)  # its maps, when asked for (already written)

    def write(self) -> FileResult:
        write_image(self.output, self.rgb, like=self.image, alpha=self.alpha)
        height, width = self.image.rgb.shape[-2:]
        return FileResult(self.image.path, self.output, (width, height), (self.rgb.shape[-1], self.rgb.shape[-2]),
                          self.image.rgb, self.result)


def render(upscaler: Upscaler, image: LoadedImage, output: Path, options: UpscaleOptions, *,
           scale: float = 4.0, progress=None) -> Rendered:
    height, width = image.rgb.shape[-2:]
    check_output_size(output, scaled_size((width, height), scale))
    result = upscaler.upscale(image.rgb, options, progress=progress)
    rgb = resize_output(result.image, (height, width), scale)
    alpha = None if image.alpha is None else resize_alpha(image.alpha, tuple(rgb.shape[-2:]))
    return Rendered(image, output, rgb, alpha, result)


def read_checked(source: Path, output: Path, max_pixels: int | None = None) -> LoadedImage:
    """Fail on the output path before decoding, and on the input before any model work."""
    check_output_path(source, output)
    return read_image(source, max_pixels=max_pixels)

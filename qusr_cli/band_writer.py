"""Writing an output image band by band, so a large one never sits in memory as floats.

PNG is streamed: IHDR and the metadata chunks, then each band of rows is Paeth-filtered and fed to
one zlib stream whose output leaves as IDAT chunks, so memory holds one band whatever the size.
Pillow, imagecodecs and tifffile only encode whole images, and a PNG is no more than these chunks,
so this writer is written here. JPEG, WebP, BMP and TIFF have no row-by-row encoder among those
libraries: their bands are pasted into the stored 8-bit image (Pillow keeps 4 bytes a pixel; a
16-bit TIFF keeps its samples, 6-8 bytes a pixel), which is encoded at the end. That is a quarter
or less of the float canvas, but it grows with the image.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np
from PIL import Image

from qusr_cli.imageio import OutputLayout, encode_image, png_chunk, png_metadata_chunks
from qusr_cli.safe_write import atomic_write

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # samples per pixel -> gray, gray+alpha, RGB, RGBA
_PAETH = 4
_FILTER_ROWS = 64  # rows filtered at once: bounds the int16 temporaries to a few MB per 10k pixels of width
ZLIB_LEVEL = 6  # Pillow's default for PNG


def streams(layout: OutputLayout) -> bool:
    """Whether an image of this layout is written without ever being whole in memory."""
    return layout.fmt == "PNG"


def write_bands(path, layout: OutputLayout, size: tuple[int, int], bands: Iterable[np.ndarray],
                jpeg_quality: int = 95) -> None:
    """Write the (rows, W, channels) samples of ``bands``, top to bottom, as one image of ``size`` (W, H).

    Atomic like every write: a failure in the middle (also one raised by the iterator) leaves no file.
    """
    atomic_write(Path(path), lambda f: _encode_bands(f, layout, size, bands, jpeg_quality))


def _encode_bands(f: BinaryIO, layout: OutputLayout, size: tuple[int, int], bands: Iterable[np.ndarray],
                  jpeg_quality: int) -> None:
    width, height = size
    if streams(layout):
        png = PngStream(f, layout, width, height)
        rows = 0
        for band in bands:
            png.write(band)
            rows += band.shape[0]
        if rows != height:
            raise ValueError(f"the bands hold {rows} rows, not the image's {height}")
        png.finish()
        return
    if layout.bit_depth == 16 and layout.channels > 1:
        whole = np.empty((height, width, layout.channels), np.uint16)
        paste = lambda band, top: whole.__setitem__(slice(top, top + band.shape[0]), band)  # noqa: E731
    else:
        whole = Image.new(layout.pillow_mode, (width, height))
        paste = lambda band, top: whole.paste(Image.fromarray(band[:, :, 0] if band.shape[2] == 1 else band),
                                              (0, top))  # noqa: E731
    top = 0
    for band in bands:
        paste(band, top)
        top += band.shape[0]
    if top != height:
        raise ValueError(f"the bands hold {top} rows, not the image's {height}")
    encode_image(f, layout, whole, jpeg_quality)


def paeth_filtered(rows: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    """PNG scanlines with filter 4: each byte x minus the Paeth predictor of its left a, up b, up-left c.

    Predictor: of a, b, c the one nearest p = a + b − c (ties: a, then b). ``rows`` (h, n) bytes,
    ``above`` (n,) the row before them (zeros at the top of the image); out (h, 1 + n) with the
    filter-type byte first.
    """
    current = rows.astype(np.int16)
    up = np.concatenate([above[None], rows[:-1]]).astype(np.int16)
    left = np.zeros_like(current)
    left[:, bpp:] = current[:, :-bpp]
    up_left = np.zeros_like(current)
    up_left[:, bpp:] = up[:, :-bpp]
    dist_left = np.abs(up - up_left)  # |p − a|
    dist_up = np.abs(left - up_left)  # |p − b|
    dist_up_left = np.abs(left + up - 2 * up_left)  # |p − c|
    predictor = np.where((dist_left <= dist_up) & (dist_left <= dist_up_left), left,
                         np.where(dist_up <= dist_up_left, up, up_left))
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = _PAETH
    out[:, 1:] = (current - predictor) & 0xFF
    return out


class PngStream:
    """A PNG written row band by row band into an open binary file."""

    def __init__(self, f: BinaryIO, layout: OutputLayout, width: int, height: int):
        self.f = f
        self.bytes_per_sample = layout.bit_depth // 8
        self.bpp = layout.channels * self.bytes_per_sample
        self.above = np.zeros(width * self.bpp, np.uint8)
        self.compressor = zlib.compressobj(ZLIB_LEVEL)
        header = struct.pack(">IIBBBBB", width, height, layout.bit_depth, _PNG_COLOUR_TYPES[layout.channels],
                             0, 0, 0)
        f.write(PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_metadata_chunks(layout.icc, layout.exif))

    def write(self, samples: np.ndarray) -> None:
        """Append (rows, W, channels) uint8 or uint16 samples."""
        big_endian = samples.astype(">u2") if self.bytes_per_sample == 2 else samples
        rows = np.ascontiguousarray(big_endian).view(np.uint8).reshape(samples.shape[0], -1)
        for start in range(0, rows.shape[0], _FILTER_ROWS):
            chunk = rows[start:start + _FILTER_ROWS]
            self._idat(self.compressor.compress(paeth_filtered(chunk, self.above, self.bpp).tobytes()))
            self.above = chunk[-1].copy()

    def finish(self) -> None:
        self._idat(self.compressor.flush())
        self.f.write(png_chunk(b"IEND", b""))

    def _idat(self, data: bytes) -> None:
        if data:
            self.f.write(png_chunk(b"IDAT", data))

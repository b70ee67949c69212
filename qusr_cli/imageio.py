"""Image files in and out of the upscaler.

The engine only ever sees RGB float tensors (1, 3, H, W) in [0, 1]. Everything else a file
carries (alpha, grayscale, 16-bit depth, ICC profile, EXIF) is kept in a `LoadedImage` and put
back by `write_image`, so the upscaled file looks like its source, only larger.

Decoders: Pillow for everything it holds at full depth (all 8-bit modes, 16-bit grayscale,
32-bit I and F). Pillow 13 reduces 16-bit RGB, RGBA and gray+alpha PNG and TIFF to 8 bits when
decoding and has no 16-bit colour mode to encode from, so those go through imagecodecs (libpng)
for PNG and tifffile for TIFF. tifffile needs imagecodecs for LZW, PackBits and the other
compressions photo editors write 16-bit TIFFs with, so one dependency serves both formats.

Known limits: only the first frame of multi-frame files is read; a TIFF Pillow cannot open
(16-bit gray+alpha) is read by tifffile alone, without its EXIF; 16-bit TIFF output with more
than one channel carries the ICC profile but not the EXIF; JPEG holds at most 64 KB of EXIF, and
each format at most ``formats.MAX_SIDE`` pixels a side (WebP 16383).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import struct
import warnings
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import imagecodecs
import numpy as np
import tifffile
import torch
from PIL import Image, UnidentifiedImageError

from qusr_cli.errors import InputError, first_line
from qusr_cli.formats import (
    ALPHA_FORMATS,
    IMAGE_SUFFIXES,  # noqa: F401  (re-exported: readers of folders import it from here)
    MAX_SIDE,
    METADATA_FORMATS,
    READ_FORMATS,
    SIXTEEN_BIT_FORMATS,
    needs_plugin,
    output_format,
    register_plugins,
)
from qusr_cli.safe_write import atomic_write, probe_writable

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS: CMYK falls back to the plain formula
    ImageCms = None

log = logging.getLogger("qusr")

#: Smallest accepted width and height. A smaller file is almost surely an icon, a tracking
#: pixel or a broken export, not a photo, and has too little content for the model to work from.
MIN_SIDE = 4

JPEG_MAX_EXIF = 65533  # one APP1 segment: 65535 bytes less its 2-byte length

# ITU-R BT.601 luma, the weights Pillow's convert("L") uses: a gray image replicated to RGB
# comes back to exactly its own values, and gray output matches what other tools would make.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_ORIENTATION_TAG = 0x0112
_BITS_PER_SAMPLE_TAG = 258
_ICC_TAG = 34675

# Pillow's getexif() on a TIFF returns the whole first IFD, including the tags that describe the
# TIFF's own pixel layout. Copied into another file they would describe data that is not there.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320,
    322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 530, 34675,
})

# Orientation value -> the numpy view that shows the pixels upright; the same transforms
# Pillow's ImageOps.exif_transpose applies, done on arrays so that Pillow-decoded and
# full-depth-decoded pixels share one code path.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}

_PILLOW_HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}

# What decoders raise on a damaged, truncated or unsupported file. The try that catches these
# covers opening and decoding only; scaling and orienting the samples come after it, so a bug
# there is not reported as a bad file.
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
    imagecodecs.PngError, tifffile.TiffFileError,
)
_EXIF_ERRORS = (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


@dataclass
class LoadedImage:
    """A decoded image and everything about its file that the engine does not touch."""

    rgb: torch.Tensor  # (1, 3, H, W) float32 in [0, 1]; grayscale replicated to 3 channels
    alpha: torch.Tensor | None  # (1, 1, H, W) float32 in [0, 1]
    grayscale: bool  # single-channel source: written back single-channel
    bit_depth: int  # 8 or 16
    icc_profile: bytes | None
    exif: bytes | None  # Orientation already applied to the pixels and reset to 1
    source_format: str  # Pillow format name, e.g. "PNG", "JPEG"
    path: Path


def read_rgb8(path) -> np.ndarray:
    """The 8-bit RGB pixel grid of a file as stored, (H, W, 3) uint8: no EXIF rotation, alpha dropped.

    For data sets and metrics, whose files are plain 8-bit photos and PNGs; a user's image goes through
    :func:`read_image`, which keeps what it needs to be written back faithfully.
    """
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_image(path, max_pixels: int | None = None) -> LoadedImage:
    """Decode `path` (by content, whatever its extension) into a `LoadedImage`.

    EXIF orientation is applied to the pixels. Palette images become RGB or RGBA; CMYK is
    converted to sRGB through its ICC profile when it has one, and the CMYK profile is dropped.
    16-bit PNG/TIFF keep 16 bits. 32-bit integer (I) images whose values lie in 0..65535 are
    read as 16-bit data, which is what they hold in practice; other I and F images have no
    standard white level and are stretched from their minimum to their maximum (F images already
    in [0, 1] are kept as they are).

    `max_pixels` (default: Pillow's MAX_IMAGE_PIXELS) bounds width x height; a larger image is
    refused before it is decoded. Every problem with the file raises InputError.
    """
    path = Path(path)
    _check_regular_file(path)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if limit is not None and limit < 1:
        raise InputError(f"--max-pixels must be a positive number, got {limit}")

    try:
        with _pixel_limit(limit):
            pixels, orientation, exif, icc_profile, source_format = _decode(path, limit)
    except _BOMB_ERRORS as e:
        raise InputError(
            f"{path}: image is larger than the limit of {limit:,} pixels; "
            "if you trust this file, raise the limit with --max-pixels"
        ) from e
    except UnidentifiedImageError as e:
        raise InputError(f"{path}: not an image file, or in a format qusr cannot read "
                         f"({', '.join(READ_FORMATS)})") from e
    except PermissionError as e:
        raise InputError(f"{path}: permission denied") from e
    except _DECODE_ERRORS as e:
        raise InputError(f"{path}: cannot decode the image ({first_line(e)}); is the file complete?") from e

    values, bit_depth = _to_unit_float(pixels, path)
    values = _UPRIGHT.get(orientation, lambda a: a)(values)
    grayscale = values.shape[2] in (1, 2)
    colour_channels = 1 if grayscale else 3
    planes = torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1).unsqueeze(0)
    rgb = planes[:, :colour_channels]
    if grayscale:
        rgb = rgb.repeat(1, 3, 1, 1)
    alpha = planes[:, colour_channels:] if values.shape[2] > colour_channels else None
    return LoadedImage(
        rgb=rgb.contiguous(),
        alpha=None if alpha is None else alpha.contiguous(),
        grayscale=grayscale,
        bit_depth=bit_depth,
        icc_profile=icc_profile,
        exif=exif,
        source_format=source_format,
        path=path,
    )


@dataclass(frozen=True)
class OutputLayout:
    """How an image is stored in its output file, decided by the format and the source it copies."""

    fmt: str  # Pillow format name
    grayscale: bool  # written as BT.601 luma
    keeps_alpha: bool  # False: composited onto white
    bit_depth: int  # 8 or 16
    channels: int  # samples per pixel written
    icc: bytes | None
    exif: bytes | None

    @property
    def pillow_mode(self) -> str:
        return {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[self.channels]


def output_layout(path, like: LoadedImage, has_alpha: bool) -> OutputLayout:
    """What `write_image` stores for an image like `like` (see there); also checks the extension."""
    path = Path(path)
    fmt = output_format(path)
    if needs_plugin(path):
        register_plugins()
    grayscale_channels = 3 if fmt == "WEBP" else 1
    keeps_alpha = has_alpha and fmt in ALPHA_FORMATS
    colour_channels = grayscale_channels if like.grayscale else 3
    colour_space = b"GRAY" if colour_channels == 1 else b"RGB "
    icc = like.icc_profile if fmt in METADATA_FORMATS else None
    if icc is not None and _icc_colour_space(icc) != colour_space:
        icc = None
    return OutputLayout(
        fmt=fmt,
        grayscale=like.grayscale,
        keeps_alpha=keeps_alpha,
        bit_depth=16 if like.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS else 8,
        channels=colour_channels + int(keeps_alpha),
        icc=icc,
        exif=like.exif if fmt in METADATA_FORMATS else None,
    )


def output_samples(layout: OutputLayout, rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> np.ndarray:
    """(H, W, channels) uint8/uint16 samples of `rgb` (1, 3, H, W) and `alpha` (1, 1, H, W) as stored.

    Every pixel is converted on its own, so any band of rows converts to the same samples as it does
    inside the whole image.
    """
    colour = _tensor_to_hwc(rgb, 3, "rgb")
    opacity = None if alpha is None else _tensor_to_hwc(alpha, 1, "alpha")
    if opacity is not None and opacity.shape[:2] != colour.shape[:2]:
        raise ValueError(f"alpha is {opacity.shape[:2]} but rgb is {colour.shape[:2]}")
    if opacity is not None and not layout.keeps_alpha:
        colour = colour * opacity + (1.0 - opacity)
        opacity = None
    if layout.grayscale:
        colour = (colour @ _LUMA_WEIGHTS)[:, :, None]
        if layout.fmt == "WEBP":
            colour = np.repeat(colour, 3, axis=2)
    channels = colour if opacity is None else np.concatenate([colour, opacity], axis=2)
    return _quantise(channels, layout.bit_depth)


def encode_image(f: BinaryIO, layout: OutputLayout, pixels: np.ndarray | Image.Image, jpeg_quality: int = 95) -> None:
    """Encode a whole image, as samples from `output_samples` or a Pillow image of the layout's mode."""
    if layout.bit_depth == 16 and layout.channels > 1:
        if layout.fmt == "PNG":
            f.write(_encode_png16(pixels, layout.icc, layout.exif))
        else:
            _write_tiff16(f, pixels, layout.icc)
        return
    if isinstance(pixels, np.ndarray):
        pixels = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    pixels.save(f, format=layout.fmt, **_pillow_save_options(layout.fmt, layout.icc, layout.exif, jpeg_quality))


def check_jpeg_quality(jpeg_quality: int) -> None:
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"JPEG quality must be between 1 and 100, got {jpeg_quality}")


def write_image(
    path,
    rgb: torch.Tensor,
    *,
    like: LoadedImage,
    alpha: torch.Tensor | None = None,
    jpeg_quality: int = 95,
) -> None:
    """Write `rgb` (1, 3, H, W) in [0, 1] to `path`, in the format its extension names.

    From `like` it takes: grayscale (written as BT.601 luma, single channel where the format has
    a gray mode; WebP has none and gets gray RGB), bit depth (16 bits for PNG and TIFF when the
    source had 16, else 8), ICC profile (PNG, JPEG, WebP, TIFF; dropped if its colour space no
    longer matches the written channels) and EXIF (PNG, JPEG, WebP, TIFF; not 16-bit TIFF
    with more than one channel). `alpha` (1, 1, H, W) is stored in PNG, WebP and TIFF; JPEG
    and BMP have no alpha, so the image is composited onto white, as image viewers show it.
    `jpeg_quality` (1-100) is also the WebP, AVIF, HEIF and JPEG XL quality. TIFF is written uncompressed: Pillow's
    compressed TIFF writer fails on EXIF that has a sub-IFD, which camera EXIF always has.
    The write is atomic.
    """
    layout = output_layout(path, like, alpha is not None)
    check_jpeg_quality(jpeg_quality)
    pixels = output_samples(layout, rgb, alpha)
    atomic_write(path, lambda f: encode_image(f, layout, pixels, jpeg_quality))


def _open(path: Path) -> Image.Image:
    """Image.open with only qusr's READ_FORMATS, registering the HEIF/JPEG XL plugins first when the file
    may need them."""
    if needs_plugin(path):
        register_plugins()
    try:
        return Image.open(path, formats=_registered_read_formats())
    except UnidentifiedImageError:
        if not register_plugins():  # a HEIC or JPEG XL file under another name
            raise
        return Image.open(path, formats=_registered_read_formats())


def _registered_read_formats() -> list[str]:
    # Image.open fails on a format name no plugin has registered yet (the plugins register on demand).
    Image.init()
    return [name for name in READ_FORMATS if name in Image.OPEN]


def check_output_size(path, size: tuple[int, int]) -> None:
    """Refuse, before any compute, an output ``size`` (width, height) that ``path``'s format cannot store."""
    fmt = output_format(Path(path))
    if max(size) > MAX_SIDE[fmt]:
        raise InputError(f"{path}: the output would be {size[0]}x{size[1]} pixels, but {fmt} stores at most "
                         f"{MAX_SIDE[fmt]} a side; choose .png or .tif, or a smaller --scale")


def check_output_path(input_path, output_path) -> None:
    """Refuse, before any compute, an output path that cannot or must not be written.

    Checks the extension names a writable format, the output is not the input itself (through
    symlinks, hard links or another spelling of the path), is not a folder, and its folder
    exists and accepts a new file (tried for real, so ACLs and read-only mounts count too).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    output_format(output_path)
    if output_path.is_dir():
        raise InputError(f"{output_path}: output is a folder; give a file name")
    if output_path.exists() and input_path.exists() and os.path.samefile(input_path, output_path):
        raise InputError(f"{output_path}: output is the input file itself; choose another name")
    folder = output_path.parent
    if not folder.is_dir():
        raise InputError(f"{output_path}: output folder {folder} does not exist")
    try:
        probe_writable(folder)
    except OSError as e:
        raise InputError(f"{output_path}: cannot write to folder {folder} ({e.strerror})") from e


@contextmanager
def _pixel_limit(limit: int | None):
    # Pillow reads its decompression-bomb threshold from this module global only; setting it for
    # the duration of one read moves the guard to --max-pixels without ever turning it off.
    # Pillow merely warns between 1x and 2x the limit, so that warning is made an error too. Other
    # decoder warnings (Pillow's "Corrupt EXIF data") would print beside qusr's own message: hidden.
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _check_min_size(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(
            f"{path}: image is {width}x{height} pixels; qusr needs at least {MIN_SIDE}x{MIN_SIDE}"
        )


def _check_regular_file(path: Path) -> None:
    # A FIFO or a device would block or never end; refuse anything but a plain file up front.
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:
        reason = "a symlink loop" if e.errno == errno.ELOOP else e.strerror
        raise InputError(f"{path}: cannot open ({reason})") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, not an image file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a FIFO, socket or device); qusr reads image files only")


def _decode(path: Path, limit: int | None) -> tuple[np.ndarray, int, bytes | None, bytes | None, str]:
    """Pixels (H, W, C), the orientation still to apply, EXIF, ICC profile and the format's name."""
    try:
        image = _open(path)  # the allow-list READ_FORMATS keeps hostile content from other decoders
    except UnidentifiedImageError:
        if _starts_like_tiff(path):
            return _decode_tiff_without_pillow(path, limit)
        raise
    with image:
        _check_min_size(path, image.size)
        # Pillow's TIFF load() turns the pixels upright and drops the tag; a full-depth decoder
        # reads the stored order, so it needs the orientation as stored.
        stored_orientation = image.tag_v2.get(_ORIENTATION_TAG, 1) if image.format == "TIFF" else 1
        # Decode now: a truncated file fails here with its real reason, not later inside
        # the EXIF read, which shrugs off errors.
        image.load()
        orientation, exif = _orientation_and_exif(image)
        full_depth = _full_depth_decoder(image, path)
        if full_depth is None:
            pixels, icc_profile = _pillow_pixels(image)
        else:
            pixels, icc_profile = full_depth(path), image.info.get("icc_profile") or None
            if image.format == "TIFF":
                orientation = stored_orientation if stored_orientation in _UPRIGHT else 1
        return pixels, orientation, exif, icc_profile, image.format


def _starts_like_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*")


def _decode_tiff_without_pillow(path: Path, limit: int | None):
    """TIFFs Pillow has no mode for (16-bit gray+alpha, which qusr itself writes): tifffile only.

    Their EXIF is not carried over; orientation and ICC profile are.
    """
    with tifffile.TiffFile(path) as tiff:
        page = _first_page(tiff)
        size = (page.imagewidth, page.imagelength)
        if limit is not None and size[0] * size[1] > limit:
            raise Image.DecompressionBombError(f"{size[0]}x{size[1]} pixels")
        _check_min_size(path, size)
        orientation = page.tags.valueof(_ORIENTATION_TAG, 1)
        icc_profile = page.tags.valueof(_ICC_TAG)
    pixels = _decode_tiff16(path)
    return (pixels, orientation if orientation in _UPRIGHT else 1, None,
            bytes(icc_profile) if icc_profile else None, "TIFF")


def _orientation_and_exif(image: Image.Image) -> tuple[int, bytes | None]:
    """The EXIF orientation, and the EXIF to carry over with orientation reset to 1.

    Unreadable EXIF is dropped rather than failing the read: viewers show such photos fine.
    """
    try:
        exif = image.getexif()
        orientation = exif.get(_ORIENTATION_TAG, 1)
        if image.format == "TIFF":
            for tag in _TIFF_LAYOUT_TAGS:
                exif.pop(tag, None)
        if _ORIENTATION_TAG in exif:
            exif[_ORIENTATION_TAG] = 1
        exif_bytes = exif.tobytes() if len(exif) else None
    except _EXIF_ERRORS:
        return 1, None
    return (orientation if orientation in _UPRIGHT else 1), exif_bytes


def _full_depth_decoder(image: Image.Image, path: Path) -> Callable[[Path], np.ndarray] | None:
    """The decoder for a 16-bit file Pillow would reduce to 8 bits, or None if Pillow keeps it."""
    if image.format == "PNG":
        with open(path, "rb") as f:
            header = f.read(26)
        # The PNG signature (8 bytes) and IHDR's length and type (8) precede width and height
        # (8), then bit depth and colour type; 2, 4, 6 are RGB, gray+alpha and RGBA.
        if len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6):
            return _decode_png16
    elif image.format == "TIFF":
        bits = image.tag_v2.get(_BITS_PER_SAMPLE_TAG, 1)
        bits = bits if isinstance(bits, tuple) else (bits,)
        if 16 in bits and not image.mode.startswith("I;16"):
            return _decode_tiff16
    return None


def _decode_png16(path: Path) -> np.ndarray:
    return imagecodecs.png_decode(path.read_bytes())


def _first_page(tiff: tifffile.TiffFile):
    if not len(tiff.pages):
        raise tifffile.TiffFileError("the file holds no image")
    return tiff.pages[0]


def _decode_tiff16(path: Path) -> np.ndarray:
    with tifffile.TiffFile(path) as tiff:
        page = _first_page(tiff)
        try:
            pixels = page.asarray()
        except RuntimeError as e:  # imagecodecs' codec errors (ImcdError for LZW, ...) are RuntimeErrors
            raise tifffile.TiffFileError(first_line(e)) from e
        axes, photometric, extras = page.axes, page.photometric, page.extrasamples
    pixels = np.moveaxis(pixels, axes.index("S"), -1) if "S" in axes else pixels[:, :, None]
    if photometric == tifffile.PHOTOMETRIC.RGB:
        colour_channels = 3
    elif photometric == tifffile.PHOTOMETRIC.MINISBLACK:
        colour_channels = 1
    else:
        raise InputError(
            f"{path}: 16-bit TIFF in {photometric.name} colour is not supported; "
            "convert it to RGB or grayscale first"
        )
    alpha_kinds = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)
    has_alpha = bool(extras) and extras[0] in alpha_kinds
    pixels = pixels[:, :, : colour_channels + int(has_alpha)]
    if has_alpha and extras[0] == tifffile.EXTRASAMPLE.ASSOCALPHA:
        alpha = pixels[:, :, -1:].astype(np.float64)
        colour = pixels[:, :, :-1] * 65535.0 / np.maximum(alpha, 1.0)
        pixels = np.concatenate([np.clip(np.rint(colour), 0, 65535), alpha], axis=2)
        pixels = pixels.astype(np.uint16)
    return pixels


def _pillow_pixels(image: Image.Image) -> tuple[np.ndarray, bytes | None]:
    """Pixels as (H, W, C) in Pillow's sample type, C one of 1, 2, 3, 4; and the ICC to keep."""
    icc_profile = image.info.get("icc_profile") or None
    if image.mode == "CMYK":
        image, icc_profile = _cmyk_to_srgb(image, icc_profile), None
    elif image.mode in ("1", "L", "LA", "La"):
        image = image.convert("LA" if image.has_transparency_data else "L")
    elif image.mode not in _PILLOW_HIGH_DEPTH_MODES:
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    pixels = np.asarray(image)
    return (pixels if pixels.ndim == 3 else pixels[:, :, None]), icc_profile


def _cmyk_to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    if icc_profile and ImageCms is not None:
        try:
            return ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc_profile)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
        except (OSError, ImageCms.PyCMSError):
            pass  # an unreadable or non-CMYK profile: viewers use the plain formula, so do we
    return image.convert("RGB")


def _to_unit_float(pixels: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """Samples scaled to float32 [0, 1], and the bit depth to write back."""
    kind, size = pixels.dtype.kind, pixels.dtype.itemsize
    if kind == "u" and size == 1:
        return pixels.astype(np.float32) / 255.0, 8
    if kind == "u" and size == 2:
        return pixels.astype(np.float32) / 65535.0, 16
    if kind == "i" and size == 4:
        if pixels.min() >= 0 and pixels.max() <= 65535:
            return pixels.astype(np.float32) / 65535.0, 16
        return _stretch(pixels), 16
    if kind == "f" and size == 4:
        if not np.isfinite(pixels).all():
            raise InputError(f"{path}: image contains NaN or infinite values")
        if pixels.min() >= 0.0 and pixels.max() <= 1.0:
            return pixels.astype(np.float32), 16
        return _stretch(pixels), 16
    raise InputError(f"{path}: {pixels.dtype.name} samples are not supported")


def _stretch(pixels: np.ndarray) -> np.ndarray:
    low, high = float(pixels.min()), float(pixels.max())
    if high == low:
        return np.zeros(pixels.shape, dtype=np.float32)
    return ((pixels.astype(np.float64) - low) / (high - low)).astype(np.float32)


def _tensor_to_hwc(tensor: torch.Tensor, channels: int, name: str) -> np.ndarray:
    if tensor.ndim != 4 or tensor.shape[0] != 1 or tensor.shape[1] != channels:
        raise ValueError(f"{name} must have shape (1, {channels}, H, W), got {tuple(tensor.shape)}")
    return tensor[0].detach().to("cpu", torch.float32).clamp(0.0, 1.0).permute(1, 2, 0).numpy()


def _quantise(values: np.ndarray, bit_depth: int) -> np.ndarray:
    white, dtype = (65535.0, np.uint16) if bit_depth == 16 else (255.0, np.uint8)
    # C order: the tensor's (H, W, C) view is strided, and imagecodecs takes contiguous data only.
    return np.ascontiguousarray(np.rint(np.clip(values, 0.0, 1.0) * white).astype(dtype))


def _icc_colour_space(icc_profile: bytes) -> bytes | None:
    # Bytes 16-19 of the 128-byte ICC header name the profile's data colour space.
    return icc_profile[16:20] if len(icc_profile) >= 128 else None


def _pillow_save_options(fmt: str, icc: bytes | None, exif: bytes | None, quality: int) -> dict:
    options = {}
    if icc:
        options["icc_profile"] = icc
    if exif and fmt == "JPEG" and len(exif) > JPEG_MAX_EXIF:
        log.warning("EXIF of %d bytes does not fit a JPEG (at most %d); written without it", len(exif), JPEG_MAX_EXIF)
    elif exif:
        options["exif"] = exif
    if fmt == "JPEG":
        # 4:4:4: chroma subsampling would throw away colour detail the model just produced.
        options.update(quality=quality, subsampling=0)
    elif fmt in ("WEBP", "AVIF", "HEIF", "JXL"):
        options["quality"] = quality
    return options


def _encode_png16(pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    encoded = imagecodecs.png_encode(pixels)
    # Signature (8 bytes) + IHDR chunk (25): iCCP must come before the image data, right after
    # IHDR is always valid. imagecodecs writes no sRGB/gAMA chunk that iCCP would contradict.
    return encoded[:33] + png_metadata_chunks(icc, exif) + encoded[33:]


def png_metadata_chunks(icc: bytes | None, exif: bytes | None) -> bytes:
    """The iCCP and eXIf chunks that carry an ICC profile and EXIF in a PNG."""
    extra = b""
    if icc:
        extra += png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
    return extra


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_tiff16(f: BinaryIO, pixels: np.ndarray, icc: bytes | None) -> None:
    has_alpha = pixels.shape[2] in (2, 4)
    tifffile.imwrite(
        f,
        pixels,
        photometric="rgb" if pixels.shape[2] >= 3 else "minisblack",
        extrasamples=("unassalpha",) if has_alpha else None,
        iccprofile=icc,
    )

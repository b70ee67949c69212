"""A fuzz corpus for `qusr batch`: valid, unusual and malformed image files, and hostile folder entries.

``make_corpus(folder)`` writes the files and returns one ``Entry`` per file, saying what a correct
run must do with it: ``expect`` is "write" (a valid image: an output of ``size`` must appear, and
if ``marker`` is set its top-left quadrant must be the brightest, which catches a missed EXIF
rotation), "refuse" (a one-line failed row) or "either" (a damaged file a decoder may still read;
no traceback either way). Every category of issue 11's campaign is covered: truncations at many cut
points of every format, byte flips, bombs, modes and depths, EXIF/ICC garbage, non-images under
image names, hostile names, symlink loops, FIFOs, tiny images, output-name collisions.

``fast=True`` keeps every category but fewer cut points and flips (for the test suite); the full
corpus (``python benchmarks/fuzz_batch.py``) has over 500 entries. Deterministic for a given seed.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

ORIENTATION = 0x0112


@dataclass(frozen=True)
class Entry:
    path: Path
    category: str
    expect: str                            # "write", "refuse" or "either"
    size: tuple[int, int] | None = None    # (width, height) of the upright input, for "write"
    marker: bool = False                   # upright image has its bright quadrant top-left


def _pixels(width: int, height: int, channels: int = 3, seed: int = 0, depth: int = 8) -> np.ndarray:
    """Noise over a gradient, with the top-left quadrant clearly brightest."""
    rng = np.random.default_rng(seed)
    white = 255 if depth == 8 else 65535
    base = np.full((height, width, channels), 0.25)
    base[: height // 2, : width // 2] = 0.85
    noisy = np.clip(base + rng.normal(0, 0.04, base.shape), 0, 1)
    return np.rint(noisy * white).astype(np.uint8 if depth == 8 else np.uint16)


def _stored(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels that EXIF ``orientation`` turns into ``upright`` (inverse of the viewer's transform)."""
    inverse = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
               5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, 1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
               8: lambda a: np.rot90(a, -1)}
    return np.ascontiguousarray(inverse[orientation](upright))


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exif(orientation: int | None = None, description: str | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if description is not None:
        exif[0x010E] = description
    return exif.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (wrong) image stream: a bomb by its header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def _tiff_with_size(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one IFD claims width x height, with 8 bytes of pixel data."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
            (277, 3, 1), (278, 4, height), (279, 4, 8)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
    return b"II*\x00" + struct.pack("<I", 16) + bytes(8) + ifd + struct.pack("<I", 0)


def _valid_files() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """name -> (bytes, upright size) for one file of every format, mode and depth qusr reads."""
    w, h = 24, 16
    rgb, grey = _pixels(w, h), _pixels(w, h, 1)[:, :, 0]
    rgba = np.concatenate([rgb, _pixels(w, h, 1, seed=1)], axis=2)
    rgb16, grey16 = _pixels(w, h, depth=16), _pixels(w, h, 1, depth=16)
    files = {
        "rgb.png": _encode(Image.fromarray(rgb), "PNG"),
        "rgba.png": _encode(Image.fromarray(rgba), "PNG"),
        "grey.png": _encode(Image.fromarray(grey), "PNG"),
        "grey_alpha.png": _encode(Image.fromarray(rgba[:, :, [0, 3]], "LA"), "PNG"),
        "palette.png": _encode(Image.fromarray(rgb).convert("P"), "PNG"),
        "bilevel.png": _encode(Image.fromarray(grey).convert("1"), "PNG"),
        "grey16.png": _encode(Image.fromarray(grey16[:, :, 0]), "PNG"),
        "rgb16.png": imagecodecs.png_encode(rgb16),
        "rgba16.png": imagecodecs.png_encode(np.concatenate([rgb16, grey16], axis=2)),
        "rgb.jpg": _encode(Image.fromarray(rgb), "JPEG", quality=90),
        "grey.jpg": _encode(Image.fromarray(grey), "JPEG"),
        "cmyk.jpg": _encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "progressive.jpg": _encode(Image.fromarray(rgb), "JPEG", progressive=True),
        "rgb.webp": _encode(Image.fromarray(rgb), "WEBP"),
        "rgba.webp": _encode(Image.fromarray(rgba), "WEBP", lossless=True),
        "rgb.bmp": _encode(Image.fromarray(rgb), "BMP"),
        "rgb.tif": _encode(Image.fromarray(rgb), "TIFF"),
        "lzw.tif": _encode(Image.fromarray(rgb), "TIFF", compression="tiff_lzw"),
        "gif_named.png": _encode(Image.fromarray(rgb).convert("P"), "GIF"),
        "ppm_named.bmp": _encode(Image.fromarray(rgb), "PPM"),
    }
    files = {name: (data, (w, h)) for name, data in files.items()}
    for name, array, kwargs in (("rgb16.tif", rgb16, {"photometric": "rgb"}),
                                ("grey_alpha16.tif", np.concatenate([grey16, grey16], axis=2),
                                 {"photometric": "minisblack", "extrasamples": ("unassalpha",)}),
                                ("float.tif", (rgb / 255.0).astype(np.float32), {"photometric": "rgb"})):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array, **kwargs)
        files[name] = (buffer.getvalue(), (w, h))
    return files


def _oriented_files() -> list[tuple[str, bytes, tuple[int, int]]]:
    """JPEG, PNG and 16-bit TIFF in all eight EXIF orientations, each showing the marker upright."""
    upright8, upright16 = _pixels(24, 16), _pixels(24, 16, depth=16)
    out = []
    for orientation in range(1, 9):
        stored = Image.fromarray(_stored(upright8, orientation))
        exif = _exif(orientation)
        out.append((f"orient{orientation}.jpg", _encode(stored, "JPEG", quality=95, exif=exif), (24, 16)))
        out.append((f"orient{orientation}.png", _encode(stored, "PNG", exif=exif), (24, 16)))
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, _stored(upright16, orientation), photometric="rgb",
                         extratags=[(ORIENTATION, "H", 1, orientation, True)])
        out.append((f"orient{orientation}_16bit.tif", buffer.getvalue(), (24, 16)))
    return out


def _metadata_files(rng: random.Random, fast: bool) -> list[tuple[str, bytes, str, tuple[int, int] | None]]:
    """Valid pixels with broken, huge or odd EXIF and ICC: (name, bytes, expect, size)."""
    rgb = Image.fromarray(_pixels(24, 16))
    out = [("exif_huge.png", _encode(rgb, "PNG", exif=_exif(description="x" * 70_000)), "write", (24, 16)),
           ("exif_huge.webp", _encode(rgb, "WEBP", exif=_exif(description="y" * 70_000)), "write", (24, 16)),
           ("exif_unicode.jpg", _encode(rgb, "JPEG", exif=_exif(description="ümlaut ✓ 🙂")), "write", (24, 16))]
    for k in range(2 if fast else 8):
        garbage = bytes(rng.getrandbits(8) for _ in range(rng.choice((4, 40, 400))))
        out.append((f"exif_garbage{k}.jpg", _encode(rgb, "JPEG", exif=b"Exif\x00\x00" + garbage), "either", (24, 16)))
        out.append((f"exif_garbage{k}.png", _encode(rgb, "PNG", exif=b"Exif\x00\x00" + garbage), "either", (24, 16)))
        out.append((f"icc_garbage{k}.png", _encode(rgb, "PNG", icc_profile=garbage), "either", (24, 16)))
        out.append((f"icc_garbage{k}.jpg", _encode(rgb, "JPEG", icc_profile=garbage), "either", (24, 16)))
    cmyk_icc = b"\x00" * 16 + b"CMYK" + b"\x00" * 108
    out.append(("icc_wrong_space.jpg", _encode(rgb, "JPEG", icc_profile=cmyk_icc), "write", (24, 16)))
    return out


def _non_images() -> dict[str, bytes]:
    return {
        "empty": b"",
        "text": b"just some text, not an image\n" * 10,
        "zeros": bytes(4096),
        "random": bytes(random.Random(7).getrandbits(8) for _ in range(4096)),
        "postscript": b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke showpage\n",
        "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n",
        "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
        "html": b"<!doctype html><html><body><img src=x></body></html>",
        "zip": b"PK\x03\x04" + bytes(60),
        "elf": b"\x7fELF\x02\x01\x01" + bytes(57),
        "json": json.dumps({"image": True}).encode(),
        "png_signature_only": b"\x89PNG\r\n\x1a\n",
        "jpeg_markers_only": b"\xff\xd8\xff\xd9",
        "tiff_header_only": b"II*\x00\x08\x00\x00\x00",
    }


def _bombs() -> dict[str, bytes]:
    """Headers that claim enormous images, and one real decompression bomb."""
    out = {"png_header_100k.png": _png_with_size(100_000, 100_000),
           "png_header_1x10m.png": _png_with_size(1, 10_000_000),
           "png_header_max.png": _png_with_size(2**31 - 1, 2**31 - 1),
           "gif_header_huge.png": b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b";",
           "bmp_header_huge.bmp": b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack(
               "<IiiHHIIiiII", 40, 60000, 60000, 1, 24, 0, 0, 0, 0, 0, 0)}
    out["tiff_header_huge.tif"] = _tiff_with_size(200_000, 200_000)
    # 100 megapixels of zeros: a few hundred KB that decode to 300 MB, over Pillow's default limit.
    rows = zlib.compress((b"\x00" + bytes(10_000 * 3)) * 10_000, 9)
    ihdr = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)
    out["zlib_bomb.png"] = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows)
                            + _png_chunk(b"IEND", b""))
    return out


def make_corpus(folder: Path, seed: int = 0, fast: bool = False) -> list[Entry]:
    """Write the corpus into ``folder`` (created); returns one Entry per file or folder entry."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []

    def add(name: str, data: bytes, category: str, expect: str, size=None, marker: bool = False) -> None:
        path = folder / name
        path.write_bytes(data)
        entries.append(Entry(path, category, expect, size, marker))

    valid = _valid_files()
    for name, (data, size) in valid.items():
        add(f"valid_{name}", data, "valid", "write", size, marker=True)
    for name, data, size in _oriented_files():
        if not fast or name.startswith(("orient1", "orient6")):
            add(name, data, "orientation", "write", size, marker=True)

    cuts = (0.02, 0.3, 0.7, 0.98) if fast else tuple(k / 16 for k in range(1, 16)) + (0.99,)
    flips = 2 if fast else 14
    for name, (data, _size) in sorted(valid.items()):
        if fast and name not in ("rgb.png", "rgb.jpg", "rgb16.tif", "rgb.webp"):
            continue
        stem, ext = name.rsplit(".", 1)
        for cut in cuts:
            add(f"trunc_{stem}_{int(cut * 1000):03d}.{ext}", data[: max(1, int(len(data) * cut))], "truncation",
                "either")
        for k in range(flips):
            damaged = bytearray(data)
            for _ in range(rng.choice((1, 2, 8))):
                position = rng.randrange(len(damaged))
                damaged[position] ^= 1 << rng.randrange(8)
            add(f"flip_{stem}_{k:02d}.{ext}", bytes(damaged), "byte flip", "either")

    for name, data in _bombs().items():
        if fast and name == "zlib_bomb.png":
            continue  # the one slow file to make
        add(f"bomb_{name}", data, "bomb", "refuse")
    for name, data in _non_images().items():
        for ext in ((".png",) if fast else (".png", ".jpg", ".tif")):
            add(f"notimage_{name}{ext}", data, "non-image", "refuse")
    for name, data, expect, size in _metadata_files(rng, fast):
        add(f"meta_{name}", data, "exif/icc", expect, size, marker=expect == "write")

    for side in (1, 2, 3):
        add(f"tiny_{side}px.png", _encode(Image.fromarray(_pixels(side, side)), "PNG"), "tiny", "refuse")
    for side in (4, 5, 7, 8, 9, 12):
        add(f"tiny_{side}px.png", _encode(Image.fromarray(_pixels(side, side, seed=side)), "PNG"), "tiny", "write",
            (side, side))
        add(f"tiny_{side}px.jpg", _encode(Image.fromarray(_pixels(side, side, seed=side)), "JPEG"), "tiny", "write",
            (side, side))

    rgb_png = valid["rgb.png"][0]
    hostile = ["space name.png", "-starts-with-dash.png", "[red]markup[b]x.png", "[bold].png", "%s%n.png",
               "new\nline.png", "tab\tname.png", "ümlaut-ß.png", "emoji-🙂.png", "back\\slash.png", "'quote\".png",
               "x" * 240 + ".png", "é" * 120 + ".png", "UPPER.PNG"]
    if not fast:
        hostile += ["$(echo pwned).png", "`id`.png", "semi;colon.png", "star*.png", "question?.png"]
    for name in hostile:
        add(name, rgb_png, "hostile name", "write", valid["rgb.png"][1], marker=True)
    markup_dir = folder / "sub["
    markup_dir.mkdir()
    (markup_dir / "x].png").write_bytes(rgb_png)
    entries.append(Entry(markup_dir / "x].png", "hostile name", "write", valid["rgb.png"][1], marker=True))

    for stem in ("collide",) + (() if fast else ("collide2",)):
        for ext, data in ((".png", rgb_png), (".jpg", valid["rgb.jpg"][0]), (".webp", valid["rgb.webp"][0])):
            add(stem + ext, data, "collision", "write", (24, 16), marker=True)

    specials = [("loop_self.png", lambda p: os.symlink(p.name, p)),
                ("dangling.png", lambda p: os.symlink("does-not-exist.png", p)),
                ("folder.png", lambda p: p.mkdir()),
                ("fifo.png", lambda p: os.mkfifo(p))]
    if not fast:
        specials += [("loop_a.png", lambda p: os.symlink("loop_b.png", p)),
                     ("loop_b.png", lambda p: os.symlink("loop_a.png", p)),
                     ("fifo2.jpg", lambda p: os.mkfifo(p))]
    for name, make in specials:
        make(folder / name)
        if name != "folder.png":  # a folder is not listed as an image at all
            entries.append(Entry(folder / name, "special entry", "refuse"))
    os.symlink(".", folder / "dir_loop")  # a symlinked folder that points at itself
    return entries

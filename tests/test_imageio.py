"""Tests for qusr_cli.imageio: every image is built here, small, in tmp_path."""

import dataclasses
import os
import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from qusr_cli.errors import InputError
from qusr_cli.imageio import (
    MIN_SIDE,
    atomic_write,
    check_output_path,
    read_image,
    write_image,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORIENTATION = 0x0112
MAKE = 0x010F


def _pattern(height, width, channels, white=255, seed=0):
    """Pixels all different from their neighbours, so any flip or rotation shows."""
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if white == 65535 else np.uint8
    shape = (height, width, channels) if channels > 1 else (height, width)
    return rng.integers(0, white + 1, size=shape, dtype=np.int64).astype(dtype)


def _planes(tensor):
    """(1, C, H, W) tensor -> (H, W, C) numpy array."""
    return tensor[0].permute(1, 2, 0).numpy()


def _assert_8_bit_values(tensor, expected):
    np.testing.assert_allclose(_planes(tensor) * 255, expected, atol=1e-3)


def _16_bit_values(tensor):
    return np.rint(_planes(tensor) * 65535).astype(np.uint16)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(path, pixels, exif=None):
    """A 16-bit PNG written by hand: Pillow cannot write 16-bit colour PNGs."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if exif is not None:
        chunks.append(_png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
    chunks += [_png_chunk(b"IDAT", zlib.compress(rows)), _png_chunk(b"IEND", b"")]
    path.write_bytes(PNG_SIGNATURE + b"".join(chunks))
    return path


def _srgb_profile():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _cmyk_profile_with_light_black():
    """A minimal ICC v2 CMYK printer profile whose inks print far lighter than nominal.

    Pillow cannot make CMYK profiles, so it is built by hand: a lut16 A2B0 tag, CMYK -> Lab,
    with two grid points per ink, L* = 100 - 50 * K and a* = b* = 0.
    """
    clut = []
    for _c in (0, 1):
        for _m in (0, 1):
            for _y in (0, 1):
                for k in (0, 1):
                    clut += [round((100 - 50 * k) * 0xFF00 / 100), 0x8000, 0x8000]
    identity = (65536, 0, 0, 0, 65536, 0, 0, 0, 65536)
    lut = (
        b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + struct.pack(">9i", *identity)
        + struct.pack(">HH", 2, 2) + struct.pack(">8H", *[0, 65535] * 4)
        + struct.pack(f">{len(clut)}H", *clut) + struct.pack(">6H", *[0, 65535] * 3)
    )
    tag_table = struct.pack(">I4sII", 1, b"A2B0", 128 + 16, len(lut))
    size = 128 + len(tag_table) + len(lut)
    header = struct.pack(
        ">I4sI4s4s4s6H4s4sI4sI8sI3i4s16s28s",
        size, bytes(4), 0x02100000, b"prtr", b"CMYK", b"Lab ", 2024, 1, 1, 0, 0, 0,
        b"acsp", bytes(4), 0, bytes(4), 0, bytes(8), 0, 63190, 65536, 54061,
        bytes(4), bytes(16), bytes(28),
    )
    return header + tag_table + lut


def _exif(orientation=None, make="QusrTestCam"):
    exif = Image.Exif()
    exif[MAKE] = make
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif.tobytes()


def _exif_tags(data):
    exif = Image.Exif()
    exif.load(data)
    return dict(exif)


# --- reading each mode -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_eight_bit_modes_round_trip_exactly(tmp_path, mode):
    channels = len(mode)
    pixels = _pattern(12, 10, channels)
    source = tmp_path / "in.png"
    Image.fromarray(pixels).save(source)

    loaded = read_image(source)
    assert loaded.bit_depth == 8 and loaded.source_format == "PNG"
    assert loaded.grayscale == (mode in ("L", "LA"))
    assert loaded.rgb.shape == (1, 3, 12, 10) and loaded.rgb.dtype == torch.float32
    colour = pixels.reshape(12, 10, channels)[:, :, : 1 if loaded.grayscale else 3]
    _assert_8_bit_values(loaded.rgb, np.broadcast_to(colour, (12, 10, 3)))
    if "A" in mode:
        _assert_8_bit_values(loaded.alpha, pixels[:, :, -1:])
    else:
        assert loaded.alpha is None

    out = tmp_path / "out.png"
    write_image(out, loaded.rgb, like=loaded, alpha=loaded.alpha)
    with Image.open(out) as written:
        assert written.mode == mode
        np.testing.assert_array_equal(np.asarray(written), pixels)


def test_palette_without_transparency_becomes_rgb(tmp_path):
    rgb = Image.fromarray(_pattern(8, 8, 3)).quantize(colors=16)
    rgb.save(tmp_path / "p.png")
    loaded = read_image(tmp_path / "p.png")
    assert not loaded.grayscale and loaded.alpha is None
    _assert_8_bit_values(loaded.rgb, np.asarray(rgb.convert("RGB")))


def test_palette_with_transparency_becomes_rgba(tmp_path):
    columns = np.tile(np.arange(8, dtype=np.uint8), (8, 1))
    palette_image = Image.fromarray(columns, mode="L").convert("P")
    palette_image.save(tmp_path / "p.png", transparency=3)
    loaded = read_image(tmp_path / "p.png")
    alpha = _planes(loaded.alpha)[:, :, 0]
    assert (alpha[:, 3] == 0).all()
    assert (np.delete(alpha, 3, axis=1) == 1).all()


def test_one_bit_image_reads_as_black_and_white_gray(tmp_path):
    bits = np.indices((8, 8)).sum(axis=0) % 2 == 0
    Image.fromarray(bits).save(tmp_path / "b.png")
    loaded = read_image(tmp_path / "b.png")
    assert loaded.grayscale and loaded.bit_depth == 8
    np.testing.assert_array_equal(_planes(loaded.rgb)[:, :, 0], bits.astype(np.float32))


def test_png_named_jpeg_is_decoded_by_content(tmp_path):
    pixels = _pattern(8, 8, 3)
    Image.fromarray(pixels).save(tmp_path / "photo.jpeg", format="PNG")
    loaded = read_image(tmp_path / "photo.jpeg")
    assert loaded.source_format == "PNG"
    _assert_8_bit_values(loaded.rgb, pixels)


def test_int32_image_with_16_bit_values_reads_as_16_bit(tmp_path):
    # Pillow opens a 16-bit PGM as 32-bit "I"; the values are 16-bit data.
    values = (_pattern(6, 5, 1, white=65535)).astype(">u2")
    (tmp_path / "g.pgm").write_bytes(b"P5\n5 6\n65535\n" + values.tobytes())
    loaded = read_image(tmp_path / "g.pgm")
    assert loaded.grayscale and loaded.bit_depth == 16
    np.testing.assert_array_equal(np.rint(_planes(loaded.rgb)[:, :, 0] * 65535), values)


def test_int32_image_outside_16_bit_range_is_stretched(tmp_path):
    values = np.array([[-1000, 0, 1000, 99000]] * 4, dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i.tif")
    loaded = read_image(tmp_path / "i.tif")
    np.testing.assert_allclose(_planes(loaded.rgb)[0, :, 0], (values[0] + 1000) / 100000, atol=1e-6)


def test_float_image_in_unit_range_is_kept_and_other_ranges_stretched(tmp_path):
    unit = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    loaded = read_image(tmp_path / "unit.tif")
    np.testing.assert_allclose(_planes(loaded.rgb)[:, :, 0], unit, atol=1e-7)

    wide = unit * 4 - 1
    Image.fromarray(wide).save(tmp_path / "wide.tif")
    loaded = read_image(tmp_path / "wide.tif")
    assert loaded.bit_depth == 16
    np.testing.assert_allclose(_planes(loaded.rgb)[:, :, 0], unit, atol=1e-6)


def test_float_image_with_nan_is_refused(tmp_path):
    values = np.zeros((4, 4), dtype=np.float32)
    values[1, 2] = np.nan
    Image.fromarray(values).save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "nan.tif")


# --- CMYK ------------------------------------------------------------------------------------


def test_cmyk_without_profile_uses_plain_conversion(tmp_path):
    cmyk = Image.fromarray(_pattern(8, 8, 4), mode="CMYK")
    cmyk.save(tmp_path / "c.tif")
    loaded = read_image(tmp_path / "c.tif")
    assert loaded.icc_profile is None and not loaded.grayscale
    _assert_8_bit_values(loaded.rgb, np.asarray(cmyk.convert("RGB")))


def test_cmyk_with_profile_is_colour_managed_and_profile_dropped(tmp_path):
    ink = np.zeros((8, 8, 4), dtype=np.uint8)
    ink[:, 4:, 3] = 128  # right half half-strength black ink, left half bare paper
    profile = _cmyk_profile_with_light_black()
    Image.fromarray(ink, mode="CMYK").save(tmp_path / "c.tif", icc_profile=profile)

    loaded = read_image(tmp_path / "c.tif")
    rgb = _planes(loaded.rgb) * 255
    # The plain formula gives 127. Through the profile the ink is L*=75 (sRGB ~184), and
    # perceptual rendering stretches the profile's L*=50 black to sRGB black: ~163.
    assert 150 < rgb[0, 6, 0] < 200
    assert np.ptp(rgb[0, 6]) < 3
    assert (rgb[:, :4] > 250).all()
    assert loaded.icc_profile is None

    write_image(tmp_path / "out.png", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "RGB" and "icc_profile" not in written.info


def test_cmyk_with_damaged_profile_falls_back_to_plain_conversion(tmp_path):
    cmyk = Image.fromarray(_pattern(8, 8, 4), mode="CMYK")
    cmyk.save(tmp_path / "c.tif", icc_profile=b"not an icc profile" * 10)
    loaded = read_image(tmp_path / "c.tif")
    assert loaded.icc_profile is None
    _assert_8_bit_values(loaded.rgb, np.asarray(cmyk.convert("RGB")))


# --- 16 bits ---------------------------------------------------------------------------------


def _below_8_bit_pattern(height, width, channels):
    """16-bit values that all fall into few 8-bit buckets, so an 8-bit detour loses them."""
    fine = _pattern(height, width, channels, white=255, seed=3).astype(np.uint16)
    return (0x4000 + fine).astype(np.uint16)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_png_keeps_values_below_8_bit_resolution(tmp_path, channels):
    pixels = _below_8_bit_pattern(9, 7, channels)
    source = _png16(tmp_path / "in.png", pixels)

    loaded = read_image(source)
    assert loaded.bit_depth == 16
    assert loaded.grayscale == (channels <= 2)
    values = np.concatenate(
        [_planes(loaded.rgb)[:, :, : 1 if channels <= 2 else 3]]
        + ([_planes(loaded.alpha)] if loaded.alpha is not None else []),
        axis=2,
    )
    expected = pixels.reshape(9, 7, channels)
    np.testing.assert_array_equal(np.rint(values * 65535).astype(np.uint16), expected)

    out = tmp_path / "out.png"
    write_image(out, loaded.rgb, like=loaded, alpha=loaded.alpha)
    written = imagecodecs.png_decode(out.read_bytes())
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written.reshape(pixels.shape), pixels)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_tiff_keeps_values_below_8_bit_resolution(tmp_path, channels):
    pixels = _below_8_bit_pattern(9, 7, channels)
    photometric = "minisblack" if channels == 1 else "rgb"
    extras = ("unassalpha",) if channels == 4 else None
    tifffile.imwrite(tmp_path / "in.tif", pixels, photometric=photometric, extrasamples=extras)

    loaded = read_image(tmp_path / "in.tif")
    assert loaded.bit_depth == 16
    out = tmp_path / "out.tif"
    write_image(out, loaded.rgb, like=loaded, alpha=loaded.alpha)
    written = tifffile.imread(out)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, pixels)


def test_16_bit_lzw_tiff_is_read_at_full_depth(tmp_path):
    pixels = _below_8_bit_pattern(8, 8, 3)
    tifffile.imwrite(tmp_path / "in.tif", pixels, photometric="rgb", compression="lzw")
    loaded = read_image(tmp_path / "in.tif")
    np.testing.assert_array_equal(_16_bit_values(loaded.rgb), pixels)


def test_16_bit_tiff_with_premultiplied_alpha_is_unpremultiplied(tmp_path):
    colour = np.full((4, 4, 3), 40000, dtype=np.uint16)
    alpha = np.full((4, 4, 1), 32768, dtype=np.uint16)
    premultiplied = np.rint(colour * (alpha / 65535)).astype(np.uint16)
    tifffile.imwrite(
        tmp_path / "in.tif", np.concatenate([premultiplied, alpha], axis=2),
        photometric="rgb", extrasamples=("assocalpha",),
    )
    loaded = read_image(tmp_path / "in.tif")
    np.testing.assert_allclose(_planes(loaded.rgb) * 65535, colour, atol=2)
    np.testing.assert_allclose(_planes(loaded.alpha) * 65535, alpha, atol=0.01)


def test_16_bit_source_written_as_jpeg_is_scaled_to_8_bit(tmp_path):
    pixels = np.empty((8, 8, 3), dtype=np.uint16)
    pixels[:] = (40000, 20000, 5000)
    loaded = read_image(_png16(tmp_path / "in.png", pixels))
    write_image(tmp_path / "out.jpg", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.mode == "RGB"
        np.testing.assert_allclose(np.asarray(written)[4, 4], [156, 78, 19], atol=2)


# --- orientation and metadata ----------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    source = tmp_path / "in.png"
    Image.fromarray(_pattern(6, 10, 3)).save(source, exif=_exif(orientation))
    with Image.open(source) as original:
        expected = np.asarray(ImageOps.exif_transpose(original))
    loaded = read_image(source)
    _assert_8_bit_values(loaded.rgb, expected)


def test_orientation_6_turns_the_image_clockwise_and_resets_the_tag(tmp_path):
    pixels = _pattern(6, 10, 3)
    source = tmp_path / "in.jpg"
    Image.fromarray(pixels).save(source, exif=_exif(6), quality=100, subsampling=0)
    loaded = read_image(source)
    assert loaded.rgb.shape == (1, 3, 10, 6)

    source_png = tmp_path / "in.png"
    Image.fromarray(pixels).save(source_png, exif=_exif(6))
    upright = np.rint(_planes(read_image(source_png).rgb) * 255)
    # Clockwise quarter turn: the new top row is the old left column read bottom to top.
    np.testing.assert_array_equal(upright[0], pixels[::-1, 0])
    np.testing.assert_array_equal(upright[:, 0], pixels[-1])

    tags = _exif_tags(loaded.exif)
    assert tags[ORIENTATION] == 1 and tags[MAKE] == "QusrTestCam"
    write_image(tmp_path / "out.jpg", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.size == (6, 10)
        assert written.getexif()[ORIENTATION] == 1 and written.getexif()[MAKE] == "QusrTestCam"


def test_orientation_applies_to_16_bit_colour_png(tmp_path):
    pixels = _below_8_bit_pattern(6, 10, 3)
    loaded = read_image(_png16(tmp_path / "in.png", pixels, exif=_exif(6)))
    np.testing.assert_array_equal(_16_bit_values(loaded.rgb), np.rot90(pixels, -1))
    assert _exif_tags(loaded.exif)[ORIENTATION] == 1


def test_exif_with_camera_sub_ifd_survives(tmp_path):
    exif = Image.Exif()
    exif[MAKE] = "QusrTestCam"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    Image.fromarray(_pattern(8, 8, 3)).save(tmp_path / "in.jpg", exif=exif.tobytes())
    loaded = read_image(tmp_path / "in.jpg")
    for name in ("out.jpg", "out.png", "out.webp", "out.tif"):
        write_image(tmp_path / name, loaded.rgb, like=loaded)
        with Image.open(tmp_path / name) as written:
            assert written.getexif().get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09", name


def test_tiff_layout_tags_are_not_carried_as_exif(tmp_path):
    Image.fromarray(_pattern(8, 8, 3)).save(tmp_path / "in.tif", exif=_exif())
    tags = _exif_tags(read_image(tmp_path / "in.tif").exif)
    assert tags[MAKE] == "QusrTestCam"
    assert not {256, 257, 273, 279} & tags.keys()  # width, height, strip offsets and sizes


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.webp", "out.tif"])
def test_icc_profile_is_preserved_byte_for_byte(tmp_path, name):
    profile = _srgb_profile()
    Image.fromarray(_pattern(8, 8, 3)).save(tmp_path / "in.png", icc_profile=profile)
    loaded = read_image(tmp_path / "in.png")
    assert loaded.icc_profile == profile
    write_image(tmp_path / name, loaded.rgb, like=loaded)
    with Image.open(tmp_path / name) as written:
        assert written.info.get("icc_profile") == profile


@pytest.mark.parametrize("name", ["out.png", "out.tif"])
def test_icc_profile_and_exif_survive_16_bit_colour_output(tmp_path, name):
    profile = _srgb_profile()
    source = tmp_path / "in.png"
    Image.fromarray(_pattern(8, 8, 3)).save(source, icc_profile=profile, exif=_exif())
    loaded = read_image(source)
    like = dataclasses.replace(loaded, bit_depth=16)
    write_image(tmp_path / name, loaded.rgb, like=like)
    with Image.open(tmp_path / name) as written:
        assert written.info.get("icc_profile") == profile
        if name.endswith(".png"):  # 16-bit colour TIFF output carries no EXIF (documented)
            assert written.getexif()[MAKE] == "QusrTestCam"


def test_rgb_profile_is_not_attached_to_gray_output(tmp_path):
    Image.fromarray(_pattern(8, 8, 1)).save(tmp_path / "in.png", icc_profile=_srgb_profile())
    loaded = read_image(tmp_path / "in.png")
    write_image(tmp_path / "out.png", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "L" and "icc_profile" not in written.info


# --- grayscale and alpha on output -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, mode",
    [("out.png", "L"), ("out.jpg", "L"), ("out.tif", "L"), ("out.bmp", "L"), ("out.webp", "RGB")],
)
def test_gray_input_is_written_as_luma(tmp_path, name, mode):
    Image.fromarray(_pattern(8, 8, 1)).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    tinted = torch.zeros(1, 3, 8, 8)
    tinted[:, 0], tinted[:, 1], tinted[:, 2] = 1.0, 0.5, 0.0  # colour the model was not asked for
    write_image(tmp_path / name, tinted, like=loaded)
    with Image.open(tmp_path / name) as written:
        assert written.mode == mode
        luma = round((0.299 * 1.0 + 0.587 * 0.5) * 255)
        assert abs(int(np.asarray(written.convert("L"))[4, 4]) - luma) <= 2


def test_gray_16_bit_input_is_written_single_channel_16_bit(tmp_path):
    pixels = _below_8_bit_pattern(8, 8, 1)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    assert loaded.grayscale and loaded.bit_depth == 16
    write_image(tmp_path / "out.png", loaded.rgb, like=loaded)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(written), pixels)


def test_alpha_is_composited_onto_white_for_jpeg(tmp_path):
    pixels = np.zeros((8, 8, 4), dtype=np.uint8)
    pixels[..., 0] = 255  # red
    pixels[:, :4, 3] = 255  # left half opaque, right half fully transparent
    Image.fromarray(pixels).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    for name in ("out.jpg", "out.bmp"):
        write_image(tmp_path / name, loaded.rgb, like=loaded, alpha=loaded.alpha)
        with Image.open(tmp_path / name) as written:
            assert written.mode == "RGB"
            written_pixels = np.asarray(written).astype(int)
            assert (abs(written_pixels[:, :3] - [255, 0, 0]) <= 3).all()
            assert (written_pixels[:, 5:] >= 252).all()


def test_alpha_is_kept_in_webp(tmp_path):
    pixels = _pattern(8, 8, 4)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    write_image(tmp_path / "out.webp", loaded.rgb, like=loaded, alpha=loaded.alpha)
    with Image.open(tmp_path / "out.webp") as written:
        assert written.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(written)[:, :, 3], pixels[:, :, 3])


def test_write_rejects_bad_quality_and_unknown_extension(tmp_path):
    Image.fromarray(_pattern(8, 8, 3)).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    with pytest.raises(InputError, match="quality"):
        write_image(tmp_path / "out.jpg", loaded.rgb, like=loaded, jpeg_quality=0)
    with pytest.raises(InputError, match=r"\.gif"):
        write_image(tmp_path / "out.gif", loaded.rgb, like=loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


# --- bad inputs ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file") as info:
        read_image(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)


def test_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("these are not pixels\n")
    with pytest.raises(InputError, match="not an image") as info:
        read_image(tmp_path / "notes.jpg")
    assert "notes.jpg" in str(info.value)


@pytest.mark.parametrize("name", ["in.png", "in.jpg", "in16.png", "in16.tif"])
def test_truncated_image_is_refused_at_read_time(tmp_path, name):
    path = tmp_path / name
    if name == "in16.png":
        _png16(path, _pattern(32, 32, 3, white=65535))
    elif name == "in16.tif":
        tifffile.imwrite(path, _pattern(32, 32, 3, white=65535), photometric="rgb")
    else:
        Image.fromarray(_pattern(32, 32, 3)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="cannot decode") as info:
        read_image(path)
    assert name in str(info.value)


@pytest.mark.parametrize("size", [(1, 1), (MIN_SIDE - 1, 16), (16, MIN_SIDE - 1)])
def test_too_small_image_is_refused(tmp_path, size):
    Image.new("RGB", size).save(tmp_path / "tiny.png")
    with pytest.raises(InputError, match=f"at least {MIN_SIDE}x{MIN_SIDE}"):
        read_image(tmp_path / "tiny.png")


def test_minimum_size_image_is_accepted(tmp_path):
    Image.new("RGB", (MIN_SIDE, MIN_SIDE)).save(tmp_path / "small.png")
    assert read_image(tmp_path / "small.png").rgb.shape == (1, 3, MIN_SIDE, MIN_SIDE)


def test_zero_size_image_is_refused(tmp_path):
    header = struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", zlib.compress(b"")), (b"IEND", b"")]
    encoded = PNG_SIGNATURE + b"".join(_png_chunk(kind, data) for kind, data in chunks)
    (tmp_path / "empty.png").write_bytes(encoded)
    with pytest.raises(InputError, match="empty.png"):
        read_image(tmp_path / "empty.png")


# Pillow only warns between 1x and 2x its limit and raises above 2x: 256 pixels hits both.
@pytest.mark.parametrize("max_pixels", [200, 100])
def test_image_over_pixel_limit_is_refused(tmp_path, max_pixels):
    Image.new("RGB", (16, 16)).save(tmp_path / "big.png")  # 256 pixels
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InputError, match="--max-pixels") as info:
        read_image(tmp_path / "big.png", max_pixels=max_pixels)
    assert f"{max_pixels:,}" in str(info.value)
    assert Image.MAX_IMAGE_PIXELS == before
    assert read_image(tmp_path / "big.png", max_pixels=256).rgb.shape == (1, 3, 16, 16)


def test_default_pixel_limit_is_pillows(tmp_path, monkeypatch):
    Image.new("RGB", (16, 16)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    with pytest.raises(InputError, match="--max-pixels"):
        read_image(tmp_path / "big.png")


def test_pixel_limit_above_pillows_default_is_honoured(tmp_path, monkeypatch):
    Image.new("RGB", (16, 16)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_image(tmp_path / "big.png", max_pixels=1000).rgb.shape == (1, 3, 16, 16)
    assert Image.MAX_IMAGE_PIXELS == 100


# --- output paths ----------------------------------------------------------------------------


def test_check_output_path_accepts_a_new_file_and_leaves_nothing(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    check_output_path(tmp_path / "in.png", tmp_path / "out.webp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_check_output_path_refuses_the_input_itself(tmp_path, monkeypatch):
    source = tmp_path / "in.png"
    Image.new("RGB", (8, 8)).save(source)
    (tmp_path / "sub").mkdir()
    os.symlink(source, tmp_path / "link.png")
    os.link(source, tmp_path / "hard.png")
    monkeypatch.chdir(tmp_path / "sub")
    spellings = (
        source,
        Path("../in.png"),
        tmp_path / "sub" / ".." / "in.png",
        tmp_path / "link.png",
        tmp_path / "hard.png",
    )
    for output in spellings:
        with pytest.raises(InputError, match="input file itself"):
            check_output_path(source, output)
    with pytest.raises(InputError, match="input file itself"):
        check_output_path(tmp_path / "link.png", source)


def test_check_output_path_refuses_missing_folder_folder_and_bad_extension(tmp_path):
    source = tmp_path / "in.png"
    Image.new("RGB", (8, 8)).save(source)
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(source, tmp_path / "missing" / "out.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        check_output_path(source, tmp_path / "dir.png")
    with pytest.raises(InputError, match=r"extension '\.gif'.*\.png"):
        check_output_path(source, tmp_path / "out.gif")
    with pytest.raises(InputError, match="no extension"):
        check_output_path(source, tmp_path / "out")


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder this process cannot create files in: a read-only folder, or /sys when root."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for folder in (locked, Path("/sys")):
            probe = folder / "qusr-write-probe"
            try:
                probe.touch()
            except OSError:
                yield folder
                return
            probe.unlink()
        pytest.skip("no folder this user cannot write to (running as root without /sys)")
    finally:
        locked.chmod(0o700)


def test_check_output_path_refuses_unwritable_folder(tmp_path, unwritable_folder):
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    with pytest.raises(InputError, match="cannot write"):
        check_output_path(tmp_path / "in.png", unwritable_folder / "out.png")


def test_write_to_unwritable_folder_is_an_input_error(tmp_path, unwritable_folder):
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    with pytest.raises(InputError, match="cannot write"):
        write_image(unwritable_folder / "out.png", loaded.rgb, like=loaded)


# --- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    atomic_write(target, lambda f: f.write(b"new content"))
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize(
    "error, expected",
    [
        (OSError(28, "No space left on device"), InputError),
        (RuntimeError("encoder bug"), RuntimeError),
    ],
)
def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path, error, expected):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old bytes")

    def write_half_then_fail(f):
        f.write(b"half of the new")
        f.flush()
        raise error

    with pytest.raises(expected):
        atomic_write(target, write_half_then_fail)
    assert target.read_bytes() == b"old bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failed_image_write_leaves_nothing_behind(tmp_path, monkeypatch):
    Image.fromarray(_pattern(8, 8, 3)).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")

    def encoder_dies_halfway(self, fp, format=None, **params):
        fp.write(PNG_SIGNATURE + b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", encoder_dies_halfway)
    with pytest.raises(InputError, match="No space left"):
        write_image(tmp_path / "new.png", loaded.rgb, like=loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_failed_16_bit_tiff_write_keeps_existing_output(tmp_path, monkeypatch):
    loaded = read_image(_png16(tmp_path / "in.png", _below_8_bit_pattern(8, 8, 3)))
    (tmp_path / "out.tif").write_bytes(b"previous result")

    def imwrite_dies_halfway(f, *args, **kwargs):
        f.write(b"II*\x00partial")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(tifffile, "imwrite", imwrite_dies_halfway)
    with pytest.raises(InputError, match="Input/output error"):
        write_image(tmp_path / "out.tif", loaded.rgb, like=loaded)
    assert (tmp_path / "out.tif").read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.tif"]

"""Bounded memory: the output written band by band must be the very image the whole-canvas path writes."""

import numpy as np
import pytest
import torch
from PIL import Image

from qusr_cli.band_writer import paeth_filtered
from qusr_cli.bundle import load_bundle
from qusr_cli.files import render
from qusr_cli.imageio import LoadedImage, read_image, write_image
from qusr_cli.tiling import blend_bands, run_tiled
from qusr_cli.options import UpscaleOptions
from qusr_cli.upscaler import Upscaler

from helpers import make_tiny_model

# Tiles of 24 LR pixels on a 40x44 image: two rows of tiles, so there is more than one band.
OPTIONS = UpscaleOptions(steps=2, seed=7, tile=24, tile_overlap=8)


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    files = make_tiny_model(tmp_path_factory.mktemp("tiny"))
    return Upscaler(load_bundle("tiny", files), device=torch.device("cpu"), dtype=torch.float32)


def _image(tmp_path, *, alpha=False, gray=False, bit_depth=8, icc=None, exif=None, height=40, width=44):
    gen = torch.Generator().manual_seed(3)
    rgb = torch.rand(1, 3, height, width, generator=gen)
    if gray:
        rgb = rgb[:, :1].repeat(1, 3, 1, 1)
    opacity = torch.linspace(0, 1, width).expand(1, 1, height, width).contiguous() if alpha else None
    return LoadedImage(rgb=rgb, alpha=opacity, grayscale=gray, bit_depth=bit_depth, icc_profile=icc, exif=exif,
                       source_format="PNG", path=tmp_path / "in.png")


def _unstreamed(upscaler, image, path, options=OPTIONS):
    """What qusr wrote before streaming: the whole float canvas, then write_image."""
    from qusr_cli.files import resize_alpha

    result = upscaler.upscale(image.rgb, options)
    alpha = None if image.alpha is None else resize_alpha(image.alpha, tuple(result.image.shape[-2:]))
    write_image(path, result.image, like=image, alpha=alpha)


def _pixels(path):
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


def test_bands_cover_the_canvas_exactly():
    lr = torch.rand(1, 3, 72, 100)

    def tile(t, spec):
        return torch.nn.functional.interpolate(t, scale_factor=4, mode="bicubic") + 0.01 * spec.top

    bands = list(blend_bands(lr, tile, 32, 8, 4, margin=4, multiple=4))
    assert len(bands) >= 3 and sum(b.shape[2] for b in bands) == 288
    assert torch.equal(torch.cat(bands, dim=2), run_tiled(lr, tile, 32, 8, 4, margin=4, multiple=4))


@pytest.mark.parametrize("name, kind", [
    ("out.png", {}),
    ("out.png", {"alpha": True}),
    ("out.png", {"gray": True}),
    ("out.png", {"gray": True, "alpha": True}),
    ("out.jpg", {"alpha": True}),
    ("out.webp", {}),
    ("out.bmp", {}),
    ("out.tif", {"alpha": True}),
])
def test_streamed_output_equals_the_whole_canvas_path(upscaler, tmp_path, name, kind):
    image = _image(tmp_path, **kind)
    streamed, whole = tmp_path / f"streamed-{name}", tmp_path / f"whole-{name}"
    done = render(upscaler, image, streamed, OPTIONS).write()
    _unstreamed(upscaler, image, whole)
    assert done.output_size == (176, 160) and done.result.image is None
    if name.endswith((".jpg", ".webp")):
        # Lossy encoders are deterministic: the same samples give the same bytes.
        assert streamed.read_bytes() == whole.read_bytes()
    else:
        mode, pixels = _pixels(streamed)
        assert (mode, pixels.shape[:2]) == (_pixels(whole)[0], (160, 176))
        assert np.array_equal(pixels, _pixels(whole)[1])


@pytest.mark.parametrize("name", ["out.png", "out.tif"])
def test_16_bit_and_metadata_survive_streaming(upscaler, tmp_path, name):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "qusr test camera"
    image = _image(tmp_path, alpha=True, bit_depth=16, icc=icc, exif=exif.tobytes())
    streamed, whole = tmp_path / f"streamed-{name}", tmp_path / f"whole-{name}"
    render(upscaler, image, streamed, OPTIONS).write()
    _unstreamed(upscaler, image, whole)
    ours, theirs = read_image(streamed), read_image(whole)
    assert ours.bit_depth == 16 and ours.alpha is not None
    assert torch.equal(ours.rgb, theirs.rgb) and torch.equal(ours.alpha, theirs.alpha)
    assert ours.icc_profile == icc
    if name == "out.png":
        assert ours.exif == theirs.exif and b"qusr test camera" in ours.exif


def test_resized_output_takes_the_whole_canvas_path(upscaler, tmp_path):
    """--scale other than 4 takes the whole-canvas path; it must still write the resized image."""
    image = _image(tmp_path)
    done = render(upscaler, image, tmp_path / "x2.png", OPTIONS, scale=2.0).write()
    assert done.output_size == (88, 80) and _pixels(tmp_path / "x2.png")[1].shape == (80, 88, 3)


def test_paeth_filter_follows_the_png_predictor():
    """A predictor mistake still makes a valid PNG, only with wrong pixels; the equality tests catch it too."""
    rows = np.random.default_rng(0).integers(0, 256, (5, 12), dtype=np.uint8)
    filtered = paeth_filtered(rows, np.zeros(12, np.uint8), 3)
    assert filtered.shape == (5, 13) and (filtered[:, 0] == 4).all()
    # Row 0 with nothing above: Paeth picks the left byte, so the first 3 bytes pass unchanged.
    assert np.array_equal(filtered[0, 1:4], rows[0, :3])
    assert np.array_equal(filtered[0, 4:], (rows[0, 3:].astype(int) - rows[0, :-3]) % 256)


def test_out_of_memory_after_the_first_band_restarts_the_file_with_a_smaller_tile(upscaler, tmp_path, monkeypatch):
    real = Upscaler._upscale_tile
    failed = []

    def flaky(self, lr_tile, tile, options, prior, *rest):
        if options.tile == 64 and tile.top > 0 and not failed:  # the second tile row of the first try
            failed.append(tile)
            raise torch.OutOfMemoryError("CPU out of memory")
        return real(self, lr_tile, tile, options, prior, *rest)

    monkeypatch.setattr(Upscaler, "_upscale_tile", flaky)
    image = _image(tmp_path, height=80, width=44)
    first_try = UpscaleOptions(steps=2, seed=7, tile=64, tile_overlap=8)
    done = render(upscaler, image, tmp_path / "out.png", first_try).write()
    assert failed and done.result.tile == 32
    _unstreamed(upscaler, image, tmp_path / "whole.png", UpscaleOptions(steps=2, seed=7, tile=32, tile_overlap=8))
    assert np.array_equal(_pixels(tmp_path / "out.png")[1], _pixels(tmp_path / "whole.png")[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "whole.png"]  # no temporary file left

"""Regression tests for issue 11's findings at the file level: readers, writers, temp files, headers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps
from safetensors.torch import save_file

from qusr_cli.errors import InputError, WeightsError
from qusr_cli.files import render
from qusr_cli.imageio import JPEG_MAX_EXIF, LoadedImage, read_image, write_image
from qusr_cli.prior.learned_critic import LearnedCritic
from qusr_cli.safe_write import NAME_LIMIT, atomic_write, clean_stale_temp_files, temp_path
from qusr_cli.upscaler import UpscaleOptions
from qusr_cli.weights.checkpoint import load_checkpoint, read_header
from qusr_cli.weights.header_schema import validate_header

from helpers import NearestUpscaler

ORIENTATION = 0x0112


def _rgb(width=24, height=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---- 1: causes of aborted batches ---------------------------------------------------------------------

@pytest.mark.parametrize("side", [4, 5, 8])
def test_learned_critic_reads_tiny_images(side):
    image = torch.from_numpy(_rgb(side, side)).permute(2, 0, 1)[None].float() / 255
    result = LearnedCritic().assess(image)
    assert result.critique and all(np.isfinite(m["value"]) for m in result.report.to_dict().values())


def test_jpeg_output_drops_exif_too_large_for_it(tmp_path, caplog):
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000
    Image.fromarray(_rgb()).save(tmp_path / "big.png", exif=exif.tobytes())
    loaded = read_image(tmp_path / "big.png")
    assert len(loaded.exif) > JPEG_MAX_EXIF
    with caplog.at_level(logging.WARNING, logger="qusr"):
        write_image(tmp_path / "out.jpg", loaded.rgb, like=loaded)
    assert "written without it" in caplog.text
    assert read_image(tmp_path / "out.jpg").exif is None
    write_image(tmp_path / "out.png", loaded.rgb, like=loaded)  # PNG has room: kept
    assert read_image(tmp_path / "out.png").exif == loaded.exif


def test_webp_too_wide_is_refused_before_any_compute(tmp_path):
    Image.fromarray(np.full((5, 4100, 3), 9, np.uint8)).save(tmp_path / "wide.png")
    image = read_image(tmp_path / "wide.png")
    upscaler = NearestUpscaler()
    with pytest.raises(InputError, match="WEBP stores at most 16383"):
        render(upscaler, image, tmp_path / "wide.webp", UpscaleOptions())
    assert upscaler.calls == 0


# ---- 2: no external decoders ---------------------------------------------------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\nnewpath 0 0 moveto 8 8 lineto stroke\n"


def test_postscript_under_an_image_name_never_reaches_a_decoder_program(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    path.write_bytes(EPS)
    with Image.open(path) as image:  # what Pillow alone would do: identify it, and run Ghostscript to load
        assert image.format == "EPS"

    def no_programs(*args, **kwargs):
        raise AssertionError(f"a program was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_programs)
    monkeypatch.setattr(subprocess, "check_call", no_programs)
    with pytest.raises(InputError, match="not an image file"):
        read_image(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=600),
                      st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"GIF89a",
                                       b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n"]).flatmap(
                          lambda magic: st.binary(max_size=300).map(lambda tail: magic + tail))))
def test_reader_gives_an_image_or_a_one_line_input_error_for_any_bytes(tmp_path, data):
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    try:
        loaded = read_image(path)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert loaded.rgb.shape[1] == 3 and min(loaded.rgb.shape[-2:]) >= 4


# ---- 3: wrong output -----------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_16_bit_tiff_is_turned_upright(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 65536, (6, 10, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "o.tif", stored, photometric="rgb", extratags=[(ORIENTATION, "H", 1, orientation, True)])
    loaded = read_image(tmp_path / "o.tif")
    assert loaded.bit_depth == 16
    tagged = Image.fromarray((stored >> 8).astype(np.uint8))
    tagged.getexif()[ORIENTATION] = orientation
    expected = np.asarray(ImageOps.exif_transpose(tagged))  # what every viewer shows
    got = np.rint(loaded.rgb[0].permute(1, 2, 0).numpy() * 65535).astype(np.uint16) >> 8
    np.testing.assert_array_equal(got, expected)


def test_16_bit_grey_alpha_tiff_that_qusr_writes_reads_back(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, (6, 8, 2), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", values, photometric="minisblack", extrasamples=("unassalpha",))
    loaded = read_image(tmp_path / "in.tif")
    assert loaded.grayscale and loaded.bit_depth == 16 and loaded.alpha is not None
    write_image(tmp_path / "out.tif", loaded.rgb, like=loaded, alpha=loaded.alpha)
    again = read_image(tmp_path / "out.tif")
    np.testing.assert_array_equal(np.rint(again.alpha[0, 0].numpy() * 65535), values[:, :, 1])
    np.testing.assert_allclose(np.rint(again.rgb[0, 0].numpy() * 65535), values[:, :, 0], atol=1)


# ---- 5: temp files --------------------------------------------------------------------------------------

def test_temp_names_fit_the_name_limit_for_the_longest_legal_output_name(tmp_path):
    for name in ("x" * 251 + ".png", "é" * 125 + ".jpg"):
        assert len(name.encode()) <= NAME_LIMIT
        assert len(temp_path(tmp_path / name).name.encode()) <= NAME_LIMIT
        atomic_write(tmp_path / name, lambda f: f.write(b"data"))
        assert (tmp_path / name).read_bytes() == b"data"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stale_temp_files_of_ended_processes_are_removed_and_others_kept(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    stale = tmp_path / f".photo.png.qusr-{ended.pid}-0123abcd.tmp"
    live = tmp_path / f".photo.png.qusr-{os.getpid()}-0123abcd.tmp"
    foreign = tmp_path / ".photo.png.1234.tmp"
    for path in (stale, live, foreign):
        path.write_bytes(b"half")
    assert clean_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and foreign.exists()


def test_an_interruption_at_any_point_of_a_write_leaves_no_temp_file(tmp_path):
    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.png", interrupted)
    assert list(tmp_path.iterdir()) == []


# ---- 6: checkpoint headers --------------------------------------------------------------------------------

GOOD = {"qusr.arch": "unet", "qusr.role": "denoiser",
        "qusr.config": json.dumps({"base_width": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                                   "attention_heads": 2, "context_dim": 384}),
        "qusr.info": json.dumps({"scheduler": {"kappa": 2.0}, "placeholder": True})}


@pytest.mark.parametrize("change, fragment", [
    ({"qusr.info": "{not json"}, "qusr.info is not valid JSON"),
    ({"qusr.info": json.dumps({"scheduler": {"kappa": "large"}})}, "scheduler.kappa must be a number"),
    ({"qusr.info": json.dumps({"scheduler": {"kappa": float("nan")}})}, "scheduler.kappa must be between"),
    ({"qusr.info": json.dumps([1, 2])}, "must be a JSON object"),
    ({"qusr.config": json.dumps({"base_width": 4096})}, "base_width must be between 4 and 512"),
    ({"qusr.config": json.dumps({"base_width": True})}, "base_width must be an integer"),
    ({"qusr.config": json.dumps({"channel_mult": [1] * 40})}, "channel_mult must be a list of 1 to 6"),
    ({"qusr.config": json.dumps({"evil": 1})}, "unknown field 'evil'"),
    ({"qusr.role": "boss"}, "unknown role 'boss'"),
])
def test_malformed_headers_are_refused_with_their_reason(change, fragment):
    with pytest.raises(WeightsError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        validate_header({**GOOD, **change})


def test_a_huge_architecture_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    path = tmp_path / "huge.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={**GOOD, "qusr.config": json.dumps({"base_width": 4096})})

    def never(*args, **kwargs):
        raise AssertionError("an architecture was built")

    monkeypatch.setattr("qusr_cli.weights.checkpoint.build_architecture", never)
    with pytest.raises(WeightsError, match=f"{path}: header qusr.config.base_width"):
        load_checkpoint(path)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["qusr.arch", "qusr.role", "qusr.config", "qusr.info", "other"]),
                       st.one_of(st.text(max_size=40), st.recursive(
                           st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                               st.sampled_from(["base_width", "kappa", "scheduler", "diffusion", "floor",
                                                "num_feat", "width", "placeholder", "targets"]), inner, max_size=4),
                           max_leaves=12).map(json.dumps))))
def test_header_parser_accepts_or_refuses_any_metadata_with_a_weights_error(metadata):
    try:
        header = validate_header(metadata)
    except WeightsError:
        return
    assert header.role in ("aux", "denoiser", "critic") and isinstance(header.config, dict)


def test_read_header_names_the_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={**GOOD, "qusr.info": "[]"})
    with pytest.raises(WeightsError, match=f"^{path}: header qusr.info must be a JSON object"):
        read_header(path)


# ---- 7: smaller ---------------------------------------------------------------------------------------------

def test_a_fifo_is_refused_at_once_not_read(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_refusal(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome and "not a regular file" in outcome[0]


def _refusal(path):
    try:
        read_image(path)
    except InputError as exc:
        return str(exc)
    return "read"


def test_symlink_loop_and_unreadable_file_are_one_line_refusals(tmp_path, monkeypatch):
    os.symlink("loop.png", tmp_path / "loop.png")
    with pytest.raises(InputError, match="symlink loop"):
        read_image(tmp_path / "loop.png")
    Image.fromarray(_rgb()).save(tmp_path / "locked.png")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)  # root reads any file, so the denial is simulated
    with pytest.raises(InputError, match="locked.png: permission denied"):
        read_image(tmp_path / "locked.png")


def test_c_library_messages_do_not_reach_stderr_but_python_ones_do():
    code = ("from qusr_cli.cli.entry import _keep_c_libraries_off_stderr as quiet; import os, sys; quiet(); "
            "os.write(2, b'C-LEVEL\\n'); print('PY-LEVEL', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert "PY-LEVEL" in done.stderr and "C-LEVEL" not in done.stderr


def test_loaded_image_type_is_what_render_writes(tmp_path):
    # render() + write() is the path every executor takes; a 4x nearest image round-trips.
    Image.fromarray(_rgb(8, 6)).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert isinstance(image, LoadedImage)
    done = render(NearestUpscaler(), image, tmp_path / "b.png", UpscaleOptions()).write()
    assert done.output_size == (32, 24) and read_image(tmp_path / "b.png").rgb.shape[-2:] == (24, 32)


def test_weights_verify_reports_a_malformed_header_even_when_its_sha256_matches(tmp_path):
    from typer.testing import CliRunner

    from qusr_cli.cli.weights_cmd import weights_app
    from qusr_cli.weights import component_entry_for

    from hub_fixtures import write_weights

    aux = tmp_path / "aux.safetensors"
    save_file({"w": torch.zeros(1)}, str(aux), metadata={**GOOD, "qusr.role": "aux", "qusr.arch": "compact",
                                                          "qusr.config": json.dumps({"num_feat": 100_000})})
    weights = write_weights(tmp_path / "weights.toml", {"aux": component_entry_for(aux, base=tmp_path)})
    result = CliRunner().invoke(weights_app, ["verify", "--weights", str(weights)])
    assert result.exit_code == 1
    assert "BAD HEADER" in result.stdout
    assert "num_feat must be between 1 and 256" in result.stderr and "Traceback" not in result.output

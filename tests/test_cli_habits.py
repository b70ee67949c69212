"""The CLI habits of issue 10 §4, each through the real command on a tiny random model."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from qusr_cli.archs.rrdbnet import RRDBNet
from qusr_cli.cli.app import app
from qusr_cli.weights.import_ncnn import save_rrdbnet_safetensors

from test_cli import tiny_folder, use_tiny_model  # noqa: F401  (fixtures: every test runs the tiny model)

runner = CliRunner()


def photo(path: Path, size=(24, 20), seed=0, fmt=None) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def invoke(*args: str, **kwargs):
    return runner.invoke(app, list(args), **kwargs)


def ok(result):
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def error_line(result) -> str:
    assert result.exit_code not in (0, None), result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("qusr: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def no_model_may_load(monkeypatch):
    """Make loading fail loudly, so a test proves its error came before any model work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")
    monkeypatch.setattr("qusr_cli.loading.load_upscaler", refuse)


# ---- inputs: several files, globs, folders, stdin/stdout ----------------------------------------------------

def test_upscale_takes_several_files_and_a_glob(tmp_path):
    a, b = photo(tmp_path / "a.png"), photo(tmp_path / "b.jpg", seed=1)
    photo(tmp_path / "c.png", seed=2)
    out = tmp_path / "out"
    result = ok(invoke("upscale", str(a), str(b), "-o", str(out), "--steps", "1"))
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert "2 done, 0 skipped, 0 failed" in result.stderr
    ok(invoke("upscale", str(tmp_path / "*.png"), "--steps", "1", "--suffix", "_x4"))
    assert (tmp_path / "a_x4.png").is_file() and (tmp_path / "c_x4.png").is_file()
    assert not (tmp_path / "b_x4.jpg").exists()
    assert "matches no image" in error_line(invoke("upscale", str(tmp_path / "*.webp")))
    (tmp_path / "notes").write_text("a file, not a folder")
    assert "need -o to be a folder" in error_line(invoke("upscale", str(a), str(b), "-o", str(tmp_path / "notes")))


def test_upscale_of_a_folder_points_to_batch(tmp_path, monkeypatch):
    no_model_may_load(monkeypatch)
    assert "use `qusr batch" in error_line(invoke("upscale", str(tmp_path)))


def test_dash_reads_stdin_and_writes_png_to_stdout(tmp_path):
    encoded = io.BytesIO()
    Image.open(photo(tmp_path / "in.jpg")).save(encoded, format="JPEG")
    result = ok(invoke("upscale", "-", "-o", "-", "--steps", "1", input=encoded.getvalue()))
    image = Image.open(io.BytesIO(result.stdout_bytes))
    assert image.format == "PNG" and image.size == (96, 80)
    assert "--json" in error_line(invoke("upscale", "-", "-o", "-", "--json", input=encoded.getvalue()))


# ---- help, examples, completion, quiet, json ----------------------------------------------------------------

def _all_commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, (*path, name))


def test_every_command_has_dash_h_and_examples():
    root = typer.main.get_command(app)
    commands = list(_all_commands(root))
    assert len(commands) > 10
    for path, _command in commands:
        result = ok(invoke(*path, "-h"))
        assert "Examples" in result.stdout, path
        assert "qusr " in result.stdout.split("Examples", 1)[1], path


def test_shell_completion_is_offered(monkeypatch):
    assert "--install-completion" in ok(invoke("--help")).stdout
    # Typer otherwise guesses the shell from the parent process, which a detached run (CI) may not have.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    script = ok(invoke("--show-completion", "bash")).stdout
    assert "complete" in script and "_COMPLETE" in script


def test_quiet_keeps_stderr_to_warnings_and_errors(tmp_path):
    source = photo(tmp_path / "in.png")
    loud = ok(invoke("upscale", str(source), "-o", str(tmp_path / "a.png"), "--steps", "1"))
    quiet = ok(invoke("upscale", str(source), "-o", str(tmp_path / "b.png"), "--steps", "1", "-q"))
    assert "wrote" in loud.stderr and "wrote" not in quiet.stderr
    assert all(line.startswith("qusr: ") for line in quiet.stderr.splitlines() if line.strip())


def test_json_on_batch_info_and_weights_list(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(folder / "a.png")
    (folder / "bad.png").write_bytes(b"nope")
    result = invoke("batch", str(folder), "-o", str(tmp_path / "out"), "--steps", "1", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 0, 1)
    assert {f["status"] for f in summary["files"]} == {"done", "failed"}
    info = json.loads(ok(invoke("info", "--json")).stdout)
    assert info["device"]["type"] == "cpu" and info["models"]
    listed = json.loads(ok(invoke("weights", "list", "--json")).stdout)
    assert {row["component"] for row in listed["files"]} >= {"aux", "denoiser"}
    assert all(isinstance(row["present"], bool) for row in listed["files"])


# ---- outputs: suffix, overwrite, formats --------------------------------------------------------------------

def test_existing_output_is_kept_unless_overwrite_and_help_says_the_default(tmp_path, monkeypatch):
    source = photo(tmp_path / "in.png")
    target = tmp_path / "in_qusr.png"
    target.write_bytes(b"keep me")
    help_text = " ".join(ok(invoke("upscale", "-h")).stdout.replace("│", " ").split())
    assert "[default: no-overwrite]" in help_text
    with monkeypatch.context() as patched:
        no_model_may_load(patched)
        assert "--overwrite" in error_line(invoke("upscale", str(source)))
    assert target.read_bytes() == b"keep me"
    ok(invoke("upscale", str(source), "--overwrite", "--steps", "1"))
    assert Image.open(target).size == (96, 80)


@pytest.mark.parametrize("ext", [".avif", ".heic", ".jxl"])
def test_modern_formats_in_and_out(tmp_path, ext):
    from qusr_cli.formats import OUTPUT_FORMATS

    source = photo(tmp_path / "in.png")
    target = tmp_path / f"out{ext}"
    ok(invoke("upscale", str(source), "-o", str(target), "--steps", "1"))
    with Image.open(target) as written:
        assert written.format == OUTPUT_FORMATS[ext] and written.size == (96, 80)
    ok(invoke("upscale", str(target), "-o", str(tmp_path / "again.png"), "--steps", "1"))
    assert Image.open(tmp_path / "again.png").size == (384, 320)


def test_batch_picks_up_every_format_upscale_reads(tmp_path):
    from qusr_cli.formats import IMAGE_SUFFIXES, OUTPUT_FORMATS

    folder = tmp_path / "photos"
    folder.mkdir()
    for index, ext in enumerate((".avif", ".heic", ".jxl", ".webp")):
        photo(folder / f"p{index}{ext}", fmt=OUTPUT_FORMATS[ext])
    assert {".avif", ".heic", ".jxl"} <= IMAGE_SUFFIXES
    result = ok(invoke("batch", str(folder), "-o", str(tmp_path / "out"), "--steps", "1"))
    assert "4 done, 0 skipped, 0 failed" in result.stderr


def test_unwritable_extension_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    no_model_may_load(monkeypatch)
    source = photo(tmp_path / "in.png")
    assert ".gif" in error_line(invoke("upscale", str(source), "-o", str(tmp_path / "out.gif")))
    assert ".gif" in error_line(invoke("batch", str(tmp_path), "-o", str(tmp_path / "o"), "--ext", "gif"))


# ---- progress, timing, heatmaps, batch summary --------------------------------------------------------------

def test_a_terminal_sees_loading_then_every_step_with_an_eta(tmp_path):
    """On a terminal (rich's TTY_COMPATIBLE stands in for one): a loading status, then a step bar with an ETA."""
    import os
    import re

    source = photo(tmp_path / "in.png")
    env = {**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-m", "qusr_cli.cli", "upscale", str(source), "-o", str(tmp_path / "o.png"),
                           "--steps", "3", "--critic", "none"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.stderr)
    assert "loading model" in screen and "upscaling in.png" in screen
    assert re.search(r"3/3 \S+ eta", screen), screen[-500:]  # one tile, still counted step by step


def test_reported_time_splits_loading_and_work(tmp_path):
    source = photo(tmp_path / "in.png")
    result = ok(invoke("upscale", str(source), "-o", str(tmp_path / "o.png"), "--steps", "1", "--json"))
    summary = json.loads(result.stdout)
    assert summary["loading_seconds"] > 0 and summary["work_seconds"] > 0
    assert summary["seconds"] == pytest.approx(summary["loading_seconds"] + summary["work_seconds"], abs=2e-3)
    text = ok(invoke("upscale", str(source), "-o", str(tmp_path / "p.png"), "--steps", "1")).stderr
    assert "s loading the model" in text and "s upscaling" in text


def test_heatmaps_option_says_what_it_wrote(tmp_path):
    source = photo(tmp_path / "in.png", size=(32, 32))
    result = ok(invoke("upscale", str(source), "-o", str(tmp_path / "o.png"), "--steps", "1",
                       "--heatmaps", str(tmp_path / "maps")))
    line = next(line for line in result.stderr.splitlines() if line.startswith("heatmaps: wrote"))
    written = [Path(p) for p in line.removeprefix("heatmaps: wrote ").split(", ")]
    assert written and all(p.is_file() and p.parent == tmp_path / "maps" for p in written)


def test_batch_into_its_own_folder_and_an_empty_folder_say_what_happens(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(folder / "a.png")
    result = ok(invoke("batch", str(folder), "-o", str(folder), "--steps", "1"))
    assert (folder / "a_qusr.png").is_file() and "1 done, 0 skipped, 0 failed" in result.stderr
    again = ok(invoke("batch", str(folder), "-o", str(folder), "--steps", "1"))
    assert "0 done, 1 skipped, 0 failed" in again.stderr  # its own output is not an input
    no_model_may_load(monkeypatch)
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    message = error_line(invoke("batch", str(empty), "-o", str(tmp_path / "o")))
    assert ".txt" in message and ".png" in message


def test_batch_accepts_every_upscale_option():
    root = typer.main.get_command(app)
    names = {command: {opt for param in root.commands[command].params if param.param_type_name == "option"
                       for opt in param.opts} for command in ("upscale", "batch")}
    assert names["upscale"] - names["batch"] == {"--output"}  # batch has -o/--output-dir instead


# ---- a model with only an SR net ----------------------------------------------------------------------------

def test_a_plain_sr_model_runs_without_a_denoiser(tmp_path):
    folder = tmp_path / "realesrgan-like"
    model = RRDBNet(num_feat=4, num_block=1, num_grow_ch=2)
    save_rrdbnet_safetensors(model.state_dict(), folder / "aux.safetensors", info={"note": "test"})
    source = photo(tmp_path / "in.png")
    result = ok(invoke("upscale", str(source), "-o", str(tmp_path / "o.png"), "--weights", str(folder),
                       "--json"))
    summary = json.loads(result.stdout)
    assert summary["output_size"] == [96, 80] and summary["prior"] is None
    assert "--candidates" in error_line(invoke("upscale", str(source), "-o", str(tmp_path / "c.png"),
                                               "--weights", str(folder), "--candidates", "2"))
    explained = json.loads(ok(invoke("explain", str(source), "-o", str(tmp_path / "e"), "--weights", str(folder),
                                     "--json")).stdout)
    assert "plain SR net" in explained["invented"] and explained["critic"] is None


def test_version_and_help_do_not_import_torch():
    code = ("import sys; from qusr_cli.cli.app import main; sys.argv = ['qusr', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("NO-TORCH"), done.stdout + done.stderr


# ---- explain: one readable figure --------------------------------------------------------------------------

def test_explain_writes_one_captioned_figure_and_says_what_the_critic_found(tmp_path):
    source = photo(tmp_path / "in.png", size=(32, 32))
    result = ok(invoke("explain", str(source), "-o", str(tmp_path / "e"), "--json"))
    summary = json.loads(result.stdout)
    assert summary["findings"].startswith("The critic found") and "noise" in summary["findings"]
    assert "Detail will be invented on" in summary["invented"]
    figure = Image.open(summary["figure"]).convert("RGB")
    assert Path(summary["figure"]).name == "in_explain.png"
    assert figure.width > 3 * 128 and figure.height > 128  # three panels side by side, captions under them
    names = {Path(p).name for p in summary["files"]}
    assert {"in_uncertainty.png", "in_noise_weight.png", "in_overlay.png", "in_aux.png"} <= names
    panel = ok(invoke("explain", str(source), "-o", str(tmp_path / "e2"))).stdout
    assert "The critic found" in " ".join(panel.split())


def test_overlay_keeps_low_noise_places_grey_and_tints_the_rest():
    import torch

    from qusr_cli.heatmaps import findings_in_words, render_overlay
    from qusr_cli.prior.report import QualityReport

    image = torch.full((1, 3, 8, 8), 0.5)
    weight = torch.full((1, 3, 8, 8), 0.4)
    weight[..., 4:] = 1.0
    pixels = np.asarray(render_overlay(image, weight, floor=0.4)).astype(int)
    assert (pixels[:, :4] == pixels[:, :4, :1]).all()  # at the floor: plain grey, no colour cast
    red, green, blue = pixels[0, 6]
    assert red > green > blue  # full noise: orange
    report = QualityReport.from_values(noise_sigma=10, blur_sigma=0.2, jpeg_quality=100, exposure=0.5,
                                       contrast=0.2)
    assert findings_in_words(report, None) == ("The critic found moderate noise; sharp, no JPEG artefacts, "
                                               "well exposed, normal contrast.")
    assert "--critic none" in findings_in_words(None, None)


def test_a_heic_file_under_another_name_is_still_read(tmp_path):
    """Plugins register only when needed; a file Pillow alone cannot identify gets them too."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.open(photo(tmp_path / "in.png")).save(tmp_path / "holiday.img", format="HEIF")
    code = ("import sys; from qusr_cli.imageio import read_image; "
            "print(tuple(read_image(sys.argv[1]).rgb.shape))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "holiday.img")], capture_output=True,
                          text=True, timeout=300)
    assert done.stdout.strip() == "(1, 3, 20, 24)", done.stderr

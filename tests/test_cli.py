"""The qusr command end to end through Typer's CliRunner, on a tiny random model."""

from __future__ import annotations

import json
import logging
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from qusr_cli import __version__
from qusr_cli.cli.app import app
from qusr_cli.weights import component_entry_for

from helpers import make_tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    make_tiny_model(folder)
    return folder


@pytest.fixture(autouse=True)
def use_tiny_model(tiny_folder, monkeypatch):
    monkeypatch.setenv("QUSR_WEIGHTS", str(tiny_folder))
    monkeypatch.setenv("QUSR_THREADS", "1")


def photo(path: Path, size=(24, 20), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code not in (0, None), result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("qusr: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_upscale_writes_a_4x_image_and_warns_about_the_placeholder(tmp_path):
    source = photo(tmp_path / "in.png")
    result = invoke("upscale", str(source), "-o", str(tmp_path / "out.png"), "--steps", "2", "--json")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (96, 80) and out.mode == "RGB"
    summary = json.loads(result.stdout)
    assert summary["output_size"] == [96, 80] and summary["steps"] == 2
    assert "PLACEHOLDER" in result.stderr


def test_a_command_leaves_the_library_logger_as_it_found_it(tmp_path):
    logger = logging.getLogger("qusr")
    before = (list(logger.handlers), logger.level, logger.propagate)
    source = photo(tmp_path / "in.png")
    result = invoke("upscale", str(source), "-o", str(tmp_path / "out.png"), "--steps", "1")
    assert result.exit_code == 0, result.output
    assert "PLACEHOLDER" in result.stderr  # the command's own warnings still reach stderr
    assert (list(logger.handlers), logger.level, logger.propagate) == before


def test_upscale_default_output_path_and_other_scale(tmp_path):
    source = photo(tmp_path / "pic.jpg")
    result = invoke("upscale", str(source), "--scale", "2", "--steps", "1")
    assert result.exit_code == 0, result.output
    written = tmp_path / "pic_qusr.jpg"
    with Image.open(written) as out:
        assert out.size == (48, 40) and out.format == "JPEG"


def test_same_seed_same_output_different_seed_differs(tmp_path):
    source = photo(tmp_path / "in.png")
    outputs = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        target = tmp_path / f"{name}.png"
        assert invoke("upscale", str(source), "-o", str(target), "--seed", seed, "--steps", "2").exit_code == 0
        outputs.append(np.asarray(Image.open(target)))
    assert np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])


def test_grayscale_alpha_and_palette_inputs_keep_their_kind(tmp_path):
    grey = photo(tmp_path / "grey.png", mode="L")
    assert invoke("upscale", str(grey), "-o", str(tmp_path / "grey_out.png"), "--steps", "1").exit_code == 0
    assert Image.open(tmp_path / "grey_out.png").mode == "L"

    rgba = Image.open(photo(tmp_path / "rgb.png")).convert("RGBA")
    alpha = np.zeros((20, 24), dtype=np.uint8)
    alpha[:, 12:] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "rgba.png")
    assert invoke("upscale", str(tmp_path / "rgba.png"), "-o", str(tmp_path / "rgba_out.png"),
                  "--steps", "1").exit_code == 0
    out = Image.open(tmp_path / "rgba_out.png")
    assert out.mode == "RGBA"
    out_alpha = np.asarray(out)[..., 3]
    assert out_alpha[:, :40].max() < 10 and out_alpha[:, 56:].min() > 245

    palette = photo(tmp_path / "pal.png", mode="P")
    assert invoke("upscale", str(palette), "-o", str(tmp_path / "pal_out.png"), "--steps", "1").exit_code == 0
    assert Image.open(tmp_path / "pal_out.png").size == (96, 80)


def test_heatmaps_option_writes_the_maps(tmp_path):
    source = photo(tmp_path / "in.png")
    result = invoke("upscale", str(source), "-o", str(tmp_path / "out.png"), "--steps", "1",
                    "--heatmaps", str(tmp_path / "maps"))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert names == ["in_aux.png", "in_explain.png", "in_noise_weight.png", "in_overlay.png", "in_uncertainty.png"]


def test_explain_json_reports_maps_and_critique(tmp_path):
    source = photo(tmp_path / "in.png", size=(32, 32))
    result = invoke("explain", str(source), "-o", str(tmp_path / "explain"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["critic"] and summary["critique"]
    assert set(summary["report"]) == {"noise", "blur", "jpeg", "exposure", "contrast"}
    assert 0.4 <= summary["noise_weight_mean"] <= 1.0
    for path in summary["files"]:
        assert Path(path).is_file()
    with Image.open(tmp_path / "explain" / "in_uncertainty.png") as heat:
        assert heat.width > 128 and heat.height == 128  # the colour bar sits beside the 4x map


def test_explain_panel_with_user_prompt(tmp_path):
    source = photo(tmp_path / "in.png", size=(32, 32))
    result = invoke("explain", str(source), "-o", str(tmp_path / "e"), "--prompt", "a red brick wall",
                    "--critic", "none")
    assert result.exit_code == 0, result.output
    assert "a red brick wall" in result.stdout


def test_batch_continues_past_a_bad_file_and_exits_1(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    photo(folder / "a.png")
    photo(folder / "sub" / "b.jpg", seed=1)
    (folder / "broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    result = invoke("batch", str(folder), "-o", str(out), "--recursive", "--steps", "1")
    assert result.exit_code == 1, result.output
    assert (out / "a.png").is_file() and (out / "sub" / "b.png").is_file()
    assert not (out / "broken.png").exists()
    assert "2 done, 0 skipped, 1 failed" in result.stderr


def test_batch_leaves_existing_outputs_alone_unless_overwrite(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(folder / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    result = invoke("batch", str(folder), "-o", str(out), "--steps", "1")
    assert result.exit_code == 0, result.output
    assert (out / "a.png").read_bytes() == b"keep me"
    assert "0 done, 1 skipped, 0 failed" in result.stderr
    result = invoke("batch", str(folder), "-o", str(out), "--steps", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(out / "a.png").size == (96, 80)


def test_info_lists_device_and_weights():
    result = invoke("info")
    assert result.exit_code == 0, result.output
    assert "torch" in result.stdout and "cpu" in result.stdout and "files present" in result.stdout


# ---- bad input: one line on stderr, non-zero exit, nothing written ------------------------

@pytest.mark.parametrize("make, fragment", [
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: d, "is a folder"),
    (lambda d: (d / "text.png").write_text("hello") and d / "text.png", "not"),
    (lambda d: photo(d / "one.png", size=(1, 1)), "small"),
])
def test_bad_inputs(tmp_path, make, fragment):
    source = make(tmp_path)
    target = tmp_path / "out.png"
    result = invoke("upscale", str(source), "-o", str(target))
    assert_one_line_error(result)
    assert fragment in result.stderr.lower()
    assert not target.exists()


def test_truncated_image(tmp_path):
    full = photo(tmp_path / "full.png", size=(64, 64))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(full.read_bytes()[:300])
    result = invoke("upscale", str(truncated), "-o", str(tmp_path / "out.png"))
    assert_one_line_error(result)
    assert not (tmp_path / "out.png").exists()


def test_pixel_limit(tmp_path):
    source = photo(tmp_path / "in.png", size=(40, 40))
    result = invoke("upscale", str(source), "-o", str(tmp_path / "out.png"), "--max-pixels", "1000")
    assert_one_line_error(result, "--max-pixels")


def test_output_equal_to_input_and_unwritable_output(tmp_path):
    source = photo(tmp_path / "in.png")
    before = source.read_bytes()
    assert_one_line_error(invoke("upscale", str(source), "-o", str(source)))
    assert source.read_bytes() == before
    assert_one_line_error(invoke("upscale", str(source), "-o", str(tmp_path / "nowhere" / "out.png")))


def _copy_model(tiny_folder: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    return folder


def test_corrupt_checkpoint(tmp_path, tiny_folder, monkeypatch):
    folder = _copy_model(tiny_folder, tmp_path)
    data = (folder / "denoiser.safetensors").read_bytes()
    (folder / "denoiser.safetensors").write_bytes(data[: len(data) // 2])
    monkeypatch.setenv("QUSR_WEIGHTS", str(folder))
    result = invoke("upscale", str(photo(tmp_path / "in.png")), "-o", str(tmp_path / "out.png"))
    assert_one_line_error(result, "denoiser")
    assert not (tmp_path / "out.png").exists()


def _toml_for(folder: Path, tmp_path: Path, **overrides) -> Path:
    lines = ['default = "m"', "[models.m]", 'description = "test"']
    for role in ("aux", "denoiser"):
        entry = component_entry_for(folder / f"{role}.safetensors", base=folder)
        entry.update(overrides.get(role, {}))
        lines += [f"[models.m.components.{role}]", f'path = "{entry["path"]}"', f'sha256 = "{entry["sha256"]}"',
                  f"size = {entry['size']}"]
    toml = folder / "weights.toml"
    toml.write_text("\n".join(lines) + "\n")
    tomllib.loads(toml.read_text())
    return toml


def test_sha256_mismatch(tmp_path, tiny_folder):
    folder = _copy_model(tiny_folder, tmp_path)
    toml = _toml_for(folder, tmp_path, aux={"sha256": "0" * 64})
    result = invoke("upscale", str(photo(tmp_path / "in.png")), "-o", str(tmp_path / "out.png"),
                    "--weights", str(toml))
    assert_one_line_error(result, "sha256")
    assert not (tmp_path / "out.png").exists()


def test_mismatched_checkpoint_role(tmp_path, tiny_folder):
    folder = _copy_model(tiny_folder, tmp_path)
    shutil.copy(folder / "aux.safetensors", folder / "denoiser.safetensors")
    toml = _toml_for(folder, tmp_path)
    result = invoke("upscale", str(photo(tmp_path / "in.png")), "-o", str(tmp_path / "out.png"),
                    "--weights", str(toml))
    assert_one_line_error(result, "expected denoiser")


def test_candidates_reported_in_json(tmp_path):
    source = photo(tmp_path / "in.png", size=(32, 32))
    result = invoke("upscale", str(source), "-o", str(tmp_path / "out.png"), "--steps", "1",
                    "--candidates", "2", "--seed", "5", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    scores = summary["candidate_scores"]["niqe"]
    assert len(scores) == 2
    assert summary["chosen_seed"] == 5 + scores.index(min(scores))


def test_detail_option_is_passed_to_the_sampler_and_bounded(tmp_path):
    source = photo(tmp_path / "in.png")
    outputs = {}
    for detail in ("0", "1"):
        result = invoke("upscale", str(source), "-o", str(tmp_path / f"d{detail}.png"), "--steps", "3",
                        "--detail", detail)
        assert result.exit_code == 0, result.output
        outputs[detail] = np.asarray(Image.open(tmp_path / f"d{detail}.png"))
    assert not np.array_equal(outputs["0"], outputs["1"])
    refused = invoke("upscale", str(source), "-o", str(tmp_path / "x.png"), "--detail", "1.5")
    assert refused.exit_code == 2 and "--detail" in refused.output and not (tmp_path / "x.png").exists()


def test_detail_that_cannot_act_at_so_few_steps_is_said(tmp_path):
    source = photo(tmp_path / "in.png")
    inert = invoke("upscale", str(source), "-o", str(tmp_path / "a.png"), "--steps", "2", "--detail", "1")
    assert inert.exit_code == 0, inert.output
    assert "--detail changes nothing at --steps 2" in inert.output
    acting = invoke("upscale", str(source), "-o", str(tmp_path / "b.png"), "--steps", "3", "--detail", "1")
    assert acting.exit_code == 0 and "changes nothing" not in acting.output

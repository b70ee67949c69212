"""`qusr batch` and `qusr upscale` over hostile folders: one line per problem, summary always, nothing lost."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from qusr_cli.cli.app import app
from qusr_cli.imageio import read_image

from fuzz.corpus import make_corpus
from test_cli import tiny_folder, use_tiny_model  # noqa: F401 - the same tiny model, set for every test here

runner = CliRunner()


def photo(path: Path, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(path)
    return path


def invoke(*args: str):
    return runner.invoke(app, [*args, "--steps", "1", "--critic", "none"])


def one_error_line(result) -> str:
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("qusr: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_inputs_that_share_an_output_name_all_get_their_own_and_skip_existing_knows_them(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    photo(folder / "a.jpg")
    photo(folder / "a.png", seed=1)
    first = invoke("batch", str(folder), "-o", str(out))
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.png", "a_png.png"]
    assert "a.jpg -> a_jpg.png" in first.stderr.replace("\n", " ")
    again = invoke("batch", str(folder), "-o", str(out), "--skip-existing")
    assert "0 done, 2 skipped, 0 failed" in again.stderr


def test_markup_in_paths_is_shown_as_written(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    (folder / "sub[").mkdir(parents=True)
    photo(folder / "sub[" / "x].png")
    photo(folder / "[red]y.png")
    result = invoke("batch", str(folder), "-o", str(out), "--recursive")
    assert result.exit_code == 0, result.output
    assert "sub[/x].png" in result.stderr and "[red]y.png" in result.stderr
    assert (out / "sub[" / "x].png").is_file() and (out / "[red]y.png").is_file()
    (tmp_path / "single[").mkdir()
    single = invoke("upscale", str(folder / "[red]y.png"), "-o", str(tmp_path / "single[" / "x].png"))
    assert single.exit_code == 0 and "single[/x].png" in single.stderr


def test_blocked_output_folder_and_heatmaps_folder_are_one_line_before_work(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    source = photo(folder / "a.png")
    (tmp_path / "blocker").write_bytes(b"a file, not a folder")
    result = invoke("batch", str(folder), "-o", str(tmp_path / "blocker"))
    assert result.exit_code == 2 and "exists and is not a folder" in one_error_line(result)
    result = invoke("upscale", str(source), "-o", str(tmp_path / "up.png"), "--heatmaps", str(tmp_path / "blocker"))
    assert result.exit_code == 2 and "--heatmaps folder" in one_error_line(result)
    assert not (tmp_path / "up.png").exists()


def test_upscale_refuses_a_fifo_and_reports_any_failure_in_one_line(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "pipe.png")
    result = invoke("upscale", str(tmp_path / "pipe.png"), "-o", str(tmp_path / "out.png"))
    assert "not a regular file" in one_error_line(result)
    source = photo(tmp_path / "a.png")

    def broken(*args, **kwargs):
        raise ValueError("something inside a library")

    monkeypatch.setattr("qusr_cli.runner.render", broken)
    result = invoke("upscale", str(source), "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1
    assert "unexpected ValueError: something inside a library" in one_error_line(result)


def test_permission_denied_is_said_as_such(tmp_path, monkeypatch):
    source = photo(tmp_path / "a.png")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)  # the tests run as root, who may read anything
    result = invoke("upscale", str(source), "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 2 and one_error_line(result).endswith("a.png: permission denied")


def test_an_interrupted_batch_still_prints_its_summary(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        photo(folder / f"p{k}.png", seed=k)
    from qusr_cli import runner as runner_module

    real_render, calls = runner_module.render, []

    def interrupted_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(runner_module, "render", interrupted_second_time)
    result = invoke("batch", str(folder), "-o", str(tmp_path / "out"), "--prefetch", "0")
    assert result.exit_code == 130
    assert "1 done, 0 skipped, 0 failed, 2 not started" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "qusr: interrupted"


def test_fuzz_corpus_fast_subset(tmp_path):
    """Every category of the fuzz corpus, small: valid files written right, the rest one-line refusals."""
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    entries = make_corpus(corpus, fast=True)
    result = invoke("batch", str(corpus), "-o", str(out), "--recursive")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.stderr
    from qusr_cli.plan import find_images, plan_jobs

    jobs, _ = plan_jobs(find_images(corpus, True, out), out, ext="png", base=corpus)
    output_of = {job.source: job.output for job in jobs}
    for entry in entries:
        output = output_of.get(entry.path)
        written = output is not None and output.exists()
        if entry.expect == "write":
            assert written, entry
            height, width = read_image(output).rgb.shape[-2:]
            assert (width, height) == (entry.size[0] * 4, entry.size[1] * 4), entry
        elif entry.expect == "refuse":
            assert not written, entry
        elif written:
            read_image(output)  # whatever qusr writes, it reads back
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

"""The file-job runner: per-file isolation, executors that agree, output planning."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qusr_cli.devices import resolve_device, worker_devices
from qusr_cli.errors import InputError, QusrError
from qusr_cli.imageio import read_image
from qusr_cli.options import EngineOptions
from qusr_cli.plan import Job, find_images, plan_jobs, prepare_output_folders
from qusr_cli.runner import JobSettings, upscale_files, upscale_one
from qusr_cli.upscaler import UpscaleOptions

from helpers import NearestUpscaler, make_tiny_model


def photo(path: Path, width: int = 12, height: int = 10, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def folder_of_photos(tmp_path: Path, widths=(12, 13, 14, 15)) -> tuple[list[Job], Path]:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for k, width in enumerate(widths):
        photo(source / f"p{k}.png", width=width, seed=k)
    jobs, _ = plan_jobs(find_images(source), out, ext="png", base=source)
    prepare_output_folders(jobs, out)
    return jobs, out


@pytest.mark.parametrize("executor", ["sequential", "prefetch"])
def test_any_exception_in_one_file_is_a_failed_row_and_the_rest_go_on(tmp_path, executor):
    jobs, out = folder_of_photos(tmp_path)
    (jobs[0].source).write_bytes(b"broken")
    upscaler = NearestUpscaler(fail_on={13: ValueError("EXIF data is too long"), 14: MemoryError()})
    seen = []
    outcomes = upscale_files(upscaler, jobs, executor=executor, on_outcome=seen.append)
    assert outcomes == seen and [o.job for o in outcomes] == jobs
    assert [o.status for o in outcomes] == ["failed", "failed", "failed", "done"]
    assert "not an image file" in outcomes[0].detail
    assert outcomes[1].detail == "unexpected ValueError: EXIF data is too long (please report this)"
    assert outcomes[2].detail.startswith("unexpected MemoryError")
    assert sorted(p.name for p in out.iterdir()) == ["p3.png"]


def test_an_interruption_is_not_a_failed_file_it_ends_the_run(tmp_path):
    jobs, out = folder_of_photos(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        upscale_files(NearestUpscaler(fail_on={13: KeyboardInterrupt()}), jobs, executor="prefetch")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_prefetch_writes_the_same_files_as_sequential(tmp_path):
    jobs, out = folder_of_photos(tmp_path, widths=(12, 16, 20, 9, 30))
    upscale_files(NearestUpscaler(), jobs, executor="sequential")
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    for p in out.iterdir():
        p.unlink()
    upscale_files(NearestUpscaler(), jobs, executor="prefetch", prefetch=3)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first and len(first) == 5


def test_an_existing_output_is_a_skipped_row_unless_overwriting(tmp_path):
    jobs, out = folder_of_photos(tmp_path)
    jobs[1].output.write_bytes(b"keep")
    sources = [job.source for job in jobs]
    kept, _ = plan_jobs(sources, out, ext="png", base=tmp_path / "in")
    outcome = upscale_one(NearestUpscaler(), kept[1], JobSettings())
    assert outcome.status == "skipped" and jobs[1].output.read_bytes() == b"keep"
    replaced, _ = plan_jobs(sources, out, ext="png", base=tmp_path / "in", overwrite=True)
    outcome = upscale_one(NearestUpscaler(), replaced[1], JobSettings())
    assert outcome.status == "done" and read_image(jobs[1].output).rgb.shape[-2:] == (40, 52)


def test_worker_processes_build_their_own_engine_and_match_one_process(tmp_path):
    model = tmp_path / "model"
    make_tiny_model(model)
    jobs, out = folder_of_photos(tmp_path, widths=(12, 13, 14))
    spec = EngineOptions(weights=str(model), device="cpu", dtype="fp32", threads=1, critic="none")
    settings = JobSettings(UpscaleOptions(steps=1))
    upscale_files(spec, jobs, settings, executor="sequential")
    one_process = {p.name: p.read_bytes() for p in out.iterdir()}
    for p in out.iterdir():
        p.unlink()
    outcomes = upscale_files(spec, jobs, settings, executor="processes", workers=2)
    assert [o.status for o in outcomes] == ["done"] * 3
    assert {p.name: p.read_bytes() for p in out.iterdir()} == one_process


def test_find_images_survives_symlink_loops_and_keeps_out_the_output_folder(tmp_path):
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    photo(source / "a.png")
    photo(source / "sub" / "b.jpg")
    os.symlink("loop.png", source / "loop.png")
    os.symlink(".", source / "sub" / "again")
    os.symlink("../in", source / "up")
    (source / "out").mkdir()
    photo(source / "out" / "old.png")
    found = find_images(source, recursive=True, exclude=source / "out")
    assert [p.relative_to(source).as_posix() for p in found] == ["a.png", "loop.png", "sub/b.jpg"]


def test_colliding_output_names_are_all_kept_and_said(tmp_path):
    sources = [tmp_path / name for name in ("a.jpg", "a.png", "A.webp", "a_jpg.tif", "b.png")]
    jobs, notes = plan_jobs(sources, tmp_path / "out", ext="png", base=tmp_path)
    names = [job.output.name for job in jobs]
    assert len({name.casefold() for name in names}) == len(names)
    assert names[-1] == "b.png" and names[3] == "a_jpg.png"  # no collision: the natural name
    assert names[0] == "a_jpg_2.png"  # renamed a.jpg steps aside for a_jpg.tif's natural name
    assert names[1:3] == ["a_png.png", "A_webp.png"]
    assert len(notes) == 1 and "a.jpg -> a_jpg_2.png, a.png -> a_png.png, A.webp -> A_webp.png" in notes[0]


def test_an_unusable_output_folder_is_one_line_before_any_work(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        prepare_output_folders([], tmp_path / "file", "--output-dir")
    with pytest.raises(InputError, match="cannot use it as the --output-dir"):
        prepare_output_folders([], tmp_path / "file" / "below", "--output-dir")
    with pytest.raises(InputError, match=r"--ext gif: qusr cannot write '\.gif'"):
        plan_jobs([tmp_path / "a.png"], tmp_path / "out", ext="gif", base=tmp_path)


def test_devices_accept_cuda_n_and_workers_spread_over_the_gpus(monkeypatch):
    with pytest.raises(QusrError, match="cuda, cuda:N or mps"):
        resolve_device("cuda:x")
    with pytest.raises(QusrError, match="cuda, cuda:N or mps"):
        resolve_device("cpu:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(QusrError, match="only 2 CUDA GPU"):
        resolve_device("cuda:2")
    assert worker_devices("cuda", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices("cuda:1", 2) == ["cuda:1", "cuda:1"]
    assert worker_devices("cpu", 2) == ["cpu", "cpu"]

"""`qusr batch --engine ray` on a local 2-CPU Ray instance: the same files as the local engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from qusr_cli.cli.app import app
from qusr_cli.options import EngineOptions
from qusr_cli.ray_batch import RayLayout, actor_resources

from helpers import make_tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'qusr[ray]')")
    # One Ray instance for the module: starting one takes seconds. The CLI joins it.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, size in [("a.png", (24, 20)), ("b.jpg", (20, 16)), ("c.png", (16, 28)), ("d.webp", (20, 20))]:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image at all")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    make_tiny_model(folder)
    return folder


def _batch(photos, out, tiny, *extra):
    return runner.invoke(app, ["batch", str(photos), "-o", str(out), "--steps", "1", "--weights", str(tiny),
                               "--threads", "1", "--device", "cpu", *extra])


def test_ray_writes_the_local_engine_files_skips_existing_and_reports_the_bad_one(local_ray, photos, tiny, tmp_path):
    # One Ray run covers it all: each run starts its actors, which takes a while on a small machine.
    # An existing output is left alone unless --overwrite, on either engine.
    local = _batch(photos, tmp_path / "local", tiny)
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "a.png").write_bytes(b"keep me")
    on_ray = _batch(photos, tmp_path / "ray", tiny, "--engine", "ray", "--actors-per-node", "2", "--json")
    assert local.exit_code == on_ray.exit_code == 1, on_ray.output
    summary = json.loads(on_ray.stdout)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (3, 1, 1)
    status = {Path(row["input"]).name: row["status"] for row in summary["files"]}
    assert status == {"a.png": "skipped", "b.jpg": "done", "c.png": "done", "d.webp": "done", "broken.png": "failed"}
    assert (tmp_path / "ray" / "a.png").read_bytes() == b"keep me"
    for name in ("b.png", "c.png", "d.png"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert not (tmp_path / "ray" / "broken.png").exists()


def test_missing_ray_is_one_line_saying_how_to_install(photos, tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what a fresh install without the extra sees
    result = _batch(photos, tmp_path / "out", tiny, "--engine", "ray")
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == ["qusr: error: the Ray engine needs Ray: pip install 'qusr[ray]'"]


def test_default_layout_fills_each_node_with_actors():
    cpu_nodes = [{"Resources": {"CPU": 16.0}}, {"Resources": {"CPU": 8.0}}]
    gpu_nodes = [{"Resources": {"CPU": 32.0, "GPU": 8.0}}] * 3
    # CPU only: one actor per --threads CPUs of the smallest node, on every node
    assert actor_resources(RayLayout(), EngineOptions(threads=4), cpu_nodes) == (4, 4.0, 0.0)
    # GPUs: one actor per GPU; half a GPU each doubles them; --device cpu leaves the GPUs alone
    assert actor_resources(RayLayout(), EngineOptions(), gpu_nodes) == (24, 1.0, 1.0)
    assert actor_resources(RayLayout(gpus_per_actor=0.5), EngineOptions(), gpu_nodes) == (48, 1.0, 0.5)
    assert actor_resources(RayLayout(), EngineOptions(device="cpu"), gpu_nodes) == (96, 1.0, 0.0)
    assert actor_resources(RayLayout(actors_per_node=2), EngineOptions(), gpu_nodes) == (6, 1.0, 1.0)

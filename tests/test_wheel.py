"""The package as a user installs it: a built wheel (not the checkout) carries the model and upscales offline."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> Path:
    """Build the wheel once per session and unpack it, without its dependencies, into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    # --no-isolation: build with the setuptools already installed, so the test needs no network.
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next((work / "dist").glob("qusr-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for required in ("qusr_cli/weights.toml", "qusr_cli/models/qusr-medium-aux.safetensors",
                     "qusr_cli/models/NOTICE-Real-ESRGAN.txt", "qusr_cli/models/qusr-small-aux.safetensors",
                     "qusr_cli/models/qusr-small-denoiser.safetensors", "qusr_cli/metrics/data/niqe_pris_params.npz"):
        assert required in names, f"{required} missing from {wheel.name}"
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return target


def test_an_installed_wheel_upscales_offline(installed_wheel, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    env = {**os.environ, "PYTHONPATH": str(installed_wheel), "HF_HUB_OFFLINE": "1", "QUSR_THREADS": "1"}
    env.pop("QUSR_WEIGHTS", None)
    code = ("import sys, qusr_cli; print(qusr_cli.__file__, file=sys.stderr); "
            "sys.argv = ['qusr', 'upscale', 'photo.png', '--steps', '1']; "
            "from qusr_cli.cli.app import main; main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0].startswith(str(installed_wheel))  # the wheel's copy, not the checkout
    assert Image.open(tmp_path / "photo_qusr.png").size == (96, 96)

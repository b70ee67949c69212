"""SIGINT, SIGTERM and SIGKILL at several moments of a real `qusr batch` process.

Whatever the moment: no traceback, exit 130 (SIGINT) or 143 (SIGTERM), no partial file under a final
name, and the next --skip-existing run removes the temp files a SIGKILL left and completes the rest
exactly once (finished files are not written again).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qusr_cli.imageio import read_image

from helpers import make_tiny_model

REPO = Path(__file__).resolve().parent.parent
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupts")
    make_tiny_model(root / "model")
    photos = root / "photos"
    photos.mkdir()
    for k in range(8):
        pixels = np.random.default_rng(k).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"p{k}.png")
    return root


def start(setup: Path, out: Path, *extra: str, steps: int = 8) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "QUSR_WEIGHTS": str(setup / "model"), "QUSR_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "qusr_cli", "batch", str(setup / "photos"), "-o", str(out),
                             "--steps", str(steps), "--critic", "none", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal, even when the tests themselves run in the background
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def outputs(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} if out.exists() else {}


def wait_until_guarded(process: subprocess.Popen) -> None:
    """Until qusr's SIGTERM handler is in place (Linux: the SigCgt mask in /proc), which entry.main sets
    first, before PyTorch and the CLI are imported; elsewhere a pause of that order. (Python itself
    catches SIGINT from its first instant, so only SIGTERM's bit tells that qusr's code runs.)"""
    status = Path(f"/proc/{process.pid}/status")
    if not status.exists():
        time.sleep(0.4)
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        caught = next((line.split()[1] for line in status.read_text().splitlines() if line.startswith("SigCgt:")), "0")
        if int(caught, 16) >> (signal.SIGTERM - 1) & 1:
            return
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_during_start_up_ends_quietly(setup, sig):
    process = start(setup, setup / f"early-{sig.name}")
    wait_until_guarded(process)  # PyTorch and the CLI are still being imported
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT[sig], err
    assert "Traceback" not in err and err.strip().splitlines()[-1:] == ["qusr: interrupted"], (process.returncode, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_mid_batch_loses_nothing_and_the_next_run_finishes_the_rest_once(setup, sig):
    out = setup / f"mid-{sig.name}"
    process = start(setup, out)
    deadline = time.monotonic() + 120
    while not outputs(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT[sig], err
    assert "Traceback" not in err
    if sig != signal.SIGKILL:
        assert "not started" in err and err.strip().splitlines()[-1] == "qusr: interrupted"
        assert not list(out.glob(".*.tmp"))
    finished = outputs(out)
    assert 1 <= len(finished) < 8
    for name in finished:  # no partial file under a final name
        assert read_image(out / name).rgb.shape[-2:] == (160, 192)

    resume = start(setup, out, "--skip-existing", steps=1)
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert f"{8 - len(finished)} done, {len(finished)} skipped, 0 failed" in err
    after = outputs(out)
    assert sorted(after) == [f"p{k}.png" for k in range(8)]
    assert {name: after[name] for name in finished} == finished  # not written a second time
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

"""`qusr train` under torchrun: two CPU processes (gloo), sharded data, one writer, resumable."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qusr_cli.train.dataset import StepSamples
from qusr_cli.weights.checkpoint import checkpoint_info

from helpers import make_tiny_model, random_photos

QUSR = shutil.which("qusr", path=str(Path(sys.executable).parent))
REPO = Path(__file__).resolve().parents[1]


def test_ranks_share_each_step_without_overlap():
    single = list(StepSamples(2, 4, batch=6))
    ranks = [list(StepSamples(2, 4, batch=3, rank=r, world=2)) for r in range(2)]
    assert single == list(range(12, 24))  # one process: step s takes samples s·B … (s+1)·B − 1
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == single  # two ranks with half the batch: the same samples per step
    assert ranks[0][:3] == [12, 13, 14] and ranks[1][:3] == [15, 16, 17]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    random_photos(folder / "photos", 3, 64)
    return folder, make_tiny_model(folder / "tiny")


def _torchrun(folder: Path, aux: Path, steps: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "--no-python", QUSR, "train", "denoiser", "--data", str(folder / "photos"), "--out", str(folder / "run"),
               "--aux", str(aux), "--no-text", "--channel-mult", "1,2", "--width", "8", "--batch", "2",
               "--crop", "32", "--workers", "0", "--val-every", "0", "--save-every", "3", "--steps", str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "QUSR_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.skipif(QUSR is None, reason="the qusr console script is not installed next to this Python")
def test_two_cpu_processes_train_resume_and_give_an_engine_checkpoint(tiny):
    from qusr_cli.bundle import load_bundle
    from qusr_cli.upscaler import UpscaleOptions, Upscaler

    folder, model = tiny
    first = _torchrun(folder, model["aux"], steps=3)
    assert first.returncode == 0, first.stderr[-3000:]
    # Only rank 0 prints the checkpoint path (and writes): one line, not two.
    assert first.stdout.count("denoiser.safetensors") == 1, first.stdout
    second = _torchrun(folder, model["aux"], steps=5)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("resuming at step 3/5") == 1

    records = [json.loads(line) for line in (folder / "run" / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    assert [r["step"] for r in train] == [3, 5]  # one writer, and the resumed run went on from step 3
    for record in train:
        # Same weights on both ranks (checked at every save, or the run fails), so different losses
        # mean the ranks trained on different crops.
        first_rank, second_rank = record["rank_losses"]
        assert first_rank != second_rank
        assert record["loss"] == pytest.approx((first_rank + second_rank) / 2)
    assert checkpoint_info(folder / "run" / "denoiser.safetensors")["steps_done"] == 5

    bundle = load_bundle("ddp", {"aux": model["aux"], "denoiser": folder / "run" / "denoiser.safetensors"})
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = Upscaler(bundle, device=torch.device("cpu"), dtype=torch.float32).upscale(lr, UpscaleOptions(steps=2)).image
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()

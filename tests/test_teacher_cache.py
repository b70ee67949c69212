"""The teacher cache: shards round-trip, a lost shard is rebuilt identically, settings never mix."""

from __future__ import annotations

import shutil

import pytest
import torch
from typer.testing import CliRunner

from qusr_cli.archs.compact import CompactSR
from qusr_cli.cli.train_cmd import train_app
from qusr_cli.train.dataset import DegradedCrops
from qusr_cli.train.teacher_cache import TeacherShards, build_teacher_cache, check_disjoint, shard_path
from qusr_cli.weights.checkpoint import save_checkpoint

from helpers import random_photos


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    return random_photos(tmp_path_factory.mktemp("cache-photos"), 2, 48, seed=3)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return CompactSR(num_feat=4, num_conv=1).eval()


def _build(folder, photo_dir, teacher, count=6, description=None, workers=0):
    dataset = DegradedCrops(photo_dir, crop=16, seed=5)
    return build_teacher_cache(dataset, teacher, folder, count=count, shard_size=4, batch=3, workers=workers,
                               description=description or {"teacher": "tiny"})


def test_shards_hold_the_crop_stream_and_the_teachers_output(tmp_path, photo_dir, teacher):
    assert _build(tmp_path / "cache", photo_dir, teacher) == 2  # 6 samples round up to 2 shards of 4
    cache = TeacherShards(tmp_path / "cache")
    stream = DegradedCrops(photo_dir, crop=16, seed=5)
    for index in range(8):
        sample, expected = cache[index], stream[index]
        assert torch.allclose(sample["hr"], expected["hr"], atol=0.5 / 255)
        assert torch.allclose(sample["lr"], expected["lr"], atol=0.5 / 255)
        with torch.no_grad():
            restored = teacher(sample["lr"][None])[0].clamp(0, 1)
        assert torch.allclose(sample["teacher"], restored, atol=1.5 / 255)
        assert sample["params"]["jpeg_quality"] == pytest.approx(expected["params"]["jpeg_quality"])


def test_later_passes_over_the_cache_are_flipped_or_rotated_copies(tmp_path, photo_dir, teacher):
    _build(tmp_path / "cache", photo_dir, teacher)
    cache = TeacherShards(tmp_path / "cache")
    first, again = cache[1], cache[1 + cache.size]
    assert torch.equal(again["hr"], first["hr"].flip(-1))
    assert torch.equal(again["teacher"], first["teacher"].flip(-1))


def test_sub_crops_cut_hr_lr_and_teacher_at_the_same_place(tmp_path, photo_dir, teacher):
    _build(tmp_path / "cache", photo_dir, teacher)
    whole, cut = TeacherShards(tmp_path / "cache"), TeacherShards(tmp_path / "cache", crop=8)
    for index in range(4):
        full, part = whole[index], cut[index]
        assert part["hr"].shape == part["teacher"].shape == (3, 8, 8) and part["lr"].shape == (3, 2, 2)
        found = [(y, x) for y in range(0, 9, 4) for x in range(0, 9, 4)
                 if torch.equal(full["hr"][:, y:y + 8, x:x + 8], part["hr"])]
        assert found, "the sub-crop is a 4-aligned window of the cached crop"
        y, x = found[0]
        assert torch.equal(full["teacher"][:, y:y + 8, x:x + 8], part["teacher"])
        assert torch.equal(full["lr"][:, y // 4:y // 4 + 2, x // 4:x // 4 + 2], part["lr"])
    with pytest.raises(ValueError, match="multiple of 4"):
        TeacherShards(tmp_path / "cache", crop=10)


def test_a_lost_shard_is_rebuilt_identically_and_finished_ones_are_kept(tmp_path, photo_dir, teacher):
    folder = tmp_path / "cache"
    _build(folder, photo_dir, teacher)
    original = shard_path(folder, 1).read_bytes()
    kept = shard_path(folder, 0).stat().st_mtime_ns
    shard_path(folder, 1).unlink()
    _build(folder, photo_dir, teacher)
    assert shard_path(folder, 1).read_bytes() == original
    assert shard_path(folder, 0).stat().st_mtime_ns == kept


def test_worker_processes_build_the_same_shards_and_resume_at_a_missing_one(tmp_path, photo_dir, teacher):
    _build(tmp_path / "alone", photo_dir, teacher, count=12)
    _build(tmp_path / "workers", photo_dir, teacher, count=12, workers=2)
    for index in range(3):
        assert shard_path(tmp_path / "workers", index).read_bytes() == shard_path(tmp_path / "alone", index).read_bytes()
    shard_path(tmp_path / "workers", 1).unlink()
    _build(tmp_path / "workers", photo_dir, teacher, count=12, workers=2)
    assert shard_path(tmp_path / "workers", 1).read_bytes() == shard_path(tmp_path / "alone", 1).read_bytes()


def test_a_folder_built_with_other_settings_is_refused(tmp_path, photo_dir, teacher):
    _build(tmp_path / "cache", photo_dir, teacher)
    with pytest.raises(ValueError, match="other settings.*teacher"):
        _build(tmp_path / "cache", photo_dir, teacher, description={"teacher": "another"})


def test_evaluation_photos_never_reach_the_teacher(tmp_path, photo_dir):
    eval_root = tmp_path / "eval"
    (eval_root / "set").mkdir(parents=True)
    digests = check_disjoint(sorted(photo_dir.iterdir()), eval_root)  # disjoint: no error
    assert sorted(digests) == sorted(photo_dir.iterdir()) and all(len(d) == 64 for d in digests.values())
    shutil.copy(photo_dir / "p1.png", eval_root / "set" / "x.png")
    with pytest.raises(ValueError, match="p1.png = set/x.png"):
        check_disjoint(sorted(photo_dir.iterdir()), eval_root)


def test_the_command_builds_a_cache_and_refuses_eval_photos_in_one_line(tmp_path, photo_dir, teacher):
    teacher_path = save_checkpoint(tmp_path / "teacher.safetensors", teacher, role="aux")
    args = ["teacher-cache", "--data", str(photo_dir), "--out", str(tmp_path / "cache"), "--teacher",
            str(teacher_path), "--count", "4", "--shard-size", "2", "--crop", "16", "--hr-scales", "1",
            "--eval-dir", str(tmp_path / "no-eval")]
    result = CliRunner().invoke(train_app, args)
    assert result.exit_code == 0, result.output
    assert TeacherShards(tmp_path / "cache").size == 4
    (tmp_path / "eval").mkdir()
    shutil.copy(photo_dir / "p0.png", tmp_path / "eval" / "p0.png")
    result = CliRunner().invoke(train_app, args[:-1] + [str(tmp_path / "eval")])
    assert result.exit_code != 0 and "evaluation images" in result.output
    assert "Traceback" not in result.output

"""Planning which files go where, before any model loads (qusr_cli.plan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qusr_cli.errors import InputError
from qusr_cli.plan import STDIO, expand_inputs, output_name, plan_jobs


def test_output_name():
    assert output_name(Path("/a/photo.jpg"), "_qusr", None) == "photo_qusr.jpg"
    assert output_name(Path("/a/photo.JPEG"), "_x4", None) == "photo_x4.JPEG"
    assert output_name(Path("/a/photo.jpg"), "", "png") == "photo.png"
    assert output_name(Path("/a/photo.jpg"), "_qusr", ".tif") == "photo_qusr.tif"
    assert output_name(Path("/a/anim.gif"), "_qusr", None) == "anim_qusr.png"
    assert output_name(Path("/a/scan"), "_qusr", None) == "scan_qusr.png"


def test_plan_jobs_places_outputs_and_skips_existing_ones(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    for path in (a, b):
        path.write_bytes(b"x")
    (tmp_path / "a_qusr.png").write_bytes(b"old")
    jobs = plan_jobs([a, b], None, suffix=None, ext=None, overwrite=False)
    assert [job.target.name for job in jobs] == ["a_qusr.png", "b_qusr.jpg"]
    assert jobs[0].skip and not jobs[1].skip
    assert not plan_jobs([a], None, suffix=None, ext=None, overwrite=True)[0].skip
    out = tmp_path / "out"
    out.mkdir()
    assert [j.target for j in plan_jobs([a, b], out, suffix=None, ext="webp", overwrite=False)] == [
        out / "a.webp", out / "b.webp"]
    with pytest.raises(InputError, match="same output"):
        plan_jobs([a, tmp_path / "a.jpg"], out, suffix=None, ext="png", overwrite=False)
    with pytest.raises(InputError, match="input file itself"):
        plan_jobs([a], a, suffix=None, ext=None, overwrite=True)
    assert plan_jobs([STDIO], None, suffix=None, ext=None, overwrite=False)[0].target == STDIO
    assert plan_jobs([STDIO, a], out, suffix=None, ext=None, overwrite=False)[0].target == out / "stdin.png"


def test_expand_inputs(tmp_path):
    for name in ("x.png", "y.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_inputs([str(tmp_path / "*")]) == [tmp_path / "x.png", tmp_path / "y.png"]
    assert expand_inputs(["-"]) == [STDIO]
    with pytest.raises(InputError, match="only once"):
        expand_inputs(["-", "-"])
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([str(tmp_path / "missing.png")])

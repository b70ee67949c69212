"""`qusr bench` end to end on two tiny images and a tiny random model, plus its measuring parts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from helpers import make_tiny_model
from PIL import Image
from typer.testing import CliRunner

from qusr_cli.bench.datasets import speed_inputs, synthetic_set
from qusr_cli.bench.measure import count_flops, current_rss_bytes, lr_tiles
from qusr_cli.bench.methods import (
    EngineConfig,
    ExternalMethod,
    MethodLoader,
    MethodSpec,
    parse_external,
    plan_methods,
)
from qusr_cli.bench.plots import sheet_columns
from qusr_cli.cli.bench_cmd import bench
from qusr_cli.errors import QusrError
from qusr_cli.eval_sets import load_set
from qusr_cli.imageio import read_rgb8
from qusr_cli.metrics import psnr_y
from qusr_cli.tiling import plan_tiles

cli = typer.Typer()
cli.command()(bench)
runner = CliRunner()


def smooth_photo(height: int, width: int, seed: int) -> np.ndarray:
    """Gradients plus a little texture: NIQE needs image structure, pure noise is a degenerate input."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y), np.sin(4 * (x + y))], axis=-1) * 0.4 + 0.5
    pixels = base + rng.normal(0, 0.05, base.shape)
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """Two pairs, LR 32x32 (output 128x128, enough for NIQE) and GT 128x128."""
    root = tmp_path_factory.mktemp("tinyset")
    for index in range(2):
        gt = smooth_photo(128, 128, index)
        (root / "gt").mkdir(exist_ok=True)
        (root / "lq").mkdir(exist_ok=True)
        Image.fromarray(gt).save(root / "gt" / f"img{index}.png")
        Image.fromarray(gt).resize((32, 32), Image.Resampling.BICUBIC).save(root / "lq" / f"img{index}.png")
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    make_tiny_model(folder)
    return folder


def run_bench(tiny_set: Path, tiny_model: Path, out: Path, *extra: str):
    return runner.invoke(cli, ["--set", str(tiny_set), "--methods", "bicubic,aux,qusr", "--steps-list", "1",
                               "--speed-sizes", "32", "--out", str(out), "--weights", str(tiny_model),
                               "--threads", "1", "--device", "cpu", *extra])


def output_mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in (out / "outputs").rglob("*") if p.is_file()} | {
        str(p.relative_to(out)): p.stat().st_mtime_ns for p in (out / "speed").rglob("*.json")}


def finite_numbers(value) -> bool:
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_numbers(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def test_bench_end_to_end_with_reuse(tiny_set, tiny_model, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench"
    first = run_bench(tiny_set, tiny_model, out)
    assert first.exit_code == 0, first.output

    results = json.loads((out / "results.json").read_text())
    assert {"machine", "engine", "model", "config", "quality", "best_of_n", "speed", "notes", "plots"} <= set(results)
    assert results["machine"]["threads"] == 1 and results["machine"]["cores"] >= 1
    assert finite_numbers(results)
    entry = results["quality"][tiny_set.name]
    assert entry["images"] == 2 and entry["has_gt"]
    assert list(entry["methods"]) == ["bicubic", "aux", "qusr-s1"]
    for summary in entry["methods"].values():
        assert {"psnr_y", "ssim_y", "niqe"} <= set(summary["metrics"])
        assert summary["timed_images"] == 2 and summary["seconds_per_image"] > 0

    # the table's bicubic PSNR is the plain mean of psnr_y on the cached outputs against the ground truth
    bicubic_dir = out / "outputs" / tiny_set.name / "bicubic"
    direct = []
    for name in ("img0", "img1"):
        lr = Image.open(tiny_set / "lq" / f"{name}.png")
        expected = np.asarray(lr.resize((128, 128), Image.Resampling.BICUBIC))
        assert np.array_equal(read_rgb8(bicubic_dir / f"{name}.png"), expected)
        direct.append(psnr_y(expected, read_rgb8(tiny_set / "gt" / f"{name}.png")))
    assert entry["methods"]["bicubic"]["metrics"]["psnr_y"] == pytest.approx(np.mean(direct), abs=1e-9)
    assert f"| bicubic | {np.mean(direct):.2f} |" in (out / "report.md").read_text()
    assert "| bicubic |" in first.stdout

    speed = {row["method"]: row for row in results["speed"]}
    assert set(speed) == {"bicubic", "aux", "qusr-s1"}
    assert speed["bicubic"]["flops"] is None
    for name in ("aux", "qusr-s1"):
        assert speed[name]["lr_side"] == 32 and speed[name]["seconds"] > 0
        assert speed[name]["peak_rss_mb"] > 50  # a whole Python process with torch loaded
        assert speed[name]["flops_per_output_pixel"] > 0
    # qusr runs g as well as the denoiser, so it costs strictly more than g alone
    assert speed["qusr-s1"]["flops"] > speed["aux"]["flops"]

    plots = [Path(p) for p in results["plots"]]
    assert {p.name for p in plots} == {f"perception-distortion-{tiny_set.name}.png",
                                       f"crops-{tiny_set.name}.png", "time-vs-size.png"}
    for path in plots:
        with Image.open(path) as image:
            assert image.width > 100 and image.height > 100

    before = output_mtimes(out)
    second = run_bench(tiny_set, tiny_model, out)
    assert second.exit_code == 0, second.output
    assert json.loads((out / "results.json").read_text())["computed_outputs"] == 0
    assert output_mtimes(out) == before
    assert "speed:" not in second.stderr

    # another seed changes what qusr's outputs depend on: only qusr is made again
    third = run_bench(tiny_set, tiny_model, out, "--seed", "1", "--speed-sizes", "")
    assert third.exit_code == 0, third.output
    after = output_mtimes(out)
    changed = {path.split("/")[2] for path in after if after[path] != before.get(path) and path.endswith(".png")}
    assert changed == {"qusr-s1"}


def test_missing_real_esrgan_weights_names_the_command(tiny_set, tiny_model, tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(cli, ["--set", str(tiny_set), "--methods", "bicubic,realesrgan", "--out", str(out),
                                 "--speed-sizes", "", "--no-plots", "--weights", str(tiny_model)])
    assert result.exit_code == 0, result.output
    expected = out / "realesrgan-x4plus.safetensors"
    assert f"qusr weights import-ncnn --out {expected}" in result.stderr
    results = json.loads((out / "results.json").read_text())
    assert list(results["quality"][tiny_set.name]["methods"]) == ["bicubic"]
    # without --plots only the crop sheet, which needs no matplotlib
    assert results["plots"] == [str(out / f"crops-{tiny_set.name}.png")]


def test_real_esrgan_outputs_made_before_are_reused(tiny_set, tiny_model, tmp_path):
    """An earlier run's outputs stand in for Real-ESRGAN when they match by name and 4x size."""
    made_before = tmp_path / "made-before"
    made_before.mkdir()
    for name in ("img0", "img1"):
        Image.fromarray(smooth_photo(128, 128, 7)).save(made_before / f"{name}.png")
    Image.fromarray(smooth_photo(64, 64, 7)).save(made_before / "other.png")
    weights = tmp_path / "rrdb.safetensors"
    from qusr_cli.archs import RRDBNet
    from qusr_cli.weights.checkpoint import save_checkpoint

    save_checkpoint(weights, RRDBNet(num_feat=4, num_block=1, num_grow_ch=4), role="aux")
    out = tmp_path / "bench"
    result = runner.invoke(cli, ["--set", str(tiny_set), "--methods", "realesrgan", "--out", str(out),
                                 "--speed-sizes", "", "--no-plots", "--realesrgan-weights", str(weights),
                                 "--realesrgan-outputs", str(made_before)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    summary = results["quality"][tiny_set.name]["methods"]["realesrgan"]
    assert results["computed_outputs"] == 0 and summary["timed_images"] == 0
    cached = read_rgb8(out / "outputs" / tiny_set.name / "realesrgan" / "img0.png")
    assert np.array_equal(cached, read_rgb8(made_before / "img0.png"))


def test_real_esrgan_outputs_made_before_need_no_weights(tiny_set, tmp_path):
    """Without the weights file the imported outputs are still scored; nothing is computed or timed,
    and an image the folder lacks is a note, not a traceback."""
    made_before = tmp_path / "made-before"
    made_before.mkdir()
    Image.fromarray(smooth_photo(128, 128, 7)).save(made_before / "img0.png")
    Image.fromarray(smooth_photo(128, 128, 7)).save(made_before / "img1.png")
    out = tmp_path / "bench"
    args = ["--set", str(tiny_set), "--methods", "realesrgan", "--out", str(out), "--speed-sizes", "16",
            "--no-plots", "--realesrgan-outputs", str(made_before)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["computed_outputs"] == 0
    assert results["quality"][tiny_set.name]["methods"]["realesrgan"]["images"] == 2
    assert results["speed"] == [] and any("realesrgan not timed" in n for n in results["notes"])

    (made_before / "img1.png").unlink()
    result = runner.invoke(cli, args + ["--out", str(tmp_path / "again")])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    notes = json.loads((tmp_path / "again" / "results.json").read_text())["notes"]
    assert any("img1 has no 4x output" in n and "does not exist" in n for n in notes), notes


COPY_SCRIPT = """
import sys
from pathlib import Path
from PIL import Image
source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
for path in sorted(source.glob("*.png")):
    with Image.open(path) as image:
        image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST).save(target / path.name)
"""


def test_external_method_runs_a_command_on_folders(tiny_set, tmp_path):
    script = tmp_path / "nearest x4.py"  # a space in the path: the command must not go through a shell
    script.write_text(COPY_SCRIPT)
    spec = parse_external(f"nearest={sys.executable} '{script}' {{in}} {{out}}")
    lr = torch.from_numpy(np.array(Image.open(tiny_set / "lq" / "img0.png"))).permute(2, 0, 1)[None] / 255.0
    hr = ExternalMethod(spec).upscale(lr.float())
    assert hr.shape == (1, 3, 128, 128)
    expected = torch.nn.functional.interpolate(lr.float(), scale_factor=4, mode="nearest")
    assert torch.allclose(hr, expected, atol=1 / 510)


def test_external_method_in_the_bench(tiny_set, tmp_path):
    script = tmp_path / "x4.py"
    script.write_text(COPY_SCRIPT)
    out = tmp_path / "bench"
    result = runner.invoke(cli, ["--set", str(tiny_set), "--methods", "bicubic", "--out", str(out),
                                 "--external", f"nearest={sys.executable} {script} {{in}} {{out}}",
                                 "--speed-sizes", "", "--no-plots"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "results.json").read_text())["quality"][tiny_set.name]["methods"]["nearest"]
    assert summary["images"] == 2 and summary["metrics"]["psnr_y"] > 10


def test_failing_external_command_is_reported_not_fatal(tiny_set, tmp_path):
    out = tmp_path / "bench"
    command = f"{sys.executable} -c \"import sys; sys.exit('no model here')\" {{in}} {{out}}"
    result = runner.invoke(cli, ["--set", str(tiny_set), "--methods", "bicubic", "--out", str(out),
                                 "--external", f"broken={command}", "--speed-sizes", "", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "no model here" in result.stderr
    methods = json.loads((out / "results.json").read_text())["quality"][tiny_set.name]["methods"]
    assert "no model here" in methods["broken"]["error"] and "psnr_y" in methods["bicubic"]["metrics"]


@pytest.mark.parametrize("text", ["noequals", "bicubic=cp {in} {out}", "x=cp {in}", "x=cp '{in} {out}"])
def test_bad_external_specs_are_refused(text):
    with pytest.raises(QusrError):
        parse_external(text)


def test_peak_rss_of_a_fresh_process_is_its_own(tmp_path):
    """A worker must not report its parent's memory: ru_maxrss survives fork+exec on Linux, VmHWM does not."""
    ballast = np.ones(32 << 20)  # 256 MB, written, so resident in this (the parent) process
    parent = current_rss_bytes()
    if parent is None:
        pytest.skip("no /proc/self/status here")
    child = subprocess.run([sys.executable, "-c", "from qusr_cli.bench.measure import peak_rss_bytes; "
                            "print(peak_rss_bytes())"], capture_output=True, text=True, check=True)
    assert int(child.stdout) < parent - (200 << 20)
    assert ballast[-1] == 1


def test_flop_counter_matches_a_hand_count_for_one_convolution():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    height, width = 16, 20
    # every output value: 3*3*3 multiply-adds, 2 FLOPs each (the bias is not counted)
    expected = 2 * (3 * 3 * 3) * 8 * height * width
    assert count_flops(lambda: conv(torch.zeros(1, 3, height, width))) == expected


def test_flops_follow_the_tiling(tiny_model):
    """Tiled, the net also runs on each tile's overlap and context margin, so it costs more than untiled."""
    loader = MethodLoader(EngineConfig(weights=str(tiny_model), device="cpu", threads=1), Path("unused"))
    aux = loader.build(plan_methods(["aux"], steps_list=[], ablations=False, candidates_list=[],
                                    ablation_steps=1, externals=[])[0])
    aux.tile, aux.overlap, aux.margin = 32, 8, 4
    whole = aux.flops(32, 32)
    # tiles of at most 32 split 64 evenly: 3 of 27 starting at 0, 19 and 37; each gets up to 4 px of
    # context on the sides the image continues
    assert lr_tiles(64, 64, 32, 8, 4)[:3] == [(31, 31), (31, 35), (31, 31)]
    shapes = lr_tiles(64, 64, 32, 8, 4)
    assert len(shapes) == 9
    covered = sum(h * w for h, w in shapes)
    assert covered > 64 * 64
    # a convolutional net's FLOPs are proportional to the pixels it runs on
    assert aux.flops(64, 64) == pytest.approx(whole * covered / (32 * 32), rel=1e-6)


@pytest.mark.parametrize(("side", "max_tile", "expected_tiles"), [(64, 192, 1), (256, 192, 2), (512, 192, 3),
                                                                 (193, 192, 2), (600, 128, 5)])
def test_engine_tiles_split_the_image_evenly(side, max_tile, expected_tiles):
    tiles = plan_tiles(side, side, max_tile, 8)
    assert all(t.height <= max_tile for t in tiles)
    starts = sorted({t.top for t in tiles})
    assert len(starts) == expected_tiles
    # evenly: the steps between tiles differ only by rounding, no tile mostly repeats its neighbour
    steps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert not steps or max(steps) - min(steps) < len(starts)


def test_plan_methods_adds_the_reference_for_ablations_and_best_of_n():
    specs = plan_methods(["bicubic", "qusr"], steps_list=[1], ablations=True, candidates_list=[1, 2, 4],
                         ablation_steps=5, externals=[])
    names = [s.name for s in specs]
    assert names == ["bicubic", "qusr-s1", "qusr-s5", "qusr-s5-w1", "qusr-s5-noprior", "qusr-s5-statcritic",
                     "qusr-s5-best2", "qusr-s5-best4"]
    by_name = {s.name: s for s in specs}
    assert not by_name["qusr-s5-w1"].noise_weighting and by_name["qusr-s5-noprior"].critic == "none"
    assert by_name["qusr-s5-best4"].candidates == 4 and by_name["qusr-s5-best4"].group == "best-of-n"
    with pytest.raises(QusrError, match="unknown method"):
        plan_methods(["esrgan"], steps_list=[], ablations=False, candidates_list=[], ablation_steps=5, externals=[])


def test_plan_methods_adds_a_detail_sweep_beside_its_reference():
    specs = plan_methods(["qusr"], steps_list=[1], ablations=False, candidates_list=[], ablation_steps=3,
                         externals=[], detail_list=[1.0, 0.0, 0.25, 1.0])
    assert [s.name for s in specs] == ["qusr-s1", "qusr-s3", "qusr-s3-d0", "qusr-s3-d0.25", "qusr-s3-d1"]
    sweep = [s for s in specs if s.group == "detail"]
    assert [(s.steps, s.detail) for s in sweep] == [(3, 0.0), (3, 0.25), (3, 1.0)]
    assert [label for label, _ in sheet_columns(specs, 3)] == ["qusr-s3", "--detail 0", "--detail 0.25",
                                                               "--detail 1"]
    # specs travel to speed workers as dicts; one without the dial keeps the fingerprint it had before
    assert all(MethodSpec.from_dict(s.to_dict()) == s for s in specs)
    assert "detail" not in specs[0].to_dict() and sweep[0].to_dict()["detail"] == 0.0


def test_bench_detail_sweep_end_to_end(tiny_set, tiny_model, tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(cli, ["--set", str(tiny_set), "--methods", "qusr", "--steps-list", "3",
                                 "--ablation-steps", "3", "--detail-list", "0,1", "--speed-sizes", "",
                                 "--no-plots", "--out", str(out), "--weights", str(tiny_model),
                                 "--threads", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    methods = json.loads((out / "results.json").read_text())["quality"][tiny_set.name]["methods"]
    assert list(methods) == ["qusr-s3", "qusr-s3-d0", "qusr-s3-d1"]
    assert methods["qusr-s3-d0"]["group"] == "detail"
    outputs = out / "outputs" / tiny_set.name
    # the dial reaches the sampler: no posterior noise and full noise give different pictures
    assert not np.array_equal(read_rgb8(outputs / "qusr-s3-d0" / "img0.png"),
                              read_rgb8(outputs / "qusr-s3-d1" / "img0.png"))


@pytest.mark.parametrize("values", ["1.5", "-0.1", "nan", "half"])
def test_detail_list_out_of_range_is_one_clear_error(values, tmp_path):
    from qusr_cli.cli.app import app

    result = runner.invoke(app, ["bench", "--methods", "qusr", "--detail-list", values, "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "--detail-list" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


def test_sets_resolve_by_name_or_path(tiny_set, tmp_path):
    shared = tmp_path / "repo" / ".." / "shared" / "data" / "eval" / "mine"
    shared.mkdir(parents=True)
    Image.fromarray(smooth_photo(16, 16, 0)).save(shared / "a.png")
    by_name = load_set("mine", bases=(tmp_path / "repo",))
    assert by_name.name == "mine" and not by_name.has_gt and [i.name for i in by_name.images] == ["a"]
    by_path = load_set(str(tiny_set), limit=1)
    assert by_path.has_gt and len(by_path.images) == 1
    with pytest.raises(QusrError, match="not found"):
        load_set("nowhere", bases=(tmp_path / "repo",))


def test_speed_inputs_are_fixed_by_the_seed(tiny_set, tmp_path):
    sources = [tiny_set / "lq" / "img0.png", tiny_set / "lq" / "img1.png"]
    first = speed_inputs(sources, [16, 40], tmp_path / "a", seed=3)
    again = speed_inputs(sources, [40, 16], tmp_path / "b", seed=3)
    for size in (16, 40):
        pixels = read_rgb8(first[size])
        assert pixels.shape == (size, size, 3)
        assert np.array_equal(pixels, read_rgb8(again[size]))


def test_synthetic_pairs_are_made_once_and_fixed_by_the_seed(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(smooth_photo(90, 70, 1)).save(photos / "a.png")
    first = synthetic_set(photos, tmp_path / "one", seed=5)
    assert first.name == "synthetic-photos-seed5" and first.root == tmp_path / "one" / first.name
    pair = first.images[0]
    gt, lr = read_rgb8(pair.gt), read_rgb8(pair.lr)
    assert first.has_gt and gt.shape == (68, 68, 3) and lr.shape == (17, 17, 3)
    # the GT is the centre crop of the photo, untouched
    assert np.array_equal(gt, smooth_photo(90, 70, 1)[11:79, 1:69])
    assert np.array_equal(read_rgb8(synthetic_set(photos, tmp_path / "two", seed=5).images[0].lr), lr)
    assert not np.array_equal(read_rgb8(synthetic_set(photos, tmp_path / "three", seed=6).images[0].lr), lr)
    stamp = pair.lr.stat().st_mtime_ns
    synthetic_set(photos, tmp_path / "one", seed=5)
    assert pair.lr.stat().st_mtime_ns == stamp


def fake_pyiqa(monkeypatch, downloaded: list[str]):
    """A stand-in pyiqa: MUSIQ's and LPIPS's weights are 'local', MANIQA would need a download."""
    import importlib.machinery
    import types

    package = types.ModuleType("pyiqa")
    package.__spec__ = importlib.machinery.ModuleSpec("pyiqa", None)
    utils = types.ModuleType("pyiqa.utils")
    download_util = types.ModuleType("pyiqa.utils.download_util")
    download_util.download_url_to_file = lambda url, *args, **kwargs: downloaded.append(url)
    utils.download_util = download_util

    def create_metric(name, device=None):
        if name == "maniqa":
            download_util.download_url_to_file("https://example.invalid/maniqa.pth")
        if name == "clipiqa":
            raise RuntimeError("needs open_clip")
        if name == "lpips":
            return lambda output, reference: (output - reference).abs().mean(dim=(1, 2, 3))
        return lambda output: output.mean(dim=(1, 2, 3)) * 100

    package.create_metric = create_metric
    for module in (package, utils, download_util):
        monkeypatch.setitem(sys.modules, module.__name__, module)


def test_extra_metrics_use_only_what_needs_no_download(monkeypatch):
    from qusr_cli.bench.measure import ExtraMetrics

    downloaded: list[str] = []
    fake_pyiqa(monkeypatch, downloaded)
    extras = ExtraMetrics(torch.device("cpu"))
    assert downloaded == []
    assert extras.names(has_gt=True) == ["musiq", "lpips"] and extras.names(has_gt=False) == ["musiq"]
    assert any(note.startswith("maniqa not computed") for note in extras.notes)
    assert "clipiqa not computed: needs open_clip" in extras.notes
    output = np.full((8, 8, 3), 51, dtype=np.uint8)
    scores = extras(output, np.zeros_like(output), ["musiq", "lpips"])
    assert scores == pytest.approx({"musiq": 20.0, "lpips": 0.2})
    # outside the metric's construction, downloads are pyiqa's business again
    sys.modules["pyiqa.utils.download_util"].download_url_to_file("u")
    assert downloaded == ["u"]


def test_synthetic_set_through_the_command(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        Image.fromarray(smooth_photo(128, 128, index)).save(photos / f"p{index}.png")
    out = tmp_path / "bench"
    result = runner.invoke(cli, ["--set", str(photos), "--synthetic", str(photos), "--methods", "bicubic",
                                 "--out", str(out), "--speed-sizes", "", "--no-plots", "--limit", "1"])
    assert result.exit_code == 0, result.output
    quality = json.loads((out / "results.json").read_text())["quality"]
    assert quality["photos"]["images"] == 1 and not quality["photos"]["has_gt"]
    synthetic = quality["synthetic-photos-seed0"]
    assert synthetic["has_gt"] and synthetic["methods"]["bicubic"]["metrics"]["psnr_y"] > 15


def test_runs_benched_apart_meet_in_one_sheet(tiny_set, tmp_path):
    """benchmarks/compare_runs.py: each column a method of some bench run, cut at the bench sheet's window."""
    runs = {"a": 0, "b": 255}
    for run, value in runs.items():
        folder = tmp_path / run / "outputs" / tiny_set.name / "aux"
        folder.mkdir(parents=True)
        for index in range(2):
            Image.fromarray(np.full((128, 128, 3), value, np.uint8)).save(folder / f"img{index}.png")
    sheet = tmp_path / "sheet.png"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_runs.py"
    done = subprocess.run([sys.executable, str(script), "--set", str(tiny_set), "--rows", "2", "--out", str(sheet),
                           f"dark={tmp_path / 'a'}/aux", f"light={tmp_path / 'b'}/aux"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pixels = read_rgb8(sheet)
    cell = 4 * 32
    assert pixels.shape[1] == 3 * cell and pixels.shape[0] > 2 * cell
    body = pixels[-cell // 2]  # a row of the last image's crops
    assert (body[cell:2 * cell] == 0).all() and (body[2 * cell:] == 255).all()
    missing = subprocess.run([sys.executable, str(script), "--set", str(tiny_set), "--out", str(sheet),
                              f"none={tmp_path / 'c'}/aux"], capture_output=True, text=True)
    assert missing.returncode != 0 and "no outputs at" in missing.stderr


def test_training_curve_benches_each_kept_snapshot(tiny_set, tmp_path):
    """benchmarks/training_curve.py: one bench point per snapshot, placed at the CPU time its header records."""
    import itertools

    from qusr_cli.train.aux import AuxTask
    from qusr_cli.train.loop import LoopConfig, train

    batch = {"lr": torch.rand(2, 3, 8, 8), "hr": torch.rand(2, 3, 32, 32)}
    run = tmp_path / "run"
    train(AuxTask(num_feat=4, num_conv=1), lambda start: itertools.repeat(batch, 4 - start),
          LoopConfig(steps=4, batch=2, warmup=1, save_every=4, keep_every=2, val_every=0, num_workers=0), run)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "training_curve.py"
    out = tmp_path / "curve"
    done = subprocess.run([sys.executable, str(script), str(run), "--niqe-set", str(tiny_set), "--psnr-set",
                           str(tiny_set), "--start-hours", "1.5", "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, "QUSR_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    points = json.loads((out / "curve.json").read_text())
    assert [p["step"] for p in points] == [2, 4] and all(p["method"] == "aux" for p in points)
    assert all(not p["estimated"] and p["cpu_hours"] >= 1.5 for p in points)
    assert points[0]["cpu_hours"] <= points[1]["cpu_hours"]
    # the point's PSNR is the bench's own score of that snapshot
    bench = json.loads((out / "step-0000004" / "bench" / "results.json").read_text())
    assert points[1]["psnr_y"] == bench["quality"][tiny_set.name]["methods"]["aux"]["metrics"]["psnr_y"]
    assert (out / "curve.md").read_text().count("\n") == 4
    last = subprocess.run([sys.executable, str(script), str(run), "--niqe-set", str(tiny_set), "--psnr-set",
                           str(tiny_set), "--points", "1", "--out", str(tmp_path / "last")],
                          capture_output=True, text=True, env={**os.environ, "QUSR_THREADS": "1"})
    assert last.returncode == 0, last.stderr
    assert [p["step"] for p in json.loads((tmp_path / "last" / "curve.json").read_text())] == [4]
    empty = subprocess.run([sys.executable, str(script), str(tmp_path), "--out", str(out)],
                           capture_output=True, text=True)
    assert empty.returncode != 0 and "no snapshots/" in empty.stderr


def test_in_distribution_scores_bicubic_and_each_net_on_degraded_crops(tiny_set, tmp_path):
    """benchmarks/in_distribution.py: one mean L1 per net, bicubic first; a net that is bicubic scores the same."""
    from qusr_cli.archs import CompactSR
    from qusr_cli.weights.checkpoint import save_checkpoint

    net = save_checkpoint(tmp_path / "g.safetensors", CompactSR(num_feat=4, num_conv=1, upsample="bicubic"),
                          role="aux")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "in_distribution.py"
    done = subprocess.run([sys.executable, str(script), str(net), "--set", str(tiny_set), "--images", "2",
                           "--seeds", "2", "--crop", "32"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line.split(maxsplit=1) for line in done.stdout.splitlines()]
    assert [name for _, name in rows] == ["bicubic", str(net)]
    bicubic, untrained = (float(value) for value, _ in rows)
    # a fresh CompactSR's last layer is zero: its output is the bicubic base, so the two must agree
    assert 0 < bicubic < 1 and untrained == pytest.approx(bicubic, abs=2e-3)


def test_teacher_gap_scores_each_student_folder_against_the_teachers_outputs(tmp_path):
    """benchmarks/teacher_gap.py: one row per matched student folder, PSNR-Y over the images both have."""
    rng = np.random.default_rng(0)
    teacher_image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for name in ("setA", "setB"):
        (tmp_path / "teacher" / name).mkdir(parents=True)
        Image.fromarray(teacher_image).save(tmp_path / "teacher" / name / "a.png")
        for step, offset in (("step-1", 8), ("step-2", 2)):
            folder = tmp_path / step / name
            folder.mkdir(parents=True)
            Image.fromarray((teacher_image.astype(int) + offset).clip(0, 255).astype(np.uint8)).save(folder / "a.png")
            Image.fromarray(teacher_image).save(folder / "only-here.png")  # no teacher output: not scored
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "teacher_gap.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "teacher" / "%s"),
                           str(tmp_path / "step-*" / "%s"), "--sets", "setA,setB"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "step-" in line]
    assert [row.split("|")[1].strip() for row in rows] == [str(tmp_path / s / "%s") for s in ("step-1", "step-2")]
    scores = [[float(cell.split()[0]) for cell in row.split("|")[2:4]] for row in rows]
    assert all(cell.endswith("(1)") for row in rows for cell in (c.strip() for c in row.split("|")[2:4]))
    assert scores[0][0] == scores[0][1] < scores[1][0]  # nearer the teacher, higher; both sets alike

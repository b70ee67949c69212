"""The benchmark: a cached quality pass over the evaluation sets, then a speed pass in fresh processes.

Layout of ``OUT``::

    outputs/<set>/<method>/<image>.png   every method's output, 8-bit PNG (the metrics read these)
    outputs/<set>/<method>/records.json  per image: seconds, metrics, and what the output depended on
    speed/inputs/lr-<size>.png           the speed inputs
    speed/<method>/lr-<size>.json        one speed measurement
    memory/inputs/lr-<W>x<H>.png         the memory pass's inputs (see bench.memory)
    results.json, report.md, *.png       this run's summary and figures

With ``reuse`` an output is made again only when it is missing or something it depended on (the
method, the model files, device, dtype, seed) changed, and its metrics only when they are missing.

The speed worker is this module run as a script: ``python -m qusr_cli.bench.runner REQUEST RESULT``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from qusr_cli.bench import report
from qusr_cli.bench.datasets import read_rgb, save_png, speed_inputs, synthetic_set, to_uint8
from qusr_cli.bench.measure import (
    ExtraMetrics,
    core_metrics,
    current_rss_bytes,
    device_peak_bytes,
    machine_info,
    now_iso,
    peak_rss_bytes,
    reset_device_peak,
    timed,
)
from qusr_cli.bench.memory import memory_pass
from qusr_cli.bench.methods import SCALE, EngineConfig, ExternalMethod, MethodLoader, MethodSpec
from qusr_cli.errors import QusrError
from qusr_cli.eval_sets import REPO_ROOT, EvalImage, EvalSet, list_images, load_set
from qusr_cli.imageio import read_rgb8

WARMUP_SIDE = 64  # the untimed first call runs on a corner crop this size: it primes kernels cheaply
REALESRGAN_FILE = "realesrgan-x4plus.safetensors"


@dataclass
class BenchConfig:
    sets: list[str]
    methods: list[MethodSpec]
    out: Path
    engine: EngineConfig = field(default_factory=EngineConfig)
    limit: int | None = None
    synthetic: list[Path] = field(default_factory=list)
    speed_sizes: list[int] = field(default_factory=list)
    speed_repeats: int = 1
    memory_sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of LR photos
    reuse: bool = True
    realesrgan_outputs: Path | None = None
    extra_metrics: bool = True
    plots: bool = True
    ablation_steps: int = 5


class Bench:
    def __init__(self, config: BenchConfig, log: Callable[[str], None] = print):
        self.config = config
        self.log = log
        self.out = config.out
        self.loader = MethodLoader(config.engine, self.out / REALESRGAN_FILE)
        self.notes: list[str] = []
        self._methods: dict[str, object] = {}
        self._extras: ExtraMetrics | None = None
        self.computed = 0   # outputs actually made in this run (the rest came from the cache)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.log(text)

    # ---- setup -----------------------------------------------------------------------------
    def eval_sets(self) -> list[EvalSet]:
        sets = [load_set(spec, self.config.limit) for spec in self.config.sets]
        sets += [synthetic_set(folder, self.out / "synthetic", seed=self.config.engine.seed, limit=self.config.limit)
                 for folder in self.config.synthetic]
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise QusrError(f"two evaluation sets share a name ({', '.join(names)}); outputs are cached by set name")
        return sets

    def _imports_realesrgan_only(self, spec: MethodSpec) -> bool:
        """Real-ESRGAN without its weights, but with a folder of its outputs made before: those can
        be scored, nothing can be computed or timed."""
        return (spec.kind == "realesrgan" and self.config.realesrgan_outputs is not None
                and not self.loader.realesrgan_path.is_file())

    def runnable(self) -> list[MethodSpec]:
        kept = []
        for spec in self.config.methods:
            reason = None if self._imports_realesrgan_only(spec) else self.loader.unavailable(spec)
            if reason:
                self.note(reason)
            else:
                kept.append(spec)
        return kept

    def method(self, spec: MethodSpec):
        if spec.name not in self._methods:
            self._methods[spec.name] = self.loader.build(spec)
        return self._methods[spec.name]

    def extras(self) -> ExtraMetrics:
        if self._extras is None:
            self._extras = ExtraMetrics(self.loader.device, enabled=self.config.extra_metrics)
            for text in self._extras.notes:
                self.note(text)
        return self._extras

    # ---- the quality pass --------------------------------------------------------------------
    def quality(self, eval_set: EvalSet, spec: MethodSpec) -> dict:
        folder = self.out / "outputs" / eval_set.name / spec.name
        records_path = folder / "records.json"
        fingerprint = self.loader.fingerprint(spec)
        stored = _read_json(records_path) if self.config.reuse else None
        if stored is None or stored.get("fingerprint") != fingerprint:
            stored = {"fingerprint": fingerprint, "images": {}}
        records: dict[str, dict] = stored["images"]

        def save() -> None:
            report.write_json(records_path, stored)

        todo = [image for image in eval_set.images if not _output_current(folder, image.name, records)]
        if todo:
            self.log(f"{eval_set.name} / {spec.name}: {len(todo)} of {len(eval_set.images)} images to upscale")
            try:
                self._make_outputs(spec, todo, folder, records, save)
            except QusrError as exc:
                self.note(f"{spec.name} on {eval_set.name} failed: {exc}")
                return {"group": spec.group, "error": str(exc)}
        for image in eval_set.images:
            if self._score(image, folder, records[image.name], eval_set.has_gt):
                save()
        return report.summarize_method(spec, [records[image.name] for image in eval_set.images])

    def _make_outputs(self, spec: MethodSpec, images: list[EvalImage], folder: Path, records: dict,
                      save: Callable[[], None]) -> None:
        if spec.kind == "external":
            self._make_external(spec, images, folder, records, save)
            return
        imported = self.config.realesrgan_outputs if spec.kind == "realesrgan" else None
        for image in images:
            target = folder / f"{image.name}.png"
            lr = read_rgb(image.lr)
            found = _imported_output(imported, image.name, lr.shape[-2:]) if imported else None
            if found is not None:
                source, pixels = found
                save_png(target, pixels)
                records[image.name] = {"seconds": None, "imported_from": str(source)}
            elif self._imports_realesrgan_only(spec):
                raise QusrError(f"{image.name} has no 4x output in {imported}, and {self.loader.realesrgan_path} "
                                "(needed to compute it) does not exist")
            else:
                method = self.method(spec)
                hr, seconds = timed(partial(method.upscale, lr), method.device)
                save_png(target, to_uint8(hr))
                records[image.name] = {"seconds": seconds}
                self.computed += 1
            records[image.name]["output"] = _file_state(target)
            save()

    def _make_external(self, spec: MethodSpec, images: list[EvalImage], folder: Path, records: dict,
                       save: Callable[[], None]) -> None:
        """One run of the outside command over a folder of all missing images; its time is shared evenly."""
        method: ExternalMethod = self.method(spec)
        with tempfile.TemporaryDirectory(prefix="qusr-bench-") as work:
            in_dir, out_dir = Path(work) / "in", Path(work) / "out"
            shapes = {}
            for image in images:
                pixels = to_uint8(read_rgb(image.lr))
                shapes[image.name] = pixels.shape[:2]
                save_png(in_dir / f"{image.name}.png", pixels)
            _, seconds = timed(lambda: method.run_folder(in_dir, out_dir), method.device)
            for image in images:
                found = method.find_output(out_dir, image.name)
                if found is None:
                    raise QusrError(f"wrote no output for {image.name} into {{out}}")
                pixels = read_rgb8(found)
                expected = tuple(SCALE * side for side in shapes[image.name])
                if pixels.shape[:2] != expected:
                    raise QusrError(f"{found.name} is {pixels.shape[1]}x{pixels.shape[0]}, "
                                    f"not 4x the input ({expected[1]}x{expected[0]})")
                target = folder / f"{image.name}.png"
                save_png(target, pixels)
                records[image.name] = {"seconds": seconds / len(images), "batch_of": len(images),
                                       "output": _file_state(target)}
                self.computed += 1
            save()

    def _score(self, image: EvalImage, folder: Path, record: dict, has_gt: bool) -> bool:
        """Fill in the metrics the record lacks; whether there were any."""
        scores = record.setdefault("metrics", {})
        extras = self.extras()
        wanted_extras = [n for n in extras.names(has_gt) if n not in scores]
        core_missing = "niqe" not in scores or (has_gt and "psnr_y" not in scores)
        if not core_missing and not wanted_extras:
            return False
        output = read_rgb8(folder / f"{image.name}.png")
        gt = read_rgb8(image.gt) if has_gt else None
        if gt is not None and gt.shape != output.shape:
            raise QusrError(f"{image.gt}: ground truth is {gt.shape[1]}x{gt.shape[0]}, the output "
                            f"{output.shape[1]}x{output.shape[0]}")
        if core_missing:
            scores.update(core_metrics(output, gt))
            if scores["niqe"] is None:
                self.note(f"{image.lr.name}: output smaller than 96x96, no NIQE")
        scores.update(extras(output, gt, wanted_extras))
        return True

    # ---- the speed pass ----------------------------------------------------------------------
    def speed(self, specs: list[MethodSpec], sources: list[Path]) -> list[dict]:
        if not self.config.speed_sizes:
            return []
        inputs = speed_inputs(sources, self.config.speed_sizes, self.out / "speed" / "inputs",
                              seed=self.config.engine.seed)
        rows = []
        for spec in specs:
            if spec.group != "method":
                continue
            if self._imports_realesrgan_only(spec):
                self.note(f"speed: realesrgan not timed: {self.loader.realesrgan_path} does not exist")
                continue
            fingerprint = {**self.loader.fingerprint(spec), "repeats": self.config.speed_repeats,
                           "threads": self.config.engine.threads}
            for size, path in inputs.items():
                result_path = self.out / "speed" / spec.name / f"lr-{size}.json"
                stored = _read_json(result_path) if self.config.reuse else None
                if stored is None or stored.get("fingerprint") != fingerprint:
                    self.log(f"speed: {spec.name} at {size}x{size} (fresh process)")
                    stored = self._speed_worker(spec, path, fingerprint, result_path)
                rows.append(report.speed_row(spec.name, size, stored))
        return rows

    def _speed_worker(self, spec: MethodSpec, lr_path: Path, fingerprint: dict, result_path: Path) -> dict:
        request = {"spec": spec.to_dict(), "engine": self.config.engine.to_dict(), "input": str(lr_path),
                   "repeats": self.config.speed_repeats, "realesrgan_default": str(self.loader.realesrgan_path)}
        with tempfile.TemporaryDirectory(prefix="qusr-bench-") as work:
            request_path, answer_path = Path(work) / "request.json", Path(work) / "result.json"
            request_path.write_text(json.dumps(request))
            # the worker must import this same qusr_cli, installed or not
            path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
            done = subprocess.run([sys.executable, "-m", "qusr_cli.bench.runner", str(request_path),
                                   str(answer_path)], capture_output=True, text=True, check=False,
                                  env={**os.environ, "PYTHONPATH": path})
            if done.returncode != 0 or not answer_path.exists():
                lines = done.stderr.strip().splitlines()
                self.note(f"speed: {spec.name} at {lr_path.stem} failed: {lines[-1] if lines else done.returncode}")
                return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
            result = json.loads(answer_path.read_text())
        result["fingerprint"] = fingerprint
        report.write_json(result_path, result)
        return result

    # ---- the whole run -------------------------------------------------------------------------
    def run(self) -> dict:
        if self.config.plots:
            from qusr_cli.bench.plots import require_matplotlib

            require_matplotlib()
        eval_sets = self.eval_sets()
        specs = self.runnable()
        quality = {}
        for eval_set in eval_sets:
            per_method = {spec.name: self.quality(eval_set, spec) for spec in specs}
            quality[eval_set.name] = {"root": str(eval_set.root), "images": len(eval_set.images),
                                      "has_gt": eval_set.has_gt, "methods": per_method}
        sources = [image.lr for eval_set in eval_sets for image in eval_set.images]
        results = {
            "machine": machine_info(self.loader.device, self.loader.dtype, _threads(self.config.engine), REPO_ROOT),
            "engine": self.config.engine.to_dict(),
            "model": self.loader.model_identity() if any(s.kind in ("aux", "qusr") for s in specs) else None,
            "config": {"sets": [s.name for s in eval_sets], "limit": self.config.limit,
                       "methods": [s.to_dict() for s in specs], "speed_sizes": self.config.speed_sizes,
                       "speed_repeats": self.config.speed_repeats, "reuse": self.config.reuse,
                       "ablation_steps": self.config.ablation_steps},
            "quality": quality,
            "best_of_n": report.best_of_n(quality, specs, self.config.ablation_steps),
            "speed": self.speed(specs, sources),
            "memory": memory_pass(self.config.engine, self.config.memory_sizes, sources[0], self.out, log=self.log)
            if self.config.memory_sizes and sources else [],
            "computed_outputs": self.computed,
            "notes": self.notes,
        }
        results["plots"] = self._plots(results, eval_sets, specs)
        report.write_json(self.out / "results.json", results)
        (self.out / "report.md").write_text(report.markdown(results))
        return results

    def _plots(self, results: dict, eval_sets: list[EvalSet], specs: list[MethodSpec]) -> list[str]:
        """Crop sheets always (Pillow); the charts only with ``plots`` (matplotlib)."""
        from qusr_cli.bench import plots

        paths = [plots.crops_sheet(eval_set, specs, self.out, self.config.ablation_steps) for eval_set in eval_sets]
        if self.config.plots:
            paths += [plots.perception_distortion(results, eval_set.name, self.out) for eval_set in eval_sets]
            paths.append(plots.time_vs_size(results, self.out))
        return [str(path) for path in paths if path is not None]


def _threads(engine: EngineConfig) -> int:
    import torch

    return torch.get_num_threads() if engine.threads is None else engine.threads


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _file_state(path: Path) -> dict:
    stat = path.stat()
    return {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


def _output_current(folder: Path, name: str, records: dict) -> bool:
    """The cached output exists and is the very file its record describes (not replaced or half-made)."""
    path = folder / f"{name}.png"
    record = records.get(name)
    return record is not None and path.exists() and record.get("output") == _file_state(path)


def _imported_output(folder: Path, name: str, lr_size) -> tuple[Path, np.ndarray] | None:
    """``folder/<name>.<ext>`` when it exists and is exactly 4x the LR image; anything else is not its output."""
    for path in list_images(folder) if folder.is_dir() else []:
        if path.stem == name:
            pixels = read_rgb8(path)
            if pixels.shape[:2] == (SCALE * lr_size[0], SCALE * lr_size[1]):
                return path, pixels
    return None


def speed_worker(request_path: Path, result_path: Path) -> None:
    """Load one method, warm it up, time it on one input; write time, memory and FLOPs as JSON."""
    request = json.loads(request_path.read_text())
    spec = MethodSpec.from_dict(request["spec"])
    loader = MethodLoader(EngineConfig(**request["engine"]), Path(request["realesrgan_default"]))
    method = loader.build(spec)
    lr = read_rgb(Path(request["input"]))
    height, width = lr.shape[-2:]
    method.upscale(lr[..., :WARMUP_SIDE, :WARMUP_SIDE])
    rss_ready = current_rss_bytes()
    reset_device_peak(method.device)
    times = [timed(lambda: method.upscale(lr), method.device)[1] for _ in range(request["repeats"])]
    result = {
        "lr_size": [height, width],
        "seconds": statistics.median(times),
        "times": times,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_ready_bytes": rss_ready,
        "device_peak_bytes": device_peak_bytes(method.device),
        "flops": method.flops(height, width),
        "device": str(method.device),
        "measured_at": now_iso(),
    }
    result_path.write_text(json.dumps(result))


if __name__ == "__main__":
    speed_worker(Path(sys.argv[1]), Path(sys.argv[2]))

"""What the benchmark measures: image quality, wall time, peak memory (process RSS, CUDA), FLOPs, the machine.

Peak RSS is the high-water mark of the whole process (VmHWM on Linux), which only grows; the
runner therefore measures every method and size in a fresh process, so each figure is what a
user's own process would reach: interpreter, torch, weights and the run itself.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from qusr_cli.archs import build_architecture
from qusr_cli.bench.datasets import from_uint8
from qusr_cli.errors import first_line
from qusr_cli.metrics import niqe_score, psnr_y, ssim_y
from qusr_cli.metrics.niqe import BLOCK as NIQE_MIN_SIDE
from qusr_cli.provenance import git_commit
from qusr_cli.tiling import Tile, run_tiled

# pyiqa metric name -> whether it needs the ground truth (LPIPS) or scores the output alone
EXTRA_METRICS = {"musiq": False, "clipiqa": False, "maniqa": False, "lpips": True}


def core_metrics(output: np.ndarray, gt: np.ndarray | None) -> dict[str, float | None]:
    """PSNR and SSIM on Y (without a border crop) where there is ground truth, NIQE on grey everywhere."""
    scores: dict[str, float | None] = {}
    if gt is not None:
        scores["psnr_y"] = psnr_y(output, gt)
        scores["ssim_y"] = ssim_y(output, gt)
    scores["niqe"] = niqe_score(output, channel="gray") if min(output.shape[:2]) >= NIQE_MIN_SIDE else None
    return scores


class _DownloadBlocked(RuntimeError):
    pass


@contextmanager
def _no_downloads(download_util) -> Iterator[None]:
    """pyiqa fetches missing weights on first use; within this block a fetch fails instead."""
    def refuse(*_args, **_kwargs):
        raise _DownloadBlocked("weights are not in the local cache")

    names = [n for n in ("download_url_to_file", "hf_hub_download") if hasattr(download_util, n)]
    saved = {n: getattr(download_util, n) for n in names}
    for name in names:
        setattr(download_util, name, refuse)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(download_util, name, value)


class ExtraMetrics:
    """MUSIQ, CLIPIQA, MANIQA and LPIPS through pyiqa, each only if pyiqa is installed and its weights are local.

    pyiqa is never a dependency (its licence is non-commercial); whatever cannot run is listed in ``notes``.
    """

    def __init__(self, device: torch.device, enabled: bool = True):
        self.device = device
        self.metrics: dict[str, object] = {}
        self.notes: list[str] = []
        if not enabled:
            return
        if importlib.util.find_spec("pyiqa") is None:
            self.notes.append("pyiqa is not installed: MUSIQ, CLIPIQA, MANIQA and LPIPS were not computed")
            return
        import pyiqa
        from pyiqa.utils import download_util

        for name in EXTRA_METRICS:
            try:
                with _no_downloads(download_util):
                    self.metrics[name] = pyiqa.create_metric(name, device=device)
            except Exception as exc:  # noqa: BLE001 - any failure to build a metric offline means: skip it
                self.notes.append(f"{name} not computed: {first_line(exc)}")

    def names(self, has_gt: bool) -> list[str]:
        return [n for n in self.metrics if has_gt or not EXTRA_METRICS[n]]

    @torch.inference_mode()
    def __call__(self, output: np.ndarray, gt: np.ndarray | None, names: list[str]) -> dict[str, float]:
        image = from_uint8(output).to(self.device)
        scores = {}
        for name in names:
            metric = self.metrics[name]
            value = metric(image, from_uint8(gt).to(self.device)) if EXTRA_METRICS[name] else metric(image)
            scores[name] = float(value.mean())
        return scores


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """``fn()`` and its wall time; queued GPU work is waited for on both sides, or the clock lies."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def _proc_status(field: str) -> int | None:
    """A memory field of /proc/self/status in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far.

    On Linux this is VmHWM, not ``ru_maxrss``: the kernel carries ``ru_maxrss`` over an exec from
    the forked copy of the parent, so a fresh worker would report at least its parent's size.
    """
    peak = _proc_status("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def current_rss_bytes() -> int | None:
    """The resident size now (VmRSS), not the peak; None off Linux."""
    return _proc_status("VmRSS")


def reset_device_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def device_peak_bytes(device: torch.device) -> int | None:
    """Peak memory torch allocated on the GPU since the last reset; None where there is no such counter."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return None


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of everything ``fn`` runs that torch has a formula for (convolutions, matmuls, attention).

    A multiply-add counts as 2 FLOPs; biases, activations and normalisations are not counted,
    which for convolutional nets is a small fraction.
    """
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def meta_twin(module: nn.Module) -> nn.Module:
    """The same architecture on the meta device: FLOPs are counted from shapes, no memory or compute spent."""
    with torch.device("meta"):
        return build_architecture(module.arch_name, module.config).eval()


def lr_tiles(height: int, width: int, tile: int, overlap: int, margin: int) -> list[tuple[int, int]]:
    """The (height, width) of every LR tile ``run_tiled`` hands its tile function, context margin included.

    Asked of ``run_tiled`` itself (with a tile function that only records), so the count follows
    the real tiling exactly, overlaps and margins and all.
    """
    shapes = []

    def record(lr_tile: torch.Tensor, spec: Tile) -> torch.Tensor:
        shapes.append((spec.height, spec.width))
        return torch.zeros(1, 1, spec.height * 4, spec.width * 4)

    run_tiled(torch.zeros(1, 1, height, width), record, tile, overlap, 4, margin=margin)
    return shapes


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def machine_info(device: torch.device, dtype: torch.dtype, threads: int, repo: Path) -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {
        "cpu": cpu_model(),
        "cores": cores,
        "memory_gb": _total_memory_gb(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": threads,
        "date": now_iso(),
        "git_commit": git_commit(repo),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _total_memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30), 1)
    except (ValueError, OSError, AttributeError):
        return None

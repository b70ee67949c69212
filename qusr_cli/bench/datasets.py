"""The bench's images: evaluation sets (``qusr_cli.eval_sets``), synthetic pairs, speed inputs, 8-bit I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qusr_cli.errors import InputError
from qusr_cli.eval_sets import EvalImage, EvalSet, list_images
from qusr_cli.imageio import atomic_write, read_image


def read_rgb(path: Path) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1]; alpha is dropped, as every compared method sees colour only."""
    return read_image(path).rgb


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded as a PNG writer would."""
    return (image[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def from_uint8(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: Image.fromarray(pixels).save(handle, format="PNG"))


def synthetic_set(hr_dir: Path, work_dir: Path, *, seed: int, limit: int | None = None,
                  crop: int = 256) -> EvalSet:
    """LR/GT pairs made from clean photos by the Real-ESRGAN degradation pipeline at a fixed seed.

    Each photo is centre-cropped to a square of at most ``crop`` pixels (a multiple of 4), and
    image k is degraded with seed ``seed + k``, so the same folder always gives the same pairs.
    The set is named after the folder and the seed and lives in ``work_dir/<name>``; pairs already
    there are kept, being a pure function of the photo and the seed.
    """
    from qusr_cli.degradations import DegradationConfig, degrade

    if not hr_dir.is_dir():
        raise InputError(f"--synthetic {hr_dir}: not a folder")
    sources = list_images(hr_dir)[:limit] if limit else list_images(hr_dir)
    if not sources:
        raise InputError(f"--synthetic {hr_dir}: no images")
    config = DegradationConfig()
    name = f"synthetic-{hr_dir.resolve().name}-seed{seed}"
    out_dir = work_dir / name
    images = []
    for index, source in enumerate(sources):
        lr_path, gt_path = out_dir / "lq" / f"{source.stem}.png", out_dir / "gt" / f"{source.stem}.png"
        if not (lr_path.exists() and gt_path.exists()):
            hr = read_rgb(source)[0]
            side = min(crop, *hr.shape[-2:]) // config.scale * config.scale
            if side < config.scale * 8:
                raise InputError(f"{source}: too small for a synthetic pair ({hr.shape[-1]}x{hr.shape[-2]})")
            top, left = (hr.shape[-2] - side) // 2, (hr.shape[-1] - side) // 2
            hr = hr[:, top:top + side, left:left + side]
            lr, _params = degrade(hr, config, seed + index)
            save_png(gt_path, to_uint8(hr[None]))
            save_png(lr_path, to_uint8(lr[None]))
        images.append(EvalImage(source.stem, lr_path, gt_path))
    return EvalSet(name, out_dir, tuple(images))


def speed_inputs(sources: list[Path], sizes: list[int], out_dir: Path, seed: int = 0) -> dict[int, Path]:
    """One square LR input per size: a random crop of a random source photo, resized to size x size.

    Crops cover half to all of the photo's short side, so inputs look like photos at every size
    instead of noise (which convolutions do not care about but the critic and NIQE would); photos
    at least ``size`` on their short side are preferred, so inputs are shrunk rather than blown up.
    The files are written once, so the speed workers and later runs see the same pixels.
    """
    if not sources:
        raise InputError("speed inputs need at least one source photo")
    short_sides = []
    for source in sources:
        with Image.open(source) as image:
            short_sides.append(min(image.size))
    rng = np.random.default_rng(seed)
    inputs = {}
    for size in sorted(set(sizes)):
        path = out_dir / f"lr-{size}.png"
        large = [p for p, side in zip(sources, short_sides, strict=True) if side >= size] or sources
        source = large[int(rng.integers(len(large)))]
        fraction = float(rng.uniform(0.5, 1.0))
        corner = rng.uniform(size=2)
        if not path.exists():
            pixels = to_uint8(read_rgb(source))
            height, width = pixels.shape[:2]
            side = max(1, round(min(height, width) * fraction))
            top, left = int(corner[0] * (height - side)), int(corner[1] * (width - side))
            square = Image.fromarray(pixels[top:top + side, left:left + side])
            save_png(path, np.asarray(square.resize((size, size), Image.Resampling.LANCZOS)))
        inputs[size] = path
    return inputs

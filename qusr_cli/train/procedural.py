"""Procedural training images: dead leaves with texture, generated from a seed, never stored.

A dead-leaves image is made by dropping opaque shapes on top of each other; with radii drawn from
a power law r^(−3) between ``r_min`` and ``r_max`` the result has the scale-invariant statistics of
natural images and, unlike a photo, sharp occlusion edges at every scale and every orientation.
Each leaf here carries its own texture (a grating or smoothed noise over a colour), so a net
trained on them sees edges and texture together. 46 photos are few; this source is unlimited.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from qusr_cli.degradations import LIGHT, DegradationConfig, degrade


def leaf_radii(rng: np.random.Generator, count: int, r_min: float, r_max: float) -> np.ndarray:
    """r with density ∝ r^(−3) on [r_min, r_max], by inverting its CDF: r = (r_min^−2 − u·(r_min^−2 − r_max^−2))^(−½)."""
    u = rng.uniform(size=count)
    return (r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5


def _texture(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """A pattern in [−1, 1] at the given pixel coordinates: an oriented grating or smoothed noise."""
    if rng.uniform() < 0.5:
        angle, period = rng.uniform(0, np.pi), rng.uniform(2.5, 24.0)
        return np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
    cells = int(rng.integers(2, 12))
    coarse = torch.from_numpy(rng.uniform(-1, 1, size=(1, 1, cells, cells)).astype(np.float32))
    smooth = F.interpolate(coarse, size=ys.shape, mode="bicubic", align_corners=False)[0, 0]
    return smooth.clamp(-1, 1).numpy()


def dead_leaves(seed: int, size: int, leaves: int | None = None, r_min: float = 4.0,
                r_max: float | None = None) -> torch.Tensor:
    """A (3, size, size) float image in [0, 1]: ``leaves`` textured discs and boxes, later ones on top.

    By default 1500 leaves per 512² pixels (at least 64), which covers a 512² image about three times
    over with r_min = 4, r_max = size / 3.
    """
    rng = np.random.default_rng(seed)
    leaves = leaves or max(64, round(1500 * (size / 512) ** 2))
    r_max = r_max or size / 3
    image = np.zeros((3, size, size), dtype=np.float32)
    image[:] = rng.uniform(0, 1)
    for radius in leaf_radii(rng, leaves, r_min, r_max):
        cy, cx = rng.uniform(-radius, size + radius, size=2)
        # Only the leaf's bounding box is touched: most leaves are small.
        top, bottom = max(0, int(cy - radius)), min(size, int(cy + radius) + 1)
        left, right = max(0, int(cx - radius)), min(size, int(cx + radius) + 1)
        if top >= bottom or left >= right:
            continue
        ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)
        if rng.uniform() < 0.7:
            inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2
        else:
            angle = rng.uniform(0, np.pi)
            u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
            v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
            inside = (np.abs(u) <= radius / 1.42) & (np.abs(v) <= radius / 1.42 * rng.uniform(0.3, 1.0))
        if not inside.any():
            continue
        # Photos' colours are mostly muted: a grey level plus a partial, random tint.
        grey = rng.uniform(0, 1)
        colour = np.clip(grey + rng.uniform(0, 0.6) * (rng.uniform(0, 1, size=(3, 1)) - grey), 0, 1)
        amplitude = rng.uniform(0.0, 0.35) * (rng.uniform() < 0.8)
        pattern = _texture(rng, ys, xs)[inside] if amplitude else 0.0
        window = image[:, top:bottom, left:right]
        window[:, inside] = np.clip(colour * (1 + amplitude * pattern), 0, 1)
    return torch.from_numpy(image)


class DeadLeavesCrops(Dataset):
    """``dataset[i]`` → {"hr", "lr", "params"} like :class:`~qusr_cli.train.dataset.DegradedCrops`, from dead leaves.

    Images are drawn at twice the crop size and shrunk with antialiasing, so edges are sharp but not
    aliased staircases.
    """

    def __init__(self, crop: int = 256, seed: int = 0, config: DegradationConfig | None = None,
                 light_share: float = 0.0):
        self.config = config or DegradationConfig()
        self.light_config = DegradationConfig(**{**LIGHT.as_dict(), "scale": self.config.scale})
        self.crop, self.seed, self.light_share = crop, seed, light_share

    def __len__(self) -> int:
        return 2 ** 62

    def describe(self) -> dict:
        return {"kind": "dead leaves", "crop": self.crop, "seed": self.seed, "light_share": self.light_share,
                "degradation": self.config.as_dict()}

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index, 0xDEAD])
        big = dead_leaves(int(rng.integers(2 ** 62)), 2 * self.crop)
        hr = F.interpolate(big[None], size=(self.crop, self.crop), mode="bicubic", antialias=True)[0].clamp(0, 1)
        hr = (hr * 255).round() / 255
        light = self.light_share > 0 and rng.uniform() < self.light_share
        lr, params = degrade(hr, self.light_config if light else self.config, int(rng.integers(2 ** 62)))
        return {"hr": hr.contiguous(), "lr": lr.contiguous(), "params": {**params, "light": float(light)}}


class MixedSource(Dataset):
    """Sample i comes from ``procedural`` with probability ``share`` (decided by (seed, i)), else from ``photos``.

    Every sample carries ``teacher`` and ``has_teacher``: photo samples from a teacher cache keep
    theirs; the others get their HR crop and has_teacher = 0, so the teacher term skips them.
    """

    def __init__(self, photos: Dataset, procedural: Dataset | None, share: float, seed: int = 0):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the procedural share must lie in [0, 1], not {share}")
        self.photos, self.procedural, self.share, self.seed = photos, procedural, share, seed

    def __len__(self) -> int:
        return 2 ** 62

    def describe(self) -> dict:
        return {**self.photos.describe(), "procedural_share": self.share,
                "procedural": self.procedural.describe() if self.procedural is not None else None}

    def __getitem__(self, index: int) -> dict:
        use_procedural = (self.procedural is not None and self.share > 0
                          and np.random.default_rng([self.seed, index, 0x1EAF]).uniform() < self.share)
        sample = self.procedural[index] if use_procedural else self.photos[index]
        has_teacher = "teacher" in sample
        return {**sample, "teacher": sample["teacher"] if has_teacher else sample["hr"],
                "has_teacher": torch.tensor(float(has_teacher))}

"""Teacher targets: a restoration net's output for each degraded training crop, built once into shards.

Running Real-ESRGAN x4plus takes about a second per 64x64 LR crop on one CPU thread, far longer than a
training step, so its outputs are computed once, in the background, and training reads them back.

The cache folder holds ``manifest.json`` (what the samples are: the crop dataset's description, the
teacher's sha256, the shard size) and ``shard-NNNNN.safetensors`` files. Shard k holds samples
k·S … (k+1)·S − 1 of the deterministic :class:`~qusr_cli.train.dataset.DegradedCrops` stream as uint8
``hr``, ``lr`` and ``teacher`` tensors plus one float32 ``param.<name>`` vector per degradation
parameter. A shard is written under a temporary name and renamed, so a killed build resumes at the
first missing shard and never reads half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from qusr_cli.imageio import IMAGE_SUFFIXES
from qusr_cli.train.dataset import augment, fixed_batch

MANIFEST = "manifest.json"
FORMAT = 1


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.safetensors"


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255.0).round().to(torch.uint8).contiguous()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_disjoint(train_files: list[Path], eval_root: Path | None) -> dict[Path, str]:
    """Each training photo's sha256; ValueError if any is byte-identical to an image under ``eval_root``.

    Teacher targets must never be made from evaluation photos: a model would then learn the
    teacher's answer on the very photos it is scored on. The digests go on into the manifest.
    """
    digests = {path: file_digest(path) for path in train_files}
    if eval_root is None or not eval_root.is_dir():
        return digests
    evaluation = {file_digest(p): p for p in eval_root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    clashes = [f"{p.name} = {evaluation[d].relative_to(eval_root)}" for p, d in digests.items() if d in evaluation]
    if clashes:
        raise ValueError(f"training photos that are evaluation images: {', '.join(clashes)}")
    return digests


@dataclass
class CacheProgress:
    shard: int
    shards: int
    samples_per_s: float


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, lr: torch.Tensor, batch: int,
                    autocast_dtype: torch.dtype | None) -> torch.Tensor:
    """The teacher's 4x output of each LR crop, run ``batch`` crops at a time, in [0, 1]."""
    device = next(teacher.parameters()).device
    outputs = []
    for start in range(0, len(lr), batch):
        chunk = lr[start:start + batch].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs.append(teacher(chunk).float().clamp(0, 1).cpu())
    return torch.cat(outputs)


def build_teacher_cache(dataset: Dataset, teacher: nn.Module, folder: str | Path, *, count: int,
                        description: dict, shard_size: int = 64, batch: int = 8,
                        autocast_dtype: torch.dtype | None = None, workers: int = 0,
                        progress: Callable[[CacheProgress], None] | None = None) -> int:
    """Write shards until ``count`` samples (rounded up to whole shards) are cached; return the shard count.

    ``dataset`` is a :class:`~qusr_cli.train.dataset.DegradedCrops`; ``description`` adds what its own
    ``describe()`` does not say (the photos' digests, the teacher). A folder built with other settings
    is refused rather than mixed. ``workers`` processes degrade the next shards' crops while the teacher
    runs on this one (0: all in this process). Workers run one thread each, so their shards are those of
    a one-thread build; with more threads the recorded noise σ's can differ in their last bits.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # through JSON, so tuples compare equal to the lists a manifest on disk holds
    manifest = json.loads(json.dumps({"format": FORMAT, "shard_size": shard_size, "crop": dataset.crop,
                                      "seed": dataset.seed, **dataset.describe(), **description}))
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        existing = json.loads(manifest_path.read_text())
        if existing != manifest:
            changed = sorted(k for k in set(existing) | set(manifest) if existing.get(k) != manifest.get(k))
            raise ValueError(f"{folder} holds a cache built with other settings ({', '.join(changed)}); "
                             "use another folder")
    else:
        manifest_path.write_text(json.dumps(manifest, indent=2))
    shards = -(-count // shard_size)
    missing = [index for index in range(shards) if not shard_path(folder, index).exists()]
    teacher.eval()
    # batch_size=None: each item is already one shard's worth, degraded inside a worker
    inputs = DataLoader(_ShardInputs(dataset, shard_size, missing), batch_size=None, num_workers=workers,
                        prefetch_factor=2 if workers else None)
    started = time.perf_counter()
    for index, crops in zip(missing, inputs):
        restored = teacher_outputs(teacher, crops["lr"], batch, autocast_dtype)
        tensors = {"hr": _to_uint8(crops["hr"]), "lr": _to_uint8(crops["lr"]), "teacher": _to_uint8(restored),
                   **{f"param.{name}": values for name, values in crops["params"].items()}}
        path = shard_path(folder, index)
        temporary = path.with_name(path.name + ".tmp")
        save_file(tensors, str(temporary))
        os.replace(temporary, path)
        if progress is not None:
            progress(CacheProgress(index + 1, shards, shard_size / (time.perf_counter() - started)))
        started = time.perf_counter()
    return shards


class _ShardInputs(Dataset):
    """Item k: the stacked HR and LR crops and degradation parameters of shard ``shards[k]``."""

    def __init__(self, dataset: Dataset, shard_size: int, shards: list[int]):
        self.dataset, self.shard_size, self.shards = dataset, shard_size, shards

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, k: int) -> dict:
        first = self.shards[k] * self.shard_size
        crops = fixed_batch(self.dataset, range(first, first + self.shard_size))
        # collation makes float64 vectors of the parameters; shards have always stored float32
        return {**crops, "params": {name: values.float() for name, values in crops["params"].items()}}


class TeacherShards(Dataset):
    """``dataset[i]`` → {"hr", "lr", "teacher": float in [0, 1], "params": {name: float}} from a cache folder.

    Indices past the cached samples wrap around; each pass over the cache uses the next of the 8
    dihedral transforms (the same for hr, lr and teacher), so a long run sees every crop 8 ways.
    With ``crop`` smaller than the cached crops, each sample is a sub-crop (at a position drawn from
    the index, on the LR pixel grid) of the same HR, LR and teacher crop.
    """

    def __init__(self, folder: str | Path, crop: int | None = None):
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.folder} is not a teacher cache (no {MANIFEST})")
        self.manifest = json.loads(manifest_path.read_text())
        self.shard_size = int(self.manifest["shard_size"])
        self.shards = 0
        while shard_path(self.folder, self.shards).exists():
            self.shards += 1
        if not self.shards:
            raise FileNotFoundError(f"{self.folder} holds no finished shard yet")
        self.size = self.shards * self.shard_size
        self.cached_crop = int(self.manifest["crop"])
        self.scale = int(self.manifest["degradation"]["scale"])
        self.crop = crop or self.cached_crop
        if self.crop > self.cached_crop or self.crop % self.scale:
            raise ValueError(f"crop {self.crop} must be a multiple of {self.scale} no larger than the cached "
                             f"{self.cached_crop}")
        self._handles: dict[int, object] = {}

    def describe(self) -> dict:
        """The header's ``TrainingData`` fields besides data and crop, from the manifest."""
        crops = ("images", "hr_scales", "min_detail", "degradation", "light_share", "light_degradation")
        own = ("format", "shard_size", "seed", "crop", "teacher", "data")
        return {**{key: self.manifest[key] for key in crops if key in self.manifest},
                "teacher_cache": {**{key: self.manifest[key] for key in own if key in self.manifest},
                                  "samples": self.size}}

    def __len__(self) -> int:
        return 2 ** 62

    def _handle(self, shard: int):
        # safetensors maps the file, so a row read touches only that row's bytes
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(shard_path(self.folder, shard)), framework="pt")
        return self._handles[shard]

    def __getstate__(self) -> dict:
        # DataLoader workers open their own handles
        return {**self.__dict__, "_handles": {}}

    def __getitem__(self, index: int) -> dict:
        position = index % self.size
        code = (index // self.size) % 8
        handle = self._handle(position // self.shard_size)
        row = position % self.shard_size
        lr_crop, lr_cached = self.crop // self.scale, self.cached_crop // self.scale
        top, left = np.random.default_rng([index, 0xC0]).integers(lr_cached - lr_crop + 1, size=2)
        windows = {"lr": (top, left, lr_crop), "hr": (top * self.scale, left * self.scale, self.crop),
                   "teacher": (top * self.scale, left * self.scale, self.crop)}
        images = {}
        for key, (y, x, side) in windows.items():
            pixels = handle.get_slice(key)[row:row + 1, :, y:y + side, x:x + side][0]
            images[key] = augment(pixels, code).float() / 255.0
        params = {key[len("param."):]: float(handle.get_slice(key)[row:row + 1][0])
                  for key in handle.keys() if key.startswith("param.")}
        return {**{k: v.contiguous() for k, v in images.items()}, "params": params}


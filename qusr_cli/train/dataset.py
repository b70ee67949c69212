"""Random HR crops with their on-the-fly degraded LR versions.

Sample ``i`` is a pure function of (seed, i): which photo, where the crop lies, the flips and the whole
degradation. A run that resumes at step s therefore just asks for samples from s·batch on, and the
DataLoader workers need no random state of their own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from qusr_cli.degradations import LIGHT, DegradationConfig, degrade
from qusr_cli.eval_sets import list_images as image_files
from qusr_cli.imageio import IMAGE_SUFFIXES, read_rgb8
from qusr_cli.prior.builtin_critic import luma
from qusr_cli.train.distributed import rank_and_world, shard_indices

DETAIL_TRIES = 8


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"training data folder {folder} does not exist")
    files = image_files(folder)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def load_rgb(path: str | Path) -> torch.Tensor:
    """(3, H, W) uint8 tensor."""
    return torch.from_numpy(read_rgb8(path).copy()).permute(2, 0, 1)


def augment(crop: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 dihedral transforms: bit 0 flips horizontally, bits 1-2 rotate by 90°·k."""
    if code & 1:
        crop = crop.flip(-1)
    return torch.rot90(crop, k=code >> 1, dims=(-2, -1))


def downscaled(image: torch.Tensor, factor: float) -> torch.Tensor:
    """A (3, H, W) uint8 image shrunk by ``factor`` ≤ 1 with antialiasing (still a clean HR image)."""
    if factor == 1.0:
        return image
    size = [max(1, round(side * factor)) for side in image.shape[-2:]]
    small = torch.nn.functional.interpolate(image[None].float(), size=size, mode="bicubic", antialias=True)
    return small[0].round().clamp(0, 255).to(torch.uint8)


def detail(crop: torch.Tensor) -> float:
    """Mean absolute luma difference between neighbouring pixels (8-bit levels) of a (3, h, w) uint8 crop."""
    plane = luma(crop)
    return float(((plane[:, 1:] - plane[:, :-1]).abs().mean() + (plane[1:] - plane[:-1]).abs().mean()) / 2)


class DegradedCrops(Dataset):
    """``dataset[i]`` → {"hr": (3, crop, crop), "lr": (3, crop/s, crop/s), "params": {name: float}}.

    ``hr_scales``: each photo is also kept shrunk by these factors (levels smaller than the crop are
    dropped) and a crop comes from a random level, so crops hold whole scenes as well as close-ups,
    as the LR photos people upscale do; (1.0,) keeps the photos as they are.

    ``min_detail``: a crop whose :func:`detail` is below it is drawn again (at most ``DETAIL_TRIES``
    times, keeping the most detailed), so flat sky and bokeh do not teach the nets that blurry
    inputs should stay blurry; 0 draws once.

    ``light_share``: the fraction of samples degraded with the milder ``LIGHT`` preset instead of
    ``config``; their params carry ``light`` = 1.
    """

    def __init__(self, folder: str | Path, crop: int = 256, seed: int = 0,
                 config: DegradationConfig | None = None, images: slice | list[int] = slice(None),
                 hr_scales: tuple[float, ...] = (1.0,), min_detail: float = 0.0, light_share: float = 0.0):
        self.config = config or DegradationConfig()
        if not 0.0 <= light_share <= 1.0:
            raise ValueError(f"the light share must lie in [0, 1], not {light_share}")
        self.light_share = light_share
        self.light_config = replace(LIGHT, scale=self.config.scale)
        if crop % self.config.scale:
            raise ValueError(f"crop {crop} must be a multiple of the scale {self.config.scale}")
        files = list_images(folder)
        files = files[images] if isinstance(images, slice) else [files[i] for i in images]
        if not files:
            raise ValueError(f"the image selection {images} of {folder} is empty")
        self.images = [load_rgb(p) for p in files]
        small = [p.name for p, im in zip(files, self.images) if min(im.shape[-2:]) < crop]
        if small:
            raise ValueError(f"images smaller than the {crop}px crop: {', '.join(small)}")
        if not hr_scales or any(not 0.0 < f <= 1.0 for f in hr_scales):
            raise ValueError(f"HR scales must lie in (0, 1], not {hr_scales}")
        self.hr_scales = tuple(hr_scales)
        self.levels = [[level for level in (downscaled(im, f) for f in self.hr_scales)
                        if min(level.shape[-2:]) >= crop] for im in self.images]
        unused = [p.name for p, levels in zip(files, self.levels) if not levels]
        if unused:
            raise ValueError(f"no HR scale of {', '.join(unused)} holds a {crop}px crop")
        self.crop = crop
        self.seed = seed
        self.min_detail = min_detail

    def __len__(self) -> int:
        # Samples are generated, not stored; the index only seeds them.
        return 2 ** 62

    def describe(self) -> dict:
        """What the samples are: the fields of the header's ``TrainingData`` besides data and crop."""
        return {"images": len(self.images), "hr_scales": list(self.hr_scales), "min_detail": self.min_detail,
                "degradation": self.config.as_dict(), "light_share": self.light_share,
                "light_degradation": self.light_config.as_dict()}

    def draw_crop(self, rng: np.random.Generator) -> torch.Tensor:
        levels = self.levels[int(rng.integers(len(self.images)))]
        # With one scale no draw is made, so runs from before ``hr_scales`` existed draw the same samples.
        image = levels[int(rng.integers(len(levels)))] if len(self.hr_scales) > 1 else levels[0]
        height, width = image.shape[-2:]
        top = int(rng.integers(height - self.crop + 1))
        left = int(rng.integers(width - self.crop + 1))
        return image[:, top:top + self.crop, left:left + self.crop]

    def hr_crop(self, rng: np.random.Generator) -> torch.Tensor:
        crop = self.draw_crop(rng)
        if self.min_detail > 0:
            # Every earlier try is below the floor, so the most detailed one is the first to reach it.
            tries = [(detail(crop), crop)]
            while tries[-1][0] < self.min_detail and len(tries) < DETAIL_TRIES:
                crop = self.draw_crop(rng)
                tries.append((detail(crop), crop))
            crop = max(tries, key=lambda scored: scored[0])[1]
        return augment(crop, int(rng.integers(8))).float() / 255.0

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        hr = self.hr_crop(rng)
        # With no light share no draw is made, so earlier runs draw the same samples.
        light = self.light_share > 0 and rng.uniform() < self.light_share
        lr, params = degrade(hr, self.light_config if light else self.config, int(rng.integers(2 ** 62)))
        return {"hr": hr.contiguous(), "lr": lr.contiguous(), "params": {**params, "light": float(light)}}


class StepSamples(Sampler[int]):
    """The indices of steps start … end−1, batch by batch: resuming at step s starts at s's samples.

    Under torchrun each rank takes its own share of every step (see ``distributed.shard_indices``);
    in one process that is samples s·batch … (s+1)·batch − 1.
    """

    def __init__(self, start_step: int, end_step: int, batch: int, rank: int = 0, world: int = 1):
        self.start_step, self.end_step, self.batch = start_step, end_step, batch
        self.rank, self.world = rank, world

    def __iter__(self):
        for step in range(self.start_step, self.end_step):
            yield from shard_indices(step, self.batch, self.rank, self.world)

    def __len__(self) -> int:
        return (self.end_step - self.start_step) * self.batch


def make_loader(dataset: Dataset, batch: int, start_step: int, steps: int, num_workers: int) -> DataLoader:
    """This process's batches for steps start_step … steps−1 (its share of each under torchrun).

    The loader gets a generator of its own: an iterator draws its workers' base seed from it, and
    drawing from the global RNG instead would shift every later draw of a resumed run by one (the
    samples themselves are seeded by their index and need no seed from the loader).
    """
    return DataLoader(dataset, batch_size=batch, sampler=StepSamples(start_step, steps, batch, *rank_and_world()),
                      num_workers=num_workers, persistent_workers=False,
                      prefetch_factor=4 if num_workers else None, generator=torch.Generator().manual_seed(0))


def fixed_batch(dataset: Dataset, indices: range | list[int]) -> dict:
    """A batch of chosen samples, collated like the loader's (for held-out and overfit sets)."""
    return default_collate([dataset[i] for i in indices])

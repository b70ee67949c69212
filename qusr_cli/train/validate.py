"""Validation on paired LR/GT folders (imagenet-val32): PSNR and SSIM on Y, a sharpness ratio, NIQE.

Metrics follow BasicSR's ``test_y_channel`` convention: BT.601 luma of 8-bit-rounded images,
``scale`` pixels cropped from each border.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qusr_cli import metrics
from qusr_cli.aux_sr import auxiliary_estimate, bicubic_upsample
from qusr_cli.errors import InputError
from qusr_cli.eval_sets import DEFAULT_VAL_SET, load_set
from qusr_cli.metrics.fidelity import as_rgb255, rgb_to_y
from qusr_cli.metrics.niqe import BLOCK as NIQE_MIN_SIDE
from qusr_cli.noise import NoiseField
from qusr_cli.stages import denoise, stage_maps
from qusr_cli.tiling import pad_to_multiple
from qusr_cli.train.dataset import load_rgb
from qusr_cli.weights.header import DiffusionSettings



def _quantised(image: torch.Tensor) -> torch.Tensor:
    """Rounded to 8 bits, so the scores are those the saved PNGs would get."""
    return (image.clamp(0, 1) * 255.0).round() / 255.0


def psnr_y(output: torch.Tensor, target: torch.Tensor, border: int = 4) -> float:
    """qusr_cli.metrics.psnr_y of each 8-bit image pair, averaged over the batch."""
    return statistics.fmean(metrics.psnr_y(_quantised(o), _quantised(t), crop_border=border)
                            for o, t in zip(output, target, strict=True))


def ssim_y(output: torch.Tensor, target: torch.Tensor, border: int = 4) -> float:
    """qusr_cli.metrics.ssim_y of each 8-bit image pair, averaged over the batch."""
    return statistics.fmean(metrics.ssim_y(_quantised(o), _quantised(t), crop_border=border)
                            for o, t in zip(output, target, strict=True))


def gradient_energy(image: torch.Tensor) -> float:
    """E = mean over pixels of √(∂xY² + ∂yY²), forward differences of the BT.601 luma of one (3, H, W) image."""
    y = rgb_to_y(as_rgb255(image.clamp(0, 1)))
    dx = y[:, 1:] - y[:, :-1]
    dy = y[1:, :] - y[:-1, :]
    return float(np.sqrt(dx[:-1, :] ** 2 + dy[:, :-1] ** 2).mean())


def sharpness_ratio(output: torch.Tensor, target: torch.Tensor) -> float:
    """E(output) / E(GT), averaged over images: 1 means as much edge energy as the ground truth."""
    return statistics.fmean(gradient_energy(o) / max(gradient_energy(t), 1e-8)
                            for o, t in zip(output, target, strict=True))


@dataclass
class PairedSet:
    lr: torch.Tensor  # (N, 3, h, w) in [0, 1]
    gt: torch.Tensor  # (N, 3, 4h, 4w)
    names: list[str]


def load_pairs(spec: str | Path = DEFAULT_VAL_SET, limit: int | None = None) -> PairedSet:
    """A paired set (``qusr_cli.eval_sets.load_set``: a folder or a set name) as tensors; all images of one size,
    as imagenet-val32. InputError when it is not found or has no ground truth."""
    found = load_set(str(spec), limit)
    if not found.has_gt:
        raise InputError(f"{found.root}: no lq/ and gt/ pairs to validate on")

    def stack(paths: list[Path]) -> torch.Tensor:
        return torch.stack([load_rgb(p) for p in paths]).float() / 255.0

    return PairedSet(stack([i.lr for i in found.images]), stack([i.gt for i in found.images]),
                     [i.lr.name for i in found.images])


def load_centre_crops(spec: str | Path, limit: int = 8, side: int = 64) -> torch.Tensor:
    """(N, 3, side, side) in [0, 1]: the centre of each of the first ``limit`` LR images of a set.

    Training's no-reference check: real photos (RealSet65) have no ground truth and many sizes, and
    scoring whole photos at every validation would cost minutes on a CPU; fixed centre crops make
    each validation one comparable point of a NIQE-against-training-time curve.
    """
    found = load_set(str(spec), limit)
    crops = []
    for image in found.images:
        pixels = load_rgb(image.lr)
        height, width = pixels.shape[-2:]
        if min(height, width) < side:
            continue
        top, left = (height - side) // 2, (width - side) // 2
        crops.append(pixels[:, top:top + side, left:left + side])
    if not crops:
        raise InputError(f"{found.root}: no image of at least {side}x{side} pixels")
    return torch.stack(crops).float() / 255.0


def mean_niqe(output: torch.Tensor, border: int = 4) -> float:
    """qusr_cli.metrics.niqe_score (lower is better) of each 8-bit image, averaged over the batch."""
    return statistics.fmean(metrics.niqe_score(_quantised(o)[None], crop_border=border) for o in output)


def niqe_fits(images: torch.Tensor, border: int = 4) -> bool:
    """Whether images of this size still hold one NIQE block after ``border`` px go from each side."""
    return min(images.shape[-2:]) - 2 * border >= NIQE_MIN_SIDE


def scores(output: torch.Tensor, gt: torch.Tensor, border: int = 4, niqe: bool = False) -> dict[str, float]:
    """PSNR-Y, SSIM-Y and sharpness; with ``niqe`` also the mean NIQE (see :func:`niqe_fits`)."""
    return {"psnr_y": psnr_y(output, gt, border), "ssim_y": ssim_y(output, gt, border),
            "sharpness": sharpness_ratio(output, gt), **({"niqe": mean_niqe(output, border)} if niqe else {})}


@torch.no_grad()
def upscale_qusr(denoiser: nn.Module, aux_net: nn.Module, lr: torch.Tensor, settings: DiffusionSettings,
                 steps: int = 5, seed: int = 0, context: torch.Tensor | None = None,
                 context_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One image as the engine samples one tile: ``stages.stage_maps`` with the header's b and ψmax, then
    ``stages.denoise`` with the seed's ``NoiseField`` (no tiling and no colour fix, so the scores are the
    denoiser's own)."""
    scheduler = settings.scheduler()
    scheduler.set_timesteps(steps)
    height, width = lr.shape[-2:]
    padded = pad_to_multiple(lr, denoiser.descriptor.size_multiple)
    maps = stage_maps(aux_net, padded, settings.floor, settings.psi_max)
    sample = denoise(denoiser, scheduler, maps, [NoiseField(seed)], context=context, context_mask=context_mask)
    scale = aux_net.descriptor.scale
    return sample[..., :height * scale, :width * scale].clamp(0, 1)


def evaluate(method: str, pairs: PairedSet, aux_net: nn.Module | None = None, denoiser: nn.Module | None = None,
             steps: int = 5, seed: int = 0, contexts: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
             chunk: int = 8, settings: DiffusionSettings | None = None, niqe: bool = False) -> dict[str, float]:
    """Scores of one method ("bicubic", "aux" or "qusr") on the pairs; ``contexts`` gives per-image priors.

    ``settings`` must be those the denoiser was trained with (its header's, ``DiffusionSettings.from_info``).
    """
    outputs = []
    for start in range(0, len(pairs.lr), chunk):
        lr = pairs.lr[start:start + chunk]
        if method == "bicubic":
            outputs.append(bicubic_upsample(lr, pairs.gt.shape[-1] // pairs.lr.shape[-1]).clamp(0, 1))
        elif method == "aux":
            with torch.no_grad():
                outputs.append(auxiliary_estimate(aux_net, lr))
        elif method == "qusr":
            for offset in range(len(lr)):
                prior = contexts[start + offset] if contexts else None
                context, mask = prior if prior is not None else (None, None)
                outputs.append(upscale_qusr(denoiser, aux_net, lr[offset:offset + 1], settings or DiffusionSettings(),
                                            steps, seed + start + offset, context, mask))
        else:
            raise ValueError(f"unknown method {method!r}")
    output = torch.cat(outputs)
    if not math.isfinite(float(output.sum())):
        raise FloatingPointError(f"{method} produced non-finite pixels")
    return scores(output, pairs.gt, niqe=niqe)

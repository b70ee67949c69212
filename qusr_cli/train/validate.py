"""Validation on paired LR/GT folders (imagenet-val32): PSNR and SSIM on Y, and a sharpness ratio.

Metrics follow BasicSR's ``test_y_channel`` convention: BT.601 luma of 8-bit-rounded images,
``scale`` pixels cropped from each border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from qusr_cli.aux_sr import auxiliary_estimate, bicubic_upsample
from qusr_cli.diffusion.sampler import sample_residual_shift
from qusr_cli.diffusion.schedule import ResShiftScheduler
from qusr_cli.train.dataset import IMAGE_SUFFIXES, load_rgb
from qusr_cli.uncertainty import noise_weight, uncertainty

DEFAULT_VAL_DIR = Path("/work/shared/data/eval/imagenet-val32")


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """BT.601 luma in [0, 255]: Y = 16 + 65.481·R + 128.553·G + 24.966·B (R, G, B in [0, 1])."""
    r, g, b = image[:, 0], image[:, 1], image[:, 2]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def _y(image: torch.Tensor, border: int) -> torch.Tensor:
    quantised = (image.clamp(0, 1) * 255.0).round() / 255.0
    y = rgb_to_y(quantised.double())
    return y[:, border:y.shape[-2] - border, border:y.shape[-1] - border] if border else y


def psnr_y(output: torch.Tensor, target: torch.Tensor, border: int = 4) -> float:
    """PSNR = 10·log10(255² / MSE) on Y, averaged over the batch."""
    mse = ((_y(output, border) - _y(target, border)) ** 2).mean(dim=(-2, -1))
    return float((10.0 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))).mean())


def _gaussian_filter(image: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Valid-region Gaussian filtering, as two 1-D passes (the 2-D window is separable)."""
    axis = torch.arange(size, dtype=image.dtype) - size // 2
    g = torch.exp(-axis ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return F.conv2d(F.conv2d(image, g.view(1, 1, 1, size)), g.view(1, 1, size, 1))


def ssim_y(output: torch.Tensor, target: torch.Tensor, border: int = 4) -> float:
    """SSIM = mean of (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)) on Y.

    11×11 Gaussian window (σ 1.5), valid positions only, C1 = (0.01·255)², C2 = (0.03·255)².
    """
    x = _y(output, border)[:, None]
    y = _y(target, border)[:, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _gaussian_filter(x), _gaussian_filter(y)
    var_x = _gaussian_filter(x * x) - mu_x ** 2
    var_y = _gaussian_filter(y * y) - mu_y ** 2
    cov = _gaussian_filter(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean(dim=(1, 2, 3)).mean())


def gradient_energy(image: torch.Tensor) -> torch.Tensor:
    """E = mean over pixels of √(∂xY² + ∂yY²), forward differences of the luma, per image."""
    y = rgb_to_y(image.clamp(0, 1).double())
    dx = y[:, :, 1:] - y[:, :, :-1]
    dy = y[:, 1:, :] - y[:, :-1, :]
    return torch.sqrt(dx[:, :-1, :] ** 2 + dy[:, :, :-1] ** 2).mean(dim=(-2, -1))


def sharpness_ratio(output: torch.Tensor, target: torch.Tensor) -> float:
    """E(output) / E(GT), averaged over images: 1 means as much edge energy as the ground truth."""
    return float((gradient_energy(output) / gradient_energy(target).clamp_min(1e-8)).mean())


@dataclass
class PairedSet:
    lr: torch.Tensor  # (N, 3, h, w) in [0, 1]
    gt: torch.Tensor  # (N, 3, 4h, 4w)
    names: list[str]


def load_pairs(folder: str | Path = DEFAULT_VAL_DIR, limit: int | None = None) -> PairedSet:
    """``folder/lq/*`` and ``folder/gt/*`` with matching names (all of one size, as imagenet-val32)."""
    folder = Path(folder)
    names = sorted(p.name for p in (folder / "lq").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not names:
        raise FileNotFoundError(f"no LR images in {folder / 'lq'}")
    lr = torch.stack([load_rgb(folder / "lq" / n) for n in names]).float() / 255.0
    gt = torch.stack([load_rgb(folder / "gt" / n) for n in names]).float() / 255.0
    return PairedSet(lr, gt, names)


def scores(output: torch.Tensor, gt: torch.Tensor, border: int = 4) -> dict[str, float]:
    return {"psnr_y": psnr_y(output, gt, border), "ssim_y": ssim_y(output, gt, border),
            "sharpness": sharpness_ratio(output, gt)}


@torch.no_grad()
def upscale_qusr(denoiser: nn.Module, aux_net: nn.Module, lr: torch.Tensor, steps: int = 5, seed: int = 0,
                 context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
                 scheduler: ResShiftScheduler | None = None) -> torch.Tensor:
    """The residual-shift chain as the engine runs it: up, g, w from ψ, then ``steps`` denoiser calls.

    Noise comes from one seeded generator, so the figures repeat exactly.
    """
    scheduler = scheduler or ResShiftScheduler()
    scheduler.set_timesteps(steps)
    up = bicubic_upsample(lr, 4)
    aux = auxiliary_estimate(aux_net, lr)
    weight = noise_weight(uncertainty(aux, up))
    generator = torch.Generator().manual_seed(seed)
    draws = [torch.randn(up.shape, generator=generator) for _ in range(steps + 1)]
    return sample_residual_shift(denoiser, scheduler, up, aux, weight, lambda k: draws[k].to(up.device),
                                 context, context_mask).clamp(0, 1)


def evaluate(method: str, pairs: PairedSet, aux_net: nn.Module | None = None, denoiser: nn.Module | None = None,
             steps: int = 5, seed: int = 0, contexts: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
             chunk: int = 8) -> dict[str, float]:
    """Scores of one method ("bicubic", "aux" or "qusr") on the pairs; ``contexts`` gives per-image priors."""
    outputs = []
    for start in range(0, len(pairs.lr), chunk):
        lr = pairs.lr[start:start + chunk]
        if method == "bicubic":
            outputs.append(bicubic_upsample(lr, 4).clamp(0, 1))
        elif method == "aux":
            with torch.no_grad():
                outputs.append(auxiliary_estimate(aux_net, lr))
        elif method == "qusr":
            for offset in range(len(lr)):
                prior = contexts[start + offset] if contexts else None
                context, mask = prior if prior is not None else (None, None)
                outputs.append(upscale_qusr(denoiser, aux_net, lr[offset:offset + 1], steps, seed + start + offset,
                                            context, mask))
        else:
            raise ValueError(f"unknown method {method!r}")
    output = torch.cat(outputs)
    if not math.isfinite(float(output.sum())):
        raise FloatingPointError(f"{method} produced non-finite pixels")
    return scores(output, pairs.gt)

"""Tiny randomly initialised checkpoints, so engine tests exercise real code paths in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qusr_cli.archs import CompactSR, DenoiserUNet
from qusr_cli.weights.checkpoint import save_checkpoint

TINY_UNET = {"base_width": 8, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_heads": 2,
             "context_dim": 384}


def randomize_zero_inits(model: torch.nn.Module, seed: int, std: float = 0.02) -> None:
    """Zero-initialised output layers would make a fresh denoiser return g(y) exactly; perturb them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1 and not param.abs().sum():
                param.copy_(torch.randn(param.shape, generator=gen) * std)


def make_tiny_model(folder: Path, seed: int = 0, placeholder: bool = True) -> dict[str, Path]:
    """Write aux.safetensors and denoiser.safetensors into ``folder``; returns role -> path."""
    torch.manual_seed(seed)
    aux = CompactSR(num_feat=8, num_conv=2)
    denoiser = DenoiserUNet(**TINY_UNET)
    randomize_zero_inits(aux, seed)
    randomize_zero_inits(denoiser, seed + 1)
    info = {"placeholder": placeholder, "note": "random weights made by tests/helpers.py"}
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "aux": save_checkpoint(folder / "aux.safetensors", aux, role="aux", info=info),
        "denoiser": save_checkpoint(folder / "denoiser.safetensors", denoiser, role="denoiser", info=info),
    }


class NearestUpscaler:
    """Stands in for ``Upscaler`` where a test is about files, not pixels: nearest-neighbour 4x,
    instantly. ``fail_on`` maps an input width to the exception its upscale raises."""

    scale = 4

    def __init__(self, fail_on: dict[int, BaseException] | None = None):
        self.fail_on = fail_on or {}
        self.calls = 0

    def upscale_streamed(self, lr: torch.Tensor, options, consume, progress=None):
        """As ``Upscaler.upscale_streamed``: the output goes to ``consume`` in bands (here two)."""
        result = self.upscale(lr, options, progress)
        consume(iter(result.image.split(max(1, result.image.shape[2] // 2), dim=2)))
        return result

    def upscale(self, lr: torch.Tensor, options=None, progress=None):
        from qusr_cli.upscaler import Prior, UpscaleResult

        self.calls += 1
        if lr.shape[-1] in self.fail_on:
            raise self.fail_on[lr.shape[-1]]
        image = torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")
        return UpscaleResult(image=image, prior=Prior(None, None, None, None), tile=0, seed=0)


def random_photos(folder: Path, count: int, size: int, seed: int = 0) -> Path:
    """``folder`` filled with ``count`` noise 'photos' of size x size (training-data stand-ins)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder

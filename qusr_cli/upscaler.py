"""The Python API: ``Upscaler`` runs the five stages on a tensor. The CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from qusr_cli.aux_sr import auxiliary_estimate, bicubic_upsample
from qusr_cli.bundle import ModelBundle
from qusr_cli.color_fix import apply_color_fix
from qusr_cli.devices import free_memory_bytes, is_out_of_memory, release_freed_cpu_memory
from qusr_cli.errors import QusrError
from qusr_cli.diffusion.sampler import sample_residual_shift
from qusr_cli.noise import NoiseField
from qusr_cli.prior.critic import CriticResult
from qusr_cli.prior.report import compose_prior_text
from qusr_cli.tiling import Tile, blend_bands, pad_to_multiple, run_tiled
from qusr_cli.uncertainty import noise_weight, uncertainty

log = logging.getLogger("qusr")

SCALE = 4
MIN_TILE = 32
# Peak memory of one denoiser pass per LR pixel on the default model in fp32, measured on the CPU
# (VmHWM growth: 4.1 KB at 128², 2.9 KB at 256², 2.2 KB at 512²; SDPA attention does not grow
# quadratically there), plus ~1 KB of sampler state (x_t, noise, up, g, w at HR size).
BYTES_PER_LR_PIXEL = 6_000
# The denoiser trains on 64² LR crops; much longer attention sequences than that move it away from
# what it learned, so automatic tiles stay at most this big even when memory would allow more.
MAX_AUTO_TILE = 256
CPU_TILE_BUDGET = 1 << 30  # the CPU target is < 2 GB peak at any image size


@dataclass(frozen=True)
class UpscaleOptions:
    steps: int = 5
    seed: int = 0
    tile: int | None = None
    tile_overlap: int = 16
    tile_margin: int = 8
    color_fix: str = "wavelet"
    prompt: str | None = None
    prompt_mode: str = "extend"
    candidates: int = 1            # best of N: N seeds (seed, seed+1, …), the NIQE-best one is kept
    noise_weighting: bool = True   # False: w = 1 everywhere (the ablation without UPSR's weighting)


@dataclass
class Prior:
    critic: CriticResult | None
    text: str | None
    tokens: torch.Tensor | None
    mask: torch.Tensor | None


@dataclass
class UpscaleResult:
    image: torch.Tensor | None   # (1,3,4H,4W) in [0,1] on the CPU: the chosen candidate (None: streamed)
    prior: Prior
    tile: int
    seed: int                    # the chosen candidate's seed
    candidate_scores: list[float] = field(default_factory=list)  # NIQE per candidate (lower is better)


@dataclass
class Explanation:
    up: torch.Tensor
    aux: torch.Tensor
    psi: torch.Tensor
    weight: torch.Tensor
    prior: Prior


class Upscaler:
    def __init__(self, bundle: ModelBundle, *, device: torch.device, dtype: torch.dtype,
                 critic=None, text_encoder=None):
        self.bundle = bundle.to(device)
        self.device = device
        self.dtype = dtype
        self.critic = critic
        self.text_encoder = text_encoder
        self._oom_reported = False
        if device.type == "cpu":
            # channels_last lets oneDNN pick its blocked convolution kernels on the CPU
            self.bundle.denoiser.to(memory_format=torch.channels_last)
            self.bundle.aux.to(memory_format=torch.channels_last)

    # ---- stage 3 -------------------------------------------------------------------------
    def prior(self, lr: torch.Tensor, prompt: str | None = None, prompt_mode: str = "extend") -> Prior:
        critic_result = self.critic.assess(lr) if self.critic is not None else None
        text = compose_prior_text(critic_result.critique if critic_result else None, prompt, prompt_mode)
        tokens = mask = None
        if text and self.text_encoder is not None:
            tokens, mask = self.text_encoder.encode(text)
            tokens, mask = tokens.to(self.device, torch.float32), mask.to(self.device)
        return Prior(critic_result, text, tokens, mask)

    # ---- stages 1, 2, 4 on one tile ---------------------------------------------------------
    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def _stage_maps(self, lr_tile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = lr_tile.to(self.device, torch.float32)
        up = bicubic_upsample(x, SCALE)
        with self._autocast():
            aux = auxiliary_estimate(self.bundle.aux, x).float()
        psi = uncertainty(aux, up)
        weight = noise_weight(psi, self.bundle.settings.floor, self.bundle.settings.psi_max)
        return up, aux, psi, weight

    @torch.inference_mode()
    def _upscale_tile(self, lr_tile: torch.Tensor, tile: Tile, options: UpscaleOptions, prior: Prior,
                      fields: list[NoiseField]) -> torch.Tensor:
        """All candidates of one tile as one batch (stages 1–2 computed once); (1, 3·N, h, w) out."""
        up, aux, _psi, weight = self._stage_maps(lr_tile)
        if not options.noise_weighting:
            weight = torch.ones_like(weight)
        height, width = up.shape[-2:]
        count = len(fields)

        def noise_for(draw: int) -> torch.Tensor:
            windows = [f.window(draw, tile.top * SCALE, tile.left * SCALE, height, width) for f in fields]
            return torch.cat(windows).to(self.device)

        scheduler = self.bundle.settings.scheduler()
        scheduler.set_timesteps(options.steps)
        batch = [t.expand(count, -1, -1, -1) for t in (up, aux, weight)]
        with self._autocast():
            sample = sample_residual_shift(self.bundle.denoiser, scheduler, *batch, noise_for,
                                           prior.tokens, prior.mask).float()
        sample = apply_color_fix(options.color_fix, sample, batch[1]).clamp(0, 1).cpu()
        if self.device.type == "cpu":
            release_freed_cpu_memory()
        return sample.reshape(1, count * 3, *sample.shape[-2:])

    # ---- the whole image ------------------------------------------------------------------
    def auto_tile(self, candidates: int = 1) -> int:
        """Largest LR tile whose working set (all candidates) fits a quarter of free memory, ≤ 1 GB on the CPU."""
        budget = free_memory_bytes(self.device) // 4
        if self.device.type == "cpu":
            budget = min(budget, CPU_TILE_BUDGET)
        side = int(math.sqrt(budget / (BYTES_PER_LR_PIXEL * candidates)))
        return max(MIN_TILE, min(MAX_AUTO_TILE, side // 16 * 16))

    def upscale(self, lr: torch.Tensor, options: UpscaleOptions = UpscaleOptions(),
                progress: Callable[[int, int], None] | None = None) -> UpscaleResult:
        """4x-upscale ``lr`` (1,3,H,W) in [0,1]; halves the tile and retries if the device runs out of memory."""
        self._check(lr, options)
        prior = self.prior(lr, options.prompt, options.prompt_mode)

        def whole(tile: int) -> UpscaleResult:
            stacked = torch.cat(list(self._bands(lr, options, prior, tile, progress)), dim=2)
            return self._choose(stacked.split(3, dim=1), options, prior, tile)

        return self._with_tile_retries(options, whole)

    def upscale_streamed(self, lr: torch.Tensor, options: UpscaleOptions,
                         consume: Callable[[Iterator[torch.Tensor]], None],
                         progress: Callable[[int, int], None] | None = None) -> UpscaleResult:
        """As :meth:`upscale`, but the 4x output goes to ``consume`` in bands of rows, top to bottom.

        Memory holds one row of tiles, never the whole output. ``consume`` must start afresh when
        called again: out of memory, it is called once more with a smaller tile. One candidate only
        (choosing among several needs them whole); the result's ``image`` is None.
        """
        self._check(lr, options)
        if options.candidates != 1:
            raise ValueError("a streamed upscale makes one candidate; use upscale() for several")
        prior = self.prior(lr, options.prompt, options.prompt_mode)

        def streamed(tile: int) -> UpscaleResult:
            consume(self._bands(lr, options, prior, tile, progress))
            return UpscaleResult(image=None, prior=prior, tile=tile, seed=options.seed)

        return self._with_tile_retries(options, streamed)

    @staticmethod
    def _check(lr: torch.Tensor, options: UpscaleOptions) -> None:
        if not 1 <= options.steps <= 50:
            raise ValueError(f"steps must be between 1 and 50, not {options.steps}")
        if options.candidates < 1:
            raise ValueError(f"candidates must be at least 1, not {options.candidates}")
        if options.candidates > 1:
            from qusr_cli.metrics.niqe import BLOCK  # as niqe_score below: loaded only when candidates are scored

            if min(lr.shape[-2:]) * SCALE < BLOCK:
                raise QusrError(f"--candidates needs an output of at least {BLOCK}x{BLOCK} pixels "
                                "to score (NIQE's block size)")

    def _bands(self, lr: torch.Tensor, options: UpscaleOptions, prior: Prior, tile: int,
               progress: Callable[[int, int], None] | None) -> Iterator[torch.Tensor]:
        """Bands of rows of the (1, 3·N, 4H, 4W) output of all N candidates, top to bottom."""
        fields = [NoiseField(options.seed + k) for k in range(options.candidates)]
        multiple = self.bundle.denoiser.downsample_factor
        rows_left, width = (side * SCALE for side in lr.shape[-2:])
        bands = blend_bands(pad_to_multiple(lr, multiple),
                            lambda t, spec: self._upscale_tile(t, spec, options, prior, fields),
                            tile, min(options.tile_overlap, tile // 4), SCALE, progress,
                            margin=options.tile_margin, multiple=multiple)
        for band in bands:
            band = band[:, :, :rows_left, :width]  # the padding lies below and right of the image
            rows_left -= band.shape[2]
            if band.shape[2]:
                yield band

    def _with_tile_retries(self, options: UpscaleOptions, run: Callable[[int], UpscaleResult]) -> UpscaleResult:
        tile = options.tile or self.auto_tile(options.candidates)
        while True:
            try:
                return run(tile)
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc) or tile <= MIN_TILE:
                    raise
                tile = max(MIN_TILE, tile // 2)
                if not self._oom_reported:
                    log.warning("out of device memory: tile size halved to %d (use --tile to set it)", tile)
                    self._oom_reported = True
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    @staticmethod
    def _choose(candidates: tuple[torch.Tensor, ...], options: UpscaleOptions, prior: Prior,
                tile: int) -> UpscaleResult:
        """Best of N by NIQE (no reference needed; lower is more natural)."""
        if len(candidates) == 1:
            return UpscaleResult(image=candidates[0], prior=prior, tile=tile, seed=options.seed)
        from qusr_cli.metrics import niqe_score

        scores = [niqe_score(candidate) for candidate in candidates]
        best = min(range(len(scores)), key=scores.__getitem__)
        return UpscaleResult(image=candidates[best], prior=prior, tile=tile, seed=options.seed + best,
                             candidate_scores=scores)

    def explain(self, lr: torch.Tensor, options: UpscaleOptions = UpscaleOptions(),
                prior: Prior | None = None) -> Explanation:
        """Stages 1–3 only: up(y), g(y), ψ, w and the prior (reused when given), for people to look at."""
        prior = prior or self.prior(lr, options.prompt, options.prompt_mode)
        tile = options.tile or self.auto_tile()
        overlap = min(options.tile_overlap, tile // 4)

        def maps(lr_tile: torch.Tensor, _spec: Tile) -> torch.Tensor:
            return torch.cat([m.cpu() for m in self._stage_maps(lr_tile)], 1)

        stacked = run_tiled(lr, maps, tile, overlap, SCALE, margin=options.tile_margin)
        up, aux, psi, weight = stacked.split(3, dim=1)
        return Explanation(up=up, aux=aux.clamp(0, 1), psi=psi, weight=weight, prior=prior)


def resize_output(image: torch.Tensor, lr_size: tuple[int, int], scale: float) -> torch.Tensor:
    """Final resize for ``--scale`` other than 4: antialiased bicubic from the 4x result."""
    if scale == SCALE:
        return image
    height, width = (max(1, round(side * scale)) for side in lr_size)
    return F.interpolate(image, size=(height, width), mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)

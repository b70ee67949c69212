"""The Python API: ``Upscaler`` runs the five stages on a tensor. The CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from qusr_cli.bundle import ModelBundle
from qusr_cli.color_fix import apply_color_fix
from qusr_cli.devices import free_memory_bytes, is_out_of_memory, release_freed_cpu_memory
from qusr_cli.errors import QusrError
from qusr_cli.noise import NoiseField
from qusr_cli.options import SELECTORS, UpscaleOptions
from qusr_cli.prior.critic import CriticResult
from qusr_cli.prior.report import compose_prior_text
from qusr_cli.stages import StageMaps, denoise, stage_maps
from qusr_cli.tiling import Tile, blend_bands, pad_to_multiple, plan_tiles, run_tiled

log = logging.getLogger("qusr")

MIN_TILE = 32
# The sampler's own state per LR pixel besides the denoiser's working memory: x_t, noise, up, g, w at HR size.
SAMPLER_BYTES_PER_LR_PIXEL = 1_000
# What a net whose descriptor states no working memory is budgeted: the default denoiser's figure.
UNMEASURED_BYTES_PER_LR_PIXEL = 6_000
# The denoiser trains on 64² LR crops; much longer attention sequences than that move it away from
# what it learned, so automatic tiles stay at most this big even when memory would allow more.
MAX_AUTO_TILE = 256
CPU_TILE_BUDGET = 1 << 30  # the CPU target is < 2 GB peak at any image size


@dataclass
class Prior:
    critic: CriticResult | None
    text: str | None
    tokens: torch.Tensor | None
    mask: torch.Tensor | None


@dataclass
class UpscaleResult:
    image: torch.Tensor | None   # (1,3,sH,sW) in [0,1] on the CPU: the chosen candidate (None: streamed)
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
        if dtype not in bundle.descriptor.dtypes:
            raise QusrError(f"the denoiser of {bundle.name} does not run in {dtype}")
        self.bundle = bundle.to(device)
        self.device = device
        self.dtype = dtype
        self.critic = critic
        self.text_encoder = text_encoder
        self._oom_reported = False
        if device.type == "cpu":
            # channels_last lets oneDNN pick its blocked convolution kernels on the CPU
            for net in filter(None, (self.bundle.denoiser, self.bundle.aux)):
                net.to(memory_format=torch.channels_last)

    @property
    def plain_sr(self) -> bool:
        """A model with only an SR net: its output is g(y), with no diffusion and no prior."""
        return self.bundle.denoiser is None

    @property
    def bytes_per_lr_pixel(self) -> int:
        """Peak working memory per LR pixel of one candidate: g's, or the denoiser's plus the sampler's."""
        def stated(net) -> int:
            return net.descriptor.bytes_per_lr_pixel or UNMEASURED_BYTES_PER_LR_PIXEL

        aux = stated(self.bundle.aux)
        if self.plain_sr:
            return aux
        return max(aux, stated(self.bundle.denoiser) + SAMPLER_BYTES_PER_LR_PIXEL)

    # ---- stage 3 -------------------------------------------------------------------------
    def prior(self, lr: torch.Tensor, prompt: str | None = None, prompt_mode: str = "extend") -> Prior:
        if self.plain_sr:
            return Prior(None, None, None, None)
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

    @property
    def scale(self) -> int:
        return self.bundle.descriptor.scale

    @torch.inference_mode()
    def _stage_maps(self, lr_tile: torch.Tensor) -> StageMaps:
        settings = self.bundle.settings
        # Autocast changes only g's convolutions: interpolation and the ψ, w arithmetic stay float32.
        with self._autocast():
            return stage_maps(self.bundle.aux, lr_tile.to(self.device, torch.float32), settings.floor,
                              settings.psi_max)

    @torch.inference_mode()
    def _upscale_tile(self, lr_tile: torch.Tensor, tile: Tile, options: UpscaleOptions, prior: Prior,
                      fields: list[NoiseField], on_step: Callable[[], None]) -> torch.Tensor:
        """All candidates of one tile as one batch (stages 1–2 computed once); (1, 3·N, h, w) out."""
        maps = self._stage_maps(lr_tile)
        if self.plain_sr:
            on_step()
            return maps.aux.clamp(0, 1).cpu()
        scheduler = self.bundle.settings.scheduler()
        if options.detail is not None:
            scheduler = scheduler.with_detail(options.detail)
        scheduler.set_timesteps(options.steps)
        with self._autocast():
            sample = denoise(self.bundle.denoiser, scheduler, maps, fields, tile.top * self.scale,
                             tile.left * self.scale, prior.tokens, prior.mask, options.noise_weighting,
                             on_step=on_step).float()
        sample = apply_color_fix(options.color_fix, sample, maps.aux.expand_as(sample)).clamp(0, 1).cpu()
        if self.device.type == "cpu":
            release_freed_cpu_memory()
        return sample.reshape(1, len(fields) * 3, *sample.shape[-2:])

    # ---- the whole image ------------------------------------------------------------------
    def auto_tile(self, candidates: int = 1) -> int:
        """Largest LR tile whose working set (all candidates) fits a quarter of free memory, ≤ 1 GB on the CPU."""
        budget = free_memory_bytes(self.device) // 4
        if self.device.type == "cpu":
            budget = min(budget, CPU_TILE_BUDGET)
        side = int(math.sqrt(budget / (self.bytes_per_lr_pixel * candidates)))
        return max(MIN_TILE, min(MAX_AUTO_TILE, side // 16 * 16))

    def upscale(self, lr: torch.Tensor, options: UpscaleOptions = UpscaleOptions(),
                progress: Callable[[int, int], None] | None = None) -> UpscaleResult:
        """Upscale ``lr`` (1,3,H,W) in [0,1]; halves the tile and retries if the device runs out of memory.

        ``progress(done, total)`` is called after every denoiser step of every tile (one call per tile
        for a plain SR model), so even a one-tile photo shows how far it is.
        """
        self._check(lr, options)
        prior = self.prior(lr, options.prompt, options.prompt_mode)

        def whole(tile: int) -> UpscaleResult:
            stacked = torch.cat(list(self._bands(lr, options, prior, tile, progress)), dim=2)
            return self._choose(stacked.split(3, dim=1), options, prior, tile)

        return self._with_tile_retries(options, whole)

    def upscale_streamed(self, lr: torch.Tensor, options: UpscaleOptions,
                         consume: Callable[[Iterator[torch.Tensor]], None],
                         progress: Callable[[int, int], None] | None = None) -> UpscaleResult:
        """As :meth:`upscale`, but the output goes to ``consume`` in bands of rows, top to bottom.

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

    def _check(self, lr: torch.Tensor, options: UpscaleOptions) -> None:
        if not 1 <= options.steps <= 50:
            raise ValueError(f"steps must be between 1 and 50, not {options.steps}")
        if options.detail is not None and not 0.0 <= options.detail <= 1.0:
            raise ValueError(f"detail must lie in [0, 1], not {options.detail}")
        if options.candidates < 1:
            raise ValueError(f"candidates must be at least 1, not {options.candidates}")
        if options.select not in SELECTORS:
            raise ValueError(f"select must be one of {', '.join(SELECTORS)}, not {options.select!r}")
        if options.candidates > 1:
            from qusr_cli.metrics.niqe import BLOCK  # as niqe_score below: loaded only when candidates are scored

            if self.plain_sr:
                raise QusrError("--candidates needs a diffusion model; this model has only an SR net")
            if min(lr.shape[-2:]) * self.scale < BLOCK:
                raise QusrError(f"--candidates needs an output of at least {BLOCK}x{BLOCK} pixels "
                                "to score (NIQE's block size)")

    def _bands(self, lr: torch.Tensor, options: UpscaleOptions, prior: Prior, tile: int,
               progress: Callable[[int, int], None] | None) -> Iterator[torch.Tensor]:
        """Bands of rows of the (1, 3·N, sH, sW) output of all N candidates, top to bottom."""
        fields = [NoiseField(options.seed + k) for k in range(options.candidates)]
        multiple = self.bundle.descriptor.size_multiple
        padded = pad_to_multiple(lr, multiple)
        rows_left, width = (side * self.scale for side in lr.shape[-2:])
        overlap = min(options.tile_overlap, tile // 4)
        steps_per_tile = 1 if self.plain_sr else options.steps
        on_step = _step_counter(progress, len(plan_tiles(*padded.shape[-2:], tile, overlap)) * steps_per_tile)
        bands = blend_bands(padded, lambda t, spec: self._upscale_tile(t, spec, options, prior, fields, on_step),
                            tile, overlap, self.scale, margin=options.tile_margin, multiple=multiple)
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
        """Best of N by the ``select`` score (no reference needed; lower is more natural)."""
        if len(candidates) == 1:
            return UpscaleResult(image=candidates[0], prior=prior, tile=tile, seed=options.seed)
        module, name = SELECTORS[options.select].split(":")
        score = getattr(importlib.import_module(module), name)
        scores = [score(candidate) for candidate in candidates]
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
            found = self._stage_maps(lr_tile)
            return torch.cat([m.cpu() for m in (found.up, found.aux, found.psi, found.weight)], 1)

        stacked = run_tiled(lr, maps, tile, overlap, self.scale, margin=options.tile_margin)
        up, aux, psi, weight = stacked.split(3, dim=1)
        return Explanation(up=up, aux=aux.clamp(0, 1), psi=psi, weight=weight, prior=prior)


def scaled_size(lr_size: tuple[int, ...], scale: float) -> tuple[int, ...]:
    """Each side of ``lr_size`` (in any order) times ``scale``, rounded, at least 1."""
    return tuple(max(1, round(side * scale)) for side in lr_size)


def _step_counter(progress: Callable[[int, int], None] | None, total: int) -> Callable[[], None]:
    """A callback that reports (steps done so far, ``total``) to ``progress`` each time it is called."""
    done = itertools.count(1)
    return lambda: progress(next(done), total) if progress is not None else None


def resize_output(image: torch.Tensor, lr_size: tuple[int, int], scale: float) -> torch.Tensor:
    """Final resize for a ``--scale`` other than the model's: antialiased bicubic from the model's result."""
    height, width = scaled_size(lr_size, scale)
    if (height, width) == tuple(image.shape[-2:]):
        return image
    return F.interpolate(image, size=(height, width), mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)

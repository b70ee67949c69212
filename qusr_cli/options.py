"""The options of the Python API, the CLI and the bench, as plain dataclasses (no torch here, so the CLI
can build them before it loads anything).

    EngineOptions   which model, device, dtype, threads and critic (``load()`` makes an ``Upscaler``)
    UpscaleOptions  how one image is sampled: steps, seed, tiles, colour fix, prompt, best of N
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qusr_cli.upscaler import Upscaler

# Who writes the critique: "auto" (the model's learned critic when it ships one, else builtin), then
# prior.critic's kinds: builtin (image statistics), learned, mllm, none.
ENGINE_CRITICS = ("auto", "builtin", "learned", "mllm", "none")


@dataclass(frozen=True)
class EngineOptions:
    """Which model to load and how to run it: the options ``qusr upscale``/``batch``/``explain``, the bench
    and ``load_upscaler`` share (critic: one of ``ENGINE_CRITICS``)."""

    model: str | None = None
    weights: str | Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None
    critic: str = "auto"
    allow_download: bool = False

    def load(self) -> Upscaler:
        from qusr_cli.loading import load_upscaler

        return load_upscaler(**{f.name: getattr(self, f.name) for f in fields(EngineOptions)})


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
    candidates: int = 1            # best of N: N seeds (seed, seed+1, …), the one `select` scores best is kept
    select: str = "niqe"           # the no-reference score that picks among candidates (see SELECTORS)
    noise_weighting: bool = True   # False: w = 1 everywhere (the ablation without UPSR's weighting)
    detail: float | None = None    # 0 (faithful) … 1 (most invented detail); None: the model's own sampler

    @property
    def detail_is_inert(self) -> bool:
        """True when ``detail`` is set but cannot act: it scales the noise of the T − 2 steps before the
        step into τ = 0 and the final call, and with fewer than ``DETAIL_MIN_STEPS`` there are none."""
        return self.detail is not None and self.steps < DETAIL_MIN_STEPS


DETAIL_MIN_STEPS = 3


# select -> no-reference score of a (1, 3, H, W) image, lower is better; loaded only when candidates are scored
SELECTORS = {"niqe": "qusr_cli.metrics:niqe_score"}

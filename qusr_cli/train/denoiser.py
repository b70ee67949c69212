"""Training the residual-shift denoiser f_θ(x_τ, τ, up, g(y), prior) to predict the HR image x0.

Per sample: τ is drawn (half the time near one of the 5-step inference grid points), x_τ is the
forward sample between the HR crop and up(y) with UPSR's uncertainty-weighted noise from the frozen
aux net g, and the prior is the critique of the sample's quality: written from its true degradation
parameters, from the learned critic's estimate of them, or absent (the null prior).
"""

from __future__ import annotations

import random
from typing import Protocol

import torch
from torch import nn

from qusr_cli.archs import REGISTRY
from qusr_cli.aux_sr import auxiliary_estimate
from qusr_cli.diffusion.schedule import ResShiftScheduler
from qusr_cli.prior.learned_critic import report_from_estimates
from qusr_cli.prior.report import critique_from_report
from qusr_cli.prior.text_encoder import MINILM_HIDDEN_SIZE
from qusr_cli.stages import stage_maps
from qusr_cli.train.objective import RestorationObjective
from qusr_cli.train.recipe import PerceptualRecipe
from qusr_cli.train.validate import PairedSet, evaluate, mean_niqe, upscale_qusr
from qusr_cli.uncertainty import DEFAULT_FLOOR, DEFAULT_PSI_MAX
from qusr_cli.weights.header import DEFAULT_TEXT_ENCODER, DiffusionSettings

INFERENCE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


class Encoder(Protocol):
    """What training needs of a text encoder (``prior.text_encoder.TextEncoder`` is one)."""

    name: str         # as the header's diffusion.text_encoder: what the engine must load
    hidden_size: int  # the prior tokens' width D

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """text -> (tokens (1, L, D), mask (1, L))."""
        ...


def sample_tau(batch: int, grid_prob: float = 0.5, jitter: float = 0.02,
               grid: tuple[float, ...] = INFERENCE_GRID) -> torch.Tensor:
    """τ ~ U(0, 1), or with probability ``grid_prob`` a grid point + N(0, jitter²); clamped to [0, 1]."""
    uniform = torch.rand(batch)
    snapped = torch.tensor(grid)[torch.randint(len(grid), (batch,))] + jitter * torch.randn(batch)
    use_grid = torch.rand(batch) < grid_prob
    return torch.where(use_grid, snapped, uniform).clamp(0.0, 1.0)


@torch.no_grad()
def measure_aux_error(aux_net: nn.Module, dataset, count: int = 64, batch: int = 16,
                      first_index: int = 2 ** 61) -> float:
    """σ_g = √(mean (g(y) − x0)²) over ``count`` degraded training crops: the blend's ``aux_error``.

    The crops are drawn far from the indices training uses, so they are fresh but from the same
    distribution; the result is a function of the dataset's seed, so a resumed run gets it again.
    """
    squared, pixels = 0.0, 0
    for start in range(first_index, first_index + count, batch):
        samples = [dataset[i] for i in range(start, min(start + batch, first_index + count))]
        lr, hr = torch.stack([s["lr"] for s in samples]), torch.stack([s["hr"] for s in samples])
        error = auxiliary_estimate(aux_net, lr) - hr
        squared += float((error ** 2).sum())
        pixels += error.numel()
    return (squared / pixels) ** 0.5


def pad_prior(encoded: list[tuple[torch.Tensor, torch.Tensor] | None],
              context_dim: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Stack per-sample (tokens, mask) into (B, L, D) and (B, L), L the longest; padding is masked out.

    A None entry (null prior) becomes a row with every position masked, so only the denoiser's own
    null token is attended to. All None → (None, None).
    """
    if all(item is None for item in encoded):
        return None, None
    length = max(item[0].shape[1] for item in encoded if item is not None)
    tokens = torch.zeros(len(encoded), length, context_dim)
    mask = torch.zeros(len(encoded), length, dtype=torch.bool)
    for row, item in enumerate(encoded):
        if item is not None:
            tokens[row, :item[0].shape[1]] = item[0][0].float()
            mask[row, :item[1].shape[1]] = item[1][0].bool()
    return tokens, mask


class DenoiserTask:
    role = "denoiser"

    def __init__(self, aux_net: nn.Module, encoder: Encoder | None, critic=None, *, arch: str = "unet",
                 residual_base: str = "blend", aux_error: float = 0.06, fft_weight: float = 0.05,
                 null_prob: float = 0.15, critic_prob: float = 0.25, grid_prob: float = 0.5,
                 val_pairs: PairedSet | None = None, val_steps: int = 5, noise_scale: float = 1.0,
                 last_noise_scale: float = 1.0, floor: float = DEFAULT_FLOOR, psi_max: float = DEFAULT_PSI_MAX,
                 recipe: PerceptualRecipe = PerceptualRecipe(),
                 niqe_crops: torch.Tensor | None = None, **arch_config):
        """``arch``: a registered denoiser architecture, built with ``arch_config`` plus the prior-token
        width of ``encoder`` (MiniLM's without one, the encoder the engine falls back to).

        ``residual_base="blend"``: the net adds nothing itself and the scheduler adds its output to
        the blend of x_τ and g(y) (prediction type "blend", σ_g = ``aux_error``).

        The noise scales only change sampling (validation, and the engine through the header); b and
        ψmax shape w in training, validation and the engine alike, through the header.
        ``recipe`` switches on the perceptual terms of
        :class:`~qusr_cli.train.objective.RestorationObjective`; with a GAN weight the task has an
        ``adversary`` that the loop steps, saves and resumes. ``niqe_crops`` (LR crops of real photos,
        e.g. ``validate.load_centre_crops("realset65")``) add qusr's mean NIQE on them to validation."""
        blend = residual_base == "blend"
        context_dim = encoder.hidden_size if encoder is not None else MINILM_HIDDEN_SIZE
        self.model = REGISTRY.entry(arch, role="denoiser").cls(
            context_dim=context_dim, residual_base="none" if blend else residual_base, **arch_config)
        self.aux_net = aux_net.eval().requires_grad_(False)
        self.encoder = encoder
        self.critic = critic
        scheduler = ResShiftScheduler(prediction_type="blend" if blend else "sample", aux_error=aux_error,
                                      noise_scale=noise_scale, last_noise_scale=last_noise_scale)
        self.settings = DiffusionSettings(schedule=scheduler.config, floor=floor, psi_max=psi_max,
                                          text_encoder=encoder.name if encoder is not None else DEFAULT_TEXT_ENCODER)
        self.scheduler = scheduler
        self.objective = RestorationObjective.from_recipe(recipe, fft_weight)
        self.adversary = self.objective.adversary
        self.null_prob = null_prob if encoder is not None else 1.0
        self.critic_prob = critic_prob if critic is not None else 0.0
        self.grid_prob = grid_prob
        self.val_pairs = val_pairs
        self.niqe_crops = niqe_crops
        self.val_steps = val_steps
        self._baselines: dict[str, float] | None = None

    def captions(self, lr: torch.Tensor, params: dict[str, torch.Tensor], rng: random.Random) -> list[str | None]:
        """One critique per sample (None for the null prior), from true or critic-estimated parameters."""
        use_critic = [rng.random() < self.critic_prob for _ in range(len(lr))]
        estimates = self.critic.estimate(lr) if any(use_critic) else None
        texts: list[str | None] = []
        for i in range(len(lr)):
            if rng.random() < self.null_prob:
                texts.append(None)
                continue
            source = estimates if use_critic[i] else params
            report = report_from_estimates(lr[i:i + 1].cpu(), float(source["noise_sigma"][i]),
                                           float(source["blur_sigma"][i]), float(source["jpeg_quality"][i]))
            texts.append(critique_from_report(report, rng))
        return texts

    def loss(self, model: nn.Module, batch: dict, rng: random.Random) -> tuple[torch.Tensor, dict[str, float]]:
        lr, hr = batch["lr"], batch["hr"]
        with torch.no_grad():
            maps = stage_maps(self.aux_net, lr, self.settings.floor, self.settings.psi_max)
        tau = sample_tau(len(lr), self.grid_prob).to(lr.device)
        x_t, eta = self.scheduler.add_noise(hr, maps.up, maps.weight, torch.randn_like(hr), tau)
        texts = self.captions(lr, batch["params"], rng)
        context, mask = pad_prior([None if t is None else self.encoder.encode(t) for t in texts],
                                  self.model.descriptor.context_dim)
        if context is not None:
            context, mask = context.to(lr.device), mask.to(lr.device)
        output = model(x_t, tau, maps.conditioning(context, mask))
        prediction = self.scheduler.predict_x0(output, eta, x_t, maps.up, maps.aux, maps.weight)
        loss, parts = self.objective(prediction, batch)
        return loss, {**parts, "null_prior": sum(t is None for t in texts) / len(texts)}

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {**self._validate_pairs(model), **self._validate_niqe(model)}

    def _validate_niqe(self, model: nn.Module) -> dict[str, float]:
        if self.niqe_crops is None:
            return {}
        device = next(model.parameters()).device
        outputs = torch.cat([upscale_qusr(model, self.aux_net, crop[None].to(device), self.settings, self.val_steps,
                                          seed=index) for index, crop in enumerate(self.niqe_crops)])
        return {"qusr_crops_niqe": mean_niqe(outputs.cpu())}

    def _validate_pairs(self, model: nn.Module) -> dict[str, float]:
        if self.val_pairs is None:
            return {}
        device = next(model.parameters()).device
        pairs = PairedSet(self.val_pairs.lr.to(device), self.val_pairs.gt.to(device), self.val_pairs.names)
        if self._baselines is None:
            bicubic = evaluate("bicubic", pairs)
            aux = evaluate("aux", pairs, aux_net=self.aux_net)
            self._baselines = {"bicubic_psnr_y": bicubic["psnr_y"], "aux_psnr_y": aux["psnr_y"],
                               "aux_sharpness": aux["sharpness"]}
        ours = evaluate("qusr", pairs, aux_net=self.aux_net, denoiser=model, steps=self.val_steps,
                        settings=self.settings)
        return {"qusr_psnr_y": ours["psnr_y"], "qusr_ssim_y": ours["ssim_y"], "qusr_sharpness": ours["sharpness"],
                **self._baselines}

    def info(self) -> dict:
        return {"loss": self.objective.describe(), "params": sum(p.numel() for p in self.model.parameters()),
                "null_prob": self.null_prob, "critic_prob": self.critic_prob,
                "grid_prob": self.grid_prob, "tau_grid": list(INFERENCE_GRID), "val_prior": "null",
                "val_steps": self.val_steps}

    def header(self) -> dict:
        """The header sections the engine samples by: the scheduler, b, ψmax and the text encoder."""
        return self.settings.to_info(text=self.encoder is not None)

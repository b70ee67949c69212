"""The denoiser's training objective: fidelity terms, the teacher term and the perceptual terms together."""

from __future__ import annotations

import torch

from qusr_cli.aux_sr import bicubic_upsample
from qusr_cli.train.adversarial import Adversary
from qusr_cli.train.perceptual import RandomFeatures, random_feature_loss
from qusr_cli.train.recipe import PerceptualRecipe
from qusr_cli.train.targets import unsharp_mask


def fft_magnitude_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_fft = mean | |F(x̂0)| − |F(x0)| | with the orthonormal 2-D real FFT per channel."""
    spectrum_p = torch.fft.rfft2(prediction.float(), norm="ortho").abs()
    spectrum_t = torch.fft.rfft2(target.float(), norm="ortho").abs()
    return (spectrum_p - spectrum_t).abs().mean()


def teacher_is_faithful(teacher: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """h_i = 1[mean|t_i − x0_i| < mean|up(y_i) − x0_i|]: the teacher's output is nearer the photo than bicubic.

    On heavily degraded crops the teacher invents content that is not in the photo (another texture
    scale, objects painted over); measured on the cache of 2026-11-30, its output was nearer the HR
    crop than bicubic on only 36% of the crops. The gate keeps the teacher term to those.
    """
    up = bicubic_upsample(lr.float()).clamp(0.0, 1.0)
    return ((teacher.float() - hr.float()).abs().flatten(1).mean(1)
            < (up - hr.float()).abs().flatten(1).mean(1)).float()


def teacher_l1(prediction: torch.Tensor, teacher: torch.Tensor, has_teacher: torch.Tensor) -> torch.Tensor:
    """L_t = Σ_i h_i·mean|x̂0_i − t_i| / max(1, Σ_i h_i): L1 to the teacher's output over samples that have one."""
    per_sample = (prediction.float() - teacher.float()).abs().flatten(1).mean(1)
    return (per_sample * has_teacher).sum() / has_teacher.sum().clamp_min(1.0)


def samples_with_teacher(batch: dict) -> torch.Tensor:
    """h, (B,) float: 1 where a sample of a batch with ``teacher`` carries one (a mixed source marks
    dead leaves 0 in ``has_teacher``; a batch without that field has it on every sample)."""
    hr = batch["hr"]
    return batch.get("has_teacher", torch.ones(len(hr), device=hr.device)).float()


def perceptual_reference(fallback: torch.Tensor, batch: dict) -> torch.Tensor:
    """r_i = t_i where sample i has a teacher output (h_i = 1), else ``fallback``_i (the HR crop)."""
    if "teacher" not in batch:
        return fallback
    has_teacher = samples_with_teacher(batch).view(-1, 1, 1, 1).bool()
    return torch.where(has_teacher, batch["teacher"].to(fallback.dtype), fallback)


class RestorationObjective:
    """L = λ_hr·L1(x̂0, x̃0) + λ_fft·L_fft + λ_t·L_t + λ_rf·L_rf(x̂0, r) + λ_GAN·L_G(x̂0; real r').

    x̃0 is the HR crop x0, unsharp-masked by ``sharpen_hr`` when that is not 0. The feature target r is
    x̃0 and the discriminator's real image r' is x0, unless ``teacher_as_real``: then both are the
    teacher's output t on samples that have one (:func:`perceptual_reference`). Terms whose weight is 0
    are not computed. The adversary's λ_GAN is its own ``weight``.
    """

    def __init__(self, fft_weight: float = 0.05, teacher_weight: float = 0.0, feature_weight: float = 0.0,
                 adversary: Adversary | None = None, features: RandomFeatures | None = None,
                 sharpen_hr: float = 0.0, teacher_gate: bool = False, hr_weight: float = 1.0,
                 teacher_as_real: bool = False):
        if not (hr_weight or fft_weight or teacher_weight or feature_weight or adversary is not None):
            raise ValueError("the objective has no term: every weight is 0")
        self.hr_weight = hr_weight
        self.teacher_as_real = teacher_as_real
        self.sharpen_hr = sharpen_hr
        self.teacher_gate = teacher_gate
        self.fft_weight = fft_weight
        self.teacher_weight = teacher_weight
        self.feature_weight = feature_weight
        self.adversary = adversary
        self.features = features or (RandomFeatures() if feature_weight else None)

    @classmethod
    def from_recipe(cls, recipe: PerceptualRecipe, fft_weight: float) -> RestorationObjective:
        """The objective of ``recipe``, with a fresh adversary when it has a GAN weight."""
        adversary = (Adversary(width=recipe.discriminator_width, lr=recipe.discriminator_lr,
                               weight=recipe.gan_weight) if recipe.gan_weight else None)
        return cls(fft_weight, recipe.teacher_weight, recipe.feature_weight, adversary,
                   sharpen_hr=recipe.sharpen_hr, teacher_gate=recipe.teacher_gate, hr_weight=recipe.hr_weight,
                   teacher_as_real=recipe.teacher_as_real)

    def __call__(self, prediction: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        hr = batch["hr"]
        target = unsharp_mask(hr.float(), self.sharpen_hr) if self.sharpen_hr else hr
        pixel = (prediction.float() - target.float()).abs().mean()
        # logged whatever its weight: with λ_hr = 0 (pure distillation) it still shows the distance to the photo
        total, parts = self.hr_weight * pixel, {"l1": float(pixel.detach())}
        if self.fft_weight:
            spectral = fft_magnitude_l1(prediction, target)
            total = total + self.fft_weight * spectral
            parts["fft"] = float(spectral.detach())
        if self.teacher_weight and "teacher" in batch:
            has_teacher = samples_with_teacher(batch)
            if self.teacher_gate:
                has_teacher = has_teacher * teacher_is_faithful(batch["teacher"], hr, batch["lr"])
                parts["teacher_share"] = float(has_teacher.mean())
            term = teacher_l1(prediction, batch["teacher"], has_teacher)
            total = total + self.teacher_weight * term
            parts["teacher_l1"] = float(term.detach())
        if self.feature_weight:
            self.features.to(prediction.device)
            reference = perceptual_reference(target, batch) if self.teacher_as_real else target
            term = random_feature_loss(self.features, prediction, reference)
            total = total + self.feature_weight * term
            parts["random_features"] = float(term.detach())
        if self.adversary is not None:
            real = perceptual_reference(hr, batch) if self.teacher_as_real else hr
            term = self.adversary.generator_term(real, prediction.float())
            total = total + term
            parts["gan_g"] = float(term.detach()) / max(self.adversary.weight, 1e-12)
        return total, parts

    def describe(self) -> str:
        hr_term = f"L1 to HR unsharp-masked by {self.sharpen_hr}" if self.sharpen_hr else "L1"
        terms = [hr_term if self.hr_weight == 1 else f"{self.hr_weight}·{hr_term}"] if self.hr_weight else []
        terms += [f"{self.fft_weight}·L1(|FFT|)"] if self.fft_weight else []
        if self.teacher_weight:
            terms.append(f"{self.teacher_weight}·L1(teacher)" + (" where nearer HR than bicubic" if self.teacher_gate
                                                                   else ""))
        if self.feature_weight:
            terms.append(f"{self.feature_weight}·L_rf(random CNN {self.features.widths}, seed {self.features.seed}"
                         f"{', to the teacher' if self.teacher_as_real else ''})")
        if self.adversary is not None:
            terms.append(f"{self.adversary.weight}·L_GAN(U-Net D width {self.adversary.discriminator.width}, "
                         f"DiffAugment{', teacher as real' if self.teacher_as_real else ''})")
        return " + ".join(terms)

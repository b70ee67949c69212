"""The perceptual recipe's settings as one plain dataclass (no torch: the CLI builds it before loading anything)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PerceptualRecipe:
    """The denoiser's perceptual terms and extra data; all off by default (training.md, "The perceptual recipe").

    The weights are the λ of :class:`~qusr_cli.train.objective.RestorationObjective`'s teacher,
    random-CNN and adversarial terms; ``procedural_share`` is the share of dead-leaves samples;
    ``sharpen_hr`` the unsharp-mask amount of the HR target of the L1, FFT and feature terms;
    ``teacher_gate`` keeps the teacher term to crops where the teacher is nearer the HR than bicubic;
    ``hr_weight`` is the λ of L1 to the HR crop (0 with a teacher: pure distillation);
    ``teacher_as_real`` makes the teacher's output (where a sample has one) the random-CNN term's target
    and the discriminator's real image, so those terms pull toward the teacher's look, not the photo.
    """

    teacher_weight: float = 0.0
    feature_weight: float = 0.0
    gan_weight: float = 0.0
    discriminator_width: int = 32
    discriminator_lr: float = 1e-4
    procedural_share: float = 0.0
    sharpen_hr: float = 0.0
    teacher_gate: bool = False
    hr_weight: float = 1.0
    teacher_as_real: bool = False

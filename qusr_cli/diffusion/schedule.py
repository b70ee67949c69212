"""Stage 4a: the ResShift noise schedule over a continuous time τ ∈ [0, 1], as a scheduler object.

ResShift and UPSR fix the number of steps T when they train. Here the schedule is a function of
continuous τ and the denoiser is conditioned on τ itself, so one checkpoint serves any number of
sampling steps: ``set_timesteps(n)`` just places n points τ_i = (i−1)/(n−1) on the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

MIN_SQRT_ETA = math.sqrt(0.001)


def first_sqrt_eta(kappa: float, min_noise_level: float) -> float:
    """√η_1 = min(m/κ, m, √0.001)."""
    return min(min_noise_level / kappa, min_noise_level, MIN_SQRT_ETA)


def sqrt_eta(tau: torch.Tensor | float, kappa: float = 2.5, etas_end: float = 0.99,
             min_noise_level: float = 0.2, power: float = 0.2) -> torch.Tensor:
    """√η(τ) = √η_1 · (e/√η_1)^(τ^p): √η(0) = √η_1 and √η(1) = e."""
    tau = torch.as_tensor(tau, dtype=torch.float64)
    start = first_sqrt_eta(kappa, min_noise_level)
    return start * (etas_end / start) ** (tau.clamp(0.0, 1.0) ** power)


def posterior_coefficients(eta_prev: float, eta_t: float, kappa: float) -> tuple[float, float, float]:
    """x_{t−1} = (η_{t−1}/η_t)·x_t + (α_t/η_t)·x̂0 + κ·√(η_{t−1}α_t/η_t)·w·ε, α_t = η_t − η_{t−1}.

    Returns the three coefficients (of x_t, of x̂0, of w·ε).
    """
    alpha_t = eta_t - eta_prev
    return eta_prev / eta_t, alpha_t / eta_t, kappa * math.sqrt(eta_prev * alpha_t / eta_t)


def forward_sample(x0: torch.Tensor, up: torch.Tensor, eta: torch.Tensor, weight: torch.Tensor,
                   noise: torch.Tensor, kappa: float) -> torch.Tensor:
    """q(x_τ | x0, y): x_τ = x0 + η(τ)·(up(y) − x0) + κ·√η(τ)·w·ε (η broadcast per sample)."""
    return x0 + eta * (up - x0) + kappa * eta.sqrt() * weight * noise


def prior_sample(up: torch.Tensor, weight: torch.Tensor, noise: torch.Tensor, kappa: float,
                 eta_end: float) -> torch.Tensor:
    """x_T = up(y) + κ·√η_T·w·ε."""
    return up + kappa * math.sqrt(eta_end) * weight * noise


def blend_coefficient(eta: torch.Tensor | float, weight: torch.Tensor, kappa: float,
                      aux_error: float) -> torch.Tensor:
    """c = σ_g² / (σ_g² + s²), s = κ·√η·w / (1 − η).

    s is the noise left in x_τ's own estimate of x0 (below) and σ_g the typical error of g(y), so c is
    the weight that minimises the variance of their mix: near 1 at small τ, where x_τ is almost x0.
    """
    eta = torch.as_tensor(eta, dtype=torch.float32, device=weight.device)
    spread = kappa * eta.sqrt() * weight / (1.0 - eta)
    return aux_error ** 2 / (aux_error ** 2 + spread ** 2)


def blended_x0_base(x_t: torch.Tensor, up: torch.Tensor, aux: torch.Tensor, eta: torch.Tensor | float,
                    weight: torch.Tensor, kappa: float, aux_error: float) -> torch.Tensor:
    """x̄0 = c·(x_τ − η·up)/(1 − η) + (1 − c)·g(y).

    (x_τ − η·up)/(1 − η) is x0 plus noise of spread s (solve the forward sample for x0); the denoiser
    only has to correct x̄0, so passing x_τ's detail through at small τ costs it nothing (as c_skip in
    Karras et al.'s EDM preconditioning).
    """
    eta_t = torch.as_tensor(eta, dtype=torch.float32, device=x_t.device)
    from_sample = (x_t.float() - eta_t * up.float()) / (1.0 - eta_t)
    c = blend_coefficient(eta_t, weight.float(), kappa, aux_error)
    return c * from_sample + (1.0 - c) * aux.float()


PREDICTION_TYPES = ("sample", "blend")


@dataclass
class ResShiftScheduler:
    """Like a diffusers scheduler: ``set_timesteps`` picks the τ grid, ``step`` moves x_t to x_{t−1},
    ``add_noise`` is the forward process training samples from.

    ``prediction_type`` says what the denoiser's output is, as in diffusers: "sample" is x̂0 itself,
    "blend" a correction added to :func:`blended_x0_base` (``aux_error`` is its σ_g).

    ``noise_scale`` and ``last_noise_scale`` scale the posterior noise of the reverse steps (1 is
    ResShift's sampler); the last one is the step into τ = 0, whose noise only the final denoiser
    call could remove, so with 0 the chain ends on the posterior mean.
    """

    kappa: float = 2.5
    etas_end: float = 0.99
    min_noise_level: float = 0.2
    power: float = 0.2
    prediction_type: str = "sample"
    aux_error: float = 0.06
    noise_scale: float = 1.0
    last_noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, "
                             f"not {self.prediction_type!r}")
        if self.noise_scale < 0 or self.last_noise_scale < 0:
            raise ValueError("noise scales must not be negative")
        self.set_timesteps(5)

    @classmethod
    def from_config(cls, config: dict) -> "ResShiftScheduler":
        return cls(**{k: config[k] for k in cls.__dataclass_fields__ if k in config})

    @property
    def config(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def eta(self, tau: torch.Tensor | float) -> torch.Tensor:
        """η(τ) = √η(τ)²."""
        return sqrt_eta(tau, self.kappa, self.etas_end, self.min_noise_level, self.power) ** 2

    def with_detail(self, detail: float) -> "ResShiftScheduler":
        """This sampler with ``noise_scale`` = d ∈ [0, 1]: the user's fidelity ↔ invented-detail dial.

        d = 0 moves every reverse step to its posterior mean (nothing is drawn, the most faithful
        output); d = 1 draws ResShift's full posterior noise, from which the denoiser invents the most
        detail. The last step's scale stays as the checkpoint says: its noise is never removed.
        """
        if not 0.0 <= detail <= 1.0:
            raise ValueError(f"detail must lie in [0, 1], not {detail}")
        tuned = replace(self, noise_scale=float(detail))
        tuned.set_timesteps(self.num_steps)
        return tuned

    def set_timesteps(self, num_steps: int) -> None:
        """τ_i = (i−1)/(T−1) for i = 1..T (τ = 1 alone when T = 1); ``timesteps`` runs from T down to 1."""
        if not 1 <= num_steps <= 1000:
            raise ValueError(f"steps must be between 1 and 1000, not {num_steps}")
        self.num_steps = num_steps
        grid = [1.0] if num_steps == 1 else [i / (num_steps - 1) for i in range(num_steps)]
        self.taus = torch.tensor(grid, dtype=torch.float64)
        self.etas = self.eta(self.taus)
        self.timesteps = list(range(num_steps - 1, -1, -1))

    def prior(self, up: torch.Tensor, weight: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return prior_sample(up, weight, noise, self.kappa, float(self.etas[-1]))

    def add_noise(self, x0: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, noise: torch.Tensor,
                  tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward process q(x_τ | x0, y) at per-sample times ``tau`` (B,): (x_τ, η(τ) as (B, 1, 1, 1)).

        As diffusers' ``add_noise``: training draws x_τ here, from the same object the sampler steps with.
        """
        eta = self.eta(tau).float().view(-1, 1, 1, 1).to(x0.device)
        return forward_sample(x0, up, eta, weight, noise, self.kappa), eta

    def tau_at(self, index: int) -> float:
        return float(self.taus[index])

    def predict_x0(self, model_output: torch.Tensor, eta: torch.Tensor | float, sample: torch.Tensor,
                   up: torch.Tensor, aux: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x̂0 from the denoiser's output at noise level η (a float, or a per-sample (B, 1, 1, 1) tensor)."""
        if self.prediction_type == "sample":
            return model_output
        base = blended_x0_base(sample, up, aux, eta, weight, self.kappa, self.aux_error)
        return base + model_output.float()

    def step(self, x0_pred: torch.Tensor, index: int, sample: torch.Tensor, weight: torch.Tensor,
             noise: torch.Tensor | None) -> torch.Tensor:
        """One reverse step from grid point ``index`` (0-based, i = index + 1) to the one below it.

        x_{i−1} = mean + s_i·c_noise·w·ε (:func:`posterior_coefficients`), s_i = ``last_noise_scale`` for
        the step into index 0 and ``noise_scale`` before it. At index 0 (i = 1) η_0 = 0, so the step
        returns x̂0 exactly and draws no noise.
        """
        if index == 0:
            return x0_pred
        c_sample, c_pred, c_noise = posterior_coefficients(float(self.etas[index - 1]), float(self.etas[index]),
                                                           self.kappa)
        out = c_sample * sample + c_pred * x0_pred
        scale = self.last_noise_scale if index == 1 else self.noise_scale
        if noise is not None and scale > 0:
            out = out + scale * c_noise * weight * noise
        return out

"""Blur kernels of the Real-ESRGAN degradation model, as normalised (k, k) float64 tensors.

Every kernel is built on the integer grid centred on the middle tap and normalised to sum 1, so
blurring never changes the mean brightness.
"""

from __future__ import annotations

import math

import torch


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    half = size // 2
    axis = torch.arange(-half, half + 1, dtype=torch.float64)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    return xs, ys


def rotated_quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """q(p) = pᵀ Σ⁻¹ p with Σ = R(θ)·diag(σx², σy²)·R(θ)ᵀ, on the size×size grid."""
    xs, ys = _grid(size)
    cos, sin = math.cos(theta), math.sin(theta)
    # Rotate the grid by −θ into the kernel's own axes, where Σ is diagonal.
    u = cos * xs + sin * ys
    v = -sin * xs + cos * ys
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(kernel: torch.Tensor) -> torch.Tensor:
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """k(p) ∝ exp(−½·q(p)); isotropic when σx = σy."""
    return _normalise(torch.exp(-0.5 * rotated_quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float,
                                beta: float) -> torch.Tensor:
    """k(p) ∝ exp(−½·q(p)^β): β < 1 gives heavier tails, β > 1 a flatter top than a Gaussian."""
    return _normalise(torch.exp(-0.5 * rotated_quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> torch.Tensor:
    """k(p) ∝ 1 / (1 + q(p)^β): a flat core with polynomial fall-off."""
    return _normalise(1.0 / (1.0 + rotated_quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """Circular low-pass: k(r) = ωc·J1(ωc·r) / (2π·r), with k(0) = ωc² / (4π) (its limit).

    Models the ringing of sharpened or band-limited images; ``cutoff`` ωc is in radians/pixel.
    """
    xs, ys = _grid(size)
    radius = torch.sqrt(xs ** 2 + ys ** 2)
    safe = torch.where(radius == 0, torch.ones_like(radius), radius)
    kernel = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    kernel = torch.where(radius == 0, torch.full_like(radius, cutoff ** 2 / (4 * math.pi)), kernel)
    return _normalise(kernel)


def gaussian_equivalent_sigma(kernel: torch.Tensor) -> float:
    """σ_eq = √(½·(Var_x + Var_y)) of the kernel read as a distribution (negative lobes included).

    A Gaussian has exactly its σ back; other shapes get the σ of the Gaussian with the same spread.
    """
    xs, ys = _grid(kernel.shape[-1])
    var_x = float((kernel * xs ** 2).sum())
    var_y = float((kernel * ys ** 2).sum())
    return math.sqrt(max(0.5 * (var_x + var_y), 0.0))

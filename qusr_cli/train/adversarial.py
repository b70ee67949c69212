"""The adversarial term: a U-Net discriminator trained from scratch, with differentiable augmentation.

The discriminator follows the shape of Real-ESRGAN's: an encoder-decoder with skip connections that
gives one real/fake logit per pixel (so it judges local texture as well as the whole crop), spectral
norm on every inner convolution for a stable game. Its width is an option; qusr's default is narrower
than Real-ESRGAN's 64 channels to fit CPU training.

With only tens of training photos a discriminator memorises the real crops within a few thousand
steps and its gradient becomes noise. DiffAugment (Zhao et al., 2020) applies the same kind of random,
differentiable colour, translation and cutout changes to real and fake images before the
discriminator sees them, so it cannot win by memorising and the generator still gets a gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

LEAKY_SLOPE = 0.2


class UNetDiscriminator(nn.Module):
    """(B, 3, H, W) in [0, 1] → (B, 1, H, W) logits; H and W multiples of 8."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.width = width
        self.conv0 = nn.Conv2d(3, width, 3, 1, 1)
        self.down1 = spectral_norm(nn.Conv2d(width, width * 2, 4, 2, 1, bias=False))
        self.down2 = spectral_norm(nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False))
        self.down3 = spectral_norm(nn.Conv2d(width * 4, width * 8, 4, 2, 1, bias=False))
        self.up1 = spectral_norm(nn.Conv2d(width * 8, width * 4, 3, 1, 1, bias=False))
        self.up2 = spectral_norm(nn.Conv2d(width * 4, width * 2, 3, 1, 1, bias=False))
        self.up3 = spectral_norm(nn.Conv2d(width * 2, width, 3, 1, 1, bias=False))
        self.refine1 = spectral_norm(nn.Conv2d(width, width, 3, 1, 1, bias=False))
        self.refine2 = spectral_norm(nn.Conv2d(width, width, 3, 1, 1, bias=False))
        self.out = nn.Conv2d(width, 1, 3, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        act = lambda x: F.leaky_relu(x, LEAKY_SLOPE)  # noqa: E731
        x0 = act(self.conv0((image - 0.5) / 0.5))
        x1 = act(self.down1(x0))
        x2 = act(self.down2(x1))
        x3 = act(self.down3(x2))
        up = lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        y = act(self.up1(up(x3))) + x2
        y = act(self.up2(up(y))) + x1
        y = act(self.up3(up(y))) + x0
        y = act(self.refine2(act(self.refine1(y))))
        return self.out(y)


# ---- DiffAugment ------------------------------------------------------------------------------


def augment_colour(images: torch.Tensor) -> torch.Tensor:
    """Per image: brightness + U(−0.5, 0.5)·0.25, saturation ×U(0, 2)^½, contrast ×U(0.5, 1.5)."""
    batch = len(images)
    shape = (batch, 1, 1, 1)
    images = images + (torch.rand(shape, device=images.device) - 0.5) * 0.25
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (torch.rand(shape, device=images.device) * 2).sqrt() + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (torch.rand(shape, device=images.device) + 0.5) + mean


def augment_translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y, filling with zeros (differentiable)."""
    batch, _, height, width = images.shape
    limit_y, limit_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = torch.randint(-limit_y, limit_y + 1, (batch,), device=images.device)
    shift_x = torch.randint(-limit_x, limit_x + 1, (batch,), device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) - shift_y.view(-1, 1, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width) - shift_x.view(-1, 1, 1)
    inside = ((rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)).unsqueeze(1)
    index = (rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)).view(batch, 1, -1)
    moved = images.flatten(2).gather(2, index.expand(-1, images.shape[1], -1)).view_as(images)
    return moved * inside


def augment_cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random ``ratio``-sized rectangle per image."""
    batch, _, height, width = images.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height - cut_h + 1, (batch, 1, 1), device=images.device)
    left = torch.randint(0, width - cut_w + 1, (batch, 1, 1), device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    hole = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
    return images * (~hole).unsqueeze(1)


def diff_augment(images: torch.Tensor) -> torch.Tensor:
    """DiffAugment's colour, translation and cutout policy, each draw independent per image."""
    return augment_cutout(augment_translation(augment_colour(images)))


# ---- the game ---------------------------------------------------------------------------------


def generator_loss(discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """L_G = BCE(D(aug(x̂)), 1), averaged over pixels: the non-saturating GAN loss."""
    logits = discriminator(diff_augment(fake)).float()
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """L_D = BCE(D(aug(x)), 1) + BCE(D(aug(x̂)), 0), x̂ detached."""
    real_logits = discriminator(diff_augment(real)).float()
    fake_logits = discriminator(diff_augment(fake.detach())).float()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


class Adversary:
    """The discriminator, its optimizer and the last (real, fake) pair the generator's loss saw.

    The training loop steps it after every generator step and saves and resumes both its weights
    and its optimizer with the rest of the run.
    """

    def __init__(self, width: int = 32, lr: float = 1e-4, weight: float = 0.1):
        self.discriminator = UNetDiscriminator(width)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.9, 0.99))
        self.weight = weight
        self._pair: tuple[torch.Tensor, torch.Tensor] | None = None

    def to(self, device: torch.device) -> Adversary:
        self.discriminator.to(device)
        return self

    def generator_term(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """λ_GAN · L_G for the generator's loss; remembers the pair for :meth:`update`."""
        self._pair = (real.detach(), fake.detach())
        self.discriminator.requires_grad_(False)
        term = self.weight * generator_loss(self.discriminator, fake)
        self.discriminator.requires_grad_(True)
        return term

    def update(self) -> float:
        """One discriminator step on the pair the last generator loss saw; returns L_D."""
        if self._pair is None:
            return float("nan")
        real, fake = self._pair
        self._pair = None
        loss = discriminator_loss(self.discriminator, real, fake)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

"""Training, validation and the engine state the pipeline once (qusr_cli/stages.py): for the same LR
image, HR crop and header they build the same up(y), g(y), w and the same x_T."""

import random

import pytest
import torch
from torch import nn

from qusr_cli.archs import CompactSR, DenoiserUNet
from qusr_cli.bundle import ModelBundle
from qusr_cli.noise import NoiseField
from qusr_cli.stages import stage_maps
from qusr_cli.train import denoiser as denoiser_training
from qusr_cli.train.denoiser import DenoiserTask
from qusr_cli.train.validate import PairedSet, evaluate
from qusr_cli.uncertainty import noise_weight
from qusr_cli.upscaler import UpscaleOptions, Upscaler

from helpers import TINY_UNET, randomize_zero_inits

FLOOR, PSI_MAX = 0.3, 0.1  # not the module defaults, so a stage that ignored the header would differ
SEED = 7


class FirstCall(nn.Module):
    """Wraps a denoiser and keeps what its first call received."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.first = None

    @property
    def descriptor(self):
        return self.net.descriptor

    def forward(self, x_t, tau, cond):
        if self.first is None:
            self.first = (x_t.detach().clone(), tau.detach().clone(), cond.up.detach().clone(),
                          cond.aux.detach().clone())
        return self.net(x_t, tau, cond)


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    aux = CompactSR(num_feat=8, num_conv=1).eval()
    randomize_zero_inits(aux, 0, std=0.2)  # g must differ from bicubic, or ψ would be 0 everywhere
    net = DenoiserUNet(**{**TINY_UNET, "residual_base": "none"}).eval()
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    hr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    task = DenoiserTask(aux, None, floor=FLOOR, psi_max=PSI_MAX, **{k: v for k, v in TINY_UNET.items()
                                                                     if k != "context_dim"})
    return aux, net, lr, hr, task


def test_training_validation_and_engine_build_the_same_maps_and_x_T(setup, monkeypatch):
    aux, net, lr, hr, task = setup
    settings = task.settings
    assert (settings.floor, settings.psi_max) == (FLOOR, PSI_MAX)
    expected = stage_maps(aux, lr, FLOOR, PSI_MAX)
    assert (expected.weight - noise_weight(expected.psi)).abs().max() > 0.05  # the header matters here
    scheduler = settings.scheduler()
    scheduler.set_timesteps(2)
    field_noise = NoiseField(SEED).window(0, 0, 0, 64, 64)

    engine_net = FirstCall(net)
    engine = Upscaler(ModelBundle("t", aux, engine_net, settings), device=torch.device("cpu"), dtype=torch.float32)
    engine.upscale(lr, UpscaleOptions(steps=2, seed=SEED, tile=64, color_fix="none"))

    validation_net = FirstCall(net)
    evaluate("qusr", PairedSet(lr, hr, ["a"]), aux_net=aux, denoiser=validation_net, steps=2, seed=SEED,
             settings=settings)

    # training at τ = 1 with the noise of the torch generator (training draws fresh noise each step)
    monkeypatch.setattr(denoiser_training, "sample_tau", lambda batch, grid_prob: torch.ones(batch))
    training_net = FirstCall(net)
    torch.manual_seed(3)
    training_noise = torch.randn_like(hr)
    torch.manual_seed(3)
    params = {k: torch.zeros(1) for k in ("noise_sigma", "blur_sigma", "jpeg_quality", "severity")}
    task.loss(training_net, {"lr": lr, "hr": hr, "params": params}, random.Random(0))

    for first in (engine_net.first, validation_net.first, training_net.first):
        _x_t, tau, up, aux_estimate = first
        assert torch.equal(tau, torch.ones(1))
        assert torch.allclose(up, expected.up, atol=1e-6) and torch.allclose(aux_estimate, expected.aux, atol=1e-6)
    x_T = scheduler.prior(expected.up, expected.weight, field_noise)
    # The Upscaler moves g to channels_last (oneDNN's kernels), which changes g(y) in the 7th digit; w
    # amplifies that by (1 − b)/(2ψmax) and x_T by κ√η_T·ε, hence 1e-4 against the maps made before.
    assert torch.allclose(engine_net.first[0], x_T, atol=1e-4)
    assert torch.allclose(validation_net.first[0], engine_net.first[0], atol=1e-6)
    # training's x_T is the forward process at τ = 1, from the same maps and the header's w
    x_T_training, _eta = scheduler.add_noise(hr, expected.up, expected.weight, training_noise, torch.ones(1))
    assert torch.allclose(training_net.first[0], x_T_training, atol=1e-4)
    # and the forward process at τ = 1 is the prior sample plus the (1 − η_T) share of x0 − up(y)
    eta_T = float(scheduler.etas[-1])
    assert torch.allclose(x_T_training, scheduler.prior(expected.up, expected.weight, training_noise)
                          + (1 - eta_T) * (hr - expected.up), atol=1e-5)

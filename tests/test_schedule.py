import math

import pytest
import torch

from qusr_cli.diffusion.schedule import (ResShiftScheduler, blend_coefficient, blended_x0_base, first_sqrt_eta,
                                         forward_sample, posterior_coefficients, sqrt_eta)


def test_first_sqrt_eta_takes_the_smallest_candidate():
    assert first_sqrt_eta(2.5, 0.2) == pytest.approx(math.sqrt(0.001))   # m/κ = 0.08 > √0.001
    assert first_sqrt_eta(1000.0, 0.2) == pytest.approx(0.0002)        # m/κ smallest


def test_sqrt_eta_matches_hand_computed_values():
    # √η_1 = √0.001 = 0.0316228; τ = 0.25: 0.0316228 · (0.99/0.0316228)^(0.25^0.2) = 0.43005
    assert float(sqrt_eta(0.0)) == pytest.approx(0.0316228, abs=1e-6)
    assert float(sqrt_eta(0.25)) == pytest.approx(0.43005, abs=1e-4)
    assert float(sqrt_eta(1.0)) == pytest.approx(0.99, abs=1e-12)


def test_grid_for_five_steps():
    scheduler = ResShiftScheduler()
    scheduler.set_timesteps(5)
    assert scheduler.taus.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert scheduler.timesteps == [4, 3, 2, 1, 0]
    start = math.sqrt(0.001)
    expected = [(start * (0.99 / start) ** (tau ** 0.2)) ** 2 for tau in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert scheduler.etas.tolist() == pytest.approx(expected, rel=1e-12)
    assert all(b > a for a, b in zip(expected, expected[1:]))


def test_one_step_runs_at_tau_one():
    scheduler = ResShiftScheduler()
    scheduler.set_timesteps(1)
    assert scheduler.taus.tolist() == [1.0]
    x0 = torch.rand(1, 3, 4, 4)
    assert torch.equal(scheduler.step(x0, 0, torch.zeros_like(x0), torch.ones_like(x0), None), x0)


def test_posterior_coefficients_by_hand():
    c_sample, c_pred, c_noise = posterior_coefficients(0.001, 0.9801, 2.5)
    assert c_sample == pytest.approx(0.001 / 0.9801)
    assert c_pred == pytest.approx(0.9791 / 0.9801)
    assert c_noise == pytest.approx(2.5 * math.sqrt(0.001 * 0.9791 / 0.9801))
    assert c_sample + c_pred == pytest.approx(1.0)


def test_prior_sample_formula():
    scheduler = ResShiftScheduler()
    up, w, eps = torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 2, 2), 0.4), torch.ones(1, 3, 2, 2)
    assert torch.allclose(scheduler.prior(up, w, eps), torch.full_like(up, 0.5 + 2.5 * 0.99 * 0.4))


def test_step_with_true_x0_reproduces_the_forward_marginal():
    """If x_t ~ q(x_t|x0) and x̂0 = x0, one step must give x_{t−1} ~ q(x_{t−1}|x0) in mean and spread."""
    gen = torch.Generator().manual_seed(0)
    scheduler = ResShiftScheduler()
    scheduler.set_timesteps(5)
    shape = (1, 3, 256, 256)
    x0, up = torch.full(shape, 0.3), torch.full(shape, 0.7)
    weight = torch.full(shape, 0.6)
    index = 3
    eta_t, eta_prev = scheduler.etas[index].float(), scheduler.etas[index - 1].float()
    x_t = forward_sample(x0, up, eta_t, weight, torch.randn(shape, generator=gen), scheduler.kappa)
    x_prev = scheduler.step(x0, index, x_t, weight, torch.randn(shape, generator=gen))
    assert x_prev.mean().item() == pytest.approx(0.3 + eta_prev.item() * 0.4, abs=0.01)
    assert x_prev.std().item() == pytest.approx(2.5 * math.sqrt(eta_prev.item()) * 0.6, rel=0.02)


def test_noise_scales_shrink_the_posterior_noise_and_the_last_step_has_its_own():
    shape = (1, 3, 64, 64)
    x0, x_t = torch.full(shape, 0.3), torch.full(shape, 0.5)
    weight, noise = torch.full(shape, 0.6), torch.randn(shape, generator=torch.Generator().manual_seed(2))
    scheduler = ResShiftScheduler(noise_scale=0.5, last_noise_scale=0.0)
    scheduler.set_timesteps(5)
    quiet = scheduler.step(x0, 1, x_t, weight, noise)
    assert torch.equal(quiet, scheduler.step(x0, 1, x_t, weight, None))  # the posterior mean
    c_noise = posterior_coefficients(float(scheduler.etas[2]), float(scheduler.etas[3]), 2.5)[2]
    spread = (scheduler.step(x0, 3, x_t, weight, noise) - scheduler.step(x0, 3, x_t, weight, None)).std()
    assert float(spread) == pytest.approx(0.5 * c_noise * 0.6 * float(noise.std()), rel=1e-4)
    with pytest.raises(ValueError):
        ResShiftScheduler(noise_scale=-1.0)


def test_steps_out_of_range_are_rejected():
    with pytest.raises(ValueError):
        ResShiftScheduler().set_timesteps(0)


def test_blend_coefficient_by_hand():
    # s = 2.5·√0.001·0.4/(1 − 0.001) = 0.0316544; c = 0.06²/(0.06² + s²) = 0.78225
    c = blend_coefficient(0.001, torch.tensor(0.4), kappa=2.5, aux_error=0.06)
    assert float(c) == pytest.approx(0.78225, abs=1e-4)
    assert float(blend_coefficient(0.9801, torch.tensor(1.0), 2.5, 0.06)) < 1e-5


def test_blended_base_beats_both_of_its_parts():
    """With g = x0 + σ_g·noise and x_τ from the forward process, the mix has the smaller error of the two."""
    gen = torch.Generator().manual_seed(1)
    shape = (1, 3, 128, 128)
    x0, up = torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)
    aux = x0 + 0.06 * torch.randn(shape, generator=gen)
    weight = torch.full(shape, 0.5)
    for eta in (0.001, 0.03, 0.2):
        x_t = forward_sample(x0, up, torch.tensor(eta), weight, torch.randn(shape, generator=gen), 2.5)
        from_sample = (x_t - eta * up) / (1 - eta)
        base = blended_x0_base(x_t, up, aux, eta, weight, kappa=2.5, aux_error=0.06)
        mse = {name: float(((x - x0) ** 2).mean()) for name, x in
               (("base", base), ("sample", from_sample), ("aux", aux))}
        assert mse["base"] < min(mse["sample"], mse["aux"])


def test_predict_x0_by_prediction_type():
    shape = (2, 3, 8, 8)
    output, x_t, up, aux = (torch.rand(shape, generator=torch.Generator().manual_seed(i)) for i in range(4))
    weight = torch.full(shape, 0.7)
    assert torch.equal(ResShiftScheduler().predict_x0(output, 0.01, x_t, up, aux, weight), output)
    blend = ResShiftScheduler(prediction_type="blend", aux_error=0.05)
    eta = torch.tensor([0.01, 0.5]).view(2, 1, 1, 1)
    expected = output + blended_x0_base(x_t, up, aux, eta, weight, 2.5, 0.05)
    assert torch.allclose(blend.predict_x0(output, eta, x_t, up, aux, weight), expected)


def test_scheduler_config_round_trip_and_validation():
    scheduler = ResShiftScheduler(kappa=2.0, prediction_type="blend", aux_error=0.04, last_noise_scale=0.0)
    assert ResShiftScheduler.from_config(scheduler.config) == scheduler
    assert ResShiftScheduler.from_config({"kappa": 2.0}).prediction_type == "sample"  # headers written before it
    with pytest.raises(ValueError):
        ResShiftScheduler(prediction_type="epsilon")


def test_detail_sets_the_posterior_noise_and_keeps_the_rest():
    base = ResShiftScheduler(prediction_type="blend", noise_scale=0.5, last_noise_scale=0.0)
    base.set_timesteps(4)
    tuned = base.with_detail(0.2)
    assert tuned.noise_scale == 0.2 and base.noise_scale == 0.5
    assert {k: v for k, v in tuned.config.items() if k != "noise_scale"} == \
        {k: v for k, v in base.config.items() if k != "noise_scale"}
    assert tuned.num_steps == 4
    for wrong in (-0.1, 1.01):
        with pytest.raises(ValueError, match="detail"):
            base.with_detail(wrong)

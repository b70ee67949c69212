import pytest
import torch

from qusr_cli.aux_sr import auxiliary_estimate, bicubic_upsample
from qusr_cli.color_fix import adain_color_fix, apply_color_fix, wavelet_color_fix
from qusr_cli.noise import NoiseField
from qusr_cli.uncertainty import noise_weight, uncertainty


def test_uncertainty_is_half_the_absolute_difference():
    aux = torch.tensor([[[[0.2, 0.9]]]])
    up = torch.tensor([[[[0.5, 0.1]]]])
    assert torch.allclose(uncertainty(aux, up), torch.tensor([[[[0.15, 0.4]]]]))


@pytest.mark.parametrize("psi, expected", [(0.0, 0.4), (0.025, 0.7), (0.05, 1.0), (0.3, 1.0)])
def test_noise_weight_formula(psi, expected):
    assert noise_weight(torch.tensor(psi)).item() == pytest.approx(expected)


def test_noise_weight_reads_its_parameters():
    assert noise_weight(torch.tensor(0.1), floor=0.2, psi_max=0.2).item() == pytest.approx(0.6)


def test_bicubic_upsample_is_4x_and_keeps_constants():
    lr = torch.full((1, 3, 5, 7), 0.25)
    up = bicubic_upsample(lr)
    assert up.shape == (1, 3, 20, 28)
    assert torch.allclose(up, torch.full_like(up, 0.25))


def test_auxiliary_estimate_is_clamped():
    class Overshoot(torch.nn.Module):
        def forward(self, lr):
            return bicubic_upsample(lr) * 3 - 1

    out = auxiliary_estimate(Overshoot(), torch.rand(1, 3, 4, 4))
    assert out.min() >= 0 and out.max() <= 1 and (out == 1).any() and (out == 0).any()


def test_noise_field_windows_agree_where_they_overlap():
    field = NoiseField(seed=7)
    whole = field.window(2, 0, 0, 300, 280)
    part = field.window(2, 100, 130, 150, 120)
    assert torch.equal(whole[:, :, 100:250, 130:250], part)
    assert abs(whole.mean().item()) < 0.02 and abs(whole.std().item() - 1) < 0.02


def test_noise_field_depends_on_seed_and_draw():
    a = NoiseField(1).window(0, 0, 0, 16, 16)
    assert not torch.equal(a, NoiseField(2).window(0, 0, 0, 16, 16))
    assert not torch.equal(a, NoiseField(1).window(1, 0, 0, 16, 16))
    assert torch.equal(a, NoiseField(1).window(0, 0, 0, 16, 16))


def _textured(seed=0, size=96):
    gen = torch.Generator().manual_seed(seed)
    base = torch.linspace(0.2, 0.8, size).view(1, 1, 1, size).expand(1, 3, size, size)
    return (base + 0.1 * torch.randn(1, 3, size, size, generator=gen)).clamp(0, 1)


@pytest.mark.parametrize("fix", [wavelet_color_fix, adain_color_fix])
def test_color_fix_removes_an_injected_cast(fix):
    reference = _textured()
    cast = reference + torch.tensor([0.12, -0.05, -0.10]).view(1, 3, 1, 1)
    fixed = fix(cast, reference)
    before = (cast.mean(dim=(2, 3)) - reference.mean(dim=(2, 3))).abs().max()
    after = (fixed.mean(dim=(2, 3)) - reference.mean(dim=(2, 3))).abs().max()
    assert before > 0.09 and after < 0.005


def test_wavelet_fix_keeps_the_samples_detail():
    reference = torch.full((1, 3, 64, 64), 0.5)
    detail = 0.1 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    fixed = wavelet_color_fix(reference + 0.2 + detail, reference)
    # fine detail survives: high-pass correlation with the injected detail stays high
    corr = torch.corrcoef(torch.stack([(fixed - 0.5).flatten(), detail.flatten()]))[0, 1]
    assert corr > 0.9
    assert abs(fixed.mean().item() - 0.5) < 0.01


def test_unknown_color_fix_is_rejected():
    with pytest.raises(ValueError):
        apply_color_fix("sepia", torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))

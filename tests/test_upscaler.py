import logging
from dataclasses import replace

import pytest
import torch

from qusr_cli.bundle import load_bundle
from qusr_cli.options import DETAIL_MIN_STEPS
from qusr_cli.upscaler import UpscaleOptions, Upscaler, resize_output

from helpers import make_tiny_model


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    files = make_tiny_model(tmp_path_factory.mktemp("tiny"))
    return Upscaler(load_bundle("tiny", files), device=torch.device("cpu"), dtype=torch.float32)


def _photo(height=40, width=48, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, width).view(1, 1, 1, width).expand(1, 3, height, width)
    return (0.6 * ramp + 0.4 * torch.rand(1, 3, height, width, generator=gen)).clamp(0, 1)


def test_output_is_4x_in_range_and_deterministic_per_seed(upscaler):
    lr = _photo()
    first = upscaler.upscale(lr, UpscaleOptions(seed=3)).image
    again = upscaler.upscale(lr, UpscaleOptions(seed=3)).image
    other = upscaler.upscale(lr, UpscaleOptions(seed=4)).image
    assert first.shape == (1, 3, 160, 192)
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-4


@pytest.mark.parametrize("steps", [1, 2, 5, 12])
def test_any_step_count_runs(upscaler, steps):
    out = upscaler.upscale(_photo(16, 16), UpscaleOptions(steps=steps)).image
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_steps_outside_1_to_50_are_refused(upscaler):
    with pytest.raises(ValueError):
        upscaler.upscale(_photo(16, 16), UpscaleOptions(steps=51))


def test_tiling_machinery_is_exact_when_the_denoiser_is_local(tmp_path):
    """With the denoiser's output layer zeroed, x̂0 = g(y): every tile sees the same noise, the same
    context and the same colour reference, so tiled and untiled runs must agree to float precision."""
    bundle = load_bundle("tiny", make_tiny_model(tmp_path))
    with torch.no_grad():
        bundle.denoiser.conv_out.weight.zero_()
        bundle.denoiser.conv_out.bias.zero_()
    local = Upscaler(bundle, device=torch.device("cpu"), dtype=torch.float32)
    lr = _photo(64, 72, seed=1)
    whole = local.upscale(lr, UpscaleOptions(tile=128, seed=5)).image
    tiled = local.upscale(lr, UpscaleOptions(tile=40, tile_overlap=12, tile_margin=8, seed=5)).image
    assert torch.allclose(whole, tiled, atol=1e-5)


def test_odd_sizes_are_padded_and_cropped(upscaler):
    out = upscaler.upscale(_photo(13, 7), UpscaleOptions()).image
    assert out.shape == (1, 3, 52, 28)


def test_out_of_memory_halves_the_tile_and_says_so_once(upscaler, monkeypatch, caplog):
    real = Upscaler._upscale_tile
    calls = {"n": 0}

    def flaky(self, lr_tile, tile, options, prior, field, on_step):
        calls["n"] += 1
        if lr_tile.shape[-1] > 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, lr_tile, tile, options, prior, field, on_step)

    monkeypatch.setattr(Upscaler, "_upscale_tile", flaky)
    with caplog.at_level(logging.WARNING, logger="qusr"):
        result = upscaler.upscale(_photo(64, 64), UpscaleOptions(tile=128, tile_margin=0))
    assert result.tile == 32 and result.image.shape == (1, 3, 256, 256)
    assert sum("tile size halved" in r.getMessage() for r in caplog.records) == 1


def test_progress_counts_every_step_of_every_tile(upscaler):
    calls = []
    upscaler.upscale(_photo(24, 24), UpscaleOptions(steps=3), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]  # one tile: still one report per step
    calls.clear()
    upscaler.upscale(_photo(64, 64), UpscaleOptions(steps=2, tile=32, tile_margin=0),
                     progress=lambda done, total: calls.append((done, total)))
    tiles = calls[-1][1] // 2
    assert tiles > 1 and calls == [(k, 2 * tiles) for k in range(1, 2 * tiles + 1)]


def test_explain_returns_consistent_maps(upscaler):
    explanation = upscaler.explain(_photo(24, 24))
    assert explanation.weight.shape == explanation.psi.shape == (1, 3, 96, 96)
    expected = 0.4 + 0.6 * (explanation.psi / 0.05).clamp(0, 1)
    assert torch.allclose(explanation.weight, expected, atol=1e-5)
    assert torch.allclose(explanation.psi, 0.5 * (explanation.aux - explanation.up).abs(), atol=1e-5)


def test_resize_output_for_other_scales():
    image = torch.rand(1, 3, 40, 40)
    assert resize_output(image, (10, 10), 4.0) is image
    assert resize_output(image, (10, 10), 2.5).shape == (1, 3, 25, 25)


def test_best_of_n_keeps_the_lowest_niqe_candidate_and_matches_single_runs(upscaler):
    from qusr_cli.metrics import niqe_score

    lr = _photo(32, 32, seed=2)
    best = upscaler.upscale(lr, UpscaleOptions(seed=10, candidates=3, steps=2))
    singles = [upscaler.upscale(lr, UpscaleOptions(seed=10 + k, steps=2)).image for k in range(3)]
    assert len(best.candidate_scores) == 3
    for single, score in zip(singles, best.candidate_scores):
        assert score == pytest.approx(niqe_score(single), rel=1e-3, abs=1e-3)
    chosen = min(range(3), key=best.candidate_scores.__getitem__)
    assert best.seed == 10 + chosen
    assert torch.allclose(best.image, singles[chosen], atol=1e-4)


def test_best_of_n_refuses_outputs_too_small_to_score(upscaler):
    from qusr_cli.errors import QusrError

    with pytest.raises(QusrError, match="96"):
        upscaler.upscale(_photo(16, 16), UpscaleOptions(candidates=2))


def test_noise_weighting_off_changes_the_sample(upscaler):
    lr = _photo(24, 24)
    weighted = upscaler.upscale(lr, UpscaleOptions(seed=1)).image
    flat = upscaler.upscale(lr, UpscaleOptions(seed=1, noise_weighting=False)).image
    assert (weighted - flat).abs().max() > 1e-3


def test_settings_come_from_the_denoiser_header():
    from qusr_cli.bundle import DiffusionSettings

    settings = DiffusionSettings.from_info({"scheduler": {"kappa": 2.0, "power": 0.3},
                                            "diffusion": {"floor": 0.5, "psi_max": 0.1}})
    scheduler = settings.scheduler()
    assert (scheduler.kappa, scheduler.power, scheduler.etas_end) == (2.0, 0.3, 0.99)
    assert (settings.floor, settings.psi_max) == (0.5, 0.1)
    assert DiffusionSettings.from_info({}) == DiffusionSettings()


def test_tiles_match_the_whole_image_with_the_embedded_model():
    """With trained weights GroupNorm and attention see only their tile, so tiles cannot be exact;
    they must still agree closely with the untiled result (measured: mean 0.0018, max 0.058)."""
    from pathlib import Path

    from qusr_cli.imageio import read_image
    from qusr_cli.loading import load_upscaler

    photo = Path(__file__).resolve().parents[2] / "shared/data/eval/realset65/ADE_val_00000114.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} is not here")
    embedded = load_upscaler(dtype="fp32", threads=1, critic="none")
    lr = read_image(photo).rgb[:, :, :96, :112]
    whole = embedded.upscale(lr, UpscaleOptions(seed=3, tile=128)).image
    tiled = embedded.upscale(lr, UpscaleOptions(seed=3, tile=48)).image
    difference = (whole - tiled).abs()
    assert difference.mean() < 0.005
    assert (difference > 8 / 255).float().mean() < 0.01


def test_a_denoiser_trained_with_another_text_encoder_is_refused(tmp_path):
    from qusr_cli.archs import DenoiserUNet
    from qusr_cli.errors import WeightsError
    from qusr_cli.loading import load_upscaler
    from qusr_cli.weights.checkpoint import save_checkpoint

    from helpers import TINY_UNET

    make_tiny_model(tmp_path)
    save_checkpoint(tmp_path / "denoiser.safetensors", DenoiserUNet(**TINY_UNET), role="denoiser",
                    info={"diffusion": {"text_encoder": "clip"}})
    with pytest.raises(WeightsError, match="trained with text encoder 'clip'"):
        load_upscaler(weights=tmp_path, threads=1, critic="none")


def test_select_reaches_the_engine_and_an_unknown_one_is_refused(upscaler):
    with pytest.raises(ValueError, match="select must be one of niqe"):
        upscaler.upscale(_photo(32, 32), UpscaleOptions(candidates=2, select="brisque"))


def test_engine_options_load_an_upscaler_with_the_critic_vocabulary(tmp_path):
    from qusr_cli import EngineOptions
    from qusr_cli.errors import QusrError

    make_tiny_model(tmp_path)
    options = EngineOptions(weights=tmp_path, device="cpu", dtype="fp32", threads=1, critic="builtin")
    assert options.load().critic.name == "builtin"  # image statistics, whatever the model ships
    with pytest.raises(QusrError, match="ships no learned critic"):
        EngineOptions(weights=tmp_path, threads=1, critic="learned").load()
    with pytest.raises(QusrError, match="unknown critic 'statistics'"):
        EngineOptions(weights=tmp_path, threads=1, critic="statistics").load()


def test_a_bundle_whose_nets_disagree_on_the_scale_is_refused(tmp_path):
    from qusr_cli.archs import CompactSR
    from qusr_cli.errors import WeightsError
    from qusr_cli.weights.checkpoint import save_checkpoint

    files = make_tiny_model(tmp_path)
    save_checkpoint(files["aux"], CompactSR(num_feat=4, num_conv=1, scale=2), role="aux")
    with pytest.raises(WeightsError, match="upscales 2x but its denoiser 4x"):
        load_bundle("mixed", files)


def test_detail_dials_between_the_posterior_mean_and_full_noise(upscaler):
    lr = _photo(16, 16)
    sample = lambda **kw: upscaler.upscale(lr, UpscaleOptions(steps=3, seed=1, **kw)).image  # noqa: E731
    header = upscaler.bundle.settings.scheduler().noise_scale
    assert torch.equal(sample(), sample(detail=header))  # no --detail: the checkpoint's own sampler
    faithful, inventive = sample(detail=0.0), sample(detail=1.0)
    # the same seed: only the drawn posterior noise differs, and more of it moves the result further
    assert not torch.equal(faithful, inventive)
    assert float((sample(detail=0.5) - faithful).abs().mean()) < float((inventive - faithful).abs().mean())
    with pytest.raises(ValueError, match="detail"):
        sample(detail=1.5)


@pytest.mark.parametrize("steps", range(1, DETAIL_MIN_STEPS + 1))
def test_detail_acts_from_detail_min_steps_on(upscaler, steps):
    lr = _photo(16, 16)
    options = UpscaleOptions(steps=steps, seed=1)
    faithful, inventive = (upscaler.upscale(lr, replace(options, detail=d)).image for d in (0.0, 1.0))
    assert torch.equal(faithful, inventive) == replace(options, detail=1.0).detail_is_inert


def test_automatic_tiles_follow_the_working_memory_each_net_states(upscaler, monkeypatch):
    import copy
    from dataclasses import replace

    from qusr_cli.archs import CompactSR
    from qusr_cli.archs.rrdbnet import RRDBNet

    monkeypatch.setattr("qusr_cli.upscaler.free_memory_bytes", lambda device: 4 * 100 * 2 ** 20)

    def plain(net):
        engine = copy.copy(upscaler)
        engine.bundle = replace(upscaler.bundle, aux=net, denoiser=None)
        return engine

    wide_rrdb, light_compact = plain(RRDBNet(num_feat=64, num_block=1)), plain(CompactSR(num_feat=16, num_conv=1))
    # 100 MB at 12.8 KB per LR pixel: a 80 px tile (rounded down to 16s), not the denoiser's larger one
    assert wide_rrdb.auto_tile() == 80 < upscaler.auto_tile()
    assert light_compact.auto_tile() > upscaler.auto_tile()
    # all candidates share the budget
    assert upscaler.auto_tile(candidates=4) < upscaler.auto_tile()

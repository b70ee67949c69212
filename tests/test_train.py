import itertools
import json
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from qusr_cli.archs.compact import CompactSR
from qusr_cli.archs.critic_net import decode_estimates, encode_targets
from qusr_cli.cli.train_cmd import train_app
from qusr_cli.prior.critic import CriticResult
from qusr_cli.prior.learned_critic import LearnedCritic, grid_crops
from qusr_cli.train.aux import AuxTask
from qusr_cli.train.critic import CriticTask
from qusr_cli.train.dataset import DegradedCrops, fixed_batch
from qusr_cli.train.denoiser import INFERENCE_GRID, DenoiserTask, pad_prior, sample_tau
from qusr_cli.train.loop import LoopConfig, ema_decay, learning_rate, train
from qusr_cli.train.validate import PairedSet, psnr_y, sharpness_ratio, ssim_y
from qusr_cli.weights.rules import Int, OneOf
from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Three small synthetic 'photos': smooth colour fields with edges and fine texture."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        coarse = rng.uniform(0, 255, size=(6, 6, 3)).astype(np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((96, 96), Image.BICUBIC), dtype=np.float32)
        image[:, 40 + 8 * i:] *= 0.5
        image += rng.normal(0, 6, size=image.shape)
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


@pytest.fixture(scope="module")
def batch(photo_dir):
    return fixed_batch(DegradedCrops(photo_dir, crop=32, seed=1), range(4))


def quick_config(steps: int, **overrides) -> LoopConfig:
    base = dict(steps=steps, batch=4, lr=3e-3, warmup=2, save_every=steps, val_every=0, log_every=5,
                num_workers=0, ema_decay=0.9, seed=0)
    return LoopConfig(**{**base, **overrides})


def train_losses(folder) -> list[float]:
    return [r["loss"] for r in map(json.loads, (folder / "log.jsonl").read_text().splitlines()) if r["type"] == "train"]


def test_schedule_warms_up_then_decays_to_the_floor():
    config = LoopConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    values = [learning_rate(t, config) for t in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[-1] == pytest.approx(0.1, abs=0.01)
    assert ema_decay(0, 0.999) == pytest.approx(0.1) and ema_decay(10 ** 6, 0.999) == 0.999


def test_aux_overfits_a_fixed_batch_and_saves_a_loadable_checkpoint(tmp_path, batch):
    task = AuxTask(num_feat=8, num_conv=2)
    path = train(task, lambda start: itertools.repeat(batch, 40 - start), quick_config(40), tmp_path)
    losses = train_losses(tmp_path)
    assert losses[-1] < 0.9 * losses[0]  # it starts as bicubic, already near the target
    model = load_checkpoint(path, role="aux")
    assert isinstance(model, CompactSR) and model.config["num_feat"] == 8
    info = checkpoint_info(path)
    assert info["steps_done"] == 40 and info["loop"]["batch"] == 4 and "hardware" in info
    with torch.no_grad():
        assert model(batch["lr"]).shape == batch["hr"].shape


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, batch):
    config = quick_config(12, save_every=6)
    torch.manual_seed(0)
    straight = train(AuxTask(num_feat=8, num_conv=1), lambda s: itertools.repeat(batch, 12 - s), config,
                     tmp_path / "straight")

    def killed_at_six(start):
        yield from itertools.repeat(batch, 6 - start)
        raise KeyboardInterrupt  # the process dies right after the step-6 save

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(AuxTask(num_feat=8, num_conv=1), killed_at_six, config, tmp_path / "killed")
    assert json.loads((tmp_path / "killed" / "resume" / "state.json").read_text())["run"]["step"] == 6
    resumed = train(AuxTask(num_feat=8, num_conv=1), lambda s: itertools.repeat(batch, 12 - s), config,
                    tmp_path / "killed")
    a, b = load_checkpoint(straight).state_dict(), load_checkpoint(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert checkpoint_info(resumed)["steps_done"] == 12


def killed_after(batch, step: int):
    """Batches for a run that the process dies in, right after ``step``."""
    def batches(start):
        yield from itertools.repeat(batch, step - start)
        raise KeyboardInterrupt
    return batches


def test_kept_snapshots_record_their_step_and_cpu_time_across_a_resume(tmp_path, batch):
    config = quick_config(12, save_every=5, keep_every=4)
    with pytest.raises(KeyboardInterrupt):
        train(AuxTask(num_feat=8, num_conv=1), killed_after(batch, 8), config, tmp_path)
    train(AuxTask(num_feat=8, num_conv=1), lambda s: itertools.repeat(batch, 12 - s), config, tmp_path)
    snapshots = sorted((tmp_path / "snapshots").iterdir())
    # every 4th step is kept even though saves fall every 5th
    assert [p.name for p in snapshots] == [f"aux-step-{n:07d}.safetensors" for n in (4, 8, 12)]
    infos = [checkpoint_info(p) for p in snapshots]
    assert [i["steps_done"] for i in infos] == [4, 8, 12]
    cpu = [i["cpu_time_s"] for i in infos]
    assert all(i["cpu_counted_from_step"] == 0 for i in infos)
    assert cpu == sorted(cpu)  # summed over the resume, not restarted
    assert torch.equal(load_checkpoint(snapshots[-1]).state_dict()["body.0.weight"],
                       load_checkpoint(tmp_path / "aux.safetensors").state_dict()["body.0.weight"])
    cpu_logged = [r["cpu_s"] for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines())
                  if r["type"] == "train"]
    assert cpu_logged == sorted(cpu_logged) and cpu_logged[-1] > 0


def test_a_run_saved_before_cpu_time_was_counted_counts_from_its_resume(tmp_path, batch):
    config = quick_config(8, save_every=4)
    with pytest.raises(KeyboardInterrupt):
        train(AuxTask(num_feat=8, num_conv=1), killed_after(batch, 4), config, tmp_path)
    state = tmp_path / "resume" / "state.json"
    scalars = json.loads(state.read_text())
    for key in ("cpu_s", "cpu_from_step"):
        del scalars["run"][key]
    state.write_text(json.dumps(scalars))
    path = train(AuxTask(num_feat=8, num_conv=1), lambda s: itertools.repeat(batch, 8 - s), config, tmp_path)
    info = checkpoint_info(path)
    assert info["cpu_counted_from_step"] == 4 and info["cpu_time_s"] >= 0


def test_critic_learns_labels_and_the_learned_critic_reports(tmp_path, photo_dir):
    data = fixed_batch(DegradedCrops(photo_dir, crop=64, seed=2), range(8))
    task = CriticTask(width=8, held_out=data)
    path = train(task, lambda s: itertools.repeat(data, 60 - s), quick_config(60, batch=8, val_every=60), tmp_path)
    losses = train_losses(tmp_path)
    assert losses[-1] < 0.7 * losses[0]
    validation = checkpoint_info(path)["validation"]
    assert {"mae_noise_sigma", "mae_blur_sigma", "mae_jpeg_quality", "mean_guess_mae_noise_sigma"} <= set(validation)
    # Decoding inverts the target scaling.
    decoded = decode_estimates(encode_targets(data["params"]))
    assert torch.allclose(decoded["noise_sigma"], data["params"]["noise_sigma"].float(), rtol=1e-4, atol=1e-4)
    critic = LearnedCritic(path)
    result = critic.assess(torch.rand(1, 3, 80, 150))
    assert isinstance(result, CriticResult) and result.report is not None and result.critique
    assert result.source == "learned" and result.stats["crops"] == 6.0  # 2 rows x 3 columns of 64 px


def test_grid_crops_cover_the_image():
    image = torch.arange(200 * 300, dtype=torch.float32).reshape(1, 1, 200, 300).expand(1, 3, 200, 300)
    crops = grid_crops(image)
    assert crops.shape == (16, 3, 64, 64)
    assert float(crops[0, 0, 0, 0]) == 0.0 and float(crops[-1, 0, -1, -1]) == float(image[0, 0, -1, -1])
    assert grid_crops(image[..., :40, :40]).shape == (1, 3, 40, 40)


def test_tau_sampling_puts_weight_on_the_inference_grid():
    torch.manual_seed(0)
    on_grid = sample_tau(2000, grid_prob=1.0, jitter=0.02)
    distance = (on_grid[:, None] - torch.tensor(INFERENCE_GRID)[None]).abs().min(dim=1).values
    assert float(distance.max()) < 0.12 and on_grid.min() >= 0 and on_grid.max() <= 1
    uniform = sample_tau(4000, grid_prob=0.0)
    assert float(uniform.mean()) == pytest.approx(0.5, abs=0.03)
    mixed = sample_tau(4000, grid_prob=0.5, jitter=0.0)
    exact = (mixed[:, None] == torch.tensor(INFERENCE_GRID)[None]).any(dim=1).float().mean()
    assert float(exact) == pytest.approx(0.5, abs=0.04)


def test_pad_prior_masks_padding_and_null_samples():
    a = (torch.ones(1, 3, 384), torch.ones(1, 3, dtype=torch.bool))
    b = (2 * torch.ones(1, 5, 384), torch.ones(1, 5, dtype=torch.bool))
    tokens, mask = pad_prior([a, None, b], 384)
    assert tokens.shape == (3, 5, 384)
    assert mask.tolist() == [[True] * 3 + [False] * 2, [False] * 5, [True] * 5]
    assert float(tokens[0, 3:].abs().sum()) == 0.0
    assert pad_prior([None, None], 384) == (None, None)


class WordEncoder:
    """A deterministic stand-in for MiniLM: one 384-d token per word, hashed (tests stay offline and fast)."""

    name = "words"
    hidden_size = 384

    def __init__(self):
        self.calls = []

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(text)
        words = text.split()
        tokens = torch.stack([torch.randn(384, generator=torch.Generator().manual_seed(sum(map(ord, w))))
                              for w in words])[None]
        return tokens, torch.ones(1, len(words), dtype=torch.bool)


def test_denoiser_overfits_with_critique_priors(tmp_path, batch):
    aux = CompactSR(num_feat=8, num_conv=1).eval()
    encoder = WordEncoder()
    lr = batch["lr"]
    pairs = PairedSet(lr, batch["hr"], ["a", "b", "c", "d"])
    task = DenoiserTask(aux, encoder, critic=None, base_width=8, attention_heads=2, val_pairs=pairs, val_steps=2)
    config = quick_config(40, val_every=40)
    path = train(task, lambda s: itertools.repeat(batch, 40 - s), config, tmp_path)
    losses = train_losses(tmp_path)
    assert losses[-1] < 0.9 * losses[0]
    assert encoder.calls and any("photo" in c or "image" in c or "picture" in c or "shot" in c for c in encoder.calls)
    model = load_checkpoint(path, role="denoiser")
    assert model.config["base_width"] == 8
    validation = checkpoint_info(path)["validation"]
    assert math.isfinite(validation["qusr_psnr_y"]) and "bicubic_psnr_y" in validation


def test_captions_mix_true_null_and_critic_priors(batch):
    class FixedCritic:
        def estimate(self, images):
            n = len(images)
            return {"noise_sigma": torch.full((n,), 25.0), "blur_sigma": torch.full((n,), 3.0),
                    "jpeg_quality": torch.full((n,), 20.0), "severity": torch.ones(n)}

    task = DenoiserTask(CompactSR(num_feat=8, num_conv=1), WordEncoder(), critic=FixedCritic(), base_width=8,
                        attention_heads=2, null_prob=0.2, critic_prob=0.3)
    rng = random.Random(0)
    texts = [t for _ in range(60) for t in task.captions(batch["lr"], batch["params"], rng)]
    null_share = sum(t is None for t in texts) / len(texts)
    assert 0.1 < null_share < 0.3
    # The fixed critic's heavy noise, blur and JPEG only appear in captions it wrote.
    heavy = [t for t in texts if t and ("very blurry" in t or "heavily blurred" in t or "badly out of focus" in t
                                        or "strong blur" in t)]
    assert 0.1 < len(heavy) / len(texts) < 0.4


def test_metrics_behave():
    gt = torch.rand(2, 3, 48, 48)
    assert psnr_y(gt, gt) > 90 and ssim_y(gt, gt) == pytest.approx(1.0)
    noisy = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1)
    assert psnr_y(noisy, gt) < 40 and ssim_y(noisy, gt) < 1.0
    smooth = torch.nn.functional.avg_pool2d(gt, 3, stride=1, padding=1)
    assert sharpness_ratio(smooth, gt) < 0.8 < sharpness_ratio(gt, gt)


def test_cli_trains_and_resumes(tmp_path, photo_dir):
    runner = CliRunner()
    args = ["aux", "--data", str(photo_dir), "--out", str(tmp_path), "--batch", "2", "--crop", "32",
            "--workers", "0", "--val-every", "0", "--width", "8", "--depth", "1", "--save-every", "3"]
    first = runner.invoke(train_app, args + ["--steps", "3"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(train_app, args + ["--steps", "5"])
    assert second.exit_code == 0, second.output
    info = checkpoint_info(tmp_path / "aux.safetensors")
    assert info["steps_done"] == 5 and info["crop"] == 32 and info["images"] == 3
    steps = [r["step"] for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines())
             if r["type"] == "train"]
    assert steps == [3, 5]


def test_cli_trained_blend_denoiser_runs_in_the_engine(tmp_path, photo_dir):
    from qusr_cli.bundle import load_bundle
    from qusr_cli.upscaler import UpscaleOptions, Upscaler

    runner = CliRunner()
    common = ["--data", str(photo_dir), "--batch", "2", "--crop", "32", "--workers", "0", "--val-every", "0",
              "--steps", "3", "--width", "8"]
    aux = runner.invoke(train_app, ["aux", "--out", str(tmp_path / "aux"), "--depth", "1", *common])
    assert aux.exit_code == 0, aux.output
    denoiser = runner.invoke(train_app, ["denoiser", "--out", str(tmp_path / "den"), "--no-text", "--channel-mult",
                                         "1,2", "--aux", str(tmp_path / "aux" / "aux.safetensors"), *common])
    assert denoiser.exit_code == 0, denoiser.output
    bundle = load_bundle("trained", {"aux": tmp_path / "aux" / "aux.safetensors",
                                     "denoiser": tmp_path / "den" / "denoiser.safetensors"})
    scheduler = bundle.settings.scheduler()
    # σ_g was measured on training crops, printed, and stored for the engine
    printed = float(denoiser.output.split("σ_g of g on 64 training crops: ")[1].split()[0])
    assert scheduler.prediction_type == "blend" and scheduler.aux_error == pytest.approx(printed, abs=5e-5)
    assert 0.005 < scheduler.aux_error < 0.5
    assert bundle.denoiser.residual_base == "none"
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = Upscaler(bundle, device=torch.device("cpu"), dtype=torch.float32).upscale(
        lr, UpscaleOptions(steps=2)).image
    assert out.shape == (1, 3, 64, 64)
    # The UNet's own output is a small correction; only with the blend added is the result the photo.
    assert abs(float(out.mean()) - float(lr.mean())) < 0.05
    assert (scheduler.noise_scale, scheduler.last_noise_scale) == (1.0, 0.0)  # the sampling the header asks for

    # `train validate` on a paired set large enough for NIQE, with the header's sampling and an override
    rng = np.random.default_rng(5)
    for sub, size in (("lq", 26), ("gt", 104)):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(tmp_path / "pairs" / sub / "a.png")
    scored = {}
    for name, extra in (("header", []), ("noisy", ["--last-noise-scale", "1"])):
        result = runner.invoke(train_app, [
            "validate", "--aux", str(tmp_path / "aux" / "aux.safetensors"), "--denoiser",
            str(tmp_path / "den" / "denoiser.safetensors"), "--val-dir", str(tmp_path / "pairs"),
            "--json", str(tmp_path / f"{name}.json"), *extra])
        assert result.exit_code == 0, result.output
        scored[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert set(scored["header"]["bicubic"]) == {"psnr_y", "ssim_y", "sharpness", "niqe"}
    assert scored["header"]["bicubic"] == scored["noisy"]["bicubic"]
    ours = "qusr 5 steps, null prior"
    assert scored["header"][ours]["psnr_y"] != scored["noisy"][ours]["psnr_y"]


def test_hr_scales_give_crops_of_whole_scenes_and_close_ups(tmp_path):
    # A horizontal ramp 0 → 255 across 128 px: a 32-px crop of the photo as it is spans a quarter of
    # the ramp, one of the photo shrunk to a quarter spans all of it.
    ramp = np.tile(np.linspace(0, 255, 128, dtype=np.float32)[None, :, None], (128, 1, 3))
    Image.fromarray(ramp.round().astype(np.uint8)).save(tmp_path / "ramp.png")
    crops = DegradedCrops(tmp_path, crop=32, seed=0, hr_scales=(1.0, 0.25, 0.2))
    assert [tuple(level.shape[-2:]) for level in crops.levels[0]] == [(128, 128), (32, 32)]  # 0.2 is too small
    spans = [float(crops[i]["hr"].amax() - crops[i]["hr"].amin()) for i in range(40)]
    assert min(spans) < 0.35 and max(spans) > 0.9
    with pytest.raises(ValueError, match="no HR scale"):
        DegradedCrops(tmp_path, crop=32, hr_scales=(0.2,))


def test_cli_reports_bad_training_data_in_one_line(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(train_app, ["aux", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "Traceback" not in missing.output
    bad_scale = runner.invoke(train_app, ["aux", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                          "--hr-scales", "1,x"])
    assert bad_scale.exit_code == 2 and "comma-separated" in bad_scale.output


def test_measured_aux_error_is_the_rms_error_of_g(photo_dir):
    from qusr_cli.aux_sr import bicubic_upsample
    from qusr_cli.train.denoiser import measure_aux_error

    crops = DegradedCrops(photo_dir, crop=32, seed=3)
    fresh_g = CompactSR(num_feat=4, num_conv=1, upsample="bicubic")  # equals bicubic until trained
    samples = [crops[2 ** 61 + i] for i in range(10)]
    lr, hr = torch.stack([s["lr"] for s in samples]), torch.stack([s["hr"] for s in samples])
    expected = float(((bicubic_upsample(lr).clamp(0, 1) - hr) ** 2).mean().sqrt())
    assert measure_aux_error(fresh_g, crops, count=10, batch=4) == pytest.approx(expected, rel=1e-5)


def test_min_detail_redraws_flat_crops(tmp_path):
    # Left half flat grey, right half fine noise: with a detail floor the flat crops are redrawn.
    rng = np.random.default_rng(0)
    image = np.full((64, 128, 3), 128, np.uint8)
    image[:, 64:] = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "half.png")
    every = DegradedCrops(tmp_path, crop=32, seed=0)
    detailed = DegradedCrops(tmp_path, crop=32, seed=0, min_detail=20.0)

    def flat_share(crops):
        return sum(float(crops[i]["hr"].std()) < 0.01 for i in range(40)) / 40

    assert flat_share(every) > 0.2 and flat_share(detailed) == 0.0


def test_light_share_mixes_in_the_light_preset(photo_dir):
    plain = DegradedCrops(photo_dir, crop=32, seed=4)
    none = DegradedCrops(photo_dir, crop=32, seed=4, light_share=0.0)
    assert torch.equal(plain[3]["lr"], none[3]["lr"]) and none[3]["params"]["light"] == 0.0
    everything = DegradedCrops(photo_dir, crop=32, seed=4, light_share=1.0)
    assert all(everything[i]["params"]["light"] == 1.0 and everything[i]["params"]["second_order"] == 0.0
               for i in range(20))
    mixed = DegradedCrops(photo_dir, crop=32, seed=4, light_share=0.5)
    half = [mixed[i]["params"]["light"] for i in range(60)]
    assert 0.25 < sum(half) / len(half) < 0.75
    with pytest.raises(ValueError, match="light share"):
        DegradedCrops(photo_dir, crop=32, light_share=1.5)


class TinyDenoiser(torch.nn.Module):
    """A second denoiser architecture, as small as one can be: one conv over (x_t, up, g) and a τ gain."""

    arch_name = "tiny_test_denoiser"
    config_bounds = {"context_dim": Int(1, 4096), "residual_base": OneOf(("aux", "up", "none")),
                     "width": Int(1, 64), "scale": Int(1, 8)}

    def __init__(self, context_dim: int = 384, residual_base: str = "aux", width: int = 4, scale: int = 4):
        super().__init__()
        self.config = {"context_dim": context_dim, "residual_base": residual_base, "width": width, "scale": scale}
        self.residual_base = residual_base
        self.body = torch.nn.Sequential(torch.nn.Conv2d(9, width, 3, padding=1), torch.nn.SiLU(),
                                        torch.nn.Conv2d(width, 3, 3, padding=1))
        self.tau_gain = torch.nn.Linear(1, 3)

    @property
    def descriptor(self):
        from qusr_cli.archs import ArchDescriptor

        return ArchDescriptor(scale=self.config["scale"], context_dim=self.config["context_dim"])

    def forward(self, x_t, tau, cond):
        from qusr_cli.archs.contract import add_residual_base

        out = self.body(torch.cat([x_t, cond.up, cond.aux], 1).to(self.tau_gain.weight.dtype))
        out = out * (1 + self.tau_gain(tau.reshape(-1, 1).to(out.dtype)))[:, :, None, None]
        return add_residual_base(out, cond, self.residual_base)


@pytest.fixture()
def tiny_architecture():
    from qusr_cli.archs import REGISTRY

    REGISTRY.register(TinyDenoiser, role="denoiser")
    yield TinyDenoiser
    REGISTRY._entries.pop(TinyDenoiser.arch_name)


def test_registering_a_name_twice_is_an_error(tiny_architecture):
    from qusr_cli.archs import REGISTRY, DenoiserUNet

    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.register(tiny_architecture, role="denoiser")
    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.register(DenoiserUNet, role="denoiser")
    assert REGISTRY.names("denoiser") == ["tiny_test_denoiser", "unet"]


def test_an_architecture_without_bounds_is_refused_and_a_registered_ones_bounds_guard_headers(tiny_architecture):
    from qusr_cli.archs import REGISTRY
    from qusr_cli.errors import WeightsError
    from qusr_cli.weights.header_schema import validate_header

    class Unbounded(TinyDenoiser):
        arch_name = "unbounded_test_denoiser"
        config_bounds = None

    with pytest.raises(ValueError, match="config_bounds"):
        REGISTRY.register(Unbounded, role="denoiser")
    header = {"qusr.arch": "tiny_test_denoiser", "qusr.role": "denoiser",
              "qusr.config": json.dumps({"context_dim": 384, "residual_base": "aux", "width": 8, "scale": 4})}
    assert validate_header(header).config["width"] == 8
    with pytest.raises(WeightsError, match="width"):
        validate_header({**header, "qusr.config": json.dumps({"width": 100_000})})


def test_a_second_denoiser_architecture_trains_by_name_and_runs_in_the_engine(tmp_path, photo_dir, tiny_architecture):
    from qusr_cli.bundle import load_bundle
    from qusr_cli.upscaler import UpscaleOptions, Upscaler
    from qusr_cli.weights.checkpoint import save_checkpoint

    aux_path = save_checkpoint(tmp_path / "aux.safetensors", CompactSR(num_feat=8, num_conv=1, upsample="bicubic"),
                               role="aux")
    runner = CliRunner()
    result = runner.invoke(train_app, ["denoiser", "--arch", "tiny_test_denoiser", "--arch-option", "width=6",
                                       "--no-text", "--aux", str(aux_path), "--data", str(photo_dir),
                                       "--out", str(tmp_path / "den"), "--batch", "2", "--crop", "32",
                                       "--workers", "0", "--val-every", "0", "--steps", "3"])
    assert result.exit_code == 0, result.output
    bundle = load_bundle("tiny", {"aux": aux_path, "denoiser": tmp_path / "den" / "denoiser.safetensors"})
    assert isinstance(bundle.denoiser, TinyDenoiser) and bundle.denoiser.config["width"] == 6
    assert bundle.denoiser.residual_base == "none"  # the blend adds the base
    lr = torch.rand(1, 3, 18, 22, generator=torch.Generator().manual_seed(0))
    out = Upscaler(bundle, device=torch.device("cpu"), dtype=torch.float32).upscale(lr, UpscaleOptions(steps=2)).image
    assert out.shape == (1, 3, 72, 88) and 0 <= float(out.min()) and float(out.max()) <= 1

    unknown = runner.invoke(train_app, ["denoiser", "--arch", "nonesuch", "--aux", str(aux_path),
                                        "--data", str(photo_dir), "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "tiny_test_denoiser, unet" in unknown.output
    bad_option = runner.invoke(train_app, ["denoiser", "--arch", "tiny_test_denoiser", "--arch-option", "depth=3",
                                           "--no-text", "--aux", str(aux_path), "--data", str(photo_dir),
                                           "--out", str(tmp_path / "y"), "--crop", "32", "--workers", "0",
                                           "--val-every", "0", "--steps", "1", "--aux-error", "0.05"])
    assert bad_option.exit_code == 2 and "depth" in bad_option.output and "Traceback" not in bad_option.output

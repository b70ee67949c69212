"""The perceptual recipe: random-CNN loss, discriminator with DiffAugment, dead leaves, teacher term,
and a CLI run that uses all of them, resumes identically and loads in the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from qusr_cli.archs.compact import CompactSR
from qusr_cli.cli.train_cmd import train_app
from qusr_cli.train.adversarial import (Adversary, UNetDiscriminator, augment_cutout, augment_translation,
                                        diff_augment)
from qusr_cli.train.objective import RestorationObjective, perceptual_reference, teacher_is_faithful, teacher_l1
from qusr_cli.train.perceptual import RandomFeatures, random_feature_loss
from qusr_cli.train.procedural import DeadLeavesCrops, MixedSource, dead_leaves, leaf_radii
from qusr_cli.train.recipe import PerceptualRecipe
from qusr_cli.train.targets import unsharp_mask
from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint, save_checkpoint

from helpers import random_photos


def _image(seed: int, size: int = 32) -> torch.Tensor:
    return dead_leaves(seed, size)[None]


# ---- random-feature loss ------------------------------------------------------------------------


def test_the_seed_alone_fixes_the_random_network():
    a, b, other = RandomFeatures(seed=1), RandomFeatures(seed=1), RandomFeatures(seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.weights, b.weights))
    assert not torch.equal(a.weights[0], other.weights[0])
    # He-normal scale: the spread of each conv's weights is √(2 / (9·fan_in))
    for weight in RandomFeatures().weights:
        expected = (2.0 / (9 * weight.shape[1])) ** 0.5
        assert float(weight.std()) == pytest.approx(expected, rel=0.1)
    assert not any(w.requires_grad for w in a.weights)


def test_random_feature_loss_is_zero_on_the_target_and_grows_with_blur():
    network = RandomFeatures(widths=(8, 16))
    target = _image(0)
    blurred = F.avg_pool2d(F.pad(target, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    more_blurred = F.avg_pool2d(F.pad(blurred, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    assert float(random_feature_loss(network, target, target)) == pytest.approx(0.0, abs=1e-7)
    assert 0 < float(random_feature_loss(network, blurred, target)) < float(random_feature_loss(network, more_blurred,
                                                                                                target))


# ---- adversary ------------------------------------------------------------------------------------


def test_discriminator_gives_a_logit_per_pixel_and_augmentations_keep_gradients():
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    assert UNetDiscriminator(width=4)(images).shape == (2, 1, 32, 32)
    diff_augment(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    torch.manual_seed(0)
    moved = augment_translation(images.detach(), ratio=0.25)
    # a translation moves content without changing it: every non-zero pixel value exists in the source
    assert set(moved[moved != 0].tolist()) <= set(images.detach().flatten().tolist())
    holes = augment_cutout(torch.ones(2, 3, 32, 32), ratio=0.5)
    assert float((holes == 0).float().mean()) == pytest.approx(0.25)


def test_the_discriminator_learns_to_tell_sharp_from_blurred():
    torch.manual_seed(0)
    adversary = Adversary(width=8, lr=2e-3, weight=0.1)
    real = torch.cat([_image(seed) for seed in range(4)])
    fake = F.interpolate(F.avg_pool2d(real, 4), scale_factor=4, mode="bilinear", align_corners=False)
    with torch.no_grad():
        margin_before = float(adversary.discriminator(real).mean() - adversary.discriminator(fake).mean())
    for _ in range(60):
        adversary.generator_term(real, fake)
        adversary.update()
    with torch.no_grad():
        margin = float(adversary.discriminator(real).mean() - adversary.discriminator(fake).mean())
    assert margin > 1.0 and margin > margin_before + 1.0
    # the generator's term uses the discriminator without training it
    before = [p.clone() for p in adversary.discriminator.parameters()]
    adversary.optimizer.zero_grad(set_to_none=True)
    fake.requires_grad_(True)
    adversary.generator_term(real, fake).backward()
    assert fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in adversary.discriminator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, adversary.discriminator.parameters()))


# ---- objective ------------------------------------------------------------------------------------


def test_teacher_term_skips_samples_without_a_teacher():
    prediction, teacher = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    assert float(teacher_l1(prediction, teacher, torch.tensor([1.0, 0.0]))) == pytest.approx(1.0)
    assert float(teacher_l1(prediction, teacher, torch.tensor([0.0, 0.0]))) == 0.0


def test_the_gate_keeps_the_teacher_only_where_it_is_nearer_the_photo_than_bicubic():
    hr = torch.cat([_image(seed) for seed in range(2)])
    lr = F.avg_pool2d(hr, 4)
    faithful, invented = hr + 0.01, hr.flip(-1)
    teacher = torch.cat([faithful[:1], invented[1:]])
    assert teacher_is_faithful(teacher, hr, lr).tolist() == [1.0, 0.0]
    objective = RestorationObjective(fft_weight=0.0, teacher_weight=1.0, teacher_gate=True)
    _, parts = objective(hr, {"hr": hr, "lr": lr, "teacher": teacher, "has_teacher": torch.ones(2)})
    assert parts["teacher_share"] == 0.5 and parts["teacher_l1"] == pytest.approx(0.01, abs=1e-6)


def test_the_sharpened_target_steepens_edges_and_leaves_flat_regions_alone():
    flat = torch.full((1, 3, 32, 32), 0.5)
    step = flat.clone()
    step[..., 16:] = 0.6  # a soft edge: 0.1 across one pixel
    assert torch.equal(unsharp_mask(flat, 1.0), flat)
    sharpened = unsharp_mask(step, 1.0)
    assert sharpened[..., 15].mean() < 0.5 and sharpened[..., 16].mean() > 0.6  # overshoot on both sides
    assert torch.allclose(sharpened[..., :4], step[..., :4]) and torch.allclose(sharpened[..., -4:], step[..., -4:])
    noisy = flat + 0.005 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(unsharp_mask(noisy.clamp(0, 1), 1.0), noisy.clamp(0, 1))  # below the threshold: untouched


def test_each_term_of_the_objective_pulls_a_net_toward_its_target():
    torch.manual_seed(0)
    hr = torch.cat([_image(seed) for seed in range(2)])
    lr = F.avg_pool2d(hr, 4)
    teacher = hr.flip(-1)  # a target unlike the HR, so only the teacher term pulls this way
    batch = {"hr": hr, "teacher": teacher, "has_teacher": torch.ones(2)}
    for name, objective in (("teacher_l1", RestorationObjective(teacher_weight=10.0)),
                            ("random_features", RestorationObjective(feature_weight=1.0,
                                                                     features=RandomFeatures(widths=(8, 16))))):
        net = CompactSR(num_feat=8, num_conv=2)
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        values = []
        for _ in range(30):
            loss, parts = objective(net(lr), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            values.append(parts[name])
        assert values[-1] < 0.8 * values[0], name


# ---- procedural images ----------------------------------------------------------------------------


def test_dead_leaves_are_seeded_covered_and_sharp():
    assert torch.equal(dead_leaves(3, 64), dead_leaves(3, 64))
    assert not torch.equal(dead_leaves(3, 64), dead_leaves(4, 64))
    radii = leaf_radii(np.random.default_rng(0), 10_000, 2.0, 50.0)
    assert radii.min() >= 2.0 and radii.max() <= 50.0
    # density ∝ r^-3: P(r > 2·r_min) = (1/4 − 1/2500·…) / (1 − …) ≈ 1/4
    assert float((radii > 4.0).mean()) == pytest.approx(0.25, abs=0.02)
    image = dead_leaves(0, 128)
    assert image.min() >= 0 and image.max() <= 1
    steps = (image[:, :, 1:] - image[:, :, :-1]).abs().amax(0)
    assert float((steps > 0.2).float().mean()) > 0.01  # occlusion edges are one-pixel steps


def test_mixed_source_draws_procedural_samples_at_its_share(tmp_path):
    photos = DeadLeavesCrops(crop=16, seed=1)  # stands in for photos: any source of samples
    mixed = MixedSource(photos, DeadLeavesCrops(crop=16, seed=2), share=0.3, seed=0)
    drawn = [mixed[i] for i in range(60)]
    procedural = [not torch.equal(s["hr"], photos[i]["hr"]) for i, s in enumerate(drawn)]
    assert 0.1 < np.mean(procedural) < 0.5
    assert all(float(s["has_teacher"]) == 0.0 and torch.equal(s["teacher"], s["hr"]) for s in drawn)
    assert drawn[5]["lr"].shape == (3, 4, 4)


# ---- the whole recipe through the CLI -------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_inputs(tmp_path_factory):
    """Photos, a teacher cache of them (a tiny random teacher), and a tiny g."""
    root = tmp_path_factory.mktemp("recipe")
    random_photos(root / "photos", 2, 48)
    torch.manual_seed(0)
    teacher = save_checkpoint(root / "teacher.safetensors", CompactSR(num_feat=4, num_conv=1), role="aux")
    aux = save_checkpoint(root / "aux.safetensors", CompactSR(num_feat=4, num_conv=1), role="aux")
    result = CliRunner().invoke(train_app, [
        "teacher-cache", "--data", str(root / "photos"), "--out", str(root / "cache"), "--teacher", str(teacher),
        "--count", "8", "--shard-size", "4", "--crop", "32", "--hr-scales", "1", "--eval-dir", str(root / "none")])
    assert result.exit_code == 0, result.output
    return root, aux


def _recipe(root, aux, out, steps: int) -> list[str]:
    return ["denoiser", "--data", str(root / "photos"), "--out", str(out), "--aux", str(aux), "--no-text",
            "--teacher-cache", str(root / "cache"), "--crop", "16", "--teacher-weight", "1", "--feature-weight",
            "0.1", "--gan-weight", "0.1", "--disc-width", "4", "--procedural-share", "0.25", "--width", "8",
            "--channel-mult", "1,2", "--batch", "2", "--workers", "0", "--val-every", "0", "--save-every", "2",
            "--steps", str(steps), "--aux-error", "0.05"]


def _recipe_task(aux_path):
    from qusr_cli.train.denoiser import DenoiserTask

    torch.manual_seed(0)
    return DenoiserTask(load_checkpoint(aux_path, role="aux"), None, base_width=8, channel_mult=(1, 2),
                        aux_error=0.05, recipe=PerceptualRecipe(teacher_weight=1.0, feature_weight=0.1,
                                                                gan_weight=0.1, discriminator_width=4))


def test_a_killed_recipe_run_resumes_to_the_same_weights_and_discriminator(tmp_path, recipe_inputs):
    from qusr_cli.train.dataset import make_loader
    from qusr_cli.train.loop import LoopConfig, train
    from qusr_cli.train.teacher_cache import TeacherShards
    from safetensors.torch import load_file

    root, aux = recipe_inputs
    source = MixedSource(TeacherShards(root / "cache", crop=16), DeadLeavesCrops(crop=16, seed=0), 0.25)
    config = LoopConfig(steps=4, batch=2, lr=1e-3, warmup=1, save_every=2, val_every=0, log_every=1,
                        num_workers=0)

    def batches(start, stop_at=None):
        loader = make_loader(source, config.batch, start, config.steps, 0)
        for step, batch in enumerate(loader, start):
            if step == stop_at:
                raise KeyboardInterrupt  # the process dies right after the step-2 save
            yield batch

    straight = train(_recipe_task(aux), batches, config, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train(_recipe_task(aux), lambda start: batches(start, stop_at=2), config, tmp_path / "killed")
    resumed = train(_recipe_task(aux), batches, config, tmp_path / "killed")

    a, b = load_checkpoint(straight).state_dict(), load_checkpoint(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    states = [load_file(str(tmp_path / run / "resume" / "state.safetensors")) for run in ("straight", "killed")]
    adversary_keys = [k for k in states[0] if k.startswith("adversary")]
    assert adversary_keys and all(torch.equal(states[0][k], states[1][k]) for k in adversary_keys)
    logs = [json.loads(line) for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["discriminator_loss"]) and "teacher_l1" in r and "random_features" in r
               for r in logs if r["type"] == "train")


def test_the_recipe_through_the_cli_records_itself_and_runs_in_the_engine(tmp_path, recipe_inputs):
    from qusr_cli.bundle import load_bundle
    from qusr_cli.upscaler import Upscaler

    root, aux = recipe_inputs
    result = CliRunner().invoke(train_app, _recipe(root, aux, tmp_path / "run", 2))
    assert result.exit_code == 0, result.output
    info = checkpoint_info(tmp_path / "run" / "denoiser.safetensors")
    assert "L1(teacher)" in info["task"]["loss"] and "L_GAN" in info["task"]["loss"]
    assert info["teacher_cache"]["samples"] == 8 and info["procedural_share"] == 0.25
    assert info["procedural"]["kind"] == "dead leaves"
    bundle = load_bundle("recipe", {"aux": aux, "denoiser": tmp_path / "run" / "denoiser.safetensors"})
    upscaler = Upscaler(bundle, device=torch.device("cpu"), dtype=torch.float32)
    assert upscaler.upscale(torch.rand(1, 3, 16, 16)).image.shape == (1, 3, 64, 64)


def test_g_learns_from_the_teacher_cache_through_the_cli_and_runs_in_the_engine(tmp_path, recipe_inputs):
    from qusr_cli.bundle import load_bundle
    from qusr_cli.train.teacher_cache import TeacherShards
    from qusr_cli.upscaler import Upscaler

    root, aux = recipe_inputs
    result = CliRunner().invoke(train_app, [
        "aux", "--data", str(root / "photos"), "--out", str(tmp_path / "g"), "--teacher-cache", str(root / "cache"),
        "--crop", "16", "--teacher-weight", "2", "--width", "4", "--depth", "1", "--batch", "4", "--workers", "0",
        "--val-every", "0", "--steps", "40", "--lr", "1e-2", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    info = checkpoint_info(tmp_path / "g" / "aux.safetensors")
    assert info["task"]["loss"] == "L1 + 2.0·L1(teacher)" and info["teacher_cache"]["samples"] == 8
    logs = [json.loads(line) for line in (tmp_path / "g" / "log.jsonl").read_text().splitlines()]
    teacher_l1 = [r["teacher_l1"] for r in logs if r["type"] == "train"]
    assert len(teacher_l1) >= 3 and teacher_l1[-1] < teacher_l1[0]
    trained = load_checkpoint(tmp_path / "g" / "aux.safetensors", role="aux")
    cached = TeacherShards(root / "cache")[0]
    with torch.no_grad():
        distance = (trained(cached["lr"][None]) - cached["teacher"]).abs().mean()
        before = (load_checkpoint(aux, role="aux")(cached["lr"][None]) - cached["teacher"]).abs().mean()
    assert distance < before
    bundle = load_bundle("restoring-g", {"aux": tmp_path / "g" / "aux.safetensors"})
    assert Upscaler(bundle, device=torch.device("cpu"), dtype=torch.float32).upscale(
        torch.rand(1, 3, 16, 16)).image.shape == (1, 3, 64, 64)


def test_a_teacher_weight_without_a_cache_is_one_line(tmp_path, recipe_inputs):
    root, aux = recipe_inputs
    args = [a for a in _recipe(root, aux, tmp_path / "x", 2)]
    cut = args.index("--teacher-cache")
    result = CliRunner().invoke(train_app, args[:cut] + args[cut + 2:])
    assert result.exit_code != 0 and "--teacher-weight needs --teacher-cache" in result.output


def test_validation_scores_qusr_by_niqe_on_centre_crops_of_real_photos(tmp_path, recipe_inputs):
    from qusr_cli.train.validate import load_centre_crops

    root, aux = recipe_inputs
    photos = tmp_path / "real"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name, size in (("big", (90, 70)), ("small", (40, 40))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(photos / f"{name}.png")
    crops = load_centre_crops(photos, limit=8, side=64)
    assert crops.shape == (1, 3, 64, 64)  # the 40-px photo is too small to give a crop
    big = np.asarray(Image.open(photos / "big.png"), dtype=np.float32) / 255
    assert np.allclose(crops[0].permute(1, 2, 0).numpy(), big[3:67, 13:77], atol=1e-6)

    args = _recipe(root, aux, tmp_path / "run", 1)
    args[args.index("--val-every") + 1] = "1"
    result = CliRunner().invoke(train_app, args + ["--niqe-set", str(photos), "--val-dir", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    validations = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
                   if json.loads(line)["type"] == "val"]
    assert validations and all(np.isfinite(v["qusr_crops_niqe"]) for v in validations)


def test_a_run_without_resume_state_starts_from_init_weights(tmp_path, recipe_inputs):
    root, aux = recipe_inputs
    args = _recipe(root, aux, tmp_path / "first", 1)
    first = CliRunner().invoke(train_app, args)
    assert first.exit_code == 0, first.output
    kept = tmp_path / "first" / "denoiser.safetensors"
    # the run folder is lost: a new run starts from the kept weights, not from random ones
    lost = _recipe(root, aux, tmp_path / "again", 1)
    again = CliRunner().invoke(train_app, lost + ["--init", str(kept), "--lr", "1e-12", "--gan-weight", "0"])
    assert again.exit_code == 0 and "starting from" in again.output, again.output
    a = load_checkpoint(kept).state_dict()
    b = load_checkpoint(tmp_path / "again" / "denoiser.safetensors").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)
    assert checkpoint_info(tmp_path / "again" / "denoiser.safetensors")["initialised_from"] == str(kept)
    assert "discriminator starts untrained" not in again.output  # no GAN term, nothing to warn of
    # with a GAN term, the run says that its discriminator does not come back with the weights
    adversarial = CliRunner().invoke(train_app, _recipe(root, aux, tmp_path / "gan", 1) + ["--init", str(kept)])
    assert adversarial.exit_code == 0 and "discriminator starts untrained" in adversarial.output, adversarial.output
    # with resume state present, --init is ignored
    resumed = CliRunner().invoke(train_app, lost[:-1] + ["2", "--init", str(kept), "--gan-weight", "0"])
    assert resumed.exit_code == 0 and "starting from" not in resumed.output, resumed.output
    # another architecture is refused in one line
    other = _recipe(root, aux, tmp_path / "wide", 1)
    other[other.index("--width") + 1] = "16"
    refused = CliRunner().invoke(train_app, other + ["--init", str(kept)])
    assert refused.exit_code != 0 and "but this run trains" in refused.output
    other[other.index("--width") + 1] = "12"  # GroupNorm needs a multiple of 8: one line, not a traceback
    refused = CliRunner().invoke(train_app, other)
    assert refused.exit_code != 0 and "--arch unet" in refused.output and "divisible" in refused.output


# ---- the distilled g: a teacher cut to its first blocks, fine-tuned to the teacher alone ----------


def test_a_cut_rrdbnet_keeps_its_first_blocks_head_tail_and_licence(tmp_path):
    from qusr_cli.archs.rrdbnet import RRDBNet
    from qusr_cli.errors import WeightsError
    from qusr_cli.weights.truncate import truncate_rrdbnet

    torch.manual_seed(0)
    deep = RRDBNet(num_feat=8, num_block=3, num_grow_ch=4)
    source = save_checkpoint(tmp_path / "deep.safetensors", deep, role="aux",
                             info={"source": "a teacher", "licence": "BSD-3-Clause"})
    cut = truncate_rrdbnet(source, 2, tmp_path / "cut.safetensors")
    shallow = load_checkpoint(cut, role="aux")
    assert shallow.config == {**deep.config, "num_block": 2}
    kept, original = shallow.state_dict(), deep.state_dict()
    assert all(torch.equal(kept[key], original[key]) for key in kept)  # every kept weight is the source's
    assert not any(key.startswith("body.2.") for key in kept)
    info = checkpoint_info(cut)
    assert info["licence"] == "BSD-3-Clause" and info["truncated_from"]["kept"] == 2
    with torch.no_grad():  # a working net of the same scale, not the deep one's function
        image = torch.rand(1, 3, 8, 8)
        assert shallow(image).shape == deep(image).shape and not torch.equal(shallow(image), deep(image))
    with pytest.raises(WeightsError, match="keep between 1 and 2"):
        truncate_rrdbnet(source, 3, tmp_path / "all.safetensors")
    compact = save_checkpoint(tmp_path / "compact.safetensors", CompactSR(num_feat=4, num_conv=1), role="aux")
    with pytest.raises(WeightsError, match="only an RRDBNet"):
        truncate_rrdbnet(compact, 1, tmp_path / "x.safetensors")


def test_pure_distillation_leaves_the_photo_out_of_the_loss():
    hr, teacher = _image(0), _image(1)
    prediction = _image(2)
    batch = {"hr": hr, "teacher": teacher, "has_teacher": torch.ones(1)}
    loss, parts = RestorationObjective(fft_weight=0.0, teacher_weight=1.0, hr_weight=0.0)(prediction, batch)
    assert float(loss) == pytest.approx(parts["teacher_l1"]) and parts["l1"] > 0  # logged, not weighted
    with pytest.raises(ValueError, match="no term"):
        RestorationObjective(fft_weight=0.0, hr_weight=0.0)


def test_teacher_as_real_points_the_feature_and_gan_terms_at_the_teacher():
    hr, teacher = torch.cat([_image(0), _image(1)]), torch.cat([_image(2), _image(3)])
    batch = {"hr": hr, "teacher": teacher, "has_teacher": torch.tensor([1.0, 0.0])}
    reference = perceptual_reference(hr, batch)
    assert torch.equal(reference[0], teacher[0]) and torch.equal(reference[1], hr[1])  # no teacher: the photo
    assert perceptual_reference(hr, {"hr": hr}) is hr
    both = {"hr": hr, "teacher": teacher, "has_teacher": torch.ones(2)}
    towards = lambda to_teacher: RestorationObjective(  # noqa: E731
        fft_weight=0.0, hr_weight=0.0, feature_weight=1.0, teacher_as_real=to_teacher,
        adversary=Adversary(width=8, weight=0.1))
    matched = towards(True)
    _, parts = matched(teacher.clone(), both)  # a prediction equal to the teacher: nothing left to match
    assert parts["random_features"] == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(matched.adversary._pair[0], teacher)  # the discriminator's real images
    photo = towards(False)
    _, parts = photo(teacher.clone(), both)
    assert parts["random_features"] > 0.01 and torch.equal(photo.adversary._pair[0], hr)
    assert "to the teacher" in matched.describe() and "teacher as real" in matched.describe()


def test_teacher_as_real_needs_a_teacher_cache(tmp_path, recipe_inputs):
    root, _aux = recipe_inputs
    result = CliRunner().invoke(train_app, ["aux", "--data", str(root), "--out", str(tmp_path / "run"),
                                            "--steps", "1", "--feature-weight", "0.1", "--teacher-as-real"])
    assert result.exit_code != 0 and "--teacher-as-real needs --teacher-cache" in result.output
    assert not (tmp_path / "run").exists()


def test_a_distilled_rrdbnet_g_trains_from_its_cut_teacher_and_keeps_the_licence(tmp_path, recipe_inputs):
    from qusr_cli.archs.rrdbnet import RRDBNet
    from qusr_cli.bundle import load_bundle
    from qusr_cli.upscaler import Upscaler
    from qusr_cli.weights.truncate import truncate_rrdbnet

    root, _aux = recipe_inputs
    torch.manual_seed(0)
    teacher = save_checkpoint(tmp_path / "teacher.safetensors", RRDBNet(num_feat=8, num_block=2), role="aux",
                              info={"source": "a teacher", "licence": "BSD-3-Clause"})
    start = truncate_rrdbnet(teacher, 1, tmp_path / "cut.safetensors")
    result = CliRunner().invoke(train_app, [
        "aux", "--data", str(root / "photos"), "--out", str(tmp_path / "g"), "--teacher-cache", str(root / "cache"),
        "--arch", "rrdbnet", "--blocks", "1", "--width", "8", "--init", str(start), "--teacher-weight", "1",
        "--hr-weight", "0", "--crop", "16", "--batch", "2", "--workers", "0", "--val-every", "0", "--steps", "20",
        "--lr", "3e-3", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    trained = tmp_path / "g" / "aux.safetensors"
    info = checkpoint_info(trained)
    assert info["task"]["loss"] == "1.0·L1(teacher)"
    assert info["initialised_from_provenance"]["licence"] == "BSD-3-Clause"
    assert info["initialised_from_provenance"]["truncated_from"]["kept"] == 1
    logs = [json.loads(line) for line in (tmp_path / "g" / "log.jsonl").read_text().splitlines()]
    distances = [r["teacher_l1"] for r in logs if r["type"] == "train"]
    assert distances[-1] < distances[0]
    assert load_checkpoint(trained).config["num_block"] == 1
    bundle = load_bundle("distilled-g", {"aux": trained})
    assert Upscaler(bundle, device=torch.device("cpu"), dtype=torch.float32).upscale(
        torch.rand(1, 3, 16, 16)).image.shape == (1, 3, 64, 64)
    refused = CliRunner().invoke(train_app, [
        "aux", "--data", str(root / "photos"), "--out", str(tmp_path / "none"), "--hr-weight", "0"])
    assert refused.exit_code == 2 and "needs another term" in " ".join(refused.output.replace("│", " ").split())

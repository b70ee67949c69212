import numpy as np
import pytest
import torch

from qusr_cli.devices import cpu_has_native_bf16, default_threads, resolve_device, resolve_dtype, set_threads
from qusr_cli.errors import QusrError
from qusr_cli.heatmaps import colormap, render_heatmap


def test_auto_device_is_cpu_without_accelerators():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(QusrError, match="CUDA"):
        resolve_device("cuda")
    with pytest.raises(QusrError):
        resolve_device("tpu")


def test_dtype_defaults_and_refusals():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(QusrError, match="fp16"):
        resolve_dtype("fp16", cpu)
    with pytest.raises(QusrError):
        resolve_dtype("int8", cpu)


def test_threads_follow_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("QUSR_THREADS", "1")
        assert default_threads() == 1
        assert set_threads(None) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_colormap_ends_and_monotone_brightness():
    colours = colormap(np.linspace(0, 1, 9)).astype(int)
    assert tuple(colours[0]) == (68, 1, 84) and tuple(colours[-1]) == (253, 231, 37)
    brightness = colours.sum(axis=1)
    assert (np.diff(brightness[1:]) > 0).all()
    assert tuple(colormap(np.array([-1.0, 2.0]))[0]) == (68, 1, 84)  # clipped


def test_heatmap_maps_low_and_high_values_to_the_bar_ends():
    values = torch.zeros(1, 3, 40, 40)
    values[..., 20:] = 0.05
    picture = np.asarray(render_heatmap(values, 0.0, 0.05, "psi", "note"))
    assert picture.shape[0] == 40 and picture.shape[1] > 40
    assert tuple(picture[5, 5]) == (68, 1, 84) and tuple(picture[5, 35]) == (253, 231, 37)

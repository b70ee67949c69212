import pytest
import torch
import torch.nn.functional as F

from qusr_cli.tiling import axis_tiles, context_span, pad_to_multiple, plan_tiles, ramp, run_tiled


def test_axis_tiles_are_few_even_and_cover_the_length():
    assert axis_tiles(100, 40, 8) == ([0, 31, 61], 39)
    assert axis_tiles(30, 40, 8) == ([0], 30)
    assert axis_tiles(256, 192, 16) == ([0, 120], 136)  # two even tiles, not 192 + a near-duplicate
    starts, size = axis_tiles(1000, 128, 16)
    assert size <= 128 and starts[-1] + size == 1000
    assert all(0 < b - a <= size - 16 for a, b in zip(starts, starts[1:]))


def test_plan_tiles_rejects_overlap_not_below_tile():
    with pytest.raises(ValueError):
        plan_tiles(64, 64, 16, 16)


def test_ramp_is_positive_and_complementary():
    rise = ramp(32, 8, True, False)
    fall = ramp(32, 8, False, True)
    assert rise.min() > 0 and fall.min() > 0
    assert torch.allclose(rise[:8] + fall[-8:], torch.ones(8))
    assert torch.equal(ramp(32, 8, False, False), torch.ones(32))


def test_pad_to_multiple():
    x = torch.rand(1, 3, 13, 16)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 3, 16, 16) and torch.equal(padded[:, :, :13], x)


def test_tiled_pointwise_function_reproduces_the_whole_image_exactly():
    lr = torch.rand(1, 3, 50, 70)
    seen = []

    def upscale_nearest(tile_lr, tile):
        seen.append(tile)
        return tile_lr.repeat_interleave(4, 2).repeat_interleave(4, 3)

    out = run_tiled(lr, upscale_nearest, tile_size=24, overlap=6)
    assert len(seen) > 6
    assert torch.allclose(out, lr.repeat_interleave(4, 2).repeat_interleave(4, 3), atol=1e-6)


def test_tiles_blend_smoothly_across_their_boundaries():
    """Tiles that disagree by a constant offset must cross-fade, not jump."""
    lr = torch.zeros(1, 1, 40, 40)

    def offset_by_tile(tile_lr, tile):
        value = 0.0 if tile.left == 0 else 1.0
        return torch.full((1, 1, tile_lr.shape[2] * 4, tile_lr.shape[3] * 4), value)

    out = run_tiled(lr, offset_by_tile, tile_size=24, overlap=8)
    row = out[0, 0, 80]
    steps = (row[1:] - row[:-1]).abs()
    assert row[0] == 0 and row[-1] == 1
    assert steps.max() < 0.1  # a hard seam would be a single step of 1.0


def conv_upscaler(kernel: int):
    """A local 4x "model": one random convolution, then nearest upsampling."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, kernel, padding=kernel // 2)

    def net(x, _tile=None):
        with torch.no_grad():
            return F.interpolate(conv(x), scale_factor=4, mode="nearest")

    return net


def test_tile_margin_makes_a_convolution_exact():
    net = conv_upscaler(5)
    lr = torch.rand(1, 3, 48, 48)
    without_margin = run_tiled(lr, net, tile_size=24, overlap=8)
    with_margin = run_tiled(lr, net, tile_size=24, overlap=8, margin=2)  # the 5x5 kernel's radius
    assert (without_margin - net(lr)).abs().max() > 1e-3
    assert torch.allclose(with_margin, net(lr), atol=1e-5)


def test_context_span_grows_inside_the_image_to_a_multiple():
    assert context_span(10, 30, 64, 4, 1) == (6, 34)
    assert context_span(10, 31, 64, 4, 4) == (6, 38)       # 29 wide -> 32, grown downward
    assert context_span(30, 64, 64, 3, 4) == (24, 64)      # at the border: grown upward instead
    assert context_span(0, 64, 64, 8, 4) == (0, 64)


def test_tiles_reaching_the_border_see_it_like_the_whole_image():
    net = conv_upscaler(3)
    lr = torch.rand(1, 3, 64, 72)
    tiled = run_tiled(lr, net, tile_size=30, overlap=6, margin=2, multiple=4)
    assert torch.allclose(tiled, net(lr), atol=1e-5)
    with pytest.raises(ValueError, match="multiples"):
        run_tiled(lr[:, :, :63], net, tile_size=30, overlap=6, multiple=4)

"""The ops newer networks need compute exactly what torchvision's own modules compute, so a
spec of ConvNeXt or ShuffleNetV2 gives torchvision's numbers."""

import pytest
import torch
from torchvision.models.convnext import CNBlock, LayerNorm2d
from torchvision.models.shufflenetv2 import channel_shuffle
from torchvision.ops import StochasticDepth

import cnnspec


def layer(call: str, input: str = "8x5x6") -> torch.nn.Module:
    """The module a one-layer spec builds."""
    return cnnspec.compile(f"network T(input={input}):\n    s: {call}\n", init="default").s


def test_layernorm2d_is_convnexts():
    ours, theirs = layer("layernorm2d"), LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 8, 5, 6) * 3 + 1
    assert torch.equal(ours(x), theirs(x))


def test_layer_scale_is_convnexts():
    ours = layer("layer_scale")
    theirs = CNBlock(8, layer_scale=1e-6, stochastic_depth_prob=0.0).layer_scale
    (scale,) = ours.state_dict().values()
    assert scale.shape == theirs.shape == (8, 1, 1)
    assert torch.equal(scale, theirs.detach())
    x = torch.randn(3, 8, 5, 6)
    assert torch.equal(ours(x), x * theirs.detach())


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_drop_path_is_stochastic_depth_by_row(p):
    ours, theirs = layer(f"drop_path({p})"), StochasticDepth(p, "row")
    x = torch.randn(64, 8, 5, 6) + 5  # no zeros of its own
    torch.manual_seed(1)
    expected = theirs.train()(x)
    torch.manual_seed(1)
    got = ours.train()(x)
    assert torch.equal(got, expected)
    kept = got.flatten(1).ne(0).all(1)
    assert (got.flatten(1).eq(0).all(1) | kept).all()  # whole samples dropped, or none of one
    if 0 < p < 1:  # both kinds appear, and the kept ones are scaled
        assert 0 < kept.sum() < 64
        torch.testing.assert_close(got[kept], x[kept] / (1 - p))
    assert torch.equal(ours.eval()(x), x)


@pytest.mark.parametrize(("c", "g"), [(8, 2), (8, 4), (6, 3), (5, 1)])
def test_channel_shuffle_is_shufflenets(c, g):
    x = torch.randn(2, c, 3, 4)
    assert torch.equal(layer(f"channel_shuffle({g})", f"{c}x3x4")(x), channel_shuffle(x, g))

"""The ops and combinators newer networks need compute exactly what torchvision's own
modules compute, so a spec of ConvNeXt, MobileNetV3 or ShuffleNetV2 gives its numbers."""

import pytest
import torch
from torchvision.models.convnext import CNBlock, LayerNorm2d
from torchvision.models.shufflenetv2 import InvertedResidual, channel_shuffle
from torchvision.ops import SqueezeExcitation, StochasticDepth

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


def with_their_weights(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Random weights and statistics in `theirs`, copied into `ours` in order (the two
    name their tensors differently, but hold them in the same order and shapes)."""
    with torch.no_grad():
        for tensor in theirs.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    values = list(theirs.state_dict().values())
    keys = list(ours.state_dict())
    assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(v.shape) for v in values]
    ours.load_state_dict(dict(zip(keys, values)))


def test_mul_is_squeeze_and_excitation():
    spec = (
        "network T(input=8x5x6):\n"
        "    s:\n"
        "        mul: gap conv(2, k=1) relu conv(8, k=1) hardsigmoid\n"
    )
    ours = cnnspec.compile(spec, init="default")
    theirs = SqueezeExcitation(8, 2, scale_activation=torch.nn.Hardsigmoid)
    with_their_weights(ours, theirs)
    x = torch.randn(3, 8, 5, 6)
    assert not torch.allclose(ours(x), x)  # the gate does scale
    torch.testing.assert_close(ours(x), theirs(x), atol=0, rtol=0)


def test_split_is_shufflenets_unit():
    spec = (
        "network T(input=8x5x6):\n"
        "    s:\n"
        "        split:\n"
        "            identity\n"
        "            conv(4, k=1, bias=false) batchnorm relu conv(4, k=3, p=1, groups=4, "
        "bias=false) batchnorm conv(4, k=1, bias=false) batchnorm relu\n"
        "        channel_shuffle(2)\n"
    )
    ours, theirs = cnnspec.compile(spec, init="default").eval(), InvertedResidual(8, 8, 1).eval()
    with_their_weights(ours, theirs)
    x = torch.randn(3, 8, 5, 6)
    torch.testing.assert_close(ours(x), theirs(x), atol=0, rtol=0)

"""`select`, SKNet's selective kernel, against timm's `SelectiveKernel`: the same
parameters in the same order, and the same outputs with timm's weights copied in."""

import pytest
import torch

import cnnspec
from cnnspec.errors import CnnspecError

timm_layers = pytest.importorskip("timm.layers")

SPEC = """\
network SK(input=16x8x8, classes=10):
    s:
        select(width={width}{split}):
            conv(32, k=3, p=1, bias=false) batchnorm relu
            conv(32, k=3, p=2, d=2, bias=false) batchnorm relu
"""


def reference(width, split=False):
    torch.manual_seed(0)
    ref = timm_layers.SelectiveKernel(16, 32, rd_channels=width, split_input=split).eval()
    with torch.no_grad():  # batch norm statistics other than the initial ones
        for tensor in ref.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return ref


@pytest.mark.parametrize("width, split", [(8, False), (32, False), (8, True)])
def test_select_is_timms_selective_kernel(width, split):
    """With split=true each branch takes its half of the input's channels, as timm's
    split_input does (SKNet-18, -34 and -50)."""
    spec = cnnspec.load(SPEC.format(width=width, split=", split=true" if split else ""))
    ref = reference(width, split)
    net = spec.build().eval()
    ours, theirs = net.state_dict(), ref.state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()]
    assert spec.params == sum(p.numel() for p in ref.parameters())
    net.load_state_dict(dict(zip(ours, theirs.values())))
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x))


def test_select_width_defaults_to_the_papers_rule():
    """max(C // 16, 32): 32 for these 32 channels."""
    spec = cnnspec.load(SPEC.replace("select(width={width}{split}):", "select:"))
    layers = dict(spec.graph.layers())
    assert layers["s.attention.0"].out_shape == (32, 1, 1)
    assert layers["s.attention.3"].out_shape == (64, 1, 1)  # a weight per branch and channel


TWO = ("    conv(4, k=1)", "    conv(4, k=3, p=1)")


@pytest.mark.parametrize(
    "body, message",
    [
        (
            ["select:", "    conv(4, k=1)", "    conv(5, k=1)"],
            "select branch 1 gives 5x8x8 but branch 0 gives 4x8x8; selected branches must "
            "have the same shape",
        ),
        (["select(width=0):", *TWO], "select: width must be a whole number >= 1"),
        (["select(width=2.5):", *TWO], "select: width must be a whole number"),
        (["select:", "    conv(4, k=1)"], "select weighs two or more branches, got 1"),
        (
            ["select(split=true):", "    conv(4, k=1)", "    conv(4, k=1)"],
            "select into 2 branches needs channels divisible by 2, got 3x8x8",
        ),
    ],
)
def test_select_refuses_what_it_cannot_weigh(body, message):
    text = "network T(input=3x8x8, classes=10):\n    s:\n" + "".join(
        f"        {line}\n" for line in body
    )
    with pytest.raises(CnnspecError) as err:
        cnnspec.load(text)
    assert message in err.value.message
    assert err.value.pos[0] >= 3

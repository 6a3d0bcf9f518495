"""Generated block classes are their blocks for any arguments, where several constructs of
one block share the constructor's locals: two residuals, two dense, a named line read
after another's loop, a branch whose channels a later branch's loop changes, a test on C
after a loop. Each case but the pixel shuffle failed before (found by generating random
blocks and comparing each class with the live build at other arguments)."""

from __future__ import annotations

import pytest
import torch
from conftest import check_all_backends, module_from_source

import cnnspec

# (block text, the spec's own call and input, another call and input, the class and its
# keyword arguments for that call)
CASES = {
    "two residuals": (
        "block two(c):\n    add: conv(c, k=1)\n    add: conv(c * 2, k=1)\n",
        "two(8)", (4, 6, 6), "two(3)", (2, 5, 5), "Two", {"c": 3},
    ),
    "a gate of one channel broadcast by mul": (
        "block gate(c):\n    a: conv(1, k=1)\n    b: input conv(c, k=1)\n"
        "    o: mul(a, b) conv(3, k=1)\n",
        "gate(1)", (4, 6, 6), "gate(4)", (2, 5, 5), "Gate", {"c": 4},
    ),
    "a line read after another line's loop": (
        "block g(c):\n    a: (conv(c, k=1)) * 1\n    b: input conv(c + 1, k=1) (relu) * 1\n"
        "    o: concat(a, b) conv(3, k=1)\n",
        "g(4)", (2, 6, 6), "g(5)", (3, 6, 6), "G", {"c": 5},
    ),
    "two dense": (
        "block dd(g):\n    dense: (batchnorm relu conv(g, k=3, p=1)) * 1\n"
        "    dense: (batchnorm relu conv(g, k=3, p=1)) * 2\n",
        "dd(2)", (3, 6, 6), "dd(3)", (4, 6, 6), "Dd", {"g": 3},
    ),
    "branches that both end in a loop or condition": (
        "block cc(c, flag=true):\n    concat:\n        conv(c, k=1) (relu) * 1\n"
        "        b: (conv(c, k=1)) if flag relu\n",
        "cc(4)", (4, 6, 6), "cc(4, flag=false)", (3, 6, 6), "Cc", {"c": 4, "flag": False},
    ),
    "a combinator starting from an expression of the channels": (
        "block sp(c):\n    (conv(c, k=1)) * 1 conv(C * 2, k=1)\n    concat:\n"
        "        b0: (conv(3, k=1)) * 1\n        b1: conv(C, k=1)\n",
        "sp(2)", (2, 6, 6), "sp(3)", (2, 6, 6), "Sp", {"c": 3},
    ),
    "a branch made before a later branch's loop": (
        "block lb(c):\n    concat:\n        b0: (conv(4, k=1)) * 1 conv(c, k=3, p=1)\n"
        "        b1: (relu conv(C, k=1)) * 0 conv(2, k=1)\n",
        "lb(3)", (5, 6, 6), "lb(2)", (3, 6, 6), "Lb", {"c": 2},
    ),
    "a dense unit ending in a condition": (
        "block du(c, n=1):\n    dense:\n        conv(c, k=3, p=1) relu if n > 0\n",
        "du(4)", (3, 6, 6), "du(5)", (2, 6, 6), "Du", {"c": 5},
    ),
    "a test on C after a loop": (
        "block gt(c):\n    (conv(c, k=1)) * 1 conv(C * 2, k=1)\n    conv(3, k=1) if C == c * 2\n",
        "gt(2)", (2, 6, 6), "gt(3)", (2, 6, 6), "Gt", {"c": 3},
    ),
    "a stride-2 residual on a 1x1 image": (
        "block rs(c, s=1):\n    add: conv(c, k=3, s=s, p=1)\n",
        "rs(4, s=2)", (4, 8, 8), "rs(4, s=2)", (4, 1, 1), "Rs", {"c": 4, "s": 2},
    ),
    "a pixel shuffle and unshuffle (a class now, where they had none)": (
        "block up(c, r=2):\n    conv(c * r * r, k=3, p=1) pixel_shuffle(r) conv(C, k=1)\n"
        "    pixel_unshuffle(r) conv(c, k=1)\n",
        "up(4)", (3, 8, 8), "up(2, r=3)", (5, 6, 6), "Up", {"c": 2, "r": 3},
    ),
    "a block that is its layer parameter": (
        "block wrap(act=relu):\n    act\nblock outer(c):\n    conv(c, k=1) wrap(act=hardswish)\n",
        "outer(4)", (3, 6, 6), "outer(2)", (5, 6, 6), "Outer", {"c": 2},
    ),
}  # fmt: skip


def network(blocks: str, call: str, shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{blocks}network T(input={c}x{h}x{w}, classes=10):\n    a: {call}\n"


@pytest.mark.parametrize("case", CASES)
def test_a_block_class_is_its_block_for_other_arguments(case, tmp_path):
    blocks, call, shape, other, other_shape, cls, kwargs = CASES[case]
    spec = check_all_backends(network(blocks, call, shape), tmp_path, "net")  # the network
    module = module_from_source(spec.codegen(), tmp_path, "again")
    live = cnnspec.load(network(blocks, other, other_shape))
    expected = live.build(init="default").eval().a
    block = getattr(module, cls)(other_shape[0], **kwargs).eval()
    assert list(block.state_dict()) == list(expected.state_dict())
    block.load_state_dict(expected.state_dict())
    x = torch.randn(2, *other_shape)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected(x))
    assert block.out_channels == live.output_shape[0]


def test_a_stride_2_residual_projects_on_a_1x1_image_as_torchvision_does():
    """torchvision projects a block's shortcut where its stride is not 1, whatever the
    size; a 1x1 image stepped by 2 stays 1x1, and the live build projects it too."""
    spec = cnnspec.load(network("", "residual(4, s=2)", (4, 1, 1)))
    assert any(path.endswith("shortcut") for path, _ in spec.graph.layers())
    pool = "\n        add:\n            maxpool(3, s=2, p=1, ceil_mode=true)"  # 2x2 stays 2x2
    kept = cnnspec.load(network("", pool, (3, 2, 2)))
    assert not any(path.endswith("shortcut") for path, _ in kept.graph.layers())

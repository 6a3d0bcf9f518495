"""SKNet's selective kernel (Li et al. 2019): branches weighed per channel by attention."""

from __future__ import annotations

from ...errors import ShapeError, SpecError
from ...language.symbols import note_choice
from ..graph import Flow, Node, group
from ..ops import LAYERS, ModuleCall, fmt
from .base import Combinator, branches, chunk, given, node, same_shapes


class Select(Combinator, kind="select", module="SelectiveKernel"):
    """Branches weighed per channel, softmax across them (SKNet's selective kernel): their
    sum, pooled to C x 1 x 1, goes through an attention the combinator owns (a 1x1
    convolution to `width` channels, batch norm, ReLU, a 1x1 convolution to C per branch);
    the output is the branches' sum weighed by it. `width` defaults to the paper's
    max(C // 16, 32). `split=true` gives branch i the i-th equal chunk of the input's
    channels instead of all of them (timm's `split_input`)."""

    options = {"width": "number", "split": "flag"}
    examples = (
        ("select:", "    conv(4, k=3, p=1) relu", "    conv(4, k=3, p=2, d=2) relu"),
        ("select(width=3):", "    a: conv(3, k=3, s=2, p=1)", "    b: conv(3, k=5, s=2, p=2)"),
        # each of three branches on one of the input's three channels
        (
            "select(split=true):",
            "    conv(2, k=1)",
            "    conv(2, k=3, p=1)",
            "    conv(2, k=3, p=2, d=2)",
        ),
    )
    symbol = "select"
    block_class = False  # its attention's sizes are known only where the shapes are

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        in_shape = flow.shape
        found = branches(walker, comb, chunk(comb, flow) if options.get("split") else flow, env)
        if len(found) < 2:  # a softmax over one branch weighs it 1 everywhere
            raise SpecError("select weighs two or more branches, got 1", comb.pos)
        same_shapes(comb, found, lambda a, b: a == b, "selected branches must have the same shape")
        out = found[0][1].out_shape
        if len(out) != 3:
            raise ShapeError(
                f"select needs its branches to give images (C x H x W), got {fmt(out)}",
                comb.pos,
            )
        channels, width = out[0], options.get("width")
        if width is None:
            note_choice(comb.pos, "select's default width", channels)
            width = max(channels // 16, 32)
        elif not isinstance(width, int) or width < 1:
            raise ShapeError(
                f"select: width must be a whole number >= 1, got {width}",
                given(comb, "width").value.pos,
            )
        attention = [
            LAYERS["conv"](out=width, k=1, bias=False),
            LAYERS["batchnorm"](),
            LAYERS["relu"](),
            LAYERS["conv"](out=channels * len(found), k=1, bias=False),
        ]
        at = Flow((channels, 1, 1), "select", comb.pos)
        made = []
        for i, layer in enumerate(attention):
            made.append((str(i), walker.apply(layer, at, comb.pos)))
            at = Flow(made[-1][1].out_shape, layer.op, comb.pos)
        owned = (("attention", group("seq", "attention", (channels, 1, 1), made, comb.pos)),)
        kept = (("split", True),) if options.get("split") else ()
        return node(comb, in_shape, found, out, owned, kept)

    @classmethod
    def constructor(cls, branches, owned, options, channels) -> ModuleCall:
        split = (("split", options["split"]),) if "split" in options else ()
        return ModuleCall(cls.module, (branches, owned["attention"]), split)

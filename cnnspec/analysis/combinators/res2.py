"""Res2Net's split (Gao et al. 2019): hierarchical residual-like connections in one block."""

from __future__ import annotations

from dataclasses import replace

from ...errors import ShapeError, SpecError
from ..graph import Flow, Node
from ..ops import LAYERS, ModuleCall, fmt
from .base import Combinator, branches, given, node, path_stride


class Res2(Combinator, kind="res2", module="Res2"):
    """Res2Net's split (Gao et al. 2019): the input's channels cut into `scale` equal
    chunks (4 by default); each but the last goes through its own copy of the branch, with
    the previous copy's output added to it first (after the first chunk); the last chunk
    passes as it is; all are concatenated. `stage=true` (the first block of a stage) adds
    nothing between the copies and average-pools the last chunk (3x3, padding 1) with the
    branch's stride. The copies' layers are held layer by layer (every copy's first layer,
    then every copy's second, ...), as Res2Net's `convs` and `bns`."""

    options = {"scale": "number", "stage": "flag"}
    examples = (
        ("res2(scale=3):", "    conv(1, k=3, p=1) batchnorm relu"),
        ("res2(scale=3, stage=true):", "    conv(2, k=3, s=2, p=1) relu"),
    )
    symbol = "res2"
    block_class = False  # its copies and the pool follow the input's channels and stride

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        if len(comb.branches) != 1:
            raise SpecError(
                f"res2 takes one branch, which every chunk but the last goes through; "
                f"got {len(comb.branches)}",
                comb.pos,
            )
        scale = _scale(comb, options)
        shape = flow.shape
        if len(shape) != 3 or shape[0] % scale:
            raise ShapeError(
                f"res2 with scale {scale} needs an image whose channels divide by {scale}, "
                f"got {fmt(shape)} (from {flow.origin()})",
                comb.pos,
            )
        chunk = Flow((shape[0] // scale, *shape[1:]), flow.made_by, flow.pos)
        branch = comb.branches[0]
        # `branches` refuses what no branch may be (several outputs, a condition alone)
        copies = [(str(i), branches(walker, comb, chunk, env)[0][1]) for i in range(scale - 1)]
        out = copies[0][1].out_shape
        stage = bool(options.get("stage"))
        owned: tuple[tuple[str, Node], ...] = ()
        if not stage:
            if out != chunk.shape:
                raise ShapeError(
                    f"res2 adds each copy's output to the next chunk, so its branch must "
                    f"keep the chunk's shape {fmt(chunk.shape)}, but it gives {fmt(out)}; "
                    "give stage=true where it changes it (the first block of a stage)",
                    branch.pos,
                )
        else:
            stride = path_stride(copies[0][1])
            if len(out) != 3 or stride is None:
                raise ShapeError(
                    f"res2(stage=true) pools the last chunk with its branch's stride, but the "
                    f"branch gives {fmt(out)} with no fixed stride",
                    branch.pos,
                )
            pool = walker.apply(LAYERS["avgpool"](k=3, s=stride, p=1), chunk, comb.pos)
            if pool.out_shape[1:] != out[1:]:
                raise ShapeError(
                    f"res2's last chunk, pooled, is {fmt(pool.out_shape)} but the branch gives "
                    f"{fmt(out)}; they are concatenated, so their sizes must agree",
                    branch.pos,
                )
            owned = (("pool", pool),)
        channels = out[0] * (scale - 1) + chunk.shape[0]
        kept = (("stage", True),) if stage else ()
        made = node(comb, shape, copies, (channels, *out[1:]), owned, kept)
        return replace(made, by_layer=True)

    @classmethod
    def constructor(cls, branches, owned, options, channels) -> ModuleCall:
        pool = (("pool", owned["pool"]),) if "pool" in owned else ()
        return ModuleCall(cls.module, (branches,), pool)


def _scale(comb, options) -> int:
    scale = options.get("scale")
    if scale is None:
        return 4
    if not isinstance(scale, int) or scale < 2:
        raise ShapeError(
            f"res2: scale must be a whole number >= 2, got {scale}",
            given(comb, "scale").value.pos,
        )
    return scale

"""Ops on the channels as groups: a slice of them, and the softmax and sum across groups
that select among branches concatenated on channels (SKNet's selective kernel).

DPN and ReXNet add a residual onto part of the channels and pass the rest on: with named
lines, `head: y slice(0, C_in)`, `tail: y slice(C_in, C)`, `out: concat(sum, tail)`.
SKNet weighs its branches by a softmax across them: the branches concatenated on channels
(n x C), a gate giving n x C weights, `branch_softmax(n)` over them, `mul`, then
`branch_sum(n)` back to C.
"""

from __future__ import annotations

from ...errors import ShapeError
from .base import Inferred, Layer, NonNegativeInt, PositiveInt, Shape, fmt


class Slice(Layer, op="slice", module="ChannelSlice"):
    """the channels from start up to (not including) stop: C x H x W -> (stop - start) x H x W"""

    start: NonNegativeInt
    stop: PositiveInt

    positional = ("start", "stop")
    example = ("slice(1, 4)", "5x4x4")

    def infer(self, shape: Shape) -> Inferred:
        if not self.start < self.stop <= shape[0]:
            raise ShapeError(
                f"slice({self.start}, {self.stop}) needs 0 <= start < stop <= the channels, "
                f"got {fmt(shape)}"
            )
        return Inferred((self.stop - self.start, *shape[1:]))


class _Groups(Layer):
    n: PositiveInt

    positional = ("n",)

    def groups(self, shape: Shape) -> int:
        if shape[0] % self.n:
            raise ShapeError(
                f"{self.op}({self.n}) needs channels divisible by {self.n}, got {fmt(shape)}"
            )
        return shape[0] // self.n


class BranchSoftmax(_Groups, op="branch_softmax", module="BranchSoftmax"):
    """softmax across n groups of channels, at each channel of a group (SKNet's selection)"""

    example = ("branch_softmax(2)", "6x1x1")

    def infer(self, shape: Shape) -> Inferred:
        self.groups(shape)
        return Inferred(shape)


class BranchSum(_Groups, op="branch_sum", module="BranchSum"):
    """the sum of n groups of channels: n x C x H x W -> C x H x W"""

    example = ("branch_sum(3)", "6x2x2")

    def infer(self, shape: Shape) -> Inferred:
        return Inferred((self.groups(shape), *shape[1:]))

"""Ops between images and feature vectors: flatten, reshape, fully connected (on features,
or at each position of an image)."""

from __future__ import annotations

from collections.abc import Mapping
from math import prod

from ...errors import ShapeError
from .base import Inferred, Layer, ModuleCall, PositiveInt, Shape, T, fmt, image


class Flatten(Layer, op="flatten", module="nn.Flatten"):
    """C x H x W -> C*H*W features"""

    resizes = True

    def infer(self, shape: Shape) -> Inferred:
        return Inferred((prod(shape),))


class Reshape(Layer, op="reshape", module="Reshape"):
    """view the input as another shape of the same size, e.g. reshape(1x28x28)"""

    shape: tuple[PositiveInt, ...]

    positional = ("shape",)
    resizes = True
    example = ("reshape(2x12x4)", "3x8x4")

    def infer(self, shape: Shape) -> Inferred:
        if prod(self.shape) != prod(shape):
            raise ShapeError(
                f"reshape to {fmt(self.shape)} ({prod(self.shape)} values) needs as many "
                f"values as its input, got {fmt(shape)} ({prod(shape)} values)"
            )
        return Inferred(self.shape)


class Linear(Layer, op="linear", module="nn.Linear"):
    """fully connected; in_features, if given, is checked against the input"""

    out: PositiveInt
    in_features: PositiveInt | None = None
    bias: bool = True

    example = ("linear(5)", "12")

    def infer(self, shape: Shape) -> Inferred:
        if len(shape) != 1:
            raise ShapeError(f"linear needs features as input (add flatten), got {fmt(shape)}")
        if self.in_features is not None and self.in_features != shape[0]:
            raise ShapeError(f"linear expects {self.in_features} input features, got {shape[0]}")
        params = shape[0] * self.out + (self.out if self.bias else 0)
        return Inferred((self.out,), params, shape[0] * self.out)

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        bias = (("bias", args["bias"]),) if "bias" in args else ()
        return ModuleCall(cls.module, (channels, args["out"]), bias)


class PointwiseLinear(Layer, op="pointwise_linear", module="PointwiseLinear"):
    """fully connected at each position of an image: C x H x W -> out x H x W

    The weight is out x C, as `linear`'s (ConvNeXt's nn.Linear on channels last); a 1x1
    `conv` computes the same with an out x C x 1 x 1 weight."""

    out: PositiveInt
    bias: bool = True

    example = ("pointwise_linear(5)", "3x4x4")

    def infer(self, shape: Shape) -> Inferred:
        c, h, w = image("pointwise_linear", shape)
        params = c * self.out + (self.out if self.bias else 0)
        return Inferred((self.out, h, w), params, c * self.out * h * w)

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        bias = (("bias", args["bias"]),) if "bias" in args else ()
        return ModuleCall(cls.module, (channels, args["out"]), bias)

"""Ops that keep the shape: normalisation, dropout, learned scales, the identity, and the
channel shuffle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from ...errors import ShapeError
from .base import Inferred, Layer, ModuleCall, PositiveInt, Probability, Shape, T, fmt, image


class Dropout(Layer, op="dropout", module="nn.Dropout"):
    """dropout with probability p"""

    p: Probability = 0.5

    positional = ("p",)
    example = ("dropout(0.3)", "3x8x8")


class BatchNorm(Layer, op="batchnorm", module="nn.BatchNorm2d"):
    """batch norm, 2-d after images and 1-d after features"""

    eps: Annotated[float, Field(gt=0.0)] = 1e-5
    momentum: Probability = 0.1

    example = ("batchnorm(eps=0.001)", "3x8x8")

    def infer(self, shape: Shape) -> Inferred:
        if len(shape) not in (1, 3):
            raise ShapeError(f"batchnorm needs an image or features, got {fmt(shape)}")
        return Inferred(shape, 2 * shape[0])

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        plain = super().constructor(args, channels, image)
        return ModuleCall(
            "nn.BatchNorm2d" if image else "nn.BatchNorm1d", (channels,), plain.kwargs
        )


class Identity(Layer, op="identity", module="nn.Identity"):
    """passes its input through"""


class GroupNorm(Layer, op="groupnorm", module="nn.GroupNorm"):
    """group norm: the channels in g groups, each normalised over its channels and positions"""

    g: PositiveInt
    eps: Annotated[float, Field(gt=0.0)] = 1e-5

    example = ("groupnorm(2, eps=0.001)", "4x8x8")

    def infer(self, shape: Shape) -> Inferred:
        if len(shape) not in (1, 3):
            raise ShapeError(f"groupnorm needs an image or features, got {fmt(shape)}")
        if shape[0] % self.g:
            raise ShapeError(f"groupnorm g={self.g} must divide the channels ({shape[0]})")
        return Inferred(shape, 2 * shape[0])

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        eps = (("eps", args["eps"]),) if "eps" in args else ()
        return ModuleCall(cls.module, (args["g"], channels), eps)


class LayerNorm2d(Layer, op="layernorm2d", module="LayerNorm2d"):
    """layer norm over the channels at each position (ConvNeXt's LayerNorm2d)"""

    eps: Annotated[float, Field(gt=0.0)] = 1e-6  # ConvNeXt's, not nn.LayerNorm's 1e-5

    example = ("layernorm2d(eps=0.001)", "3x8x8")

    def infer(self, shape: Shape) -> Inferred:
        return Inferred(shape, 2 * image("layernorm2d", shape)[0])

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        return ModuleCall(
            cls.module, (channels,), super().constructor(args, channels, image).kwargs
        )


class LayerScale(Layer, op="layer_scale", module="LayerScale"):
    """a learned scale per channel, C x 1 x 1, starting at init (ConvNeXt)"""

    init: float = 1e-6

    positional = ("init",)
    # An init of 0.5 rather than the default: a wrong forward cannot pass for a near zero.
    example = ("layer_scale(0.5)", "3x8x8")

    def infer(self, shape: Shape) -> Inferred:
        return Inferred(shape, image("layer_scale", shape)[0])

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        return ModuleCall(cls.module, (channels, *super().constructor(args, channels, image).args))


class DropPath(Layer, op="drop_path", module="DropPath"):
    """stochastic depth: whole samples dropped in training, the identity in evaluation

    In training each sample is zeroed with probability p and the others are scaled by
    1 / (1 - p), as torchvision's StochasticDepth(p, "row")."""

    p: Probability

    positional = ("p",)
    example = ("drop_path(0.2)", "3x8x8")


class ChannelShuffle(Layer, op="channel_shuffle", module="nn.ChannelShuffle"):
    """interleave the channels of g groups (ShuffleNet): C = g x n becomes n x g"""

    g: PositiveInt

    positional = ("g",)
    example = ("channel_shuffle(3)", "6x4x4")

    def infer(self, shape: Shape) -> Inferred:
        c = image("channel_shuffle", shape)[0]
        if c % self.g:
            raise ShapeError(f"channel_shuffle g={self.g} must divide the channels ({c})")
        return Inferred(shape)

"""Normalisation, dropout and the identity: ops that keep the shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from ...errors import ShapeError
from .base import Inferred, Layer, ModuleCall, Probability, Shape, T, fmt


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

"""Ops that slide a window over the image (convolution, pooling) or pool it to a size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ...errors import ShapeError
from .base import (
    Inferred,
    Layer,
    ModuleCall,
    Padding,
    PositiveInt,
    Shape,
    Size,
    T,
    image,
    pair,
)


class Window(Layer):
    """A layer that slides a window: conv and the fixed-size pools. Declares no fields, so
    each subclass keeps its own argument order."""

    # The arguments that give the stride, in order of precedence: a pool's stride
    # defaults to its kernel size, as in torch.
    stride_from: ClassVar[tuple[str, ...]] = ("s", "k")

    @property
    def stride(self) -> int | tuple[int, int]:
        return next(getattr(self, n) for n in self.stride_from if getattr(self, n) is not None)

    @classmethod
    def keeps_size(cls, literal: Mapping[str, int | None]) -> bool:
        """Whether the window keeps the size at stride 1 (2p == d(k - 1)), and so steps
        by its stride as a 1x1 convolution of that stride does, from the arguments given,
        each a plain number or flag, or None when written as an expression. `ceil_mode`
        (unless literally false) rounds up where the convolution rounds down."""
        if literal.get("ceil_mode", False) is not False:
            return False
        fields = cls.model_fields
        values = [
            literal[n] if n in literal else fields[n].default if n in fields else 1
            for n in ("k", "p", "d")
        ]
        if not all(isinstance(v, int) for v in values):
            return False
        k, p, d = values
        return 2 * p == d * (k - 1)

    def _windowed(self, shape: Shape, d=1, ceil=False) -> tuple[int, int, int]:
        c, h, w = image(self.op, shape)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            pair(self.k),
            pair(self.stride),
            pair(self.p),
            pair(d),
        )
        return (
            c,
            _length(self.op, h, kh, sh, ph, dh, ceil, "height"),
            _length(self.op, w, kw, sw, pw, dw, ceil, "width"),
        )


def _length(op: str, size: int, k: int, s: int, p: int, d: int, ceil: bool, axis: str) -> int:
    """torch's output length along one axis of a convolution or pooling window."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:  # torch: the last window must start inside
        out -= 1
    if out <= 0:
        raise ShapeError(
            f"{op} shrinks the {axis} to {out}: input {axis} {size} is too small for "
            f"kernel {k} (dilation {d}) with padding {p} and stride {s}"
        )
    return out


class Conv(Window, op="conv", module="nn.Conv2d"):
    """2-d convolution: out channels, kernel, stride, padding, dilation"""

    out: PositiveInt
    k: Size
    s: Size = 1
    p: Padding = 0
    d: Size = 1
    groups: PositiveInt = 1
    bias: bool = True

    stride_from = ("s",)
    torch_names = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation"}
    example = ("conv(4, k=3, s=2, p=1)", "3x8x8")

    def infer(self, shape: Shape) -> Inferred:
        c_in = image("conv", shape)[0]
        if c_in % self.groups or self.out % self.groups:
            raise ShapeError(
                f"conv groups={self.groups} must divide both the input channels ({c_in}) "
                f"and the output channels ({self.out})"
            )
        _, h, w = self._windowed(shape, d=self.d)
        kh, kw = pair(self.k)
        per_output = (c_in // self.groups) * kh * kw
        params = self.out * per_output + (self.out if self.bias else 0)
        return Inferred((self.out, h, w), params, self.out * h * w * per_output)

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        plain = super().constructor({k: v for k, v in args.items() if k != "out"}, channels, image)
        return ModuleCall(cls.module, (channels, args["out"]), plain.kwargs)


class _Pool(Window):
    positional = ("k",)
    torch_names = {"s": "stride", "p": "padding"}

    def infer(self, shape: Shape) -> Inferred:
        for pad, kernel in zip(pair(self.p), pair(self.k)):
            if pad > kernel // 2:
                raise ShapeError(
                    f"{self.op} padding {pad} must be at most half the kernel size {kernel}"
                )
        return Inferred(self._windowed(shape, ceil=self.ceil_mode))


class MaxPool(_Pool, op="maxpool", module="nn.MaxPool2d"):
    """2-d max pooling; the stride defaults to the kernel size"""

    k: Size
    s: Size | None = None
    p: Padding = 0
    ceil_mode: bool = False

    example = ("maxpool(3, s=2, p=1, ceil_mode=true)", "3x8x8")


class AvgPool(_Pool, op="avgpool", module="nn.AvgPool2d"):
    """2-d average pooling; the stride defaults to the kernel size"""

    k: Size
    s: Size | None = None
    p: Padding = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    example = ("avgpool(2, count_include_pad=false)", "3x8x8")


class _Adaptive(Layer):
    positional = ("size",)
    resizes = True

    def infer(self, shape: Shape) -> Inferred:
        c, _, _ = image(self.op, shape)
        return Inferred((c, *pair(self.size)))


class AdaptiveAvgPool(_Adaptive, op="adaptive_avgpool", module="nn.AdaptiveAvgPool2d"):
    """average pooling to a fixed output size"""

    size: Size

    example = ("adaptive_avgpool((2, 3))", "3x8x8")


class AdaptiveMaxPool(_Adaptive, op="adaptive_maxpool", module="nn.AdaptiveMaxPool2d"):
    """max pooling to a fixed output size"""

    size: Size

    example = ("adaptive_maxpool(2)", "3x8x8")


class GlobalAvgPool(_Adaptive, op="gap", module="nn.AdaptiveAvgPool2d"):
    """global average pooling to 1x1 (adaptive_avgpool(1))"""

    size: ClassVar[tuple[int, int]] = (1, 1)

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        return ModuleCall(cls.module, (cls.size,))

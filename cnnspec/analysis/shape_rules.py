"""Per-op shape inference: output shape, parameter count and multiply-accumulates.

One rule per op, keyed by op name, mirroring torch's own arithmetic (floor division, pooling's
ceil_mode rule, the half-kernel padding bound). Rules raise `ShapeError` without a position;
the inference pass adds where the layer is and where its input came from.

MACs count the multiply-accumulates of convolutions and linear layers, the figure papers and
d2l quote; normalisation, activations and pooling count zero.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

from ..errors import ShapeError
from . import layers as L
from .graph import Shape

Rule = Callable[[L.Layer, Shape], tuple[Shape, int, int]]


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def fmt(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _image(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{op} needs an image (C x H x W) as input, got {_what(shape)}")
    return shape  # type: ignore[return-value]


def _what(shape: Shape) -> str:
    return f"{shape[0]} features" if len(shape) == 1 else fmt(shape)


def _window(op: str, size: int, k: int, s: int, p: int, d: int, ceil: bool, axis: str) -> int:
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


def _windowed(op: str, shape: Shape, k, s, p, d=1, ceil=False) -> tuple[int, int, int]:
    c, h, w = _image(op, shape)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(k), pair(s), pair(p), pair(d)
    return (
        c,
        _window(op, h, kh, sh, ph, dh, ceil, "height"),
        _window(op, w, kw, sw, pw, dw, ceil, "width"),
    )


def conv(layer: L.Conv, shape: Shape) -> tuple[Shape, int, int]:
    c_in = _image("conv", shape)[0]
    if c_in % layer.groups or layer.out % layer.groups:
        raise ShapeError(
            f"conv groups={layer.groups} must divide both the input channels ({c_in}) "
            f"and the output channels ({layer.out})"
        )
    _, h, w = _windowed("conv", shape, layer.k, layer.s, layer.p, layer.d)
    kh, kw = pair(layer.k)
    per_output = (c_in // layer.groups) * kh * kw
    params = layer.out * per_output + (layer.out if layer.bias else 0)
    return (layer.out, h, w), params, layer.out * h * w * per_output


def _pool(op: str, layer, shape: Shape) -> tuple[Shape, int, int]:
    k = pair(layer.k)
    for pad, kernel in zip(pair(layer.p), k):
        if pad > kernel // 2:
            raise ShapeError(f"{op} padding {pad} must be at most half the kernel size {kernel}")
    return _windowed(op, shape, layer.k, layer.stride, layer.p, 1, layer.ceil_mode), 0, 0


def maxpool(layer: L.MaxPool, shape: Shape):
    return _pool("maxpool", layer, shape)


def avgpool(layer: L.AvgPool, shape: Shape):
    return _pool("avgpool", layer, shape)


def _adaptive(op: str, size, shape: Shape):
    c, _, _ = _image(op, shape)
    return (c, *pair(size)), 0, 0


def adaptive_avgpool(layer: L.AdaptiveAvgPool, shape: Shape):
    return _adaptive("adaptive_avgpool", layer.size, shape)


def adaptive_maxpool(layer: L.AdaptiveMaxPool, shape: Shape):
    return _adaptive("adaptive_maxpool", layer.size, shape)


def gap(layer: L.GlobalAvgPool, shape: Shape):
    return _adaptive("gap", 1, shape)


def flatten(layer: L.Flatten, shape: Shape):
    return (prod(shape),), 0, 0


def reshape(layer: L.Reshape, shape: Shape):
    if prod(layer.shape) != prod(shape):
        raise ShapeError(
            f"reshape to {fmt(layer.shape)} ({prod(layer.shape)} values) needs as many values "
            f"as its input, got {fmt(shape)} ({prod(shape)} values)"
        )
    return layer.shape, 0, 0


def linear(layer: L.Linear, shape: Shape):
    if len(shape) != 1:
        raise ShapeError(f"linear needs features as input (add flatten), got {fmt(shape)}")
    if layer.in_features is not None and layer.in_features != shape[0]:
        raise ShapeError(f"linear expects {layer.in_features} input features, got {shape[0]}")
    params = shape[0] * layer.out + (layer.out if layer.bias else 0)
    return (layer.out,), params, shape[0] * layer.out


def batchnorm(layer: L.BatchNorm, shape: Shape):
    if len(shape) not in (1, 3):
        raise ShapeError(f"batchnorm needs an image or features, got {fmt(shape)}")
    return shape, 2 * shape[0], 0


def same_shape(layer: L.Layer, shape: Shape):
    return shape, 0, 0


RULES: dict[str, Rule] = {
    "conv": conv,
    "maxpool": maxpool,
    "avgpool": avgpool,
    "adaptive_avgpool": adaptive_avgpool,
    "adaptive_maxpool": adaptive_maxpool,
    "gap": gap,
    "flatten": flatten,
    "reshape": reshape,
    "linear": linear,
    "dropout": same_shape,
    "batchnorm": batchnorm,
    "identity": same_shape,
    "relu": same_shape,
    "relu6": same_shape,
    "leaky_relu": same_shape,
    "sigmoid": same_shape,
    "tanh": same_shape,
    "gelu": same_shape,
    "silu": same_shape,
}

"""Elementwise activations: each is its name, its torch class, and a line of doc."""

from __future__ import annotations

from .base import Activation


class ReLU(Activation, op="relu", module="nn.ReLU"):
    """activation: max(x, 0)"""


class ReLU6(Activation, op="relu6", module="nn.ReLU6"):
    """activation: min(max(x, 0), 6)"""


class LeakyReLU(Activation, op="leaky_relu", module="nn.LeakyReLU"):
    """activation with a slope for negative inputs"""

    slope: float = 0.01

    torch_names = {"slope": "negative_slope"}
    example = ("leaky_relu(0.2)", "3x8x8")


class Sigmoid(Activation, op="sigmoid", module="nn.Sigmoid"):
    """activation: 1 / (1 + exp(-x))"""


class Tanh(Activation, op="tanh", module="nn.Tanh"):
    """activation: hyperbolic tangent"""


class GELU(Activation, op="gelu", module="nn.GELU"):
    """activation: x * Phi(x), the Gaussian error linear unit"""


class SiLU(Activation, op="silu", module="nn.SiLU"):
    """activation: x * sigmoid(x) (swish)"""


class Hardswish(Activation, op="hardswish", module="nn.Hardswish"):
    """activation: x * relu6(x + 3) / 6 (MobileNetV3)"""


class Hardsigmoid(Activation, op="hardsigmoid", module="nn.Hardsigmoid"):
    """activation: relu6(x + 3) / 6, a cheap sigmoid for gates (MobileNetV3)"""

"""Live backend: typed graph -> torch.nn.Module.

Each layer is built from its validated arguments and the input shape inference gave it
(in_channels, in_features, 1-d or 2-d batch norm); nothing is probed with a forward pass.
The module tree follows `graph.py`'s naming, so module paths equal the summary's paths.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from ..analysis import layers as L
from ..analysis.graph import Graph, Node, Shape
from ..errors import CnnspecError
from .runtime import Add, Concat, Dense, Heads, Network, Reshape
from .summary import shape_text

Builder = Callable[[L.Layer, Shape], nn.Module]


def _conv(layer: L.Conv, shape: Shape) -> nn.Module:
    return nn.Conv2d(
        shape[0], layer.out, layer.k, stride=layer.s, padding=layer.p, dilation=layer.d,
        groups=layer.groups, bias=layer.bias,
    )  # fmt: skip


def _pool(layer: L.MaxPool | L.AvgPool, shape: Shape) -> nn.Module:
    if isinstance(layer, L.MaxPool):
        return nn.MaxPool2d(layer.k, layer.stride, layer.p, ceil_mode=layer.ceil_mode)
    return nn.AvgPool2d(
        layer.k, layer.stride, layer.p, ceil_mode=layer.ceil_mode,
        count_include_pad=layer.count_include_pad,
    )  # fmt: skip


def _batchnorm(layer: L.BatchNorm, shape: Shape) -> nn.Module:
    norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return norm(shape[0], eps=layer.eps, momentum=layer.momentum)


BUILDERS: dict[str, Builder] = {
    "conv": _conv,
    "maxpool": _pool,
    "avgpool": _pool,
    "adaptive_avgpool": lambda layer, shape: nn.AdaptiveAvgPool2d(layer.size),
    "adaptive_maxpool": lambda layer, shape: nn.AdaptiveMaxPool2d(layer.size),
    "gap": lambda layer, shape: nn.AdaptiveAvgPool2d((1, 1)),
    "flatten": lambda layer, shape: nn.Flatten(),
    "reshape": lambda layer, shape: Reshape(layer.shape),
    "linear": lambda layer, shape: nn.Linear(shape[0], layer.out, bias=layer.bias),
    "dropout": lambda layer, shape: nn.Dropout(layer.p),
    "batchnorm": _batchnorm,
    "identity": lambda layer, shape: nn.Identity(),
    "relu": lambda layer, shape: nn.ReLU(),
    "relu6": lambda layer, shape: nn.ReLU6(),
    "leaky_relu": lambda layer, shape: nn.LeakyReLU(layer.slope),
    "sigmoid": lambda layer, shape: nn.Sigmoid(),
    "tanh": lambda layer, shape: nn.Tanh(),
    "gelu": lambda layer, shape: nn.GELU(),
    "silu": lambda layer, shape: nn.SiLU(),
}


def _module(node: Node) -> nn.Module:
    if node.is_layer:
        return BUILDERS[node.layer.op](node.layer, node.in_shape)
    children = {name: _module(child) for name, child in node.children}
    if node.kind == "seq":
        return nn.Sequential(OrderedDict(children))
    if node.kind == "concat":
        return Concat(children)
    if node.kind == "add":
        return Add(children, _module(node.shortcut) if node.shortcut is not None else None)
    if node.kind == "dense":
        return Dense(children)
    if node.kind == "heads":
        return Heads(children)
    raise AssertionError(f"no module for node kind {node.kind!r}")


def init_xavier(module: nn.Module) -> None:
    """d2l's `init_weights`: xavier-uniform weights for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)


def build(graph: Graph, init: str | None = None) -> nn.Module:
    """The graph as a module; `init` defaults to the spec's recipe ("xavier" or "default")."""
    stages = {name: _module(node) for name, node in graph.root.children}
    net = Network(graph.name, stages)
    if (init or graph.recipe.init) == "xavier":
        init_xavier(net)
    return net


def check_forward(spec) -> None:
    """Build `spec` and run a zero batch through it: the output must have the inferred shape."""
    net = spec.build().eval()
    with torch.no_grad():
        out = net(torch.zeros(1, *spec.input_shape))
    got = tuple(tuple(o.shape[1:]) for o in out) if isinstance(out, tuple) else tuple(out.shape[1:])
    if got != tuple(spec.output_shape):
        raise CnnspecError(
            f"{spec.name}: a forward pass gives {shape_text(got)}, but inference says "
            f"{shape_text(spec.output_shape)}"
        )

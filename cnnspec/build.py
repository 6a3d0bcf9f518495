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

from . import layers as L
from .errors import CnnspecError
from .graph import Graph, Node, Shape
from .modules import Add, Concat, Dense, Heads, Network, Reshape
from .summary import shape_text

Builder = Callable[[L.Layer, Shape], nn.Module]


def _stride(layer) -> int | tuple[int, int]:
    return layer.s if layer.s is not None else layer.k


BUILDERS: dict[str, Builder] = {
    "conv": lambda l, shape: nn.Conv2d(
        shape[0], l.out, l.k, stride=l.s, padding=l.p, dilation=l.d, groups=l.groups, bias=l.bias
    ),
    "maxpool": lambda l, shape: nn.MaxPool2d(l.k, _stride(l), l.p, ceil_mode=l.ceil_mode),
    "avgpool": lambda l, shape: nn.AvgPool2d(
        l.k, _stride(l), l.p, ceil_mode=l.ceil_mode, count_include_pad=l.count_include_pad
    ),
    "adaptive_avgpool": lambda l, shape: nn.AdaptiveAvgPool2d(l.size),
    "adaptive_maxpool": lambda l, shape: nn.AdaptiveMaxPool2d(l.size),
    "gap": lambda l, shape: nn.AdaptiveAvgPool2d((1, 1)),
    "flatten": lambda l, shape: nn.Flatten(),
    "reshape": lambda l, shape: Reshape(l.shape),
    "linear": lambda l, shape: nn.Linear(shape[0], l.out, bias=l.bias),
    "dropout": lambda l, shape: nn.Dropout(l.p),
    "batchnorm": lambda l, shape: (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(
        shape[0], eps=l.eps, momentum=l.momentum
    ),
    "identity": lambda l, shape: nn.Identity(),
    "relu": lambda l, shape: nn.ReLU(),
    "relu6": lambda l, shape: nn.ReLU6(),
    "leaky_relu": lambda l, shape: nn.LeakyReLU(l.slope),
    "sigmoid": lambda l, shape: nn.Sigmoid(),
    "tanh": lambda l, shape: nn.Tanh(),
    "gelu": lambda l, shape: nn.GELU(),
    "silu": lambda l, shape: nn.SiLU(),
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

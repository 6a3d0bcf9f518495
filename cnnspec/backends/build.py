"""Live backend: typed graph -> torch.nn.Module.

Each layer becomes the module its op's `constructor` names, made from its validated
arguments and the input shape inference gave it (in_channels, in_features, 1-d or 2-d
batch norm); nothing is probed with a forward pass. A combinator becomes the runtime
module its class's `constructor` names, with the layers it owns. The module tree follows
`graph.py`'s naming, so module paths equal the summary's paths.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..analysis.combinators import RULES
from ..analysis.graph import Graph, Node, steps
from ..analysis.ops import ModuleCall
from ..errors import CnnspecError
from . import runtime
from .summary import shape_text


def module_class(name: str) -> type[nn.Module]:
    """The class a `ModuleCall` names: `nn.Conv2d` from torch, `Reshape` from the runtime."""
    if name.startswith("nn."):
        return getattr(nn, name.removeprefix("nn."))
    return getattr(runtime, name)


def instantiate(call: ModuleCall) -> nn.Module:
    return module_class(call.module)(*call.args, **dict(call.kwargs))


def _module(node: Node) -> nn.Module:
    if node.is_layer:
        layer = node.layer
        image = len(node.in_shape) == 3
        return instantiate(type(layer).constructor(layer.arguments(), node.in_shape[0], image))
    children = OrderedDict((name, _module(child)) for name, child in node.children)
    if node.kind == "seq":
        return nn.Sequential(children)
    if node.kind == "graph":
        return runtime.GraphNetwork(node.label, children, graph_steps(node), node.outputs)
    owned = {name: _module(layer) for name, layer in node.owned}
    channels = None if isinstance(node.out_shape[0], tuple) else node.out_shape[0]
    call = RULES[node.kind].constructor(dict(children), owned, dict(node.options), channels)
    return instantiate(call)


def graph_steps(node: Node) -> dict:
    """What GraphNetwork needs of each line: its sources, its join, its reading layers."""
    return {s.name: (s.sources, s.join, s.readers) for s in steps(node)}


def build(graph: Graph, init: str | None = None) -> nn.Module:
    """The graph as a module; `init` defaults to the spec's recipe ("xavier" or "default")."""
    if graph.reads_tensors:
        net = _module(graph.root)
    else:
        stages = {name: _module(node) for name, node in graph.root.children}
        net = runtime.Network(graph.name, stages)
    if (init or graph.recipe.init) == "xavier":
        runtime.init_xavier(net)
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

"""Code generation, per op: the torch constructor for each layer, as source text.

One entry per op in `LAYER_CODE`, taking the op's given arguments (already source text),
the input channels and whether the input is an image. Arguments left at their defaults
are left out: cnnspec's defaults are torch's.
"""

from __future__ import annotations

import json

from ...errors import SpecError
from ...language.expressions import PYTHON_CONSTANTS
from .pyformat import Call, Dict, List

RUNTIME_CLASSES = ("Concat", "Add", "Dense", "Heads", "Reshape")
COMBINATOR_CLASSES = {"concat": "Concat", "add": "Add", "dense": "Dense", "heads": "Heads"}


class CodegenError(SpecError):
    """The spec is valid, but a block uses something a generic block class cannot express."""


def _kw(args: dict[str, str], **names: str) -> tuple:
    return tuple((torch_name, args[ours]) for ours, torch_name in names.items() if ours in args)


def _pool(cls: str):
    def make(a, channels, image):
        names = {"s": "stride", "p": "padding", "ceil_mode": "ceil_mode"}
        if cls == "nn.AvgPool2d":
            names["count_include_pad"] = "count_include_pad"
        return Call(cls, (a["k"], *_kw(a, **names)))

    return make


def _plain(cls: str):
    return lambda a, channels, image: Call(cls)


LAYER_CODE = {
    "conv": lambda a, channels, image: Call("nn.Conv2d", (
        channels, a["out"], ("kernel_size", a["k"]),
        *_kw(a, s="stride", p="padding", d="dilation", groups="groups", bias="bias"),
    )),
    "maxpool": _pool("nn.MaxPool2d"),
    "avgpool": _pool("nn.AvgPool2d"),
    "adaptive_avgpool": lambda a, channels, image: Call("nn.AdaptiveAvgPool2d", (a["size"],)),
    "adaptive_maxpool": lambda a, channels, image: Call("nn.AdaptiveMaxPool2d", (a["size"],)),
    "gap": lambda a, channels, image: Call("nn.AdaptiveAvgPool2d", ("(1, 1)",)),
    "flatten": _plain("nn.Flatten"),
    "reshape": lambda a, channels, image: Call("Reshape", (a["shape"],)),
    "linear": lambda a, channels, image: Call(
        "nn.Linear", (channels, a["out"], *_kw(a, bias="bias"))),
    "dropout": lambda a, channels, image: Call("nn.Dropout", (a["p"],) if "p" in a else ()),
    "batchnorm": lambda a, channels, image: Call(
        "nn.BatchNorm2d" if image else "nn.BatchNorm1d",
        (channels, *_kw(a, eps="eps", momentum="momentum"))),
    "identity": _plain("nn.Identity"),
    "relu": _plain("nn.ReLU"),
    "relu6": _plain("nn.ReLU6"),
    "leaky_relu": lambda a, channels, image: Call("nn.LeakyReLU", _kw(a, slope="negative_slope")),
    "sigmoid": _plain("nn.Sigmoid"),
    "tanh": _plain("nn.Tanh"),
    "gelu": _plain("nn.GELU"),
    "silu": _plain("nn.SiLU"),
}  # fmt: skip


def py_value(value) -> str:
    """A Python literal for an evaluated argument."""
    if isinstance(value, bool) or value is None:
        return PYTHON_CONSTANTS[value]
    if isinstance(value, tuple):
        inner = ", ".join(py_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def class_name(block: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in block.split("_") if part)


def collect(branches: list[tuple[str | None, object]]):
    """Branches as a list (numbered) or, when any is named, a dict literal."""
    if all(name is None or name == str(i) for i, (name, _) in enumerate(branches)):
        return List(tuple(expr for _, expr in branches))
    return Dict(tuple((json.dumps(name if name is not None else str(i)), expr)
                      for i, (name, expr) in enumerate(branches)))  # fmt: skip

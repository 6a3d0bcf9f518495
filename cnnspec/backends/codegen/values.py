"""Source text for values, names and module constructors.

Every value reaches generated code through here: evaluated arguments as Python literals,
an op's `ModuleCall` as a constructor call, branches as a list or a dict literal.
"""

from __future__ import annotations

import json
import math
import re

from ...analysis.graph import Node
from ...analysis.ops import ModuleCall
from ...errors import SpecError
from ...language.expressions import FUNCTIONS, PYTHON_CONSTANTS
from ..runtime_source import runtime_names
from .pyformat import Call, Dict, List


class CodegenError(SpecError):
    """The spec is valid, but a block uses something a generic block class cannot express."""


def py_value(value) -> str:
    """A Python literal for an evaluated argument."""
    if isinstance(value, bool) or value is None:
        return PYTHON_CONSTANTS[value]
    if isinstance(value, tuple):
        inner = ", ".join(py_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):  # a word argument (`mode="bilinear"`), quoted as ruff does
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"  # inf and nan have no literal
    return repr(value)


def constructor(call: ModuleCall) -> Call:
    """An op's or a combinator's module constructor as source; arguments already source
    text (or source trees: branches, modules) stay as they are, values become literals."""

    def text(value):
        return value if isinstance(value, (str, Call, List, Dict)) else py_value(value)

    return Call(
        call.module,
        (*(text(v) for v in call.args), *((name, text(v)) for name, v in call.kwargs)),
    )


def layer_constructor(node: Node, text=py_value) -> ModuleCall:
    """A layer node's module, its arguments and input channels written by `text`."""
    layer = node.layer
    args = {name: text(value) for name, value in layer.arguments().items()}
    return type(layer).constructor(args, text(node.in_shape[0]), len(node.in_shape) == 3)


def runtime_functions(source: str) -> set[str]:
    """The language's functions `source` calls that generated code copies from the
    runtime (`make_divisible(...)`; `max` is Python's)."""
    return {name for name in re.findall(r"\b(\w+)\(", source) if name in FUNCTIONS} & set(
        runtime_names()
    )


def class_name(block: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in block.split("_") if part)


def collect(branches: list[tuple[str | None, object]]):
    """Branches as a list (numbered) or, when any is named, a dict literal."""
    if all(name is None or name == str(i) for i, (name, _) in enumerate(branches)):
        return List(tuple(expr for _, expr in branches))
    return Dict(
        tuple(
            (json.dumps(name if name is not None else str(i)), expr)
            for i, (name, expr) in enumerate(branches)
        )
    )

"""The network class's own parameters: its input channels (or features) and its classes.

The stages are written from an inference of the spec in which each parameter's default
is a symbol (`language/symbols.py`): every size computed from it carries its expression
into the source, so `conv(max(C, 4))` after the input is written
`nn.Conv2d(in_channels, max(in_channels, 4), ...)` and `linear(classes)` is written
`nn.Linear(84, num_classes)`. A parameter is not offered where

- the spec does not hold at another value (a reshape fixes the channels);
- a choice of structure read it: a condition, a repeat count, an index, a residual
  written out in place that projects only where the shape changes, or a size a shape
  rule computes in a way no expression carries (select's default width);
- no size follows it.

Last, the stages written with the parameters are evaluated at other values (1, 2, 3 and
the default + 5) and compared with the spec written at each; a parameter they miss (a
size computed where its expression was lost) is not offered either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from ...analysis.graph import Graph
from ...analysis.infer import infer
from ...errors import CnnspecError
from ...language import ir, symbols
from ...language.expressions import make_divisible
from ...limits import Limits
from .pyformat import Call, Dict, List
from .values import runtime_functions

# A stage's constructor expression, as `pyformat` trees, by stage name.
Stages = list[tuple[str, object]]


@dataclass(frozen=True)
class Written:
    stages: Stages
    # The parameters a choice of structure made by the writer read (a residual's projection).
    read: frozenset[str] = frozenset()
    blocks: tuple[str, ...] = ()  # the block classes the stages instantiate
    runtime: frozenset[str] = frozenset()  # the runtime classes and functions they need


@dataclass(frozen=True)
class Parameter:
    name: str
    default: int
    fixed: str | None = None  # why the class does not take it, where it does not


# What the expressions of generated sizes may call (`expressions.FUNCTIONS`, as written).
_FUNCTIONS = {
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "pow": pow,
    "make_divisible": make_divisible,
    "ceil": math.ceil,
    "log": lambda x, base=None: math.log(x) if base is None else math.log(x, base),
}

Writer = Callable[[ir.Document, Graph], Written]


def parameters(
    doc: ir.Document, graph: Graph, write: Writer, limits: Limits
) -> tuple[Written, list[Parameter]]:
    """The stages, each size that follows a parameter written in terms of it, and the
    candidate parameters, each with why the class does not take it where it does not;
    `write` gives the stages of a document and its inferred graph, `graph` is `doc`'s,
    inferred within `limits`."""
    net = doc.network
    feature = "in_channels" if len(net.input) == 3 else "in_features"
    defaults = {feature: net.input[0], "num_classes": net.classes}
    fixed = {}
    for name, value in defaults.items():
        refused = _refused_at(doc, {name: value + 1}, limits)
        if refused is not None:
            fixed[name] = f"at {value + 1}, {refused.message}"
    written = None
    while offered := [name for name in defaults if name not in fixed]:
        values = {name: symbols.symbol(name, defaults[name]) for name in offered}
        with symbols.tracing() as choices:
            moved = _with(doc, values)
            written = write(moved, infer(moved, limits))
        found = _names(written.stages, defaults)
        for name in offered:
            reasons = [_why(choice.what) for choice in choices if name in choice.names]
            if reasons:
                fixed[name] = reasons[0]
            if name in written.read:
                fixed[name] = "a residual written out in place projects or not as it decides"
            elif name not in found and name not in fixed:
                fixed[name] = "no size follows it"
        if all(name not in fixed for name in offered):
            checked = (written.stages, defaults, write, doc, limits)
            for name in offered:
                if not _holds(name, *checked):
                    fixed[name] = "its sizes, written in terms of it, miss the spec's elsewhere"
        if all(name not in fixed for name in offered):
            break
    if any(name not in fixed for name in defaults) and written is not None:
        written = _calling(written)
    else:
        written = write(doc, graph)
    return written, [Parameter(name, value, fixed.get(name)) for name, value in defaults.items()]


def _why(what: str) -> str:
    """A choice, as the reason a parameter is not taken."""
    if what.startswith("'"):
        return f"a comparison ({what}) reads it"
    return f"{what} reads it" if what != "select's default width" else f"{what} follows it"


def _calling(written: Written) -> Written:
    """`written`, noting the functions its sizes call that generated code copies from the
    runtime (`make_divisible(...)`; `max` is Python's)."""
    called = set().union(*(runtime_functions(text) for text in _texts(written.stages)))
    return replace(written, runtime=written.runtime | called)


def _with(doc: ir.Document, values: dict[str, int]) -> ir.Document:
    """`doc` with its input's channels (or features) and classes set as `values` says."""
    net, update = doc.network, {}
    for name, value in values.items():
        if name == "num_classes":
            update["classes"] = value
        else:
            update["input"] = (value, *net.input[1:])
    return doc.model_copy(update={"network": net.model_copy(update=update)})


def _refused_at(doc: ir.Document, values: dict[str, int], limits: Limits) -> CnnspecError | None:
    """The error the spec gives with `values`, or None where it holds."""
    try:
        infer(_with(doc, values), limits)
    except CnnspecError as err:
        return err
    return None


def _holds(
    name: str, stages: Stages, defaults: dict, write: Writer, doc: ir.Document, limits: Limits
) -> bool:
    """Whether the stages, evaluated with `name` at each value checked, are what the spec
    gives at that value (the other parameters at their defaults)."""
    default = defaults[name]
    for value in (v for v in (1, 2, 3, default + 5) if v != default):
        try:
            moved = _with(doc, {name: value})
            written = write(moved, infer(moved, limits))
        except CnnspecError:
            continue  # the spec refuses this value itself
        expected = [(stage, _evaluated(tree, defaults | {name: value})) for stage, tree in stages]
        if expected != written.stages:
            return False
    return True


def _evaluated(tree, values: dict[str, int]):
    """`tree` with each expression of the parameters replaced by its value's source."""
    if isinstance(tree, str):
        if tree.startswith('"') or not any(re.search(rf"\b{name}\b", tree) for name in values):
            return tree
        # Our own expressions of the parameters, as `symbols.render` wrote them.
        try:
            value = eval(tree, {"__builtins__": {}, **_FUNCTIONS}, values)  # noqa: S307
        except Exception as err:  # noqa: BLE001 (wrong where the spec holds: not offered)
            return f"<{type(err).__name__}>"
        return repr(value)
    parts = _parts(tree)
    if parts is None:
        return tree
    return _rebuild(tree, [_evaluated(part, values) for part in parts])


def _names(stages: Stages, candidates) -> set[str]:
    """The candidate parameters named in the stages' source."""
    pattern = rf"\b(?:{'|'.join(candidates)})\b"
    return {name for text in _texts(stages) for name in re.findall(pattern, text)}


def _texts(stages: Stages) -> list[str]:
    """The source of every value in the stages (not a quoted name)."""
    found, pending = [], [tree for _, tree in stages]
    while pending:
        tree = pending.pop()
        if isinstance(tree, str):
            if not tree.startswith('"'):
                found.append(tree)
        else:
            pending.extend(_parts(tree) or ())
    return found


def _parts(tree) -> list | None:
    if isinstance(tree, Call):
        return list(tree.args)
    if isinstance(tree, tuple):
        return [tree[1]]
    if isinstance(tree, List):
        return list(tree.items)
    if isinstance(tree, Dict):
        return [v for _, v in tree.items]
    return None


def _rebuild(tree, parts: list):
    if isinstance(tree, Call):
        return Call(tree.func, tuple(parts))
    if isinstance(tree, tuple):
        return (tree[0], parts[0])
    if isinstance(tree, List):
        return List(tuple(parts))
    return Dict(tuple((k, v) for (k, _), v in zip(tree.items, parts)))

"""The network class's own parameters: its input channels and its number of classes.

The network class is written with the concrete sizes inference gave. To take
`in_channels` and `num_classes` as torchvision's models do, the stages are also written
for the spec with each moved by +1 and by +2: each size in the source that moves with it,
and moves in step, becomes an expression of the parameter (`num_classes`,
`in_channels + 32`). A parameter that some size follows otherwise (a reshape that fixes
the channel count makes the moved spec invalid; a size that doubles) is not offered, nor
one that a choice of structure written into the stages depends on (whether a residual
written out in place gets a projection).

In step at +1 and +2 is not yet a straight line everywhere: `min(C, 64)` from 3 bends only
at 64. So the spec is also inferred at the default and at +1 noting each operation of its
expressions that is no straight line (`min`, `//`, a comparison, `C * C`: see
`recording_bends`); where one is applied to values that differ between the two, a size
or a choice follows the parameter along a bend, and it is not offered. Where none is,
every expression is a straight line of the parameter or does not move with it, and so is
every size, the layers' own shape rules being straight lines of their input's channels.
The expressions are then checked against the spec written at 1, 2, 3 and default + 5.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ...analysis.graph import Graph
from ...analysis.infer import infer
from ...errors import CnnspecError
from ...language import ir
from ...language.expressions import recording_bends
from .pyformat import Call, Dict, List

# A stage's constructor expression, as `pyformat` trees, by stage name.
Stages = list[tuple[str, object]]


@dataclass(frozen=True)
class Written:
    stages: Stages
    # The sizes each choice of structure was made on, as the writer made them.
    decided_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Parameter:
    name: str
    default: int
    moved: tuple[Written, Written]  # the network written for default + 1 and default + 2
    # The network written for any value, or None where the spec does not hold for it.
    write_at: Callable[[int], Written | None] = lambda value: None

    def checked_at(self) -> tuple[int, ...]:
        """Values beyond default + 1 and + 2 that a size rule must hold for: the smallest
        (where max(C, 4) and C // 2 part from a straight line) and one further out."""
        return tuple(v for v in (1, 2, 3, self.default + 5) if v != self.default)


def parameters(doc: ir.Document, write: Callable[[ir.Document, Graph], Written]) -> list[Parameter]:
    """The parameters the network class can take; `write` gives the stages of a document
    and its inferred graph."""
    net = doc.network
    image = len(net.input) == 3
    candidates = {
        "in_channels" if image else "in_features": (
            net.input[0],
            lambda n: net.model_copy(update={"input": (n, *net.input[1:])}),
        ),
        "num_classes": (net.classes, lambda n: net.model_copy(update={"classes": n})),
    }
    found = []
    with recording_bends([]) as bends:
        infer(doc)
    for name, (default, moved) in candidates.items():
        try:
            with recording_bends([]) as moved_bends:
                one = _with(doc, moved(default + 1))
            if _bent(bends, moved_bends):
                continue  # some size or choice bends with it (`min(C, 64)`)
            plus = (write(*one), write(*_with(doc, moved(default + 2))))
        except CnnspecError:
            continue  # the spec does not hold for another value (a reshape fixes it)
        found.append(Parameter(name, default, plus, _writer(doc, moved, write)))
    return found


def _bent(base: list, moved: list) -> bool:
    """Whether, between two inferences of a spec that differ in one parameter, an operation
    that is no straight line was applied to values that moved with it (or the operations
    evaluated differ: a choice followed it). A value that is a straight line of the
    parameter and equal at two of its values is equal at all, so where nothing moved every
    size is a straight line of it."""
    if len(base) != len(moved):
        return True
    for (pos, op, before), (moved_pos, moved_op, after) in zip(base, moved):
        if (pos, op) != (moved_pos, moved_op):
            return True
        changed = [a != b for a, b in zip(before, after)]
        if op == "*":  # a straight line unless both factors move (C * C)
            bends = all(changed)
        elif op == "/":  # a straight line unless the divisor moves (C / 2 is one)
            bends = changed[1]
        else:
            bends = any(changed)
        if bends:
            return True
    return False


def _writer(doc, moved, write) -> Callable[[int], Written | None]:
    def write_at(value: int) -> Written | None:
        try:
            return write(*_with(doc, moved(value)))
        except CnnspecError:
            return None  # the spec refuses this value itself

    return write_at


def _with(doc: ir.Document, network: ir.Network) -> tuple[ir.Document, Graph]:
    moved = doc.model_copy(update={"network": network})
    return moved, infer(moved)  # raises if the spec does not hold for this value


def substitute(base: Written, params: list[Parameter]) -> tuple[Stages, list[Parameter]]:
    """The stages with each size that follows a parameter written in terms of it, and the
    parameters that some size follows. A parameter followed out of step, that moves what
    a choice of structure was made on, or whose expressions miss what the spec gives at
    another value it holds for, is dropped."""
    stages, used = _substitute(base, params)
    wrong = [p for p in used if not _holds(stages, p, used)]
    if wrong:
        return substitute(base, [p for p in params if p not in wrong])
    return stages, used


def _holds(stages: Stages, param: Parameter, used: list[Parameter]) -> bool:
    """Whether the stages, written in terms of the parameters, are what the spec gives
    with `param` at each of its checked values (the others at their defaults)."""
    for value in param.checked_at():
        written = param.write_at(value)
        if written is None:
            continue
        values = {p.name: p.default for p in used} | {param.name: value}
        if written.decided_on != param.moved[0].decided_on:
            return False
        expected = [(name, _evaluated(tree, values)) for name, tree in stages]
        if expected != written.stages:
            return False
    return True


def _evaluated(tree, values: dict[str, int]):
    """`tree` with each expression of the parameters (as `_expression` writes them)
    replaced by its value."""
    if isinstance(tree, str):
        if not any(re.search(rf"\b{name}\b", tree) for name in values):
            return tree
        return str(eval(tree, {"__builtins__": {}}, values))  # noqa: S307 (our own a * n + b)
    parts = _parts(tree)
    if parts is None:
        return tree
    return _rebuild(tree, [_evaluated(part, values) for part in parts])


def _substitute(base: Written, params: list[Parameter]) -> tuple[Stages, list[Parameter]]:
    used = [
        p
        for p in params
        if p.moved[0].stages != base.stages
        and p.moved[0].decided_on == base.decided_on
        and _in_step(base.stages, p)
    ]
    moved = [(p, p.moved[0].stages, p.moved[1].stages) for p in used]
    stages = [
        (name, _rewrite(tree, [(p, one[i][1], two[i][1]) for p, one, two in moved]))
        for i, (name, tree) in enumerate(base.stages)
    ]
    return stages, used


def _in_step(stages: Stages, param: Parameter) -> bool:
    one, two = (written.stages for written in param.moved)
    names = [n for n, _ in stages]
    if [n for n, _ in one] != names or [n for n, _ in two] != names:
        return False
    return all(_linear(t, a, b) for (_, t), (_, a), (_, b) in zip(stages, one, two))


def _linear(base, one, two) -> bool:
    """The trees have one shape, and every literal that differs moves by equal steps."""
    if isinstance(base, str):
        if not (isinstance(one, str) and isinstance(two, str)):
            return False
        if base == one == two:
            return True
        numbers = [_int(x) for x in (base, one, two)]
        return None not in numbers and numbers[2] - numbers[1] == numbers[1] - numbers[0]
    parts = [_parts(x) for x in (base, one, two)]
    if None in parts or not (len(parts[0]) == len(parts[1]) == len(parts[2])):
        return False
    if not (_head(base) == _head(one) == _head(two)):
        return False
    return all(_linear(*trio) for trio in zip(*parts))


def _rewrite(base, moved: list[tuple[Parameter, object, object]]):
    """`base` with each literal that moves written as an expression of the parameters."""
    if isinstance(base, str):
        value = _int(base)
        if value is None:
            return base
        terms = [(p, _int(one) - value) for p, one, _ in moved if one != base]
        return _expression(value, terms) if terms else base
    children = _parts(base)
    parts = [(p, _parts(one), _parts(two)) for p, one, two in moved]  # once, not per child
    rewritten = [
        _rewrite(child, [(p, one[i], two[i]) for p, one, two in parts])
        for i, child in enumerate(children)
    ]
    return _rebuild(base, rewritten)


def _expression(value: int, terms: list[tuple[Parameter, int]]) -> str:
    """`value` as `a * name + ... + b`, where each step of a parameter moves it by a."""
    constant = value - sum(step * p.default for p, step in terms)
    parts = [p.name if step == 1 else f"{step} * {p.name}" for p, step in terms]
    text = " + ".join(parts)
    if constant > 0:
        text += f" + {constant}"
    elif constant < 0:
        text += f" - {-constant}"
    return text


def _int(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def _head(tree) -> object:
    if isinstance(tree, Call):
        return ("call", tree.func)
    if isinstance(tree, tuple):
        return ("keyword", tree[0])
    if isinstance(tree, Dict):
        return ("dict", tuple(k for k, _ in tree.items))
    return type(tree)


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

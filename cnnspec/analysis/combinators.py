"""The combinators' rules: how branches are walked and joined, and what shape comes out.

One entry per kind in `RULES`, keyed by the language's `COMBINATORS` (a test ties them):
the options the kind takes, and the function that joins it. Each function gets the
inference walking the network (`Walker`), so branches are inferred like any other body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import prod
from typing import Protocol

from ..errors import Pos, ShapeError, SpecError
from ..language import ir
from ..language.expressions import Value, describe, evaluate
from .graph import Flow, Node, describe_output, group
from .ops import Conv, Layer, Shape, Window, fmt, pair


class Walker(Protocol):
    """What a combinator's rule needs of the inference walking the network."""

    def sequence(self, items, flow: Flow, env, label: str, pos: Pos) -> tuple[Node, Flow]: ...

    def apply(self, layer: Layer, flow: Flow, pos: Pos) -> Node: ...

    def repeat_count(self, item: ir.Repeat, env) -> int: ...


Join = Callable[[Walker, ir.Combinator, Flow, Mapping, Mapping[str, Value]], Node]


@dataclass(frozen=True)
class Rule:
    join: Join
    options: tuple[str, ...] = ()  # each true, false or none (none: decide from the shapes)
    numbers: tuple[str, ...] = ()  # those of the options that take a number (or none)


def combine(walker: Walker, comb: ir.Combinator, flow: Flow, env) -> Node:
    rule = RULES[comb.kind]
    return rule.join(walker, comb, flow, env, _options(rule, comb, env))


def _options(rule: Rule, comb: ir.Combinator, env) -> dict[str, Value]:
    options = {}
    for kw in comb.kwargs:  # their names were checked with the spec's other names
        value = evaluate(kw.value, env)
        if kw.name in rule.numbers:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not number:
                raise SpecError(
                    f"{comb.kind} option '{kw.name}' must be a number or none, "
                    f"got {describe(value)}",
                    kw.value.pos,
                )
        elif value not in (True, False, None):
            raise SpecError(
                f"{comb.kind} option '{kw.name}' must be true, false or none, "
                f"got {describe(value)}",
                kw.value.pos,
            )
        options[kw.name] = value
    return options


# Combinators whose branches may be present only under a condition: a branch written as
# conditions that all fail is left out. (A summed, gating or split branch would change
# what the combinator does, so there a condition goes around the combinator.)
OPTIONAL_BRANCHES = ("concat", "heads")


def _branches(walker: Walker, comb: ir.Combinator, flow: Flow, env) -> list[tuple[str, Node]]:
    """Each branch inferred from the same input, named by the spec or numbered (a branch
    left out keeps its number free, so the others keep their module paths)."""
    branches: list[tuple[str, Node]] = []
    for i, branch in enumerate(comb.branches):
        node, _ = walker.sequence(branch.body, flow, env, branch.name or "branch", branch.pos)
        if conditional(branch):
            if comb.kind not in OPTIONAL_BRANCHES:
                raise SpecError(
                    f"a branch of {comb.kind} cannot be present only under a condition; "
                    f"put the condition around the {comb.kind}",
                    branch.pos,
                )
            if node.kind == "seq" and not node.children:
                continue  # every condition failed: the branch is not there
        branches.append((branch.name or str(i), node))
    if not branches:
        raise SpecError(f"every branch of this {comb.kind} is left out here", comb.pos)
    if len({name for name, _ in branches}) < len(branches):
        raise SpecError(f"{comb.kind} has two branches with the same name", comb.pos)
    return branches


def conditional(branch: ir.Branch) -> bool:
    """Written only as conditions with no `else`: present only when one holds."""
    return bool(branch.body) and all(
        isinstance(item, ir.If) and not item.orelse for item in branch.body
    )


def concat(walker: Walker, comb: ir.Combinator, flow: Flow, env, options) -> Node:
    """Branches side by side, joined on channels."""
    branches = _branches(walker, comb, flow, env)
    out_shape = _joined_on_channels("concat", branches, comb)
    return group("concat", "concat", flow.shape, branches, comb.pos, out_shape=out_shape)


def _joined_on_channels(kind: str, branches: list[tuple[str, Node]], comb) -> Shape:
    """The shape of the branches' outputs concatenated on channels; they must agree in
    everything else."""
    first_name, first = branches[0]
    for (name, node), branch in zip(branches, comb.branches):
        out = node.out_shape
        if len(out) != len(first.out_shape) or out[1:] != first.out_shape[1:]:
            raise ShapeError(
                f"{kind} branch {name} gives {describe_output(out)} but branch "
                f"{first_name} gives {describe_output(first.out_shape)}; concatenated "
                "branches must agree in everything but channels",
                branch.pos,
            )
    return (sum(node.out_shape[0] for _, node in branches), *first.out_shape[1:])


def add(walker: Walker, comb: ir.Combinator, flow: Flow, env, options) -> Node:
    """Branches summed; one branch is a residual: the input is added back, through a 1x1
    convolution when the branch changes the shape (or `project=true` asks for one).
    `scale=init` multiplies the residual branch by a learned scale per channel (C x 1 x 1,
    starting at init) that the residual holds itself, ahead of its branch (ConvNeXt's
    `layer_scale`)."""
    if len(comb.branches) > 1:
        _check_sum_is_meant(comb, options)
    branches = _branches(walker, comb, flow, env)
    project = options.get("project")
    scale = options.get("scale")
    if len(branches) > 1:
        first_name, first = branches[0]
        for (name, node), branch in zip(branches, comb.branches):
            if node.out_shape != first.out_shape:
                raise ShapeError(
                    f"add branch {name} gives {describe_output(node.out_shape)} but branch "
                    f"{first_name} gives {describe_output(first.out_shape)}; added branches "
                    "must have the same shape",
                    branch.pos,
                )
        return group("add", "add", flow.shape, branches, comb.pos, out_shape=first.out_shape)
    main = branches[0][1]
    scaled = 0
    if scale is not None:
        if len(main.out_shape) != 3:
            given = next(kw for kw in comb.kwargs if kw.name == "scale")
            raise ShapeError(
                f"add: scale= needs the branch to give an image (C x H x W), got "
                f"{describe_output(main.out_shape)}",
                given.pos,
            )
        scaled = main.out_shape[0]
    shortcut = None
    if main.out_shape != flow.shape or project is True:
        if project is False:
            raise ShapeError(
                f"add: the branch turns {fmt(flow.shape)} into {fmt(main.out_shape)} but "
                "project=false keeps the shortcut as it is; they cannot be added",
                comb.pos,
            )
        shortcut = walker.apply(_projection(flow.shape, main, comb.pos), flow, comb.pos)
    node = group("add", "add", flow.shape, branches, comb.pos, out_shape=main.out_shape)
    if shortcut is None and scale is None:
        return node
    return Node(
        "add",
        "add",
        flow.shape,
        main.out_shape,
        node.params + scaled + (shortcut.params if shortcut else 0),
        node.macs + (shortcut.macs if shortcut else 0),
        comb.pos,
        children=node.children,
        shortcut=shortcut,
        scale=None if scale is None else float(scale),
    )


def _check_sum_is_meant(comb: ir.Combinator, options) -> None:
    """Several branches are summed with no shortcut. Lines meant as one residual path read
    that way too, so unnamed lines must say they are branches, and `project` and `scale`
    (which only a residual has) are refused rather than ignored."""
    for option, missing in (("project", "shortcut to project"), ("scale", "residual to scale")):
        if options.get(option) is not None:
            given = next(kw for kw in comb.kwargs if kw.name == option)
            raise SpecError(
                f"add has {len(comb.branches)} branches, which are summed with no {missing}; "
                f"{option}= applies to one branch with the input added back",
                given.pos,
            )
    if all(branch.name is None and not _is_combinator(branch) for branch in comb.branches):
        raise SpecError(
            f"add has {len(comb.branches)} unnamed branches (one per line), summed with no "
            "shortcut; for one residual path put its layers in one branch (one line, "
            "(...) across lines, or under a name such as main:), or name the branches to sum",
            comb.branches[1].pos,
        )


def _is_combinator(branch: ir.Branch) -> bool:
    return len(branch.body) == 1 and isinstance(branch.body[0], ir.Combinator)


def dense(walker: Walker, comb: ir.Combinator, flow: Flow, env, options) -> Node:
    """DenseNet connectivity: each unit sees everything before it, concatenated.
    Each line is a unit; a line written `(...) * n` is n units."""
    units: list[tuple[str, Node]] = []
    start = flow
    for branch in comb.branches:
        if branch.name is not None:
            raise SpecError("dense units are not named", branch.pos)
        if conditional(branch):
            raise SpecError(
                "a dense unit cannot be present only under a condition; "
                "put the condition around the dense",
                branch.pos,
            )
        body, count = dense_unit(branch)
        for k in range(walker.repeat_count(count, env) if count is not None else 1):
            scope = {**env, count.index: k} if count is not None and count.index else env
            unit, out = walker.sequence(body, flow, scope, str(len(units)), branch.pos)
            c, *rest = flow.shape
            if len(out.shape) != len(flow.shape) or tuple(rest) != tuple(out.shape[1:]):
                raise ShapeError(
                    f"dense unit turns {fmt(flow.shape)} into {describe_output(out.shape)}; "
                    "a unit must keep the height and width to be concatenated",
                    branch.pos,
                )
            units.append((str(len(units)), unit))
            flow = Flow((c + out.shape[0], *rest), "dense", branch.pos)
    return group("dense", "dense", start.shape, units, comb.pos, out_shape=flow.shape)


def heads(walker: Walker, comb: ir.Combinator, flow: Flow, env, options) -> Node:
    """Several outputs from one trunk: a tuple, one tensor per head."""
    branches = _branches(walker, comb, flow, env)
    outs = tuple(node.out_shape for _, node in branches)
    if any(out and isinstance(out[0], tuple) for out in outs):
        raise SpecError("heads cannot be nested in heads", comb.pos)
    return group("heads", "heads", flow.shape, branches, comb.pos, out_shape=outs)


def mul(walker: Walker, comb: ir.Combinator, flow: Flow, env, options) -> Node:
    """A gate: the input times its one branch's output, which has the input's shape or size
    1 where it differs (C x 1 x 1: squeeze-and-excitation; 1 x H x W: spatial attention)."""
    if len(comb.branches) != 1:
        raise SpecError(
            f"mul takes one branch, the gate that multiplies the input; got "
            f"{len(comb.branches)} (put the gate's layers on one line, or under one name)",
            comb.branches[1].pos,
        )
    (name, gate), branch = _branches(walker, comb, flow, env)[0], comb.branches[0]
    out, shape = gate.out_shape, flow.shape
    if len(out) != len(shape) or any(g not in (1, s) for g, s in zip(out, shape)):
        gates = " or ".join(dict.fromkeys(fmt(g) for g in _gate_shapes(shape)))
        raise ShapeError(
            f"mul: the gate gives {describe_output(out)}, which cannot multiply the input "
            f"{fmt(shape)} (from {flow.origin()}); a gate gives the input's shape or 1 where "
            f"it differs, such as {gates}",
            branch.pos,
        )
    return group("mul", "mul", shape, [(name, gate)], comb.pos, out_shape=shape)


def _gate_shapes(shape: Shape) -> list[Shape]:
    """The usual gates for an input: per channel, and the whole shape."""
    return [(shape[0], *(1 for _ in shape[1:])), shape]


def split(walker: Walker, comb: ir.Combinator, flow: Flow, env, options) -> Node:
    """The input's channels cut into equal chunks, one per branch in order; the branches'
    outputs joined on channels (ShuffleNetV2's unit)."""
    n, shape = len(comb.branches), flow.shape
    if n < 2:
        raise SpecError(
            "split needs two or more branches (each takes its share of the channels)",
            comb.pos,
        )
    if shape[0] % n:
        raise ShapeError(
            f"split into {n} branches needs channels divisible by {n}, got {fmt(shape)} "
            f"(from {flow.origin()})",
            comb.pos,
        )
    chunk = Flow((shape[0] // n, *shape[1:]), flow.made_by, flow.pos)
    branches = _branches(walker, comb, chunk, env)
    out_shape = _joined_on_channels("split", branches, comb)
    return group("split", "split", shape, branches, comb.pos, out_shape=out_shape)


RULES: dict[str, Rule] = {
    "concat": Rule(concat),
    "add": Rule(add, options=("project", "scale"), numbers=("scale",)),
    "dense": Rule(dense),
    "heads": Rule(heads),
    "mul": Rule(mul),
    "split": Rule(split),
}


def dense_unit(branch: ir.Branch) -> tuple[tuple, ir.Repeat | None]:
    """A dense line's unit body, and the repeat that makes it several units (if any)."""
    if len(branch.body) == 1 and isinstance(branch.body[0], ir.Repeat):
        return branch.body[0].body, branch.body[0]
    return branch.body, None


def path_stride(node: Node) -> tuple[int, int] | None:
    """The step, in input pixels, between neighbouring outputs of `node`: the product of
    the window strides along a sequence, the shared stride of parallel branches. None when
    there is no fixed stride (adaptive pooling, or branches that stride differently)."""
    if node.is_layer:
        if node.layer.resizes:
            return None
        return pair(node.layer.stride) if isinstance(node.layer, Window) else (1, 1)
    if node.kind == "mul":
        return (1, 1)  # the gate is broadcast over the input, which keeps its size
    strides = [path_stride(child) for _, child in node.children]
    if None in strides:
        return None
    if node.kind in ("seq", "dense"):  # one after another
        return (prod(s[0] for s in strides), prod(s[1] for s in strides))
    return strides[0] if all(s == strides[0] for s in strides) else None


def _projection(src: Shape, main: Node, pos: Pos) -> Conv:
    """The 1x1 convolution that carries a shortcut from `src` to the main path's output.

    It steps over the input with the main path's own stride, so both sides of the sum see
    the same pixels; that stride must then give the main path's output size."""
    dst = main.out_shape
    stride = path_stride(main)
    if len(src) != 3 or len(dst) != 3 or stride is None:
        raise ShapeError(
            f"add: cannot project a shortcut from {fmt(src)} to {describe_output(dst)}; "
            "a projection needs an image path with a fixed stride",
            pos,
        )
    if any((size - 1) // s + 1 != target for size, s, target in zip(src[1:], stride, dst[1:])):
        raise ShapeError(
            f"add: the branch turns {fmt(src)} into {fmt(dst)}, which a 1x1 convolution with "
            f"the branch's stride {stride[0]}x{stride[1]} cannot match; pad the branch's "
            "windows to keep the size (p = k // 2)",
            pos,
        )
    return Conv(out=dst[0], k=1, s=stride[0] if stride[0] == stride[1] else stride)

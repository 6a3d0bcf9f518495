"""What every combinator is made of: one registered class per kind, as an op is one class.

Everything cnnspec knows about a combinator is on its class:

- `options`: its typed keyword options (`add(project=true, scale=1e-6)`);
- `infer`: how its branches are walked and joined, the shape that comes out, and the
  layers it owns beside its branches (`add`'s shortcut projection), as a typed `Node`;
- `joins`: for a kind that also joins named tensors (`add(a, b)`), the shape rule;
- `stride`: the step between neighbouring outputs, from its branches' (for projections);
- `constructor`: the runtime module it becomes and with which arguments, as data. The
  live build passes built modules, codegen source text, so both say the same thing;
- how it is drawn: `symbol` at the point where branches meet, `layout`, `skips`.

A new combinator is a subclass in a module of this package (every module here is imported
and registers its classes), its name in the language's `COMBINATORS`, and its runtime class
in `backends/runtime.py`; the registry-driven tests then build, generate, draw and export it.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from ...errors import Pos, ShapeError, SpecError
from ...language import ir
from ...language.expressions import Value, describe, evaluate
from ...language.symbols import called, plain, symbolic
from ..generic_nodes import NotGeneric
from ..graph import Flow, Node, describe_output
from ..ops import Layer, ModuleCall, Shape, Window, fmt, pair

T = TypeVar("T")  # a module or an argument: built (the live build) or source text (codegen)
Stride = tuple[int, int] | None

# An option's type: a flag is true, false or none (none: decide from the shapes); a number
# is a number or none.
OptionType = Literal["flag", "number"]


class Walker(Protocol):
    """What a combinator's rule needs of the inference walking the network."""

    # Walking a block for its generic class: choices on arguments are kept as nodes.
    generic: bool

    def sequence(self, items, flow: Flow, env, label: str, pos: Pos) -> tuple[Node, Flow]: ...

    def apply(self, layer: Layer, flow: Flow, pos: Pos) -> Node: ...

    def repeat_count(self, item: ir.Repeat, env) -> int: ...

    def loop(self, item: ir.Repeat, flow: Flow, env, unit: bool = False) -> Node: ...


REGISTRY: dict[str, type[Combinator]] = {}


class Combinator:
    kind: ClassVar[str]  # the name a spec writes it by
    module: ClassVar[str]  # the runtime class it becomes (`Concat`)
    options: ClassVar[Mapping[str, OptionType]] = {}
    # Its branches may be present only under a condition: one whose conditions all fail is
    # left out. (A summed, gating or split branch would change what the combinator does.)
    optional_branches: ClassVar[bool] = False
    # Drawing: what the point where the branches meet reads, and how the branches are laid
    # out: "merge" (all meet there), "chain" (each unit's output joins the input in turn),
    # "outputs" (each branch is an output of its own).
    symbol: ClassVar[str] = ""
    # The gate is broadcast over the input, which keeps its size: a path's stride passes.
    keeps_size: ClassVar[bool] = False
    # Whether codegen's generic block classes can write it from a block's definition, or
    # only where the shapes are known (layers it owns whose sizes only inference knows).
    block_class: ClassVar[bool] = True
    layout: ClassVar[Literal["merge", "chain", "outputs"]] = "merge"
    # The layer it owns that the input passes through on its way to the meeting point,
    # where `skips` (add's `shortcut`); its other owned layers are drawn beside.
    skip_through: ClassVar[str | None] = None
    # Bodies using it (lines of an indented body, at 3x8x8) for the registry-driven tests,
    # which build, generate, draw and export each.
    examples: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # The message for tensors `joins` refuses (kinds that join named tensors only).
    join_rule: ClassVar[str] = ""

    def __init_subclass__(cls, kind: str | None = None, module: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            if kind in REGISTRY:
                raise TypeError(f"combinator {kind!r} is defined twice")
            cls.kind = kind
            cls.module = module or _class_name(kind)
            cls.symbol = cls.symbol or kind
            REGISTRY[kind] = cls

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]

    # --- inference --------------------------------------------------------------------
    @classmethod
    def infer(cls, walker: Walker, comb: ir.Combinator, flow: Flow, env, options) -> Node:
        """The combinator's node: its branches inferred, joined, and what it owns."""
        raise NotImplementedError

    @classmethod
    def joins(cls, shapes: list[Shape]) -> Shape | None:
        """The shape of named tensors joined by this kind, None where they do not fit;
        kinds that join no named tensors return None."""
        return None

    @classmethod
    def stride(cls, node: Node, strides: list[tuple[int, int]]) -> Stride:
        """The step between neighbouring outputs, from its branches' steps: parallel
        branches share it, or there is none. (One that `keeps_size` has (1, 1).)"""
        return strides[0] if strides and all(s == strides[0] for s in strides) else None

    @classmethod
    def shaped_by_input(cls, node: Node) -> bool:
        """Whether what it is made of depends on its input's shape beyond the branches
        (a residual projects only where the shape changes): code written out with one
        input's sizes then holds only for inputs that decide alike."""
        return False

    # --- construction -----------------------------------------------------------------
    @classmethod
    def constructor(
        cls, branches: T, owned: Mapping[str, T], options: Mapping[str, T], channels: T
    ) -> ModuleCall:
        """The runtime module, from its branches (a list or dict of modules), the modules
        it owns, its options that are not none, and its output's channels."""
        return ModuleCall(cls.module, (branches,))

    # --- drawing ----------------------------------------------------------------------
    @classmethod
    def skips(cls, node: Node) -> bool:
        """Whether the input also reaches the meeting point (a residual, a gate)."""
        return False


def _class_name(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


def combine(walker: Walker, comb: ir.Combinator, flow: Flow, env) -> Node:
    kind = REGISTRY[comb.kind]
    return kind.infer(walker, comb, flow, env, _options(kind, comb, env))


def _options(kind: type[Combinator], comb: ir.Combinator, env) -> dict[str, Value]:
    options = {}
    for kw in comb.kwargs:  # their names were checked with the spec's other names
        given = evaluate(kw.value, env)
        value = plain(given)  # checked on its value; a block class's parameter is kept
        if kind.options[kw.name] == "number":
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
        options[kw.name] = given
    return options


def given(comb: ir.Combinator, option: str) -> ir.Kwarg:
    """Where the spec gives `option`."""
    return next(kw for kw in comb.kwargs if kw.name == option)


def branches(walker: Walker, comb: ir.Combinator, flow: Flow, env) -> list[tuple[str, Node]]:
    """Each branch inferred from the same input, named by the spec or numbered (a branch
    left out keeps its number free, so the others keep their module paths)."""
    found: list[tuple[str, Node]] = []
    for i, branch in enumerate(comb.branches):
        node, _ = walker.sequence(branch.body, flow, env, branch.name or "branch", branch.pos)
        out = node.out_shape
        if out and isinstance(out[0], tuple):  # a heads inside the branch
            if comb.kind == "heads":
                raise SpecError("heads cannot be nested in heads", comb.pos)
            raise SpecError(
                f"this branch of {comb.kind} gives several outputs "
                f"({', '.join(describe_output(o) for o in out)}), made by heads; heads must "
                "come last in the network",
                branch.pos,
            )
        if conditional(branch):
            if walker.generic:  # the list of branches itself would depend on the arguments
                raise NotGeneric("a branch present only under a condition", branch.pos)
            if not REGISTRY[comb.kind].optional_branches:
                raise SpecError(
                    f"a branch of {comb.kind} cannot be present only under a condition; "
                    f"put the condition around the {comb.kind}",
                    branch.pos,
                )
            if node.kind == "seq" and not node.children:
                continue  # every condition failed: the branch is not there
        found.append((branch.name or str(i), node))
    if not found:
        raise SpecError(f"every branch of this {comb.kind} is left out here", comb.pos)
    if len({name for name, _ in found}) < len(found):
        raise SpecError(f"{comb.kind} has two branches with the same name", comb.pos)
    return found


def chunk(comb: ir.Combinator, flow: Flow) -> Flow:
    """What each branch of `comb` receives when the input's channels are cut into equal
    chunks, one per branch (`split`, `select(split=true)`)."""
    n, shape = len(comb.branches), flow.shape
    if n < 2:
        raise SpecError(
            f"{comb.kind} needs two or more branches to split the channels among",
            comb.pos,
        )
    if shape[0] % n:
        raise ShapeError(
            f"{comb.kind} into {n} branches needs channels divisible by {n}, got {fmt(shape)} "
            f"(from {flow.origin()})",
            comb.pos,
        )
    return Flow((shape[0] // n, *shape[1:]), flow.made_by, flow.pos)


def conditional(branch: ir.Branch) -> bool:
    """Written only as conditions with no `else`: present only when one holds."""
    return bool(branch.body) and all(
        isinstance(item, ir.If) and not item.orelse for item in branch.body
    )


def same_shapes(comb: ir.Combinator, found: list[tuple[str, Node]], fits, rule: str) -> None:
    """Each branch's output fits the first's (`fits(a, b)`), or an error at the branch."""
    first_name, first = found[0]
    for (name, node), branch in zip(found, comb.branches):
        if not fits(first.out_shape, node.out_shape):
            raise ShapeError(
                f"{comb.kind} branch {name} gives {describe_output(node.out_shape)} but branch "
                f"{first_name} gives {describe_output(first.out_shape)}; {rule}",
                branch.pos,
            )


def node(
    comb: ir.Combinator,
    in_shape: Shape,
    children: list[tuple[str, Node]],
    out_shape,
    owned: tuple[tuple[str, Node], ...] = (),
    options: tuple[tuple[str, Any], ...] = (),
    own_params: tuple[tuple[str, int], ...] = (),
) -> Node:
    """The combinator's node: its branches', owned layers' and own parameters' figures
    summed."""
    parts = [n for _, n in children] + [n for _, n in owned]
    return Node(
        comb.kind,
        comb.kind,
        in_shape,
        out_shape,
        sum(n.params for n in parts) + sum(count for _, count in own_params),
        sum(n.macs for n in parts),
        comb.pos,
        children=tuple((str(name), n) for name, n in children),
        owned=owned,
        options=options,
        own_params=own_params,
    )


def path_stride(node: Node) -> Stride:
    """The step, in input pixels, between neighbouring outputs of `node`: the product of
    the window strides along a sequence, what a combinator's rule makes of its branches'.
    None when there is no fixed stride (adaptive pooling, branches that stride apart)."""
    if node.is_layer:
        if node.layer.resizes:
            return None
        return pair(node.layer.stride) if isinstance(node.layer, Window) else (1, 1)
    rule = REGISTRY.get(node.kind)
    if rule is not None and rule.keeps_size:
        return (1, 1)  # whatever its branches do inside
    if node.kind in ("loop", "instance"):  # a generic body's: unknown for other arguments
        return None
    strides = [path_stride(child) for _, child in node.children]
    if None in strides:
        return None
    if node.kind == "if":  # a generic body's: the arms' stride, where it is one expression
        (a, b) = strides
        return a if [repr(s) for s in a] == [repr(s) for s in b] else None
    if node.kind == "seq":  # one after another
        return in_sequence(strides)  # type: ignore[arg-type]
    if node.kind == "graph":
        return None
    return rule.stride(node, strides)  # type: ignore[arg-type, union-attr]


def keeps_size(node: Node) -> bool:
    """Whether every window along `node` keeps the size at stride 1 for any argument, so
    that it steps as a 1x1 convolution of its stride does: its kernel, padding and
    dilation are numbers, not expressions of parameters. (In a generic body, after a loop,
    a block's instance or a combinator other than a gate, this is not known.)"""
    if node.is_layer:
        layer = node.layer
        if layer.resizes:
            return False
        if not isinstance(layer, Window):
            return True
        literal = {n: None if symbolic(v) else v for n, v in layer.arguments().items()}
        return type(layer).keeps_size(literal)
    rule = REGISTRY.get(node.kind)
    if rule is not None:
        return rule.keeps_size
    if node.kind in ("seq", "if"):
        return all(keeps_size(child) for _, child in node.children)
    return False


def in_sequence(strides: list[tuple[int, int]]) -> tuple[int, int]:
    return (prod(s[0] for s in strides), prod(s[1] for s in strides))


def on_channels(shapes: list[Shape]) -> Shape | None:
    """Shapes concatenated on channels: they must agree in everything else."""
    first = shapes[0]
    if any(len(s) != len(first) or s[1:] != first[1:] for s in shapes):
        return None
    return (sum(s[0] for s in shapes), *first[1:])


def broadcast(shapes: list[Shape]) -> Shape | None:
    """Shapes multiplied elementwise: equal, or 1 where they differ."""
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b and 1 not in (a, b) for a, b in zip(first, s)):
            return None
    return tuple(_larger(sizes) for sizes in zip(*shapes))


def _larger(sizes) -> int:
    """The largest of sizes that are equal or 1, as `max` of their expressions where
    they are different ones (a generic body's: which is 1 depends on the arguments)."""
    distinct = list({repr(s): s for s in sizes}.values())
    return distinct[0] if len(distinct) == 1 else called("max", tuple(distinct), (), max(sizes))


def gate_shapes(shape: Shape) -> list[Shape]:
    """The usual gates for an input: per channel, and the whole shape."""
    return [(shape[0], *(1 for _ in shape[1:])), shape]

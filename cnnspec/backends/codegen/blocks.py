"""Code generation for blocks: one generic class per block, written from its generic body.

The class takes the input channels and the block's parameters, like d2l's own
`Inception(in_channels, c1, c2, c3, c4)`. Analysis infers the body once for every
argument (`analysis/generic.py`): each size carries its expression of them, and what
depends on them is a node of its own, written here as Python does it: a loop (the channels
carried in a local of its own from one turn to the next), an `if` with both arms, an
instance of another block's class, a projection made only where the shape changes. This
module writes what analysis decided; it infers nothing again.

A block that cannot be one generic class (a size follows H and W, it calls a block that
cannot, ...) raises CodegenError here; the generator then writes each of its uses with
concrete sizes instead. Where only the values of the call it was walked with fail (an arm
that call does not take), it raises OtherWitness, and the generator tries another call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ...analysis.combinators import RULES
from ...analysis.generic import generic_body
from ...analysis.generic_nodes import (
    Branching,
    Guarded,
    Instance,
    LayerParameter,
    Loop,
    NotAtWitness,
    NotGeneric,
    OpParameter,
    unwritable,
)
from ...analysis.graph import Node, steps
from ...analysis.ops import LAYERS, ModuleCall, plain_module
from ...language import ir
from ...language.expressions import PYTHON_CONSTANTS, OpRef, unparse
from ...language.symbols import render
from ...limits import Limits
from ..runtime_source import runtime_names
from .forward import line_statements, local_names
from .names import PythonNames
from .pyformat import BODY_INDENT, Call, List, lines, sum_lines
from .values import (
    CodegenError,
    collect,
    constructor,
    layer_constructor,
    py_value,
    runtime_functions,
)


class Module(Protocol):
    """What a block writer needs of the module being generated."""

    blocks: Mapping[str, ir.BlockDef]  # every block the spec can call
    names: PythonNames
    limits: Limits

    def generic(self, name: str, witness: Node) -> BlockClass | None: ...

    def passable(self, node: Node) -> bool: ...


class OtherWitness(CodegenError):
    """The class cannot be written from this call's values; another call's may do."""


@dataclass(frozen=True)
class BlockClass:
    template: dict  # what block.py.j2 lays out
    calls: tuple[str, ...]  # the blocks its constructor instantiates
    runtime: frozenset[str]  # the runtime classes and functions it needs


class BlockWriter:
    """Writes one block's class from its generic body, walked with `witness`'s values."""

    def __init__(self, gen: Module, block: ir.BlockDef, witness: Node):
        self.gen = gen
        self.block = block
        self.witness = witness
        self.params = dict(gen.names.params_of(block.name))  # spec name -> Python name
        # Every local is fresh: a loop's index named like one the writer makes (`layers`)
        # takes the next free name, as the writer's own do.
        self.taken = set(gen.names.taken_in(block.name)) | {"in_channels"}
        self.body: list[str] = []  # lines of __init__
        self.depth = 0
        self.counter: dict[str, int] = {}
        self.calls: list[str] = []
        self.runtime: set[str] = set()
        # The arms being written whose tests compare pairs: (the pairs, whether one of
        # them differs there), so a guarded projection inside one is decided outright.
        self.known: list[tuple[frozenset, bool]] = []

    def fail(self, what: str, pos) -> CodegenError:
        return CodegenError(f"block '{self.block.name}': {what} in a block class", pos)

    # --- lines ----------------------------------------------------------------------------
    @property
    def indent(self) -> int:
        """Columns before a statement: the constructor's body, then one level per block."""
        return BODY_INDENT + 4 * self.depth

    def line(self, text: str) -> None:
        self.body.append(" " * self.indent + text)

    def assign(self, target: str, expr, op: str = "=") -> None:
        self.body.extend(lines(expr, self.indent, f"{target} {op} "))

    def fresh(self, stem: str) -> str:
        """A new local name: `stem`, `stem2`, ... (never a parameter's or a module name)."""
        while True:
            self.counter[stem] = self.counter.get(stem, 0) + 1
            n = self.counter[stem]
            name = stem if n == 1 else f"{stem}{n}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    # --- values ---------------------------------------------------------------------------
    def text(self, value) -> str:
        """`value` as source: a symbol's expression, a parameter's name, a literal."""
        if unwritable(value):
            raise self.fail("a size that follows the height or width", (0, 0))
        return self.calling(py_value(value))

    def calling(self, source: str) -> str:
        """`source`, noting the runtime functions it calls (make_divisible)."""
        self.runtime |= runtime_functions(source)
        return source

    def expression(self, expr: ir.Node, scope: Mapping[str, object]) -> str:
        """A test, a count or a table as the spec writes it, each name as its value's
        source (bracketed where it binds looser than the name's place)."""

        def name(identifier: str, outer: int) -> str:
            if identifier not in scope:
                raise self.fail(f"the name '{identifier}'", expr.pos)
            value = scope[identifier]
            if isinstance(value, OpRef) and not isinstance(value, OpParameter):
                return self.op_class(value.op)  # a layer named as a value
            return render(value, outer) if not isinstance(value, tuple) else self.text(value)

        for value in scope.values():
            if not isinstance(value, OpRef):
                self.text(value)  # refuses what no class can write
        return self.calling(unparse(expr, constants=PYTHON_CONSTANTS, bound=name))

    def runtime_class(self, name: str) -> str:
        if name in runtime_names():
            self.runtime.add(name)
        return name

    def construct(self, call: ModuleCall) -> Call:
        self.runtime_class(call.module)
        return constructor(call)

    # --- modules --------------------------------------------------------------------------
    def items(self, node: Node) -> list:
        """The module expressions of a sequence's items ("*name" splices a list that
        statements built)."""
        children = [child for _, child in node.children] if node.kind == "seq" else [node]
        out: list = []
        for child in children:
            if isinstance(child, Loop):
                out.append(f"*{self.loop(child)}")
            elif isinstance(child, Branching):
                out.append(f"*{self.branching(child)}")
            else:
                out.append(self.module(child))
        return out

    def module(self, node: Node):
        """The constructor expression of one module."""
        if isinstance(node, LayerParameter):
            return Call(node.local, ())
        if node.is_layer:
            return self.construct(layer_constructor(node, self.text))
        if isinstance(node, Instance):
            local = node.local
            self.assign(local, Call(*self.instance(node)))
            return local
        if node.kind == "seq" or isinstance(node, (Loop, Branching)):
            return Call("nn.Sequential", tuple(self.items(node)))
        return self.combinator(node)

    def instance(self, node: Instance) -> tuple[str, tuple]:
        """The class of the block a node calls and its arguments, as the call writes them."""
        callee = self.gen.generic(node.block, node.witness)
        if callee is None or not self.gen.passable(node):
            raise self.fail(f"'{node.block}' (no class of it takes these arguments)", node.pos)
        self.calls.append(node.block)
        scope = dict(node.scope)
        params = self.gen.names.params_of(node.block)
        call = node.call
        args = (
            self.text(node.in_shape[0]),
            *(self.expression(a, scope) for a in call.args),
            *((params[kw.name], self.expression(kw.value, scope)) for kw in call.kwargs),
        )
        return self.gen.names.class_of(node.block), args

    def loop(self, node: Loop) -> str:
        """`for ... :` adding each turn's modules to a list of its own, the channels
        carried in the loop's local; returns the list's name."""
        target = self.fresh("layers")
        self.line(f"{target} = []")
        self.body.extend(sum_lines(node.carried, self.text(node.start), self.indent))
        self.for_header(node)
        self.extend(target, self.items(node.children[0][1]))
        self.carry(node.carried, node.end)
        self.depth -= 1
        return target

    def extend(self, target: str, items: list) -> None:
        """`target += [...]`, or `target += name` for one list spliced alone."""
        if len(items) == 1 and isinstance(items[0], str) and items[0].startswith("*"):
            self.line(f"{target} += {items[0][1:]}")
        else:
            self.assign(target, List(tuple(items)), "+=")

    def for_header(self, node: Loop) -> None:
        scope = dict(node.scope)
        if node.rows is not None:
            self.line(f"for {', '.join(node.index)} in {self.expression(node.rows, scope)}:")
        else:
            index = node.index[0] if node.index else "_"
            self.line(f"for {index} in range({self.text(node.count)}):")
        self.depth += 1

    def carry(self, local: str, value) -> None:
        """`local = value` at the end of a turn or an arm, unless it is that already."""
        if self.text(value) != local:
            self.body.extend(sum_lines(local, self.text(value), self.indent))

    def branching(self, node: Branching) -> str:
        """`if test:` ... `else:`, each arm adding its modules to one list and leaving the
        channels in the branching's local; returns the list's name."""
        target = self.fresh("layers")
        self.line(f"{target} = []")
        scope = dict(node.scope)
        test = self.expression(node.test, scope)
        differs = self.differences(node.test, scope)
        arms = dict(node.children)
        for header, arm, end, then in (
            (f"if {test}", arms["then"], node.ends[0], True),
            ("else", arms["else"], node.ends[1], False),
        ):
            empty = arm.kind == "seq" and not arm.children
            if empty and node.carried is None:
                continue
            self.line(f"{header}:")
            self.depth += 1
            if differs is not None:  # what the arm knows of its pairs
                self.known.append((differs[0], differs[1] == then))
            if not empty:
                self.extend(target, self.items(arm))
            if node.carried is not None:
                self.carry(node.carried, end)
            if differs is not None:
                self.known.pop()
            self.depth -= 1
        return target

    def differences(self, test: ir.Node, scope) -> tuple[frozenset, bool] | None:
        """A test written as pairs that differ (`s != 1 or c != C`) or are all equal
        (`s == 1 and c == C`): the pairs as source, and whether the test holds where one
        differs; None for any other test."""
        if isinstance(test, ir.BinOp) and test.op in ("!=", "=="):
            sides = (self.expression(test.left, scope), self.expression(test.right, scope))
            return frozenset({frozenset(sides)}), test.op == "!="
        if isinstance(test, ir.BinOp) and test.op in ("or", "and"):
            left, right = self.differences(test.left, scope), self.differences(test.right, scope)
            joined = test.op == "or"  # `or` of differences, or `and` of equalities
            if left is not None and right is not None and left[1] == right[1] == joined:
                return left[0] | right[0], joined
        return None

    def combinator(self, node: Node):
        """The combinator's runtime class and arguments, from its class's constructor."""
        rule = RULES[node.kind]
        if not rule.block_class:
            raise self.fail(f"'{node.kind}' (its own layers' sizes need the shapes)", node.pos)
        if rule.layout == "chain":
            return self.dense(node, rule)
        branches = collect([(name, self.module(child)) for name, child in node.children])
        owned = {name: self.owned(name, layer) for name, layer in node.owned}
        owned = {name: local for name, local in owned.items() if local is not None}
        options = {name: self.text(value) for name, value in node.options}
        out = node.out_shape[0]
        channels = None if isinstance(out, tuple) else self.text(out)
        return self.construct(rule.constructor(branches, owned, options, channels))

    def owned(self, name: str, node: Node) -> str | None:
        """A layer a combinator owns, in a local of its own (a residual's shortcut); one
        that is `Guarded` is None where its shape does not change. Inside an arm whose
        test decides the guard (`if s != 1 or c != C:`), it is made or not outright."""
        if isinstance(node, Guarded) and node.flag is None:
            pairs = frozenset(frozenset((self.text(a), self.text(b))) for a, b in node.differs)
            for known, one_differs in self.known:
                if one_differs and known <= pairs:
                    node = node.children[0][1]  # one of its pairs differs here
                    break
                if not one_differs and pairs <= known:
                    return None  # all of its pairs are equal here
        local = self.fresh(name)
        if not isinstance(node, Guarded):
            self.assign(local, self.module(node))
            return local
        test = " or ".join(f"{self.text(a)} != {self.text(b)}" for a, b in node.differs)
        if node.flag is not None:  # true, false, or none for "where the shape changes"
            flag = self.text(node.flag)
            test = f"{flag} or ({flag} is None and ({test}))" if test else flag
        self.line(f"{local} = None")
        self.line(f"if {test}:")
        self.depth += 1
        self.assign(local, self.module(node.children[0][1]))
        self.depth -= 1
        return local

    def dense(self, node: Node, rule):
        """Units one after another, each seeing the input and every unit before it. A
        unit repeated by a count is a loop appending to the list of units."""
        units = [child for _, child in node.children]
        if not any(isinstance(unit, Loop) for unit in units):
            made = List(tuple(self.module(unit) for unit in units))
            return self.construct(rule.constructor(made, {}, {}, self.text(node.out_shape[0])))
        local = self.fresh("units")
        self.line(f"{local} = []")
        for unit in units:
            if not isinstance(unit, Loop):
                self.statement(Call(f"{local}.append", (self.module(unit),)))
                continue
            self.body.extend(sum_lines(unit.carried, self.text(unit.start), self.indent))
            self.for_header(unit)
            self.statement(Call(f"{local}.append", (self.module(unit.children[0][1]),)))
            self.carry(unit.carried, unit.end)
            self.depth -= 1
        return self.construct(rule.constructor(local, {}, {}, self.text(node.out_shape[0])))

    def statement(self, expr) -> None:
        self.body.extend(lines(expr, self.indent))

    # --- the class ------------------------------------------------------------------------
    def signature(self) -> list[str]:
        """The constructor's parameters. A default that is an expression of other
        parameters or of C becomes None, filled in first thing in the body."""
        params = ["self", "in_channels: int"]
        for param in self.block.params:
            name = self.params[param.name]
            if param.default is None:
                params.append(name)
            elif all(_op_class(e.id) for e in _walk(param.default) if isinstance(e, ir.Name)):
                default = unparse(param.default, self.op_class, PYTHON_CONSTANTS)
                params.append(f"{name}={default}")
            else:
                params.append(f"{name}=None")
                self.line(f"if {name} is None:")
                self.line(f"    {name} = {self.default(param.default)}")
        return params

    def op_class(self, op: str) -> str:
        """A layer named as a value (`act=hardswish`), as the torch class that makes it."""
        module = _op_class(op)
        if module is None:
            raise self.fail(f"the name '{op}'", (0, 0))
        return self.runtime_class(module)

    def default(self, expr: ir.Node) -> str:
        """A parameter's default written from other parameters and the input's channels."""

        def name(identifier: str) -> str:
            if identifier in self.params:
                return self.params[identifier]
            if identifier in ("C", "C_in"):
                return "in_channels"
            return self.op_class(identifier)

        return self.calling(unparse(expr, name, PYTHON_CONSTANTS))

    def write(self) -> BlockClass:
        block = self.block
        params = self.signature()
        try:
            node = generic_body(
                self.gen.blocks, block.name, self.witness, self.params, self.fresh,
                self.gen.limits,
            )  # fmt: skip
        except NotAtWitness as err:
            raise OtherWitness(err.message, err.pos) from None
        except NotGeneric as err:
            raise CodegenError(err.message, err.pos) from None
        if node.kind == "graph":
            return self.graph_class(node, params)
        end = node.out_shape[0]
        if isinstance(node, Instance):  # the block is another block's class, called so
            base, args = self.instance(node)
            end = None
        elif node.kind in RULES:
            call = self.combinator(node)
            base, args = call.func, call.args
        else:
            base, args = "nn.Sequential", tuple(self.items(node))
        self.body.extend(lines(Call("super().__init__", args), BODY_INDENT))
        if end is not None and not isinstance(end, tuple):
            self.body.extend(sum_lines("self.out_channels", self.text(end), self.indent))
        return self.finished(base, params, [])

    def finished(self, base: str, params: list[str], forward: list[str]) -> BlockClass:
        template = {
            "name": self.gen.names.class_of(self.block.name),
            "base": base,
            "doc": f"`{self.block.name}` from the spec: its parameters are the constructor's.",
            "def_lines": lines(Call("def __init__", tuple(params)), 4, "", " -> None:"),
            "body": self.body,
            "forward": forward,
        }
        return BlockClass(template, tuple(self.calls), frozenset(self.runtime))

    def graph_class(self, node: Node, params: list[str]) -> BlockClass:
        """A block of named lines: an nn.Module holding each line's layers, whose forward
        reads as the lines do, a local per tensor."""
        local = local_names(name for name, _ in node.children)
        self.line("super().__init__()")
        forward = []
        for step in steps(node):
            line = step.node
            count = 0 if line.kind == "seq" and not line.children else len(line.children) or 1
            if line.kind != "seq" or line.children:
                if (
                    line.kind == "seq"
                    and step.readers
                    and any(isinstance(c, (Loop, Branching)) for _, c in line.children)
                ):
                    raise self.fail(
                        "a line whose layers read tensors beside a repeat or condition",
                        line.pos,
                    )
                self.assign(f"self.{step.name}", self.module(line))
            forward.extend(
                line_statements(local[step.name], f"self.{step.name}", step, count, local, 8)
            )
        forward.append(f"        return {local[node.outputs[-1]]}")
        end = node.out_shape[0]
        if not isinstance(end, tuple):
            self.body.extend(sum_lines("self.out_channels", self.text(end), self.indent))
        return self.finished("nn.Module", params, forward)


def _op_class(op: str) -> str | None:
    return plain_module(LAYERS[op]) if op in LAYERS else None


def _walk(expr: ir.Node):
    """`expr` and every expression inside it."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        for field_name in ("operand", "left", "right", "target", "index"):
            if (child := getattr(node, field_name, None)) is not None:
                stack.append(child)
        stack.extend(getattr(node, "items", ()))
        if isinstance(node, ir.Func):
            stack.extend((*node.args, *(kw.value for kw in node.kwargs)))

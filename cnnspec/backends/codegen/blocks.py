"""Code generation for blocks: one generic class per block, written from its definition.

The class takes the input channels and the block's parameters, like d2l's own
`Inception(in_channels, c1, c2, c3, c4)`. Channel counts are carried as Python
expressions, through a variable where a repeat changes them; a residual shortcut's stride
is the product of its branch's window strides.

A block that cannot be one generic class (its size needs H and W, it calls a block that
cannot, ...) raises CodegenError here; the generator then writes each of its uses with
concrete sizes instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ...analysis.binding import match_arguments
from ...analysis.combinators import RULES, conditional, dense_unit
from ...analysis.graph import Step
from ...analysis.ops import LAYERS, ModuleCall, Window, plain_module
from ...language import ir
from ...language.expressions import PYTHON_CONSTANTS, unparse
from ...language.ir import INPUT
from ..runtime_source import runtime_names
from .forward import line_statements, local_names
from .names import CONSTRUCTOR_LOCALS, PythonNames
from .pyformat import BODY_INDENT, Call, List, flat, lines, sum_lines
from .values import CodegenError, collect, constructor, py_value


class Module(Protocol):
    """What a block writer needs of the module being generated."""

    blocks: Mapping[str, ir.BlockDef]  # every block the spec can call
    names: PythonNames

    def generic(self, name: str) -> BlockClass | None: ...

    def is_single_layer(self, block: ir.BlockDef) -> bool: ...


@dataclass(frozen=True)
class BlockClass:
    template: dict  # what block.py.j2 lays out
    calls: tuple[str, ...]  # the blocks its constructor instantiates
    runtime: frozenset[str]  # the runtime classes it needs


@dataclass
class _State:
    channels: str  # source text of the current channel count
    image: bool = True
    strides: list[str] = field(default_factory=list)  # window strides along this path
    same: bool = True  # every window keeps the size at stride 1 (needed for projections)


class BlockWriter:
    """Writes one block's class from its definition."""

    def __init__(self, gen: Module, block: ir.BlockDef):
        self.gen = gen
        self.block = block
        # spec name -> Python name: the parameters, and the indices of the loops being written
        self.params = dict(gen.names.params_of(block.name))
        self.taken = set(gen.names.taken_in(block.name))
        self.body: list[str] = []  # lines of __init__, relative indentation
        self.depth = 0
        self.counter: dict[str, int] = {}
        self.calls: list[str] = []
        self.runtime: set[str] = set()

    def fail(self, what: str, pos) -> CodegenError:
        return CodegenError(f"block '{self.block.name}': {what} in a block class", pos)

    @property
    def indent(self) -> int:
        """Columns before a statement: the constructor's body, then one level per loop."""
        return BODY_INDENT + 4 * self.depth

    def line(self, text: str) -> None:
        self.body.append(" " * self.indent + text)

    def assign(self, target: str, expr, op: str = "=") -> None:
        self.body.extend(lines(expr, self.indent, f"{target} {op} "))

    def statement(self, expr) -> None:
        self.body.extend(lines(expr, self.indent))

    def fresh(self, stem: str) -> str:
        """A new local name: `stem`, `stem2`, ... (never a parameter's or a module name)."""
        while True:
            self.counter[stem] = self.counter.get(stem, 0) + 1
            n = self.counter[stem]
            name = stem if n == 1 else f"{stem}{n}"
            if name not in self.taken:
                self.taken.add(name)  # a loop index may not take it later, nor it one
                return name

    def construct(self, call: ModuleCall) -> Call:
        self.runtime_class(call.module)
        return constructor(call)

    def runtime_class(self, name: str) -> str:
        if name in runtime_names():
            self.runtime.add(name)
        return name

    def py(self, expr: ir.Node, state: _State) -> str:
        def name(identifier: str) -> str:
            if identifier in self.params:
                return self.params[identifier]
            if identifier == "C":
                return _bracketed(state.channels)
            if identifier == "C_in":  # the block's input, whatever the branch
                return "in_channels"
            if (module := self.op_class(identifier)) is not None:
                return module
            raise self.fail(
                f"the name '{identifier}' (only parameters and C can be used)", expr.pos
            )

        if isinstance(expr, ir.Name) and expr.id == "C":
            return state.channels  # a whole argument needs no brackets
        return self.python(expr, name)

    def op_class(self, op: str) -> str | None:
        """A layer named as a value (`act=hardswish`), as the torch class that makes it."""
        module = plain_module(LAYERS[op]) if op in LAYERS else None
        return self.runtime_class(module) if module is not None else None

    def python(self, expr: ir.Node, name=str) -> str:
        """`expr` as Python, noting the runtime functions it calls (make_divisible)."""
        for node in _walk(expr):
            if isinstance(node, ir.Func):
                self.runtime_class(node.name)
        return unparse(expr, name, PYTHON_CONSTANTS)

    # items -> module expressions ("*name" splices a list built by statements)
    def items(self, items, state: _State) -> tuple[list, _State]:
        out: list = []
        for item in items:
            mark = len(self.body)
            exprs, state = self.item(item, state)
            if (
                out
                and _sets_channels(self.body[mark:])
                and _CHANNELS.search(flat(List(tuple(out))))
            ):
                # The item's statements change `channels`, which the layers before it read:
                # make those layers first, as the live build does.
                made = self.fresh("layers")
                self.body[mark:mark] = lines(List(tuple(out)), self.indent, f"{made} = ")
                out = [f"*{made}"]
            out.extend(exprs)
        return out, state

    def sequence(self, items, state: _State) -> tuple[object, _State]:
        exprs, state = self.items(items, state)
        if len(items) == 1 and not ir.splices(items[0]):
            return exprs[0], state
        return Call("nn.Sequential", tuple(exprs)), state

    def item(self, item, state: _State) -> tuple[list, _State]:
        if isinstance(item, (ir.Repeat, ir.For)):
            return self.repeat(item, state)
        if isinstance(item, ir.If):
            return self.conditional(item, state)
        if isinstance(item, ir.Combinator):
            cls, args, state = self.combinator(item, state)
            return [Call(cls, args)], state
        if item.op in LAYERS:
            return self.layer(item, state)
        if item.op in self.params and item.op not in self.gen.blocks:
            return self.layer_parameter(item, state)
        return self.block_call(item, state)

    def layer_parameter(self, call: ir.Call, state: _State) -> tuple[list, _State]:
        """A parameter that holds a layer: a torch class, called with no arguments (the
        network passes only layers that keep the shape; others are written in place)."""
        if call.args or call.kwargs:
            raise self.fail(f"a call of the parameter '{call.op}' with arguments", call.pos)
        return [Call(self.params[call.op], ())], state

    def layer(self, call: ir.Call, state: _State) -> tuple[list, _State]:
        """The layer's constructor, and the state after it, from its op's facts."""
        model = LAYERS[call.op]
        exprs = match_arguments(call, model.signature(), model.required())
        plain = {*model.words(), *model.tensor_fields}  # words and tensor names, as text
        args = {
            name: py_value(e.id) if name in plain and isinstance(e, ir.Name) else self.py(e, state)
            for name, e in exprs.items()
        }
        after = model.output(args, state.channels, state.image)
        if after is None:
            raise self.fail(f"'{call.op}' (it needs the height and width)", call.pos)
        strides, same = list(state.strides), state.same and not model.resizes
        if issubclass(model, Window):
            stride = next((args[n] for n in model.stride_from if n in args), None)
            if stride is not None:
                strides.append(stride)
            literal = {
                n: e.value if isinstance(e, (ir.Num, ir.Const)) else None for n, e in exprs.items()
            }
            same = same and model.keeps_size(literal)
        code = self.construct(model.constructor(args, state.channels, state.image))
        return [code], _State(*after, strides, same)

    def block_call(self, call: ir.Call, state: _State) -> tuple[list, _State]:
        cls, args = self.instance(call, state.channels, state)
        var = self.fresh(call.op)
        self.assign(var, Call(cls, (state.channels, *args)))
        return [var], _State(f"{var}.out_channels", state.image, [], False)

    def instance(self, call: ir.Call, channels: str, state: _State) -> tuple[str, tuple]:
        """The class and the arguments (after the input channels) of a call to a block."""
        callee = self.gen.blocks[call.op]
        if self.gen.is_single_layer(callee) or self.gen.generic(call.op) is None:
            raise self.fail(f"'{call.op}' (it has no generic class)", call.pos)
        self.calls.append(call.op)
        params = self.gen.names.params_of(call.op)
        args = (
            *(self.py(a, state) for a in call.args),
            *((params[kw.name], self.py(kw.value, state)) for kw in call.kwargs),
        )
        return self.gen.names.class_of(call.op), args

    def repeat(self, item: ir.Repeat | ir.For, state: _State) -> tuple[list, _State]:
        target = self.fresh("layers")
        self.line(f"{target} = []")
        read = self.reading(state)
        state = self.in_channels_variable(state)
        count = self.py(item.count if isinstance(item, ir.Repeat) else item.rows, read(state))
        self.loop(item, count)
        exprs, after = self.items(item.body, _State("channels", state.image))
        self.assign(target, List(tuple(exprs)), "+=")
        if after.channels != "channels":
            self.line(f"channels = {after.channels}")
        self.end_loop(item)
        return [f"*{target}"], _State("channels", after.image, [], False)

    def conditional(self, item: ir.If, state: _State) -> tuple[list, _State]:
        """`if test:` in the constructor, each arm adding its layers to one list and
        leaving the channels after it in `channels`."""
        target = self.fresh("layers")
        self.line(f"{target} = []")
        read = self.reading(state)
        state = self.in_channels_variable(state)
        test = self.py(item.test, read(state))  # written after `channels` is set
        ends = []  # (image, strides, same) after each arm
        for header, body in (("if " + test, item.body), ("else", item.orelse)):
            if not body:
                ends.append((state.image, [], True))
                continue
            self.line(f"{header}:")
            self.depth += 1
            exprs, after = self.items(body, _State("channels", state.image))
            self.assign(target, List(tuple(exprs)), "+=")
            if after.channels != "channels":
                self.line(f"channels = {after.channels}")
            self.depth -= 1
            ends.append((after.image, after.strides, after.same))
        if ends[0][0] != ends[1][0]:
            raise self.fail("a condition whose arms end one as an image, one not", item.pos)
        if ends[0] != ends[1]:  # a shortcut around it could not know its stride
            return [f"*{target}"], _State("channels", ends[0][0], [], False)
        image, strides, same = ends[0]
        return [f"*{target}"], _State(
            "channels", image, state.strides + strides, state.same and same
        )

    def in_channels_variable(self, state: _State) -> _State:
        """`state` with its channels in `channels`, which a loop or condition's arms update;
        what the loop or condition reads (a count, a test) is written after this."""
        if state.channels != "channels":
            self.line(f"channels = {state.channels}")
        return _State("channels", state.image, state.strides, state.same)

    @staticmethod
    def reading(before: _State):
        """What a count or a test written after `in_channels_variable` reads C as: the
        channels as they were (`in_channels` reads best), unless they were written in
        terms of `channels`, which that assignment changes."""
        return lambda after: after if _CHANNELS.search(before.channels) else before

    def loop(self, item: ir.Repeat | ir.For, count: str) -> None:
        """`for i in range(count):`, binding the repeat's index (if it names one) in the
        body; a for over a table, `for t, c in rows:`."""
        names = item.names if isinstance(item, ir.For) else (item.index,) * (item.index is not None)
        found = []
        for name in names:
            var = self.params[name] = self.fresh(name + "_" * (name in CONSTRUCTOR_LOCALS))
            found.append(var)
        if isinstance(item, ir.For):
            self.line(f"for {', '.join(found)} in {count}:")
        else:
            self.line(f"for {found[0] if found else '_'} in range({count}):")
        self.depth += 1

    def end_loop(self, item: ir.Repeat | ir.For) -> None:
        self.depth -= 1
        names = item.names if isinstance(item, ir.For) else (item.index,) * (item.index is not None)
        for name in names:
            del self.params[name]

    def combinator(self, comb: ir.Combinator, state: _State) -> tuple[str, tuple, _State]:
        """The combinator's runtime class and arguments, from its class's rules: the
        channels each branch starts from and the output's, and its constructor."""
        rule = RULES[comb.kind]
        if not rule.block_class:
            raise self.fail(f"'{comb.kind}' (its own layers' sizes need the shapes)", comb.pos)
        start = state.channels
        if _CHANNELS.search(start):  # branches must not see each other's loops
            local = self.fresh("in_channels_")
            self.line(f"{local} = {start}")
            start = local
        begin = _State(start, state.image)
        if rule.layout == "chain":
            return self.dense(comb, begin, rule)
        share = rule.branch_channels(start, len(comb.branches))
        branches, ends = [], []
        marks = []  # where each branch's statements end
        for branch in comb.branches:
            if conditional(branch):  # the list of branches itself would be conditional
                raise self.fail("a branch present only under a condition", branch.pos)
            expr, end = self.sequence(branch.body, _State(share, state.image))
            branches.append((branch.name, expr))
            ends.append(end)
            marks.append(len(self.body))
        for i in reversed(range(len(branches))):  # later marks first: earlier ones stay put
            branches[i], ends[i] = self.made_before_later_branches(branches[i], ends[i], marks[i])
        collected = collect(branches)
        options = {kw.name: self.py(kw.value, begin) for kw in comb.kwargs}
        options = {name: value for name, value in options.items() if value != "None"}
        channels = rule.channels(start, [end.channels for end in ends])
        if channels is None:  # several outputs
            after = _State("None", False, [], False)
        elif rule.keeps_size:  # the path's strides are unchanged through it
            after = _State(channels, state.image, list(state.strides), state.same)
        else:
            after = _State(channels, state.image, [], False)
        owned: dict[str, str] = {}
        if rule.skip_through is not None and len(ends) == 1:
            owned = self.shortcut(comb, begin, ends[0], options.get("project", "None"), rule)
        call = rule.constructor(collected, owned, options, channels)
        cls = self.runtime_class(call.module)
        return cls, (*call.args, *call.kwargs), after

    def shortcut(self, comb, begin: _State, end: _State, project: str, rule) -> dict[str, str]:
        """The residual's skip: a local holding its projection (a fresh one per residual,
        as several are made before the constructor call that takes them), or None where
        the spec decides (from the parameters) that there is none."""
        name = rule.skip_through
        if not end.same:
            raise self.fail(
                "a shortcut projection around windows that change the size (or of unknown stride)",
                comb.pos,
            )
        stride = " * ".join(f"({s})" if " " in s else s for s in end.strides if s != "1") or "1"
        changes = [f"{end.channels} != {begin.channels}"] if end.channels != begin.channels else []
        if stride != "1":
            changes.append(f"{stride} != 1")
        if project == "False" or (project == "None" and not changes):
            return {}
        if project == "None" and stride.isdigit() and stride != "1":  # a written stride over 1
            project = "True"
        if project == "None":
            condition = " or ".join(changes)
        elif project != "True":  # a parameter: true, false, or none for "when needed"
            needed = " or ".join(changes)
            condition = f"{project} or ({project} is None and ({needed}))" if changes else project
        conv = Call(
            "nn.Conv2d",
            (
                begin.channels,
                end.channels,
                ("kernel_size", "1"),
                *((("stride", stride),) if stride != "1" else ()),
            ),
        )
        local = self.fresh(name)
        if project == "True":  # always projected
            self.assign(local, conv)
        else:
            self.line(f"{local} = None")
            self.line(f"if {condition}:")
            self.depth += 1
            self.assign(local, conv)
            self.depth -= 1
        return {name: local}

    def dense(self, comb: ir.Combinator, begin: _State, rule) -> tuple[str, tuple, _State]:
        """Units one after another, each adding its output's channels to the input's. The
        units and the running total get locals of their own: a unit's repeats and
        conditions work in `channels`, and a second dense must not refill the first's list."""
        units, total = self.fresh("units"), self.fresh("dense_channels")
        self.line(f"{units} = []")
        self.line(f"{total} = {begin.channels}")
        for branch in comb.branches:
            body, repeat = dense_unit(branch)
            if repeat is not None:
                self.loop(repeat, self.py(repeat.count, begin))
            unit, end = self.sequence(body, _State(total, begin.image))
            self.statement(Call(f"{units}.append", (unit,)))
            self.line(f"{total} = {total} + {_bracketed(end.channels)}")
            if repeat is not None:
                self.end_loop(repeat)
        call = rule.constructor(units, {}, {}, total)
        after = _State(total, begin.image, [], False)
        return self.runtime_class(call.module), call.args, after

    def made_before_later_branches(self, branch: tuple, end: _State, mark: int):
        """A branch whose module or channels read `channels`, made into locals where its
        statements end, if a later branch's loops or conditions change `channels` before
        the combinator's constructor runs."""
        if not _sets_channels(self.body[mark:]):
            return branch, end
        name, expr = branch
        made: list[str] = []
        if _CHANNELS.search(flat(expr)):
            local = self.fresh("branch")
            made += lines(expr, self.indent, f"{local} = ")
            expr = local
        if _CHANNELS.search(end.channels):
            local = self.fresh("branch_channels")
            made.append(" " * self.indent + f"{local} = {end.channels}")
            end = _State(local, end.image, end.strides, end.same)
        self.body[mark:mark] = made
        return (name, expr), end

    def kept(self, state: _State, stem: str) -> _State:
        """`state` with channels that read `channels` held in a local of their own: the
        loops and conditions written after it (another branch, a later line) change
        `channels` before the constructor that needs this count runs."""
        if not _CHANNELS.search(state.channels):
            return state
        local = self.fresh(stem)
        self.line(f"{local} = {state.channels}")
        return _State(local, state.image, state.strides, state.same)

    def signature(self, start: _State) -> list[str]:
        """The constructor's parameters. A default that is an expression of other
        parameters or of C becomes None, filled in first thing in the body."""
        params = ["self", "in_channels: int"]
        for param in self.block.params:
            name = self.params[param.name]
            if param.default is None:
                params.append(name)
            elif all(self.op_class(e.id) for e in _walk(param.default) if isinstance(e, ir.Name)):
                params.append(f"{name}={self.python(param.default, self.op_class)}")
            else:
                params.append(f"{name}=None")
                self.line(f"if {name} is None:")
                self.line(f"    {name} = {self.py(param.default, start)}")
        return params

    def write(self) -> BlockClass:
        block = self.block
        start = _State("in_channels")
        params = self.signature(start)
        if any(isinstance(item, ir.Line) for item in block.body):
            return self.graph_class(params)
        single = len(block.body) == 1 and not ir.splices(block.body[0])
        first = block.body[0] if single else None
        if isinstance(first, ir.Combinator):
            base, args, end = self.combinator(first, start)
        elif (
            isinstance(first, ir.Call)
            and first.op in self.gen.blocks
            and first.op not in self.params
        ):
            base, args = self.instance(first, "in_channels", start)
            args = ("in_channels", *args)
            end = None
        else:
            base = "nn.Sequential"
            exprs, end = self.items(block.body, start)
            args = tuple(exprs)
        self.body.extend(lines(Call("super().__init__", args), BODY_INDENT))
        if end is not None and end.channels != "None":
            self.body.extend(sum_lines("self.out_channels", end.channels, self.indent))
        template = {
            "name": self.gen.names.class_of(block.name),
            "base": base,
            "doc": f"`{block.name}` from the spec: its parameters are the constructor's.",
            "def_lines": lines(Call("def __init__", tuple(params)), 4, "", " -> None:"),
            "body": self.body,
            "forward": [],
        }
        return BlockClass(template, tuple(self.calls), frozenset(self.runtime))

    def graph_class(self, params: list[str]) -> BlockClass:
        """A block of named lines: an nn.Module holding each line's layers, whose forward
        reads as the lines do, a local per tensor."""
        block = self.block
        local = local_names(item.name for item in block.body if isinstance(item, ir.Line))
        states, previous, forward = {INPUT: _State("in_channels")}, INPUT, []
        self.line("super().__init__()")
        for item in block.body:
            if not isinstance(item, ir.Line):
                raise self.fail("an unnamed line among named ones", item.pos)
            body, sources, join = self.line_start(item.body, states, previous)
            channels = [states[name].channels for name in sources]
            total = RULES[join].joined_channels(channels) if join else channels[0]
            state = _State(total, states[sources[0]].image)
            readers = self.readers(body, item)
            count = 0 if not body else 1 if len(body) == 1 and not ir.splices(body[0]) else 2
            if body:
                expr, state = self.sequence(body, state)
                self.assign(f"self.{item.name}", expr)
            states[item.name], previous = self.kept(state, f"{item.name}_channels"), item.name
            step = Step(item.name, sources, join, readers, None)  # type: ignore[arg-type]
            count = len(body) if count == 2 else count
            forward.extend(
                line_statements(local[item.name], f"self.{item.name}", step, count, local, 8)
            )
        forward.append(f"        return {local[previous]}")
        if states[previous].channels != "None":
            self.body.extend(sum_lines("self.out_channels", states[previous].channels, self.indent))
        template = {
            "name": self.gen.names.class_of(block.name),
            "base": "nn.Module",
            "doc": f"`{block.name}` from the spec: its parameters are the constructor's.",
            "def_lines": lines(Call("def __init__", tuple(params)), 4, "", " -> None:"),
            "body": self.body,
            "forward": forward,
        }
        return BlockClass(template, tuple(self.calls), frozenset(self.runtime))

    def line_start(self, body: tuple, states: dict, previous: str):
        """What a named line starts from (the line before, a tensor it names first, or a
        join of tensors) and the body left after it."""
        first = body[0] if body else None
        if isinstance(first, ir.Join):
            return body[1:], tuple(n.id for n in first.inputs), first.op
        if (
            isinstance(first, ir.Call)
            and not first.args
            and not first.kwargs
            and first.op in states
            and first.op not in LAYERS
            and first.op not in self.gen.blocks
            and first.op not in self.params
        ):
            return body[1:], (first.op,), None
        return body, (previous,), None

    def readers(self, body: tuple, line: ir.Line) -> tuple:
        """The layers of a line that read other tensors, as (position, names), -1 when
        the line is that layer; each at a fixed place, so no repeat or condition moves it."""
        found = []
        for i, item in enumerate(body):
            if isinstance(item, ir.Call) and item.op in LAYERS:
                model = LAYERS[item.op]
                exprs = match_arguments(item, model.signature(), model.required())
                names = tuple(
                    exprs[f].id for f in model.tensor_fields if isinstance(exprs.get(f), ir.Name)
                )
                if names:
                    found.append((i, names))
        if found and any(ir.splices(item) for item in body):
            raise self.fail(
                "a line whose layers read tensors beside a repeat or condition", line.pos
            )
        if len(body) == 1 and found:
            return ((-1, found[0][1]),)
        return tuple(found)


_CHANNELS = re.compile(r"\bchannels\b")


def _sets_channels(body: list[str]) -> bool:
    return any(line.lstrip().startswith("channels = ") for line in body)


def _bracketed(source: str) -> str:
    return f"({source})" if " " in source else source


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

"""A block's body inferred once for every argument: what codegen's block classes are
written from.

A generated block class takes the input channels and the block's parameters, so its
sizes must hold for any of them. Inference walks the body once, as it walks a network,
with the input channels and each numeric parameter a symbol (`language/symbols.py`) whose
value is a witness's (a call of the block in the spec): every size then carries its
expression of them through the ops' and combinators' own rules. What inference would
decide on values is kept as a choice instead:

- a repeat or a `for` is one `Loop`: its body walked once, for its first turn (the
  witness's other turns are walked on values alone, for the values after it), with the
  channels carried in a local between turns;
- an `if` is one `Branching`: both arms walked, the test kept to be written;
- a call of another block is one `Instance` of that block's class;
- a residual's shortcut is projected where its shape changes, as a `Guarded` projection
  (see `Add`).

The input's height and width are symbols no class can write: a size that follows them
fails the class. So does any other choice read on a symbol (an index into a table the
block does not take, select's default width). An arm the witness does not take is walked
with the witness's values too, and may fail with them (NotAtWitness): the generator then
tries another call of the block. Symbols exist only inside `symbols.tracing()`, as for
the network class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from itertools import count as counter

from ..errors import CnnspecError
from ..language import ir, symbols
from ..language.expressions import OpRef, Value, evaluate, truth
from ..limits import Limits
from .generic_nodes import (
    UNWRITABLE,
    Branching,
    Instance,
    LayerParameter,
    Loop,
    NotAtWitness,
    NotGeneric,
    OpParameter,
    witness_value,
)
from .graph import Flow, Node
from .infer import _Inference, _named_lines
from .resolve import INPUT_NAMES, names_in


def generic_body(
    blocks: Mapping[str, ir.BlockDef],
    name: str,
    witness: Node,
    names: Mapping[str, str],
    fresh: Callable[[str], str],
    limits: Limits,
) -> Node:
    """The body of block `name` for every argument, walked with the values of `witness`
    (the node of a call of it); `names` gives each parameter's local, `fresh` new locals.
    Raises NotGeneric where one class cannot hold it, NotAtWitness where an arm the
    witness does not take fails with its values."""
    block = blocks[name]
    values = dict(witness.args)
    shape = witness.in_shape
    if isinstance(shape[0], tuple):
        raise NotGeneric(f"block '{name}': an input of several outputs", block.pos)
    env: dict[str, Value] = {"classes": _unwritable("classes", 10)}
    for param in block.params:
        env[param.name] = _parameter(names[param.name], values[param.name])
    start = (symbols.symbol("in_channels", symbols.plain(shape[0])), *_sizes(shape[1:]))
    env.update(zip(INPUT_NAMES, start))
    walk = _Generic(blocks, limits, fresh)
    with symbols.tracing() as choices:
        try:
            if any(isinstance(item, ir.Line) for item in block.body):
                lines = _named_lines(block)
                node = walk.graph_body(lines, Flow(start), env, name, block.pos, "line")
            else:
                node, _ = walk.sequence(block.body, Flow(start), env, name, block.pos)
        except NotGeneric:
            raise
        except CnnspecError as err:  # the witness's call holds, so this is a part it skips
            raise NotAtWitness(f"block '{name}': {err.message}", err.pos) from None
    if choices:
        what = choices[0].what
        raise NotGeneric(f"block '{name}': {what} reads a parameter", choices[0].pos)
    return node


def _parameter(local: str, value: Value):
    """What stands for a parameter (or a table's name) written `local`, given `value`.
    A number is an atom of its own, never folded into a straight line: another call may
    pass a fraction where this one passed a whole number, and `int((z + a) * 10)` is not
    `int(10 * a + 10 * z)` in floating point."""
    if isinstance(value, OpRef):
        return OpParameter(local, value.op)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return symbols.Named(local, value)
    kind = symbols.SymInt if isinstance(value, int) else symbols.SymFloat
    return kind(value, symbols.Form(text=local), frozenset({local}))


_LABELS = counter()


def _unwritable(what: str, value: int) -> symbols.SymInt:
    label = f"{UNWRITABLE}{what}{next(_LABELS)}"
    return symbols.SymInt(value, symbols.Form(text=label), frozenset({label}))


def _sizes(sizes) -> tuple:
    """The height and width, with the values given, as symbols no class can write."""
    return tuple(_unwritable(axis, symbols.plain(size)) for axis, size in zip("HW", sizes))


def _as(cls, node: Node, **extra):
    """`node` as the generic node `cls`, with its fields and `extra`."""
    return cls(**{f.name: getattr(node, f.name) for f in fields(Node)}, **extra)


def _plain(env) -> dict:
    return {k: witness_value(v) for k, v in env.items()}


class _Generic(_Inference):
    """Inference that keeps, as nodes, the choices made on arguments (see the module)."""

    generic = True

    def __init__(self, blocks, limits: Limits, fresh: Callable[[str], str]):
        super().__init__(blocks, limits)
        self.fresh = fresh

    def plainly(self) -> _Inference:
        """Inference on the witness's values alone: for what a class writes no code of
        (a later turn of a loop, a callee, which has a class of its own)."""
        return _Inference(self.blocks, self.limits)

    def item(self, item, flow: Flow, env, out: list[Node]) -> Flow:
        if isinstance(item, (ir.Repeat, ir.For)):
            node = self.loop(item, flow, env)
        elif isinstance(item, ir.If) and (holds := self.decided(item.test, flow, env)) is not None:
            for inner in item.body if holds else item.orelse:  # one arm, for every argument
                flow = self.item(inner, flow, env, out)
            return flow
        elif isinstance(item, ir.If):
            node = self.branching(item, flow, env)
        elif isinstance(item, ir.Call) and isinstance(env.get(item.op), OpParameter):
            node = self.layer_parameter(item, flow, env)
        else:
            return super().item(item, flow, env, out)
        out.append(node)
        return Flow(node.out_shape, node.label, item.pos)

    def decided(self, test: ir.Node, flow: Flow, env) -> bool | None:
        """A comparison of one expression with itself (`C_in == C` before any layer):
        what it gives for every argument; None for any other test."""
        orders = {"==": True, "<=": True, ">=": True, "!=": False, "<": False, ">": False}
        if not isinstance(test, ir.BinOp) or test.op not in orders:
            return None
        scope = self._shape_scope(env, flow.shape)
        with symbols.tracing() as choices:  # a side that chose on a value is no expression
            sides = (evaluate(test.left, scope), evaluate(test.right, scope))
        same = not choices and symbols.symbolic(sides[0]) and repr(sides[0]) == repr(sides[1])
        return orders[test.op] if same else None

    def scope_of(self, exprs, env, flow: Flow) -> tuple[tuple[str, object], ...]:
        """The values the expressions `exprs` read, by name."""
        scope = self._shape_scope(env, flow.shape)
        read = {n.id for expr in exprs for n in names_in(expr)}
        return tuple((n, scope[n]) for n in sorted(read) if n in scope)

    def loop(self, item: ir.Repeat | ir.For, flow: Flow, env, unit: bool = False) -> Loop:
        """A repeat or a for as one loop. Its body is walked generically for the first turn
        and plainly for the others (for the values after it). A dense unit's loop
        (`unit`) carries the running total: each turn adds its unit's channels."""
        if isinstance(item, ir.Repeat):
            count, rows, bound = evaluate(item.count, env), None, (item.index,) * bool(item.index)
            turns = [dict.fromkeys(bound, k) for k in range(self.repeat_count(item, _plain(env)))]
            exprs = (item.count,)
        else:
            count, rows, bound = None, item.rows, item.names
            turns, exprs = self.table_rows(item, _plain(env)), (item.rows,)
        scope = self.scope_of(exprs, env, flow)
        index = {n: self.fresh(n) for n in bound}
        carried = self.fresh("channels")
        sizes = witness_value(flow.shape)
        entry = (symbols.symbol(carried, sizes[0]), *_sizes(sizes[1:]))
        first = turns[0] if turns else dict.fromkeys(bound, 0)
        # A repeat's index is a whole number for every call; a table's values are not.
        bind = symbols.symbol if isinstance(item, ir.Repeat) else _parameter
        inner = {**env, **{n: bind(index[n], v) for n, v in first.items()}}
        body, after = self.sequence(item.body, Flow(entry), inner, "repeat", item.pos)
        end = entry[0] + after.shape[0] if unit else after.shape[0]
        if turns:
            sizes = self.turned(sizes, witness_value(after.shape), unit)
        for turn in turns[1:]:
            scope_k = {**_plain(env), **turn}
            _, after = self.plainly().sequence(item.body, Flow(sizes), scope_k, "", item.pos)
            sizes = self.turned(sizes, after.shape, unit)
        out = (symbols.symbol(carried, sizes[0]), *(entry[1:] if unit else _sizes(sizes[1:])))
        return Loop(
            "loop", "repeat", flow.shape, out, body.params, body.macs, item.pos,
            children=(("body", body),), count=count, rows=rows, scope=scope,
            index=tuple(index.values()), carried=carried, start=flow.shape[0], end=end,
        )  # fmt: skip

    @staticmethod
    def turned(before: tuple, after: tuple, unit: bool) -> tuple:
        """The sizes after a turn: the body's, or a dense unit's added to the total."""
        return (before[0] + after[0], *before[1:]) if unit else after

    def branching(self, item: ir.If, flow: Flow, env) -> Branching:
        """Both arms, each walked from the same flow; the values after it are the arm's
        the witness takes."""
        scope = self.scope_of((item.test,), env, flow)
        holds = truth(
            evaluate(item.test, _plain(self._shape_scope(env, flow.shape))),
            item.test,
            "a condition",
        )
        (then, after), (orelse, other) = (
            self.sequence(body, flow, env, "if", item.pos) for body in (item.body, item.orelse)
        )
        if len(after.shape) != len(other.shape) or isinstance(after.shape[0], tuple):
            raise NotGeneric("a condition whose arms end in different kinds of output", item.pos)
        taken = after.shape if holds else other.shape
        ends = (after.shape[0], other.shape[0])
        carried, channels = None, taken[0]
        if repr(ends[0]) != repr(ends[1]):
            carried = self.fresh("channels")
            channels = symbols.symbol(carried, symbols.plain(taken[0]))
        sizes = [
            a if repr(a) == repr(b) else _unwritable(axis, symbols.plain(t))
            for a, b, t, axis in zip(after.shape[1:], other.shape[1:], taken[1:], "HW")
        ]
        return Branching(
            "if", "if", flow.shape, (channels, *sizes), 0, 0, item.pos,
            children=(("then", then), ("else", orelse)), test=item.test, scope=scope,
            carried=carried, ends=ends,
        )  # fmt: skip

    def layer_parameter(self, call: ir.Call, flow: Flow, env) -> LayerParameter:
        if call.args or call.kwargs:
            raise NotGeneric(f"a call of the parameter '{call.op}' with arguments", call.pos)
        value = env[call.op]
        node = self.layer(call.model_copy(update={"op": value.op}), flow, env)
        return _as(LayerParameter, node, local=repr(value))

    def block(self, call: ir.Call, flow: Flow, env) -> Node:
        """A call of another block: an instance of its class, whose witness is the callee
        walked with this call's values; what it gives is the instance's `out_channels`."""
        scope = self.scope_of((*call.args, *(kw.value for kw in call.kwargs)), env, flow)
        shape = witness_value(flow.shape)
        plain = self.plainly()
        node = plain.block(call, Flow(shape), _plain(self._shape_scope(env, flow.shape)))
        if node.is_layer:  # a block of one layer is written as its layer, as everywhere
            return super().block(call, flow, env)
        if isinstance(node.out_shape[0], tuple):
            raise NotGeneric(f"a call of '{call.op}', which gives several outputs", call.pos)
        local = self.fresh(call.op)
        out = node.out_shape
        channels = symbols.SymInt(
            out[0], symbols.Form(text=f"{local}.out_channels"), frozenset({local})
        )
        return Instance(
            "instance", call.op, flow.shape, (channels, *_sizes(out[1:])), node.params,
            node.macs, call.pos, block=call.op, args=node.args, local=local, call=call,
            scope=scope, witness=node,
        )  # fmt: skip

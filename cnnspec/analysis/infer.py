"""Shape inference: IR -> typed graph. Needs no torch.

Walks the network in forward order, expanding repeats and block calls, evaluating argument
expressions against block parameters and the current input shape (C, H, W), validating each
layer's arguments with its class in `ops/`, and applying that class's shape rule.
Every node of the result knows its input and output shape, parameters and MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from math import prod
from typing import Annotated, get_args, get_origin

from pydantic import ValidationError

from ..errors import CnnspecError, LimitError, Pos, ShapeError, Source, SpecError, did_you_mean
from ..language import ir
from ..language.expressions import OpRef, Value, counting, describe, evaluate, truth
from ..language.parse_cnn import PRELUDE, parse_prelude
from ..language.symbols import note_choice
from ..limits import DEFAULT, Limits, Steps
from .binding import match_arguments
from .combinators import RULES, combine
from .graph import Flow, Graph, Node, Output, Shape, describe_output, group, stage_readers
from .ops import LAYERS, Layer, fmt
from .resolve import INPUT_NAMES, OP_VALUES, SHAPE_NAMES, builtin_blocks, names_in, resolve

BLOCK_STEPS = 10  # the steps a block call or a combinator counts (see `Limits.max_steps`)


@dataclass(frozen=True)
class _Tensor:
    """A named tensor of the network: a stage's output, or the input."""

    shape: Output
    made_by: str
    pos: Pos

    def origin(self) -> str:
        return f"{self.made_by} at {self.pos[0]}:{self.pos[1]}" if self.pos[0] else self.made_by


def infer(doc: ir.Document, limits: Limits = DEFAULT, name: str | None = None) -> Graph:
    """The typed graph of `doc`; `name` is what errors call the spec's own file when they
    name it beside another (an error in a used file, inside a block called from the spec)."""
    blocks = resolve(doc)
    inference = _Inference(blocks, limits)
    inference.origins = doc.origins
    inference.spec_name = name or "the spec"
    with counting(inference.steps):
        return inference.network(doc)


class _Inference:
    # Whether choices made on arguments are kept as nodes (`generic.py`) or decided here.
    generic = False

    def __init__(self, blocks: Mapping[str, ir.BlockDef], limits: Limits):
        self.blocks = blocks
        self.limits = limits
        self.layer_count = 0
        self.steps = Steps(limits.max_steps)  # all the work, whether it gives layers or not
        self.param_count = 0
        self.mac_count = 0
        self.activation_count = 0
        self.block_stack: list[str] = []
        self.decisions: list[str] = []  # the conditions decided in the body being walked
        self.origins: Mapping[str, tuple] = {}  # blocks of used files: (Source, context)
        # The file of the body being walked: None for the spec itself, else a used file's
        # Source or prelude.cnn's; positions in that body are in that file.
        self.body_file: Source | None = None
        self.spec_name = "the spec"
        # The user's call of the built-in block being walked: positions inside it are
        # prelude.cnn's, so messages point at the call instead.
        self.call_site: tuple[str, Pos] | None = None
        # The file of the body being walked when it is not the spec's own: a used file's
        # name or the prelude's. The nodes made there carry it, with their positions.
        self.file: str | None = None
        # The network's named tensors made so far, and where each stage is written; a layer
        # may read them (`like=`) only at a stage's own level, where `nested` is 0.
        self.tensors: dict[str, _Tensor] = {}
        self.line_at: dict[str, Pos] = {}
        self.read: set[str] = set()
        self.nested = 0
        self.what = "stage"  # what the lines being walked are: stages, or a block's lines

    # --- the network ------------------------------------------------------------------
    def network(self, doc: ir.Document) -> Graph:
        net = doc.network
        shape = net.input
        if len(shape) not in (1, 3) or min(shape, default=0) < 1:
            raise SpecError(
                f"input must be C x H x W (like 1x28x28) or a feature count, got {fmt(shape)}",
                net.keypos.get("input", net.pos),
            )
        self._check_dims(shape, net.keypos.get("input", net.pos))
        self.activation_count = prod(shape)  # the input is held too
        env: dict[str, Value] = {"classes": net.classes, **_input_names(shape)}
        for kw in net.params:  # each may read those before it
            env[kw.name] = evaluate(kw.value, {**OP_VALUES, **env})
        lines = [(stage.name, stage.body, stage.pos) for stage in net.stages]
        root = self.graph_body(lines, Flow(shape), env, net.name, net.pos, "stage", net.outputs)
        if not net.outputs and not any(
            node.sources or stage_readers(node) for _, node in root.children
        ):
            root = replace(root, kind="seq", outputs=())  # stages in sequence, as before
        return Graph(net.name, shape, net.classes, root, doc.train)

    # --- named tensors --------------------------------------------------------------------
    def graph_body(self, lines, flow: Flow, env, label: str, pos: Pos, what: str, outputs=()):
        """Lines that name their outputs (a network's stages, a block's named lines), each
        starting from the line before or from the tensors it names: a "graph" node whose
        children are the lines, returning `outputs` (by default the last line)."""
        saved = (self.tensors, self.line_at, self.read, self.nested, self.what)
        made_by = "the network input" if what == "stage" else "the block's input"
        self.tensors = {ir.INPUT: _Tensor(flow.shape, made_by, (0, 0))}
        self.line_at = {name: at for name, _, at in lines}
        self.read, self.nested, self.what = set(), 0, what
        start = flow.shape
        try:
            children, previous = [], ir.INPUT
            for name, body, at in lines:
                body, sources, join, flow = self.line_start(body, previous, flow, env)
                node, flow = self.sequence(body, flow, env, name, at)
                if sources:
                    node = replace(node, sources=sources, join=join)
                children.append((name, node))
                self.tensors[name] = _Tensor(flow.shape, f"{what} {name}", at)
                previous = name
            returned = tuple(n.id for n in outputs) or (previous,)
            out_shape = self.outputs(outputs, previous)
            self._all_read(lines, returned)
        finally:
            self.tensors, self.line_at, self.read, self.nested, self.what = saved
        node = group("graph", label, start, children, pos, out_shape=out_shape)
        return replace(node, outputs=returned, file=self.file)

    def line_start(self, body, previous: str, flow: Flow, env):
        """The body left after what the line starts from, the names it starts from (none
        for the line before), the join that combines them, and the flow they give."""
        first = body[0] if body else None
        if isinstance(first, ir.Join):
            shape = self.join(first)
            flow = Flow(shape, f"{first.op}({', '.join(n.id for n in first.inputs)})", first.pos)
            return body[1:], tuple(n.id for n in first.inputs), first.op, flow
        if self.is_tensor(first, env):
            tensor = self.tensor(first.op, first.pos)
            self._no_heads(first.op, tensor, first.pos)
            return body[1:], (first.op,), None, Flow(tensor.shape, tensor.made_by, tensor.pos)
        self.read.add(previous)
        return body, (), None, flow

    def is_tensor(self, item, env) -> bool:
        """A bare name first in a stage that names a tensor, not a layer or a block."""
        return (
            isinstance(item, ir.Call)
            and not item.args
            and not item.kwargs
            and item.op not in LAYERS
            and item.op not in self.blocks
            and item.op not in env
            and (item.op in self.tensors or item.op in self.line_at)
        )

    def tensor(self, name: str, pos: Pos) -> _Tensor:
        """The tensor `name` read at `pos`: made before it, or an error there."""
        if name in self.tensors:
            self.read.add(name)
            return self.tensors[name]
        what = self.what
        if name in self.line_at:
            line, col = self.line_at[name]
            if line == pos[0]:  # `e2: e2 conv(...)`
                raise SpecError(
                    f"{what} {name} reads itself; a {what} reads only tensors made above it",
                    pos,
                )
            raise SpecError(
                f"'{name}' is read before it is made: {what} {name} is at {line}:{col}, and a "
                f"{what} reads only tensors made above it",
                pos,
            )
        raise SpecError(
            f"unknown tensor '{name}'{did_you_mean(name, self.tensors)} (the tensors are "
            f"{ir.INPUT} and the {what}s above)",
            pos,
        )

    def _no_heads(self, name: str, tensor: _Tensor, pos: Pos) -> None:
        if tensor.shape and isinstance(tensor.shape[0], tuple):
            raise SpecError(
                f"'{name}' holds several outputs ({describe_output(tensor.shape)}), made by "
                f"heads ({tensor.origin()}); read one stage of them instead",
                pos,
            )

    def join(self, join: ir.Join) -> Shape:
        """The shape of named tensors joined: on channels (concat), summed (add), or
        multiplied with broadcasting over sizes of 1 (mul)."""
        named = []
        for name in join.inputs:
            tensor = self.tensor(name.id, name.pos)
            self._no_heads(name.id, tensor, name.pos)
            named.append((name, tensor))
        (first_name, first), kind = named[0], RULES[join.op]
        out = first.shape
        for name, tensor in named[1:]:
            out = kind.joins([out, tensor.shape])
            if out is None:
                raise ShapeError(
                    f"{join.op}: {name.id} is {fmt(tensor.shape)} ({tensor.origin()}) but "
                    f"{first_name.id} is {fmt(first.shape)} ({first.origin()}); "
                    f"{kind.join_rule}",
                    name.pos,
                )
        self.activation_count += prod(out)
        return out

    def outputs(self, outputs, last: str) -> Output:
        if not outputs:
            return self.tensors[last].shape
        seen: dict[str, Pos] = {}
        for name in outputs:
            if name.id in seen:
                line, col = seen[name.id]
                raise SpecError(f"'{name.id}' is an output twice (first at {line}:{col})", name.pos)
            seen[name.id] = name.pos
            self._no_heads(name.id, self.tensor(name.id, name.pos), name.pos)
        shapes = tuple(self.tensors[name.id].shape for name in outputs)
        return shapes if len(shapes) > 1 else shapes[0]

    def _all_read(self, lines, returned: tuple[str, ...]) -> None:
        """Every line's output is read by a later line or returned: one that is not is most
        often a wrong name."""
        what = self.what
        for name, _, at in lines:
            if name not in self.read and name not in returned:
                fix = "list it in outputs:" if what == "stage" else "make it the last line"
                raise SpecError(
                    f"{what} '{name}' is read by no {what} and is not an output; read it, "
                    f"{fix}, or remove it",
                    at,
                )

    def read_tensor(self, call: ir.Call, name: str, expr: ir.Node) -> str:
        """An argument that names a tensor (`like=lat4`), checked where it is read."""
        if not isinstance(expr, ir.Name):
            raise SpecError(f"{call.op} {name}= takes the name of a tensor", expr.pos)
        if self.nested or not self.line_at:
            raise SpecError(
                f"{call.op} {name}={expr.id} reads a named tensor, which only the layers of a "
                "stage or of a block's named line can (not those in a branch or a block below)",
                expr.pos,
            )
        self.tensor(expr.id, expr.pos)
        return expr.id

    # --- sequences ----------------------------------------------------------------------
    def sequence(self, items, flow: Flow, env, label: str, pos: Pos) -> tuple[Node, Flow]:
        """A body written as one item (not a repeat) is that item; any other body is a
        sequence numbered 0, 1, ... The rule looks at the text, not at how many layers a
        repeat gives, so a block has one module structure whatever its arguments."""
        nodes: list[Node] = []
        start = flow.shape
        outer, self.decisions = self.decisions, []
        try:
            for item in items:
                flow = self.item(item, flow, env, nodes)
        finally:
            decided, self.decisions = tuple(self.decisions), outer
        if len(items) == 1 and not ir.splices(items[0]):
            return nodes[0], flow
        node = group("seq", label, start, list(enumerate(nodes)), pos)
        return replace(node, decided=decided, file=self.file), flow

    def item(self, item, flow: Flow, env, out: list[Node]) -> Flow:
        """Append the node(s) `item` expands to onto `out`; return the flow after them."""
        self.steps.spend(item.pos)
        if isinstance(item, ir.Repeat):
            for k in range(self.repeat_count(item, env)):
                self.steps.spend(item.pos, 1 + len(env) // 64)  # a turn, and its scope
                scope = {**env, item.index: k} if item.index is not None else env
                for inner in item.body:
                    flow = self.item(inner, flow, scope, out)
            return flow
        if isinstance(item, ir.For):
            for row in self.table_rows(item, env):
                self.steps.spend(item.pos, 1 + len(env) // 64)
                scope = {**env, **row}
                for inner in item.body:
                    flow = self.item(inner, flow, scope, out)
            return flow
        if isinstance(item, ir.If):
            scope = self._shape_scope(env, flow.shape)
            holds = truth(evaluate(item.test, scope), item.test, "a condition")
            read = {n.id: scope[n.id] for n in names_in(item.test) if n.id in scope}
            self.decisions.append(f"{item.pos}: {read} -> {holds}")
            for inner in item.body if holds else item.orelse:
                flow = self.item(inner, flow, env, out)
            return flow
        self._no_heads_before(item, flow)
        if isinstance(item, ir.Join):
            raise SpecError(
                f"{item.op}({', '.join(n.id for n in item.inputs)}) joins named tensors, which "
                "starts a stage or a named line: put it first in one of its own",
                item.pos,
            )
        if isinstance(item, ir.Line):
            raise SpecError(
                f"a named line ({item.name}: ...) stands only among the lines of a block's "
                f"body, and '{item.name}' is not a combinator ({', '.join(ir.COMBINATORS)})",
                item.pos,
            )
        if isinstance(item, ir.Call):
            item = self._layer_parameter(item, env)
        if isinstance(item, ir.Call) and item.op in LAYERS:
            node = self.layer(item, flow, env)
        else:
            # A block call or a combinator makes a node and scopes whatever it gives: it
            # costs about as much as ten items, and counts so.
            self.steps.spend(item.pos, BLOCK_STEPS)
            self.nested += 1
            try:
                if isinstance(item, ir.Combinator):
                    node = combine(self, item, flow, env)
                    if self.file is not None:
                        node = replace(node, file=self.file)
                else:
                    node = self.block(item, flow, env)
            finally:
                self.nested -= 1
        out.append(node)
        if self.call_site is not None:
            block, pos = self.call_site
            return Flow(node.out_shape, f"{node.label} in {block}", pos)
        return Flow(node.out_shape, node.label, item.pos)

    def _layer_parameter(self, call: ir.Call, env) -> ir.Call:
        """A call of a parameter that holds a layer (`act` in `block unit(c, act=relu)`) is
        a call of that layer."""
        value = env.get(call.op)
        if isinstance(value, OpRef):
            return call.model_copy(update={"op": value.op})
        if call.op in env and call.op not in LAYERS and call.op not in self.blocks:
            raise SpecError(
                f"'{call.op}' is called as a layer but holds {describe(value)}; "
                "pass a layer that needs no arguments, such as relu",
                call.pos,
            )
        return call

    def repeat_count(self, item: ir.Repeat, env) -> int:
        count = evaluate(item.count, env)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise SpecError(
                f"a repeat count must be a whole number >= 0, got {describe(count)}"
                + _whole_hint(count),
                item.count.pos,
            )
        if count > self.limits.max_repeat:
            raise LimitError(
                f"repeat count {count} is more than the limit of {self.limits.max_repeat}",
                item.count.pos,
            )
        note_choice(item.count.pos, "a repeat count", count)
        return count

    def table_rows(self, item: ir.For, env) -> list[dict[str, Value]]:
        """A for's rows, each as the values it binds to the for's names."""
        rows = evaluate(item.rows, env)
        if not isinstance(rows, tuple):
            raise SpecError(f"for needs a table of rows, got {describe(rows)}", item.rows.pos)
        if len(rows) > self.limits.max_repeat:
            raise LimitError(
                f"for has {len(rows)} rows, more than the limit of {self.limits.max_repeat}",
                item.rows.pos,
            )
        bound = []
        for row in rows:
            if len(item.names) == 1:
                bound.append({item.names[0]: row})
                continue
            if not isinstance(row, tuple) or len(row) != len(item.names):
                raise SpecError(
                    f"each row of this table gives {len(item.names)} values "
                    f"({', '.join(item.names)}), got {describe(row)}",
                    item.rows.pos,
                )
            bound.append(dict(zip(item.names, row)))
        return bound

    def _no_heads_before(self, item, flow: Flow) -> None:
        if flow.shape and isinstance(flow.shape[0], tuple):
            raise SpecError(
                f"nothing can follow heads (at {flow.pos[0]}:{flow.pos[1]}); "
                "heads must come last in the network",
                item.pos,
            )

    # --- layers ---------------------------------------------------------------------------
    def layer(self, call: ir.Call, flow: Flow, env) -> Node:
        model = LAYERS[call.op]
        scope = self._shape_scope(env, flow.shape)
        exprs = match_arguments(call, model.signature(), model.required())
        words = model.words()
        values = {}
        for name, expr in exprs.items():
            if name in model.tensor_fields:
                values[name] = self.read_tensor(call, name, expr)
            elif name in words:
                values[name] = _word(call, name, expr, words[name], scope)
            else:
                values[name] = evaluate(expr, scope)
        positions = {name: expr.pos for name, expr in exprs.items()}
        try:
            layer = model(**values)
        except ValidationError as err:
            raise _argument_error(call, err, positions) from None
        return self.apply(layer, flow, call.pos, positions)

    def apply(
        self, layer: Layer, flow: Flow, pos: Pos, positions: Mapping[str, Pos] | None = None
    ) -> Node:
        self._check_arguments(layer, positions or {}, pos)
        try:
            reads = {name: self.tensors[name].shape for name in layer.reads()}
            inferred = layer.infer_reading(flow.shape, reads)
            out_shape, params, macs = inferred.shape, inferred.params, inferred.macs
        except ShapeError as err:
            raise ShapeError(f"{err.message} (from {flow.origin()})", pos) from None
        self.layer_count += 1
        self.param_count += params
        if self.layer_count > self.limits.max_layers:
            raise LimitError(f"network expands to more than {self.limits.max_layers} layers", pos)
        self._within("max_params", self.param_count, "parameters", params, layer.op, pos)
        self._check_dims(out_shape, pos)
        self.mac_count += macs
        self.activation_count += prod(out_shape)
        self._within(
            "max_macs", self.mac_count, "multiply-accumulates per example", macs, layer.op, pos
        )
        self._within(
            "max_activations",
            self.activation_count,
            "activations per example",
            prod(out_shape),
            layer.op,
            pos,
        )
        return Node(
            "layer", layer.op, flow.shape, out_shape, params, macs, pos, layer=layer, file=self.file
        )

    def _within(self, bound: str, count: int, what: str, here: int, op: str, pos: Pos) -> None:
        """Refuse a network past one of the budgets a flag may raise (`--max-macs`...)."""
        limit = getattr(self.limits, bound)
        if count > limit:
            raise LimitError(
                f"network has more than {limit:,} {what} ({op} here alone has {here:,}); "
                f"nothing was allocated (--{bound.replace('_', '-')} raises the bound)",
                pos,
            )

    def _check_arguments(self, layer: Layer, positions: Mapping[str, Pos], pos: Pos) -> None:
        """Every whole number a layer is given (a kernel, stride, padding, dilation, group or
        factor) is bounded as sizes are, wherever it came from: shape inference computes in
        Python's unbounded ints, but torch holds a stride of 2**31 in no int it has."""
        for name in _whole_number_fields(type(layer)):
            value = getattr(layer, name)
            for number in value if isinstance(value, tuple) else (value,):
                if isinstance(number, int) and number > self.limits.max_dim:
                    raise LimitError(
                        f"{layer.op} argument '{name}' is {number:,}, over the limit of "
                        f"{self.limits.max_dim:,} on any size",
                        positions.get(name, pos),
                    )

    def _check_dims(self, shape: Shape, pos: Pos) -> None:
        if max(shape) > self.limits.max_dim:
            raise LimitError(
                f"shape {fmt(shape)} has a dimension over the limit of {self.limits.max_dim}", pos
            )

    # --- blocks ---------------------------------------------------------------------------
    def block(self, call: ir.Call, flow: Flow, env) -> Node:
        block = self.blocks[call.op]
        if len(self.block_stack) >= self.limits.max_nesting:
            raise LimitError(f"blocks nest more than {self.limits.max_nesting} deep here", call.pos)
        names = [p.name for p in block.params]
        required = {p.name for p in block.params if p.default is None}
        scope = self._shape_scope(env, flow.shape)
        values, _ = self.bind(call, names, required, scope)
        # As written at the call: by position (the first len(call.args)) or by name.
        given = tuple((name, i >= len(call.args)) for i, name in enumerate(values))
        self.block_stack.append(call.op)
        builtin = block is builtin_blocks().get(call.op)
        outer_site, outer_file = self.call_site, self.file
        if builtin and outer_site is None:
            self.call_site = (call.op, call.pos)
        caller_file = self.body_file
        origin = self.origins.get(call.op)
        if builtin:
            self.file, self.body_file = PRELUDE, parse_prelude()[1]
        elif origin is not None:
            self.file, self.body_file = origin[0].name, origin[0]
        try:
            outer = {"classes": env["classes"], **_input_names(flow.shape)}
            for param in block.params:  # defaults are evaluated in the block's own scope
                if param.name not in values:
                    values[param.name] = evaluate(
                        param.default, self._shape_scope({**outer, **values}, flow.shape)
                    )
            inner = {**outer, **values}
            if any(isinstance(item, ir.Line) for item in block.body):
                lines = _named_lines(block)
                node = self.graph_body(lines, flow, inner, call.op, call.pos, "line")
            else:
                node, _ = self.sequence(block.body, flow, inner, call.op, call.pos)
        except CnnspecError as err:
            err.via.append((outer_file, call.pos))
            raise self._in_call(err, call, builtin, caller_file) from None
        finally:
            self.block_stack.pop()
            self.call_site, self.file, self.body_file = outer_site, outer_file, caller_file
        if node.is_layer:  # a one-layer block reads best as its layer
            return replace(node, called_at=(outer_file, call.pos))
        args = tuple((p.name, values[p.name]) for p in block.params)
        return replace(
            node,
            label=call.op,
            pos=call.pos,
            block=call.op,
            args=args,
            given=given,
            file=outer_file,
        )

    def _in_call(
        self, err: CnnspecError, call: ir.Call, builtin: bool, caller: Source | None
    ) -> CnnspecError:
        """An error raised inside the block `call` calls, on its way out: it names the call
        and where it is, so that of several calls of a block the one at fault is known.

        An error inside a built-in block moves to the call (prelude.cnn is no file of the
        user's) and names its place in prelude.cnn; one inside a block of a used file is
        shown in that file, naming the `use` that brought it in."""
        own, calls, context = getattr(err, "_in_calls", (err.message, [], ""))
        inside = ""
        if err.source is None and builtin:
            inside = f"at {_prelude_place(err.pos)} "
            moved = type(err)(own, call.pos)
            moved.via, moved.more = err.via, err.more
            err = moved
        elif err.source is None and call.op in self.origins:
            source, context = self.origins[call.op]
            err.with_source(source)
        shown = err.source if err.source is not None else caller
        calls.append(f"{inside}in {call.op} called at {self._place(call.pos, caller, shown)}")
        err._in_calls = (own, calls, context)  # the message as raised, the calls so far
        err.message = f"{own} ({', '.join(calls)}{', ' + context if context else ''})"
        err.args = (err.message,)
        return err

    def _place(self, pos: Pos, file: Source | None, shown: Source | None) -> str:
        """`line:col` of a position in `file`, with the file's name when the error is
        shown in another."""
        line, col = pos
        if file is shown or (file is not None and shown is not None and file.name == shown.name):
            return f"{line}:{col}"
        return f"{file.name if file is not None else self.spec_name}:{line}:{col}"

    # --- arguments ----------------------------------------------------------------------
    def bind(self, call: ir.Call, names: list[str], required, scope) -> tuple[dict, dict]:
        """Match the call's arguments to `names`, then evaluate them in `scope`."""
        exprs = match_arguments(call, names, required)
        values = {name: evaluate(expr, scope) for name, expr in exprs.items()}
        return values, {name: expr.pos for name, expr in exprs.items()}

    def _shape_scope(self, env, shape: Output) -> dict[str, Value]:
        self.steps.spend(n=len(env) // 64)  # copying a scope of many names is work too
        scope = {**OP_VALUES, **env}
        if shape and not isinstance(shape[0], tuple):
            scope.update(zip(SHAPE_NAMES, shape))  # C, H, W (just C for features)
        return scope


def _input_names(shape: Output) -> dict[str, Value]:
    """C_in, H_in, W_in: the shape of the input of the block (or network) being walked."""
    if shape and isinstance(shape[0], tuple):
        return {}
    return dict(zip(INPUT_NAMES, shape))


def _named_lines(block: ir.BlockDef) -> list[tuple[str, tuple, Pos]]:
    """A block body of named lines, each (name, body, position)."""
    lines = []
    for item in block.body:
        if not isinstance(item, ir.Line):
            meant = (  # `add: conv(...)` written as a line named add
                isinstance(item, ir.Combinator)
                and len(item.branches) == 1
                and item.branches[0].name is None
                and item.branches[0].pos[0] == item.pos[0]
            )
            first = f"'{item.kind}' is a reserved word (a combinator) and names no line; " * meant
            raise SpecError(
                f"{first}name this line (name: ...): in block '{block.name}', whose lines name "
                "their outputs, every line does",
                item.pos,
            )
        lines.append((item.name, item.body, item.pos))
    return lines


def _word(call: ir.Call, name: str, expr: ir.Node, words: tuple[str, ...], scope) -> str:
    """A word-valued argument (`mode=bilinear`): one of the op's words, written bare."""
    if isinstance(expr, ir.Name) and expr.id in words:
        return expr.id
    got = expr.id if isinstance(expr, ir.Name) else describe(evaluate(expr, scope))
    hint = did_you_mean(got, words) if isinstance(expr, ir.Name) else ""
    raise SpecError(
        f"{call.op} argument '{name}' takes one of {', '.join(words)}, got {got}{hint}", expr.pos
    )


def _prelude_place(pos: Pos) -> str:
    """Where in prelude.cnn an error of a built-in block is: its own position there, which
    the user's file name and caret would misplace."""
    line, col = pos
    return f"prelude.cnn:{line}:{col}" if line else "prelude.cnn"


@cache
def _whole_number_fields(layer: type[Layer]) -> tuple[str, ...]:
    """The fields of an op that may hold whole numbers (not those of flags only)."""
    return tuple(
        name
        for name, field in layer.model_fields.items()
        if field.annotation is not bool and "int" in str(field.annotation)
    )


def _argument_error(call: ir.Call, err: ValidationError, positions) -> CnnspecError:
    first = err.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    got = describe(first["input"]) if not isinstance(first["input"], dict) else ""
    message = first["msg"][0].lower() + first["msg"][1:]
    hint = _whole_hint(first["input"]) if _takes_whole_numbers(call.op, name) else ""
    return SpecError(
        f"{call.op} argument '{name}': {message}, got {got}{hint}",
        positions.get(name, call.pos),
    )


def _takes_whole_numbers(op: str, name: str) -> bool:
    """Whether the argument holds whole numbers only (a size, a count), so that a fraction
    given to it is best made whole; a rate or a probability takes fractions itself."""
    field = LAYERS[op].model_fields.get(name)
    if field is None:
        return False
    found: set[type] = set()
    stack = [field.annotation]
    while stack:
        kind = stack.pop()
        args = get_args(kind)
        if get_origin(kind) is Annotated:
            stack.append(args[0])
        elif args:
            stack.extend(args)
        elif isinstance(kind, type):
            found.add(kind)
    return int in found and float not in found


def _whole_hint(value) -> str:
    """Width rules give fractions (`c * 0.75`): say how a fraction becomes a size."""
    fraction = isinstance(value, float) or (
        isinstance(value, tuple) and any(isinstance(v, float) for v in value)
    )
    hint = "; use int(...) or round(...) to make a whole number, or // to divide into one"
    return hint if fraction else ""

"""Shape inference: IR -> typed graph. Needs no torch.

Walks the network in forward order, expanding repeats and block calls, evaluating argument
expressions against block parameters and the current input shape (C, H, W), validating each
layer's arguments with its class in `ops/`, and applying that class's shape rule.
Every node of the result knows its input and output shape, parameters and MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from math import prod

from pydantic import ValidationError

from ..errors import CnnspecError, LimitError, Pos, ShapeError, SpecError
from ..language import ir
from ..language.expressions import OpRef, Value, describe, evaluate, truth
from ..limits import DEFAULT, Limits
from .binding import match_arguments
from .combinators import combine
from .graph import Flow, Graph, Node, Output, Shape, group
from .ops import LAYERS, Layer, fmt
from .resolve import OP_VALUES, SHAPE_NAMES, builtin_blocks, names_in, resolve


def infer(doc: ir.Document, limits: Limits = DEFAULT) -> Graph:
    blocks = resolve(doc)
    inference = _Inference(blocks, limits)
    inference.origins = doc.origins
    return inference.network(doc)


class _Inference:
    def __init__(self, blocks: Mapping[str, ir.BlockDef], limits: Limits):
        self.blocks = blocks
        self.limits = limits
        self.layer_count = 0
        self.param_count = 0
        self.mac_count = 0
        self.activation_count = 0
        self.block_stack: list[str] = []
        self.decisions: list[str] = []  # the conditions decided in the body being walked
        self.origins: Mapping[str, tuple] = {}  # blocks of used files: (Source, context)
        # The user's call of the built-in block being walked: positions inside it are
        # prelude.cnn's, so messages point at the call instead.
        self.call_site: tuple[str, Pos] | None = None

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
        env: dict[str, Value] = {"classes": net.classes}
        for kw in net.params:  # each may read those before it
            env[kw.name] = evaluate(kw.value, {**OP_VALUES, **env})
        flow = Flow(shape)
        stages = []
        for stage in net.stages:
            node, flow = self.sequence(stage.body, flow, env, stage.name, stage.pos)
            stages.append((stage.name, node))
        root = group("seq", net.name, shape, stages, net.pos)
        return Graph(net.name, shape, net.classes, root, doc.train)

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
        return replace(node, decided=decided), flow

    def item(self, item, flow: Flow, env, out: list[Node]) -> Flow:
        """Append the node(s) `item` expands to onto `out`; return the flow after them."""
        if isinstance(item, ir.Repeat):
            for k in range(self.repeat_count(item, env)):
                scope = {**env, item.index: k} if item.index is not None else env
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
        if isinstance(item, ir.Call):
            item = self._layer_parameter(item, env)
        if isinstance(item, ir.Combinator):
            node = combine(self, item, flow, env)
        elif item.op in LAYERS:
            node = self.layer(item, flow, env)
        else:
            node = self.block(item, flow, env)
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
        return count

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
        values, positions = self.bind(call, model.signature(), model.required(), scope)
        try:
            layer = model(**values)
        except ValidationError as err:
            raise _argument_error(call, err, positions) from None
        return self.apply(layer, flow, call.pos)

    def apply(self, layer: Layer, flow: Flow, pos: Pos) -> Node:
        try:
            inferred = layer.infer(flow.shape)
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
        return Node("layer", layer.op, flow.shape, out_shape, params, macs, pos, layer=layer)

    def _within(self, bound: str, count: int, what: str, here: int, op: str, pos: Pos) -> None:
        """Refuse a network past one of the budgets a flag may raise (`--max-macs`...)."""
        limit = getattr(self.limits, bound)
        if count > limit:
            raise LimitError(
                f"network has more than {limit:,} {what} ({op} here alone has {here:,}); "
                f"nothing was allocated (--{bound.replace('_', '-')} raises the bound)",
                pos,
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
        self.block_stack.append(call.op)
        builtin = block is builtin_blocks().get(call.op)
        outer_site = self.call_site
        if builtin and outer_site is None:
            self.call_site = (call.op, call.pos)
        try:
            for param in block.params:  # defaults are evaluated in the block's own scope
                if param.name not in values:
                    values[param.name] = evaluate(
                        param.default,
                        self._shape_scope({"classes": env["classes"], **values}, flow.shape),
                    )
            inner = {"classes": env["classes"], **values}
            node, _ = self.sequence(block.body, flow, inner, call.op, call.pos)
        except CnnspecError as err:
            if builtin and err.source is None:
                raise _at_call_site(err, call) from None
            origin = self.origins.get(call.op)
            if origin is not None and err.source is None:  # inside a block of a used file
                source, context = origin
                err.message = f"{err.message} ({context})"
                raise err.with_source(source) from None
            raise
        finally:
            self.block_stack.pop()
            self.call_site = outer_site
        if node.is_layer:
            return node  # a one-layer block reads best as its layer
        args = tuple((p.name, values[p.name]) for p in block.params)
        return replace(node, label=call.op, pos=call.pos, block=call.op, args=args)

    # --- arguments ----------------------------------------------------------------------
    def bind(self, call: ir.Call, names: list[str], required, scope) -> tuple[dict, dict]:
        """Match the call's arguments to `names`, then evaluate them in `scope`."""
        exprs = match_arguments(call, names, required)
        values = {name: evaluate(expr, scope) for name, expr in exprs.items()}
        return values, {name: expr.pos for name, expr in exprs.items()}

    def _shape_scope(self, env, shape: Output) -> dict[str, Value]:
        scope = {**OP_VALUES, **env}
        if shape and not isinstance(shape[0], tuple):
            scope.update(zip(SHAPE_NAMES, shape))  # C, H, W (just C for features)
        return scope


def _at_call_site(err: CnnspecError, call: ir.Call) -> CnnspecError:
    """An error inside a built-in block, moved to the user's call: its own position is in
    prelude.cnn, which the user's file name and caret would misplace."""
    line, col = err.pos
    inside = f"prelude.cnn:{line}:{col}" if line else "prelude.cnn"
    return type(err)(f"{err.message} (in {call.op}, {inside})", call.pos)


def _argument_error(call: ir.Call, err: ValidationError, positions) -> CnnspecError:
    first = err.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    got = describe(first["input"]) if not isinstance(first["input"], dict) else ""
    message = first["msg"][0].lower() + first["msg"][1:]
    return SpecError(
        f"{call.op} argument '{name}': {message}, got {got}{_whole_hint(first['input'])}",
        positions.get(name, call.pos),
    )


def _whole_hint(value) -> str:
    """Width rules give fractions (`c * 0.75`): say how a fraction becomes a size."""
    return "; use int(...) or round(...) to make a whole number" if isinstance(value, float) else ""

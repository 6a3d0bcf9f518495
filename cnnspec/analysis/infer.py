"""Shape inference: IR -> typed graph. Needs no torch.

Walks the network in forward order, expanding repeats and block calls, evaluating argument
expressions against block parameters and the current input shape (C, H, W), validating each
layer's arguments with its class in `ops/`, and applying that class's shape rule.
Every node of the result knows its input and output shape, parameters and MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass, replace

from pydantic import ValidationError

from ..errors import CnnspecError, LimitError, Pos, ShapeError, SpecError, did_you_mean
from ..language import ir
from ..language.expressions import Value, describe, evaluate
from ..limits import DEFAULT, Limits
from .graph import Graph, Node, Output, Shape
from .ops import LAYERS, Conv, Layer, Window, fmt, pair
from .resolve import SHAPE_NAMES, resolve


@dataclass(frozen=True)
class Flow:
    """The tensor between two layers: its shape, and what made it (for error messages)."""

    shape: Output
    made_by: str = "the network input"
    pos: Pos = (0, 0)

    def origin(self) -> str:
        where = f" at {self.pos[0]}:{self.pos[1]}" if self.pos[0] else ""
        return f"{self.made_by}{where}"


def _describe_output(shape: Output) -> str:
    if shape and isinstance(shape[0], tuple):
        return "(" + ", ".join(fmt(s) for s in shape) + ")"
    return fmt(shape)  # type: ignore[arg-type]


def infer(doc: ir.Document, limits: Limits = DEFAULT) -> Graph:
    blocks = resolve(doc)
    return _Inference(blocks, limits).network(doc)


class _Inference:
    def __init__(self, blocks: Mapping[str, ir.BlockDef], limits: Limits):
        self.blocks = blocks
        self.limits = limits
        self.layer_count = 0
        self.param_count = 0
        self.block_stack: list[str] = []

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
        env = {"classes": net.classes}
        flow = Flow(shape)
        stages = []
        for stage in net.stages:
            node, flow = self.sequence(stage.body, flow, env, stage.name, stage.pos)
            stages.append((stage.name, node))
        root = _group("seq", net.name, shape, stages, net.pos)
        return Graph(net.name, shape, net.classes, root, doc.train)

    # --- sequences ----------------------------------------------------------------------
    def sequence(self, items, flow: Flow, env, label: str, pos: Pos) -> tuple[Node, Flow]:
        """A body written as one item (not a repeat) is that item; any other body is a
        sequence numbered 0, 1, ... The rule looks at the text, not at how many layers a
        repeat gives, so a block has one module structure whatever its arguments."""
        nodes: list[Node] = []
        start = flow.shape
        for item in items:
            flow = self.item(item, flow, env, nodes)
        if len(items) == 1 and not isinstance(items[0], ir.Repeat):
            return nodes[0], flow
        return _group("seq", label, start, list(enumerate(nodes)), pos), flow

    def item(self, item, flow: Flow, env, out: list[Node]) -> Flow:
        """Append the node(s) `item` expands to onto `out`; return the flow after them."""
        if isinstance(item, ir.Repeat):
            for _ in range(self.repeat_count(item, env)):
                for inner in item.body:
                    flow = self.item(inner, flow, env, out)
            return flow
        self._no_heads_before(item, flow)
        if isinstance(item, ir.Combinator):
            node = self.combinator(item, flow, env)
        elif item.op in LAYERS:
            node = self.layer(item, flow, env)
        else:
            node = self.block(item, flow, env)
        out.append(node)
        return Flow(node.out_shape, node.label, item.pos)

    def repeat_count(self, item: ir.Repeat, env) -> int:
        count = evaluate(item.count, env)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise SpecError(
                f"a repeat count must be a whole number >= 0, got {describe(count)}",
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
            out_shape, params, macs = astuple(layer.infer(flow.shape))
        except ShapeError as err:
            raise ShapeError(f"{err.message} (from {flow.origin()})", pos) from None
        self.layer_count += 1
        self.param_count += params
        if self.layer_count > self.limits.max_layers:
            raise LimitError(f"network expands to more than {self.limits.max_layers} layers", pos)
        if self.param_count > self.limits.max_params:
            raise LimitError(
                f"network has more than {self.limits.max_params:,} parameters "
                f"({layer.op} here alone has {params:,}); nothing was allocated",
                pos,
            )
        self._check_dims(out_shape, pos)
        return Node("layer", layer.op, flow.shape, out_shape, params, macs, pos, layer=layer)

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
        for param in block.params:  # defaults are evaluated in the block's own scope
            if param.name not in values:
                values[param.name] = evaluate(
                    param.default,
                    self._shape_scope({"classes": env["classes"], **values}, flow.shape),
                )
        inner = {"classes": env["classes"], **values}
        self.block_stack.append(call.op)
        try:
            node, _ = self.sequence(block.body, flow, inner, call.op, call.pos)
        finally:
            self.block_stack.pop()
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
        scope = dict(env)
        if shape and not isinstance(shape[0], tuple):
            scope.update(zip(SHAPE_NAMES, shape))  # C, H, W (just C for features)
        return scope

    # --- combinators --------------------------------------------------------------------
    def combinator(self, comb: ir.Combinator, flow: Flow, env) -> Node:
        options = self._options(comb, env)
        if comb.kind == "dense":
            return self.dense(comb, flow, env)
        branches: list[tuple[str, Node]] = []
        for i, branch in enumerate(comb.branches):
            label = branch.name or "branch"
            node, _ = self.sequence(branch.body, flow, env, label, branch.pos)
            branches.append((branch.name or str(i), node))
        if len({name for name, _ in branches}) < len(branches):
            raise SpecError(f"{comb.kind} has two branches with the same name", comb.pos)
        if comb.kind == "concat":
            return self.concat(comb, flow, branches)
        if comb.kind == "add":
            return self.add(comb, flow, branches, options.get("project"))
        outs = tuple(node.out_shape for _, node in branches)
        if any(out and isinstance(out[0], tuple) for out in outs):
            raise SpecError("heads cannot be nested in heads", comb.pos)
        return _group("heads", "heads", flow.shape, branches, comb.pos, out_shape=outs)

    def _options(self, comb: ir.Combinator, env) -> dict[str, Value]:
        allowed = {"add": ["project"]}.get(comb.kind, [])
        options = {}
        for kw in comb.kwargs:
            if kw.name not in allowed:
                hint = did_you_mean(kw.name, allowed)
                raise SpecError(f"{comb.kind} has no option '{kw.name}'{hint}", kw.pos)
            value = evaluate(kw.value, env)
            if value not in (True, False, None):
                raise SpecError(
                    f"{comb.kind} option '{kw.name}' must be true, false or none, "
                    f"got {describe(value)}",
                    kw.value.pos,
                )
            options[kw.name] = value
        return options

    def concat(self, comb, flow: Flow, branches) -> Node:
        first_name, first = branches[0]
        for (name, node), branch in zip(branches, comb.branches):
            out = node.out_shape
            if len(out) != len(first.out_shape) or out[1:] != first.out_shape[1:]:
                raise ShapeError(
                    f"concat branch {name} gives {_describe_output(out)} but branch "
                    f"{first_name} gives {_describe_output(first.out_shape)}; concatenated "
                    "branches must agree in everything but channels",
                    branch.pos,
                )
        channels = sum(node.out_shape[0] for _, node in branches)
        out_shape = (channels, *first.out_shape[1:])
        return _group("concat", "concat", flow.shape, branches, comb.pos, out_shape=out_shape)

    def add(self, comb, flow: Flow, branches, project) -> Node:
        if len(branches) > 1:
            first_name, first = branches[0]
            for (name, node), branch in zip(branches, comb.branches):
                if node.out_shape != first.out_shape:
                    raise ShapeError(
                        f"add branch {name} gives {_describe_output(node.out_shape)} but branch "
                        f"{first_name} gives {_describe_output(first.out_shape)}; added branches "
                        "must have the same shape",
                        branch.pos,
                    )
            return _group("add", "add", flow.shape, branches, comb.pos, out_shape=first.out_shape)
        # One branch: the other is the shortcut, projected by a 1x1 conv if shapes differ.
        main = branches[0][1]
        shortcut = None
        if main.out_shape != flow.shape or project is True:
            if project is False:
                raise ShapeError(
                    f"add: the branch turns {fmt(flow.shape)} into {fmt(main.out_shape)} but "
                    "project=false keeps the shortcut as it is; they cannot be added",
                    comb.pos,
                )
            projection = _projection(flow.shape, main, comb.pos)
            shortcut = self.apply(projection, flow, comb.pos)
        node = _group("add", "add", flow.shape, branches, comb.pos, out_shape=main.out_shape)
        if shortcut is None:
            return node
        return Node(
            "add", "add", flow.shape, main.out_shape, node.params + shortcut.params,
            node.macs + shortcut.macs, comb.pos, children=node.children, shortcut=shortcut,
        )  # fmt: skip

    def dense(self, comb: ir.Combinator, flow: Flow, env) -> Node:
        """DenseNet connectivity: each unit sees everything before it, concatenated.
        Each line is a unit; a line written `(...) * n` is n units."""
        units: list[tuple[str, Node]] = []
        start = flow
        for branch in comb.branches:
            if branch.name is not None:
                raise SpecError("dense units are not named", branch.pos)
            body, count = dense_unit(branch)
            for _ in range(self.repeat_count(count, env) if count is not None else 1):
                unit, out = self.sequence(body, flow, env, str(len(units)), branch.pos)
                c, *rest = flow.shape
                if len(out.shape) != len(flow.shape) or tuple(rest) != tuple(out.shape[1:]):
                    raise ShapeError(
                        f"dense unit turns {fmt(flow.shape)} into {_describe_output(out.shape)}; "
                        "a unit must keep the height and width to be concatenated",
                        branch.pos,
                    )
                units.append((str(len(units)), unit))
                flow = Flow((c + out.shape[0], *rest), "dense", branch.pos)
        return _group("dense", "dense", start.shape, units, comb.pos, out_shape=flow.shape)


def dense_unit(branch: ir.Branch) -> tuple[tuple, ir.Repeat | None]:
    """A dense line's unit body, and the repeat that makes it several units (if any)."""
    if len(branch.body) == 1 and isinstance(branch.body[0], ir.Repeat):
        return branch.body[0].body, branch.body[0]
    return branch.body, None


def match_arguments(call: ir.Call, names: list[str], required) -> dict[str, ir.Node]:
    """Positional and keyword arguments of `call`, by parameter name (not yet evaluated)."""
    if len(call.args) > len(names):
        extra = call.args[len(names)]
        raise SpecError(
            f"{call.op} takes at most {len(names)} positional argument"
            f"{'s' if len(names) != 1 else ''} ({', '.join(names) or 'none'}), "
            f"got {len(call.args)}",
            extra.pos,
        )
    exprs: dict[str, ir.Node] = dict(zip(names, call.args))
    for kw in call.kwargs:
        if kw.name not in names:
            hint = did_you_mean(kw.name, names)
            raise SpecError(f"{call.op} has no argument '{kw.name}'{hint}", kw.pos)
        if kw.name in exprs:
            raise SpecError(f"{call.op} argument '{kw.name}' is given twice", kw.pos)
        exprs[kw.name] = kw.value
    missing = [n for n in names if n in required and n not in exprs]
    if missing:
        raise SpecError(f"{call.op} is missing argument '{missing[0]}'", call.pos)
    return exprs


def path_stride(node: Node) -> tuple[int, int] | None:
    """The product of the window strides along `node`: the step, in input pixels, between
    neighbouring outputs. None when the path has no fixed stride (adaptive pooling)."""
    total = (1, 1)
    for leaf in _leaves(node):
        if leaf.layer.resizes:
            return None
        if isinstance(leaf.layer, Window):
            sh, sw = pair(leaf.layer.stride)
            total = (total[0] * sh, total[1] * sw)
    return total


def _leaves(node: Node) -> list[Node]:
    leaves, stack = [], [node]
    while stack:
        current = stack.pop()
        if current.is_layer:
            leaves.append(current)
        stack.extend(child for _, child in current.children)
    return leaves


def _projection(src: Shape, main: Node, pos: Pos) -> Conv:
    """The 1x1 convolution that carries a shortcut from `src` to the main path's output.

    It steps over the input with the main path's own stride, so both sides of the sum see
    the same pixels; that stride must then give the main path's output size."""
    dst = main.out_shape
    stride = path_stride(main)
    if len(src) != 3 or len(dst) != 3 or stride is None:
        raise ShapeError(
            f"add: cannot project a shortcut from {fmt(src)} to {_describe_output(dst)}; "
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


def _group(kind, label, in_shape, children, pos, out_shape=None) -> Node:
    children = tuple((str(name), node) for name, node in children)
    if out_shape is None:
        out_shape = children[-1][1].out_shape if children else in_shape
    return Node(
        kind, label, in_shape, out_shape,
        sum(n.params for _, n in children), sum(n.macs for _, n in children), pos,
        children=children,
    )  # fmt: skip


def _argument_error(call: ir.Call, err: ValidationError, positions) -> CnnspecError:
    first = err.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    got = describe(first["input"]) if not isinstance(first["input"], dict) else ""
    message = first["msg"][0].lower() + first["msg"][1:]
    return SpecError(
        f"{call.op} argument '{name}': {message}, got {got}", positions.get(name, call.pos)
    )

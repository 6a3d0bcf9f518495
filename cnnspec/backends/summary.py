"""The per-layer summary: a readable table, and the same figures as plain data / JSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import prod

from ..analysis.graph import Graph, Node, Output, child_path, owned_path
from ..analysis.ops import fmt
from ..errors import shown
from ..language.expressions import describe

# Rows shown by default: stages (depth 0) and what they hold (depth 1).
DEFAULT_DEPTH = 2


def shape_text(shape: Output) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(fmt(s) for s in shape)
    return fmt(shape)  # type: ignore[arg-type]


def shape_data(shape: Output) -> list:
    if shape and isinstance(shape[0], tuple):
        return [list(s) for s in shape]
    return list(shape)


def op_text(node: Node) -> str:
    """A layer as its call (`conv(out=64, k=7)`), anything else by its label."""
    if node.is_layer:
        args = ", ".join(f"{k}={describe(v)}" for k, v in node.layer.arguments().items())
        return f"{node.label}({args})" if args else node.label
    return node.label


def node_text(node: Node, parent: Node | None) -> str:
    """What a row is: a layer or a block as its call, a combinator by its kind, a DenseNet
    unit or a branch as such, a stage as a stage."""
    if node.is_layer:
        return op_text(node)
    if node.block is not None:
        return f"{node.block}({', '.join(block_arguments(node))})"
    if node.kind != "seq":
        return node.kind
    if parent is None:
        return "stage"
    if any(owned is node for _, owned in parent.owned):
        return node.label  # a combinator's own layers, by their name (`attention`)
    return {"dense": "dense unit", "graph": "line"}.get(parent.kind, "branch")


def sources_text(node: Node) -> str:
    """What a stage that reads named tensors starts from: `c4 → `, `add(lat4, up5) → `."""
    if not node.sources:
        return ""
    if node.join is None:
        return f"{node.sources[0]} → "
    return f"{node.join}({', '.join(node.sources)}) → "


def block_arguments(node: Node) -> list[str]:
    """A block's arguments as its call wrote them, by position or by name, with their
    values; defaults left out (`layer(512, 3, d=4)`)."""
    values = dict(node.args)
    return [
        f"{name}={describe(values[name])}" if by_name else describe(values[name])
        for name, by_name in node.given
    ]


@dataclass(frozen=True)
class Own:
    """A parameter a combinator holds itself, outside any layer (add(scale=)'s
    `layer_scale`), as a row sees it: it acts on the branches' output."""

    name: str
    params: int
    shape: Output


def rows_walk(graph: Graph) -> Iterator[tuple[str, int, Node | Own]]:
    """`graph.walk()` with each combinator's own parameters in forward order: after its
    branches, before the layers it owns beside them (a shortcut adds to the scaled
    branch)."""
    stack: list[tuple[str, int, Node | Own]] = [
        (name, 0, child) for name, child in reversed(graph.root.children)
    ]
    while stack:
        path, depth, node = stack.pop()
        yield path, depth, node
        if isinstance(node, Own):
            continue
        below: list[tuple[str, int, Node | Own]] = [
            (child_path(node, path, name), depth + 1, child) for name, child in node.children
        ]
        below.extend(
            (owned_path(path, name), depth + 1, Own(name, count, node.out_shape))
            for name, count in node.own_params
        )
        below.extend((owned_path(path, name), depth + 1, owned) for name, owned in node.owned)
        stack.extend(reversed(below))


def layer_rows(graph: Graph) -> list[dict]:
    """Leaf layers in forward order, and each parameter a combinator holds itself (add's
    `layer_scale`, by its state_dict key); their params and MACs add up to the
    network's."""
    rows = []
    for path, _, node in rows_walk(graph):
        if isinstance(node, Own):
            rows.append(
                {
                    "path": path,
                    "op": node.name,
                    "input_shape": shape_data(node.shape),
                    "output_shape": shape_data(node.shape),
                    "params": node.params,
                    "macs": 0,
                    "args": {},
                }
            )
        elif node.is_layer:
            rows.append(
                {
                    "path": path,
                    "op": node.label,
                    "input_shape": shape_data(node.in_shape),
                    "output_shape": shape_data(node.out_shape),
                    "params": node.params,
                    "macs": node.macs,
                    "args": {k: _plain(v) for k, v in node.layer.arguments().items()},
                }
            )
    return rows


def as_dict(graph: Graph) -> dict:
    return {
        "name": graph.name,
        "input_shape": list(graph.input_shape),
        "output_shape": shape_data(graph.output_shape),
        "params": graph.params,
        "macs": graph.macs,
        "layers": layer_rows(graph),
        "blocks": [
            {
                "path": path,
                "kind": node.kind,
                "label": node.label,
                "output_shape": shape_data(node.out_shape),
                "params": node.params,
                "macs": node.macs,
                **({"sources": list(node.sources), "join": node.join} if node.sources else {}),
            }
            for path, _, node in graph.walk()
            if not node.is_layer or node.sources
        ],
        **({"outputs": list(graph.outputs)} if graph.outputs else {}),
        "train": graph.recipe.model_dump(),
    }


def _plain(value):
    """An argument as JSON: tuples become lists."""
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Row:
    """One row of the layer table: a node `level` blocks deep, its figures as text."""

    level: int
    path: str
    op: str
    input: str
    output: str
    params: int
    macs: int


def table_rows(graph: Graph, depth: int = DEFAULT_DEPTH) -> list[Row]:
    """One row per node down to `depth` levels (stages are level 1), in forward order, and
    one per parameter a combinator holds itself: each row's figures are its rows' below."""
    rows = []
    parents: dict[int, Node] = {}  # by id: nodes are values, and equal ones may repeat
    for path, level, node in rows_walk(graph):
        if level >= depth:
            continue
        if isinstance(node, Own):
            shape = shape_text(node.shape)
            rows.append(Row(level, path, node.name, shape, shape, node.params, 0))
            continue
        for _, child in node.children:
            parents[id(child)] = node
        for _, owned in node.owned:
            parents[id(owned)] = node
        op = sources_text(node) + node_text(node, parents.get(id(node)))
        rows.append(
            Row(level, path, op, shape_text(node.in_shape), shape_text(node.out_shape),
                node.params, node.macs)
        )  # fmt: skip
    return rows


def table(graph: Graph, source_name: str = "", depth: int = DEFAULT_DEPTH) -> str:
    """`table_rows` as aligned text with the network's totals; then what training it takes
    in memory."""
    rows = [("path", "op", "input", "output", "params", "MACs")]
    rows += [
        ("  " * r.level + r.path, r.op, r.input, r.output, f"{r.params:,}", f"{r.macs:,}")
        for r in table_rows(graph, depth)
    ]
    rows.append(
        (
            "total",
            "",
            shape_text(graph.input_shape),
            shape_text(graph.output_shape),
            f"{graph.params:,}",
            f"{graph.macs:,}",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    widths[1] = min(widths[1], 48)
    lines = [
        f"{graph.name}  input {fmt(graph.input_shape)}"
        + (f"  ({shown(source_name)})" if source_name else "")
    ]
    for i, row in enumerate(rows):
        op = row[1] if len(row[1]) <= widths[1] else row[1][: widths[1] - 1] + "…"
        lines.append(
            f"{row[0]:<{widths[0]}}  {op:<{widths[1]}}  {row[2]:<{widths[2]}}  "
            f"{row[3]:<{widths[3]}}  {row[4]:>{widths[4]}}  {row[5]:>{widths[5]}}".rstrip()
        )
        if i == 0 or i == len(rows) - 2:
            lines.append("-" * (sum(widths) + 10))
    lines.extend(memory_lines(graph))
    return "\n".join(lines)


def activations(graph: Graph) -> int:
    """Values a forward pass of one example produces: the input and every layer's output
    (what training keeps for the backward pass, and what `--max-activations` bounds)."""
    return prod(graph.input_shape) + sum(prod(n.out_shape) for _, n in graph.layers())


# Tensors the size of the weights that each optimizer keeps beside weights and gradients.
OPTIMIZER_STATE = {"sgd": 0, "adam": 2, "adamw": 2}


@dataclass(frozen=True)
class Memory:
    """Bytes in fp32: one example's forward activations, and training a batch of the
    recipe's size (activations kept for backward, weights, gradients, optimizer state)."""

    per_example: int
    batch: int
    activations: int
    weights: int
    optimizer: str

    @property
    def training(self) -> int:
        return self.activations + self.weights


def memory(graph: Graph) -> Memory:
    recipe = graph.recipe
    per_example = activations(graph) * 4
    state = OPTIMIZER_STATE[recipe.optimizer] + (recipe.optimizer == "sgd" and recipe.momentum > 0)
    weights = graph.params * 4 * (2 + state)
    return Memory(per_example, recipe.batch, per_example * recipe.batch, weights, recipe.optimizer)


def memory_lines(graph: Graph) -> list[str]:
    m = memory(graph)
    return [
        f"activations: {byte_text(m.per_example)} per example (forward, fp32)",
        f"training at batch {m.batch}: about {byte_text(m.training)} "
        f"({byte_text(m.activations)} of activations kept for backward, "
        f"{byte_text(m.weights)} of weights, gradients and {m.optimizer} state)",
    ]


def byte_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")

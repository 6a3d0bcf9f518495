"""The per-layer summary: a readable table, and the same figures as plain data / JSON."""

from __future__ import annotations

from ..analysis.graph import Graph, Node, Output
from ..analysis.ops import fmt
from ..language.expressions import describe


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


def layer_rows(graph: Graph) -> list[dict]:
    """Leaf layers in forward order; their params and MACs add up to the network's."""
    return [
        {
            "path": path,
            "op": node.label,
            "input_shape": shape_data(node.in_shape),
            "output_shape": shape_data(node.out_shape),
            "params": node.params,
            "macs": node.macs,
        }
        for path, node in graph.layers()
    ]


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
            }
            for path, _, node in graph.walk()
            if not node.is_layer
        ],
        "train": graph.recipe.model_dump(),
    }


def table(graph: Graph, source_name: str = "") -> str:
    """Stages and blocks with their totals, and every layer under them, indented."""
    rows = [("path", "op", "output", "params", "MACs")]
    for path, depth, node in graph.walk():
        rows.append(
            (
                "  " * depth + path,
                op_text(node),
                shape_text(node.out_shape),
                f"{node.params:,}",
                f"{node.macs:,}",
            )
        )
    rows.append(
        ("total", "", shape_text(graph.output_shape), f"{graph.params:,}", f"{graph.macs:,}")
    )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    widths[1] = min(widths[1], 48)
    lines = [
        f"{graph.name}  input {fmt(graph.input_shape)}"
        + (f"  ({source_name})" if source_name else "")
    ]
    for i, row in enumerate(rows):
        op = row[1] if len(row[1]) <= widths[1] else row[1][: widths[1] - 1] + "…"
        lines.append(
            f"{row[0]:<{widths[0]}}  {op:<{widths[1]}}  {row[2]:<{widths[2]}}  "
            f"{row[3]:>{widths[3]}}  {row[4]:>{widths[4]}}".rstrip()
        )
        if i == 0 or i == len(rows) - 2:
            lines.append("-" * (sum(widths) + 8))
    return "\n".join(lines)

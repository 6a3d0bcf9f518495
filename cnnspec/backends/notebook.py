"""A network as a notebook shows it: a headline, the layer table, and the picture inline.

`View` is what `Spec.display()` returns and what a `Spec` shows as in Jupyter: Jupyter asks
it for `_repr_html_`, and a plain console for `repr`, which is the text summary. The picture
is Graphviz's SVG; where Graphviz is missing, a line says so and the rest stays.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..analysis.graph import Graph
from ..errors import printable
from . import dot
from .summary import DEFAULT_DEPTH, byte_text, memory, shape_text, table, table_rows

STYLE = """<style>
div.cnnspec-view table.cnnspec { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
div.cnnspec-view table.cnnspec th, div.cnnspec-view table.cnnspec td {
  padding: 2px 10px; text-align: left; white-space: nowrap; }
div.cnnspec-view table.cnnspec .n { text-align: right; font-variant-numeric: tabular-nums; }
div.cnnspec-view table.cnnspec tr.total td { border-top: 1px solid #999; font-weight: bold; }
div.cnnspec-view table.cnnspec thead th { border-bottom: 1px solid #999; }
div.cnnspec-view .picture { flex: 1 1 280px; max-height: 640px;
  overflow: auto; border: 1px solid #ddd; }
div.cnnspec-view .note { color: #777; }
div.cnnspec-view .side { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
</style>"""


@dataclass(frozen=True)
class View:
    """A network's rich display: the table `depth` levels deep (stages are level 1), the
    picture with blocks open `picture_depth` levels deep, or no picture."""

    graph: Graph
    source_name: str = ""
    depth: int = DEFAULT_DEPTH
    picture_depth: int = dot.DEFAULT_DEPTH
    picture: bool = True

    def __repr__(self) -> str:
        return table(self.graph, self.source_name, self.depth)

    def _repr_html_(self) -> str:
        return render(self)


def headline(graph: Graph) -> str:
    """The network in one line: input → output, parameters, MACs, training memory."""
    m = memory(graph)
    return (
        f"input {shape_text(graph.input_shape)} → output {shape_text(graph.output_shape)} · "
        f"{graph.params:,} parameters · {graph.macs:,} MACs · "
        f"training at batch {m.batch}: about {byte_text(m.training)}"
    )


def render(view: View) -> str:
    graph = view.graph
    source = f" <span class='note'>({html.escape(view.source_name)})</span>"
    parts = [
        STYLE,
        "<div class='cnnspec-view'>",
        f"<p><b>{html.escape(graph.name)}</b>{source if view.source_name else ''}<br>"
        f"{html.escape(headline(graph))}</p>",
        "<div class='side'>",  # the picture beside the table where the page is wide enough
        _table(view),
    ]
    if view.picture:
        parts.append(_picture(view))
    parts.append("</div></div>")
    return printable("\n".join(parts))  # names as the terminal shows them: escaped


def _table(view: View) -> str:
    head = "".join(
        f"<th{' class=n' if name in ('params', 'MACs') else ''}>{name}</th>"
        for name in ("path", "op", "input", "output", "params", "MACs")
    )
    lines = ["<table class=cnnspec>", f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in table_rows(view.graph, view.depth):
        indent = f" style='padding-left:{10 + 16 * row.level}px'" if row.level else ""
        lines.append(
            f"<tr><td{indent}>{html.escape(row.path)}</td><td>{html.escape(row.op)}</td>"
            f"<td>{html.escape(row.input)}</td><td>{html.escape(row.output)}</td>"
            f"<td class=n>{row.params:,}</td><td class=n>{row.macs:,}</td></tr>"
        )
    graph = view.graph
    lines.append(
        f"<tr class=total><td>total</td><td></td><td>{shape_text(graph.input_shape)}</td>"
        f"<td>{shape_text(graph.output_shape)}</td>"
        f"<td class=n>{graph.params:,}</td><td class=n>{graph.macs:,}</td></tr>"
    )
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _picture(view: View) -> str:
    try:
        svg = dot.render(dot.to_dot(view.graph, view.picture_depth), "svg").decode()
    except dot.GraphvizMissing as missing:
        return f"<p class='note'>No picture: {html.escape(str(missing))}</p>"
    return f"<div class='picture'>{svg[svg.index('<svg') :]}</div>"

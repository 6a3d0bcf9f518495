"""The network as a page to explore: nested boxes to open and close, the layer table beside
them, each finding the other; one self-contained file that works offline.

Boxes are laid out by the browser (nested flex columns and rows, from the typed graph's
tree), so the page needs no Graphviz and no script from anywhere: the little script it
has is inline, and only opens, closes, finds and shows. Stages are open; a block is open
while fewer than `depth` blocks enclose it.
"""

from __future__ import annotations

from html import escape

from ..analysis.combinators import RULES
from ..analysis.graph import Graph, Node, child_path, owned_path
from ..errors import printable
from ..language.ir import INPUT
from .summary import node_text, op_text, shape_text, sources_text, table_rows

# By default every block is one box: a stage shows the blocks it holds, readable at once.
DEFAULT_DEPTH = 0
LAYOUTS = ("tb", "lr")


def page(graph: Graph, source_name: str = "", depth: int = DEFAULT_DEPTH, layout: str = "tb"):
    """The whole page as text: header, the boxes, the table, the script."""
    facts = (
        f"input {shape_text(graph.input_shape)} → output {shape_text(graph.output_shape)} · "
        f"{graph.params:,} parameters · {graph.macs:,} multiply-accumulates"
    )
    where = f" <span class=note>{escape(source_name)}</span>" if source_name else ""
    boxes = _Boxes(graph, depth).network()
    # A name may hold what no UTF-8 file can (a path that was not UTF-8) or a control
    # character: the page spells each as an escape, as the terminal is shown them.
    return printable(
        TEMPLATE.format(
            title=escape(graph.name),
            heading=f"{escape(graph.name)}{where}",
            facts=escape(facts),
            layout="lr" if layout == "lr" else "tb",
            boxes=boxes,
            rows=_rows(graph),
            style=STYLE,
            script=SCRIPT,
        )
    )


def _figures(count: int) -> str:
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


class _Boxes:
    def __init__(self, graph: Graph, depth: int):
        self.graph = graph
        self.depth = depth

    def network(self) -> str:
        graph = self.graph
        parts = [_io("input", graph.input_shape)]
        body, ends = self.column(graph.root, "", 0, graph.input_shape, stages=True)
        parts += [_edge(graph.input_shape), body]
        if ends:
            shapes = graph.output_shape
            if graph.reads_tensors and len(graph.returns) > 1:
                outputs = "".join(
                    _io(f"output {name}", shape)
                    for name, shape in zip(graph.returns, shapes, strict=True)
                )
                parts += [_edge(None), f"<div class=branches>{outputs}</div>"]
            else:
                parts += [_edge(graph.root.out_shape), _io("output", graph.root.out_shape)]
        return "".join(parts)

    def column(self, node: Node, path: str, level: int, shape, stages: bool = False):
        """`node`'s children one after another, an edge with its shape between each two;
        returns the HTML and whether the flow goes on past the last (heads end it)."""
        parts: list[str] = []
        for i, (name, child) in enumerate(node.children):
            if i:
                parts.append(_edge(shape))
            item, ends = self.item(child, child_path(node, path, name), level, stage=stages)
            parts.append(item)
            shape = child.out_shape
            if not ends:
                return "".join(parts), False
        return "".join(parts), True

    def item(self, node: Node, path: str, level: int, stage: bool = False):
        if node.is_layer and stage:  # a stage of one layer is that layer: box it as a stage
            title = f"<b>{escape(path)}</b>"
            inner = f"<div class=col>{_layer(node, None)}</div>"
            return _group(node, path, title, inner, "stage", closed=False), True
        if node.is_layer:
            return _layer(node, path), True
        if stage or node.sources:  # a stage, or a line that reads named tensors
            inner, ends = self.inside(node, path, level)
            title = f"{escape(sources_text(node))}<b>{escape(path.rsplit('.', 1)[-1])}</b>"
            return _group(node, path, title, inner, "stage", closed=False), ends
        if node.block is None and node.kind == "seq":  # a branch: its layers, no box
            inner, ends = self.column(node, path, level, node.in_shape)
            return f"<div class=col {_data(node, path, 'branch')}>{inner}</div>", ends
        if node.block is None:  # a combinator written out: its branches where it stands
            inner, ends = self.inside(node, path, level)
            return f"<div class=col {_data(node, path, node.kind)}>{inner}</div>", ends
        inner, ends = self.inside(node, path, level + 1)
        closed = level >= self.depth
        return _group(node, path, escape(node_text(node, None)), inner, "block", closed), ends

    def inside(self, node: Node, path: str, level: int):
        if node.kind in ("seq", "graph"):
            inner, ends = self.column(node, path, level, node.in_shape)
            return f"<div class=col>{inner}</div>", ends
        kind = RULES[node.kind]
        branches = [(child_path(node, path, name), child) for name, child in node.children]
        if kind.layout == "chain":  # each unit's output joins its input
            parts, shape = [], node.in_shape
            for i, (unit_path, unit) in enumerate(branches):
                parts.append(_edge(shape) if i else "")
                parts.append(self.item(unit, unit_path, level)[0])
                shape = (shape[0] + unit.out_shape[0], *shape[1:])  # type: ignore[operator]
                parts += [_edge(unit.out_shape), _merge(kind.symbol, "the unit's input joins")]
            return f"<div class=col>{''.join(parts)}</div>", True
        columns = []
        for i, (branch_path, branch) in enumerate(branches):
            item, _ = self.item(branch, branch_path, level)
            tail = ""
            if kind.layout == "outputs":
                tail = _edge(branch.out_shape) + _io("output", branch.out_shape)
            if i == 0:  # its own parameters scale the branch (add(scale=)'s layer_scale)
                for name, count in node.own_params:
                    own = owned_path(path, name)
                    tail += _edge(branch.out_shape) + _own(own, name, count, branch.out_shape)
            columns.append(f"<div class=col>{item}{tail}</div>")
        owned = dict(node.owned)
        if kind.skips(node):
            through = owned.get(kind.skip_through or "")
            skip = (
                _layer(through, owned_path(path, kind.skip_through or ""))
                if through is not None
                else "<div class='box identity'>identity</div>"
            )
            columns.append(f"<div class='col skip'>{skip}</div>")
        parts = [f"<div class=branches>{''.join(columns)}</div>"]
        if kind.layout == "outputs":
            return "".join(parts), False
        parts.append(_merge(kind.symbol, f"the branches meet: {node.kind}"))
        for name, layers in node.owned:
            if name != kind.skip_through:  # layers it owns beside its branches (attention)
                parts += [
                    _edge(node.out_shape),
                    self.item(layers, owned_path(path, name), level)[0],
                ]
        return f"<div class=col>{''.join(parts)}</div>", True


def _data(node: Node, path: str, what: str) -> str:
    """What hovering shows, as attributes: the node's path, call, shapes and figures."""
    op = op_text(node) if node.is_layer else node_text(node, None)
    if node.sources:
        op = sources_text(node) + op
    fields = {
        "path": path,
        "what": what,
        "op": op,
        "in": shape_text(node.in_shape),
        "out": shape_text(node.out_shape),
        "params": f"{node.params:,}",
        "macs": f"{node.macs:,}",
    }
    return " ".join(f'data-{k}="{escape(v)}"' for k, v in fields.items())


def _layer(node: Node, path: str | None) -> str:
    """A layer's box; with no path, it is a stage's only layer and the stage's box finds it."""
    params = f"<span class=p>{_figures(node.params)}</span>" if node.params else ""
    data = _data(node, path, "layer") if path is not None else ""
    return f"<div class='box layer' {data}>{escape(op_text(node))}{params}</div>"


def _own(path: str, name: str, count: int, shape) -> str:
    """The box of a parameter a combinator holds itself, by its state_dict name."""
    fields = {"path": path, "what": "parameter", "op": name, "in": shape_text(shape),
              "out": shape_text(shape), "params": f"{count:,}", "macs": "0"}  # fmt: skip
    data = " ".join(f'data-{k}="{escape(v)}"' for k, v in fields.items())
    return (
        f"<div class='box layer' {data}>{escape(name)}<span class=p>{_figures(count)}</span></div>"
    )


def _group(node: Node, path: str, title: str, inner: str, what: str, closed: bool) -> str:
    summary = f"→ {escape(shape_text(node.out_shape))}"
    if node.params:
        summary += f" · {_figures(node.params)}"
    state = " closed" if closed else ""
    return (
        f"<div class='group {what}{state}' {_data(node, path, what)}>"
        f"<div class=head><span class=tog></span>{title} <span class=sum>{summary}</span></div>"
        f"<div class=body>{inner}</div></div>"
    )


def _edge(shape) -> str:
    label = escape(shape_text(shape)) if shape is not None else ""
    return f"<div class=edge><span>{label}</span></div>"


def _merge(symbol: str, title: str) -> str:
    return f"<div class=merge title='{escape(title)}'>{escape(symbol)}</div>"


def _io(label: str, shape) -> str:
    text = label if label != INPUT else "input"
    return f"<div class='box io'>{escape(text)}<br>{escape(shape_text(shape))}</div>"


def _rows(graph: Graph) -> str:
    rows = []
    for row in table_rows(graph, depth=1 << 30):
        rows.append(
            f"<tr data-path=\"{escape(row.path)}\"><td style='padding-left:{4 + 12 * row.level}px'>"
            f"{escape(row.path)}</td><td>{escape(row.op)}</td><td>{escape(row.input)}</td>"
            f"<td>{escape(row.output)}</td><td class=n>{row.params:,}</td>"
            f"<td class=n>{row.macs:,}</td></tr>"
        )
    return "\n".join(rows)


STYLE = """
body { margin: 0; font: 13px Helvetica, Arial, sans-serif; color: #222; }
header { padding: 8px 16px; border-bottom: 1px solid #ddd; height: 86px; box-sizing: border-box; }
h1 { font-size: 18px; margin: 0 0 4px; }
.note { color: #888; font-weight: normal; font-size: 13px; }
header p { margin: 0 0 6px; }
button { font: inherit; margin-right: 6px; }
main { display: flex; height: calc(100vh - 86px); }
.pane { overflow: auto; padding: 12px; box-sizing: border-box; }
#graph { flex: 3; }
#side { flex: 2; border-left: 1px solid #ddd; min-width: 380px; }
#info { position: sticky; top: -12px; background: #fff; border-bottom: 1px solid #ddd;
  padding: 6px 0 8px; margin-bottom: 6px; min-height: 4.6em; }
#info b { font-family: Menlo, Consolas, monospace; }
.col { display: flex; flex-direction: column; align-items: center; }
#net { display: flex; flex-direction: column; align-items: center; width: max-content;
  min-width: 100%; }
.branches { display: flex; flex-direction: row; gap: 14px; align-items: flex-start; }
#net.lr, #net.lr .col { flex-direction: row; }
#net.lr .branches { flex-direction: column; }
.box { border: 1px solid #888; border-radius: 6px; background: #f7f7f7; padding: 3px 8px;
  white-space: nowrap; cursor: pointer; }
.box .p { color: #777; font-size: 11px; margin-left: 6px; }
.io { border-radius: 14px; background: #fff; text-align: center; }
.identity { color: #777; border-style: dashed; background: #fff; }
.skip { border: 1px dashed #aaa; border-radius: 6px; padding: 4px; }
.group { border: 1px solid #aaa; border-radius: 8px; padding: 3px 8px 6px; background: #fff; }
.group.block { background: #fbfbfb; }
.group > .head { cursor: pointer; white-space: nowrap; padding: 1px 0 3px; }
.group > .head .sum { color: #777; font-size: 11px; }
.tog::before { content: "▾ "; color: #777; }
.group.closed > .head .tog::before { content: "▸ "; }
.group.closed > .body { display: none; }
.group.closed { background: #eef3fb; }
.edge { display: flex; flex-direction: column; align-items: center; min-height: 22px; }
.edge::before { content: ""; flex: 1; border-left: 1px solid #777; min-height: 8px; }
.edge span { color: #666; font-size: 10px; padding: 1px 0; }
#net.lr .edge { flex-direction: row; min-width: 28px; min-height: 0; align-self: center; }
#net.lr .edge::before { border-left: 0; border-top: 1px solid #777; min-width: 8px; }
.merge { border: 1px solid #888; border-radius: 12px; padding: 1px 7px; font-size: 11px;
  background: #fff; margin-top: 4px; }
.sel { outline: 3px solid #e69500; outline-offset: 1px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { padding: 2px 8px; text-align: left; white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
thead th { border-bottom: 1px solid #999; position: sticky; top: 80px; background: #fff; }
#rows tr { cursor: pointer; }
#rows tr:hover { background: #f2f2f2; }
#rows tr.sel { background: #ffe9b3; outline: none; }
"""

SCRIPT = """
const net = document.getElementById("net");
const info = document.getElementById("info");
const nodeAt = (path) => net.querySelector(`[data-path="${CSS.escape(path)}"]`);
const rowAt = (path) => document.querySelector(`#rows tr[data-path="${CSS.escape(path)}"]`);

function show(el) {
  const d = el.dataset;
  info.innerHTML = "";
  const line = (label, text) => {
    const p = document.createElement("div");
    p.append(label, Object.assign(document.createElement("b"), { textContent: text }));
    info.append(p);
  };
  line("", d.op);
  line(`${d.what} `, d.path);
  line("shape: ", `${d.in} → ${d.out}`);
  line("parameters: ", `${d.params} · MACs: ${d.macs}`);
}

// The table lists what the boxes show: a row is hidden while a closed block holds its node.
function syncRows() {
  const every = document.getElementById("every-row").checked;
  const groups = every ? [] : net.querySelectorAll(".group.closed");
  const closed = [...groups].map((g) => g.dataset.path + ".");
  for (const row of document.querySelectorAll("#rows tr[data-path]")) {
    const path = row.dataset.path;
    row.hidden = closed.some((prefix) => path.startsWith(prefix));
  }
}

function select(path, reveal) {
  document.querySelectorAll(".sel").forEach((el) => el.classList.remove("sel"));
  const el = nodeAt(path), row = rowAt(path);
  if (el) {
    for (let g = el.parentElement.closest(".group"); g; g = g.parentElement.closest(".group"))
      g.classList.remove("closed");
    el.classList.add("sel");
    show(el);
    syncRows();
    if (reveal === "node") el.scrollIntoView({ block: "center", inline: "center" });
  }
  if (row) {
    row.classList.add("sel");
    if (reveal === "row") row.scrollIntoView({ block: "center" });
  }
}

net.addEventListener("click", (event) => {
  const head = event.target.closest(".group > .head");
  if (head) head.parentElement.classList.toggle("closed");
  syncRows();
  const el = event.target.closest("[data-path]");
  if (el) select(el.dataset.path, "row");
});
net.addEventListener("mouseover", (event) => {
  const el = event.target.closest("[data-path]");
  if (el) show(el);
});
document.getElementById("rows").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-path]");
  if (row) select(row.dataset.path, "node");
});
document.getElementById("open-all").onclick = () => {
  net.querySelectorAll(".group.closed").forEach((g) => g.classList.remove("closed"));
  syncRows();
};
document.getElementById("close-all").onclick = () => {
  net.querySelectorAll(".group.block").forEach((g) => g.classList.add("closed"));
  syncRows();
};
document.getElementById("every-row").onchange = syncRows;
document.getElementById("layout").onclick = () => net.classList.toggle("lr");
syncRows();
"""

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{heading}</h1>
<p>{facts}</p>
<button id="open-all">open every block</button>
<button id="close-all">close every block</button>
<button id="layout">top to bottom / left to right</button>
<span class="note">click a box to open or close it and find its row;
click a row to find its box</span>
</header>
<main>
<section id="graph" class="pane"><div id="net" class="{layout}">{boxes}</div></section>
<section id="side" class="pane">
<div id="info">hover over a box to see its shapes, parameters and arguments</div>
<label><input type="checkbox" id="every-row"> every row, closed blocks' too</label>
<table>
<thead><tr><th>path</th><th>op</th><th>input</th><th>output</th>
<th class="n">params</th><th class="n">MACs</th></tr></thead>
<tbody id="rows">
{rows}
</tbody>
</table>
</section>
</main>
<script>{script}</script>
</body>
</html>
"""

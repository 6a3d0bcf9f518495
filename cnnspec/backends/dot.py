"""The network as a picture: Graphviz DOT from the typed graph (no torch).

Stages are clusters. A block is a cluster showing its insides while fewer than `depth`
blocks enclose it, and one box beyond that (`depth=0`: every block a box).
Each combinator is drawn as what it does: branches leaving one point and meeting in a
merge node (`concat`, `+` for add, `×` for mul; `split` also where the input divides), a
residual's shortcut as a dashed edge into the sum, a DenseNet unit's input joining its
output, heads ending in one output each. Every edge is labelled with the shape it carries,
every box with its parameters.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from ..analysis.combinators import RULES
from ..analysis.graph import Graph, Node, Output, owned_path, steps
from ..language.ir import INPUT
from .summary import node_text, op_text, shape_text

# By default the network's own blocks show their insides, and blocks within them are boxes.
DEFAULT_DEPTH = 1


def to_dot(graph: Graph, depth: int = DEFAULT_DEPTH, layout: str = "tb") -> str:
    """`layout` "tb" draws top to bottom, "lr" left to right."""
    return _Picture(graph, depth, "LR" if layout == "lr" else "TB").dot()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _params(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M params"
    if count >= 1_000:
        return f"{count / 1_000:.1f}k params"
    return f"{count} params"


class _Picture:
    def __init__(self, graph: Graph, depth: int, rankdir: str):
        self.graph = graph
        self.depth = depth
        self.rankdir = rankdir
        self.lines: list[str] = []
        self.edges: list[str] = []
        self.count = 0
        self.indent = 1
        self.boxes: dict[int, str] = {}  # each layer's box, by the id of its graph node

    def dot(self) -> str:
        graph = self.graph
        self.line(f"rankdir={self.rankdir};")
        self.line(
            'node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", '
            'fontname="Helvetica", fontsize=10];'
        )
        self.line('edge [fontname="Helvetica", fontsize=9, color="#555555"];')
        source = self.node(f"input\n{shape_text(graph.input_shape)}", shape="oval")
        if graph.reads_tensors:
            out = self.steps(source)
        else:
            out = self.sequence(graph.root, "", 0, source, graph.input_shape, clusters=True)
        if out is not None:
            end = self.node(f"output\n{shape_text(graph.output_shape)}", shape="oval")
            self.edge(out, end, graph.output_shape)
        title = f"{graph.name}: {graph.params:,} parameters, {graph.macs:,} MACs"
        head = [
            "digraph " + _quote(graph.name) + " {",
            f"  label={_quote(title)};",
            '  labelloc="t";',
            '  fontname="Helvetica";',
        ]
        return "\n".join(head + self.lines + self.edges + ["}"]) + "\n"

    # --- writing ------------------------------------------------------------------------
    def line(self, text: str) -> None:
        self.lines.append("  " * self.indent + text)

    def node(self, label: str, **attrs: str) -> str:
        self.count += 1
        name = f"n{self.count}"
        extra = "".join(f", {k}={_quote(v)}" for k, v in attrs.items())
        self.line(f"{name} [label={_quote(label)}{extra}];")
        return name

    def edge(self, tail: str, head: str, shape: Output, **attrs: str) -> None:
        # Written after every cluster: a node an edge names inside a cluster joins it.
        extra = "".join(f", {k}={_quote(v)}" for k, v in attrs.items())
        self.edges.append(f"  {tail} -> {head} [label={_quote(' ' + shape_text(shape))}{extra}];")

    def open_cluster(self, label: str) -> None:
        self.count += 1
        self.line(f"subgraph cluster_{self.count} {{")
        self.indent += 1
        self.line(f"label={_quote(label)};")
        self.line('style="rounded"; color="#999999"; fontname="Helvetica";')

    def close_cluster(self) -> None:
        self.indent -= 1
        self.line("}")

    # --- the graph ----------------------------------------------------------------------
    def sequence(
        self, node: Node, path: str, level: int, at: str, shape: Output, clusters: bool = False
    ) -> str | None:
        """Draw `node`'s children one after another from `at`; return the last output."""
        for name, child in node.children:
            child_path = f"{path}.{name}" if path else name
            if clusters:  # a stage
                self.open_cluster(name)
            at = self.item(child, child_path, level, at, shape)
            if clusters:
                self.close_cluster()
            shape = child.out_shape
            if at is None:
                return None  # heads: each has its own output
        return at

    def item(self, node: Node, path: str, level: int, at: str, shape: Output) -> str | None:
        """Draw `node` from `at`; `level` counts the blocks drawn open around it."""
        if node.is_layer:
            return self.box(op_text(node), node, at, shape)
        if node.block is None:
            return self.combinator(node, path, level, at, shape)
        if level >= self.depth:
            return self.box(node_text(node, None), node, at, shape)
        self.open_cluster(f"{node_text(node, None)}\n{_params(node.params)}")
        out = self.combinator(node, path, level + 1, at, shape)
        self.close_cluster()
        return out

    def box(self, label: str, node: Node, at: str, shape: Output) -> str:
        text = label if not node.params else f"{label}\n{_params(node.params)}"
        name = self.node(text)
        self.edge(at, name, shape)
        self.boxes[id(node)] = name
        return name

    def steps(self, source: str) -> None:
        """A network of named tensors: its stages, then an oval for each output."""
        made = self.graph_lines(self.graph.root, "", 0, source, self.graph.input_shape, True)
        for name in self.graph.returns:
            tail, size = made[name]
            self.edge(tail, self.node(f"{name}\n{shape_text(size)}", shape="oval"), size)

    def graph_lines(
        self, node: Node, path: str, level: int, at: str, shape: Output, clusters: bool
    ):
        """The lines of a graph node (a network's stages, a block's named lines), each fed by
        the tensors it reads. An edge from any tensor but the line just above is a skip,
        drawn dashed where it starts the line (both sides of a join are drawn alike: either
        may be the main path); a tensor a layer reads for its size is dotted. Returns where
        each tensor is made."""
        made = {INPUT: (at, shape)}
        previous = INPUT
        for step in steps(node):
            if clusters:
                self.open_cluster(step.name)
            if step.join is not None:
                at = self.node(RULES[step.join].symbol, shape="circle", fontsize="9")
                for name in step.sources:
                    self.edge(made[name][0], at, made[name][1])
                shape = step.node.in_shape
            else:
                at, shape = made[step.sources[0]]
            if step.join is None and step.sources[0] != previous:
                tail = at
                at = self.node(step.sources[0], shape="point")  # where the skip arrives
                self.edge(tail, at, shape, style="dashed")
            line = step.node
            line_path = f"{path}.{step.name}" if path else step.name
            out = at if line.kind == "seq" and not line.children else None
            if out is None:
                out = self.item(line, line_path, level, at, shape)
            for position, names in step.readers:
                reader = line if position == -1 else line.children[position][1]
                for name in names:
                    tail, size = made[name]
                    self.edge(tail, self.boxes[id(reader)], size, style="dotted")
            if clusters:
                self.close_cluster()
            made[step.name], previous = (out, line.out_shape), step.name
        return made

    def combinator(self, node: Node, path: str, level: int, at: str, shape: Output):
        """A combinator drawn as its class says: branches meeting at its symbol, units
        joining the input in turn, or each branch an output of its own."""
        if node.kind == "seq":
            return self.sequence(node, path, level, at, shape)
        if node.kind == "graph":  # a block of named lines: it returns its last
            made = self.graph_lines(node, path, level, at, shape, clusters=False)
            return made[node.outputs[0]][0]
        kind = RULES[node.kind]
        if kind.layout == "outputs":
            for name, head in node.children:
                end = self.item(head, f"{path}.{name}", level, at, shape)
                out = self.node(f"{name}\n{shape_text(head.out_shape)}", shape="oval")
                if end is not None:
                    self.edge(end, out, head.out_shape)
            return None
        if kind.layout == "chain":  # each unit's output is concatenated onto its input
            for name, unit in node.children:
                end = self.item(unit, f"{path}.{name}", level, at, shape)
                merge = self.node(kind.symbol, shape="circle", fontsize="9")
                self.edge(end, merge, unit.out_shape)
                self.edge(at, merge, shape, style="dashed")
                at, shape = merge, _concat(shape, unit.out_shape)
            return at
        merge = self.node(kind.symbol, shape="circle", fontsize="9")
        start = at
        if any(branch.in_shape != shape for _, branch in node.children):
            start = self.node(node.kind, shape="circle", fontsize="9")  # split: the chunks
            self.edge(at, start, shape)
        for i, (name, branch) in enumerate(node.children):
            end = self.item(branch, f"{path}.{name}", level, start, branch.in_shape)
            for own, count in node.own_params if i == 0 else ():  # scaling the branch
                box = self.node(f"{own}\n{_params(count)}")
                self.edge(end, box, branch.out_shape)
                end = box
            self.edge(end, merge, branch.out_shape)
        owned = dict(node.owned)
        if kind.skips(node):
            skip, size = at, shape
            through = owned.get(kind.skip_through or "")
            if through is not None:  # a residual's projection, on the skip
                skip, size = self.box(op_text(through), through, at, shape), through.out_shape
            self.edge(skip, merge, size, style="dashed")
        for name, layers in node.owned:
            if name != kind.skip_through:  # layers it owns beside its branches
                end = self.item(layers, owned_path(path, name), level, merge, node.out_shape)
                self.edge(end, merge, layers.out_shape, style="dotted")
        return merge


def _concat(a: Output, b: Output) -> Output:
    return (a[0] + b[0], *a[1:])  # type: ignore[operator]


class GraphvizMissing(Exception):
    """Graphviz cannot draw the picture: its `dot` program is not installed, it failed,
    or the picture is larger than it lays out in seconds."""


# Graphviz's layout grows faster than the picture: 1,000 boxes in a chain take it about 2 s,
# 2,000 about 11 s, 4,000 minutes. A picture past MAX_BOXES (boxes and clusters) is refused
# before it starts, and one that still runs past MAX_SECONDS is stopped.
MAX_BOXES = 1_000
MAX_SECONDS = 60


def boxes(dot: str) -> int:
    """The boxes and clusters a DOT text of `to_dot` draws (each is one line there)."""
    return len(re.findall(r"^\s*(?:n\d+ \[|subgraph cluster_)", dot, re.MULTILINE))


def render(dot: str, fmt: str) -> bytes:
    """`dot` drawn by Graphviz as `fmt` ("svg" or "png"), within the bounds above."""
    max_boxes, seconds = MAX_BOXES, MAX_SECONDS
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissing(
            "drawing .svg or .png needs Graphviz's `dot` program: install it with "
            "`apt-get install graphviz` (or `brew install graphviz`), or write a .dot file"
        )
    count = boxes(dot)
    if count > max_boxes:
        raise GraphvizMissing(
            f"the picture has {count:,} boxes, more than the {max_boxes:,} Graphviz lays out "
            "in seconds: draw blocks as boxes (--depth 0) or write a .dot file"
        )
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=seconds
        )
    except subprocess.TimeoutExpired:  # the child is killed before this is raised
        raise GraphvizMissing(
            f"Graphviz was stopped after {seconds:g} s without a picture: draw blocks as "
            "boxes (--depth 0) or write a .dot file"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no reason given"]
        raise GraphvizMissing(f"Graphviz failed: {lines[0]}")
    return done.stdout

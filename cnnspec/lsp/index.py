"""The typed graph read back by where things are written: every node that a call, a
combinator or a stage of this file made, found by the position of its name.

A call written once may make many nodes (a repeat, a block called from several places);
each is kept with its module path. Nodes written in other files are left out: their
positions are in those files. An index of a used file's nodes, in a network that uses it,
shows that file's blocks at work.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..analysis.graph import Graph, Node, child_path
from ..errors import Pos


@dataclass(frozen=True)
class Made:
    """A node of the network, with its module path ("" for the network itself)."""

    path: str
    node: Node


class Index:
    """`graph`'s nodes written in `file`: a used file's name, or None for the spec's own."""

    def __init__(self, graph: Graph, file: str | None = None, within: str | None = None):
        self.graph = graph
        self.within = within  # the spec whose network this is, when not the file's own
        self.at: dict[Pos, list[Made]] = defaultdict(list)
        # Each block's lines by name, in every place the block is called (its node)
        self.lines: dict[tuple[str | None, str], list[Made]] = defaultdict(list)
        self.stages = {name: Made(name, node) for name, node in graph.root.children}
        self.instances: dict[str, list[Made]] = defaultdict(list)
        stack: list[tuple[str, Node, str | None]] = [
            (name, node, None) for name, node in reversed(graph.root.children)
        ]
        while stack:
            path, node, block = stack.pop()
            if node.file == file:
                self.at[node.pos].append(Made(path, node))
            if node.called_at is not None and node.called_at[0] == file:  # a one-layer block
                self.at[node.called_at[1]].append(Made(path, node))
            if node.block is not None:
                self.instances[node.block].append(Made(path, node))
                block = node.block
            if node.kind == "graph":
                for name, line in node.children:
                    self.lines[(block, name)].append(Made(child_path(node, path, name), line))
            stack.extend(
                (child_path(node, path, name), child, block)
                for name, child in reversed(node.children)
            )

    def made_at(self, pos: Pos) -> list[Made]:
        return self.at.get(pos, [])

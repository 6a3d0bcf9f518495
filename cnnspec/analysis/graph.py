"""The typed graph: what shape inference knows about every node of a network.

The tree has the structure of the module the backends build, so a node's path is also its
module path and the prefix of its state_dict keys:

- a body written as one item (not a repeat) *is* that item; any other body is a sequence
  numbered `0, 1, ...` (after repeats are expanded);
- a stage is named by the spec (`b1`, `head`), and the network is the sequence of its stages;
- a combinator keeps its branches under `branches` (numbered, or named by the spec), and
  the layers it owns beside them under their own names, after the branches (an `add`
  whose shortcut needs a 1x1 projection keeps it under `shortcut`); `add` with `scale=`
  holds its own `layer_scale` parameter, ahead of its branches; `res2` holds its copies
  of one branch layer by layer, copy i's layer j under `layers.j.i` (a copy's own path,
  which no module has, reads `layers.*.i`).

So `b3.0.branches.1.2.weight` is stage b3, its first item (an inception block), branch 1,
layer 2 of that branch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import Pos
from ..language.ir import INPUT, Recipe
from .ops import Layer, Shape, fmt

Output = Shape | tuple[Shape, ...]  # several shapes after `heads`


@dataclass(frozen=True)
class Node:
    kind: str  # "layer", "seq", "graph", or a combinator kind
    label: str  # what the summary calls it: the op, block or stage name
    in_shape: Shape
    out_shape: Output
    params: int
    macs: int
    pos: Pos
    layer: Layer | None = None  # set for kind == "layer"
    # The file `pos` is in when it is not the spec's own text: a used file's name, or the
    # prelude's, for what the body of a block written there makes. A block's node stands
    # at its call, so it has the caller's file; a block of one layer is that layer, in
    # the block's file.
    file: str | None = None
    # A block whose body is one layer is that layer's node: where the block is called,
    # (the file, as `file` names it, and the position), when the layer came so.
    called_at: tuple[str | None, Pos] | None = None
    children: tuple[tuple[str, Node], ...] = ()
    # A combinator: the layers it owns beside its branches (add's 1x1 `shortcut`), and the
    # options its module is made with, as inference decided them (add's `scale`).
    owned: tuple[tuple[str, Node], ...] = ()
    options: tuple[tuple[str, object], ...] = ()
    # Parameters a combinator holds itself, not in a layer: (state_dict name, count), as
    # add(scale=)'s `layer_scale`. Its `params` counts them; the summary gives each a row.
    own_params: tuple[tuple[str, int], ...] = ()
    # A combinator whose branches are copies of one branch, held layer by layer (`res2`):
    # copy i's layer j is at `layers.j.i`, so every copy's first layer comes first.
    by_layer: bool = False
    block: str | None = None  # the block this node is an instance of, if any
    args: tuple[tuple[str, object], ...] = ()  # that block's evaluated arguments
    # the arguments written at its call, each with whether by name (others: defaults)
    given: tuple[tuple[str, bool], ...] = ()
    # The conditions its own body decided, each with the values it read: code that writes
    # the node out with concrete sizes holds only for values that decide alike.
    decided: tuple[str, ...] = ()
    # A stage of a network that reads named tensors: what it starts from (the tensor, or
    # the tensors its join combines), and the join (concat, add or mul) when several.
    sources: tuple[str, ...] = ()
    join: str | None = None
    # kind == "graph" (lines that name their outputs): the names of the tensors it returns
    outputs: tuple[str, ...] = ()

    @property
    def is_layer(self) -> bool:
        return self.kind == "layer"

    def reads(self) -> tuple[str, ...]:
        """The other tensors this node's own layer reads when it runs (`like=`)."""
        return self.layer.reads() if self.layer is not None else ()


def child_path(parent: Node, parent_path: str, name: str) -> str:
    """The module path of `parent`'s child called `name`. A copy held layer by layer has
    no module of its own: its path holds `*` where its layers' positions go."""
    if parent.kind in ("seq", "graph"):
        if "*" in parent_path:  # layer `name` of a copy held layer by layer
            return parent_path.replace("*", name, 1)
        inner = name
    elif parent.by_layer:
        layers = "*" if dict(parent.children)[name].kind == "seq" else "0"
        inner = f"layers.{layers}.{name}"
    else:
        inner = f"branches.{name}"  # a combinator's
    return f"{parent_path}.{inner}" if parent_path else inner


def owned_path(parent_path: str, name: str) -> str:
    """The module path of a layer a combinator owns: `b1.0.shortcut`."""
    return f"{parent_path}.{name}" if parent_path else name


@dataclass(frozen=True)
class Step:
    """One stage of a network that reads named tensors."""

    name: str  # the stage, and the tensor it makes
    sources: tuple[str, ...]  # the tensors it starts from
    join: str | None  # how several sources are joined: concat, add or mul
    readers: tuple[tuple[int, tuple[str, ...]], ...]  # its layers that read other tensors
    node: Node


@dataclass(frozen=True)
class Graph:
    name: str
    input_shape: Shape
    classes: int
    root: Node  # a "seq" of the stages, or a "graph" where they read named tensors
    recipe: Recipe

    @property
    def reads_tensors(self) -> bool:
        """Whether a stage reads a tensor other than the previous stage's output, or the
        network names its outputs: it then runs as a graph of named tensors."""
        return self.root.kind == "graph"

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.root.outputs

    @property
    def output_shape(self) -> Output:
        return self.root.out_shape

    @property
    def params(self) -> int:
        return self.root.params

    @property
    def macs(self) -> int:
        return self.root.macs

    def steps(self) -> list[Step]:
        return steps(self.root)

    @property
    def returns(self) -> tuple[str, ...]:
        """The names of the tensors the network returns."""
        return self.outputs or (self.root.children[-1][0],)

    def walk(self) -> Iterator[tuple[str, int, Node]]:
        """Every node below the root, in forward order: (path, depth, node). Iterative,
        so a network of many thousand layers walks without deep recursion."""
        stack: list[tuple[str, int, Node]] = [
            (name, 0, child) for name, child in reversed(self.root.children)
        ]
        while stack:
            path, depth, node = stack.pop()
            yield path, depth, node
            below: list[tuple[str, int, Node]] = [
                (child_path(node, path, name), depth + 1, child) for name, child in node.children
            ]
            below.extend((owned_path(path, name), depth + 1, owned) for name, owned in node.owned)
            stack.extend(reversed(below))

    def layers(self) -> list[tuple[str, Node]]:
        """The leaf layers with their module paths, in forward order."""
        return [(path, node) for path, _, node in self.walk() if node.is_layer]


@dataclass(frozen=True)
class Flow:
    """The tensor between two layers: its shape, and what made it (for error messages)."""

    shape: Output
    made_by: str = "the network input"
    pos: Pos = (0, 0)

    def origin(self) -> str:
        where = f" at {self.pos[0]}:{self.pos[1]}" if self.pos[0] else ""
        return f"{self.made_by}{where}"


def steps(node: Node) -> list[Step]:
    """A graph node's lines as steps, in forward order: what each reads first (the line
    before, unless it names its sources) and how it joins them."""
    found, previous = [], INPUT
    for name, line in node.children:
        sources = line.sources or (previous,)
        found.append(Step(name, sources, line.join, stage_readers(line), line))
        previous = name
    return found


def stage_readers(stage: Node) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """The layers of a stage that read other tensors, as (position, names): position -1
    when the stage is that one layer, else its place in the stage's sequence."""
    if stage.reads():
        return ((-1, stage.reads()),)
    if stage.kind != "seq":
        return ()
    return tuple((i, child.reads()) for i, (_, child) in enumerate(stage.children) if child.reads())


def describe_output(shape: Output) -> str:
    if shape and isinstance(shape[0], tuple):
        return "(" + ", ".join(fmt(s) for s in shape) + ")"
    return fmt(shape)  # type: ignore[arg-type]


def group(kind, label, in_shape, children, pos, out_shape=None) -> Node:
    children = tuple((str(name), node) for name, node in children)
    if out_shape is None:
        out_shape = children[-1][1].out_shape if children else in_shape
    return Node(
        kind,
        label,
        in_shape,
        out_shape,
        sum(n.params for _, n in children),
        sum(n.macs for _, n in children),
        pos,
        children=children,
    )

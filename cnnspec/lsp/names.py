"""What the language's names are, as hover and completion show them: layers with their
arguments and defaults, blocks with their parameters, combinators, the names every
expression may read, and the figures of a node of the network. Layers and combinators
say what they do in their own classes' docstrings."""

from __future__ import annotations

from ..analysis.combinators import RULES
from ..analysis.graph import Node
from ..analysis.ops import LAYERS
from ..backends.summary import shape_text
from ..language import ir
from ..language.expressions import FUNCTIONS, unparse
from ..language.parse_cnn import PRELUDE


def combinators() -> dict[str, str]:
    """Each combinator with what it does: the first paragraph of its class's docstring."""
    return {kind: _first_paragraph(rule.__doc__ or "") for kind, rule in RULES.items()}


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())


SHAPE_NAMES = {
    "C": "the channels of the tensor this layer receives",
    "H": "the height of the tensor this layer receives",
    "W": "the width of the tensor this layer receives",
    "C_in": "the channels of the block's input (the network's, outside a block)",
    "H_in": "the height of the block's input (the network's, outside a block)",
    "W_in": "the width of the block's input (the network's, outside a block)",
    "classes": "the network's number of classes",
}

KEYWORDS = ("block", "network", "use", "train", "if", "else", "for", "outputs")


def default_text(value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    return value if isinstance(value, str) else repr(value)


def layer_arguments(op: str) -> list[tuple[str, str | None]]:
    """A layer's arguments in positional order, each with its default as text (None when
    it must be given)."""
    fields = LAYERS[op].model_fields
    return [
        (name, None if f.is_required() else default_text(f.default)) for name, f in fields.items()
    ]


def layer_signature(op: str) -> str:
    args = [name if d is None else f"{name}={d}" for name, d in layer_arguments(op)]
    return f"{op}({', '.join(args)})" if args else op


def block_arguments(block: ir.BlockDef) -> list[tuple[str, str | None]]:
    return [(p.name, None if p.default is None else unparse(p.default)) for p in block.params]


def block_signature(block: ir.BlockDef) -> str:
    args = [name if d is None else f"{name}={d}" for name, d in block_arguments(block)]
    return f"{block.name}({', '.join(args)})"


def function_signature(name: str) -> str:
    params, _ = FUNCTIONS[name]
    return f"{name}({', '.join(params) if params is not None else 'a, b, ...'})"


def where(file: str | None) -> str:
    """The file a block is written in, as a reader knows it."""
    if file is None:
        return "this file"
    return "the built-in blocks" if file == PRELUDE else f"`{file}`"


def number(n: int) -> str:
    return f"{n:,}"


def figures(node: Node) -> str:
    """`1x96x96 → 64x48x48 · 3,200 params · 7,225,344 MACs`"""
    return (
        f"{shape_text(node.in_shape)} → {shape_text(node.out_shape)} · "
        f"{number(node.params)} params · {number(node.macs)} MACs"
    )

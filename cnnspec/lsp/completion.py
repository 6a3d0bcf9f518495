"""Completion: what may be written where the cursor is.

In a call's argument list, the arguments not yet given (with their defaults) and the names
an expression may read; after `mode=`, `like=` and such, the words or tensors the argument
takes. Elsewhere, the layers, the blocks in scope (built in, used, defined here), the
combinators and the names of tensors a stage may start from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args, get_origin

from ..analysis.ops import LAYERS
from ..errors import Pos
from ..language import ir
from ..language.expressions import FUNCTIONS, unparse
from .documents import Analysis
from .names import (
    KEYWORDS,
    SHAPE_NAMES,
    block_arguments,
    block_signature,
    combinators,
    default_text,
    function_signature,
    layer_arguments,
    layer_signature,
    where,
)
from .scope import enclosing_block
from .text import Text

_RECIPE = [f for f in ir.Recipe.model_fields if f not in ir.METADATA_KEYS]
# The recipe's options that take words: `optimizer=adamw`, `init=default`.
_RECIPE_WORDS = {
    f: get_args(ir.Recipe.model_fields[f].annotation)
    for f in _RECIPE
    if get_origin(ir.Recipe.model_fields[f].annotation) is Literal
}
# The separator of an argument's name from its value: `k=3` in .cnn, `k: 3` in YAML.
_SEPARATOR = {"cnn": "=", "yaml": ":"}


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # layer, block, combinator, keyword, argument, parameter, name, word, tensor
    detail: str = ""
    documentation: str = ""
    insert: str | None = None  # what is written, when not the label


def complete(analysis: Analysis, now: Text, pos: Pos) -> list[Item]:
    """`analysis` is the latest that parsed (it knows the blocks and parameters); `now` is
    the text as it is while being typed."""
    call = now.enclosing_call(pos)
    if call is not None:
        start, name, typed = call
        found = _in_call(analysis, now, start, name, typed, pos)
        if found is not None:
            return found
    line = now.line(pos[0])[: pos[1] - 1]
    if re.search(r"(\*|\bif|\bin)\s*\w*$", line):  # a repeat count, a condition, a table
        return _expression_names(analysis, pos)
    return _items(analysis, pos, at_line_start=not line.strip())


def _in_call(analysis: Analysis, now: Text, start: Pos, name: str, typed: str, pos: Pos):
    fmt = now.fmt
    separator = "=" if fmt == "cnn" else ":"
    value = re.match(rf"\s*([A-Za-z_]\w*)\s*{separator}", typed)
    if value:  # a value, of the argument named before it
        return _values(analysis, name, value.group(1), pos)
    if name in LAYERS:
        arguments = layer_arguments(name)
        doc = layer_signature(name)
    elif name in analysis.blocks:
        block = analysis.blocks[name].definition
        arguments = block_arguments(block)
        doc = block_signature(block)
    elif name == "train":
        arguments = [(f, default_text(ir.Recipe.model_fields[f].default)) for f in _RECIPE]
        doc = "the training recipe"
    elif analysis.doc is not None and name == analysis.doc.network.name:
        arguments = [("input", None), ("classes", "10")]
        doc = "the network's options; any other name is a network parameter"
    elif name in FUNCTIONS:
        return _expression_names(analysis, pos)
    else:
        return None
    by_position, by_name = _given(now, start, pos, separator)
    items = [
        Item(
            f"{arg}{separator}",
            "argument",
            "required" if default is None else f"default {default}",
            doc,
            f"{arg}{separator}" if fmt == "cnn" else f"{arg}: ",
        )
        for arg, default in arguments[by_position:]
        if arg not in by_name
    ]
    return items + _expression_names(analysis, pos)


def _given(now: Text, start: Pos, pos: Pos, separator: str) -> tuple[int, set[str]]:
    """How many arguments the call gives by position before the cursor, and the names of
    those it gives by name."""
    written = now.between(start, pos)
    code = written.split("(", 1)[1] if separator == "=" else written.split(":", 1)[1]
    arguments = _top_level(code)[:-1]  # those before the one at the cursor
    named = [re.match(rf"\s*([A-Za-z_]\w*)\s*{separator}", a) for a in arguments]
    by_name = {m.group(1) for m in named if m}
    if separator == "=":
        return sum(1 for m in named if not m), by_name
    # YAML: the layer's key holds its positional arguments, one value or a list of them
    first = arguments[0].strip() if arguments else ""
    if first.startswith("["):
        return len([a for a in _top_level(first[1:].rstrip("]")) if a.strip()]), by_name
    return int(bool(first)), by_name


def _top_level(code: str) -> list[str]:
    """`code` split at the commas outside brackets."""
    parts, depth, current = [], 0, ""
    for char in code:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _values(analysis: Analysis, op: str, argument: str, pos: Pos) -> list[Item]:
    if op == "train" and argument in _RECIPE_WORDS:
        return [Item(w, "word", f"train {argument}") for w in _RECIPE_WORDS[argument]]
    layer = LAYERS.get(op)
    if layer is not None and argument in layer.words():
        return [Item(w, "word", f"{op} {argument}") for w in layer.words()[argument]]
    if layer is not None and argument in layer.tensor_fields:
        return _tensors(analysis, pos)
    return _expression_names(analysis, pos)


def _expression_names(analysis: Analysis, pos: Pos) -> list[Item]:
    """What an expression may read here: the block's parameters (or the network's), the
    shape names, classes, and the functions."""
    items: list[Item] = []
    doc = analysis.doc
    if doc is not None:
        block = enclosing_block(doc, pos)
        if block is not None:
            for name, default in block_arguments(block):
                detail = f"parameter of {block.name}" + (f", default {default}" if default else "")
                items.append(Item(name, "parameter", detail))
        else:
            items += [
                Item(kw.name, "parameter", f"network parameter = {unparse(kw.value)}")
                for kw in doc.network.params
            ]
    items += [Item(name, "name", doc) for name, doc in SHAPE_NAMES.items()]
    items += [Item(name, "function", function_signature(name)) for name in FUNCTIONS]
    return items


def _tensors(analysis: Analysis, pos: Pos) -> list[Item]:
    """The tensors a stage (or a block's named line) may read: the input and the others."""
    doc = analysis.doc
    items = [Item(ir.INPUT, "tensor", "the input")]
    if doc is None:
        return items
    block = enclosing_block(doc, pos)
    if block is not None:
        names = [(i.name, i.pos) for i in block.body if isinstance(i, ir.Line)]
        what = f"a line of {block.name}"
    else:
        names = [(s.name, s.pos) for s in doc.network.stages]
        what = "a stage"
    return items + [Item(name, "tensor", what) for name, at in names if at < pos]


def _items(analysis: Analysis, pos: Pos, at_line_start: bool) -> list[Item]:
    items = [Item(op, "layer", layer_signature(op), LAYERS[op].doc()) for op in sorted(LAYERS)]
    for name, site in sorted(analysis.blocks.items()):
        detail = f"block {block_signature(site.definition)}"
        items.append(Item(name, "block", detail, f"defined in {where(site.file)}"))
    items += [Item(kind, "combinator", doc) for kind, doc in combinators().items()]
    items += _tensors(analysis, pos)
    if at_line_start:
        items += [Item(word, "keyword") for word in KEYWORDS]
    return items

"""Hover: at a layer, a block call, a combinator or a stage, what the network does there
(input -> output shape, parameters, MACs, for each place it makes); at a block's or a
parameter's name, its definition; at a layer name, the layer's arguments."""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.ops import LAYERS
from ..backends.summary import node_text, shape_text
from ..errors import Pos
from ..language import ir
from ..language.expressions import describe, unparse
from .documents import Analysis, BlockSite
from .index import Index, Made
from .names import (
    SHAPE_NAMES,
    block_signature,
    combinators,
    figures,
    layer_signature,
    number,
    where,
)
from .scope import enclosing_block
from .text import Text

# Places listed in one hover; the rest are counted.
MAX_ROWS = 12


@dataclass(frozen=True)
class Hover:
    markdown: str
    start: Pos
    end: Pos


def hover(analysis: Analysis, index: Index | None, pos: Pos) -> Hover | None:
    text = analysis.lines
    word = text.word(pos)
    doc = analysis.doc
    if word is not None:
        start, end, name = word
        if index is not None:
            shown = _named_line(analysis, index, start, name)
            if shown is not None:
                return Hover(shown, start, end)
            found = _made(index, start)
            if found:
                return _hover(text, found, start, index.within)
        if doc is not None:
            shown = _definition(analysis, index, start, name)
            if shown is not None:
                return Hover(shown, start, end)
    call = text.enclosing_call(pos)
    if call is not None and index is not None:
        found = _made(index, call[0])
        if found:
            return _hover(text, found, call[0], index.within)
    return None


def _hover(text: Text, found: list[Made], start: Pos, within: str | None) -> Hover:
    end = text.extent(start)[1]
    written = text.between(start, end) if end[0] == start[0] else text.word(start)[2]
    shown = _places(found, " ".join(written.split()))
    if within is not None:
        shown += f"\n\nin network {within}"
    return Hover(shown, start, end)


def _made(index: Index, pos: Pos) -> list[Made]:
    """What was made at `pos`: the layers, blocks and combinators written there, else the
    sequence (a stage, a line, a branch) that starts there."""
    found = index.made_at(pos)
    own = [m for m in found if m.node.kind not in ("seq", "graph")]
    return own or found


def _places(found: list[Made], written: str) -> str:
    """The figures of what one call (or stage) made: of each place, when it made several."""
    first = found[0]
    if len(found) == 1:
        at = f" · `{first.path}`" if first.path else ""
        title = f"**{_label(first)}**"
        if first.node.called_at is not None:  # a block of one layer, called here
            title = f"**{written}**: `{_label(first)}`"
        return f"{title}{at}\n\n{figures(first.node)}"
    total = sum(m.node.params for m in found)
    macs = sum(m.node.macs for m in found)
    rows = [
        f"**{written}** · made in {len(found)} places: {number(total)} params, {number(macs)} MACs",
        "",
        "| path | as | input → output | params | MACs |",
        "|---|---|---|---:|---:|",
    ]
    for made in found[:MAX_ROWS]:
        node = made.node
        rows.append(
            f"| `{made.path}` | `{_label(made)}` | {shape_text(node.in_shape)} → "
            f"{shape_text(node.out_shape)} | {number(node.params)} | {number(node.macs)} |"
        )
    if len(found) > MAX_ROWS:
        rows.append(f"| … {len(found) - MAX_ROWS} more | | | | |")
    return "\n".join(rows)


def _label(made: Made) -> str:
    node = made.node
    if node.block is None and node.kind in ("seq", "graph"):
        return node.label  # a stage, a named line or branch, or "branch"
    return node_text(node, None)


def _named_line(analysis: Analysis, index: Index, start: Pos, name: str) -> str | None:
    """A stage's name, or a named line's in a block: what it makes, in each place."""
    doc = analysis.doc
    if doc is None:
        return None
    for stage in doc.network.stages:
        if stage.pos == start and stage.name == name and name in index.stages:
            made = index.stages[name]
            return f"**stage {name}** · `{made.path}`\n\n{figures(made.node)}"
    block = enclosing_block(doc, start)
    if block is None:
        return None
    lines = [i for i in block.body if isinstance(i, ir.Line) and i.pos == start and i.name == name]
    if not lines:
        return None
    found = index.lines.get((block.name, name), [])
    if not found:
        return None
    if len(found) == 1:
        return f"**line {name}** of {block.name} · `{found[0].path}`\n\n{figures(found[0].node)}"
    rows = [f"**line {name}** of {block.name}, in {len(found)} places", ""]
    rows += [f"- `{m.path}`: {figures(m.node)}" for m in found[:MAX_ROWS]]
    return "\n".join(rows)


def _definition(analysis: Analysis, index: Index | None, start: Pos, name: str) -> str | None:
    """A name's definition: a block, a parameter, a layer, a combinator, a shape name."""
    doc = analysis.doc
    assert doc is not None
    block = enclosing_block(doc, start)
    if block is not None:
        for param in block.params:
            if param.name == name:
                return _parameter(block, param, index)
    for kw in doc.network.params:
        if kw.name == name:
            return f"**{name}** = `{unparse(kw.value)}` · a parameter of network {doc.network.name}"
    site = analysis.blocks.get(name)
    if site is not None:
        return _block(analysis, site, index)
    if name in LAYERS:
        return f"```\n{layer_signature(name)}\n```\n{LAYERS[name].doc()}"
    if name in combinators():
        return f"**{name}**: {combinators()[name]}"
    if name == "classes":
        return f"**classes** = {doc.network.classes}: {SHAPE_NAMES[name]}"
    if name in SHAPE_NAMES:
        return f"**{name}**: {SHAPE_NAMES[name]}"
    return None


def _parameter(block: ir.BlockDef, param: ir.Param, index: Index | None) -> str:
    default = f" = `{unparse(param.default)}`" if param.default is not None else ""
    lines = [f"**{param.name}**{default} · a parameter of `{block_signature(block)}`"]
    if index is not None:
        values = []
        for made in index.instances.get(block.name, []):
            value = dict(made.node.args).get(param.name)
            text = describe(value)
            if text not in values:
                values.append(text)
        if values:
            shown = ", ".join(values[:MAX_ROWS]) + (", …" if len(values) > MAX_ROWS else "")
            lines.append(f"\nvalues where it is called: {shown}")
    return "\n".join(lines)


def _block(analysis: Analysis, site: BlockSite, index: Index | None) -> str:
    block = site.definition
    lines = [f"```\nblock {block_signature(block)}\n```", f"defined in {where(site.file)}"]
    text = analysis.file_text(site.file)
    if text is not None:
        comment = " ".join(text.comments_above(block.pos[0]))
        if comment:
            lines.append(f"\n{comment}")
    if index is not None:
        found = index.instances.get(block.name, [])
        if found:
            lines.append(f"\ncalled in {len(found)} place{'s' * (len(found) != 1)}")
    return "\n".join(lines)

"""Where a position is in a spec: inside which block definition, and which names its
expressions may read there."""

from __future__ import annotations

from ..errors import Pos
from ..language import ir


def top_level(doc: ir.Document) -> list[tuple[Pos, object]]:
    """The file's own items (uses, blocks, the network, the recipe) by where they start."""
    items: list[tuple[Pos, object]] = [(use.pos, use) for use in doc.uses]
    items += [(block.pos, block) for block in doc.blocks]
    if doc.network.pos != (0, 0) and doc.network.stages:
        items.append((doc.network.pos, doc.network))
    if "keypos" in doc.train.model_fields_set:  # written, not the default recipe
        items.append((doc.train.pos, doc.train))
    return sorted(items, key=lambda item: item[0])


def enclosing_block(doc: ir.Document, pos: Pos) -> ir.BlockDef | None:
    """The block of this file whose definition holds `pos`."""
    found = None
    for start, item in top_level(doc):
        if start > pos:
            break
        found = item
    return found if isinstance(found, ir.BlockDef) else None


def next_start(doc: ir.Document, pos: Pos) -> Pos | None:
    """Where the first top-level item after `pos` starts."""
    return next((start for start, _ in top_level(doc) if start > pos), None)

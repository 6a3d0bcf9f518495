"""Go to definition: from a block's name to its `block` line (in this file, a used file
or the built-in blocks), from a parameter to where it is declared, from a tensor's name to
the stage or line that makes it, and from a `use` line to the file it names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import Pos
from ..language import ir
from .documents import Analysis, file_path
from .scope import enclosing_block


@dataclass(frozen=True)
class Place:
    file: Path
    start: Pos
    end: Pos


def definition(analysis: Analysis, pos: Pos) -> Place | None:
    doc = analysis.doc
    if doc is None:
        return None
    here = Path(analysis.path)
    for use in doc.uses:
        if use.pos[0] == pos[0]:
            return Place(_used_path(here, use.path), (1, 1), (1, 1))
    word = analysis.lines.word(pos)
    if word is None:
        return None
    start, _, name = word
    block = enclosing_block(doc, start)
    if block is not None:
        for param in block.params:
            if param.name == name:
                return _at(here, param.pos, name)
        for item in block.body:
            if isinstance(item, ir.Line) and item.name == name and item.pos < start:
                return _at(here, item.pos, name)
    else:
        for kw in doc.network.params:
            if kw.name == name:
                return _at(here, kw.pos, name)
        for stage in doc.network.stages:
            if stage.name == name and stage.pos < start:
                return _at(here, stage.pos, name)
    site = analysis.blocks.get(name)
    if site is not None:
        file = here if site.file is None else file_path(site.file)
        return _at(file, site.definition.pos, name)
    return None


def _at(file: Path, pos: Pos, name: str) -> Place:
    return Place(file, pos, (pos[0], pos[1] + len(name)))


def _used_path(here: Path, written: str) -> Path:
    return (here.parent / written).resolve()

"""Document symbols: the network with its stages, each block with its named lines, the
`use` lines and the training recipe, each spanning the lines it is written on."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Pos
from ..language import ir
from .documents import Analysis
from .names import block_signature
from .scope import next_start, top_level


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # network, stage, block, line, use, train
    detail: str
    start: Pos  # where the item is written, to where it ends
    end: Pos
    name_start: Pos
    name_end: Pos
    children: list[Symbol] = field(default_factory=list)


def symbols(analysis: Analysis) -> list[Symbol]:
    doc = analysis.doc
    if doc is None:
        return []
    text = analysis.lines
    found = []
    for start, item in top_level(doc):
        stop = next_start(doc, start)
        end = text.last_code_before(stop[0] if stop else len(text.lines) + 1, start)
        if isinstance(item, ir.BlockDef):
            lines = [i for i in item.body if isinstance(i, ir.Line)]
            children = _spans(analysis, [(i.name, i.pos) for i in lines], "line", end)
            found.append(_symbol(item.name, "block", block_signature(item), start, end, children))
        elif isinstance(item, ir.Network):
            stages = [(s.name, s.pos) for s in item.stages]
            children = _spans(analysis, stages, "stage", end)
            shape = "x".join(map(str, item.input))
            found.append(_symbol(item.name, "network", f"input {shape}", start, end, children))
        elif isinstance(item, ir.Use):
            found.append(_symbol(item.path, "use", "", start, end))
        elif isinstance(item, ir.Recipe):
            found.append(_symbol("train", "train", "", start, end))
    return found


def _spans(analysis: Analysis, named: list[tuple[str, Pos]], kind: str, last: Pos) -> list:
    text = analysis.lines
    out = []
    for i, (name, pos) in enumerate(named):
        stop = named[i + 1][1][0] if i + 1 < len(named) else last[0] + 1
        end = text.last_code_before(stop, pos)
        out.append(_symbol(name, kind, "", pos, end))
    return out


def _symbol(name, kind, detail, at: Pos, end: Pos, children=None) -> Symbol:
    """A symbol whose name is written at `at`: a top-level item spans its lines from their
    first column, a stage or a line from its name."""
    name_end = (at[0], at[1] + len(name))
    start = (at[0], 1) if kind in ("network", "block", "use", "train") else at
    return Symbol(name, kind, detail, start, max(end, name_end), at, name_end, children or [])

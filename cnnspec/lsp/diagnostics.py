"""The compiler's error as editor diagnostics, one per file it concerns.

The compiler stops at the first error and says where it is: (line, column) in the file
that holds it, which may be a used file. The diagnostic spans the token there (a call's
name and arguments, a name, a number). An error in a used file is shown in that file and,
in the spec, at the `use` line or the block call that led to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CnnspecError, Pos
from .documents import Analysis, format_of
from .text import Text


@dataclass(frozen=True)
class Related:
    file: str
    start: Pos
    end: Pos
    message: str


@dataclass(frozen=True)
class Problem:
    start: Pos
    end: Pos
    message: str
    kind: str  # the error's class: SpecSyntaxError, SpecError, ShapeError, LimitError
    related: tuple[Related, ...] = ()


def problems(analysis: Analysis) -> dict[str, list[Problem]]:
    """The analysis's error as problems, by the name of the file each is in."""
    err = analysis.error
    if err is None:
        return {}
    kind = type(err).__name__
    here = analysis.path
    file = err.source.name if err.source is not None else here
    if file == here:
        start, end = analysis.lines.extent(err.pos)
        related = tuple(
            Related(here, *analysis.lines.extent(pos), "from the call here")
            for name, pos in err.via
            if name is None and pos != err.pos
        )
        return {here: [Problem(start, end, err.message, kind, related)]}
    text = Text(err.source.text if err.source else "", format_of(file))
    start, end = text.extent(err.pos)
    inside = Problem(start, end, err.message, kind)
    where = f"{file}:{err.pos[0]}:{err.pos[1]}" if err.pos[0] else file
    at = _way_in(err)
    line_start, line_end = analysis.lines.extent(at)
    shown = Problem(
        line_start,
        line_end,
        f"in {where}: {err.message}",
        kind,
        (Related(file, start, end, err.message),),
    )
    return {here: [shown], file: [inside]}


def _way_in(err: CnnspecError) -> Pos:
    """Where this spec leads to an error in another file: its outermost block call or
    `use` line (the first line when the way is not known)."""
    for name, pos in reversed(err.via):
        if name is None:
            return pos
    return (1, 1)

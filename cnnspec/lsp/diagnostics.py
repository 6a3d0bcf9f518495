"""The compiler's errors as editor diagnostics, by the file each is in.

The compiler says where an error is: (line, column) in the file that holds it, which may
be a used file. It stops at the first, except that names are checked block by block and
stage by stage, so each block or stage with a wrong name has its own. A diagnostic spans
the token at the error (a call's name and arguments, a name, a number). An error in a
used file is shown in that file and, in the spec, at the `use` line or the block call that
led to it.
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
    """The analysis's errors as problems, by the name of the file each is in."""
    err = analysis.error
    if err is None:
        return {}
    found: dict[str, list[Problem]] = {}
    first = err.source.name if err.source is not None else analysis.path
    for each in (err, *err.more):
        file = each.source.name if each.source is not None else first
        text = analysis.lines if file == analysis.path else _text_of(each, file)
        start, end = text.extent(each.pos)
        related = ()
        if file == analysis.path:
            related = tuple(
                Related(file, *text.extent(pos), "from the call here")
                for name, pos in each.via
                if name is None and pos != each.pos
            )
        problem = Problem(start, end, each.message, type(each).__name__, related)
        found.setdefault(file, []).append(problem)
    if first != analysis.path:  # in a used file: shown at the way this spec leads there
        (inside, *_) = found[first]
        where = f"{first}:{err.pos[0]}:{err.pos[1]}" if err.pos[0] else first
        start, end = analysis.lines.extent(_way_in(err))
        mirror = Problem(
            start,
            end,
            f"in {where}: {err.message}",
            type(err).__name__,
            (Related(first, inside.start, inside.end, err.message),),
        )
        found.setdefault(analysis.path, []).insert(0, mirror)
    return found


def _text_of(err: CnnspecError, file: str) -> Text:
    source = err.source
    return Text(source.text if source is not None else "", format_of(file))


def _way_in(err: CnnspecError) -> Pos:
    """Where this spec leads to an error in another file: its outermost block call or
    `use` line (the first line when the way is not known)."""
    for name, pos in reversed(err.via):
        if name is None:
            return pos
    return (1, 1)

"""One exception tree for every stage, and the caret rendering users see.

Every error carries a position (line, column; both 1-based) in the spec it came from. Deep
stages don't know which file they are reading: the API attaches the source on the way out,
so the rendered message is always `path:line:col: message`, the line, and a caret.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

Pos = tuple[int, int]  # (line, column), 1-based; (0, 0) when unknown


@dataclass(frozen=True)
class Source:
    """A spec's text and the name errors call it by (a path, or "<string>")."""

    name: str
    text: str

    def line(self, number: int) -> str:
        # Lines end at "\n" only, as the parsers count them (`read` has already turned CRLF,
        # a lone CR, and YAML's other line breaks into "\n"); str.splitlines would also split
        # at form feeds, U+2028 and more, and put the caret under the wrong line.
        lines = self.text.split("\n")
        return lines[number - 1] if 0 < number <= len(lines) else ""


class CnnspecError(Exception):
    """Base of every error cnnspec reports to a user."""

    def __init__(self, message: str, pos: Pos | None = None, source: Source | None = None):
        super().__init__(message)
        self.message = message
        self.pos: Pos = pos or (0, 0)
        self.source = source
        # The way from the spec to the error, innermost first: each block call whose body
        # holds it and each `use` that brought in its file, as (file, position), the file
        # None for the spec's own text. Editors show an error in a used file at the last.
        self.via: list[tuple[str | None, Pos]] = []
        # Further errors the same check found, in the order they are written (names are
        # checked block by block and stage by stage); the message is this one's alone.
        self.more: list[CnnspecError] = []

    def with_source(self, source: Source) -> CnnspecError:
        if self.source is None:
            self.source = source
        return self

    @property
    def location(self) -> str:
        name = self.source.name if self.source else "<spec>"
        line, col = self.pos
        return f"{name}:{line}:{col}" if line else name

    def headline(self) -> str:
        """The one-line form: `path:line:col: message` (just the message when the error
        concerns no spec, as a missing dataset does)."""
        if self.source is None and not self.pos[0]:
            return self.message
        return f"{self.location}: {self.message}"

    def render(self) -> str:
        """The headline, then the offending line with a caret under the column."""
        out = [self.headline()]
        line, col = self.pos
        text = self.source.line(line) if self.source and line else ""
        if text.strip():
            # One character per column, so the caret stays under it: tabs and other
            # unprintable characters show as spaces.
            shown = "".join(c if c.isprintable() else " " for c in text).rstrip()
            out.append(f"    {shown}")
            out.append("    " + " " * max(col - 1, 0) + "^")
        return printable("\n".join(out))

    def __str__(self) -> str:
        return self.render() if self.source else self.message


def printable(text: str) -> str:
    """`text` safe to write to any UTF-8 stream: lone surrogates (which a YAML escape such as
    "\\ud800" can produce) are spelled as escapes instead of failing the write."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class SpecSyntaxError(CnnspecError):
    """The text or YAML is not well formed."""


class SpecError(CnnspecError):
    """Well formed, but wrong: unknown names, bad arguments, bad structure."""


class ShapeError(CnnspecError):
    """Shapes don't fit: channel or spatial mismatch, a size that shrinks to nothing."""


class LimitError(CnnspecError):
    """The spec asks for more than cnnspec allows (size, depth, repeats, parameters)."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" suffix when a candidate is close to `name`, else ""."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

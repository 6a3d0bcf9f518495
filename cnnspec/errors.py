"""One exception tree for every stage, and the caret rendering users see.

Every error carries a position (line, column; both 1-based) in the spec it came from. Deep
stages don't know which file they are reading: the API attaches the source on the way out,
so the rendered message is always `path:line:col: message`, the line, and a caret.
"""

from __future__ import annotations

import difflib
import re
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
        for err in (self, *self.more):  # the others were found in the same text
            if err.source is None:
                err.source = source
        return self

    @property
    def location(self) -> str:
        name = shown(self.source.name) if self.source else "<spec>"
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


# What a terminal acts on rather than shows: C0 controls (ESC, BEL, CR, backspace ...), DEL
# and C1 controls (CSI and OSC are single characters there), the marks and overrides that
# reorder text, the line and paragraph separators, and lone surrogates (a file name that is
# not UTF-8 decodes to those; no stream can encode them).
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_CONTROL_OR_BREAK = re.compile(f"[{_CONTROLS}\t\n]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` safe to write to a terminal, or to any UTF-8 stream: every control character
    (see `_CONTROLS`) is spelled as an escape (`\\x1b`, `\\u202e`), so nothing a spec or a
    file name holds can move the cursor, set the window title or write the clipboard; line
    breaks and tabs stay."""
    return _CONTROL.sub(_escape, text)


def shown(text: str) -> str:
    """A name or path as one line of a message: `printable`, with tabs and line breaks
    escaped too."""
    return _CONTROL_OR_BREAK.sub(_escape, text)


class EscapedStream:
    """A text stream that writes what it is given through `printable`: the command line
    puts its stdout and stderr behind one, so no message, table or name it prints can
    reach a terminal with a control character in it, whoever wrote the message."""

    def __init__(self, stream):
        self.raw = stream

    def write(self, text: str) -> int:
        self.raw.write(printable(text))
        return len(text)

    def __getattr__(self, name: str):  # flush, fileno, isatty, encoding, ...
        return getattr(self.raw, name)


def unescaped(stream):
    """The stream behind an `EscapedStream`, for a writer whose control characters are
    its own (a progress bar redrawing its line)."""
    return stream.raw if isinstance(stream, EscapedStream) else stream


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

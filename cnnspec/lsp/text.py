"""Places in spec text: the word at a position, what a position's token spans, and the call
whose argument list holds a position.

Positions are cnnspec's: (line, column), both 1-based, counted in characters. An end is
the column after the last character, as editors take a range's end.
"""

from __future__ import annotations

from ..errors import Pos

OPENING = {"(": ")", "[": "]", "{": "}"}
CLOSING = {v: k for k, v in OPENING.items()}
# How far back a call's opening bracket is looked for, in lines.
_LOOK_BACK = 200


def is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


class Text:
    """A spec's lines, with comments blanked out where brackets are matched."""

    def __init__(self, text: str, fmt: str = "cnn"):
        self.lines = text.split("\n")
        self.fmt = fmt
        self._code: list[str] | None = None

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    @property
    def code(self) -> list[str]:
        """Each line with its comment and the inside of its strings blanked, so brackets
        in them do not count."""
        if self._code is None:
            self._code = [_blank(line) for line in self.lines]
        return self._code

    def word(self, pos: Pos) -> tuple[Pos, Pos, str] | None:
        """The name at `pos` (or ending just before it): its start, end and text."""
        line, col = pos
        text = self.line(line)
        i = col - 1
        if not (0 <= i < len(text) and is_name_char(text[i])):
            if 0 < i <= len(text) and is_name_char(text[i - 1]):
                i -= 1
            else:
                return None
        start = i
        while start > 0 and is_name_char(text[start - 1]):
            start -= 1
        end = i
        while end < len(text) and is_name_char(text[end]):
            end += 1
        return (line, start + 1), (line, end + 1), text[start:end]

    def extent(self, pos: Pos) -> tuple[Pos, Pos]:
        """What the token at `pos` spans: a name with the argument list that follows it (a
        call), or in YAML the flow mapping a layer's name opens; a number; else one
        character. A position past its line's end spans the line's last character."""
        line, col = pos
        text = self.line(line)
        if not line:
            return (1, 1), (1, len(self.line(1)) + 1)
        if col > len(text):
            return (line, max(len(text), 1)), (line, len(text) + 1)
        i = max(col - 1, 0)
        if not is_name_char(text[i]) and text[i] not in ".":
            return (line, i + 1), (line, i + 2)
        end = i
        while end < len(text) and (is_name_char(text[end]) or text[end] == "."):
            end += 1
        after = end
        while after < len(text) and text[after] in " \t":
            after += 1
        if self.fmt == "cnn" and after < len(text) and text[after] == "(":
            close = self.closing((line, after + 1))
            if close is not None:
                return (line, i + 1), close
        if self.fmt == "yaml" and i > 0:
            opening = text[:i].rstrip()
            if opening.endswith("{"):
                close = self.closing((line, len(opening)))
                if close is not None:
                    return (line, i + 1), close
        return (line, i + 1), (line, end + 1)

    def closing(self, opening: Pos) -> Pos | None:
        """The end of the bracket that closes the one at `opening` (None if it is open)."""
        line, col = opening
        depth = 0
        for number in range(line, len(self.lines) + 1):
            code = self.code[number - 1]
            for i in range(col - 1 if number == line else 0, len(code)):
                char = code[i]
                if char in OPENING:
                    depth += 1
                elif char in CLOSING:
                    depth -= 1
                    if depth == 0:
                        return (number, i + 2)
        return None

    def enclosing_call(self, pos: Pos) -> tuple[Pos, str, str] | None:
        """The call whose argument list holds `pos`: where its name starts, the name, and
        what is written from the argument's start to `pos` (`k=` while a value is typed).
        In YAML, the layer whose flow mapping (`{conv: 64, k: 3}`) holds it."""
        line, col = pos
        depth = 0
        argument_start: Pos | None = None
        for number in range(line, max(line - _LOOK_BACK, 0), -1):
            code = self.code[number - 1]
            stop = min(col - 1, len(code)) if number == line else len(code)
            for i in range(stop - 1, -1, -1):
                char = code[i]
                if char in CLOSING:
                    depth += 1
                elif char in OPENING:
                    if depth:
                        depth -= 1
                        continue
                    found = self._call_at(number, i, char)
                    if found is not None:
                        start, name = found
                        arg = argument_start or (number, i + 2)
                        return start, name, self.between(arg, pos)
                elif char == "," and not depth and argument_start is None:
                    argument_start = (number, i + 2)
        return None

    def _call_at(self, line: int, i: int, bracket: str) -> tuple[Pos, str] | None:
        """The name a bracket at index `i` of `line` opens the arguments of, if any."""
        text = self.code[line - 1]
        if self.fmt == "cnn" and bracket == "(":
            end = len(text[:i].rstrip())
            start = end
            while start > 0 and is_name_char(text[start - 1]):
                start -= 1
            if start < end and not text[start].isdigit():
                return (line, start + 1), text[start:end]
        if self.fmt == "yaml" and bracket == "{":
            rest = text[i + 1 :]
            stripped = rest.lstrip()
            start = i + 1 + len(rest) - len(stripped)
            end = start
            while end < len(text) and is_name_char(text[end]):
                end += 1
            if end > start and text[end : end + 1] == ":":
                return (line, start + 1), text[start:end]
        return None

    def between(self, start: Pos, end: Pos) -> str:
        if start[0] == end[0]:
            return self.line(start[0])[start[1] - 1 : end[1] - 1]
        parts = [self.line(start[0])[start[1] - 1 :]]
        parts += [self.line(n) for n in range(start[0] + 1, end[0])]
        parts.append(self.line(end[0])[: end[1] - 1])
        return "\n".join(parts)

    def last_code_before(self, stop_line: int, start: Pos) -> Pos:
        """The end of the last line holding code after `start` and before line `stop_line`
        (where a block, a stage or the network written at `start` ends)."""
        for number in range(min(stop_line - 1, len(self.lines)), start[0], -1):
            if self.code[number - 1].strip():
                return (number, len(self.lines[number - 1].rstrip()) + 1)
        return (start[0], len(self.line(start[0]).rstrip()) + 1)

    def comments_above(self, line: int) -> list[str]:
        """The comment lines just above `line`, without their `#`: what a definition says
        of itself."""
        found = []
        number = line - 1
        while number >= 1 and self.line(number).lstrip().startswith("#"):
            found.append(self.line(number).lstrip()[1:].strip())
            number -= 1
        return found[::-1]


def _blank(line: str) -> str:
    """`line` with its comment and the contents of its quoted strings turned to spaces."""
    out = []
    quote = None
    for char in line:
        if quote is not None:
            out.append(char if char == quote else " ")
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            out.append(char)
        elif char == "#":
            break
        else:
            out.append(char)
    return "".join(out).ljust(len(line))

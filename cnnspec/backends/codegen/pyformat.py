"""Lay out Python expressions the way `ruff format` (and black) would.

Codegen builds constructor calls as small trees; this module turns them into lines: the
whole expression on one line if it fits; else the bracket's contents on one indented line;
else one item per line with a trailing comma, each laid out the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 88  # ruff's and black's default line length
BODY_INDENT = 8  # a method's body inside a class


@dataclass(frozen=True)
class Call:
    """`func(arg, ...)`; each arg is source text, a node, or a `(keyword, expr)` pair."""

    func: str
    args: tuple = ()


@dataclass(frozen=True)
class List:
    """`[item, ...]`."""

    items: tuple = ()


@dataclass(frozen=True)
class Dict:
    """`{key: value, ...}` with keys as source text."""

    items: tuple[tuple[str, object], ...]


def flat(expr) -> str:
    if isinstance(expr, str):
        return expr
    if isinstance(expr, tuple):  # a keyword argument
        return f"{expr[0]}={flat(expr[1])}"
    if isinstance(expr, Dict):
        return "{" + ", ".join(f"{k}: {flat(v)}" for k, v in expr.items) + "}"
    if isinstance(expr, List):
        return "[" + ", ".join(flat(i) for i in expr.items) + "]"
    return f"{expr.func}(" + ", ".join(flat(a) for a in expr.args) + ")"


def lines(expr, indent: int = 0, prefix: str = "", suffix: str = "") -> list[str]:
    """`prefix + expr + suffix` at `indent` spaces, split as the formatter would."""
    pad = " " * indent
    one = f"{pad}{prefix}{flat(expr)}{suffix}"
    if len(one) <= WIDTH or isinstance(expr, str):
        return [one]
    if isinstance(expr, tuple):
        return lines(expr[1], indent, f"{prefix}{expr[0]}=", suffix)
    if isinstance(expr, Dict):
        opening, closing = "{", "}"
        items = [(f"{k}: ", v) for k, v in expr.items]
    elif isinstance(expr, List):
        opening, closing = "[", "]"
        items = [("", i) for i in expr.items]
    else:
        opening, closing = f"{expr.func}(", ")"
        items = [("", a) for a in expr.args]
    inner = " " * (indent + 4)
    body = ", ".join(p + flat(v) for p, v in items)
    # A call's arguments may share one indented line; a list's or dict's items, several
    # of them, go one per line (the formatter splits a collection at every comma).
    collection = isinstance(expr, (List, Dict)) and len(items) > 1
    if len(inner) + len(body) <= WIDTH and not collection:
        return [f"{pad}{prefix}{opening}", inner + body, f"{pad}{closing}{suffix}"]
    # One item per line, each with a trailing comma; a sole item is split in place.
    out = [f"{pad}{prefix}{opening}"]
    for p, v in items:
        out.extend(lines(v, indent + 4, p, "," if len(items) > 1 else ""))
    out.append(f"{pad}{closing}{suffix}")
    return out


def sum_lines(target: str, value: str, indent: int) -> list[str]:
    """`target = value` on one line, or, where `value` is a sum too long for one, in
    brackets with a term per line, as the formatter splits a sum."""
    pad = " " * indent
    one = f"{pad}{target} = {value}"
    terms = _top_level_terms(value)
    if len(one) <= WIDTH or len(terms) == 1:
        return [one]
    inner = pad + "    "
    return [
        f"{pad}{target} = (",
        f"{inner}{terms[0]}",
        *(f"{inner}+ {t}" for t in terms[1:]),
        f"{pad})",
    ]


def _top_level_terms(text: str) -> list[str]:
    """The terms of a sum, split at the `+` signs outside any bracket."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and text.startswith(" + ", i):
            terms.append(text[start:i])
            start = i + 3
    return [*terms, text[start:]]

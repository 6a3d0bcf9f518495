"""Sizes that carry the expression they were computed by, for the network class's parameters.

The generated network class takes `in_channels` and `num_classes` as torchvision's models
do. To write each size in terms of them, analysis infers the spec once with each
parameter's default as a symbol: a number that is the default for every check inference
makes, and that carries its expression through the spec's arithmetic and the ops' shape
rules, so `conv(max(C, 4))` is written `nn.Conv2d(in_channels, max(in_channels, 4))`.
Sums and multiples of parameters stay straight lines, written `2 * in_channels + 32` as
a reader would; anything else is written as the spec wrote it.

A choice of structure made on a symbol (a comparison, a repeat count, an index, a size a
shape rule computes in a way no expression carries) reads only its value; it is noted
while `tracing`, and codegen offers no parameter that a choice read. Symbols exist only
inside `tracing`: every other inference sees plain numbers.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# Binding strength of what an expression's text ends with, as in Python: a name or a call
# binds tightest, a sum loosest.
_ATOM, _PRODUCT, _SUM, _UNARY = 9, 6, 5, 7
_LEVELS = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "//": _PRODUCT, "%": _PRODUCT}
_OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}


@dataclass(frozen=True)
class Form:
    """How a value was computed: a straight line `sum(coefficient * name) + constant` of
    the parameters, or (where `text` is set) any other expression of them."""

    terms: tuple[tuple[str, int | float], ...] = ()  # (parameter, coefficient), by name
    constant: int | float = 0
    text: str | None = None
    level: int = _ATOM  # binding strength of `text`'s outermost operation

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.terms)


class _Symbolic:
    form: Form
    names: frozenset[str]

    def __repr__(self) -> str:  # what generated code writes
        return render(self)

    def __str__(self) -> str:  # what messages and shape comments show: the value
        return repr(plain(self))

    def __add__(self, other):
        return combine("+", self, other)

    def __radd__(self, other):
        return combine("+", other, self)

    def __sub__(self, other):
        return combine("-", self, other)

    def __rsub__(self, other):
        return combine("-", other, self)

    def __mul__(self, other):
        return combine("*", self, other)

    def __rmul__(self, other):
        return combine("*", other, self)

    def __truediv__(self, other):
        return combine("/", self, other)

    def __rtruediv__(self, other):
        return combine("/", other, self)

    def __floordiv__(self, other):
        return combine("//", self, other)

    def __rfloordiv__(self, other):
        return combine("//", other, self)

    def __mod__(self, other):
        return combine("%", self, other)

    def __rmod__(self, other):
        return combine("%", other, self)

    def __neg__(self):
        return negated(self)


class SymInt(_Symbolic, int):
    def __new__(cls, value: int, form: Form, names: frozenset[str] = frozenset()):
        made = int.__new__(cls, value)
        made.form, made.names = form, names or form.names
        return made


class SymFloat(_Symbolic, float):
    def __new__(cls, value: float, form: Form, names: frozenset[str] = frozenset()):
        made = float.__new__(cls, value)
        made.form, made.names = form, names or form.names
        return made


class Named:
    """A parameter that is no number (a flag, none, a table of numbers), written by its
    name: it can be tested, indexed and passed on; arithmetic on it is refused."""

    def __init__(self, name: str, value, names: frozenset[str] | None = None):
        self.name, self.value = name, value  # `name` is source: `rows` or `rows[i]`
        self.names = names if names is not None else frozenset({name})

    def __repr__(self) -> str:
        return self.name

    def __bool__(self) -> bool:  # a flag's value where a shape rule reads it
        return bool(self.value)


def item(target: Named, index, value):
    """`target[index]`, whose value is `value`, carrying the expression."""
    text = f"{target.name}[{render(index)}]"
    found = target.names | names(index)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Named(text, value, found)
    return (SymInt if isinstance(value, int) else SymFloat)(value, Form(text=text), found)


def symbol(name: str, value: int) -> SymInt:
    """The parameter `name`, whose value is `value` wherever a number is needed."""
    return SymInt(value, Form(terms=((name, 1),)))


def symbolic(value) -> bool:
    """Whether `value` (or a number inside a tuple of them) carries a parameter."""
    if isinstance(value, tuple):
        return any(symbolic(v) for v in value)
    return isinstance(value, (_Symbolic, Named))


def names(value) -> frozenset[str]:
    """The parameters `value` (a number, or a tuple or dict of them) was computed from."""
    if isinstance(value, (_Symbolic, Named)):
        return value.names
    if isinstance(value, dict):
        value = tuple(value.values())
    if isinstance(value, (tuple, list)):
        return frozenset().union(*(names(v) for v in value))
    return frozenset()


def plain(value):
    """`value` as a plain number (tuples of them too)."""
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, SymInt):
        return int.__int__(value)
    if isinstance(value, SymFloat):
        return float.__float__(value)
    if isinstance(value, Named):
        return plain(value.value)
    return value


def _form(value) -> Form:
    return value.form if isinstance(value, _Symbolic) else Form(constant=value)


def _make(value, form: Form, names: frozenset[str]):
    """`value` carrying `form`, or the plain number where no parameter is left in it."""
    if form.text is None:
        names = form.names  # a straight line: what is left after cancelling
    if not names or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return (SymInt if isinstance(value, int) else SymFloat)(value, form, names)


def combine(op: str, left, right):
    """`left op right` for an arithmetic operator, carrying the operands' forms."""
    if _is(right, 0) and op in ("+", "-") or _is(right, 1) and op == "*":
        return left
    if _is(right, 1) and op == "//" and isinstance(left, int):  # a float's // 1 floors it
        return left
    if _is(left, 0) and op == "+" or _is(left, 1) and op == "*":
        return right
    value = _OPERATORS[op](plain(left), plain(right))
    a, b = _form(left), _form(right)
    found = names(left) | names(right)
    if _whole(a) and _whole(b):  # exact: folding whole numbers changes no value
        if op in ("+", "-"):
            sign = 1 if op == "+" else -1
            return _make(value, _line(a, b, sign), found)
        if op == "*" and (not a.terms or not b.terms):  # a multiple of a straight line
            scale, line = (a.constant, b) if not a.terms else (b.constant, a)
            return _make(value, _line(Form(), line, scale), found)
    if op in ("+", "-") and not symbolic(right) and right < 0:  # `x - 4`, not `x + -4`
        op, right = ("-" if op == "+" else "+"), -right
    level = _LEVELS[op]
    text = f"{render(left, level)} {op} {render(right, level + 1)}"
    return _make(value, Form(text=text, level=level), found)


def negated(value):
    """`-value`: a straight line's terms negated, any other expression written `-(...)`."""
    if _whole(_form(value)):
        return combine("*", -1, value)
    text = f"-{render(value, _UNARY)}"
    return _make(-plain(value), Form(text=text, level=_UNARY), names(value))


def _whole(form: Form) -> bool:
    """A straight line of whole coefficients and a whole constant (floats would reassociate:
    `C * 0.7 + C * 0.6` is not `1.3 * C` in floating point)."""
    numbers = (form.constant, *(c for _, c in form.terms))
    return form.text is None and all(type(n) is int for n in numbers)


def _is(value, number: int) -> bool:
    """Whether `value` is the plain whole number `number` (no symbol, no float, no bool)."""
    return type(value) is int and value == number


def _line(a: Form, b: Form, scale: int | float) -> Form:
    """`a + scale * b` for two straight lines."""
    coefficients = dict(a.terms)
    for name, c in b.terms:
        coefficients[name] = coefficients.get(name, 0) + scale * c
    terms = tuple(sorted((n, c) for n, c in coefficients.items() if c != 0))
    return Form(terms=terms, constant=a.constant + scale * b.constant)


def called(name: str, args: tuple, kwargs: tuple[tuple[str, object], ...], value):
    """The value of a function of the spec's expressions (`max`, `make_divisible`) called
    as the spec calls it, carrying the call where an argument carries a parameter."""
    found = names(args) | names(tuple(v for _, v in kwargs))
    if not found:
        return value
    parts = [render(a) for a in args] + [f"{k}={render(v)}" for k, v in kwargs]
    return _make(value, Form(text=f"{name}({', '.join(parts)})"), found)


def render(value, outer: int = 0) -> str:
    """Python source for `value`, bracketed where it binds looser than `outer`."""
    if isinstance(value, Named):
        return value.name
    if not isinstance(value, _Symbolic):
        return _number(value)  # Python reads `a // -2` and `-2 * a` as meant
    form = value.form
    if form.text is not None:
        text, level = form.text, form.level
    else:
        text = ""
        for name, c in form.terms:
            sign = "-" if c < 0 else "+"
            term = name if abs(c) == 1 else f"{_number(abs(c))} * {name}"
            text = (f"{text} {sign} " if text else "-" * (c < 0)) + term
        if form.constant > 0:
            text += f" + {_number(form.constant)}"
        elif form.constant < 0:
            text += f" - {_number(-form.constant)}"
        single = len(form.terms) == 1 and not form.constant
        level = _SUM
        if single:  # `x`, `-x`, or `2 * x` (`-2 * x` is a product of -2: it binds as one)
            level = {1: _ATOM, -1: _UNARY}.get(form.terms[0][1], _PRODUCT)
    return f"({text})" if level < outer else text


def _number(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(plain(value))


# --- choices --------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A choice of structure made on a symbol's value."""

    pos: tuple[int, int]
    what: str
    names: frozenset[str]


_CHOICES: ContextVar[list[Choice] | None] = ContextVar("choices", default=None)


@contextmanager
def tracing() -> Iterator[list[Choice]]:
    """Collect the choices made on symbols inside the `with`."""
    token = _CHOICES.set([])
    try:
        yield _CHOICES.get()  # type: ignore[misc]
    finally:
        _CHOICES.reset(token)


def active() -> bool:
    """Whether symbols may be about (a `tracing` is under way)."""
    return _CHOICES.get() is not None


def note_choice(pos, what: str, *operands) -> None:
    """Note that a choice (`what`, at `pos`) read the operands' values; one that reads a
    symbol ties the structure to the symbol's default."""
    choices = _CHOICES.get()
    if choices is not None and (found := names(operands)):
        choices.append(Choice(pos, what, found))


__all__ = [
    "Choice",
    "Form",
    "Named",
    "SymFloat",
    "SymInt",
    "active",
    "called",
    "combine",
    "item",
    "names",
    "negated",
    "note_choice",
    "plain",
    "render",
    "symbol",
    "symbolic",
    "tracing",
]

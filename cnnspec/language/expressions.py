"""Evaluate the small expressions of argument lists: `c * 2`, `C // 2`, `c2[1]`, `(96, 128)`,
`round(c * 0.75)`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ..errors import LimitError, Pos, SpecError, did_you_mean
from ..limits import NUMBER_LIMIT, Steps
from . import ir, symbols

# The work counter of the expansion under way: each expression node it evaluates is a step.
_STEPS: ContextVar[Steps | None] = ContextVar("steps", default=None)


@contextmanager
def counting(steps: Steps) -> Iterator[Steps]:
    """Count every expression node evaluated inside the `with` as one of `steps`."""
    token = _STEPS.set(steps)
    try:
        yield steps
    finally:
        _STEPS.reset(token)


@dataclass(frozen=True)
class OpRef:
    """A layer as a value: `act=hardswish` passes the op, which the block then calls."""

    op: str


Value = int | float | bool | None | tuple | OpRef


def describe(value: Value) -> str:
    if isinstance(value, OpRef):
        return value.op
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    if isinstance(value, tuple):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    if symbols.symbolic(value):
        return repr(symbols.plain(value))  # its value: the user wrote no parameter
    if isinstance(value, str):
        return value  # a word (`mode=bilinear`) or a tensor's name (`like=lat4`)
    return repr(value)


_RANGE = "at most 1e18 in magnitude"
assert NUMBER_LIMIT == 10**18, "update _RANGE"


def brief(text: str) -> str:
    """A number's text, shortened when it is too long to read in a message."""
    digits = len(text.lstrip("-+"))
    return f"{text[:12]}... ({digits} digits)" if len(text) > 24 else text


def int_literal(text: str, pos: Pos) -> int:
    """A written whole number, refused before conversion when it is out of range (so that
    Python's 4,300-digit int-from-str limit is never reached)."""
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > len(str(NUMBER_LIMIT)):
        raise LimitError(f"number {brief(text)} is out of range ({_RANGE})", pos)
    return bounded(int(text), pos)


def bounded(value, pos: Pos, what: str = "", text: str = ""):
    """`value`, unless it is a number out of range (or not finite): then a positioned error.
    `what` names the operation that computed it; a written number has none, and `text` is
    how it was written."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    shown = brief(text or repr(value))
    if isinstance(value, float) and math.isnan(value):
        raise SpecError(
            f"{what} gives nan, not a number" if what else f"'{shown}' is not a number", pos
        )
    if abs(value) > NUMBER_LIMIT:
        if what:
            raise LimitError(f"{what} gives {shown}, out of range ({_RANGE})", pos)
        raise LimitError(f"number {shown} is out of range ({_RANGE})", pos)
    return value


def _number(value: Value, expr: ir.Node, op: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"'{op}' needs numbers, got {describe(value)}", expr.pos)
    return value


def make_divisible(v, divisor=8, min_value=None):
    """torchvision's `_make_divisible`: `v` rounded to a multiple of `divisor`, at least
    `min_value` (the divisor when none), and never more than 10% below `v`."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# The functions expressions may call, each with its parameters (None: any number, at least
# two) and how many of them are required. Generated code spells them alike: Python's own
# builtins, and `make_divisible` copied from the runtime.
FUNCTIONS: dict[str, tuple[tuple[str, ...] | None, int]] = {
    "round": (("x",), 1),
    "int": (("x",), 1),
    "min": (None, 2),
    "max": (None, 2),
    "make_divisible": (("v", "divisor", "min_value"), 1),
    "ceil": (("x",), 1),
    "log": (("x", "base"), 1),
    "pow": (("x", "y"), 2),
}


def bind_function(func: ir.Func) -> dict[str, ir.Node] | list[ir.Node]:
    """A function call's arguments, matched to its parameters (a list for min and max);
    unknown functions and wrong arguments are positioned errors."""
    if func.name not in FUNCTIONS:
        hint = did_you_mean(func.name, FUNCTIONS)
        known = ", ".join(FUNCTIONS)
        raise SpecError(f"unknown function '{func.name}'{hint}; functions are {known}", func.pos)
    params, required = FUNCTIONS[func.name]
    if params is None:
        if func.kwargs or len(func.args) < required:
            raise SpecError(f"{func.name} takes two or more numbers, by position", func.pos)
        return list(func.args)
    if len(func.args) > len(params):
        raise SpecError(
            f"{func.name} takes at most {len(params)} arguments ({', '.join(params)}), "
            f"got {len(func.args)}",
            func.args[len(params)].pos,
        )
    bound: dict[str, ir.Node] = dict(zip(params, func.args))
    for kw in func.kwargs:
        if kw.name not in params:
            hint = did_you_mean(kw.name, params)
            raise SpecError(f"{func.name} has no argument '{kw.name}'{hint}", kw.pos)
        if kw.name in bound:
            raise SpecError(f"{func.name} argument '{kw.name}' is given twice", kw.pos)
        bound[kw.name] = kw.value
    missing = [p for p in params[:required] if p not in bound]
    if missing:
        raise SpecError(f"{func.name} is missing argument '{missing[0]}'", func.pos)
    return bound


def _function(func: ir.Func, env: Mapping[str, Value]) -> Value:
    """The function's value; where an argument carries a network parameter (`symbols`),
    the value carries the call."""
    bound = bind_function(func)
    named = bound if isinstance(bound, dict) else dict(enumerate(bound))
    values = {key: evaluate(e, env) for key, e in named.items()}
    value = _function_value(func, bound, {k: symbols.plain(v) for k, v in values.items()})
    if not symbols.active():
        return value
    args = tuple(values[key] for key in list(values)[: len(func.args)])
    kwargs = tuple((kw.name, values[kw.name]) for kw in func.kwargs)
    return symbols.called(func.name, args, kwargs, value)


def _function_value(func: ir.Func, bound, values: dict) -> Value:
    if isinstance(bound, list):
        numbers = [_number(v, func, func.name) for v in values.values()]
        return min(numbers) if func.name == "min" else max(numbers)
    if func.name == "make_divisible":
        v = _number(values["v"], func, func.name)
        divisor = values.get("divisor", 8)
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise SpecError(
                f"make_divisible's divisor must be a whole number >= 1, got {describe(divisor)}",
                bound.get("divisor", func).pos,
            )
        low = values.get("min_value")
        if low is not None:
            _number(low, func, func.name)
        return bounded(make_divisible(v, divisor, low), func.pos, "make_divisible")
    x = _number(values["x"], func, func.name)
    if func.name == "ceil":
        return bounded(math.ceil(x), func.pos, "ceil")
    if func.name == "pow":
        y = _number(values["y"], func, func.name)
        try:
            return bounded(pow(x, y), func.pos, "pow")
        except (OverflowError, ZeroDivisionError) as err:
            raise SpecError(
                f"pow({describe(x)}, {describe(y)}) has no value ({err})", func.pos
            ) from None
    if func.name == "log":
        base = values.get("base")
        if base is not None:
            base = _number(base, func, func.name)
        if x <= 0 or (base is not None and (base <= 0 or base == 1)):
            raise SpecError(
                f"log needs x > 0 and a base > 0 other than 1, got {describe(x)}", func.pos
            )
        return math.log(x) if base is None else math.log(x, base)
    return round(x) if func.name == "round" else int(x)


def evaluate(expr: ir.Node, env: Mapping[str, Value]) -> Value:
    """The value of `expr` where names are looked up in `env`."""
    steps = _STEPS.get()
    if steps is not None:
        steps.spend(expr.pos)
    if isinstance(expr, ir.Const):
        return expr.value
    if isinstance(expr, ir.Num):
        return bounded(expr.value, expr.pos)
    if isinstance(expr, ir.Name):
        if expr.id not in env:
            hint = did_you_mean(expr.id, env)
            raise SpecError(f"unknown name '{expr.id}'{hint}", expr.pos)
        return env[expr.id]
    if isinstance(expr, ir.TupleExpr):
        return tuple(evaluate(item, env) for item in expr.items)
    if isinstance(expr, ir.Neg):
        return bounded(-_number(evaluate(expr.operand, env), expr, "-"), expr.pos, "'-'")
    if isinstance(expr, ir.Not):
        return not truth(evaluate(expr.operand, env), expr.operand, "'not'")
    if isinstance(expr, ir.Index):
        target, index = evaluate(expr.target, env), evaluate(expr.index, env)
        named = target if isinstance(target, symbols.Named) else None
        if named is not None:  # a table a block class takes: indexed by its name
            target = named.value
        if not isinstance(target, tuple):
            raise SpecError(f"only tuples can be indexed, not {describe(target)}", expr.pos)
        if isinstance(index, bool) or not isinstance(index, int):
            raise SpecError(f"an index must be a whole number, not {describe(index)}", expr.pos)
        if named is None:
            symbols.note_choice(expr.pos, "an index", index)
        if not -len(target) <= index < len(target):
            raise SpecError(
                f"index {index} is out of range for {describe(target)} of length {len(target)}",
                expr.index.pos,
            )
        if named is not None:
            return symbols.item(named, index, target[symbols.plain(index)])
        return target[index]
    if isinstance(expr, ir.BinOp):
        return _binop(expr, env)
    if isinstance(expr, ir.Func):
        return _function(expr, env)
    raise AssertionError(f"unhandled expression {type(expr).__name__}")  # the IR is closed


def truth(value: Value, expr: ir.Node, what: str) -> bool:
    """A condition's value, which must be true or false (no truthiness of numbers)."""
    if not isinstance(value, bool):
        raise SpecError(f"{what} needs true or false, got {describe(value)}", expr.pos)
    return value


_ORDER = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _logic(expr: ir.BinOp, env: Mapping[str, Value]) -> bool:
    """`and`, `or` (short-circuit, as in Python) and the comparisons."""
    what = f"'{expr.op}'"
    if expr.op in ("and", "or"):
        left = truth(evaluate(expr.left, env), expr.left, what)
        if left is (expr.op == "or"):
            return left
        return truth(evaluate(expr.right, env), expr.right, what)
    left, right = evaluate(expr.left, env), evaluate(expr.right, env)
    symbols.note_choice(expr.pos, f"'{expr.op}'", left, right)
    if expr.op in ("==", "!="):
        return (left == right) is (expr.op == "==")
    return _ORDER[expr.op](_number(left, expr, expr.op), _number(right, expr, expr.op))


def _binop(expr: ir.BinOp, env: Mapping[str, Value]) -> Value:
    if expr.op not in _ARITHMETIC:
        return _logic(expr, env)
    try:
        return bounded(_arithmetic(expr, env), expr.pos, f"'{expr.op}'")
    except OverflowError:  # an int too large for a float; operands are bounded, but be sure
        raise LimitError(f"'{expr.op}' gives a number out of range ({_RANGE})", expr.pos) from None


def _arithmetic(expr: ir.BinOp, env: Mapping[str, Value]) -> Value:
    left = _number(evaluate(expr.left, env), expr, expr.op)
    right = _number(evaluate(expr.right, env), expr, expr.op)
    if expr.op in ("/", "//", "%") and right == 0:
        raise SpecError(f"division by zero in '{expr.op}'", expr.pos)
    if symbols.symbolic(left) or symbols.symbolic(right):
        return symbols.combine(expr.op, left, right)
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    if expr.op == "*":
        return left * right
    if expr.op == "/":
        return left / right  # a float, as in Python: int() or round() makes it a size
    return left // right if expr.op == "//" else left % right


# Binding strength, loosest first, as in Python; each comparison takes no chaining.
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "//": 6,
    "%": 6,
    "/": 6,
}
_NOT, _NEG, _POSTFIX = 3, 7, 8
_ARITHMETIC = frozenset(("+", "-", "*", "//", "%", "/"))
_SPEC_CONSTANTS = {True: "true", False: "false", None: "none"}
PYTHON_CONSTANTS = {True: "True", False: "False", None: "None"}
_INF = float("inf")


def unparse(
    expr: ir.Node,
    name: Callable[[str], str] = str,
    constants: Mapping = _SPEC_CONSTANTS,
    outer: int = 0,
    *,
    bound: Callable[[str, int], str] | None = None,
) -> str:
    """An expression as source text: the spec's own syntax by default, or Python's with
    `constants=PYTHON_CONSTANTS` (the operators are spelled alike). `name` maps each name;
    `bound`, where given, maps it knowing how tightly its place binds (an expression put
    in a name's place is bracketed only where it binds looser: `symbols.render` levels)."""

    def sub(e: ir.Node, level: int = 0) -> str:
        return unparse(e, name, constants, level, bound=bound)

    if isinstance(expr, ir.Num):
        finite = expr.value == expr.value and expr.value not in (_INF, -_INF)
        if constants is PYTHON_CONSTANTS and not finite:
            return f"float({str(expr.value)!r})"  # inf and nan have no literal
        return repr(expr.value)
    if isinstance(expr, ir.Const):
        return constants[expr.value]
    if isinstance(expr, ir.Name):
        return name(expr.id) if bound is None else bound(expr.id, outer)
    if isinstance(expr, ir.Neg):
        return "-" + sub(expr.operand, _NEG)
    if isinstance(expr, ir.Not):
        text = "not " + sub(expr.operand, _NOT)
        return f"({text})" if outer > _NOT else text
    if isinstance(expr, ir.Index):
        return f"{sub(expr.target, _POSTFIX)}[{sub(expr.index)}]"
    if isinstance(expr, ir.TupleExpr):
        inner = ", ".join(sub(i) for i in expr.items)
        return f"({inner},)" if len(expr.items) == 1 else f"({inner})"
    if isinstance(expr, ir.Func):
        args = [sub(a) for a in expr.args] + [f"{kw.name}={sub(kw.value)}" for kw in expr.kwargs]
        return f"{expr.name}({', '.join(args)})"
    level = _PRECEDENCE[expr.op]
    comparison = level == _PRECEDENCE["=="]  # never chained: both sides bind tighter
    text = f"{sub(expr.left, level + comparison)} {expr.op} {sub(expr.right, level + 1)}"
    return f"({text})" if level < outer else text

"""Evaluate the small expressions of argument lists: `c * 2`, `C // 2`, `c2[1]`, `(96, 128)`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import SpecError, did_you_mean
from . import ir

Value = int | float | bool | None | tuple


def describe(value: Value) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    if isinstance(value, tuple):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return repr(value)


def _number(value: Value, expr: ir.Node, op: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"'{op}' needs numbers, got {describe(value)}", expr.pos)
    return value


def evaluate(expr: ir.Node, env: Mapping[str, Value]) -> Value:
    """The value of `expr` where names are looked up in `env`."""
    if isinstance(expr, (ir.Num, ir.Const)):
        return expr.value
    if isinstance(expr, ir.Name):
        if expr.id not in env:
            hint = did_you_mean(expr.id, env)
            raise SpecError(f"unknown name '{expr.id}'{hint}", expr.pos)
        return env[expr.id]
    if isinstance(expr, ir.TupleExpr):
        return tuple(evaluate(item, env) for item in expr.items)
    if isinstance(expr, ir.Neg):
        return -_number(evaluate(expr.operand, env), expr, "-")
    if isinstance(expr, ir.Index):
        target, index = evaluate(expr.target, env), evaluate(expr.index, env)
        if not isinstance(target, tuple):
            raise SpecError(f"only tuples can be indexed, not {describe(target)}", expr.pos)
        if isinstance(index, bool) or not isinstance(index, int):
            raise SpecError(f"an index must be a whole number, not {describe(index)}", expr.pos)
        if not -len(target) <= index < len(target):
            raise SpecError(
                f"index {index} is out of range for {describe(target)} of length {len(target)}",
                expr.index.pos,
            )
        return target[index]
    if isinstance(expr, ir.BinOp):
        return _binop(expr, env)
    raise AssertionError(f"unhandled expression {type(expr).__name__}")  # the IR is closed


def _binop(expr: ir.BinOp, env: Mapping[str, Value]) -> Value:
    if expr.op == "/":
        raise SpecError("use // for whole-number division ('/' would give a fraction)", expr.pos)
    left = _number(evaluate(expr.left, env), expr, expr.op)
    right = _number(evaluate(expr.right, env), expr, expr.op)
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    if expr.op == "*":
        return left * right
    if right == 0:
        raise SpecError(f"division by zero in '{expr.op}'", expr.pos)
    return left // right if expr.op == "//" else left % right


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "//": 2, "%": 2, "/": 2}
_SPEC_CONSTANTS = {True: "true", False: "false", None: "none"}
PYTHON_CONSTANTS = {True: "True", False: "False", None: "None"}
_INF = float("inf")


def unparse(
    expr: ir.Node,
    name: Callable[[str], str] = str,
    constants: Mapping = _SPEC_CONSTANTS,
    outer: int = 0,
) -> str:
    """An expression as source text: the spec's own syntax by default, or Python's with
    `constants=PYTHON_CONSTANTS` (the operators are spelled alike). `name` maps each name."""

    def sub(e: ir.Node, level: int = 0) -> str:
        return unparse(e, name, constants, level)

    if isinstance(expr, ir.Num):
        finite = expr.value == expr.value and expr.value not in (_INF, -_INF)
        if constants is PYTHON_CONSTANTS and not finite:
            return f"float({str(expr.value)!r})"  # inf and nan have no literal
        return repr(expr.value)
    if isinstance(expr, ir.Const):
        return constants[expr.value]
    if isinstance(expr, ir.Name):
        return name(expr.id)
    if isinstance(expr, ir.Neg):
        return "-" + sub(expr.operand, 3)
    if isinstance(expr, ir.Index):
        return f"{sub(expr.target, 4)}[{sub(expr.index)}]"
    if isinstance(expr, ir.TupleExpr):
        inner = ", ".join(sub(i) for i in expr.items)
        return f"({inner},)" if len(expr.items) == 1 else f"({inner})"
    level = _PRECEDENCE[expr.op]
    text = f"{sub(expr.left, level)} {expr.op} {sub(expr.right, level + 1)}"
    return f"({text})" if level < outer else text

"""Numbers that carry their expression of the network's parameters (`language/symbols.py`):
the text they give is Python that computes, at any value of the parameters, what the
spec computes there; choices made on them are noted; they never outlive codegen."""

from __future__ import annotations

import math
import random

import pytest

import cnnspec
from cnnspec.errors import SpecError
from cnnspec.language import ir, symbols
from cnnspec.language.expressions import evaluate, make_divisible
from cnnspec.language.parse_cnn import parse_expression

FUNCTIONS = {
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "make_divisible": make_divisible,
    "ceil": math.ceil,
}


def expression(text: str) -> ir.Node:
    return ir.to_expr(parse_expression(text))


def random_expression(rng: random.Random, depth: int = 0) -> str:
    """An expression of C and classes as a spec writes sizes: sums, products, floor
    division and remainder by positive numbers, min, max, make_divisible, round, int."""
    if depth > 3 or rng.random() < 0.25:
        return rng.choice(["C", "classes", str(rng.randint(0, 9)), str(rng.randint(1, 64))])
    a, b = random_expression(rng, depth + 1), random_expression(rng, depth + 1)
    return rng.choice(
        [
            f"{a} + {b}",
            f"{a} - {b}",
            f"({a}) - ({b})",
            f"{a} * {b}",
            f"({a}) * ({b})",
            f"({a}) // {rng.randint(1, 5)}",
            f"({a}) % {rng.randint(2, 5)}",
            f"{a} // max({b}, 1)",
            f"-({a})",
            f"min({a}, {b})",
            f"max({a}, {b}, 3)",
            f"make_divisible(({a}) * 0.75, 4)",
            f"round(({a}) / 3)",
            f"int(({a}) * 1.5)",
            f"{a} * 2 - {b} * 3 + 1",
            f"{a} // (-2 * max({b}, 1))",
            f"({a}) % -3",
            f"-max({a}, {b})",
            f"-({a}) // 2",
            f"int({a} * 0.7 + {b} * 0.6)",
            f"round(max({a}, 4) * 1.5 // 1)",
            f"{a} + (3 - 7)",
        ]
    )


def test_the_text_computes_what_the_spec_computes_at_every_value():
    """Evaluated with C and classes as symbols at one value, an expression's text gives,
    at other values, what the expression gives there: brackets, straight lines and
    cancelling included (1,500 generated expressions)."""
    rng = random.Random(20261206)
    carried = 0
    for _ in range(1500):
        text = random_expression(rng)
        expr = expression(text)
        with symbols.tracing():
            env = {
                "C": symbols.symbol("in_channels", 7),
                "classes": symbols.symbol("num_classes", 10),
            }
            value = evaluate(expr, env)
        assert value == evaluate(expr, {"C": 7, "classes": 10}), text
        written = repr(value)
        carried += symbols.symbolic(value)
        for c, k in [(1, 1), (2, 10), (3, 5), (64, 10), (100, 1000)]:
            expected = evaluate(expr, {"C": c, "classes": k})
            got = eval(
                written, {"__builtins__": {}, **FUNCTIONS}, {"in_channels": c, "num_classes": k}
            )  # noqa: S307
            assert got == expected, f"{text} -> {written} at C={c}, classes={k}"
    assert carried > 1000  # most of them carry a parameter, so the check is not idle


@pytest.mark.parametrize(
    "text, written",
    [
        ("C * 2 + 32", "2 * in_channels + 32"),
        ("C + C + 1 - 1", "2 * in_channels"),
        ("C * 2 - C", "in_channels"),
        ("(C + 1) * 3", "3 * in_channels + 3"),
        ("3 - C", "-in_channels + 3"),
        ("max(C, 4) * 2 + 1", "max(in_channels, 4) * 2 + 1"),
        ("(C + 1) // 2", "(in_channels + 1) // 2"),
        ("C * C", "in_channels * in_channels"),
        ("make_divisible(C * 0.75)", "make_divisible(in_channels * 0.75)"),
        ("int(C * 0.7 + C * 0.6)", "int(in_channels * 0.7 + in_channels * 0.6)"),  # as written
        ("round(max(C, 4) * 1.5 // 1)", "round(max(in_channels, 4) * 1.5 // 1)"),
        ("64 // (-2 * C)", "64 // (-2 * in_channels)"),
        ("-max(C, 4) + 20", "-max(in_channels, 4) + 20"),
        ("max(C, 4) + (3 - 7)", "max(in_channels, 4) - 4"),
        ("make_divisible(C, min_value=16)", "make_divisible(in_channels, min_value=16)"),
        ("C * classes", "in_channels * num_classes"),
        ("C + classes * 2", "in_channels + 2 * num_classes"),
    ],
)
def test_straight_lines_read_as_sums_and_the_rest_as_written(text, written):
    with symbols.tracing():
        env = {"C": symbols.symbol("in_channels", 8), "classes": symbols.symbol("num_classes", 10)}
        value = evaluate(expression(text), env)
    assert repr(value) == written
    assert str(value) == str(symbols.plain(value))  # messages and shape comments: the value


def test_a_line_that_cancels_is_a_plain_number():
    with symbols.tracing():
        value = evaluate(expression("C * 2 - C - C + 5"), {"C": symbols.symbol("in_channels", 8)})
    assert type(value) is int and value == 5


@pytest.mark.parametrize(
    "text, what",
    [("C > 4", "'>'"), ("C == 8", "'=='"), ("(1, 2, 3, 4, 5, 6, 7, 8, 9)[C]", "an index")],
)
def test_a_choice_made_on_a_symbol_is_noted(text, what):
    with symbols.tracing() as choices:
        evaluate(expression(text), {"C": symbols.symbol("in_channels", 8)})
        evaluate(expression("2 > 1"), {})  # a choice on plain numbers is no choice on C
    assert [(c.what, c.names) for c in choices] == [(what, frozenset({"in_channels"}))]


def test_a_message_shows_the_value_not_the_expression():
    with symbols.tracing(), pytest.raises(SpecError) as info:
        evaluate(expression("(1, 2)[C]"), {"C": symbols.symbol("in_channels", 8)})
    assert "index 8 is out of range" in info.value.message


BENT = """
network T(input=3x16x16, classes=10):
    f: conv(max(C, 4), k=3, p=1) relu conv(C * 2, k=3) relu
    c: gap flatten linear(classes)
"""


def test_no_symbol_outlives_codegen():
    """After writing the class with parameters, the spec's own graph and a new inference
    hold plain numbers only, and the class says so (its default sizes are values)."""
    spec = cnnspec.load(BENT)
    source = spec.codegen()
    assert "nn.Conv2d(in_channels, max(in_channels, 4), kernel_size=3, padding=1)" in source
    assert "nn.Linear(max(in_channels, 4) * 2, num_classes)" in source
    assert not symbols.active()
    for graph in (spec.graph, cnnspec.load(BENT).graph):
        found = [graph.input_shape, graph.output_shape]
        pending = [graph.root]
        while pending:
            node = pending.pop()
            found += [node.in_shape, node.out_shape, node.params, node.macs]
            if node.layer is not None:
                found += list(node.layer.arguments().values())
            pending += [child for _, child in node.children]
        assert not any(symbols.symbolic(v) for v in found)
    assert "# N x 8 x 14 x 14" in source  # the shape comments give values


def test_a_written_size_that_fails_where_the_spec_holds_is_a_mismatch_not_a_crash():
    """The last check evaluates the written sizes at other values; one that raises there
    (a wrong expression) drops the parameter instead of ending codegen in a traceback."""
    from cnnspec.backends.codegen.network_args import _evaluated

    assert _evaluated("1 // (in_channels - 3)", {"in_channels": 3}) == "<ZeroDivisionError>"
    assert _evaluated("1 // (in_channels - 3)", {"in_channels": 4}) == "1"

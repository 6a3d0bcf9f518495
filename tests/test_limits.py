"""Hostile input cannot exhaust the machine: every bound is checked before the work."""

import signal
import time
from contextlib import contextmanager

import pytest
from conftest import SPECS, error_of, net
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.errors import CnnspecError, LimitError
from cnnspec.limits import DEFAULT


def test_oversized_file_is_refused_before_parsing(tmp_path):
    big = tmp_path / "big.cnn"
    big.write_text(net("relu") + "#" * (DEFAULT.max_file_bytes + 1))
    with pytest.raises(LimitError, match="larger than"):
        cnnspec.load(big)
    with pytest.raises(LimitError, match="larger than"):
        cnnspec.load(big.read_text(), format="cnn")
    with pytest.raises(LimitError, match="larger than"):
        cnnspec.load("a: " + "x" * DEFAULT.max_file_bytes, format="yaml")


def test_deep_brackets_are_refused():
    err = error_of(net("(" * 40 + "relu" + ")" * 40))
    assert isinstance(err, LimitError) and "nested more than 32 levels" in err.message
    assert err.pos[0] == 3


def test_deep_expression_is_refused():
    err = error_of(net("conv(" + "(" * 40 + "1" + ")" * 40 + ", k=1)"))
    assert isinstance(err, LimitError)


def test_long_operator_chain_is_refused_not_crashed():
    err = error_of(net("conv(" + " + ".join(["1"] * 20_000) + ", k=1)"))
    assert isinstance(err, LimitError) and "expression nests more than 100" in err.message
    assert err.pos == (3, 13)


# Chains of each kind of operator, n long: sizes (`1 + 1 + ...`) and conditions
# (`true and true ...`, `not not ... true`).
SIZES = {
    "sum": lambda n: " + ".join(["1"] * n),
    "difference": lambda n: f"{n}" + " - 1" * (n - 1),
    "product": lambda n: " * ".join(["1"] * n),
    "negations": lambda n: "-" * (2 * (n // 2)) + "1",
}
CONDITIONS = {
    "conjunction": lambda n: " and ".join(["true"] * n),
    "comparisons": lambda n: " or ".join(["1 < 2"] * n),
    "nots": lambda n: "not " * (2 * (n // 2)) + "true",
}


@given(st.sampled_from(sorted({**SIZES, **CONDITIONS})), st.integers(1, 400), st.booleans())
@settings(max_examples=60, deadline=None, derandomize=True)
def test_a_long_expression_loads_or_is_refused_where_it_starts(kind, n, as_yaml):
    """Up to the bound an expression of any length checks; past it the error says what
    is bounded and points where the expression starts, in either form, never at 1:1 nor
    as a recursion."""
    if kind in SIZES:
        expr = SIZES[kind](n)
        cnn, yaml = f"conv({expr}, k=1)", f'{{conv: "{expr}", k: 1}}'
        starts = (3, 13), (5, 17)
    else:
        expr = CONDITIONS[kind](n)
        cnn, yaml = f"relu if {expr}", f'{{if: "{expr}", body: [relu]}}'
        starts = (3, 16), (5, 15)
    head = "network:\n  name: T\n  input: 1x8x8\n  stages:\n"
    text, start = (head + f"    s: [{yaml}]\n", starts[1]) if as_yaml else (net(cnn), starts[0])
    format = "yaml" if as_yaml else "cnn"
    try:
        spec = cnnspec.load(text, format=format)
    except cnnspec.CnnspecError as err:
        assert isinstance(err, LimitError), err.render()
        assert "expression nests more than 100 operations" in err.message
        assert err.pos[0] == start[0] and err.pos[1] >= start[1], err.render()
        assert n > 40  # well inside the bound, every expression loads
    else:
        assert spec.output_shape[0] >= 1


def test_deep_indentation_is_refused():
    lines = ["network T(input=1x8x8):", "    s:"]
    for depth in range(40):
        lines.append("    " * (depth + 2) + "concat:")
    lines.append("    " * 42 + "relu")
    err = error_of("\n".join(lines) + "\n")
    assert isinstance(err, LimitError) and "nested more than 32 levels" in err.message


def test_deep_yaml_is_refused():
    err = error_of("network: " + "[" * 60 + "]" * 60 + "\n", format="yaml")
    assert isinstance(err, LimitError) and "nested more than" in err.message


def test_deep_block_calls_are_refused():
    blocks = "block b0():\n    relu\n" + "".join(
        f"block b{i}():\n    b{i - 1}\n" for i in range(1, 40)
    )
    err = error_of(net("b39", blocks=blocks))
    assert isinstance(err, LimitError) and "blocks nest more than 32 deep" in err.message


def test_repeat_count_is_bounded():
    err = error_of(net("relu * 100001"))
    assert isinstance(err, LimitError) and "repeat count 100001" in err.message
    assert err.pos == (3, 15)


def test_total_layers_are_bounded_across_nested_repeats():
    start = time.perf_counter()
    err = error_of(net("((relu * 10000) * 10000) * 10000"))
    assert isinstance(err, LimitError)
    assert f"more than {DEFAULT.max_layers} layers" in err.message
    assert time.perf_counter() - start < 30  # stops at the bound, not after 10^12 layers


def test_exponential_blocks_are_bounded():
    blocks = "block b0():\n    relu\n" + "".join(
        f"block b{i}():\n    b{i - 1} * 100\n" for i in range(1, 6)
    )
    err = error_of(net("b5", blocks=blocks))
    assert isinstance(err, LimitError)


def test_parameter_budget_refuses_a_billion_parameter_conv_before_allocating(monkeypatch):
    import cnnspec.backends.build

    def must_not_build(*args, **kwargs):
        raise AssertionError("the budget must be checked before anything is built")

    monkeypatch.setattr(cnnspec.backends.build, "build", must_not_build)
    with pytest.raises(LimitError) as info:
        cnnspec.compile(net("conv(1000000, k=28)", input="2x28x28"))
    assert "more than 1,000,000,000 parameters" in info.value.message
    assert "conv here alone has 1,569,000,000" in info.value.message
    assert info.value.pos == (3, 8)


def test_parameter_budget_is_adjustable():
    small = cnnspec.Limits(max_params=10_000)
    with pytest.raises(LimitError):
        cnnspec.load(net("conv(64, k=3) flatten linear(10)"), limits=small)
    assert cnnspec.load(net("conv(4, k=3)"), limits=small).params == 40


# Each would make `build`'s forward check run for minutes or allocate gigabytes.
BUDGET_CASES = {
    "multiply-accumulates": (
        "network T(input=512x512x512):\n    s: conv(512, k=3, p=1)\n",
        "more than 200,000,000,000 multiply-accumulates per example (conv here alone has "
        "618,475,290,624)", "--max-macs", (2, 8)),
    "activations of the input": (
        "network T(input=1000x1000x1000):\n    s: relu\n",
        "more than 268,435,456 activations per example (relu here alone has 1,000,000,000)",
        "--max-activations", (2, 8)),
    "activations summed over layers": (
        "network T(input=1x4096x4096):\n    s: relu * 16\n",
        "more than 268,435,456 activations per example (relu here alone has 16,777,216)",
        "--max-activations", (2, 8)),
}  # fmt: skip


@pytest.mark.parametrize("case", BUDGET_CASES)
def test_budgets_are_checked_before_anything_is_built(case, monkeypatch, capsys):
    text, message, flag, pos = BUDGET_CASES[case]

    def must_not_build(*args, **kwargs):
        raise AssertionError("the budget must be checked before anything is built")

    monkeypatch.setattr(cnnspec.backends.build, "build", must_not_build)
    with pytest.raises(LimitError) as info:
        cnnspec.compile(text)
    assert message in info.value.message and f"({flag} raises the bound)" in info.value.message
    assert info.value.pos == pos


@pytest.mark.parametrize("case", BUDGET_CASES)
def test_a_flag_raises_each_budget(case, tmp_path, capsys):
    from cnnspec.cli import main

    text, message, flag, _ = BUDGET_CASES[case]
    spec = tmp_path / "big.cnn"
    spec.write_text(text)
    assert main(["check", str(spec)]) == 1
    assert message in capsys.readouterr().err
    assert main(["check", str(spec), flag, "1e13"]) == 0
    for bad in ("0", "-5", "many"):
        with pytest.raises(SystemExit) as info:
            main(["check", str(spec), flag, bad])
        assert info.value.code == 2


def test_ten_thousand_layer_sequential_spec_on_one_line_and_many_lines():
    one_line = net(" ".join(["relu"] * 10_000))
    many = "network T(input=1x8x8):\n    s:\n" + "        relu\n" * 10_000
    for text in (one_line, many):
        spec = cnnspec.load(text)
        assert len(spec.layers) == 10_000
        assert spec.layers[-1]["path"] == "s.9999"
    module = cnnspec.load(one_line).build()
    assert len(module.s) == 10_000


def test_ten_thousand_layer_yaml_spec():
    text = "network:\n  name: T\n  input: 1x8x8\n  stages:\n    s:\n" + "      - relu\n" * 10_000
    assert len(cnnspec.load(text, format="yaml").layers) == 10_000


def test_huge_input_shape_is_refused():
    err = error_of("network T(input=1x100000000x100000000):\n    s: relu\n")
    assert isinstance(err, LimitError) and "over the limit" in err.message


def _spelled(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_spelled(v) for v in value) + ")"
    return "none" if value is None else str(value)


def _huge_argument_cases():
    """Each op's example with one numeric argument (or one side of a pair) made huge."""
    from cnnspec.analysis.ops import LAYERS

    for op, model in LAYERS.items():
        call, input = model.example
        example = cnnspec.load(f"network T(input={input}, classes=10):\n    s: {call}\n")
        given = example.layers[0]["args"]
        for name, field in model.model_fields.items():
            kind = str(field.annotation)
            if field.annotation is bool or not ("int" in kind or "float" in kind):
                continue
            for huge in (2**31, 2**40, 10**18, 1e18, (1, 2**31)):
                if isinstance(huge, tuple) and "tuple" not in kind:
                    continue
                args = {**given, name: huge}
                text = ", ".join(f"{k}={_spelled(v)}" for k, v in args.items())
                yield pytest.param(f"{op}({text})", input, id=f"{op}-{name}-{huge}")


@pytest.mark.parametrize(("call", "input"), list(_huge_argument_cases()))
def test_a_huge_argument_is_refused_at_its_place_or_builds(call, input):
    """No number an op takes, however large, passes `check` and then crashes torch: it is
    refused at its position, or the network builds and runs."""
    from cnnspec.backends.build import check_forward

    text = f"network T(input={input}, classes=10):\n    s: {call}\n"
    try:
        spec = cnnspec.load(text)
    except CnnspecError as err:
        assert err.pos[0] == 2 and "\n" not in err.message, err.message
        return
    check_forward(spec)


# --- work that gives no layer is still work ---------------------------------------------------

SMALL_WORK = cnnspec.Limits(max_steps=3_000)


@contextmanager
def deadline(seconds: int):
    """Fail, rather than hang, when the work is not bounded."""

    def expired(signum, frame):
        raise AssertionError(f"still expanding after {seconds} s: the work is not bounded")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def counted_items(most: int):
    """Every item the expansion walks, counted: each is a step, so at most `most`."""
    from cnnspec.analysis.infer import _Inference

    walked = [0]
    item = _Inference.item

    def counting(self, *args, **kwargs):
        walked[0] += 1
        if walked[0] > most:
            raise AssertionError(f"walked {walked[0]} items with a bound of {most} steps")
        return item(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Inference, "item", counting)
        yield walked


def idle_spec(kinds: list[str], counts: list[int]) -> str:
    """A network whose stage repeats, calls and decides much and gives one layer: each
    level wraps the one inside it in a repeat, a block called in a repeat, a for over a
    table, or a condition that holds."""
    body, blocks = "relu if false", ""
    for level, (kind, n) in enumerate(zip(kinds, counts)):
        if kind == "cond":
            body = f"({body}) if true"
        elif kind == "block":
            blocks += f"block idle{level}(c):\n    {body}\n"
            body = f"idle{level}({level}) * {n}"
        elif kind == "for":
            rows = ", ".join(str(k) for k in range(min(n, 300)))
            blocks += f"block idle{level}(c):\n    for r in [{rows}]:\n        {body}\n"
            body = f"idle{level}({level})"
        else:
            body = f"({body}) * {n}"
    return net(f"{body} relu", input="1x4x4", blocks=blocks)


@given(st.lists(st.sampled_from(["cond", "repeat", "block", "for"]), min_size=1, max_size=5),
       st.lists(st.integers(0, 10_000), min_size=5, max_size=5))  # fmt: skip
@settings(max_examples=30, deadline=None, derandomize=True)
def test_expansion_work_is_bounded_whether_or_not_it_gives_layers(kinds, counts):
    """Repeats of conditions that fail, blocks that give nothing called in repeats, for
    loops over tables: each stops at the bound on steps, at a place in the spec, within
    seconds, having walked no more items than the bound."""
    with deadline(20), counted_items(SMALL_WORK.max_steps + 1):
        try:
            cnnspec.load(idle_spec(kinds, counts), limits=SMALL_WORK)
        except LimitError as err:
            assert "steps to expand" in err.message and err.pos[0] > 0


def test_the_examples_of_unbounded_work_stop_with_a_positioned_error():
    texts = [
        net("(((relu if false) * 10000) * 10000) * 10000"),
        "block nothing():\n    relu if false\nblock many():\n    nothing * 10000\n"
        + net("many * 10000"),
    ]
    for text in texts:
        with deadline(20), counted_items(SMALL_WORK.max_steps + 1):
            err = error_of_with(text, SMALL_WORK)
        assert isinstance(err, LimitError) and "more than 3,000 steps" in err.message
        assert err.pos[0] > 0


def test_repeats_of_empty_yaml_bodies_count_their_turns():
    empty = "{repeat: 10000, body: []}"
    for _ in range(2):
        empty = f"{{repeat: 10000, body: [{empty}]}}"
    text = f"network:\n  name: T\n  input: 1x8x8\n  stages:\n    s: [relu, {empty}]\n"
    with deadline(20):
        err = error_of_with(text, SMALL_WORK, format="yaml")
    assert isinstance(err, LimitError) and err.pos == (5, 62)


def test_memory_of_idle_work_stays_bounded():
    """Ten times the steps of the tests above: the expansion holds a few MB, not a node per
    call of a block that gives nothing (10^8 calls ended in a MemoryError)."""
    import tracemalloc

    text = "block nothing():\n    relu if false\n" + net("(nothing * 10000) * 10000")
    tracemalloc.start()
    try:
        with deadline(30):
            err = error_of_with(text, cnnspec.Limits(max_steps=30_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(err, LimitError)
    assert peak < 64 << 20


def test_the_default_step_bound_admits_every_shipped_spec():
    """The bound is far above what real networks take: every spec under specs/ expands in
    under a tenth of it."""
    tenth = cnnspec.Limits(max_steps=DEFAULT.max_steps // 10, max_activations=1 << 40)
    for path in sorted(SPECS.rglob("*.cnn")):
        cnnspec.load(path, limits=tenth)


def error_of_with(text: str, limits, format: str = "cnn"):
    with pytest.raises(cnnspec.CnnspecError) as info:
        cnnspec.load(text, format=format, limits=limits)
    return info.value


def test_a_network_at_the_layer_bound_is_checked_within_seconds():
    """The bound on layers is what keeps every command to seconds (README, "Bounds"):
    one at the bound loads, one past it is refused, both quickly."""
    start = time.perf_counter()
    spec = cnnspec.load(net(f"(conv(1, k=1) * {DEFAULT.max_layers // 2}) * 2", input="1x4x4"))
    assert len(spec.graph.layers()) == DEFAULT.max_layers
    err = error_of(net(f"(conv(1, k=1) * {DEFAULT.max_layers // 2}) * 2 relu", input="1x4x4"))
    assert isinstance(err, LimitError)
    assert time.perf_counter() - start < 30

"""Hostile input cannot exhaust the machine: every bound is checked before the work."""

import time

import pytest
from conftest import error_of, net

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
    assert isinstance(err, LimitError) and "nested too deeply" in err.message


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
    assert isinstance(err, LimitError) and "more than 200000 layers" in err.message
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

"""Language features beyond the seed networks, checked through inferred shapes."""

import pytest
from conftest import EVERY_CONSTRUCT, ROOT, net

import cnnspec
from cnnspec.backends.emit_yaml import to_yaml
from cnnspec.limits import Limits


def shapes(spec) -> dict:
    return {path: node.out_shape for path, _, node in spec.graph.walk()}


def test_user_blocks_with_defaults_and_nesting():
    spec = cnnspec.load(net("pair(8) pair(16, k=1)", input="3x32x32", blocks=(
        "block unit(c, k=3):\n    conv(c, k=k, p=k // 2) relu\n"
        "block pair(c, k=3):\n    unit(c, k) unit(c * 2, k=k)\n")))  # fmt: skip
    s = shapes(spec)
    assert s["s.0"] == (16, 32, 32) and s["s.1"] == (32, 32, 32)
    assert s["s.1.1.0"] == (32, 32, 32)


def test_shape_names_in_expressions():
    spec = cnnspec.load(net("conv(C * 4, k=1) conv(C // 2, k=1) avgpool(H // 2)", "6x8x8"))
    assert spec.output_shape == (12, 2, 2)


def test_tuples_indexing_and_negative_index():
    spec = cnnspec.load(net("f((4, 6))", blocks="block f(c):\n    conv(c[-1], k=(1, 3))\n"))
    assert spec.output_shape == (6, 28, 26)


def test_repeat_of_a_group_and_a_block_and_zero():
    spec = cnnspec.load(net("(conv(4, k=3, p=1) relu) * 3 residual(4) * 2 relu * 0", "1x8x8"))
    assert len([r for r in spec.layers if r["op"] == "conv"]) == 3 + 4


def test_residual_projects_only_when_the_shape_changes():
    spec = cnnspec.load(net("residual(1) residual(8, s=2) residual(8, project=true)", "1x8x8"))
    nodes = {path: node for path, _, node in spec.graph.walk()}
    shortcut = {path: dict(nodes[path].owned).get("shortcut") for path in nodes}
    assert shortcut["s.0.0"] is None
    assert shortcut["s.1.0"].layer.s == 2 and shortcut["s.1.0"].layer.out == 8
    assert shortcut["s.2.0"].layer.s == 1
    assert "s.1.0.shortcut" in {row["path"] for row in spec.layers}


def test_add_of_several_branches_and_dense_growth():
    spec = cnnspec.load(net("dense_block(3, 5)", "4x8x8"))
    assert spec.output_shape == (4 + 3 * 5, 8, 8)
    text = ("network T(input=4x8x8):\n    s:\n        add:\n            f: conv(4, k=1)\n"
            "            skip: identity\n")  # fmt: skip
    assert cnnspec.load(text).output_shape == (4, 8, 8)


def _window_cases(torch):
    for k in range(1, 5):
        for s in range(1, 4):
            for p in range(k // 2 + 1):
                for ceil in (False, True):
                    text = f"maxpool({k}, s={s}, p={p}, ceil_mode={str(ceil).lower()})"
                    yield text, torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil)
                for d in (1, 2):
                    yield f"conv(1, k={k}, s={s}, p={p}, d={d})", torch.nn.Conv2d(1, 1, k, s, p, d)


def test_window_arithmetic_matches_torch_exhaustively():
    torch = pytest.importorskip("torch")
    checked = 0
    for text, module in _window_cases(torch):
        for size in range(1, 9):
            try:
                expected = tuple(module(torch.zeros(1, 1, size, size)).shape[1:])
            except RuntimeError:
                expected = None  # torch refuses: so must cnnspec
            try:
                got = cnnspec.load(net(text, f"1x{size}x{size}")).output_shape
            except cnnspec.CnnspecError:
                got = None
            assert got == expected, (text, size)
            checked += 1
    assert checked == 96 * 8  # 48 pooling and 48 convolution settings, sizes 1..8


def test_batchnorm_dimension_follows_the_shape():
    spec = cnnspec.load(net("batchnorm flatten batchnorm", "2x3x3"))
    assert [r["params"] for r in spec.layers] == [4, 0, 36]


def test_heads_with_named_and_unnamed_branches():
    text = ("network T(input=1x8x8, classes=3):\n    trunk: flatten\n    out:\n        heads:\n"
            "            kind: linear(classes)\n            linear(2)\n")  # fmt: skip
    spec = cnnspec.load(text)
    assert spec.output_shape == ((3,), (2,))
    assert [r["path"] for r in spec.layers] == ["trunk", "out.branches.kind", "out.branches.1"]


def test_a_spec_block_replaces_a_built_in_one():
    blocks = "block vgg_block(n, c):\n    conv(c, k=1)\n"
    assert cnnspec.load(net("vgg_block(2, 3)", blocks=blocks)).output_shape == (3, 28, 28)


def test_comments_blank_lines_and_continuations():
    text = (
        "# top\n\nnetwork T(input=1x8x8):  # trailing\n\n    # between\n"
        "    s: conv(4,\n            k=3)  # inside brackets\n    t: relu \\\n        relu\n"
    )
    assert [r["path"] for r in cnnspec.load(text).layers] == ["s", "t.0", "t.1"]


def test_yaml_round_trip_of_every_construct():
    spec = cnnspec.load(EVERY_CONSTRUCT)
    again = cnnspec.load(to_yaml(spec.ir), format="yaml")
    assert again.ir == spec.ir and again.params == spec.params
    assert again.recipe.weight_decay == 0.05


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_specs_are_errors_not_crashes(text):
    with pytest.raises(cnnspec.CnnspecError):
        cnnspec.load(text, format="cnn")


# The round trip is about the IR, not the budgets: the published U-Net
# (specs/papers/unet.cnn) holds more activation values at 572x572 than the default allows.
ANY_SIZE = Limits(max_activations=1 << 30)


EVERY_SPEC = sorted([*(ROOT / "specs").glob("**/*.cnn"), *(ROOT / "specs").glob("**/*.yaml")])


@pytest.mark.parametrize("path", EVERY_SPEC, ids=lambda p: str(p.relative_to(ROOT)))
def test_convert_writes_yaml_that_reads_back_to_the_same_ir(path):
    spec = cnnspec.load(path, limits=ANY_SIZE)
    again = cnnspec.load(to_yaml(spec.ir), format="yaml", limits=ANY_SIZE)
    assert again.ir == spec.ir and again.recipe == spec.recipe


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Words YAML 1.1 reads as true, false, null or a number when bare, and names like them.
YAML_WORDS = "yes no on off null y n Yes No On Off Null YES NO ON OFF NULL Y N e5 inf nan".split()
NAMES = st.one_of(st.sampled_from(YAML_WORDS), st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True))
RATES = st.floats(min_value=1e-300, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(
    names=st.lists(NAMES, min_size=6, max_size=6, unique=True),
    rates=st.lists(RATES, min_size=5, max_size=5),
    whole=st.integers(0, 10**6),
)
@settings(max_examples=60, deadline=None, derandomize=True)
def test_convert_round_trips_any_name_and_number(names, rates, whole):
    """Whatever a stage, block, parameter, branch or argument is called and whatever a
    number is, `convert` writes YAML that reads back to the same spec: `on:` bare would be
    the key true, `1e-05` bare the string "1e-05"."""
    stage, other, block, param, branch, netparam = names
    lr, decay, scale, weight, default = rates
    text = (
        f"block {block}({param}, extra={default!r}):\n    conv({param}, k=1)\n"
        f"network T(input=2x4x4, classes=3, {netparam}={weight!r}):\n"
        f"    {stage}: {block}(4, extra={scale!r}) conv(4 + int({netparam} * 0), k=1)\n"
        f"    {other}:\n        add(scale={scale!r}):\n            {branch}: conv(4, k=1)\n"
        f"train(lr={lr!r}, weight_decay={decay!r}, momentum={rates[0]!r}, epochs={whole + 1})\n"
    )
    try:
        spec = cnnspec.load(text)
    except cnnspec.CnnspecError as err:  # a name the language itself refuses
        assert "reserved" in err.message or "taken by" in err.message or "unexpected" in err.message
        return
    again = cnnspec.load(to_yaml(spec.ir), format="yaml")
    assert again.ir == spec.ir and again.recipe == spec.recipe


@pytest.mark.parametrize("written", ["5e-5", "5E-5", "+5e+5", "1_0e-5", "5.0e-5"])
def test_hand_written_yaml_exponents_are_numbers(written):
    """`weight_decay: 5e-5` is the number it means, though YAML 1.1 wants `5.0e-5`."""
    value = float(written.replace("_", ""))
    text = (
        "network:\n  name: T\n  input: 1x8x8\n  stages:\n"
        f"    s: [{{add: [[{{conv: 1, k: 1}}]], scale: {written}}}]\n"
        f"train: {{weight_decay: {written}, lr: {written}}}\n"
    )
    spec = cnnspec.load(text, format="yaml")
    assert spec.recipe.weight_decay == value == spec.recipe.lr
    assert spec.ir.network.stages[0].body[0].kwargs[0].value.value == value

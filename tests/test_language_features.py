"""The language's newer features across every backend: width rules, repeat indices,
conditionals, layer-valued parameters, shared block files and network parameters."""

import pytest
from conftest import check_all_backends, net

import cnnspec
from cnnspec.backends.emit_yaml import to_yaml
from cnnspec.language.expressions import make_divisible


def round_trips(spec: cnnspec.Spec) -> None:
    """`convert` writes YAML that reads back to the same IR, and the schema accepts it."""
    yaml_text = to_yaml(spec.ir)
    assert cnnspec.load(yaml_text, format="yaml").ir == spec.ir
    schema_accepts(yaml_text)


def schema_accepts(yaml_text: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from cnnspec.backends.schema import yaml_schema

    jsonschema.Draft202012Validator(yaml_schema()).validate(yaml.safe_load(yaml_text))


# --- width rules ------------------------------------------------------------------------

WIDTHS = """
block unit(c, width=1.0):
    conv(make_divisible(c * width), k=3, p=1) relu
    conv(max(round(c / 3), int(C * 0.5), 4), k=1) batchnorm
    conv(min(c, 12, make_divisible(c * 0.6, divisor=4, min_value=8)), k=1)
network T(input=3x16x16, classes=10):
    s: unit(24) unit(20, width=0.75) unit(C + 4, 0.5) conv(round(C * 1.5), k=1)
    head: gap flatten linear(classes)
"""


def test_width_rules_in_every_backend(tmp_path):
    spec = check_all_backends(WIDTHS, tmp_path, "widths")
    convs = [r["output_shape"][0] for r in spec.layers if r["op"].startswith("conv")]
    assert convs == [24, 12, 12, 16, 8, 12, 8, 5, 12, 18]
    assert "def make_divisible" in spec.codegen()
    round_trips(spec)


def test_true_division_gives_a_float_and_functions_act_as_pythons():
    block = "block f(x):\n    dropout(x)\n"
    probe = "f(1 / 4) f(round(2.5) / 10) f(int(-0.5) + 0.5) f(max(0.1, 1 / 8, 0))"
    spec = cnnspec.load(net(probe, blocks=block))
    assert [n.layer.p for _, _, n in spec.graph.walk() if n.is_layer] == [0.25, 0.2, 0.5, 0.125]


def test_make_divisible_is_torchvisions():
    utils = pytest.importorskip("torchvision.models._utils")
    from cnnspec.backends.runtime import make_divisible as runtime_copy

    for v in [x * 0.37 for x in range(1, 700)] + list(range(1, 200)):
        for divisor in (1, 3, 8, 16):
            for low in (None, 1, 16):
                expected = utils._make_divisible(v, divisor, low)
                assert make_divisible(v, divisor, low) == expected
                assert runtime_copy(v, divisor, low) == expected


# --- repeat index -------------------------------------------------------------------------

INDICES = """
block stack(n, c):
    (conv(c + i, k=3, p=1) drop_path(0.2 * i / n)) * n as i
    dense:
        (batchnorm conv(2 + j, k=1)) * 2 as j
block deep(n):
    (stack(2, 4 + k) relu) * n as k
network T(input=3x8x8, classes=10):
    s: stack(3, 4) deep(2) (conv(C + id, k=1)) * 2 as id
    head: gap flatten linear(classes)
"""


def test_repeat_index_in_every_backend(tmp_path):
    spec = check_all_backends(INDICES, tmp_path, "indices")
    nodes = {path: node for path, _, node in spec.graph.walk()}
    rates = [nodes[f"s.0.{k}"].layer.p for k in (1, 3, 5)]
    assert rates == [0.0, 0.2 * 1 / 3, 0.2 * 2 / 3]
    assert nodes["s.3"].out_shape[0] == nodes["s.2"].out_shape[0] + 1
    source = spec.codegen()
    assert "for i in range(n):" in source and "for k in range(n):" in source
    round_trips(spec)


def test_an_index_that_shadows_a_python_name_gets_another_in_generated_code(tmp_path):
    text = net("blk(2)", "2x4x4", "block blk(n):\n    (conv(C + len, k=1)) * n as len\n")
    source = check_all_backends(text, tmp_path, "shadowed").codegen()
    assert "for len2 in range(n):" in source


# --- conditionals ---------------------------------------------------------------------------

CONDITIONS = """
block inverted(c, s=1, t=6, act=true):
    if s == 1 and c == C:
        add: conv(C * t, k=1) batchnorm relu6 if act conv(c, k=3, s=s, p=1) batchnorm
    else:
        conv(C * t, k=1) batchnorm relu6 if act conv(c, k=3, s=s, p=1) batchnorm
    relu if not act or c >= 16
block sized(c):
    if H > 4: maxpool(2)
    conv(c, k=1)
block nested(c, n):
    (conv(c, k=1) (conv(c + 1, k=1)) * 2) * n
network T(input=3x16x16, classes=10):
    s: inverted(8) inverted(8) inverted(16, s=2, act=false) inverted(16, t=1) nested(4, 2)
    t:
        if C != 16 and (1, 2) != (2, 1):
            relu
        else: relu6
        sized(6) sized(6) sized(6)
    head: gap flatten linear(classes)
"""


def test_conditionals_in_every_backend(tmp_path):
    spec = check_all_backends(CONDITIONS, tmp_path, "conditions")
    nodes = {path: node for path, _, node in spec.graph.walk()}
    assert nodes["s.0"].kind == "seq" and nodes["s.1.0"].kind == "add"  # residual when 8 -> 8
    assert nodes["s.2.2"].label == "conv"  # no relu6 with act=false
    assert nodes["t.0"].label == "relu" and nodes["t.1.0"].label == "maxpool"
    assert nodes["t.2.0"].label == "conv"  # 4x4 is not over 4: no pooling
    source = spec.codegen()
    assert "if s == 1 and c == in_channels:" in source and "class Sized" not in source
    round_trips(spec)


@pytest.mark.parametrize(
    "test, expected",
    [("1 < 2 and not 2 <= 1", True), ("3 >= 3 or x", True), ("false and x", False),
     ("(1, 2) == (1, 2) != false", None), ("1 == 1.0", True), ("not 1 > 2 == false", None)],
)  # fmt: skip
def test_conditions_short_circuit_and_do_not_chain(test, expected):
    text = net(f"relu if {test}", blocks="")
    if expected is None:
        with pytest.raises(cnnspec.CnnspecError, match="unexpected"):
            cnnspec.load(text.replace(" x", " true"))
        return
    # `x` would be an unknown name: it is read only where Python would read it
    spec = cnnspec.load(text.replace(" x", " (1 // 0 == 0)"))
    assert len(spec.layers) == int(expected)


# --- layer-valued parameters ------------------------------------------------------------------

LAYER_VALUES = """
block unit(c, act=relu):
    conv(c, k=3, p=1) batchnorm act
block pair(c, act=relu, norm=batchnorm):
    unit(c, act) unit(c, act=act) conv(c, k=1) norm
network T(input=3x8x8, classes=10):
    s: unit(4) unit(8, act=hardswish) pair(4, gelu) pair(4, norm=identity) unit(4, act=batchnorm)
    head: gap flatten linear(classes)
"""


def test_layer_valued_parameters_in_every_backend(tmp_path):
    spec = check_all_backends(LAYER_VALUES, tmp_path, "layer_values")
    labels = [n.label for _, _, n in spec.graph.walk() if n.is_layer]
    assert labels.count("hardswish") == 1 and labels.count("gelu") == 2
    source = spec.codegen()
    assert "def __init__(self, in_channels: int, c, act=nn.ReLU)" in source
    assert "Unit(4, 8, act=nn.Hardswish)" in source and "class Pair" not in source
    round_trips(spec)


# --- shared block files ------------------------------------------------------------------------


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_blocks_from_used_files_in_every_backend(tmp_path):
    write(tmp_path / "lib" / "acts.yaml", "blocks:\n  twice:\n    params: [c]\n"
          "    body: [{conv: c, k: 1}, {conv: c, k: 1}]\n")  # fmt: skip
    write(tmp_path / "lib" / "blocks.cnn", 'use "acts.yaml"\nblock unit(c, act=relu):\n'
          "    conv(c, k=3, p=1) batchnorm act\n")  # fmt: skip
    spec_path = write(tmp_path / "net.cnn", 'use "lib/blocks.cnn"\nuse "lib/acts.yaml"\n'
        "network T(input=3x8x8, classes=10):\n    s: unit(4) twice(8) unit(8, act=hardswish)\n"
        "    head: gap flatten linear(classes)\n")  # fmt: skip
    spec = check_all_backends(str(spec_path), tmp_path, "used")
    assert [label for label, _ in spec.graph.root.children[0][1].children] == ["0", "1", "2"]
    assert "class Twice" in spec.codegen() and "class Unit" in spec.codegen()
    yaml_path = write(tmp_path / "net.yaml", to_yaml(spec.ir))
    assert cnnspec.load(yaml_path).ir == spec.ir  # `use:` in YAML, relative to that file
    schema_accepts(yaml_path.read_text())


# --- network parameters and --set ----------------------------------------------------------

PARAMETERISED = """
block unit(c, act=relu):
    conv(c, k=3, p=1) batchnorm act
network Net(input=3x16x16, classes=10, width=1.0, depth=2, act=relu, wide=depth > 1):
    s: (unit(make_divisible(16 * width), act) drop_path(0.1 * i / depth)) * depth as i
    t: conv(32, k=1) if wide
    head: gap flatten linear(classes)
train(lr=0.1)
"""


def test_network_parameters_in_every_backend(tmp_path):
    spec = check_all_backends(PARAMETERISED, tmp_path, "parameterised")
    assert spec.output_shape == (10,) and spec.graph.root.children[1][1].out_shape[0] == 32
    round_trips(spec)


def test_set_changes_options_parameters_and_the_recipe():
    sets = {"width": "0.5", "depth": "1", "act": "hardswish", "classes": "7",
            "input": "1x8x8", "lr": "0.5", "optimizer": "adam"}  # fmt: skip
    spec = cnnspec.load(PARAMETERISED, overrides=sets)
    assert spec.input_shape == (1, 8, 8) and spec.output_shape == (7,)
    assert spec.recipe.lr == 0.5 and spec.recipe.optimizer == "adam"
    labels = [n.label for _, _, n in spec.graph.walk() if n.is_layer]
    assert labels.count("hardswish") == 1 and "conv" in labels
    assert spec.graph.root.children[1][1].children == ()  # wide is false at depth 1
    assert spec.params < cnnspec.load(PARAMETERISED).params


def test_set_on_the_command_line(tmp_path, capsys):
    from cnnspec.cli import main

    path = tmp_path / "net.cnn"
    path.write_text(PARAMETERISED)
    assert main(["build", str(path), "--json", "--set", "width=0.5", "--set", "classes=3"]) == 0
    import json

    built = json.loads(capsys.readouterr().out)
    assert built["output_shape"] == [3]
    assert main(["codegen", str(path), "--stdout", "--set", "width=2"]) == 0
    assert "Unit(in_channels, 32)" in capsys.readouterr().out
    assert main(["check", str(path), "--set", "widht=2"]) == 1
    assert "(did you mean 'width'?)" in capsys.readouterr().err


def test_a_condition_on_the_input_keeps_in_channels_out_of_the_network_class(tmp_path):
    # Written out in place, the condition was decided for 1 channel: other counts may not
    # decide alike, so the class does not offer them.
    text = net("(conv(1, k=1) relu) if C <= 3", "1x4x4")
    source = check_all_backends(text, tmp_path, "decided").codegen()
    assert "in_channels: int" not in source


# --- branches present only under a condition ---------------------------------------------

OPTIONAL_BRANCH = """
block inc(c, wide=false):
    concat:
        conv(c, k=1)
        (conv(c, k=3, p=1) relu) if wide
        conv(c, k=5, p=2)
block tops(n, aux=false):
    gap flatten
    heads:
        main: linear(n)
        extra: linear(2) if aux
network T(input=3x8x8, classes=10):
    a: inc(4) inc(4, wide=true)
    b: tops(classes, aux=true)
"""


def test_a_branch_under_a_failed_condition_is_left_out(tmp_path):
    spec = check_all_backends(OPTIONAL_BRANCH, tmp_path, "optional_branches")
    keys = list(spec.build().state_dict())
    assert "a.0.branches.1.0.weight" not in keys and "a.0.branches.2.weight" in keys
    assert "a.1.branches.1.0.weight" in keys  # present where the condition holds
    assert spec.output_shape == ((10,), (2,))
    without = spec.with_classes(10)  # the same, and the head is there because aux=true
    assert len(without.output_shape) == 2
    assert cnnspec.load(to_yaml(spec.ir), format="yaml").ir == spec.ir


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        ("add:\n        a: conv(4, k=1)\n        b: relu if flag",
         "a branch of add cannot be present only under a condition", 4),
        ("dense:\n        (batchnorm relu conv(2, k=3, p=1)) if flag",
         "a dense unit cannot be present only under a condition", 3),
        ("concat:\n        relu if flag\n        sigmoid if flag",
         "every branch of this concat is left out here", 2),
    ],
)  # fmt: skip
def test_where_a_branch_cannot_be_optional_the_error_says_so(body, message, line):
    text = f"block b(flag=false):\n    {body}\nnetwork T(input=4x8x8, classes=10):\n    s: b()\n"
    with pytest.raises(cnnspec.CnnspecError) as info:
        cnnspec.load(text)
    assert message in info.value.message
    assert info.value.pos[0] == line


# --- ceil, log and pow: EfficientNet's depth scaling, RegNet's width generator -----------

FUNCTION_SPEC = """\
block stack(c, n, depth=1.2):
    (conv(c, k=3, p=1) relu) * (ceil(n * depth))
    conv(int(pow(2, round(log(c, 2)))), k=1)

network T(input=3x8x8, classes=10):
    s: stack(6, 3) stack(12, 2)
    head: gap flatten linear(classes)
"""


def test_ceil_log_and_pow_size_layers_in_spec_and_generated_code(tmp_path):
    from conftest import check_all_backends

    spec = check_all_backends(FUNCTION_SPEC, tmp_path, "functions")
    convs = [r["output_shape"][0] for r in spec.layers if r["op"] == "conv"]
    # ceil(3 * 1.2) = 4 and ceil(2 * 1.2) = 3 convs; 2 ** round(log2(6)) = 8, of 12: 16
    assert convs == [6, 6, 6, 6, 8, 12, 12, 12, 16]
    source = spec.codegen()
    assert "import math" in source and "range(ceil(n * depth))" in source


@pytest.mark.parametrize(
    "expr, message",
    [
        ("log(0)", "log needs x > 0"),
        ("log(8, 1)", "a base > 0 other than 1"),
        ("pow(0, -1)", "has no value"),
        ("pow(10, 400)", "out of range"),
        ("ceil(1, 2)", "ceil takes at most 1 arguments"),
    ],
)
def test_ceil_log_and_pow_refuse_what_has_no_value(expr, message):
    from conftest import error_of

    err = error_of(f"network T(input=3x8x8, classes=10):\n    s: conv(int({expr}), k=1)\n")
    assert message in err.message and err.pos[0] == 2


# --- for over a table's rows -----------------------------------------------------------

TABLE_SPEC = """\
block inverted(c, s=1, t=6):
    if s == 1 and c == C:
        add: conv(C_in * t, k=1) batchnorm relu6 conv(C_in * t, k=3, p=1, groups=C_in * t) \\
            batchnorm relu6 conv(c, k=1) batchnorm
    else:
        conv(C_in * t, k=1) batchnorm relu6 conv(C_in * t, k=3, s=s, p=1, groups=C_in * t) \\
            batchnorm relu6 conv(c, k=1) batchnorm

block body(width=1.0):
    for (t, c, n, s) in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2)]:
        inverted(make_divisible(c * width), s, t)
        (inverted(make_divisible(c * width), 1, t)) * (n - 1)

network M(input=3x32x32, classes=10):
    stem: conv(32, k=3, s=2, p=1) batchnorm relu6
    features: body() body(0.5)
    head: gap flatten linear(classes)
"""


def test_a_for_gives_its_body_once_per_row(tmp_path):
    spec = check_all_backends(TABLE_SPEC, tmp_path, "table")
    calls = [r for r in spec.to_dict()["blocks"] if r["label"] == "inverted"]
    # 1 + 2 + 3 inverted blocks per body, twice
    assert len(calls) == 12
    widths = [c["output_shape"][0] for c in calls]
    assert widths == [16, 24, 24, 32, 32, 32, 8, 16, 16, 16, 16, 16]
    assert "for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2)):" in spec.codegen()
    assert cnnspec.load(to_yaml(spec.ir), format="yaml").ir == spec.ir


@pytest.mark.parametrize(
    "loop, message",
    [
        ("for (a, b) in [(1, 2), (3,)]:", "each row of this table gives 2 values (a, b), got (3)"),
        ("for (a, b) in 4:", "for needs a table of rows, got 4"),
        ("for (a, a) in [(1, 2)]:", "names each of its values once"),
        ("for (C, b) in [(1, 2)]:", "for 'C' is reserved"),
    ],
)
def test_a_for_s_table_errors_are_positioned(loop, message):
    from conftest import error_of

    text = (
        f"block b():\n    {loop}\n        relu\n\nnetwork T(input=3x8x8, classes=10):\n    s: b()\n"
    )
    err = error_of(text)
    assert message in err.message and err.pos[0] == 2


def test_a_repeat_index_named_like_a_local_of_the_writer_loses_no_layer(tmp_path):
    """The index `layers2` once shared its name with a list the writer made for the
    second repeat, which dropped that repeat's layers from the generated class."""
    text = net(
        "b(4)",
        blocks="block b(c):\n    (relu) * 2\n    (conv(c + layers2, k=1)) * 2 as layers2\n",
        input="3x8x8",
    )
    spec = check_all_backends(text, tmp_path, "index_names")
    assert len(spec.layers) == 4


def test_an_explicit_none_for_a_computed_default_stays_none(tmp_path):
    """The block class reads None as "compute the default" for a default written as an
    expression; a call that passes none itself is written out in place instead."""
    text = net(
        "b(4) b(4, w=none) b(4, w=2)",
        blocks=(
            "block b(c, w=c * 2):\n    if w == none:\n        conv(c, k=3, p=1)\n"
            "    else:\n        conv(w, k=1)\n"
        ),
        input="3x8x8",
    )
    spec = check_all_backends(text, tmp_path, "computed_default")
    assert [r["args"] for r in spec.layers] == [
        {"out": 8, "k": 1},
        {"out": 4, "k": 3, "p": 1},
        {"out": 2, "k": 1},
    ]

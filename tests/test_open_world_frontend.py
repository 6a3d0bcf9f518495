"""Hostile and mistaken input to the front ends: every failure is a one-line, positioned
CnnspecError (never a traceback), with the caret under the right line and column."""

import time

import pytest
from conftest import SPECS, error_of, net

import cnnspec
from cnnspec.errors import CnnspecError, LimitError, SpecError, SpecSyntaxError
from cnnspec.language.ir import COMBINATORS

YAML_HEAD = "network:\n  name: T\n  input: 1x28x28\n  stages:\n"
RANGE = "is out of range (at most 1e18 in magnitude)"
HUGE = "1" + "0" * 99  # 10**99


def check(text: str, format: str, kind: type, message: str, line: int, col: int):
    """`text` fails with exactly `message` at line:col, rendered on one line plus a caret
    under that column of that line."""
    err = error_of(text, format)
    assert type(err) is kind, err.render()
    assert err.message == message
    assert err.pos == (line, col), err.render()
    rendered = err.render().splitlines()
    assert rendered[0] == f"<string>:{line}:{col}: {message}"
    assert "\n" not in message
    if len(rendered) > 1:  # the offending line, then the caret under the column
        lines = cnnspec.language.reading.normalize(text, format).split("\n")
        shown = "".join(c if c.isprintable() else " " for c in lines[line - 1]).rstrip()
        assert rendered[1] == "    " + shown
        assert rendered[2] == " " * (4 + col - 1) + "^"
    return err


# --- 1. numbers out of range ----------------------------------------------------------------

NUMBERS = {
    "5000-digit literal": (
        net("conv(" + "9" * 5000 + ", k=1)"), "cnn", LimitError,
        f"number 999999999999... (5000 digits) {RANGE}", 3, 13),
    "huge literal times a float": (
        net("conv(" + "9" * 400 + " * 1.5, k=1)"), "cnn", LimitError,
        f"number 999999999999... (400 digits) {RANGE}", 3, 13),
    "product out of range": (
        net("conv(1000000000000 * 1000000000000, k=1)"), "cnn", LimitError,
        "'*' gives 100000000000... (25 digits), out of range (at most 1e18 in magnitude)",
        3, 13),
    "float product out of range": (
        net("conv(1000000000 * 1e10 * 1e10, k=1)"), "cnn", LimitError,
        "'*' gives 1e+19, out of range (at most 1e18 in magnitude)", 3, 13),
    "float literal overflows": (
        net("dropout(1e999)"), "cnn", LimitError, f"number 1e999 {RANGE}", 3, 16),
    "stride 10**99": (
        net(f"conv(6, k=1, s={HUGE})"), "cnn", LimitError,
        f"number 100000000000... (100 digits) {RANGE}", 3, 23),
    "repeat count 10**99": (
        net(f"relu * {HUGE}"), "cnn", LimitError,
        f"number 100000000000... (100 digits) {RANGE}", 3, 15),
    "5000-digit shape dimension": (
        "network T(input=1x" + "9" * 5000 + "):\n    s: relu\n", "cnn", LimitError,
        f"number 999999999999... (5000 digits) {RANGE}", 1, 19),
    "5000-digit train option": (
        "network T(input=1x28x28):\n    s: relu\ntrain(lr=" + "9" * 5000 + ")\n", "cnn",
        LimitError, f"number 999999999999... (5000 digits) {RANGE}", 3, 10),
    "huge input dimension (within range)": (
        "network T(input=99999999999999x1x1):\n    s: relu\n", "cnn", LimitError,
        "shape 99999999999999x1x1 has a dimension over the limit of 1048576", 1, 11),
    "yaml: 5000-digit integer": (
        YAML_HEAD + "    a: [{conv: " + "9" * 5000 + ", k: 1}]\n", "yaml", LimitError,
        f"number 999999999999... (5000 digits) {RANGE}", 5, 16),
    "yaml: 5000-digit expression string": (
        YAML_HEAD + "    a: [{conv: '" + "9" * 5000 + "', k: 1}]\n", "yaml", LimitError,
        f"number 999999999999... (5000 digits) {RANGE}", 5, 17),
    "yaml: huge product in a string": (
        YAML_HEAD + "    a: [{conv: '10000000000 * 1e10', k: 1}]\n", "yaml", LimitError,
        "'*' gives 1e+20, out of range (at most 1e18 in magnitude)", 5, 17),
    "yaml: 5000-digit shape": (
        "network:\n  name: T\n  input: 1x" + "9" * 5000 + "\n  stages:\n    a: [relu]\n",
        "yaml", LimitError, f"number 999999999999... (5000 digits) {RANGE}", 3, 12),
    "yaml: 5000-digit parameter default": (
        "blocks:\n  b:\n    params: [t=" + "9" * 5000 + "]\n    body: [relu]\n"
        + YAML_HEAD + "    a: [b]\n", "yaml", LimitError,
        f"number 999999999999... (5000 digits) {RANGE}", 3, 16),
    "yaml: repeat 10**99": (
        YAML_HEAD + f"    a: [{{repeat: {HUGE}, body: [relu]}}]\n", "yaml", LimitError,
        f"number 100000000000... (100 digits) {RANGE}", 5, 18),
    "yaml: infinity": (
        YAML_HEAD + "    a: [{dropout: .inf}]\n", "yaml", LimitError,
        f"number .inf {RANGE}", 5, 19),
    "yaml: not a number": (
        YAML_HEAD + "    a: [{dropout: .nan}]\n", "yaml", SpecError,
        "'.nan' is not a number", 5, 19),
    "yaml: impossible date": (
        YAML_HEAD + "    a: [{conv: 2001-02-30, k: 1}]\n", "yaml", SpecError,
        "cannot read '2001-02-30' as a value", 5, 16),
}  # fmt: skip


@pytest.mark.parametrize("case", NUMBERS, ids=list(NUMBERS))
def test_numbers_out_of_range_are_positioned_errors(case):
    check(*NUMBERS[case])


# Every argument position, in both front ends: 10**99 is refused where it is written.
CNN_POSITIONS = [
    "conv({n}, k=1)", "conv(6, k={n})", "conv(6, k=1, s={n})", "conv(6, k=1, p={n})",
    "conv(6, k=3, d={n})", "conv(6, k=1, groups={n})", "maxpool({n})", "maxpool(2, s={n})",
    "avgpool(2, p={n})", "adaptive_avgpool({n})", "flatten linear({n})", "dropout({n})",
    "leaky_relu({n})", "batchnorm(eps={n})", "relu * {n}", "conv(6, k=({n}, 1))",
    "conv(-{n}, k=1)",
]  # fmt: skip


@pytest.mark.parametrize("body", CNN_POSITIONS)
def test_huge_number_in_every_argument_position(body):
    text = net(body.format(n=HUGE))
    col = 8 + body.index("{n}")
    check(text, "cnn", LimitError, f"number 100000000000... (100 digits) {RANGE}", 3, col)
    # the same call in YAML, written as an expression string
    yaml_text = YAML_HEAD + f"    a: ['{body.format(n=HUGE)}']\n"
    err = error_of(yaml_text, "yaml")
    assert isinstance(err, CnnspecError) and err.pos[0] == 5


@pytest.mark.parametrize("where", ["input: {n}x1x1", "input: 1x{n}x1", "classes: {n}"])
def test_huge_network_options_in_yaml(where):
    text = "network:\n  name: T\n  " + where.format(n=HUGE) + "\n  stages:\n    a: [relu]\n"
    col = 3 + where.index("{n}")
    check(text, "yaml", LimitError, f"number 100000000000... (100 digits) {RANGE}", 3, col)


# --- 2. YAML nesting is bounded before PyYAML composes (and recurses) -------------------------


@pytest.mark.parametrize("depth", [1_000, 3_000, 20_000])
def test_deep_yaml_is_refused_before_composing(depth):
    text = "network: " + "[" * depth + "]" * depth + "\n"
    start = time.perf_counter()
    check(text, "yaml", LimitError, "nested more than 40 levels deep", 1, 49)
    assert time.perf_counter() - start < 1


def test_deep_block_yaml_and_deep_mappings_are_refused():
    check("network:\n" + "- " * 20_000 + "1\n", "yaml", LimitError,
          "nested more than 40 levels deep", 2, 79)  # fmt: skip
    check("network: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", "yaml", LimitError,
          "nested more than 40 levels deep", 1, 163)  # fmt: skip


def test_deep_expression_string_in_yaml_is_refused():
    text = YAML_HEAD + "    a: [{conv: '" + "(" * 40 + "1" + ")" * 40 + "', k: 1}]\n"
    check(text, "yaml", LimitError, "nested more than 32 levels deep", 5, 49)
    text = YAML_HEAD + "    a: [{conv: '" + " + ".join(["1"] * 20_000) + "', k: 1}]\n"
    check(text, "yaml", LimitError, DEEP_EXPRESSION, 5, 17)


DEEP_EXPRESSION = (
    "expression nests more than 100 operations (in a chain such as 1 + 2 + 3, each operator "
    "holds the ones before it); compute parts of it as block or network parameters"
)


# --- 3. YAML keys PyYAML cannot construct; characters YAML does not allow -------------------

YAML_ODDITIES = {
    "merge key": (
        YAML_HEAD + "    a: [{conv: 6, <<: 1}]\n", "yaml", SpecError,
        "conv has no argument '<<'", 5, 19),
    "value key": (
        YAML_HEAD + "    a: [{conv: 6, =: 1}]\n", "yaml", SpecError,
        "conv has no argument '='", 5, 19),
    "merge key as a layer": (
        YAML_HEAD + "    a: [<<]\n", "yaml", SpecError, "unknown layer or block '<<'", 5, 9),
    "merge key at the top": (
        "<<: 1\n" + YAML_HEAD + "    a: [relu]\n", "yaml", SpecError,
        "unknown key '<<' in the spec", 1, 1),
    "bell character": (
        YAML_HEAD + "    a: [relu\x07]\n", "yaml", SpecSyntaxError,
        "invalid YAML: character '\\x07' is not allowed", 5, 13),
    "NUL character": (
        YAML_HEAD + "    a: [relu]\x00\n", "yaml", SpecSyntaxError,
        "invalid YAML: character '\\x00' is not allowed", 5, 14),
    "escape character on line 2": (
        "network:\n  \x1bname: T\n", "yaml", SpecSyntaxError,
        "invalid YAML: character '\\x1b' is not allowed", 2, 3),
    "vertical tab": (
        "network:\n  name: T\x0b\n", "yaml", SpecSyntaxError,
        "invalid YAML: character '\\x0b' is not allowed", 2, 10),
    "form feed": (
        "network:\n  name: T\x0c\n", "yaml", SpecSyntaxError,
        "invalid YAML: character '\\x0c' is not allowed", 2, 10),
    "a second document": (
        "a: 1\n---\nb: 2\n", "yaml", SpecSyntaxError,
        "invalid YAML: but found another document", 2, 1),
}  # fmt: skip


@pytest.mark.parametrize("case", YAML_ODDITIES, ids=list(YAML_ODDITIES))
def test_yaml_oddities_are_positioned_errors(case):
    check(*YAML_ODDITIES[case])


def test_lone_surrogate_from_a_yaml_escape_renders():
    err = error_of(YAML_HEAD + '    a: ["\\ud800"]\n', "yaml")
    assert err.message == "unknown layer or block '\ud800'" and err.pos == (5, 9)
    assert err.render().splitlines()[0] == "<string>:5:9: unknown layer or block '\\ud800'"
    err.render().encode("utf-8")  # printable on any UTF-8 stream


# --- 5. `t[0]` in a flow mapping, as `cnnspec convert` writes it ------------------------------


def test_bracketed_expression_in_flow_yaml_says_to_quote_it():
    # Inside {...}, '[' ends a plain scalar in YAML itself, so `{conv: t[0]}` is not YAML;
    # the error says how to write it, and the quoted form reads.
    text = ("blocks:\n  b:\n    params: [t]\n    body: [{conv: t[0], k: 1}]\n" + YAML_HEAD
            + "    a: [{b: [[6, 7]]}]\n")  # fmt: skip
    check(text, "yaml", SpecSyntaxError,
          "invalid YAML: expected ',' or '}', but got '[' (inside [...] or {...}, quote an "
          "expression that holds brackets: \"c[0]\")", 4, 20)  # fmt: skip
    spec = cnnspec.load(text.replace("t[0]", '"t[0]"'), format="yaml")
    assert spec.output_shape == (6, 28, 28)
    block_style = text.replace("[{conv: t[0], k: 1}]", "\n      - conv: t[0]\n        k: 1")
    assert cnnspec.load(block_style, format="yaml").output_shape == (6, 28, 28)


# --- 4. line breaks: the caret's line is the line the parser counted --------------------------

# Characters str.splitlines() breaks at but .cnn does not: inside a comment they change nothing.
NOT_CNN_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", NOT_CNN_BREAKS, ids=repr)
def test_cnn_caret_is_on_the_right_line(char):
    text = f"# a{char}b\n" + net("rleu")
    err = check(text, "cnn", SpecError, "unknown layer or block 'rleu' (did you mean 'relu'?)",
                4, 8)  # fmt: skip
    assert err.render().splitlines()[1] == "        s: rleu"


@pytest.mark.parametrize("char", ["\x0b", "\x1c", "\x85", "\u2028", "\u2029"], ids=repr)
def test_cnn_stray_break_character_is_reported_where_it_stands(char):
    err = check(net("relu" + char + " relu"), "cnn", SpecSyntaxError,
                f"unexpected character {char!r}", 3, 12)  # fmt: skip
    assert err.render().splitlines()[1] == "        s: relu  relu"


def test_cnn_form_feed_in_indentation_is_whitespace():
    text = "network T(input=1x28x28):\n\x0c    s: rleu\n"
    check(text, "cnn", SpecError, "unknown layer or block 'rleu' (did you mean 'relu'?)", 2, 9)
    assert cnnspec.load(text.replace("rleu", "relu")).output_shape == (1, 28, 28)


@pytest.mark.parametrize("ending", ["\r", "\r\n"], ids=["CR", "CRLF"])
def test_cr_and_crlf_files_read_like_lf(ending, tmp_path):
    for name in ("lenet.cnn", "lenet.yaml", "googlenet.cnn"):
        lf = (SPECS / name).read_text()
        path = tmp_path / name
        path.write_bytes(lf.replace("\n", ending).encode())
        assert cnnspec.load(path).ir == cnnspec.load(SPECS / name).ir
    text = ("# comment\n" + net("rleu")).replace("\n", ending)
    err = check(text, "cnn", SpecError, "unknown layer or block 'rleu' (did you mean 'relu'?)",
                4, 8)  # fmt: skip
    assert err.render().splitlines()[1] == "        s: rleu"
    yaml_text = (YAML_HEAD + "    a: [rleu]\n").replace("\n", ending)
    check(yaml_text, "yaml", SpecError, "unknown layer or block 'rleu' (did you mean 'relu'?)",
          5, 9)  # fmt: skip


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"], ids=repr)
def test_yaml_line_breaks_count_as_lines(char):
    # YAML itself breaks lines at NEL, LS and PS: the error is a line further down.
    text = f"# a{char}\n" + YAML_HEAD + "    a: [rleu]\n"
    err = check(text, "yaml", SpecError, "unknown layer or block 'rleu' (did you mean 'relu'?)",
                7, 9)  # fmt: skip
    assert err.render().splitlines()[1] == "        a: [rleu]"


def test_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.cnn"
    path.write_bytes(b"\xef\xbb\xbf" + (SPECS / "lenet.cnn").read_bytes())
    assert cnnspec.load(path).name == "LeNet"
    check("\ufeffnetwork T(input=1x8x8):\n    s: rleu\n", "cnn", SpecError,
          "unknown layer or block 'rleu' (did you mean 'relu'?)", 2, 8)  # fmt: skip


# --- 6. names users type first: torch's keywords, misspelt combinators -------------------------


@pytest.mark.parametrize(
    "call, message, col",
    [
        ("conv(6, kernel_size=3)", "conv has no argument 'kernel_size' (that is torch's name: "
         "cnnspec calls it 'k')", 16),
        ("conv(6, 3, stride=2)", "conv has no argument 'stride' (that is torch's name: "
         "cnnspec calls it 's')", 19),
        ("conv(6, 3, padding=1)", "conv has no argument 'padding' (that is torch's name: "
         "cnnspec calls it 'p')", 19),
        ("conv(6, 3, dilation=2)", "conv has no argument 'dilation' (that is torch's name: "
         "cnnspec calls it 'd')", 19),
        ("conv(out_channels=6, k=3)", "conv has no argument 'out_channels' (that is torch's "
         "name: cnnspec calls it 'out')", 13),
        ("maxpool(kernel_size=2)", "maxpool has no argument 'kernel_size' (that is torch's "
         "name: cnnspec calls it 'k')", 16),
        ("flatten linear(out_features=3)", "linear has no argument 'out_features' (that is "
         "torch's name: cnnspec calls it 'out')", 23),
        ("leaky_relu(negative_slope=0.1)", "leaky_relu has no argument 'negative_slope' (that "
         "is torch's name: cnnspec calls it 'slope')", 19),
        ("nin_block(4, 3, strides=2)", "nin_block has no argument 'strides' (that is torch's "
         "name: cnnspec calls it 's')", 24),
        ("conv(in_channels=1, out=6, k=3)", "conv has no argument 'in_channels' (cnnspec "
         "takes it from the input's shape: leave it out)", 13),
        ("conv(6, kk=3)", "conv has no argument 'kk' (did you mean 'k'?)", 16),
        ("conv(6, kernal=3)", "conv has no argument 'kernal' (did you mean 'k', for "
         "kernel?)", 16),
        ("conv(6, 3, strid=2)", "conv has no argument 'strid' (did you mean 's', for "
         "stride?)", 19),
        ("maxpool(2, paddin=1)", "maxpool has no argument 'paddin' (did you mean 'p', for "
         "padding?)", 19),
        ("conv(6, 3, dilaton=2)", "conv has no argument 'dilaton' (did you mean 'd', for "
         "dilation?)", 19),
        ("nin_block(4, 3, stide=2)", "nin_block has no argument 'stide' (did you mean 's', "
         "for stride?)", 24),
        ("gap(kernal=2)", "gap has no argument 'kernal'", 12),
        ("concatt", "unknown layer or block 'concatt' (did you mean 'concat'?)", 8),
    ],
)  # fmt: skip
def test_torch_names_and_typos_get_the_short_name(call, message, col):
    check(net(call), "cnn", SpecError, message, 3, col)


@pytest.mark.parametrize("head", ["concatt:", "ad(project=true):", "heds:"])
def test_misspelt_combinator_is_named(head):
    name = head.split("(")[0].rstrip(":")
    meant = {"concatt": "concat", "ad": "add", "heds": "heads"}[name]
    text = f"network T(input=1x8x8):\n    s:\n        {head}\n            relu\n"
    check(text, "cnn", SpecSyntaxError, f"unknown combinator '{name}' (did you mean '{meant}'?)",
          3, 9)  # fmt: skip


def test_colon_after_a_name_that_is_no_combinator_says_so():
    text = "network T(input=1x8x8):\n    s:\n        shortcut:\n            relu\n"
    message = (
        "a named line (shortcut: ...) stands only among the lines of a block's body, "
        f"and 'shortcut' is not a combinator ({', '.join(COMBINATORS)})"
    )
    assert {"concat", "add", "select"} <= set(COMBINATORS)
    check(text, "cnn", SpecError, message, 3, 9)


def test_misspelt_combinator_in_yaml_is_named():
    text = YAML_HEAD + "    s:\n      - concatt:\n        - [relu]\n"
    check(text, "yaml", SpecError, "unknown layer or block 'concatt' (did you mean 'concat'?)",
          6, 9)  # fmt: skip


# --- 7. add: several lines are several branches, and only a residual projects -----------------

TWO_LINES = "conv(4, k=3, p=1) batchnorm relu\n            conv(4, k=3, p=1) batchnorm"
SUM_ERROR = ("add has 2 unnamed branches (one per line), summed with no shortcut; for one "
             "residual path put its layers in one branch (one line, (...) across lines, or "
             "under a name such as main:), or name the branches to sum")  # fmt: skip


def add_net(head: str, body: str) -> str:
    return f"network T(input=4x8x8):\n    s:\n        {head}\n            {body}\n"


def test_residual_path_over_several_lines_is_refused_with_the_fix():
    check(add_net("add:", TWO_LINES), "cnn", SpecError, SUM_ERROR, 5, 13)
    branches = "        - [{conv: 4, k: 3, p: 1}, batchnorm, relu]\n        - [batchnorm]\n"
    yaml_text = YAML_HEAD.replace("1x28x28", "4x8x8") + "    s:\n      - add:\n" + branches
    check(yaml_text, "yaml", SpecError, SUM_ERROR, 8, 11)


@pytest.mark.parametrize(
    "body",
    [
        "(" + TWO_LINES.replace("\n", "\n ") + ")",  # one branch across lines
        "main:\n                " + TWO_LINES.replace("\n", "\n    "),  # one named branch
        TWO_LINES.replace("\n            ", " "),  # one line
    ],
    ids=["parentheses", "named", "one line"],
)
def test_each_fix_the_message_names_is_one_residual_path(body):
    spec = cnnspec.load(add_net("add:", body))
    (add,) = [node for _, _, node in spec.graph.walk() if node.kind == "add"]
    assert len(add.children) == 1  # one path, and the input added back
    assert spec.params == 2 * (4 * 4 * 9 + 4 + 8)


def test_named_or_combinator_branches_are_summed_on_purpose():
    named = TWO_LINES.replace("conv", "a: conv", 1).replace("\n            ", "\n            b: ")
    assert cnnspec.load(add_net("add:", named)).output_shape == (4, 8, 8)
    mixed = "concat:\n                conv(2, k=1)\n                conv(2, k=1)\n            relu"
    assert cnnspec.load(add_net("add:", mixed)).output_shape == (4, 8, 8)


@pytest.mark.parametrize("value", ["true", "false"])
def test_project_on_several_branches_is_refused(value):
    named = TWO_LINES.replace("conv", "a: conv", 1).replace("\n            ", "\n            b: ")
    check(add_net(f"add(project={value}):", named), "cnn", SpecError,
          "add has 2 branches, which are summed with no shortcut to project; project= applies "
          "to one branch with the input added back", 3, 13)  # fmt: skip


# --- 8. stage and branch names torch's containers already use ---------------------------------


def torch_container_attributes() -> set[str]:
    import torch.nn as nn

    from cnnspec.backends.runtime import Network

    owners = [Network("N", {}), nn.Sequential(), nn.ModuleDict()]
    return {name for owner in owners for name in dir(owner) if not name.startswith("_")}


def test_refused_names_cover_torch_containers():
    from cnnspec.analysis.resolve import CONTAINER_ATTRIBUTES

    assert torch_container_attributes() <= CONTAINER_ATTRIBUTES


@pytest.mark.parametrize("name", sorted(torch_container_attributes()))
def test_stage_and_branch_named_like_a_container_attribute_are_refused(name):
    err = error_of(f"network T(input=1x8x8):\n    {name}: relu\n")
    assert type(err) is SpecError and err.pos == (2, 5), err.render()
    assert f"stage name '{name}' is" in err.message
    heads = f"network T(input=1x8x8):\n    s:\n        heads:\n            {name}: relu\n"
    err = error_of(heads)
    assert type(err) is SpecError and err.pos == (4, 13), err.render()
    assert f"branch name '{name}' is" in err.message


def test_names_near_the_refused_ones_build():
    text = ("network T(input=1x8x8):\n    compiled: relu\n    keys_:\n        heads:\n"
            "            items2: flatten\n            values_x: flatten\n")  # fmt: skip
    model = cnnspec.load(text).build()
    assert [name for name, _ in model.named_children()] == ["compiled", "keys_"]


# --- 9. errors inside built-in blocks point at the user's call ---------------------------------


def prelude_position(text: str) -> tuple[int, int]:
    from importlib.resources import files

    lines = files("cnnspec.language").joinpath("prelude.cnn").read_text().split("\n")
    (hit,) = [(n, line.index(text) + 1) for n, line in enumerate(lines, 1) if text in line]
    return hit


def test_error_in_a_builtin_block_is_at_the_call_with_the_block_line_second():
    line, col = prelude_position("conv(c2[0], k=1)")
    check(net("inception(4, 8, 16, 2)"), "cnn", SpecError,
          f"only tuples can be indexed, not 8 (at prelude.cnn:{line}:{col + 5} in inception "
          "called at 3:8)", 3, 8)  # fmt: skip
    block = "block mine(c):\n    relu inception(4, c, 16, 2)\n"
    check(net("mine(8)", blocks=block), "cnn", SpecError,
          f"only tuples can be indexed, not 8 (at prelude.cnn:{line}:{col + 5} in inception "
          "called at 2:10, in mine called at 5:8)", 2, 10)  # fmt: skip


def test_shape_error_in_a_builtin_block_names_the_call_not_prelude_lines():
    err = error_of(net("vgg_block(1, 4) vgg_block(1, 4)", "1x2x2"))
    line, col = prelude_position("maxpool(2, s=2)")
    assert err.pos == (3, 24)
    assert err.message.endswith(
        f"(from relu in vgg_block at 3:24) (at prelude.cnn:{line}:{col} in vgg_block called "
        "at 3:24)"
    )


def test_error_in_a_users_own_block_keeps_its_position():
    block = "block mine(c):\n    conv(c[0], k=1)\n"
    check(net("mine(8)", blocks=block), "cnn", SpecError,
          "only tuples can be indexed, not 8 (in mine called at 5:8)", 2, 10)  # fmt: skip


# --- 10. expressions YAML folds or unescapes are placed at their scalar ------------------------


@pytest.mark.parametrize(
    "value, line",
    [
        ("clas\n        es", 5),  # a plain scalar folded over two lines: "clas es"
        ('"clas\\tes"', 5),  # an escape: the value is shorter than the text
        ("clas\u2028es", 5),  # YAML's own line break, inside a flow mapping
    ],
    ids=["folded", "escaped", "line separator"],
)
def test_expression_whose_columns_are_not_the_files_is_placed_at_its_scalar(value, line):
    text = YAML_HEAD + f"    s: [flatten, {{linear: {value}}}]\n"
    err = check(text, "yaml", SpecSyntaxError, "unexpected 'es'", line, 27)
    assert err.render().splitlines()[2].endswith("^")


@pytest.mark.parametrize("name", ["steps", "reset_parameters", "out_channels"])
@pytest.mark.parametrize("where", ["stage", "line", "branch"])
def test_names_the_runtime_or_generated_code_keep_for_themselves_are_refused(name, where):
    """A graph keeps its steps in `steps`, init_xavier calls every `reset_parameters`, and a
    generated block class keeps `out_channels`: a child so named broke build or codegen."""
    if where == "stage":
        text = f"network T(input=3x8x8):\n    {name}: conv(3, k=1)\n    b: add({name}, input)\n"
        pos = (2, 5)
    elif where == "line":
        text = (
            f"block b(c):\n    {name}: conv(c, k=1)\n    y: add({name}, input)\n\n"
            "network T(input=3x8x8):\n    s: b(3)\n"
        )
        pos = (2, 5)
    else:
        text = f"network T(input=3x8x8):\n    s:\n        add:\n            {name}: conv(3, k=1)\n"
        pos = (4, 13)
    err = error_of(text)
    assert isinstance(err, SpecError) and err.pos == pos, err.render()
    assert f"name '{name}' is" in err.message


@pytest.mark.parametrize(
    "text, format, op, count, pos",
    [
        ("network R(input=3x8x8):\n    skip: conv(3, k=1)\n    s: add(skip) relu\n", "cnn",
         "add", 1, (3, 8)),
        (YAML_HEAD + "    skip: [conv(3, k=1)]\n    s: [{from: [skip], join: mul}, relu]\n",
         "yaml", "mul", 1, (6, 10)),
        (YAML_HEAD + "    skip: [conv(3, k=1)]\n    s: [{from: [], join: concat}]\n", "yaml",
         "concat", 0, (6, 10)),
    ],
)  # fmt: skip
def test_a_join_of_fewer_than_two_tensors_says_so_plainly(text, format, op, count, pos):
    err = error_of(text, format)
    assert type(err) is SpecError and err.pos == pos, err.render()
    assert err.message == (
        f"{op}(...) joins two or more tensors, got {count}; to go on from one tensor, start "
        "from its name alone"
    )


@pytest.mark.parametrize(
    "layers, message",
    [
        ("upsample(0.1) conv(4, k=1)", "upsample by 0.1 makes 3x8x8 0x0"),
        ("upsample((1, 0.1))", "upsample by (1, 0.1) makes 3x8x8 8x0"),
    ],
)
def test_an_upsample_that_shrinks_a_size_below_one_is_refused_where_it_is(layers, message):
    err = error_of(f"network R(input=3x8x8):\n    s: {layers}\n")
    assert err.pos == (2, 8), err.render()
    assert err.message.startswith(f"{message}: a scale that shrinks a size below 1")

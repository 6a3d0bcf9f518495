"""`cnnspec lsp` driven as an editor drives it: a process on stdio, with pygls' client.

One server serves the module; each test opens its own files under a temporary folder.
"""

from pathlib import Path

import pytest

pytest.importorskip("pygls")

from lsp_client import Editor, uri_of  # noqa: E402
from lsprotocol import types  # noqa: E402

BLOCKS = """\
# A convolution with batch norm and ReLU, padded to keep the size.
block unit(c, k=3):
    conv(c, k=k, p=k // 2) batchnorm relu
"""

NET = """\
use "blocks.cnn"

network Net(input=1x28x28, classes=10, width=16):
    stem: conv(width, k=3, p=1) relu
    body: unit(32) * 2 maxpool(2)
    head: gap flatten linear(classes)
"""


@pytest.fixture(scope="module")
def editor():
    found = Editor()
    yield found
    found.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "blocks.cnn").write_text(BLOCKS)
    (tmp_path / "net.cnn").write_text(NET)
    return tmp_path


def place(text: str, snippet: str, offset: int = 0) -> tuple[int, int]:
    """The editor's (line, character) of `snippet` in `text`, both from 0."""
    index = text.index(snippet) + offset
    line = text.count("\n", 0, index)
    return line, index - (text.rfind("\n", 0, index) + 1)


def test_a_valid_spec_has_no_diagnostics(editor, folder):
    assert editor.open(folder / "net.cnn").diagnostics == ()


def test_a_misspelt_layer_is_marked_where_it_is_written(editor, folder):
    editor.open(folder / "net.cnn")
    text = NET.replace("maxpool(2)", "maxpol(2)")
    found = editor.change(folder / "net.cnn", text).diagnostics
    assert len(found) == 1
    (problem,) = found
    assert "unknown layer or block 'maxpol' (did you mean 'maxpool'?)" in problem.message
    line, character = place(text, "maxpol(2)")
    assert problem.range.start == types.Position(line, character)
    assert problem.range.end == types.Position(line, character + len("maxpol(2)"))
    assert problem.severity == types.DiagnosticSeverity.Error
    assert problem.code == "SpecError"
    # mended, it is gone
    assert editor.change(folder / "net.cnn", NET).diagnostics == ()


def test_keystrokes_sent_as_ranges_are_applied(editor, folder):
    editor.open(folder / "net.cnn")
    line, character = place(NET, "maxpool", 3)
    (problem,) = editor.edit(
        folder / "net.cnn", (line, character), (line, character + 1), ""
    ).diagnostics
    assert "'maxool'" in problem.message
    assert (
        editor.edit(folder / "net.cnn", (line, character), (line, character), "p").diagnostics == ()
    )


def test_a_shape_error_is_marked_at_its_layer(editor, folder):
    text = NET.replace("linear(classes)", "linear(classes, in_features=99)")
    found = editor.open(folder / "net.cnn", text).diagnostics
    (problem,) = found
    assert "linear expects 99 input features, got 32" in problem.message
    assert problem.code == "ShapeError"
    assert problem.range.start == types.Position(*place(text, "linear("))


def test_an_error_in_a_used_file_shows_there_and_at_the_use(editor, folder):
    (folder / "blocks.cnn").write_text(BLOCKS.replace("batchnorm", "batchnrom"))
    (problem,) = editor.open(folder / "net.cnn").diagnostics
    assert problem.message.startswith("in ")
    assert "unknown layer or block 'batchnrom'" in problem.message
    assert problem.range.start == types.Position(0, 4)  # at the `use` line
    (related,) = problem.related_information
    assert related.location.uri == uri_of(folder / "blocks.cnn")
    there = editor.wait_for(uri_of(folder / "blocks.cnn")).diagnostics
    (inside,) = there
    line, character = place(BLOCKS, "batchnorm")
    assert inside.range.start == types.Position(line, character)


def test_a_shape_error_inside_a_used_block_shows_at_its_call(editor, folder):
    text = NET.replace("unit(32) * 2", "unit(0) * 2")
    (problem,) = editor.open(folder / "net.cnn", text).diagnostics
    assert "in " in problem.message and "blocks.cnn" in problem.message
    assert problem.range.start == types.Position(*place(text, "unit(0)"))


def test_hover_over_a_conv_shows_its_shapes_parameters_and_macs(editor, folder):
    editor.open(folder / "net.cnn")
    shown = editor.hover(folder / "net.cnn", *place(NET, "conv(width", 1))
    text = shown.contents.value
    assert "conv(out=16, k=3, p=1)" in text
    assert "`stem.0`" in text
    assert "1x28x28 → 16x28x28" in text
    assert "160 params" in text  # 16 * 9 + 16
    assert f"{160 * 28 * 28 - 16 * 28 * 28:,} MACs" in text
    assert shown.range.start == types.Position(*place(NET, "conv(width"))


def test_hover_inside_the_arguments_shows_the_call(editor, folder):
    editor.open(folder / "net.cnn")
    shown = editor.hover(folder / "net.cnn", *place(NET, "p=1)", 2))
    assert "1x28x28 → 16x28x28" in shown.contents.value


def test_hover_over_a_repeated_block_call_lists_each_place(editor, folder):
    editor.open(folder / "net.cnn")
    text = editor.hover(folder / "net.cnn", *place(NET, "unit(32)")).contents.value
    assert "made in 2 places" in text
    assert "`body.0`" in text and "`body.1`" in text
    assert "16x28x28 → 32x28x28" in text and "32x28x28 → 32x28x28" in text


def test_hover_over_a_stage_and_a_parameter(editor, folder):
    editor.open(folder / "net.cnn")
    stage = editor.hover(folder / "net.cnn", *place(NET, "body:")).contents.value
    assert "stage body" in stage and "16x28x28 → 32x14x14" in stage
    width = editor.hover(folder / "net.cnn", *place(NET, "width, k")).contents.value
    assert "width" in width and "16" in width and "network" in width


def test_hover_over_a_block_definition_and_its_parameter(editor, folder):
    editor.open(folder / "blocks.cnn")
    text = editor.hover(folder / "blocks.cnn", *place(BLOCKS, "unit")).contents.value
    assert "block unit(c, k=3)" in text
    assert "A convolution with batch norm" in text  # its comment
    param = editor.hover(folder / "blocks.cnn", *place(BLOCKS, "k // 2")).contents.value
    assert "k" in param and "3" in param and "unit(c, k=3)" in param


def test_completion_offers_layers_and_blocks(editor, folder):
    text = NET.replace("maxpool(2)", "maxpool(2) ")
    editor.open(folder / "net.cnn", text)
    line, character = place(text, "maxpool(2) ", len("maxpool(2) "))
    items = {i.label: i for i in editor.complete(folder / "net.cnn", line, character)}
    assert {"conv", "maxpool", "batchnorm", "relu", "linear"} <= set(items)
    assert items["conv"].kind == types.CompletionItemKind.Function
    assert "conv(out, k, s=1, p=0" in items["conv"].detail
    assert items["unit"].detail == "block unit(c, k=3)"  # from the used file
    assert "residual" in items  # built in
    assert "concat" in items


def test_completion_offers_a_blocks_arguments_with_defaults(editor, folder):
    text = NET.replace("unit(32)", "unit(32, )")
    editor.open(folder / "net.cnn", text)
    line, character = place(text, "unit(32, ", len("unit(32, "))
    items = {i.label: i for i in editor.complete(folder / "net.cnn", line, character)}
    assert "k=" in items and items["k="].detail == "default 3"
    assert "c=" not in items  # given by position
    assert "width" in items  # a network parameter, for the value


def test_completion_while_the_text_does_not_parse(editor, folder):
    text = NET.replace("maxpool(2)", "conv(8, ")  # as it is being typed
    editor.open(folder / "net.cnn")
    (problem,) = editor.change(folder / "net.cnn", text).diagnostics
    assert problem.code == "SpecSyntaxError"
    line, character = place(text, "conv(8, ", len("conv(8, "))
    labels = {i.label for i in editor.complete(folder / "net.cnn", line, character)}
    assert {"k=", "s=", "p=", "groups="} <= labels and "out=" not in labels


def test_completion_of_a_word_argument(editor, folder):
    text = NET.replace("maxpool(2)", "upsample(scale=2, mode=)")
    editor.open(folder / "net.cnn", text)
    line, character = place(text, "mode=", len("mode="))
    labels = {i.label for i in editor.complete(folder / "net.cnn", line, character)}
    assert {"nearest", "bilinear"} <= labels


def test_go_to_definition_crosses_a_use(editor, folder):
    editor.open(folder / "net.cnn")
    found = editor.definition(folder / "net.cnn", *place(NET, "unit(32)", 1))
    assert found.uri == uri_of(folder / "blocks.cnn")
    assert found.range.start == types.Position(*place(BLOCKS, "unit"))
    to_file = editor.definition(folder / "net.cnn", *place(NET, "blocks.cnn"))
    assert to_file.uri == uri_of(folder / "blocks.cnn")


def test_go_to_definition_of_a_built_in_block_and_a_parameter(editor, folder):
    text = NET.replace("maxpool(2)", "residual(32)")
    editor.open(folder / "net.cnn", text)
    found = editor.definition(folder / "net.cnn", *place(text, "residual"))
    assert found.uri.endswith("prelude.cnn")
    param = editor.definition(folder / "net.cnn", *place(text, "width, k"))
    assert param.range.start == types.Position(*place(text, "width=16"))


def test_document_symbols_list_stages_and_blocks(editor, folder):
    text = BLOCKS + NET.replace('use "blocks.cnn"\n', "").replace("unit", "unit2")
    text = text.replace("block unit(", "block unit2(")
    editor.open(folder / "both.cnn", text)
    found = editor.symbols(folder / "both.cnn")
    assert [(s.name, s.kind) for s in found] == [
        ("unit2", types.SymbolKind.Function),
        ("Net", types.SymbolKind.Class),
    ]
    assert [s.name for s in found[1].children] == ["stem", "body", "head"]
    block = found[0]
    assert block.range.start == types.Position(1, 0)
    assert block.range.end.line == 2  # its body


def test_a_yaml_spec_is_checked_and_hovered(editor, folder):
    text = (
        "network:\n"
        "  name: Y\n"
        "  input: 1x28x28\n"
        "  stages:\n"
        "    s: [{conv: 8, k: 3}, relu, flatten, {linear: 10}]\n"
    )
    assert editor.open(folder / "y.yaml", text).diagnostics == ()
    shown = editor.hover(folder / "y.yaml", *place(text, "conv")).contents.value
    assert "1x28x28 → 8x26x26" in shown
    bad = text.replace("relu", "rleu")
    (problem,) = editor.change(folder / "y.yaml", bad).diagnostics
    assert "did you mean 'relu'" in problem.message
    assert problem.range.start == types.Position(*place(bad, "rleu"))


def test_hover_in_a_used_file_shows_its_blocks_at_work_in_an_open_spec(editor, folder):
    editor.open(folder / "net.cnn")
    editor.open(folder / "blocks.cnn")
    text = editor.hover(folder / "blocks.cnn", *place(BLOCKS, "conv(c")).contents.value
    assert "made in 2 places" in text
    assert "`body.0.0`" in text and "`conv(out=32, k=3, p=1)`" in text
    assert "16x28x28 → 32x28x28" in text
    assert "in network Net (net.cnn)" in text


def test_hover_keeps_the_shapes_of_lines_not_being_edited(editor, folder):
    editor.open(folder / "net.cnn")
    text = NET.replace("linear(classes)", "linear(classes, in_features=99)")
    assert editor.change(folder / "net.cnn", text).diagnostics  # the head is wrong now
    shown = editor.hover(folder / "net.cnn", *place(text, "conv(width"))
    assert "1x28x28 → 16x28x28" in shown.contents.value
    assert editor.hover(folder / "net.cnn", *place(text, "linear(")).contents.value.startswith(
        "```"
    )  # the line being edited: the layer's signature only


def test_completion_in_yaml_offers_the_arguments_left(editor, folder):
    text = (
        "network:\n"
        "  name: Y\n"
        "  input: 1x28x28\n"
        "  stages:\n"
        "    s: [{conv: 8, k: 3, }, relu, flatten, {linear: 10}]\n"
    )
    editor.open(folder / "y.yaml", text)
    line, character = place(text, "k: 3, ", len("k: 3, "))
    items = {i.label: i for i in editor.complete(folder / "y.yaml", line, character)}
    assert "s:" in items and items["s:"].insert_text == "s: "
    assert "k:" not in items and "out:" not in items


def test_completion_of_the_recipes_words(editor, folder):
    text = NET + "train(optimizer=)\n"
    editor.open(folder / "net.cnn", text)
    line, character = place(text, "optimizer=", len("optimizer="))
    labels = {i.label for i in editor.complete(folder / "net.cnn", line, character)}
    assert labels == {"sgd", "adam", "adamw"}


def test_each_stage_and_block_with_a_wrong_name_has_its_diagnostic(editor, folder):
    text = (
        NET.replace("maxpool(2)", "maxpol(2)")
        .replace("linear(classes)", "linear(clases)")
        .replace('use "blocks.cnn"\n', BLOCKS.replace("relu", "rlu"))
    )
    found = editor.open(folder / "net.cnn", text).diagnostics
    assert [d.message.split(" (")[0] for d in found] == [
        "unknown layer or block 'rlu'",
        "unknown layer or block 'maxpol'",
        "unknown name 'clases'",
    ]
    assert [d.range.start for d in found] == [
        types.Position(*place(text, "rlu")),
        types.Position(*place(text, "maxpol")),
        types.Position(*place(text, "clases")),
    ]


def test_hover_over_a_call_of_a_one_layer_block(editor, folder):
    text = "block c3(c):\n    conv(c, k=3, p=1)\n" + NET.replace('use "blocks.cnn"\n', "").replace(
        "maxpool(2)", "c3(8)"
    ).replace("unit(32) * 2", "relu")
    editor.open(folder / "one.cnn", text)
    shown = editor.hover(folder / "one.cnn", *place(text, "c3(8)")).contents.value
    assert shown.startswith("**c3(8)**: `conv(out=8, k=3, p=1)`")
    assert "16x28x28 → 8x28x28" in shown

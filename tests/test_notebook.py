"""Notebooks: a Spec's rich display, the `%%cnnspec` cell magic, and the example notebook
executed by a real kernel."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import cnnspec
from cnnspec.backends import dot
from cnnspec.backends.summary import table_rows

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebooks" / "classic_cnns.ipynb"
needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz")

LENET = """network LeNet(input=1x28x28, classes=10):
    features:
        conv(6, k=5, p=2) sigmoid avgpool(2, s=2)
        conv(16, k=5) sigmoid avgpool(2, s=2)
    classifier: flatten linear(120) sigmoid linear(84) sigmoid linear(classes)
"""


def body_rows(page: str) -> int:
    return page.count("<tr><td")


# --- the rich display -------------------------------------------------------------------


def test_html_has_the_headline_the_table_at_its_depth_and_the_totals():
    spec = cnnspec.load(ROOT / "specs" / "resnet18.cnn")
    page = spec._repr_html_()
    assert "input 1x224x224 → output 10 · 11,178,378 parameters" in page
    assert f"{spec.macs:,} MACs" in page and "training at batch 256: about" in page
    assert body_rows(page) == len(table_rows(spec.graph)) == 6 + 15  # stages, rows within
    shallow = spec.display(depth=1)._repr_html_()
    deep = spec.display(depth=4)._repr_html_()
    assert body_rows(shallow) == 6 < body_rows(page) < body_rows(deep)
    assert "<tr class=total><td>total</td><td></td><td>1x224x224</td><td>10</td>" in page
    assert "residual(128, s=2)" in page  # a block row shows its call as written


@needs_graphviz
def test_the_picture_is_inline_svg_and_can_be_left_out():
    spec = cnnspec.load(ROOT / "specs" / "googlenet.cnn")
    page = spec._repr_html_()
    assert page.count("<svg") == 1 and "<?xml" not in page
    assert "concat" in page  # the inception blocks are drawn open at the default depth
    closed = spec.display(picture_depth=0)._repr_html_()
    assert closed.count("<g id=\"node") < page.count("<g id=\"node")
    assert "<svg" not in spec.display(picture=False)._repr_html_()


def test_without_graphviz_a_line_says_so_and_the_table_stays(monkeypatch):
    monkeypatch.setattr(dot.shutil, "which", lambda _: None)
    page = cnnspec.load(ROOT / "specs" / "lenet.cnn")._repr_html_()
    assert "<svg" not in page
    assert "No picture: drawing .svg or .png needs Graphviz" in page
    assert body_rows(page) == len(table_rows(cnnspec.load(ROOT / "specs" / "lenet.cnn").graph))


def test_text_is_escaped_in_the_page():
    spec = cnnspec.load(LENET, name="<img src=x onerror=alert(1)>")
    page = spec.display(picture=False)._repr_html_()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_plain_text_forms_are_the_summary_and_a_short_repr():
    spec = cnnspec.load(LENET, name="cell")
    assert repr(spec.display(depth=3)) == spec.summary(3)
    assert repr(spec) == "<Spec LeNet: 1x28x28 -> 10, 61,706 parameters (cell)>"


def test_variant_sets_what_set_sets_and_errors_say_where():
    spec = cnnspec.load(ROOT / "specs" / "vgg11.cnn")
    small = spec.variant(input=(1, 96, 96), classes=5, lr=0.05)
    assert small.input_shape == (1, 96, 96) and small.output_shape == (5,)
    assert small.recipe.lr == 0.05 and spec.recipe.lr == 0.01  # the original is unchanged
    with pytest.raises(cnnspec.CnnspecError, match="no network option.*'ratio'"):
        spec.variant(ratio=2)
    with pytest.raises(cnnspec.CnnspecError, match=r"vgg11.cnn:\d+:\d+: maxpool shrinks"):
        spec.variant(input="1x8x8")


# --- the cell magic -----------------------------------------------------------------------


@pytest.fixture
def shell():
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "cnnspec")
    yield ipython
    InteractiveShell.clear_instance()


def test_the_magic_binds_the_spec_and_a_built_module(shell):
    view = shell.run_cell_magic("cnnspec", "lenet --build net --depth 3", LENET)
    spec, net = shell.user_ns["lenet"], shell.user_ns["net"]
    assert isinstance(spec, cnnspec.Spec) and spec.source.name == "cell"
    assert sum(p.numel() for p in net.parameters()) == spec.params == 61_706
    assert view.depth == 3 and body_rows(view._repr_html_()) == len(table_rows(spec.graph, 3))


def test_a_spec_error_shows_the_cells_line_and_caret_not_a_traceback(shell, capsys):
    cell = LENET.replace("linear(84)", "lineer(84)")
    result = shell.run_cell(f"%%cnnspec lenet\n{cell}")
    out = capsys.readouterr()
    shown = out.out + out.err
    assert not result.success and "lenet" not in shell.user_ns
    assert "Traceback" not in shown
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines[0] == "cell:6:45: unknown layer or block 'lineer' (did you mean 'linear'?)"
    assert lines[1].strip().startswith("classifier: flatten") and lines[2].strip() == "^"
    assert lines[2].index("^") == lines[1].index("lineer")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("--bild net", "unknown option '--bild'"),
        ("2lenet", "'2lenet' is not a Python name"),
        ("lenet --build 'a b'", "'a b' is not a Python name"),
        ("--depth -1", "a depth is 0 or more"),
        ("--depth two", "invalid int value"),
        ("--format toml", "invalid choice"),
    ],
)
def test_a_wrong_magic_line_is_one_message_with_the_usage(shell, capsys, line, says):
    result = shell.run_cell(f"%%cnnspec {line}\n{LENET}")
    out = capsys.readouterr()
    shown = out.out + out.err
    assert not result.success and "Traceback" not in shown
    assert says in shown and "usage: %%cnnspec [NAME]" in shown


# --- the example notebook ---------------------------------------------------------------


def outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] == "error":
            parts.append("\n".join(output["traceback"]))
        else:
            parts.extend(output.get("data", {}).values())
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


@pytest.mark.slow
def test_the_example_notebook_runs_and_shows_its_networks(data_dir):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    env = {**os.environ, "CNNSPEC_DATA": str(data_dir)}
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )  # fmt: skip
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client.execute()  # raises on any error outside the cell tagged raises-exception
    finally:
        os.environ.clear()
        os.environ.update(old)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    by_start = {cell.source.split("\n")[0]: cell for cell in code}

    lenet = by_start["%%cnnspec lenet --build net"]
    html = lenet.outputs[0]["data"]["text/html"]
    assert "61,706 parameters" in html and "<table class=cnnspec>" in html
    if shutil.which("dot"):
        assert "<svg" in html
    assert "(10,) (10,) 61706 61706" in outputs_text(by_start["import torch"])

    mistake = by_start["%%cnnspec"]
    assert mistake.outputs[0]["output_type"] == "error"
    assert "cell:4:25: unknown layer or block 'lineer'" in outputs_text(mistake)
    assert "Traceback" not in outputs_text(mistake)

    ratios = outputs_text(by_start['print(f"{\'ratio\':>5} {\'parameters\':>12} {\'MACs\':>15} '
                                    "{'memory/example':>15}\")"])  # fmt: skip
    assert re.search(r"^\s+4\s+43,093,322\s+512,155,648", ratios, re.MULTILINE)

    shown = "\n".join(outputs_text(cell) for cell in code)
    for name in ("LeNet", "AlexNet", "VGG", "NiN", "GoogLeNet", "ResNet18", "DenseNet"):
        assert f"<b>{name}</b>" in shown
    assert "test acc" in shown and "parameters loaded from lenet_bn" in shown

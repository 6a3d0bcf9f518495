"""`cnnspec graph -o page.html`: a page to explore, checked as text for every spec and with
real clicks in headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import cnnspec
from cnnspec.backends.page import page
from cnnspec.backends.summary import table_rows
from cnnspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
EVERY_SPEC = sorted(
    p for folder in ("", "zoo", "dense", "papers") for p in (ROOT / "specs" / folder).glob("*.cnn")
)
BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)


def node_paths(text: str) -> list[str]:
    boxes = text.split("<tbody", 1)[0]
    return re.findall(r'data-path="([^"]*)"', boxes)


@pytest.mark.parametrize("path", EVERY_SPEC, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_row_has_its_box_and_every_box_its_row(path):
    spec = cnnspec.load(path, limits=cnnspec.Limits(max_activations=1 << 40))
    text = page(spec.graph)
    rows = [row.path for row in table_rows(spec.graph, depth=1 << 30)]
    boxes = node_paths(text)
    assert len(boxes) == len(set(boxes))  # one box per node: a row finds exactly one
    assert sorted(boxes) == sorted(rows)
    assert re.findall(r'<tr data-path="([^"]*)"', text) == rows  # in forward order
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched


def test_every_text_from_the_spec_is_escaped():
    spec = cnnspec.load(
        "network T(input=1x8x8, classes=2):\n    s: flatten linear(classes)\n",
        name="<script>alert(1)</script>",
    )
    text = page(spec.graph, spec.source.name)
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_blocks_start_closed_and_depth_opens_them():
    graph = cnnspec.load(ROOT / "specs" / "zoo" / "resnet50.cnn").graph
    assert page(graph).count("class='group block closed'") == 16  # every bottleneck a box
    opened = page(graph, depth=1)
    assert opened.count("class='group block'") == 16 and "group block closed" not in opened


# --- in a browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if BROWSER is None:
        pytest.skip("no Chromium")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=BROWSER, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, tmp_path, name: str, *flags: str):
    target = tmp_path / f"{name}.html"
    assert main(["graph", str(ROOT / "specs" / "zoo" / f"{name}.cnn"), "-o", str(target),
                 *flags]) == 0  # fmt: skip
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    fetched = []
    tab.on("request", lambda request: fetched.append(request.url))
    tab.goto(target.as_uri())
    assert fetched == [target.as_uri()]  # offline: the page asks for nothing else
    return tab


def visible_rows(tab) -> list[str]:
    return tab.eval_on_selector_all(
        "#rows tr[data-path]", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.path)"
    )


def on_screen(tab, selector: str) -> bool:
    box = tab.locator(selector).bounding_box()
    return box is not None and 0 <= box["y"] < 900 and box["height"] > 0


def test_clicking_a_block_opens_it_and_finds_its_row(browser, tmp_path):
    tab = open_page(browser, tmp_path, "resnet50")
    block = '#net [data-path="layer2.0"]'
    assert "closed" in tab.get_attribute(block, "class")
    assert "layer2.0" in visible_rows(tab) and "layer2.0.0" not in visible_rows(tab)
    tab.click(f"{block} > .head")
    assert "closed" not in tab.get_attribute(block, "class")
    assert tab.is_visible('#net [data-path="layer2.0.0.branches.main.3"]')
    assert "layer2.0.0.branches.main.3" in visible_rows(tab)  # the table follows the boxes
    assert "sel" in tab.get_attribute('#rows tr[data-path="layer2.0"]', "class")

    spec = cnnspec.load(ROOT / "specs" / "zoo" / "resnet50.cnn")
    conv = next(r for r in spec.layers if r["path"] == "layer2.0.0.branches.main.3")
    tab.hover('#net [data-path="layer2.0.0.branches.main.3"]')
    shown = tab.inner_text("#info")
    size = "x".join
    assert "conv(out=128, k=3, s=2, p=1, bias=false)" in shown
    assert (
        f"{size(map(str, conv['input_shape']))} → {size(map(str, conv['output_shape']))}" in shown
    )
    assert f"{conv['params']:,}" in shown

    tab.click(f"{block} > .head")  # closes again, and its rows go
    assert "closed" in tab.get_attribute(block, "class")
    assert "layer2.0.0" not in visible_rows(tab)


def test_a_row_finds_its_box_opening_what_holds_it(browser, tmp_path):
    tab = open_page(browser, tmp_path, "densenet121")
    tab.check("#every-row")
    path = "features.8.branches.20.5"  # a conv deep in the third dense block
    tab.click(f'#rows tr[data-path="{path}"]')
    node = f'#net [data-path="{path}"]'
    assert "sel" in tab.get_attribute(node, "class")
    assert tab.is_visible(node) and on_screen(tab, node)  # opened and scrolled to
    assert "closed" not in tab.get_attribute('#net [data-path="features.8"]', "class")
    assert "conv(out=32, k=3, p=1, bias=false)" in tab.inner_text("#info")


def test_the_layout_turns_left_to_right(browser, tmp_path):
    tab = open_page(browser, tmp_path, "resnet50")
    stem = tab.locator('#net [data-path="stem"]').bounding_box()
    layer1 = tab.locator('#net [data-path="layer1"]').bounding_box()
    assert layer1["y"] > stem["y"] + stem["height"] - 1  # one under the other
    tab.click("#layout")
    stem = tab.locator('#net [data-path="stem"]').bounding_box()
    layer1 = tab.locator('#net [data-path="layer1"]').bounding_box()
    assert layer1["x"] > stem["x"] + stem["width"] - 1  # side by side
    lr = open_page(browser, tmp_path, "resnet50", "--layout", "lr")
    assert "lr" in lr.get_attribute("#net", "class")

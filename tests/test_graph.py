"""`cnnspec graph`: the network drawn from the static graph, checked on the seed specs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import SPEC_NAMES, SPECS, spec_path

import cnnspec
from cnnspec.backends import dot
from cnnspec.backends.summary import shape_text
from cnnspec.cli import main

needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


def picture(name: str, depth: int = dot.DEFAULT_DEPTH) -> str:
    return dot.to_dot(cnnspec.load(spec_path(name)).graph, depth)


def merges(text: str, label: str) -> int:
    return len(re.findall(rf'\[label="{re.escape(label)}", shape="circle"', text))


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_stage_is_a_cluster_and_every_layer_is_drawn(name):
    spec = cnnspec.load(spec_path(name))
    text = dot.to_dot(spec.graph, depth=99)  # every block open: every layer is a box
    stages = re.findall(r'subgraph cluster_\d+ \{\n\s+label="([^"]+)";', text)
    assert [s for s in stages if s in dict(spec.graph.root.children)] == [
        name for name, _ in spec.graph.root.children
    ]
    boxes = re.findall(r'^\s*n\d+ \[label="([^"]+)"\];$', text, re.MULTILINE)
    assert len(boxes) == len(spec.layers)  # shortcut projections are layers too
    assert f'label=" {"x".join(map(str, spec.input_shape))}"' in text  # the first edge


EVERY_SPEC = sorted(
    p.relative_to(SPECS).with_suffix("").as_posix()
    for folder in ("", "zoo", "dense", "papers")
    for p in (SPECS / folder).glob("*.cnn")
)
BOX = re.compile(r'^\s*(n\d+) \[label="([^"]+)"\];$', re.MULTILINE)
EDGE = re.compile(r'^\s*(n\d+) -> (n\d+) \[label=" ([^"]*)"(.*)\];$', re.MULTILINE)


@pytest.mark.parametrize("name", EVERY_SPEC)
def test_every_edge_carries_the_shape_its_layer_gives_or_takes(name):
    """With every block open, each layer is a box (in forward order, as the rows are): an
    edge out of it is labelled with its output shape, an edge into it with its input."""
    spec = cnnspec.load(spec_path(name), limits=cnnspec.Limits(max_activations=1 << 40))
    text = dot.to_dot(spec.graph, depth=99)
    boxes = [box for box, _ in BOX.findall(text)]
    assert len(boxes) == len(spec.layers)
    made = {box: shape_text(tuple(r["output_shape"])) for box, r in zip(boxes, spec.layers)}
    taken = {box: shape_text(tuple(r["input_shape"])) for box, r in zip(boxes, spec.layers)}
    edges = EDGE.findall(text)
    assert len(edges) == text.count(" -> ")
    for tail, head, label, attrs in edges:
        if tail in made:
            assert label == made[tail], (tail, head)
        if head in taken and "dotted" not in attrs:  # dotted: a size read with like=
            assert label == taken[head], (tail, head)


@pytest.mark.parametrize("name", ["zoo/mobilenet_v3_small", "zoo/efficientnet_b0"])
def test_a_gate_multiplies_its_input_drawn_as_a_skip(name):
    """`mul`: the input (dashed, at its full size) times the gate's output (C x 1 x 1)."""
    spec = cnnspec.load(spec_path(name))
    text = dot.to_dot(spec.graph, depth=99)
    gates = re.findall(r'^\s*(n\d+) \[label="×", shape="circle"', text, re.MULTILINE)
    assert gates
    edges = EDGE.findall(text)
    for gate in gates:
        into = [(label, attrs) for _, head, label, attrs in edges if head == gate]
        assert len(into) == 2, gate
        (skip, _), (gated, _) = sorted(into, key=lambda e: "dashed" not in e[1])
        assert "dashed" in into[0][1] + into[1][1]
        assert gated.endswith("x1x1") and not skip.endswith("x1x1")


def test_a_residuals_own_scale_is_drawn_on_its_branch():
    spec = cnnspec.load(spec_path("zoo/convnext_tiny"))
    text = dot.to_dot(spec.graph, depth=99)
    boxes = re.findall(r'^\s*n\d+ \[label="([^"]+)"\];$', text, re.MULTILINE)
    assert len(boxes) == len(spec.layers) and sum("layer_scale" in b for b in boxes) == 18


def test_merges_are_drawn_as_what_they_do():
    googlenet = picture("googlenet")
    assert merges(googlenet, "concat") == 9  # one per inception block
    resnet = picture("resnet18")
    assert merges(resnet, "+") == 8  # one per residual block
    assert resnet.count('style="dashed"') == 8  # each shortcut, three through a projection
    assert resnet.count("conv(out=128, k=1, s=2)") == 1
    densenet = picture("densenet")
    assert merges(densenet, "concat") == 4 * 4  # a unit's input joins its output
    heads = picture("svhn_multihead")
    assert len(re.findall(r'label="c\d\\n11"', heads)) == 6  # one output per head
    assert 'label="output' not in heads


def test_depth_zero_draws_each_block_as_one_box():
    text = picture("googlenet", depth=0)
    assert merges(text, "concat") == 0
    assert text.count('label="inception(') == 9
    assert "163.7k params" in text  # the first inception's parameters


@needs_graphviz
@pytest.mark.parametrize("suffix", [".svg", ".png", ".html", ".dot"])
def test_cli_writes_each_format(suffix, tmp_path, capsys):
    target = tmp_path / f"googlenet{suffix}"
    assert main(["graph", str(spec_path("googlenet")), "-o", str(target)]) == 0
    data = target.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG")
    elif suffix == ".svg":
        assert b"<svg" in data and b"inception(" in data
    elif suffix == ".html":  # boxes laid out by the browser, and the layer table
        page = data.decode()
        assert "<title>GoogLeNet</title>" in page and "<svg" not in page
        for stage in ("b1", "b2", "b3", "b4", "b5", "head"):
            assert f"<b>{stage}</b>" in page
        assert '<tr data-path="b3.0">' in page and 'data-path="b3.0"' in page
    else:
        assert data.decode().startswith('digraph "GoogLeNet"')


def test_without_graphviz_only_dot_works_and_the_message_says_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dot.shutil, "which", lambda name: None)
    target = tmp_path / "net.svg"
    assert main(["graph", str(spec_path("lenet")), "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install graphviz" in err
    assert not target.exists()
    assert main(["graph", str(spec_path("lenet")), "-o", str(tmp_path / "net.dot")]) == 0
    assert main(["graph", str(spec_path("lenet")), "-o", str(tmp_path / "net.html")]) == 0


@needs_graphviz
def test_every_picture_ends_within_seconds_or_is_refused(tmp_path, monkeypatch, capsys):
    """Graphviz's layout grows faster than the picture: one past the bound on boxes is
    refused before Graphviz starts, and Graphviz is stopped past its time, either way with
    one line and no file; the DOT text is always written, and so is the page, which the
    browser lays out."""
    import time

    spec = tmp_path / "long.cnn"
    spec.write_text("network T(input=1x8x8, classes=10):\n    s: (conv(2, k=1) relu) * 600\n")
    for suffix in (".svg", ".png"):
        target = tmp_path / f"long{suffix}"
        start = time.monotonic()
        assert main(["graph", str(spec), "-o", str(target)]) == 2
        assert time.monotonic() - start < 10
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "1,203 boxes, more than the 1,000" in err, err
        assert not target.exists()
    assert main(["graph", str(spec), "-o", str(tmp_path / "long.dot")]) == 0
    assert main(["graph", str(spec), "-o", str(tmp_path / "long.html")]) == 0
    capsys.readouterr()
    monkeypatch.setattr(dot, "MAX_SECONDS", 0.01)  # a picture Graphviz cannot finish in time
    target = tmp_path / "googlenet.svg"
    assert main(["graph", str(spec_path("googlenet")), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Graphviz was stopped after 0.01 s" in err, err
    assert not target.exists()


def test_other_suffixes_are_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["graph", str(spec_path("lenet")), "-o", str(tmp_path / "net.pdf")])
    assert info.value.code == 2


BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium")
@pytest.mark.parametrize("name", ["googlenet", "resnet18", "densenet"])
def test_the_html_page_shows_the_network_in_a_browser(name, tmp_path):
    """The page as a browser renders it: its text names the network and every stage, and
    the screenshot holds a drawing, not a blank page."""
    from PIL import Image

    page = tmp_path / f"{name}.html"
    assert main(["graph", str(spec_path(name)), "-o", str(page)]) == 0
    browser = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path}",
    ]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout  # fmt: skip
    spec = cnnspec.load(spec_path(name))
    assert f"<h1>{spec.name} <span" in dom
    for stage, _ in spec.graph.root.children:
        assert f"<b>{stage}</b>" in dom, stage
    shot = tmp_path / "shot.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    pixels = Image.open(shot).convert("L").tobytes()  # one byte per pixel
    drawn = sum(1 for p in pixels if p < 200) / len(pixels)
    assert drawn > 0.01, f"the page looks blank ({drawn:.2%} of it drawn)"

"""Codegen on specs nobody on the team wrote: every spec that builds generates a module
that imports and equals the live build, and no name a spec chooses breaks or injects code."""

import pytest
from conftest import check_all_backends

import cnnspec
from cnnspec.backends.codegen.values import py_value
from cnnspec.errors import CnnspecError

# Each builds; each once failed codegen or produced a module that failed on import.
OPEN_WORLD = {
    "default naming another parameter": """
block fire(s, e1, e3=e1):
    conv(s, k=1) relu
    concat:
        conv(e1, k=1) relu
        conv(e3, k=3, p=1) relu
network T(input=3x8x8, classes=10):
    a: fire(2, 4) fire(2, 4, 6)
""",
    "default naming C": """
block squeeze(d=C // 2):
    conv(d, k=1) relu conv(C, k=1)
network T(input=4x8x8, classes=10):
    a: squeeze() squeeze(3)
""",
    "project=false around a block call": """
block unit(c):
    conv(c, k=3, p=1) relu conv(c, k=1)
network T(input=4x8x8, classes=10):
    a:
        add(project=false):
            unit(4)
""",
    "project=false around windows sized by expressions": """
block res(c, k=3):
    add(project=false):
        conv(c, k=k, p=k // 2) relu
network T(input=4x8x8, classes=10):
    a: res(4) res(4, 5)
""",
    "one-layer block inside a block": """
block act():
    relu6
block unit(c):
    conv(c, k=1) act()
network T(input=3x8x8, classes=10):
    a: unit(4) unit(5)
""",
    "classifier head as a block": """
block classifier(n):
    gap flatten linear(n)
network T(input=3x8x8, classes=7):
    a: conv(4, k=3) relu
    head: classifier(classes)
""",
    "H and W inside a block": """
block whole(c):
    conv(c, k=(H, W))
network T(input=3x5x7, classes=10):
    a: whole(4)
""",
    "block that calls a block with no generic class": """
block classifier(n):
    flatten linear(n)
block head(n):
    gap classifier(n)
network T(input=3x8x8, classes=10):
    a: conv(4, k=3) relu
    b: head(classes)
""",
    "blocks named like Python constants": """
block none_(c):
    conv(c, k=1) relu
block true_(c):
    conv(c, k=1) relu
network T(input=3x8x8, classes=10):
    a: none_(4) true_(4)
""",
    "block named like a runtime class": """
block Concat(c):
    concat:
        conv(c, k=1)
        conv(c, k=3, p=1)
network T(input=3x8x8, classes=10):
    a: Concat(2) Concat(3)
""",
    "parameters named like builtins the module uses": """
block b(super, range, len, named, isinstance):
    (conv(super, k=1) relu) * range
    dense:
        conv(len, k=1)
    concat:
        named: conv(isinstance, k=1)
network T(input=3x8x8, classes=10):
    a: b(4, 2, 3, 5, 2)
""",
    "height in a block": """
block b(c):
    conv(c, k=1) avgpool(H // 2)
network T(input=1x8x8, classes=10):
    a: b(4)
""",
    "shortcut projection around windows sized by expressions": """
block r(c, k):
    add:
        conv(c, k=k, p=k // 2)
network T(input=1x8x8, classes=10):
    a: r(4, 3) r(6, 5)
""",
    "shortcut around parallel branches that each stride 2": """
block down(c):
    add:
        concat:
            conv(c, k=3, s=2, p=1)
            maxpool(3, s=2, p=1)
network T(input=4x8x8, classes=10):
    a:
        add:
            concat:
                conv(4, k=3, s=2, p=1)
                maxpool(3, s=2, p=1)
    b: down(4)
""",
    "network named like a runtime class": """
network Concat(input=3x8x8, classes=10):
    a:
        concat:
            conv(2, k=1)
            relu
""",
}


@pytest.mark.parametrize("case", OPEN_WORLD, ids=list(OPEN_WORLD))
def test_every_spec_that_builds_generates_an_equal_module(case, tmp_path):
    name = "net_" + "".join(ch if ch.isalnum() else "_" for ch in case)
    spec = check_all_backends(OPEN_WORLD[case], tmp_path, name)
    if case == "network named like a runtime class":  # it yields the name
        assert "class Concat_(nn.Module):" in spec.codegen()


def test_non_finite_floats_are_refused_where_written_and_never_bare_names():
    """A spec cannot write inf (numbers are bounded where written); should one reach
    codegen from a computation, it is written as a call, not as the bare name `inf`."""
    text = "network T(input=3x4x4, classes=10):\n    a: leaky_relu(-1e999) relu\n"
    with pytest.raises(CnnspecError) as info:
        cnnspec.load(text)
    assert info.value.pos == (2, 20)  # the number, after its sign
    for value in (float("inf"), float("-inf"), float("nan")):
        written = py_value(value)
        assert written.startswith("float(")
        assert repr(eval(written)) == repr(value)

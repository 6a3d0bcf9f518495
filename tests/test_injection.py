"""Every name a spec writes reaches generated Python: none may run code or break it.

A template spec puts one hostile name at a time at every place a name can be written
(network, block, parameter, stage, branch, keyword of a block call, keyword of a layer
call that is repeated zero times), in both front ends. Each case either is refused with
a positioned one-line error, or checks, builds and generates a module that equals the
live build, and importing that module never runs the payload.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import check_all_backends

import cnnspec
from cnnspec.backends.emit_yaml import to_yaml
from cnnspec.errors import CnnspecError
from cnnspec.language import ir
from cnnspec.language.parse_cnn import parse_cnn

TEMPLATE = """\
block BLOCK(PARAM, c=PARAM):
    conv(c, k=1) relu
    concat:
        BRANCH: conv(PARAM, k=1)
        conv(c, k=1)
network NET(input=3x8x8, classes=10):
    STAGE: BLOCK(2) BLOCK(PARAM=3, c=2)
    tail: (conv(4, KEYWORD=1)) * 0 conv(4, k=1)
"""
# What each place holds when it is not under test (each a name the spec can use).
PLACES = {
    "NET": "T",
    "BLOCK": "unit",
    "PARAM": "width",
    "STAGE": "body",
    "BRANCH": "left",
    "KEYWORD": "k",
}
MARKER = "PAYLOAD_RAN"
PAYLOADS = [
    f"__import__('os').system('touch {MARKER}')",
    f"k=__import__('os').system('touch {MARKER}')#",
    f"a): pass\nimport os; os.system('touch {MARKER}')\n#",
    "a\nimport os",
    "a;import os",
    "a.b",
    "a-b",
    "1a",
    "ａ",  # a fullwidth letter: an identifier to Python, NFKC-folded to 'a'
    "é",
    # Identifiers that would shadow or break what generated code uses.
    *("print", "torch", "nn", "F", "self", "super", "exec", "getattr", "len", "range"),
    *("None", "True", "class", "lambda", "import"),
    *("__class__", "__init__", "__all__", "forward", "training", "Concat", "Sequential"),
]


def spec_with(place: str, payload: str) -> str:
    names = {**PLACES, place: payload}
    return re.sub("|".join(PLACES), lambda m: names[m.group(0)], TEMPLATE)


def yaml_with(place: str, payload: str) -> str:
    """The YAML form of the template, with the payload as a quoted YAML string."""
    safe = {**PLACES, place: "zzplaceholder"}
    document = ir.to_ir(parse_cnn(re.sub("|".join(PLACES), lambda m: safe[m.group(0)], TEMPLATE)))
    text = to_yaml(document)  # parsed only: the placeholder keyword would not check
    return text.replace("zzplaceholder", json.dumps(payload))


CASES = [
    (form, place, payload) for form in ("cnn", "yaml") for place in PLACES for payload in PAYLOADS
]


@pytest.mark.parametrize(("form", "place", "payload"), CASES)
def test_no_name_runs_code_or_breaks_the_module(form, place, payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a payload that ran would leave its marker
    text = spec_with(place, payload) if form == "cnn" else yaml_with(place, payload)
    try:
        cnnspec.load(text, format=form)  # parses and infers: the whole check
    except CnnspecError as err:
        rendered = err.render()
        assert re.match(r"<string>:\d+:\d+: ", rendered), rendered
        line = int(rendered.split(":")[1])
        assert 1 <= line <= text.count("\n") + 1
        return
    check_all_backends(text, tmp_path, "generated_net", format=form)
    assert not (tmp_path / MARKER).exists()


def test_the_template_itself_is_valid(tmp_path):
    """Without a payload the template generates, so a refusal above is the payload's."""
    for form in ("cnn", "yaml"):
        text = spec_with("NET", "T") if form == "cnn" else yaml_with("NET", "T")
        check_all_backends(text, tmp_path, f"template_{form}", format=form)

"""Nothing a spec, a file name or an argument holds reaches the terminal as a control
sequence: every place such text can be written, with every kind of control character, is
run through the command line, and what it prints holds none (they show as escapes)."""

from __future__ import annotations

import json
import os
import re

import pytest

import cnnspec
from cnnspec.cli import main

# ESC sequences that set the window title, write the clipboard (OSC 52) and clear the
# screen; C1's one-character CSI; BEL, CR and backspace, which hide what was printed; a
# right-to-left override; a byte that is not UTF-8 (a lone surrogate once decoded).
PAYLOADS = {
    "osc-title": "\x1b]0;owned\x07",
    "osc-52": "\x1b]52;c;ZWNobyBvd25lZA==\x07",
    "csi-clear": "\x1b[2J\x1b[H",
    "c1-csi": "\x9b2J",
    "cr-backspace": "a\rb\x08",
    "bidi": "\u202egnp.cnn",
    "not-utf8": os.fsdecode(b"\xff\xfe"),
}
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

NET = "network T(input=1x8x8, classes=10):\n    s: conv(4, k=3) relu flatten linear(classes)\n"
YAML = {
    "network": {
        "name": "T",
        "input": "1x8x8",
        "classes": 10,
        "stages": {"s": [{"conv": 4, "k": 3}, "relu", "flatten", {"linear": "classes"}]},
    }
}


def yaml_with(where: str, payload: str) -> str:
    doc = json.loads(json.dumps(YAML))
    network = doc["network"]
    if where == "network name":
        network["name"] = payload
    elif where == "stage name":
        network["stages"] = {payload: network["stages"]["s"]}
    elif where == "layer name":
        network["stages"]["s"][1] = payload
    elif where == "argument key":
        network["stages"]["s"][0][payload] = 1
    elif where == "argument text":
        network["stages"]["s"][0]["k"] = payload
    elif where == "top-level key":
        doc[payload] = 1
    elif where == "use path":
        doc["use"] = [payload + ".cnn"]
    return json.dumps(doc, ensure_ascii=True)  # YAML reads JSON; escapes keep it one line


# Where text from outside reaches a message: the spec's file name (a good spec and a bad
# one), names and keys inside YAML, a `use` path, and the command line's own arguments.
PLACES = [
    "file name",
    "bad file name",
    "network name",
    "stage name",
    "layer name",
    "argument key",
    "argument text",
    "top-level key",
    "use path",
    "--set",
    "-o",
    "--data-dir",
]


def commands(place: str, payload: str, tmp_path) -> list[list[str]]:
    safe = payload.replace("/", "_")
    if place in ("file name", "bad file name"):
        spec = tmp_path / f"n{safe}.cnn"
        spec.write_text(NET if place == "file name" else NET.replace("relu", "relx"))
    elif place in ("--set", "-o", "--data-dir"):
        spec = tmp_path / "net.cnn"
        spec.write_text(NET)
    else:
        spec = tmp_path / "net.yaml"
        spec.write_text(yaml_with(place, payload))
    spec = str(spec)
    if place == "--set":
        return [["check", spec, "--set", f"classes={payload}"], ["build", spec, "--set", payload]]
    if place == "-o":
        return [["graph", spec, "-o", str(tmp_path / f"{safe}.txt")]]
    if place == "--data-dir":
        return [["train", spec, "--data-dir", str(tmp_path / safe), "--epochs", "1"]]
    return [
        ["check", spec],
        ["build", spec, "--no-forward"],
        ["graph", spec],
        ["convert", spec],
        ["compare", spec],
    ]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_no_control_character_reaches_the_terminal(place, payload, tmp_path, capsys):
    for argv in commands(place, payload, tmp_path):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code
        out, err = capsys.readouterr()
        assert code in (0, 1, 2), (argv, err)
        for stream in (out, err):
            assert not CONTROL.search(stream), (argv, stream)
        assert "Traceback" not in err


def test_a_file_name_that_is_not_utf8_works_in_every_command(tmp_path, capsys):
    """Such a name reaches the summary, the page's table and generated code's header: each
    shows it escaped, and every file written is UTF-8."""
    name = os.fsdecode(b"net\xff")
    spec = tmp_path / f"{name}.cnn"
    spec.write_text(NET)
    out = tmp_path / os.fsdecode(b"out\xfe")
    for argv in (
        ["build", str(spec)],
        ["graph", str(spec), "-o", f"{out}.html"],
        ["graph", str(spec), "-o", f"{out}.svg"],
        ["codegen", str(spec), "-o", str(out)],
        ["compare", str(spec)],
    ):
        assert main(argv) == 0, argv
        printed = "".join(capsys.readouterr())
        assert "\\xf" in printed and not CONTROL.search(printed), argv
    page = (tmp_path / os.fsdecode(b"out\xfe.html")).read_bytes().decode("utf-8")
    assert "net\\xff" in page
    (out / "net_.py").read_bytes().decode("utf-8")


def test_a_notebook_view_of_such_a_file_shows_its_name_escaped(tmp_path):
    """The HTML a notebook shows is written to the notebook file as UTF-8: a name that is
    not (or holds a control character) is spelled as an escape there too."""
    name = os.fsdecode(b"net\xff\x1b")
    spec = tmp_path / f"{name}.cnn"
    spec.write_text(NET)
    shown = cnnspec.load(spec).display(picture=False)._repr_html_()
    shown.encode("utf-8")
    assert "net\\xff\\x1b" in shown and not CONTROL.search(shown)

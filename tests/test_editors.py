"""The VS Code extension in editors/vscode names the language's words as the compiler does:
its grammar highlights every layer, combinator and function, and nothing that is not one."""

import json
import re
from pathlib import Path

from cnnspec.analysis.ops import LAYERS
from cnnspec.language.expressions import FUNCTIONS
from cnnspec.language.ir import COMBINATORS

EXTENSION = Path(__file__).resolve().parent.parent / "editors" / "vscode"


def grammar_words(scope: str) -> set[str]:
    grammar = json.loads((EXTENSION / "syntaxes" / "cnnspec.tmLanguage.json").read_text())
    (pattern,) = [p["match"] for p in grammar["patterns"] if p.get("name") == scope]
    return set(re.match(r"\\b\(([^)]*)\)", pattern).group(1).split("|"))


def test_the_grammar_knows_the_layers_combinators_and_functions():
    assert grammar_words("support.function.layer.cnnspec") == set(LAYERS)
    assert grammar_words("keyword.other.combinator.cnnspec") == set(COMBINATORS)
    assert grammar_words("support.function.builtin.cnnspec") == set(FUNCTIONS)


def test_every_pattern_of_the_grammar_compiles():
    grammar = json.loads((EXTENSION / "syntaxes" / "cnnspec.tmLanguage.json").read_text())
    patterns = grammar["patterns"] + list(grammar["repository"].values())
    for pattern in patterns:
        if "match" in pattern:
            re.compile(pattern["match"])


def test_the_extension_starts_the_server_for_cnn_files_and_yaml():
    manifest = json.loads((EXTENSION / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    assert language["extensions"] == [".cnn"]
    command = manifest["contributes"]["configuration"]["properties"]["cnnspec.server.command"]
    assert command["default"] == ["cnnspec", "lsp"]
    source = (EXTENSION / "extension.js").read_text()
    assert 'language: "cnnspec"' in source and 'language: "yaml"' in source


def test_lsp_without_pygls_says_what_to_install(monkeypatch, capsys):
    import sys

    from cnnspec.cli import main

    for name in [m for m in sys.modules if m == "pygls" or m.startswith(("pygls.", "cnnspec.lsp"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pygls", None)  # as if it were not installed
    assert main(["lsp"]) == 2
    assert "pip install 'cnnspec[lsp]'" in capsys.readouterr().err

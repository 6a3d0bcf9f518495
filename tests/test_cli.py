"""The command line: exit codes, output formats, and errors without tracebacks."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SPEC_NAMES, net, spec_path

import cnnspec
from cnnspec.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnspec", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_check_accepts_every_spec(capsys):
    specs = [str(spec_path(n, s)) for n in SPEC_NAMES for s in (".cnn", ".yaml")]
    assert main(["check", *specs]) == 0
    assert capsys.readouterr() == ("", "")


def test_check_reports_one_line_with_position_and_caret(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text(net("conv(6, k=5) rleu"))
    result = run("check", str(bad), str(spec_path("lenet")))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{bad}:3:21: unknown layer or block 'rleu' (did you mean 'relu'?)"
    assert lines[1].strip() == "s: conv(6, k=5) rleu"
    assert lines[2] == " " * 24 + "^"
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path):
    assert run("check").returncode == 2
    assert run("frobnicate").returncode == 2
    missing = run("check", str(tmp_path / "nope.cnn"))
    assert missing.returncode == 2 and "No such file" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("typo", ["specs/lenet", "lenet", "specs/lenet.cn"])
def test_mistyped_path_without_a_spec_in_it_is_a_usage_error(typo):
    result = run("check", typo)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"cnnspec: {typo}: No such file or directory"]


def test_folder_and_fifo_are_usage_errors(tmp_path):
    import os

    fifo = tmp_path / "pipe.cnn"
    os.mkfifo(fifo)
    for path, why in [(ROOT / "specs", "Is a directory"), (fifo, "not a regular file")]:
        result = run("check", str(path))
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"cnnspec: {path}: {why}"]


def test_version():
    from cnnspec.version import __version__

    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"cnnspec {__version__}\n")


@pytest.mark.parametrize("command", ["build", "convert", "codegen"])
def test_reader_that_goes_away_is_no_traceback(command):
    args = [str(spec_path("googlenet"))] + (["--stdout"] if command == "codegen" else [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnspec", command, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    proc.stdout.close()  # as `| head` does, before anything is written
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 141, stderr
    assert stderr == ""


def test_check_and_codegen_do_not_import_torch():
    code = (
        "import sys; from cnnspec.cli import main; "
        "rc = main(['check', 'specs/googlenet.cnn', 'specs/resnet18.yaml']); "
        "rc += main(['codegen', 'specs/googlenet.cnn', '--stdout']); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip().splitlines()[-1] == "ok", result.stderr


def test_build_json_has_the_documented_fields(capsys):
    assert main(["build", str(spec_path("googlenet")), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "GoogLeNet"
    assert data["input_shape"] == [1, 96, 96] and data["output_shape"] == [10]
    assert data["params"] == 5_977_530 and isinstance(data["macs"], int)
    first = data["layers"][0]
    assert first == {
        "path": "b1.0",
        "op": "conv",
        "input_shape": [1, 96, 96],
        "output_shape": [64, 48, 48],
        "params": 3200,
        "macs": 7_225_344,
        "args": {"out": 64, "k": 7, "s": 2, "p": 3},
    }


def test_build_json_lists_one_shape_per_head(capsys):
    assert main(["build", str(spec_path("svhn_multihead")), "--json", "--no-forward"]) == 0
    assert json.loads(capsys.readouterr().out)["output_shape"] == [[11]] * 6


def test_build_table_and_forward_check(capsys):
    assert main(["build", str(spec_path("lenet"))]) == 0
    out = capsys.readouterr().out
    assert "classifier.5" in out and "61,706" in out
    assert "a forward pass gives the inferred output shape" in out


class TwoHeads(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10], x.flatten(1)[:, :10]


@pytest.mark.parametrize(
    "module, says",
    [(torch.nn.Flatten, "gives 784, but inference says 10"),
     (TwoHeads, "gives 10, 10, but inference says 10")],
)  # fmt: skip
def test_the_forward_check_fails_when_the_module_disagrees_with_inference(
    module, says, monkeypatch, capsys
):
    """`build` runs the module it built: one whose output is not the inferred shape (a
    stand-in dropping the classifier, or giving two heads) fails, naming both shapes."""
    monkeypatch.setattr(cnnspec.Spec, "build", lambda self, *a, **k: module())
    path = str(spec_path("lenet"))
    assert main(["build", path]) == 1
    assert f"LeNet: a forward pass {says}" in capsys.readouterr().err
    assert main(["build", path, "--no-forward"]) == 0
    assert "forward pass" not in capsys.readouterr().out


def test_build_error_is_one_clean_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("network:\n  name: T\n  input: 1x8x8\n  stages:\n    s: [{conv: 3, k: 9}]\n")
    result = run("build", str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(f"{bad}:5:10: conv shrinks the height")
    assert "Traceback" not in result.stderr


def test_schema_is_valid_and_accepts_every_yaml_spec(capsys):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in SPEC_NAMES:
        data = yaml.safe_load(spec_path(name, ".yaml").read_text())
        assert list(validator.iter_errors(data)) == [], name
    assert list(validator.iter_errors({"network": {"name": "T", "input": "1x8", "stagez": {}}}))


@pytest.mark.parametrize(
    ("stage", "blocks", "valid"),
    [
        (["relu"], None, True),
        (["rleu"], None, False),  # a misspelt layer, with no blocks it could name
        ([{"inceptio": [64, [96, 128], [16, 32], 32]}], None, False),
        ([{"inception": [64, [96, 128], [16, 32], 32]}], None, True),  # built in
        (["mine"], {"mine": {"body": ["relu"]}}, True),  # the spec's own blocks stay open
    ],
)
def test_schema_refuses_names_a_spec_without_blocks_cannot_call(stage, blocks, valid):
    jsonschema = pytest.importorskip("jsonschema")
    from cnnspec.backends.schema import yaml_schema

    doc = {"network": {"name": "T", "input": "1x8x8", "stages": {"s": stage}}}
    if blocks:
        doc["blocks"] = blocks
    errors = list(jsonschema.Draft202012Validator(yaml_schema()).iter_errors(doc))
    assert (errors == []) == valid, errors[:1]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_convert_reproduces_the_checked_in_yaml(name, capsys):
    assert main(["convert", str(spec_path(name))]) == 0
    assert capsys.readouterr().out == spec_path(name, ".yaml").read_text()


def test_schema_keeps_names_open_for_a_spec_that_uses_other_files():
    jsonschema = pytest.importorskip("jsonschema")
    from cnnspec.backends.schema import yaml_schema

    doc = {"use": ["blocks.cnn"], "network": {"name": "T", "input": "1x8x8",
                                                "stages": {"s": ["mine"]}}}  # fmt: skip
    assert list(jsonschema.Draft202012Validator(yaml_schema()).iter_errors(doc)) == []


def _refuse_default_sigterm(signum, frame):
    raise AssertionError("SIGTERM reached the default action, which leaves files half written")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(
    "command",
    [["codegen", "{spec}", "{spec2}", "-o", "{out}"], ["graph", "{spec}", "-o", "{out}/p.svg"],
     ["graph", "{spec}", "-o", "{out}/p.html"], ["export", "{spec}", "--onnx", "{out}/n.onnx"]],
    ids=["codegen", "graph-svg", "graph-html", "export"],
)  # fmt: skip
def test_a_signal_while_writing_leaves_no_file_and_the_shells_code(
    command, how, tmp_path, monkeypatch, capsys
):
    """Ctrl-C or SIGTERM at the moment a file is written: exit 130 or 143, one line, and
    neither the file nor a temporary one left behind."""
    import os

    import torch

    import cnnspec.atomic

    spec = tmp_path / "net.cnn"
    spec.write_text(net("conv(2, k=3) relu flatten linear(10)"))
    (tmp_path / "net2.cnn").write_text(spec.read_text())
    out = tmp_path / "out"
    fsync = cnnspec.atomic._fsync_file

    def signalled(path):
        assert path.stat().st_size > 0  # the content is there, not yet in place
        os.kill(os.getpid(), how)
        fsync(path)

    monkeypatch.setattr(cnnspec.atomic, "_fsync_file", signalled)
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: Path(a[2]).write_bytes(b"onnx"))
    previous = signal.signal(signal.SIGTERM, _refuse_default_sigterm)
    # as in a terminal: a shell starts background jobs with SIGINT ignored
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = [a.format(spec=spec, spec2=tmp_path / "net2.cnn", out=out) for a in command]
        assert main(args) == 128 + how
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    word = "interrupted" if how == signal.SIGINT else "terminated"
    assert capsys.readouterr().err == f"cnnspec: {word}\n"
    assert not out.exists() or list(out.iterdir()) == []


def test_no_argument_that_names_a_file_or_folder_may_be_empty(capsys):
    """Found from the parser itself: every path argument of every command refuses "" as a
    usage error naming the argument (not ignored, nor the current folder, nor spec text)."""
    from cnnspec.cli import PATH_ARGUMENTS, _parser

    commands = _parser()._subparsers._group_actions[0].choices
    checked = 0
    for name, parser in commands.items():
        for action in parser._actions:
            if action.dest not in PATH_ARGUMENTS:
                continue
            flag = action.option_strings[:1]
            argv = [name, *flag, ""] if flag or name != "compare" else [name, ""]
            if flag and action.dest not in ("spec", "specs"):
                argv += [str(spec_path("lenet"))] * bool(
                    any(a.dest in ("spec", "specs") for a in parser._actions)
                )
            with pytest.raises(SystemExit) as info:
                main(argv)
            err = capsys.readouterr().err
            assert info.value.code == 2, argv
            assert "an empty path names no file or folder" in err.splitlines()[-1], (argv, err)
            checked += 1
    assert checked >= 18


DOCUMENTS = ["README.md", "BENCHMARKS.md", *(p.relative_to(ROOT).as_posix()
             for p in sorted(ROOT.glob("specs/*/README.md")))]  # fmt: skip
CITED = r"\b(?:specs|docs|generated|scripts|benchmarks|tests|cnnspec)/[\w./-]+\.\w+"


def test_every_file_the_documents_cite_is_shipped():
    import re

    for document in DOCUMENTS:
        for cited in re.findall(CITED, (ROOT / document).read_text()):
            assert (ROOT / cited).exists(), f"{document} cites {cited}, which is not shipped"


def test_the_readmes_error_example_is_what_check_prints():
    import re

    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"`cnnspec check (docs/\S+)`\):\n\n```\n(.*?)```", readme, re.S)
    result = run("check", shown.group(1))
    assert result.returncode == 1 and result.stderr == shown.group(2)


def test_the_readme_offers_the_cpu_build_before_any_install():
    """A reader without a GPU must meet the CPU build before a command that pulls CUDA's."""
    installs = [line for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith("pip install")]  # fmt: skip
    assert "--index-url https://download.pytorch.org/whl/cpu" in installs[0]


def test_export_says_which_weights_it_wrote(tmp_path, monkeypatch, capsys):
    """Untrained weights are said to be so, with how to export trained ones; weights given
    are named, and another model's say how far they loaded."""
    import torch
    from safetensors.torch import save_file

    import cnnspec
    import cnnspec.backends.export

    monkeypatch.setattr(cnnspec.backends.export, "to_onnx", lambda *args: None)
    lenet = str(spec_path("lenet"))
    state = {k: v.contiguous() for k, v in cnnspec.compile(lenet).state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pth")
    onnx = str(tmp_path / "n.onnx")
    expected = {
        None: "holding untrained weights (the recipe's xavier init); --weights RUN exports",
        "w.safetensors": f"holding the trained weights of {tmp_path / 'w.safetensors'} (the file)",
        "w.pth": f"holding weights from {tmp_path / 'w.pth'}: loaded 10 of the network's 10",
    }
    for weights, words in expected.items():
        given = ["--weights", str(tmp_path / weights)] if weights else []
        assert main(["export", lenet, "--onnx", onnx, *given]) == 0
        err = capsys.readouterr().err
        assert err.startswith(f"wrote {onnx}, ") and words in err and err.count("\n") == 1, err


def test_convert_takes_the_budgets_its_error_names(tmp_path, capsys):
    """A spec over a budget: convert's error says the flag raises it, so convert takes
    the flags (--max-activations and the others) as build does."""
    spec = tmp_path / "net.cnn"
    spec.write_text(net("conv(8, k=3, p=1) relu"))
    assert main(["convert", str(spec), "--max-activations", "100"]) == 1
    assert "--max-activations raises the bound" in capsys.readouterr().err
    assert main(["convert", str(spec), "--max-activations", "1e6"]) == 0
    assert "{conv: 8, k: 3, p: 1}" in capsys.readouterr().out


def test_codegen_writes_the_class_within_the_budgets_given(tmp_path, capsys):
    """A spec over the default activation budget, checked within a raised one: the network
    class is written within it too, taking in_channels and num_classes."""
    spec = tmp_path / "big.cnn"
    spec.write_text(
        "network Big(input=1x8192x8192, classes=2):\n    s: conv(4, k=1) relu conv(classes, k=1)\n"
    )
    out = tmp_path / "out"
    assert main(["codegen", str(spec), "-o", str(out)]) == 1
    assert "--max-activations raises the bound" in capsys.readouterr().err
    assert main(["codegen", str(spec), "-o", str(out), "--max-activations", "1e9"]) == 0
    source = (out / "big.py").read_text()
    assert "def __init__(self, in_channels: int = 1, num_classes: int = 2)" in source
    assert "nn.Conv2d(4, num_classes, kernel_size=1)" in source


@pytest.mark.parametrize(
    "header, line", [("T(input=1x8x8)", None), ("T(input=1x8x8, classes=3)", "classes: 3")]
)
def test_convert_writes_classes_only_where_the_spec_does(header, line, tmp_path, capsys):
    spec = tmp_path / "net.cnn"
    spec.write_text(f"network {header}:\n    s: conv(3, k=1) gap flatten\n")
    assert main(["convert", str(spec)]) == 0
    out = capsys.readouterr().out
    assert ("classes:" in out) is (line is not None) and (line is None or line in out), out
    again = cnnspec.load(out, format="yaml")
    assert again.ir.network.model_fields_set == cnnspec.load(spec).ir.network.model_fields_set

"""Generated PyTorch source: equal to the live build, fresh, formatted, and not hijackable."""

import ast
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import (
    EVERY_CONSTRUCT,
    ROOT,
    SPEC_NAMES,
    assert_equivalent,
    load_module,
    module_from_source,
    net,
    spec_path,
)  # fmt: skip

import cnnspec
from cnnspec.cli import main

GENERATED = ROOT / "generated"


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_generated_module_equals_the_live_build(name):
    spec = cnnspec.load(spec_path(name))
    module = load_module(GENERATED / f"{name}.py", f"generated_{name}")
    assert spec.name in module.__all__
    assert_equivalent(spec, getattr(module, spec.name))


@pytest.mark.parametrize(
    ("folder", "command"),
    [("", "cnnspec codegen specs/*.cnn"),
     ("zoo", "cnnspec codegen specs/zoo/*.cnn -o generated/zoo")],
)  # fmt: skip
def test_generated_folder_is_fresh(folder, command, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the header names specs by the path given, relative to here
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs" / folder).glob("*.cnn"))
    assert main(["codegen", *specs, "-o", str(tmp_path)]) == 0
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.py")}
    committed = {p.name: p.read_text() for p in (GENERATED / folder).glob("*.py")}
    stale = sorted(n for n in committed.keys() | fresh.keys() if committed.get(n) != fresh.get(n))
    assert not stale, f"generated/{folder} is stale; run: {command} ({stale})"


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_generated_source_parses_and_imports_torch_only(name):
    tree = ast.parse((GENERATED / f"{name}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"torch"}
    assert not any(isinstance(n, ast.Call) and getattr(n.func, "id", "") in
                   ("eval", "exec", "__import__") for n in ast.walk(tree))  # fmt: skip


def ruff_command() -> list[str]:
    """The ruff the test extra pins, run from this interpreter's environment (not whatever
    is on PATH); its absence fails the test rather than skipping the check unseen."""
    import re

    pinned = re.search(r'"ruff==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    ruff = [sys.executable, "-m", "ruff"]
    found = subprocess.run([*ruff, "--version"], capture_output=True, text=True)
    assert found.returncode == 0, "ruff is a test dependency: pip install -e '.[test]'"
    assert found.stdout.split() == ["ruff", pinned], (
        f"generated code is laid out as ruff {pinned} formats it, not {found.stdout.strip()}"
    )
    return ruff


def test_generated_source_is_formatted_and_lint_clean():
    ruff = ruff_command()
    # runtime.py too: generated code copies its definitions as they are written.
    runtime = ROOT / "cnnspec" / "backends" / "runtime.py"
    files = [str(p) for p in [*sorted(GENERATED.rglob("*.py")), runtime]]
    fmt = subprocess.run([*ruff, "format", "--isolated", "--check", *files],
                         capture_output=True, text=True)  # fmt: skip
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = subprocess.run([*ruff, "check", "--isolated", "--extend-select", "W", *files],
                          capture_output=True, text=True)  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_shape_comments_follow_each_stage():
    source = (GENERATED / "googlenet.py").read_text()
    assert "x = self.b2(x)  # N x 192 x 12 x 12" in source
    assert "# N x 1 x 96 x 96" in source
    heads = (GENERATED / "svhn_multihead.py").read_text()
    assert "-> tuple[torch.Tensor, ...]" in heads and "(N x 11, N x 11" in heads


def test_generic_block_classes_match_the_live_build(tmp_path):
    spec = cnnspec.load(EVERY_CONSTRUCT)
    source = spec.codegen()
    ast.parse(source)
    module = module_from_source(source, tmp_path, "mixed")
    assert {"Pair", "Unit", "Mix", "Stack", "Residual", "VggBlock"} <= set(module.__all__)
    assert source.index("class Unit(") < source.index("class Pair(")  # callees first
    assert_equivalent(spec, module.Mixed)
    # a block class works for arguments the spec never used
    block = module.Stack(3, 4, 5)
    assert block(torch.zeros(1, 3, 16, 16)).shape[1] == block.out_channels == 5


# Blocks beside EVERY_CONSTRUCT's: a residual whose shortcut strides with a parameter, and
# one whose windows a parameter sizes around its shortcut (a class could not say for which
# arguments its projection fits, so each use is written out in place instead).
FREE_BLOCKS = """
block down(c, s=1):
    add:
        conv(c, k=3, s=s, p=1) batchnorm relu conv(c, k=3, p=1)
block sized(c, k):
    add:
        conv(c, k=k, p=k // 2)
"""
# (class, call, its arguments after in_channels, input): none of them the spec's own.
NEW_CALLS = [
    ("Unit", "unit(5, k=5)", (5,), {"k": 5}, (2, 9, 9)),
    ("Unit", "unit(3, k=1)", (3,), {"k": 1}, (4, 7, 7)),
    ("Pair", "pair(3, k=5)", (3,), {"k": 5}, (1, 9, 9)),
    ("Mix", "mix(6, growth=3)", (6,), {"growth": 3}, (5, 6, 6)),
    ("Proj", "proj(7)", (7,), {}, (3, 5, 5)),
    ("Stack", "stack(3, 6)", (3, 6), {}, (2, 16, 16)),
    ("Residual", "residual(6, s=2)", (6,), {"s": 2}, (6, 9, 9)),
    ("Residual", "residual(6, project=true)", (6,), {"project": True}, (6, 5, 5)),
    ("Down", "down(4, s=2)", (4,), {"s": 2}, (4, 11, 11)),
    ("Down", "down(6)", (6,), {}, (3, 8, 8)),
    ("VggBlock", "vgg_block(3, 5)", (3, 5), {}, (2, 16, 16)),
]


def test_block_classes_hold_for_arguments_the_spec_never_passes(tmp_path):
    """A generated block class is the block for any arguments: called with sizes, kernels,
    strides and input channels its spec never used, it equals the live build of that call.
    A block that could not be so is written out in place, and has no class."""
    text = FREE_BLOCKS + EVERY_CONSTRUCT.replace(
        "    b: stack(2, 16)", "    b: down(C) sized(C, 3) sized(C * 2, 5) stack(2, 16)"
    )
    module = module_from_source(cnnspec.load(text).codegen(), tmp_path, "free")
    assert "Sized" not in module.__all__
    for cls, call, args, kwargs, shape in NEW_CALLS:
        channels = "x".join(map(str, shape))
        live = cnnspec.load(
            f"{FREE_BLOCKS}{EVERY_CONSTRUCT.split('network')[0]}"
            f"network T(input={channels}, classes=10):\n    a: {call}\n"
        )
        expected = live.build(init="default").eval().a
        block = getattr(module, cls)(shape[0], *args, **kwargs).eval()
        block.load_state_dict(expected.state_dict())  # the same keys, in the same order
        x = torch.randn(2, *shape)
        with torch.no_grad():
            torch.testing.assert_close(block(x), expected(x), msg=call)
        assert block.out_channels == live.output_shape[0], call


def test_yaml_and_cnn_give_the_same_source(tmp_path):
    for name in ("resnet18", "densenet"):
        cnn = cnnspec.load(spec_path(name)).codegen()
        yaml = cnnspec.load(spec_path(name, ".yaml")).codegen()
        assert cnn.splitlines()[2:] == yaml.splitlines()[2:]  # all but the header


HOSTILE = {
    "code as a network name": "network:\n  name: \"__import__('os').system('x')\"\n"
    "  input: 1x8x8\n  stages:\n    s: [relu]\n",
    "keyword stage": "network:\n  name: T\n  input: 1x8x8\n  stages:\n    class: [relu]\n",
    "keyword block": "blocks:\n  lambda:\n    body: [relu]\nnetwork:\n  name: T\n"
    "  input: 1x8x8\n  stages:\n    s: [lambda]\n",
    "shadowing stage": "network:\n  name: T\n  input: 1x8x8\n  stages:\n    torch: [relu]\n",
    "shadowing network": "network:\n  name: nn\n  input: 1x8x8\n  stages:\n    s: [relu]\n",
    "look-alike letters": "network:\n  name: T\n  input: 1x8x8\n  stages:\n    \u0430: [relu]\n",
    "quote in a name": "network:\n  name: T\"x\n  input: 1x8x8\n  stages:\n    s: [relu]\n",
    "newline in a name": "network:\n  name: \"T\\nimport os\"\n  input: 1x8x8\n"
    "  stages:\n    s: [relu]\n",
    "carriage return": "network:\n  name: T\n  input: 1x8x8\n  stages:\n    \"s\\r\": [relu]\n",
    "backslash": "network:\n  name: T\n  input: 1x8x8\n  stages:\n    \"s\\\\\": [relu]\n",
    "code as an argument": "network:\n  name: T\n  input: 1x8x8\n  stages:\n"
    "    s: [{conv: \"__import__('os').system('x')\", k: 1}]\n",
    "keyword parameter": "blocks:\n  b:\n    params: [for]\n    body: [relu]\nnetwork:\n"
    "  name: T\n  input: 1x8x8\n  stages:\n    s: [b]\n",
}  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_names_are_refused_and_nothing_is_written(case, tmp_path):
    good = tmp_path / "good.cnn"
    good.write_text(net("relu"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(HOSTILE[case])
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "cnnspec", "codegen", str(good), str(bad), "-o", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"{bad}:") and "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_hostile_spec_path_reaches_the_source_only_through_repr(tmp_path):
    odd = tmp_path / "we'ird\"\\name\r\nimport os.cnn"
    odd.write_text(net("relu"))
    source = cnnspec.load(odd).codegen()
    tree = ast.parse(source)
    assert [type(n).__name__ for n in tree.body[:3]] == ["Expr", "Import", "ImportFrom"]
    assert "\nimport os" not in source


def test_codegen_stdout(capsys):
    assert main(["codegen", str(spec_path("lenet")), "--stdout"]) == 0
    assert "class LeNet(nn.Module):" in capsys.readouterr().out


@pytest.mark.slow
def test_installed_wheel_finds_its_templates(tmp_path):
    """Build the wheel, install it into a folder of its own, and run it from another folder.

    It is installed with `--target` and run by this same interpreter, so the dependencies are
    the ones this test run has, in a virtual environment or not (a venv made from inside a
    venv is based on the bare base interpreter, which lacks them)."""
    build = tmp_path / "src"
    shutil.copytree(
        ROOT,
        build,
        ignore=shutil.ignore_patterns(
            ".git", "*.egg-info", "__pycache__", ".pytest_cache", "build", ".bundle", "runs"
        ),
    )
    dist = tmp_path / "dist"
    wheel = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(dist), str(build)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    installed = tmp_path / "installed"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
         str(installed), *map(str, dist.glob("cnnspec-*.whl"))],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(spec_path("googlenet"), elsewhere / "net.cnn")
    result = subprocess.run(
        [sys.executable, "-c", "import sys, cnnspec, cnnspec.cli; print(cnnspec.__file__); "
         "sys.exit(cnnspec.cli.main(['codegen', 'net.cnn', '--stdout']))"],
        cwd=elsewhere, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(installed)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    installed_at, source = result.stdout.split("\n", 1)
    assert installed_at.startswith(str(installed))  # the wheel's copy, not this checkout
    assert "class Inception(Concat):" in source


# Spec file names whose stem is no module name Python can import, or one that would hide a
# module generated code imports (`torch`, and what importing torch imports).
ODD_STEMS = ["torch", "my-net", "2net", "class", "ａｂ", "x.y", "random", "Numpy", "typing"]


def test_each_generated_module_imports_and_hides_no_module(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    for stem in ODD_STEMS:
        (specs / f"{stem}.cnn").write_text(net("relu"))
    out = tmp_path / "out"
    assert main(["codegen", *(str(specs / f"{s}.cnn") for s in ODD_STEMS), "-o", str(out)]) == 0
    modules = sorted(p.stem for p in out.glob("*.py"))
    assert len(modules) == len(ODD_STEMS)
    check = (
        f"import importlib, torch, typing, numpy, random\n"
        f"assert 'out' not in torch.__file__ and hasattr(typing, 'Any')\n"
        f"for name in {modules!r}:\n"
        f"    importlib.import_module(name).T()\n"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=out, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_two_specs_for_one_module_are_refused_before_anything_is_written(tmp_path, capsys):
    for path in ("a/net.cnn", "b/net.yaml", "c/Net.cnn", "d/net-.cnn", "d/net_.cnn"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(net("relu") if path.endswith(".cnn") else "{}")
    out = tmp_path / "out"
    for pair in (
        ("a/net.cnn", "b/net.yaml"),
        ("a/net.cnn", "c/Net.cnn"),
        ("d/net-.cnn", "d/net_.cnn"),
    ):
        assert main(["codegen", *(str(tmp_path / p) for p in pair), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "would both be written to" in err, err
        assert not out.exists()

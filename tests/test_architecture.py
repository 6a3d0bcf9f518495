"""The package's shape: data flows one way, read from the imports themselves.

    leaves (errors, limits, atomic, version, tensors)
      <- language <- analysis <- backends <- spec (the facade) <- cli, notebook
      <- training (knows nothing of the compiler; only its command module meets the facade)
    lsp (the language server) reads what the stages decided, through the facade and
      directly (the IR, the typed graph, the blocks in scope); only cli starts it

Every import counts, including those inside functions (the lazy ones that keep torch out
of `cnnspec check`), and no two modules may import each other, directly or round a loop.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnnspec"

LEAVES = {"errors", "limits", "atomic", "version", "tensors"}
# What each part may import besides itself and the leaves.
MAY_IMPORT = {
    "leaf": set(),
    "runtime": set(),  # copied verbatim into generated code: torch only
    "language": set(),
    "analysis": {"language"},
    "backends": {"language", "analysis", "runtime"},
    "training": set(),
    "train command": {"training", "facade"},
    "facade": {"language", "analysis", "backends", "training"},  # training: trained weights
    "lsp": {"facade", "language", "analysis", "backends"},
    "cli": {"facade", "backends", "train command", "training", "lsp"},
    "notebook": {"facade"},  # the cell magic: a cell is a spec, loaded through the facade
    "package": {"facade", "notebook"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def part_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "package"
    if module == "cnnspec.backends.runtime":
        return "runtime"
    if module in ("cnnspec.training.command", "cnnspec.training.compare"):
        return "train command"  # the commands where training meets a spec
    if parts[0] in LEAVES:
        return "leaf"
    if parts[0] in ("language", "analysis", "backends", "training", "lsp"):
        return parts[0]
    return {"spec": "facade", "overrides": "facade", "cli": "cli", "__main__": "cli",
            "notebook": "notebook"}[parts[0]]  # fmt: skip


def imports(module: str) -> set[str]:
    """The cnnspec modules `module` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from . import ir` imports the module ir
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {name for name in found if name == "cnnspec" or name.startswith("cnnspec.")}


# Within the backends, what each may import of the others (README, "How it is built"):
# summary is the shared text of shapes and rows; codegen's modules are one backend.
BACKENDS_MAY_IMPORT = {
    "build": {"runtime", "summary"},
    "dot": {"summary"},
    "page": {"summary"},
    "notebook": {"dot", "summary"},
    "codegen": {"runtime_source"},
}


def test_backends_import_each_other_only_as_the_readme_says():
    for module in MODULES:
        if not module.startswith("cnnspec.backends."):
            continue
        own = module.split(".")[2]
        allowed = BACKENDS_MAY_IMPORT.get(own, set())
        others = {
            target.split(".")[2]
            for target in imports(module)
            if target.startswith("cnnspec.backends.") and target.split(".")[2] != own
        }
        assert others <= allowed, f"{module} imports {sorted(others - allowed)}"


def test_every_module_belongs_to_a_part():
    assert all(part_of(m) in MAY_IMPORT for m in MODULES)
    assert {"cnnspec.language.ir", "cnnspec.analysis.infer", "cnnspec.backends.build"} <= set(
        MODULES
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_pipeline(module):
    part = part_of(module)
    allowed = MAY_IMPORT[part] | {part, "leaf"}
    wrong = sorted(
        f"{target} ({part_of(target)})"
        for target in imports(module)
        if part_of(target) not in allowed and target != "cnnspec.version"
    )
    assert not wrong, f"{module} ({part}) imports a later stage: {', '.join(wrong)}"


def test_no_import_cycles():
    graph = {m: imports(m) - {m} for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_reader_of_imports_sees_function_level_ones():
    # cli imports the backends only inside its commands; the test must see those.
    assert "cnnspec.backends.emit_yaml" in imports("cnnspec.cli")
    assert "cnnspec.backends.build" in imports("cnnspec.spec")

"""What the backends know of `runtime.py` without importing torch.

The live build imports the runtime's classes; generated code gets a copy of their source,
read here with `ast`, so the two run the very same code. A definition is copied with the
definitions it refers to, found by reading its names, so no list of dependencies is kept
by hand.
"""

from __future__ import annotations

import ast
from functools import cache
from importlib.resources import files


@cache
def _definitions() -> dict[str, tuple[str, frozenset[str]]]:
    """Top-level definitions of `runtime.py` by name: their source, and the names they use."""
    text = files(__package__).joinpath("runtime.py").read_text(encoding="utf-8")
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            name = node.name
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        used = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        found[name] = (ast.get_source_segment(text, node), used)
    return found


def runtime_names() -> frozenset[str]:
    return frozenset(_definitions())


def runtime_source(names: set[str]) -> dict[str, str]:
    """The source of the named runtime definitions and of everything they use, by name, in
    the order `runtime.py` defines them."""
    defs = _definitions()
    needed, pending = set(), [n for n in names if n in defs]
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending.extend(n for n in defs[name][1] if n in defs and n != name)
    return {name: source for name, (source, _) in defs.items() if name in needed}

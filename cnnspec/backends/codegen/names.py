"""The Python names a spec's blocks and parameters get in generated code.

The spec's own names where they are safe; where one would be a keyword, shadow a name
the module itself uses (a builtin, `torch`, `nn`, a runtime class) or clash with another,
it gets a trailing underscore. Every name is checked here, whether or not the generator
ends up writing the block, so nothing a spec says reaches the source unchecked.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Mapping

from ...language import ir
from ..runtime_source import runtime_names
from .values import class_name

# Names generated code uses itself, which no spec name may hide.
MODULE_NAMES = frozenset(dir(builtins)) | {"torch", "nn", "self", "__all__"} | runtime_names()
# Locals of generated block constructors.
CONSTRUCTOR_LOCALS = frozenset({"in_channels", "channels", "layers", "units", "shortcut"})


def _safe(name: str, taken) -> str:
    while not name.isidentifier() or keyword.iskeyword(name) or name in taken:
        name += "_"
    return name


class PythonNames:
    def __init__(self, network: str, blocks: Mapping[str, ir.BlockDef]):
        self.network = _safe(network, MODULE_NAMES)
        used = MODULE_NAMES | {self.network}
        self._classes: dict[str, str] = {}
        self._params: dict[str, dict[str, str]] = {}
        for name in blocks:
            self._classes[name] = _safe(class_name(name) or "Block", used)
            used = used | {self._classes[name]}
        for name, block in blocks.items():
            taken = set(used | CONSTRUCTOR_LOCALS)
            params = {}
            for param in block.params:
                params[param.name] = _safe(param.name, taken)
                taken.add(params[param.name])
            self._params[name] = params

    def class_of(self, block: str) -> str:
        return self._classes[block]

    def params_of(self, block: str) -> dict[str, str]:
        """The block's parameters: spec name -> Python name."""
        return self._params[block]

    def taken_in(self, block: str) -> set[str]:
        """Names a constructor's own locals must avoid."""
        return MODULE_NAMES | set(self._classes.values()) | set(self._params[block].values())

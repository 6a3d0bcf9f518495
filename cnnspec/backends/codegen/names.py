"""The Python names a spec's blocks and parameters get in generated code.

The spec's own names where they are safe; where one would be a keyword, shadow a name
the module itself uses (a builtin, `torch`, `nn`, a runtime class) or clash with another,
it gets a trailing underscore. Every name is checked here, whether or not the generator
ends up writing the block, so nothing a spec says reaches the source unchecked.
"""

from __future__ import annotations

import builtins
import keyword
import sys
import unicodedata
from collections.abc import Mapping

from ...language import ir
from ..runtime_source import runtime_names
from .values import class_name

# Names generated code uses itself, which no spec name may hide.
MODULE_NAMES = frozenset(dir(builtins)) | {"torch", "nn", "self", "__all__"} | runtime_names()
# Locals of generated block constructors.
CONSTRUCTOR_LOCALS = frozenset({"in_channels", "channels", "layers", "units", "shortcut"})


# Top-level modules a generated module's own folder must not hide: the standard library,
# torch and what `import torch` imports, and cnnspec. A `torch.py` beside generated code
# would be imported by every module there in place of PyTorch.
IMPORTED_MODULES = frozenset(sys.stdlib_module_names) | {
    *("torch", "torchvision", "torchgen", "triton", "numpy", "typing_extensions", "sympy"),
    *("mpmath", "networkx", "jinja2", "markupsafe", "fsspec", "filelock", "tqdm", "cuda"),
    *("nvidia", "setuptools", "pkg_resources", "cnnspec"),
}
_IMPORTED_FOLDED = frozenset(m.casefold() for m in IMPORTED_MODULES)


def module_name(stem: str) -> str:
    """The name of the module generated from a spec file named `stem`: one Python can
    import (`my-net` -> `my_net`, `2net` -> `_2net`; NFKC-folded, as `import` folds the
    name it looks for), and that hides no module the code imports, on a file system that
    ignores case too (`torch` -> `torch_`, `Random` -> `Random_`)."""
    stem = unicodedata.normalize("NFKC", stem)
    name = "".join(c if ("a" + c).isidentifier() else "_" for c in stem) or "net"
    if not name.isidentifier():  # it starts with a digit
        name = "_" + name
    while keyword.iskeyword(name) or name.casefold() in _IMPORTED_FOLDED:
        name += "_"
    return name


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

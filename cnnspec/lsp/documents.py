"""One open document, analysed as `cnnspec check` would analyse it once saved.

A spec (a network, with the blocks it defines and uses) is parsed, resolved and inferred;
a file of blocks only, as another spec uses it, is checked as such a use checks it. What
the compiler decided is kept as it decided it: the IR, the typed graph, the blocks in
scope and where each is written, and the error that stopped it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path

from ..analysis.infer import infer
from ..analysis.resolve import builtin_blocks
from ..analysis.uses import UsedFiles
from ..errors import CnnspecError, Source
from ..language import ir
from ..language.parse_cnn import PRELUDE
from ..language.reading import read
from ..limits import DEFAULT, Limits
from ..spec import Spec, parse
from .text import Text

# A YAML file is a spec, or a file of blocks, when one of these is among its top-level keys.
_YAML_SPEC = re.compile(r"^(network|blocks|use)\s*:", re.MULTILINE)
# A .cnn file without a network or a recipe holds blocks for other specs to use.
_CNN_SPEC = re.compile(r"^[ \t]*(network|train)\b", re.MULTILINE)
_YAML_NETWORK = re.compile(r"^(network|train)\s*:", re.MULTILINE)


@dataclass(frozen=True)
class BlockSite:
    """A block in scope: its definition and the file it is written in (None: this one)."""

    definition: ir.BlockDef
    file: str | None


@dataclass
class Analysis:
    path: str  # the file's path, as errors name it
    text: str
    fmt: str  # "cnn" or "yaml"
    library: bool = False  # blocks only, for other specs to use
    doc: ir.Document | None = None  # the IR, when the text parses (with the used blocks)
    spec: Spec | None = None  # when the whole spec is valid: shapes, params, MACs
    error: CnnspecError | None = None
    source: Source | None = None

    @cached_property
    def lines(self) -> Text:
        return Text(self.text, self.fmt)

    @cached_property
    def blocks(self) -> dict[str, BlockSite]:
        """Every block this file can call, by name: the built-in ones, the used files', and
        its own, each with the file it is written in."""
        if self.doc is None:
            return {}
        found = {name: BlockSite(b, PRELUDE) for name, b in builtin_blocks().items()}
        for block in self.doc.used:
            origin = self.doc.origins.get(block.name)
            found[block.name] = BlockSite(block, origin[0].name if origin else None)
        for block in self.doc.blocks:
            found[block.name] = BlockSite(block, None)
        return found

    def file_text(self, name: str | None) -> Text | None:
        """The text of the file a block is written in: this one, a used one, the prelude."""
        if name is None or name == self.path:
            return self.lines
        if name == PRELUDE:
            return Text(prelude_path().read_text(encoding="utf-8"))
        for source, _ in (self.doc.origins if self.doc else {}).values():
            if source.name == name:
                return Text(source.text, format_of(name))
        return None


def prelude_path() -> Path:
    """Where the built-in blocks are written, on this machine."""
    return Path(str(files("cnnspec.language").joinpath("prelude.cnn")))


def file_path(name: str) -> Path:
    """The file an error or a block's origin names."""
    return prelude_path() if name == PRELUDE else Path(name)


def format_of(path: str) -> str:
    return "yaml" if Path(path).suffix.lower() in (".yaml", ".yml") else "cnn"


def is_spec(text: str, path: str) -> bool:
    """Whether a document is cnnspec's: any .cnn file, and YAML with a spec's keys."""
    return format_of(path) == "cnn" or bool(_YAML_SPEC.search(text))


def analyse(text: str, path: str, limits: Limits = DEFAULT) -> Analysis:
    """Everything the compiler decides about `text`, the unsaved content of `path`."""
    try:
        source, fmt = read(text, limits=limits, name=path)
    except CnnspecError as err:
        return Analysis(path, text, format_of(path), error=err)
    found = Analysis(path, source.text, fmt, source=source)
    network = _CNN_SPEC if fmt == "cnn" else _YAML_NETWORK
    found.library = not network.search(source.text)
    try:
        if found.library:
            used = UsedFiles(limits, source)
            doc = used.library(source, fmt, [])
            found.doc = doc.model_copy(update={"used": tuple(used.blocks), "origins": used.origins})
        else:
            found.doc = parse(source, fmt, limits)
            try:
                found.spec = Spec(source, found.doc, infer(found.doc, limits))
            except CnnspecError as err:
                raise err.with_source(source) from None
    except CnnspecError as err:
        found.error = err.with_source(source)
    return found

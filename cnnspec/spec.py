"""The pipeline, front to back: read -> parse (.cnn or YAML) -> IR -> names -> shapes.

`load` runs it without torch and returns a `Spec`; `Spec.build()` and `compile` hand the
inferred graph to the torch backend, imported only then.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis.graph import Graph, Output, Shape
from .analysis.infer import infer
from .analysis.resolve import resolve
from .errors import CnnspecError, LimitError, Source, SpecError, SpecSyntaxError
from .language import ir
from .language.parse_cnn import parse_cnn
from .language.parse_yaml import parse_yaml
from .limits import DEFAULT, Limits
from .overrides import override

# Files saved with torch.save, such as torchvision's weights.
TORCH_FILES = (".pt", ".pth")

if TYPE_CHECKING:
    import torch

SUFFIXES = {".cnn": "cnn", ".yaml": "yaml", ".yml": "yaml"}


@dataclass(frozen=True)
class Spec:
    """A validated, shape-inferred network: everything known before torch is involved."""

    source: Source
    ir: ir.Document
    graph: Graph

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def input_shape(self) -> Shape:
        return self.graph.input_shape

    @property
    def output_shape(self) -> Output:
        return self.graph.output_shape

    @property
    def params(self) -> int:
        return self.graph.params

    @property
    def macs(self) -> int:
        return self.graph.macs

    @property
    def activations(self) -> int:
        """Values one example's forward pass produces (the input and every layer's output)."""
        from .backends.summary import activations

        return activations(self.graph)

    @property
    def recipe(self) -> ir.Recipe:
        return self.graph.recipe

    @property
    def layers(self) -> list[dict]:
        """Per-layer figures as plain data: path, op, input/output shape, params, MACs."""
        from .backends.summary import layer_rows

        return layer_rows(self.graph)

    def summary(self, depth: int | None = None) -> str:
        """The layer table: stages and what they hold, or `depth` levels of it."""
        from .backends.summary import DEFAULT_DEPTH, table

        return table(self.graph, self.source.name, depth or DEFAULT_DEPTH)

    def to_dict(self) -> dict:
        from .backends.summary import as_dict

        return as_dict(self.graph)

    def with_input(self, shape: Shape) -> Spec:
        """The same network inferred for another input shape (the seeds train ResNet-18 on
        28x28 while printing 224x224 shapes). Raises a positioned error if it does not fit."""
        if tuple(shape) == tuple(self.input_shape):
            return self
        return self._with_network(input=tuple(shape))

    def with_classes(self, classes: int) -> Spec:
        """The same network with another number of classes."""
        if classes == self.ir.network.classes:
            return self
        return self._with_network(classes=classes)

    def _with_network(self, **changes) -> Spec:
        network = self.ir.network.model_copy(update=changes)
        doc = self.ir.model_copy(update={"network": network})
        try:
            return Spec(self.source, doc, infer(doc))
        except CnnspecError as err:
            raise err.with_source(self.source) from None

    def build(
        self, init: str | None = None, weights: str | os.PathLike | None = None
    ) -> torch.nn.Module:
        """A fresh `torch.nn.Module`; `init` is "xavier", "default", or the recipe's. With
        `weights`, a run folder (its latest checkpoint) or a .safetensors file, it holds
        those trained weights instead; a .pt or .pth file (torchvision's state_dicts) is
        matched by structure, as far as its shapes agree (see `backends/transfer.py`)."""
        from .backends.build import build

        model = build(self.graph, init=init)
        if weights is not None and Path(weights).suffix in TORCH_FILES:
            transfer(model, weights)  # another model's: matched by structure
        elif weights is not None:
            from .training.checkpoints import load_weights, weights_in

            load_weights(model, weights_in(weights), Path(weights))
        return model

    def codegen(self) -> str:
        """The network as standalone PyTorch source (imports torch only)."""
        from .backends.codegen.generator import generate

        try:
            return generate(self.ir, self.graph, self.source.name)
        except CnnspecError as err:
            raise err.with_source(self.source) from None


def read(source: str | os.PathLike, format: str | None = None,
         limits: Limits = DEFAULT) -> tuple[Source, str]:  # fmt: skip
    """A spec path or spec text, and its format ("cnn" or "yaml").

    A path that cannot be read raises the OSError that says why (FileNotFoundError,
    IsADirectoryError, PermissionError, or an OSError for a FIFO or device): the command line
    reports those as usage errors. A single line with no spec in it that names no file is
    taken for a mistyped path, not for spec text.
    """
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        data = _read_file(path, limits)
        fmt = format or SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise SpecError(f"cannot tell the format of '{path}': use .cnn, .yaml or .yml")
        name = str(source)
        text = _decode(data, name)
    else:
        name = "<string>"
        _check_unicode(source, name)
        text = source
        fmt = format or _guess_format(normalize(text))
    return Source(name, normalize(text, fmt)), fmt


def _read_file(path: Path, limits: Limits) -> bytes:
    info = path.stat()  # FileNotFoundError and PermissionError are the caller's usage errors
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    if info.st_size > limits.max_file_bytes:  # refused before reading it
        err = LimitError(f"spec is larger than {limits.max_file_bytes} bytes", (1, 1))
        raise err.with_source(Source(str(path), ""))
    with path.open("rb") as f:
        data = f.read(limits.max_file_bytes + 1)  # it may have grown since
    if len(data) > limits.max_file_bytes:
        err = LimitError(f"spec is larger than {limits.max_file_bytes} bytes", (1, 1))
        raise err.with_source(Source(str(path), ""))
    return data


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8")  # valid up to the bad byte
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        shown = Source(name, normalize(data.decode("utf-8", "replace")))
        raise SpecSyntaxError("spec is not UTF-8 text", (line, col), shown) from None


def _check_unicode(text: str, name: str) -> None:
    """Spec text given as a string may hold lone surrogates, which no file can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        line = text.count("\n", 0, err.start) + 1
        col = err.start - (text.rfind("\n", 0, err.start) + 1) + 1
        shown = Source(name, normalize(text.encode("utf-8", "replace").decode("utf-8")))
        raise SpecSyntaxError("spec is not valid Unicode text", (line, col), shown) from None


_YAML_BREAKS = str.maketrans({"\x85": "\n", "\u2028": "\n", "\u2029": "\n"})


def normalize(text: str, fmt: str = "cnn") -> str:
    """Text with every line ending as "\n", so that the parsers and the caret agree on lines.

    CRLF and a lone CR become LF, and a leading byte-order mark goes. YAML also counts NEL,
    U+2028 and U+2029 as line breaks, so for YAML those become LF too; in .cnn they are not
    line breaks, and stay to be reported where they stand.
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_YAML_BREAKS) if fmt == "yaml" else text


def _looks_like_path(source: str) -> bool:
    if "\n" in source or "\r" in source or not source.strip():
        return False
    if Path(source).suffix.lower() in SUFFIXES or os.path.exists(source):
        return True
    # One line that holds no spec (no `network` or `block`, no YAML mapping) is a mistyped
    # path, such as `specs/lenet`: say that it does not exist rather than parse it.
    return not re.search(r"\b(network|block)\b|:", source)


def _guess_format(text: str) -> str:
    return "cnn" if re.search(r"^\s*(network|block)\s+\w+\s*\(", text, re.MULTILINE) else "yaml"


def parse(source: Source, fmt: str, limits: Limits = DEFAULT) -> ir.Document:
    """Source text -> validated IR (no shapes yet), with the blocks of the files it uses."""
    try:
        plain = parse_cnn(source.text, limits) if fmt == "cnn" else parse_yaml(source.text, limits)
        if plain.get("network") is None:
            raise SpecError("this spec has no network (`network Name(input=..., classes=...):`)",
                            (1, 1))  # fmt: skip
        doc = ir.to_ir(plain)
    except CnnspecError as err:
        raise err.with_source(source) from None
    if not doc.uses:
        return doc
    used = _Used(limits)
    used.load(doc.uses, source, [])
    return doc.model_copy(update={"used": tuple(used.blocks), "origins": used.origins})


class _Used:
    """The blocks of the files a spec uses, read depth first: each file once, every path
    relative to the file that names it, within the limits and without cycles."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.blocks: list[ir.BlockDef] = []
        self.origins: dict[str, tuple[Source, str]] = {}
        self.read: set[Path] = set()

    def load(self, uses, by: Source, chain: list[Path]) -> None:
        base = Path(by.name).parent if by.name != "<string>" else Path.cwd()
        for use in uses:
            path = (base / use.path).resolve()
            if path in chain or Path(by.name).resolve() == path:
                cycle = " -> ".join(p.name for p in [*chain, path])
                raise SpecError(f"'{use.path}' is used in a cycle ({cycle})",
                                use.pos).with_source(by)  # fmt: skip
            if path in self.read:
                continue
            if len(chain) >= self.limits.max_use_depth or len(self.read) >= self.limits.max_uses:
                raise LimitError(
                    f"specs may use at most {self.limits.max_uses} files, "
                    f"{self.limits.max_use_depth} deep",
                    use.pos,
                ).with_source(by)
            self.read.add(path)
            self.file(path, use, by, [*chain, path])

    def file(self, path: Path, use: ir.Use, by: Source, chain: list[Path]) -> None:
        context = f"used at {by.name}:{use.pos[0]}:{use.pos[1]}"
        try:
            source, fmt = read(path, limits=self.limits)
        except OSError as err:
            raise SpecError(f"cannot use '{use.path}': {err.strerror or err}",
                            use.pos).with_source(by) from None  # fmt: skip
        except CnnspecError as err:
            raise _in_used(err, source=None, context=context) from None
        try:
            text = source.text
            plain = parse_cnn(text, self.limits) if fmt == "cnn" else parse_yaml(text, self.limits)
            extra = plain.get("network") or plain.get("train")
            if extra is not None:
                raise SpecError(
                    "a used file holds blocks only (and uses), not a network or a train recipe",
                    extra["pos"],
                )
            plain["network"] = {"name": "used", "input": [1], "stages": []}
            doc = ir.to_ir(plain)
        except CnnspecError as err:
            raise _in_used(err, source, context) from None
        self.load(doc.uses, source, chain)
        try:
            resolve(doc.model_copy(update={"used": tuple(self.blocks), "origins": {}}))
            for block in doc.blocks:
                if block.name in self.origins:
                    other = self.origins[block.name][0].name
                    raise SpecError(f"block '{block.name}' is also defined in {other}",
                                    block.pos)  # fmt: skip
        except CnnspecError as err:
            raise _in_used(err, source, context) from None
        for block in doc.blocks:
            self.blocks.append(block)
            self.origins[block.name] = (source, context)


def _in_used(err: CnnspecError, source: Source | None, context: str) -> CnnspecError:
    """An error in a used file: placed in that file, saying which `use` brought it in."""
    if context not in err.message:
        err.message = f"{err.message} ({context})"
        err.args = (err.message,)
    return err.with_source(source) if source is not None else err


def load(source: str | os.PathLike, *, format: str | None = None, limits: Limits = DEFAULT,
         overrides: Mapping[str, str] | None = None) -> Spec:  # fmt: skip
    """Parse, validate and infer a spec given as a path or as text. `overrides` sets network
    options (`classes`, `input`), network parameters and train options by name, each value
    written as in a spec (`{"width": "0.5", "optimizer": "adam"}`)."""
    src, fmt = read(source, format, limits)
    doc = parse(src, fmt, limits)
    for name, text in (overrides or {}).items():
        doc = override(doc, name, text)
    try:
        return Spec(src, doc, infer(doc, limits))
    except CnnspecError as err:
        raise err.with_source(src) from None


def compile(source: str | os.PathLike, **options) -> torch.nn.Module:
    """The spec's network as a `torch.nn.Module`; with `weights=` a run folder (its latest
    checkpoint) or a .safetensors file, trained weights instead of fresh ones."""
    init = options.pop("init", None)
    weights = options.pop("weights", None)
    return load(source, **options).build(init=init, weights=weights)


def transfer(net: torch.nn.Module, weights: str | os.PathLike):
    """Copy another model's state_dict (a .pt or .pth file, such as torchvision's) into
    `net` by position while the shapes agree; returns what was loaded and where the
    first shapes differed (a backbone loads, new heads keep their initial values)."""
    from .backends.transfer import transfer as by_structure

    return by_structure(net, weights)

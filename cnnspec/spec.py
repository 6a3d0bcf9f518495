"""The pipeline, front to back: read -> parse (.cnn or YAML) -> IR -> names -> shapes.

`load` runs it without torch and returns a `Spec`; `Spec.build()` and `compile` hand the
inferred graph to the torch backend, imported only then.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis.graph import Graph, Output, Shape
from .analysis.infer import infer
from .errors import CnnspecError, LimitError, Source, SpecError, SpecSyntaxError
from .language import ir
from .language.parse_cnn import parse_cnn
from .language.parse_yaml import parse_yaml
from .limits import DEFAULT, Limits

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
    def recipe(self) -> ir.Recipe:
        return self.graph.recipe

    @property
    def layers(self) -> list[dict]:
        """Per-layer figures as plain data: path, op, input/output shape, params, MACs."""
        from .backends.summary import layer_rows

        return layer_rows(self.graph)

    def summary(self) -> str:
        from .backends.summary import table

        return table(self.graph, self.source.name)

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

    def build(self, init: str | None = None) -> torch.nn.Module:
        """A fresh `torch.nn.Module`; `init` is "xavier", "default", or the recipe's."""
        from .backends.build import build

        return build(self.graph, init=init)

    def codegen(self) -> str:
        """The network as standalone PyTorch source (imports torch only)."""
        from .backends.codegen.generator import generate

        try:
            return generate(self.ir, self.graph, self.source.name)
        except CnnspecError as err:
            raise err.with_source(self.source) from None


def read(source: str | os.PathLike, format: str | None = None,
         limits: Limits = DEFAULT) -> tuple[Source, str]:  # fmt: skip
    """A spec path or spec text, and its format ("cnn" or "yaml")."""
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        fmt = format or SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise SpecError(f"cannot tell the format of '{path}': use .cnn, .yaml or .yml")
        size = path.stat().st_size  # FileNotFoundError is the caller's usage error
        if size > limits.max_file_bytes:  # refused before reading it
            err = LimitError(f"spec is larger than {limits.max_file_bytes} bytes", (1, 1))
            raise err.with_source(Source(str(path), ""))
        data = path.read_bytes()
        name = str(source)
    else:
        data, name = source.encode("utf-8"), "<string>"
        fmt = format or _guess_format(source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SpecSyntaxError("spec is not UTF-8 text", (line, 1), Source(name, "")) from None
    return Source(name, text), fmt


def _looks_like_path(source: str) -> bool:
    return "\n" not in source and (
        Path(source).suffix.lower() in SUFFIXES or os.path.exists(source)
    )


def _guess_format(text: str) -> str:
    return "cnn" if re.search(r"^\s*(network|block)\s+\w+\s*\(", text, re.MULTILINE) else "yaml"


def parse(source: Source, fmt: str, limits: Limits = DEFAULT) -> ir.Document:
    """Source text -> validated IR (no shapes yet)."""
    try:
        plain = parse_cnn(source.text, limits) if fmt == "cnn" else parse_yaml(source.text, limits)
        if plain.get("network") is None:
            raise SpecError("this spec has no network (`network Name(input=..., classes=...):`)",
                            (1, 1))  # fmt: skip
        return ir.to_ir(plain)
    except CnnspecError as err:
        raise err.with_source(source) from None


def load(source: str | os.PathLike, *, format: str | None = None,
         limits: Limits = DEFAULT) -> Spec:  # fmt: skip
    """Parse, validate and infer a spec given as a path or as text."""
    src, fmt = read(source, format, limits)
    doc = parse(src, fmt, limits)
    try:
        return Spec(src, doc, infer(doc, limits))
    except CnnspecError as err:
        raise err.with_source(src) from None


def compile(source: str | os.PathLike, **options) -> torch.nn.Module:
    """The spec's network as a `torch.nn.Module`."""
    init = options.pop("init", None)
    return load(source, **options).build(init=init)

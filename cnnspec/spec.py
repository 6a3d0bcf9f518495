"""The pipeline, front to back: read -> parse (.cnn or YAML) -> IR -> names -> shapes.

`load` runs it without torch and returns a `Spec`; `Spec.build()` and `compile` hand the
inferred graph to the torch backend, imported only then.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis.graph import Graph, Output, Shape
from .analysis.infer import infer
from .analysis.uses import UsedFiles
from .errors import CnnspecError, Source, SpecError
from .language import ir
from .language.parse_cnn import parse_cnn
from .language.parse_yaml import parse_yaml
from .language.reading import read
from .limits import DEFAULT, Limits
from .overrides import override

# Files saved with torch.save, such as torchvision's weights.
TORCH_FILES = (".pt", ".pth")

if TYPE_CHECKING:
    import torch

    from .backends.notebook import View


@dataclass(frozen=True, repr=False)
class Spec:
    """A validated, shape-inferred network: everything known before torch is involved."""

    source: Source
    ir: ir.Document
    graph: Graph
    used: tuple[Source, ...] = ()  # the files it uses, each read once (their paths resolved)
    limits: Limits = DEFAULT  # the bounds it was checked within, kept for its variants

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

    def display(
        self, depth: int | None = None, picture_depth: int | None = None, picture: bool = True
    ) -> View:
        """What a notebook shows: the headline, the table `depth` levels deep and the
        picture with blocks open `picture_depth` levels deep (or none)."""
        from .backends import dot
        from .backends.notebook import View
        from .backends.summary import DEFAULT_DEPTH

        return View(
            self.graph,
            self.source.name,
            depth or DEFAULT_DEPTH,
            dot.DEFAULT_DEPTH if picture_depth is None else picture_depth,
            picture,
        )

    def __repr__(self) -> str:
        from .backends.summary import shape_text

        return (
            f"<Spec {self.name}: {shape_text(self.input_shape)} -> "
            f"{shape_text(self.output_shape)}, "
            f"{self.params:,} parameters ({self.source.name})>"
        )

    def _repr_html_(self) -> str:
        return self.display()._repr_html_()

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's plain-text display: the summary table."""
        printer.text(self.summary())

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

    def variant(self, **values) -> Spec:
        """The same spec with network options, network parameters or train options set, as
        `--set` sets them: `variant(width=0.5, input="1x96x96", lr=0.05)`. A value is a
        number, a shape as a tuple, or text written as in a spec."""
        doc = self.ir
        for name, value in values.items():
            doc = override(doc, name, _written(value))
        try:
            graph = infer(doc, self.limits, self.source.name)
            return Spec(self.source, doc, graph, self.used, self.limits)
        except CnnspecError as err:
            raise err.with_source(self.source) from None

    def _with_network(self, **changes) -> Spec:
        network = self.ir.network.model_copy(update=changes)
        doc = self.ir.model_copy(update={"network": network})
        try:
            return replace(self, ir=doc, graph=infer(doc, self.limits, self.source.name))
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
            return generate(self.ir, self.graph, self.source.name, self.limits)
        except CnnspecError as err:
            raise err.with_source(self.source) from None


def _written(value) -> str:
    """A Python value as a spec writes it: (1, 96, 96) as 1x96x96, True as true."""
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse(
    source: Source, fmt: str, limits: Limits = DEFAULT, use_root: str | os.PathLike | None = None
) -> ir.Document:
    """Source text -> validated IR (no shapes yet), with the blocks of the files it uses
    (inside `use_root`: by default the spec's own folder, see `analysis/uses.py`)."""
    return _parse(source, fmt, limits, use_root)[0]


def _parse(
    source: Source, fmt: str, limits: Limits, use_root: str | os.PathLike | None
) -> tuple[ir.Document, tuple[Source, ...]]:
    """`parse`, and the files the spec uses."""
    try:
        plain = parse_cnn(source.text, limits) if fmt == "cnn" else parse_yaml(source.text, limits)
        if plain.get("network") is None:
            raise SpecError(
                "this spec has no network (`network Name(input=..., classes=...):`)", (1, 1)
            )
        doc = ir.to_ir(plain)
    except CnnspecError as err:
        raise err.with_source(source) from None
    if not doc.uses:
        return doc, ()
    used = UsedFiles(limits, source, use_root)
    used.load(doc.uses, source, [])
    doc = doc.model_copy(update={"used": tuple(used.blocks), "origins": used.origins})
    return doc, tuple(used.sources)


def load(
    source: str | os.PathLike,
    *,
    format: str | None = None,
    limits: Limits = DEFAULT,
    overrides: Mapping[str, str] | None = None,
    name: str | os.PathLike | None = None,
    use_root: str | os.PathLike | None = None,
) -> Spec:
    """Parse, validate and infer a spec given as a path or as text. `overrides` sets network
    options (`classes`, `input`), network parameters and train options by name, each value
    written as in a spec (`{"width": "0.5", "optimizer": "adam"}`). With `name`, `source`
    is the text of the file at that path (unsaved in an editor): errors name the path and
    its `use` lines are read beside it; a notebook names a cell so. Files it uses must be
    inside `use_root`, by default the spec's own folder (the current one for text)."""
    src, fmt = read(source, format, limits, name=name)
    doc, used = _parse(src, fmt, limits, use_root)
    for key, text in (overrides or {}).items():
        doc = override(doc, key, text)
    try:
        return Spec(src, doc, infer(doc, limits, src.name), used, limits)
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

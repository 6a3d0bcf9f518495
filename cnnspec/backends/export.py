"""A compiled network in an exchange format: ONNX, through torch's own exporter.

The batch dimension stays dynamic; every other size is the spec's. The file is written
whole or not at all.

Torch has two exporters. The TorchScript one traces a forward pass and converts the graph
in C++: about a second for the seed networks. The torch.export one (torch's default since
2.9) costs 20-50 s and some 300 MB more before it writes a byte, mostly in importing
torch._dynamo and onnxscript and in building onnxscript's table of every aten op, whatever
the network's size. So the tracer is used, and torch.export only for a network that the
tracer cannot convert.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..analysis.graph import Graph
from ..analysis.ops.base import pair
from ..atomic import atomic_path
from ..errors import SpecError

BATCH = "batch"
INPUT = "input"


def output_names(graph: Graph, declared: tuple[str, ...]) -> list[str]:
    """What the file calls the network's outputs: the names the spec declares
    (`outputs: p2, lat3`), else `output`, or `output_0`, `output_1`, ... for heads."""
    out = graph.output_shape
    count = len(out) if out and isinstance(out[0], tuple) else 1
    if declared and INPUT not in declared and len(set(declared)) == count:
        return list(declared)
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def refuse_unrunnable(graph: Graph) -> tuple[str | None, SpecError] | None:
    """What torch builds but ONNX runtimes refuse to run, as (the file it is written in,
    where not the spec's own, and the error), so that nothing is written for it: a
    transposed convolution whose output padding is not below its stride (torch takes it
    beside a larger dilation)."""
    for path, node in graph.layers():
        layer = node.layer
        if layer.op != "conv_transpose":
            continue
        stride, extra = pair(layer.s), pair(layer.output_padding)
        if any(e >= s for e, s in zip(extra, stride)):
            return node.file, SpecError(
                f"conv_transpose ({path}) has output_padding {layer.output_padding} not below "
                f"its stride {layer.s}: torch takes it beside dilation {layer.d}, but ONNX "
                "runtimes refuse to run it; nothing was written",
                node.pos,
            )
    return None


def to_onnx(
    net: torch.nn.Module,
    input_shape: tuple[int, ...],
    path: str | os.PathLike,
    outputs: list[str] | None = None,
) -> None:
    """Export `net` (in eval mode) to ONNX at `path`, its outputs called `outputs`."""
    net = net.eval()
    # two: a batch of one would hide a size wrongly fixed at one (it broadcasts)
    example = (torch.zeros(2, *input_shape),)
    with atomic_path(path) as tmp:
        try:
            _traced(net, example, tmp, outputs)
        except Exception:  # an op without a converter, or Python the tracer cannot follow
            _through_torch_export(net, example, tmp, outputs)


def _traced(net: torch.nn.Module, example: tuple, path: Path, outputs: list[str] | None) -> None:
    # The batch is declared free on the input and named on the outputs (shape inference
    # would carry it there under a name of its own).
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter's deprecation notice, and the tracer's notes that a Python number
        # taken from a size is fixed: only the batch may vary, and the tests vary it.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            net,
            example,
            str(path),
            dynamo=False,
            input_names=[INPUT],
            output_names=outputs,
            dynamic_axes={name: {0: BATCH} for name in (INPUT, *(outputs or ()))},
        )


def _through_torch_export(
    net: torch.nn.Module, example: tuple, path: Path, outputs: list[str] | None
) -> None:
    torch.onnx.export(
        net,
        example,
        str(path),
        dynamo=True,
        verbose=False,
        input_names=[INPUT],
        output_names=outputs,
        dynamic_shapes=({0: torch.export.Dim(BATCH, min=1)},),
        external_data=False,
    )

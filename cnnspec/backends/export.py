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

from ..atomic import atomic_path

BATCH = "batch"


def to_onnx(net: torch.nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike) -> None:
    """Export `net` (in eval mode) to ONNX at `path`."""
    net = net.eval()
    # two: a batch of one would hide a size wrongly fixed at one (it broadcasts)
    example = (torch.zeros(2, *input_shape),)
    with atomic_path(path) as tmp:
        try:
            _traced(net, example, tmp)
        except Exception:  # an op without a converter, or Python the tracer cannot follow
            _through_torch_export(net, example, tmp)


def _traced(net: torch.nn.Module, example: tuple, path: Path) -> None:
    # Only the input's batch is declared: ONNX's shape inference carries it to the outputs.
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
            input_names=["input"],
            dynamic_axes={"input": {0: BATCH}},
        )


def _through_torch_export(net: torch.nn.Module, example: tuple, path: Path) -> None:
    torch.onnx.export(
        net,
        example,
        str(path),
        dynamo=True,
        verbose=False,
        input_names=["input"],
        dynamic_shapes=({0: torch.export.Dim(BATCH, min=1)},),
        external_data=False,
    )

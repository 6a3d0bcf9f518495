"""A compiled network in an exchange format: ONNX, through torch's own exporter.

The batch dimension stays dynamic; every other size is the spec's. The file is written
whole or not at all.
"""

from __future__ import annotations

import os

import torch

from ..atomic import atomic_path


def to_onnx(net: torch.nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike) -> None:
    """Export `net` (in eval mode) to ONNX at `path`."""
    example = (torch.zeros(2, *input_shape),)  # two: a batch of one would be specialised
    batch = {0: torch.export.Dim("batch", min=1)}
    with atomic_path(path) as tmp:
        torch.onnx.export(
            net.eval(),
            example,
            str(tmp),
            dynamo=True,
            verbose=False,
            dynamic_shapes=(batch,),
            external_data=False,
        )

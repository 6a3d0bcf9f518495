"""The ops: one class per op, grouped by family. Importing this package registers them all.

To add an op, write its class in the family's module (or a new module imported below);
the registry, the schema, the summary, both backends and the per-op tests pick it up.
"""

from . import activations, channels, features, regularisers, resampling, windows  # noqa: F401  (registers the ops)
from .base import REGISTRY, Activation, Inferred, Layer, ModuleCall, Shape, fmt, pair, plain_module
from .windows import Conv, Window

LAYERS = REGISTRY  # op name -> Layer class, in definition order

__all__ = [
    "LAYERS",
    "Activation",
    "Conv",
    "Inferred",
    "Layer",
    "ModuleCall",
    "Shape",
    "Window",
    "fmt",
    "pair",
    "plain_module",
]

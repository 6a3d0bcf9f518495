"""The combinators: one class per kind (see `base.py`). Importing this package imports
every module in it, which registers the kinds they define."""

from importlib import import_module
from pkgutil import iter_modules

from .base import REGISTRY, Combinator, Walker, combine, conditional, path_stride
from .branches import dense_unit

for _module in iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

RULES = REGISTRY  # kind -> Combinator class, in definition order

__all__ = [
    "RULES",
    "Combinator",
    "Walker",
    "combine",
    "conditional",
    "dense_unit",
    "path_stride",
]

"""cnnspec: a declarative architecture compiler for convolutional networks.

    import cnnspec
    spec = cnnspec.load("specs/googlenet.cnn")   # validated and shape-inferred, no torch
    print(spec.summary())
    net = spec.build()                           # a torch.nn.Module
    net = cnnspec.compile("specs/googlenet.cnn") # the same, in one step
    print(cnnspec.transfer(net, "weights.pth"))  # another model's weights, by structure

In Jupyter, a `Spec` shows as its headline, layer table and picture, and `%load_ext cnnspec`
gives the `%%cnnspec` cell magic (see `cnnspec/notebook.py`).

Importing cnnspec does not import torch; only building a module does.
"""

from .errors import CnnspecError
from .limits import Limits
from .spec import Spec, compile, load, transfer
from .version import __version__

__all__ = ["CnnspecError", "Limits", "Spec", "__version__", "compile", "load", "transfer"]


def load_ipython_extension(ipython) -> None:
    """`%load_ext cnnspec` in IPython or Jupyter: the `%%cnnspec` cell magic."""
    from .notebook import load_ipython_extension as register

    register(ipython)

"""cnnspec: a declarative architecture compiler for convolutional networks.

    import cnnspec
    spec = cnnspec.load("specs/googlenet.cnn")   # validated and shape-inferred, no torch
    print(spec.summary())
    net = spec.build()                           # a torch.nn.Module
    net = cnnspec.compile("specs/googlenet.cnn") # the same, in one step
    print(cnnspec.transfer(net, "weights.pth"))  # another model's weights, by structure

Importing cnnspec does not import torch; only building a module does.
"""

from .errors import CnnspecError
from .limits import Limits
from .spec import Spec, compile, load, transfer
from .version import __version__

__all__ = ["CnnspecError", "Limits", "Spec", "__version__", "compile", "load", "transfer"]

"""The `%%cnnspec` cell magic: a notebook cell that is a spec.

    %load_ext cnnspec

    %%cnnspec lenet --build net --depth 3
    network LeNet(input=1x28x28, classes=10):
        ...

The cell is checked and displayed (headline, table, picture); `lenet` is bound to the
`Spec` and `net` to a fresh module built from it. A mistake shows as the cell's own line
with a caret under the column, not as a traceback.
"""

from __future__ import annotations

import argparse
import shlex

from .errors import CnnspecError
from .spec import Spec, load

# What errors call the cell's text by, in place of a file name.
CELL = "cell"


class CellError(Exception):
    """A spec error in a cell. IPython shows an exception's `_render_traceback_` lines in
    place of its traceback: here the `cell:line:col: message` line, the line and a caret."""

    def __init__(self, rendered: str):
        super().__init__(rendered)
        self.rendered = rendered

    def _render_traceback_(self) -> list[str]:
        return self.rendered.split("\n")


class UsageError(CellError):
    """The magic's own line is wrong (an unknown option, a name that is no identifier)."""


def _arguments(line: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="%%cnnspec", add_help=False, exit_on_error=False)
    parser.add_argument("name", nargs="?", help="bind the Spec to this name")
    parser.add_argument("--build", metavar="NAME", help="bind a module built from it")
    parser.add_argument("--depth", type=int, help="levels of the table (stages are 1)")
    parser.add_argument("--picture-depth", type=int, help="levels of blocks drawn open")
    parser.add_argument("--no-picture", action="store_true", help="leave the picture out")
    parser.add_argument("--format", choices=("cnn", "yaml"), help="when it cannot be told")
    usage = "usage: %%cnnspec [NAME] [--build NAME] [--depth N] [--picture-depth N] " + (
        "[--no-picture] [--format cnn|yaml]"
    )
    try:
        words = shlex.split(line)
        args, unknown = parser.parse_known_args(words)
    except (argparse.ArgumentError, ValueError) as err:
        raise UsageError(f"%%cnnspec: {err}\n{usage}") from None
    if unknown:
        raise UsageError(f"%%cnnspec: unknown option {unknown[0]!r}\n{usage}")
    for name in (args.name, args.build):
        if name is not None and not name.isidentifier():
            raise UsageError(f"%%cnnspec: {name!r} is not a Python name to bind\n{usage}")
    for depth in (args.depth, args.picture_depth):
        if depth is not None and depth < 0:
            raise UsageError(f"%%cnnspec: a depth is 0 or more, not {depth}\n{usage}")
    return args


def cnnspec_cell(line: str, cell: str, namespace: dict):
    """Check `cell` as a spec, bind what `line` asks for in `namespace`, and return what
    the notebook shows."""
    args = _arguments(line)
    try:
        # A blank line in place of the `%%cnnspec` line: errors then count lines as the
        # notebook numbers the cell's.
        spec: Spec = load("\n" + cell, format=args.format, name=CELL)
    except CnnspecError as err:
        raise CellError("\n".join(e.render() for e in (err, *err.more))) from None
    if args.name:
        namespace[args.name] = spec
    if args.build:
        namespace[args.build] = spec.build()
    return spec.display(args.depth, args.picture_depth, picture=not args.no_picture)


def load_ipython_extension(ipython) -> None:
    """`%load_ext cnnspec`: registers the `%%cnnspec` cell magic."""

    def magic(line: str, cell: str):
        return cnnspec_cell(line, cell, ipython.user_ns)

    magic.__doc__ = __doc__
    ipython.register_magic_function(magic, magic_kind="cell", magic_name="cnnspec")

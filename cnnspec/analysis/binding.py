"""Argument binding: a call's positional and keyword arguments matched to parameter names.

Layers and blocks bind the same way, and so do codegen's generic block classes, which see
the arguments as expressions rather than values.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

from ..errors import SpecError, did_you_mean
from ..language import ir
from .ops import LAYERS


def match_arguments(
    call: ir.Call, names: list[str], required: Collection[str]
) -> dict[str, ir.Node]:
    """Positional and keyword arguments of `call`, by parameter name (not yet evaluated)."""
    if len(call.args) > len(names):
        extra = call.args[len(names)]
        raise SpecError(
            f"{call.op} takes at most {len(names)} positional argument"
            f"{'s' if len(names) != 1 else ''} ({', '.join(names) or 'none'}), "
            f"got {len(call.args)}",
            extra.pos,
        )
    exprs: dict[str, ir.Node] = dict(zip(names, call.args))
    for kw in call.kwargs:
        if kw.name not in names:
            hint = _unknown_argument_hint(kw.name, names)
            raise SpecError(f"{call.op} has no argument '{kw.name}'{hint}", kw.pos)
        if kw.name in exprs:
            raise SpecError(f"{call.op} argument '{kw.name}' is given twice", kw.pos)
        exprs[kw.name] = kw.value
    missing = [n for n in names if n in required and n not in exprs]
    if missing:
        raise SpecError(f"{call.op} is missing argument '{missing[0]}'", call.pos)
    return exprs


# torch's keywords, which users type first, for cnnspec's short names: each op's own
# `torch_names`, and spellings no op passes on (d2l's `strides`, the output sizes). One
# spelling per argument (rather than torch's as aliases) keeps specs, their YAML form and
# generated code alike, so torch's name is refused with the fix. Blocks whose parameters
# are named like the ops' (nin_block's k, s, p) get the same hint.
_TORCH_NAMES = {
    theirs: ours for layer in LAYERS.values() for ours, theirs in layer.torch_names.items()
} | {"strides": "s", "out_channels": "out", "out_features": "out"}
_FROM_THE_INPUT = ("in_channels", "num_features")  # read off the input's shape
# The words the short names stand for, so that a misspelt long one (`strid`, `kernal`) finds
# its short name, which no spelling check of the short names alone would.
_LONG_NAMES = _TORCH_NAMES | {"kernel": "k", "stride": "s", "padding": "p", "dilation": "d"}


def _unknown_argument_hint(name: str, names: list[str]) -> str:
    ours = _TORCH_NAMES.get(name)
    if ours in names:
        return f" (that is torch's name: cnnspec calls it '{ours}')"
    if name in _FROM_THE_INPUT:
        return " (cnnspec takes it from the input's shape: leave it out)"
    hint = did_you_mean(name, names)
    if hint:
        return hint
    longer = {long: short for long, short in _LONG_NAMES.items() if short in names}
    close = difflib.get_close_matches(name, sorted(longer), n=1, cutoff=0.6)
    return f" (did you mean '{longer[close[0]]}', for {close[0]}?)" if close else ""

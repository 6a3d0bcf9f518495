"""The nodes a block's generic body is made of beside inference's own (see `generic.py`),
and the values that stand for its parameters."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from ..language import ir, symbols
from ..language.expressions import OpRef
from .graph import Node

# The names of sizes no generated class can write (they start with `<`).
UNWRITABLE = "<"


class NotGeneric(SpecError):
    """The block holds for its witness, but not as one class for every argument."""


class NotAtWitness(NotGeneric):
    """Part of the body the witness does not take (an if's other arm) fails with the
    witness's values; another call of the block may take it."""


@dataclass(frozen=True)
class Loop(Node):
    """A repeat or a for: `children` holds its body once, walked for every turn."""

    count: object = None  # a repeat's turns (a number, or a symbol's expression)
    rows: ir.Node | None = None  # a for's table, as the spec writes it
    scope: tuple[tuple[str, object], ...] = ()  # the values the count or table reads
    index: tuple[str, ...] = ()  # the locals each turn binds (the index, a row's names)
    carried: str = ""  # the local holding the channels from one turn to the next
    start: object = None  # the channels before the first turn
    end: object = None  # the channels after a turn, in terms of `carried`


@dataclass(frozen=True)
class Branching(Node):
    """An if: `children` holds both arms, "then" and "else"."""

    test: ir.Node | None = None
    scope: tuple[tuple[str, object], ...] = ()  # the values the test reads
    carried: str | None = None  # the local both arms leave the channels in, if they differ
    ends: tuple[object, object] = (None, None)  # the channels after each arm


@dataclass(frozen=True)
class Instance(Node):
    """A call of another block, as an instance of its class held in `local`."""

    local: str = ""
    call: ir.Call | None = None
    scope: tuple[tuple[str, object], ...] = ()  # the values its arguments read
    witness: Node | None = None  # the callee walked with this call's values


@dataclass(frozen=True)
class LayerParameter(Node):
    """A call of a parameter that holds a layer (`act`): the class passed, called."""

    local: str = ""


@dataclass(frozen=True)
class Guarded(Node):
    """A layer made only where one of `differs` differs (a residual's projection), or
    where `flag` says so: its one child, "layer"."""

    differs: tuple[tuple[object, object], ...] = ()
    # A parameter that decides instead, where it is not none (add's `project`).
    flag: object = None


class OpParameter(OpRef):
    """A parameter holding a layer (`act=relu`), written by its name."""

    def __init__(self, name: str, op: str):
        super().__init__(op)
        object.__setattr__(self, "name", name)

    def __repr__(self) -> str:
        return self.name  # type: ignore[attr-defined]


def witness_value(value):
    """The value a witness gave, where `value` may stand for a parameter."""
    if isinstance(value, OpParameter):
        return OpRef(value.op)
    if isinstance(value, tuple):
        return tuple(witness_value(v) for v in value)
    return symbols.plain(value)


def unwritable(value) -> bool:
    """Whether `value` follows what no class can write (the height, the width)."""
    return any(n.startswith(UNWRITABLE) for n in _names(value))


def _names(value) -> frozenset[str]:
    return frozenset() if isinstance(value, OpParameter) else symbols.names(value)

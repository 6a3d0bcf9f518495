"""The IR: frozen Pydantic models of a spec exactly as written, before any expansion.

Both front ends produce the same plain dicts; only this module validates them. Items and
expressions are discriminated unions keyed by `kind`. Every node keeps its source position
in `pos` (and `keypos` for the positions of its keys), but positions are metadata: they take
no part in equality or in dumps, so the `.cnn` and `.yaml` of one network give equal IR.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.json_schema import SkipJsonSchema

from ..errors import SpecError, did_you_mean

# The combinators' names: the grammar, the IR and both front ends read them here, and the
# analysis and backends key their per-kind rules by them.
COMBINATORS = ("concat", "add", "dense", "heads", "mul", "split", "res2", "select")
# The words of the text form (grammar.lark's keywords) and the combinators: no stage,
# line, branch, block, parameter or index may take one as its name.
KEYWORDS = (
    "use", "block", "network", "train", "outputs", "for", "in", "if", "else", "as",
    "true", "false", "none", "not", "and", "or",
)  # fmt: skip
RESERVED_WORDS = (*KEYWORDS, *COMBINATORS)
# The combinators that also join named tensors: `add(lat4, up5)`.
JOINS = ("concat", "add", "mul")
# The name of the network's input tensor.
INPUT = "input"
METADATA_KEYS = ("pos", "keypos")  # set by the front ends; never a user's key
NETWORK_OPTIONS = ("name", "input", "classes", "params", "stages", "outputs")
LOADED_KEYS = ("used", "origins")  # set by the loader from `use`; never a user's key


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    pos: SkipJsonSchema[tuple[int, int]] = Field(default=(0, 0), exclude=True, repr=False)
    keypos: SkipJsonSchema[dict[str, tuple[int, int]]] = Field(
        default_factory=dict, exclude=True, repr=False
    )

    def __eq__(self, other: object) -> bool:
        # Positions say where a node was written, not what it is.
        return type(self) is type(other) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]


# --- expressions -----------------------------------------------------------------------


class Num(Node):
    kind: Literal["num"]
    value: int | float


class Const(Node):
    kind: Literal["const"]
    value: bool | None


class Name(Node):
    kind: Literal["name"]
    id: str


class Neg(Node):
    kind: Literal["neg"]
    operand: Expr


class BinOp(Node):
    kind: Literal["binop"]
    op: Literal["+", "-", "*", "//", "%", "/", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    left: Expr
    right: Expr


class Not(Node):
    kind: Literal["not"]
    operand: Expr


class Index(Node):
    kind: Literal["index"]
    target: Expr
    index: Expr


class TupleExpr(Node):
    kind: Literal["tuple"]
    items: tuple[Expr, ...]


class Func(Node):
    """A numeric function: `round(c * 0.75)`, `make_divisible(c * width, 8)`."""

    kind: Literal["func"]
    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Kwarg, ...] = ()


class Kwarg(Node):
    name: str
    value: Expr


Expr = Annotated[
    Num | Const | Name | Neg | Not | BinOp | Index | TupleExpr | Func, Field(discriminator="kind")
]


# --- layers, blocks and combinators ----------------------------------------------------


class Call(Node):
    """A layer or a block, by name: `conv(64, k=3)`, `inception(64, (96, 128), ...)`."""

    kind: Literal["call"]
    op: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Kwarg, ...] = ()


class Repeat(Node):
    """`body * count`: the body, `count` times in sequence; `body * count as i` binds `i`
    to 0, 1, ... in the body."""

    kind: Literal["repeat"]
    count: Expr
    body: tuple[Item, ...]
    index: str | None = None


class For(Node):
    """`for (a, b) in rows:` its body once per row, with the row's values bound to the
    names (one name: each row is its value)."""

    kind: Literal["for"]
    names: tuple[str, ...] = Field(min_length=1)
    rows: Expr
    body: tuple[Item, ...]


class If(Node):
    """`if test:` its body, else `orelse`; `item if test` is one with no `orelse`."""

    kind: Literal["if"]
    test: Expr
    body: tuple[Item, ...]
    orelse: tuple[Item, ...] = ()


class Branch(Node):
    name: str | None = None
    body: tuple[Item, ...]


class Combinator(Node):
    """Branches joined: concat (channels), add (residual), dense (DenseNet), heads (outputs),
    mul (a gate), split (each branch a share of the channels), select (SKNet's attention
    across branches)."""

    kind: Literal[COMBINATORS]
    kwargs: tuple[Kwarg, ...] = ()
    branches: tuple[Branch, ...]


class Join(Node):
    """Named tensors joined: `concat(a, b)` on channels, `add(a, b)` summed, `mul(a, b)`
    multiplied. It starts a stage, whose other layers then run on its result."""

    kind: Literal["join"]
    op: Literal[JOINS]
    inputs: tuple[Name, ...] = Field(min_length=2)


class Line(Node):
    """`name: ...` in a block: a line whose output later lines read by name."""

    kind: Literal["line"]
    name: str
    body: tuple[Item, ...]


Item = Annotated[Call | Repeat | For | If | Combinator | Join | Line, Field(discriminator="kind")]


def splices(item) -> bool:
    """Whether an item gives its body's layers in place (any number of them)."""
    return isinstance(item, (Repeat, For, If))


class Param(Node):
    name: str
    default: Expr | None = None


class BlockDef(Node):
    name: str
    params: tuple[Param, ...] = ()
    body: tuple[Item, ...]


class Stage(Node):
    name: str
    body: tuple[Item, ...]


class Network(Node):
    name: str
    input: tuple[int, ...]
    classes: int = 10
    # Its own parameters, `network N(input=..., width=1.0)`: names the stages may read.
    params: tuple[Kwarg, ...] = ()
    stages: tuple[Stage, ...]
    # The tensors the network returns, in order (`outputs: p2, p3`); none: the last stage's.
    outputs: tuple[Name, ...] = ()

    @field_validator("input", mode="before")
    @classmethod
    def _feature_count(cls, value: Any) -> Any:
        """`input=784` is a feature vector: the shape (784,)."""
        return (value,) if isinstance(value, int) and not isinstance(value, bool) else value


class Recipe(Node):
    """How `cnnspec train` trains this network by default (d2l's `train_ch6` settings)."""

    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    epochs: int = Field(10, ge=1)
    batch: int = Field(256, ge=1)
    resize: int | None = Field(None, ge=1)
    init: Literal["xavier", "default"] = "xavier"
    momentum: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)


class Use(Node):
    """`use "blocks.cnn"`: another file's blocks, by a path relative to this spec."""

    path: str


class Document(Node):
    uses: tuple[Use, ...] = ()
    blocks: tuple[BlockDef, ...] = ()
    network: Network
    train: Recipe = Field(default_factory=Recipe)
    # The blocks of the used files, and for each by name where it came from (its file's
    # Source and the `use` that brought it): filled in by the loader, not written.
    used: SkipJsonSchema[tuple[BlockDef, ...]] = Field(default=(), exclude=True, repr=False)
    origins: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict, exclude=True, repr=False)


for _model in (
    Neg,
    Not,
    If,
    BinOp,
    Index,
    TupleExpr,
    Func,
    Kwarg,
    Repeat,
    For,
    Branch,
    Combinator,
    Join,
    Line,
    BlockDef,
    Stage,
    Network,
):
    _model.model_rebuild()


def to_expr(data: dict) -> Expr:
    """One expression from a front end's plain data."""
    return TypeAdapter(Expr).validate_python(strict_ready(data), strict=True)


def constant(value, pos: tuple[int, int]) -> Expr:
    """An evaluated value as an expression written at `pos` (a number, a constant, a tuple)."""
    if isinstance(value, tuple):
        return TupleExpr(kind="tuple", items=tuple(constant(v, pos) for v in value), pos=pos)
    if isinstance(value, bool) or value is None:
        return Const(kind="const", value=value, pos=pos)
    if isinstance(value, (int, float)):
        return Num(kind="num", value=value, pos=pos)
    raise SpecError(
        f"a network parameter must be a number, true, false, none or a tuple, got {value!r}", pos
    )


def to_ir(data: dict) -> Document:
    """Validate a front end's plain document; the first problem becomes a positioned error."""
    if data.get("train") is None:
        data = {**data, "train": {"pos": data.get("pos", (0, 0))}}
    try:
        return Document.model_validate(strict_ready(data))
    except ValidationError as err:
        raise _explain(err, data) from None


def strict_ready(node: Any) -> Any:
    """Front-end data with tuples where the models say tuple (strict mode wants them)."""
    if isinstance(node, dict):
        return {k: (v if k in METADATA_KEYS else strict_ready(v)) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return tuple(strict_ready(v) for v in node)
    return node


def _explain(err: ValidationError, data: dict) -> SpecError:
    """Turn pydantic's first error into one sentence at the position of the offending key."""
    # A misspelt key also makes a required one "missing": name the misspelling first.
    errors = err.errors(include_url=False)
    first = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    loc = _located(first["loc"], data)
    node, pos, key = data, data.get("pos", (0, 0)), None
    parents: list[Any] = []
    for part in loc:
        if isinstance(node, dict):
            if isinstance(part, str) and part in node.get("keypos", {}):
                pos = node["keypos"][part]
            key = part
        parents.append(node)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "pos" in node:
            pos = node["pos"]
    kind, where = first["type"], _where(loc)
    if kind == "extra_forbidden":
        allowed = _fields_for(loc[:-1])
        hint = did_you_mean(str(key), allowed)
        if not hint and where == "the train recipe":
            hint = f"; the options are {', '.join(allowed)}"
        return SpecError(f"unknown key '{key}' in {where}{hint}", pos)
    if kind == "missing":
        return SpecError(f"{where} is missing '{key}'", pos)
    if kind == "too_short" and key == "inputs" and parents:  # a join of one tensor, or none
        op = parents[-1].get("op", "a join")
        return SpecError(
            f"{op}(...) joins two or more tensors, got {len(first.get('input') or ())}; to go "
            "on from one tensor, start from its name alone",
            pos,
        )
    got = first.get("input")
    got = f", got {_brief(got)}" if isinstance(got, (str, int, float, list, tuple)) else ""
    message = first["msg"][0].lower() + first["msg"][1:]
    return SpecError(f"{where}: '{key}' {message.removeprefix('input ')}{got}", pos)


# The `kind` tags of the discriminated unions, which pydantic puts in an error's location.
_UNION_TAGS = frozenset(
    tag
    for model in (
        Num,
        Const,
        Name,
        Neg,
        Not,
        BinOp,
        Index,
        TupleExpr,
        Func,
        Call,
        Repeat,
        For,
        If,
        Combinator,
        Join,
        Line,
    )
    for tag in get_args(model.model_fields["kind"].annotation)
)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


def _located(loc: tuple, data: Any) -> list:
    """pydantic's location of an error with the tags of discriminated unions left out. A
    part is such a tag where the data there is a node of that kind and has no such key: a
    combinator `mul` puts its kind in the location, a recipe's `mul=128` is a key."""
    parts, node = [], data
    for part in loc:
        if (
            isinstance(node, dict)
            and part in _UNION_TAGS
            and part not in node
            and node.get("kind") == part
        ):
            continue
        parts.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return parts


def _where(loc: list) -> str:
    for part in reversed(loc[:-1]):
        if isinstance(part, str) and part in ("network", "train", "blocks", "stages"):
            return {"train": "the train recipe", "blocks": "a block", "stages": "a stage"}.get(
                part, "the network"
            )
    return "the spec"


def _fields_for(loc: list) -> list[str]:
    models = {"network": Network, "train": Recipe, "blocks": BlockDef, "stages": Stage}
    for part in reversed(loc):
        if part in models:
            return [f for f in models[part].model_fields if f not in METADATA_KEYS]
    return [f for f in Document.model_fields if f not in METADATA_KEYS + LOADED_KEYS]

"""What every op is made of: its arguments, its shape rule, and the torch module it becomes.

An op is one `Layer` subclass, and everything cnnspec knows about it is on that class:

- its arguments, as typed fields in positional order (`conv(64, 3)` binds `out=64, k=3`);
- `infer`: output shape, parameter count and multiply-accumulates, with no torch;
- `constructor`: which torch module implements it and with which arguments, as data. The
  live build calls it with values, codegen with source text, so both say the same thing;
- for residual shortcuts in generic block classes, which see arguments as expressions
  rather than values: the window facts in `windows.py` (`keeps_size`).

Trivial families need almost nothing: an activation is one line, `class Name(Activation,
op="name", module="nn.Name")`, and a docstring (see `activations.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...errors import ShapeError
from ...language import symbols

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Size = PositiveInt | tuple[PositiveInt, PositiveInt]  # 3 or (1, 3): height, width
Padding = NonNegativeInt | tuple[NonNegativeInt, NonNegativeInt]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

Shape = tuple[int, ...]  # (C, H, W) for images, (F,) for features
T = TypeVar("T")  # an argument as a value (the live build) or as source text (codegen)


@dataclass(frozen=True)
class Inferred:
    """What shape inference learns from one layer."""

    shape: Shape
    params: int = 0
    macs: int = 0


@dataclass(frozen=True)
class ModuleCall:
    """A torch module constructor as data: `nn.Conv2d(3, 64, kernel_size=7, stride=2)`.

    `module` is a `torch.nn` class (`nn.Conv2d`) or a class of cnnspec's runtime
    (`Reshape`); the arguments are values or source text, whichever the backend passed in."""

    module: str
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


REGISTRY: dict[str, type[Layer]] = {}


class Layer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    op: ClassVar[str]  # the name a spec calls it by
    module: ClassVar[str]  # the torch class that implements it (see ModuleCall)
    positional: ClassVar[tuple[str, ...]] = ()  # arguments torch takes by position
    torch_names: ClassVar[Mapping[str, str]] = {}  # our argument name -> torch's keyword
    example: ClassVar[tuple[str, str]] = ("", "3x8x8")  # a call and an input, for the tests
    # The output size is no fixed stride of the input's (adaptive pooling, flatten): a
    # residual shortcut around it cannot be projected.
    resizes: ClassVar[bool] = False
    # Arguments that name another tensor of the network (`like=input`): the layer reads it
    # when it runs, so it can stand only where named tensors are in scope.
    tensor_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, op: str | None = None, module: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if module is not None:
            cls.module = module
        if op is not None:
            if op in REGISTRY:
                raise TypeError(f"op {op!r} is defined twice")
            cls.op = op
            REGISTRY[op] = cls
            if not cls.example[0]:
                cls.example = (op, cls.example[1])

    @model_validator(mode="wrap")
    @classmethod
    def _keep_symbols(cls, data, handler):
        """Validated on their values, the arguments that carry parameters are kept as
        given (pydantic makes plain ints of them, and refuses a flag a block class takes),
        so that the layer's output and its constructor in generated code carry them too
        (see `language/symbols.py`)."""
        if not (symbols.active() and isinstance(data, dict)):
            return handler(data)
        layer = handler({name: symbols.plain(value) for name, value in data.items()})
        for name, value in data.items():
            if symbols.symbolic(value):
                object.__setattr__(layer, name, value)
        return layer

    @classmethod
    def doc(cls) -> str:
        """One line on what the op does: the first line of its docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0]

    @classmethod
    def signature(cls) -> list[str]:
        """Argument names in positional order."""
        return list(cls.model_fields)

    @classmethod
    def required(cls) -> set[str]:
        return {name for name, f in cls.model_fields.items() if f.is_required()}

    @classmethod
    def words(cls) -> dict[str, tuple[str, ...]]:
        """Arguments whose values are words (`mode=bilinear`), with the words each takes."""
        return _words(cls)

    def reads(self) -> tuple[str, ...]:
        """The names of the other tensors this layer reads when it runs."""
        return ()

    def arguments(self) -> dict:
        """The arguments that differ from their defaults, in signature order."""
        return {
            name: getattr(self, name)
            for name, default in _defaults(type(self))
            if getattr(self, name) != default or symbols.symbolic(getattr(self, name))
        }

    # --- inference --------------------------------------------------------------------
    def infer(self, shape: Shape) -> Inferred:
        """Output shape, parameters and MACs for an input of `shape`. Raises ShapeError
        (without a position: inference adds where the layer and its input are)."""
        return Inferred(shape)

    def infer_reading(self, shape: Shape, tensors: Mapping[str, Shape]) -> Inferred:
        """`infer`, for a layer that also reads the named tensors of `tensors`."""
        return self.infer(shape)

    # --- construction -----------------------------------------------------------------
    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        """The torch module for the arguments given (defaults are left out: cnnspec's
        defaults are torch's), the input's channels and whether the input is an image."""
        return ModuleCall(
            cls.module,
            tuple(args[name] for name in cls.positional if name in args),
            tuple(
                (cls.torch_names.get(name, name), args[name])
                for name in cls.signature()
                if name in args and name not in cls.positional
            ),
        )


# Facts of an op's fields, read once per class: pydantic's field table is slow to walk,
# and inference asks them of every layer.
@cache
def _words(cls: type[Layer]) -> dict[str, tuple[str, ...]]:
    found = {}
    for name, field in cls.model_fields.items():
        for option in (field.annotation, *get_args(field.annotation)):
            if get_origin(option) is Literal:
                found[name] = tuple(get_args(option))
    return found


@cache
def _defaults(cls: type[Layer]) -> tuple[tuple[str, Any], ...]:
    return tuple((name, field.default) for name, field in cls.model_fields.items())


def plain_module(layer: type[Layer]) -> str | None:
    """The torch class that makes `layer` with no arguments, when that module keeps any
    input's shape: such an op passes to a generated block class as the class itself
    (`act=nn.Hardswish`), which the block calls (`act()`)."""
    if layer.required() or layer.resizes:
        return None
    modules = set()
    for shape in ((5, 7, 9), (5,)):  # an image, and features
        call = layer.constructor({}, "channels", len(shape) == 3)
        if call.args or call.kwargs:
            return None
        try:
            if layer().infer(shape).shape != shape:
                return None
        except ShapeError:
            return None
        modules.add(call.module)
    return modules.pop() if len(modules) == 1 else None


class Activation(Layer):
    """An elementwise function: same shape, no parameters."""


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def fmt(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def image(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        what = f"{shape[0]} features" if len(shape) == 1 else fmt(shape)
        raise ShapeError(f"{op} needs an image (C x H x W) as input, got {what}")
    return shape  # type: ignore[return-value]

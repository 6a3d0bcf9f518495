"""The layer kinds, as typed and validated after their arguments are evaluated.

One frozen model per op; together they form a discriminated union on `op`. A model's field
order is the op's signature: `conv(64, 3)` binds `out=64, k=3`. Everything an op accepts,
and of what type, is stated here and nowhere else.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Size = PositiveInt | tuple[PositiveInt, PositiveInt]  # 3 or (1, 3): height, width
Padding = NonNegativeInt | tuple[NonNegativeInt, NonNegativeInt]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Layer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    doc: ClassVar[str] = ""

    @classmethod
    def signature(cls) -> list[str]:
        """Argument names in positional order."""
        return [name for name in cls.model_fields if name != "op"]

    def arguments(self) -> dict:
        """The arguments that differ from their defaults, in signature order."""
        return {
            name: getattr(self, name)
            for name in self.signature()
            if getattr(self, name) != type(self).model_fields[name].default
        }


class Window(Layer):
    """A layer that slides a window: conv and the fixed-size pools. Declares no fields, so
    each subclass keeps its own argument order."""

    @property
    def stride(self) -> int | tuple[int, int]:
        """The step between windows; a pool's defaults to its kernel size, as in torch."""
        return self.s if self.s is not None else self.k


class Conv(Window):
    op: Literal["conv"] = "conv"
    doc: ClassVar[str] = "2-d convolution: out channels, kernel, stride, padding, dilation"
    out: PositiveInt
    k: Size
    s: Size = 1
    p: Padding = 0
    d: Size = 1
    groups: PositiveInt = 1
    bias: bool = True


class MaxPool(Window):
    op: Literal["maxpool"] = "maxpool"
    doc: ClassVar[str] = "2-d max pooling; the stride defaults to the kernel size"
    k: Size
    s: Size | None = None
    p: Padding = 0
    ceil_mode: bool = False


class AvgPool(Window):
    op: Literal["avgpool"] = "avgpool"
    doc: ClassVar[str] = "2-d average pooling; the stride defaults to the kernel size"
    k: Size
    s: Size | None = None
    p: Padding = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


class AdaptiveAvgPool(Layer):
    op: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    doc: ClassVar[str] = "average pooling to a fixed output size"
    size: Size


class AdaptiveMaxPool(Layer):
    op: Literal["adaptive_maxpool"] = "adaptive_maxpool"
    doc: ClassVar[str] = "max pooling to a fixed output size"
    size: Size


class GlobalAvgPool(Layer):
    op: Literal["gap"] = "gap"
    doc: ClassVar[str] = "global average pooling to 1x1 (adaptive_avgpool(1))"


class Flatten(Layer):
    op: Literal["flatten"] = "flatten"
    doc: ClassVar[str] = "C x H x W -> C*H*W features"


class Reshape(Layer):
    op: Literal["reshape"] = "reshape"
    doc: ClassVar[str] = "view the input as another shape of the same size, e.g. reshape(1x28x28)"
    shape: tuple[PositiveInt, ...]


class Linear(Layer):
    op: Literal["linear"] = "linear"
    doc: ClassVar[str] = "fully connected; in_features, if given, is checked against the input"
    out: PositiveInt
    in_features: PositiveInt | None = None
    bias: bool = True


class Dropout(Layer):
    op: Literal["dropout"] = "dropout"
    doc: ClassVar[str] = "dropout with probability p"
    p: Probability = 0.5


class BatchNorm(Layer):
    op: Literal["batchnorm"] = "batchnorm"
    doc: ClassVar[str] = "batch norm, 2-d after images and 1-d after features"
    eps: Annotated[float, Field(gt=0.0)] = 1e-5
    momentum: Probability = 0.1


class Identity(Layer):
    op: Literal["identity"] = "identity"
    doc: ClassVar[str] = "passes its input through"


class ReLU(Layer):
    op: Literal["relu"] = "relu"
    doc: ClassVar[str] = "activation"


class ReLU6(Layer):
    op: Literal["relu6"] = "relu6"
    doc: ClassVar[str] = "activation"


class LeakyReLU(Layer):
    op: Literal["leaky_relu"] = "leaky_relu"
    doc: ClassVar[str] = "activation with a slope for negative inputs"
    slope: float = 0.01


class Sigmoid(Layer):
    op: Literal["sigmoid"] = "sigmoid"
    doc: ClassVar[str] = "activation"


class Tanh(Layer):
    op: Literal["tanh"] = "tanh"
    doc: ClassVar[str] = "activation"


class GELU(Layer):
    op: Literal["gelu"] = "gelu"
    doc: ClassVar[str] = "activation"


class SiLU(Layer):
    op: Literal["silu"] = "silu"
    doc: ClassVar[str] = "activation"


LAYER_TYPES: tuple[type[Layer], ...] = (
    Conv, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool, GlobalAvgPool, Flatten, Reshape,
    Linear, Dropout, BatchNorm, Identity, ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh, GELU, SiLU,
)  # fmt: skip

AnyLayer = Annotated[Union[LAYER_TYPES], Field(discriminator="op")]  # noqa: UP007

LAYERS: dict[str, type[Layer]] = {t.model_fields["op"].default: t for t in LAYER_TYPES}

WINDOW_OPS = tuple(op for op, t in LAYERS.items() if issubclass(t, Window))
ADAPTIVE_OPS = ("adaptive_avgpool", "adaptive_maxpool", "gap")  # output size fixed, any stride

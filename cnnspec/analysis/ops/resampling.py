"""Ops that change the image's size the other way: transposed convolution, upsampling,
pixel shuffles, and a centre crop.

`upsample` and `crop` may size their output after another tensor of the network
(`upsample(like=input, mode=bilinear)`, as FCN and DeepLab return to the input's size;
`crop(like=up)`, as the paper's U-Net crops its skips; `pad(like=skip)`, as a padded U-Net
pads an upsampled map that came out a pixel short). Such a layer reads that tensor
when it runs, so the network is not tied to one input size: the field holds the tensor's
name, and inference passes its shape to `infer_reading`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ...errors import ShapeError
from .base import (
    Inferred,
    Layer,
    ModuleCall,
    Padding,
    PositiveInt,
    Shape,
    Size,
    T,
    fmt,
    image,
    pair,
)

PositiveScale = Annotated[float, Field(gt=0.0)] | Annotated[int, Field(ge=1)]


class ConvTranspose(Layer, op="conv_transpose", module="nn.ConvTranspose2d"):
    """2-d transposed convolution: out channels, kernel, stride, padding, output padding"""

    out: PositiveInt
    k: Size
    s: Size = 1
    p: Padding = 0
    output_padding: Padding = 0
    groups: PositiveInt = 1
    bias: bool = True
    d: Size = 1
    # bilinear: weights that upsample each channel bilinearly, as d2l's FCN starts from
    init: Literal["default", "bilinear"] = "default"

    resizes = True  # it grows the image: no fixed stride a shortcut could step by
    torch_names = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation"}
    example = ("conv_transpose(4, k=3, s=2, p=1, output_padding=1)", "3x5x5")

    def infer(self, shape: Shape) -> Inferred:
        c_in, h, w = image("conv_transpose", shape)
        if c_in % self.groups or self.out % self.groups:
            raise ShapeError(
                f"conv_transpose groups={self.groups} must divide both the input channels "
                f"({c_in}) and the output channels ({self.out})"
            )
        sizes = []
        for axis, size, k, s, p, op, d in zip(
            ("height", "width"),
            (h, w),
            pair(self.k),
            pair(self.s),
            pair(self.p),
            pair(self.output_padding),
            pair(self.d),
        ):
            if op >= max(s, d):
                raise ShapeError(
                    f"conv_transpose output_padding {op} must be smaller than the stride "
                    f"{s} or the dilation {d}"
                )
            out = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            if out <= 0:
                raise ShapeError(f"conv_transpose shrinks the {axis} to {out}")
            sizes.append(out)
        kh, kw = pair(self.k)
        per_input = (self.out // self.groups) * kh * kw
        params = c_in * per_input + (self.out if self.bias else 0)
        return Inferred((self.out, *sizes), params, c_in * h * w * per_input)

    def infer_reading(self, shape: Shape, tensors: Mapping[str, Shape]) -> Inferred:
        inferred = self.infer(shape)
        if self.init == "bilinear" and (shape[0] != self.out or self.groups != 1):
            raise ShapeError(
                "conv_transpose init=bilinear upsamples each channel by itself: it needs "
                f"out equal to the input's channels ({shape[0]}) and groups=1"
            )
        return inferred

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        rest = {k: v for k, v in args.items() if k not in ("out", "init")}
        plain = super().constructor(rest, channels, image)
        bilinear = args.get("init") in ("bilinear", '"bilinear"')  # a value, or its source
        module = "BilinearConvTranspose2d" if bilinear else cls.module
        return ModuleCall(module, (channels, args["out"]), plain.kwargs)


class _Resize(Layer):
    """A layer whose output size is given one of three ways: a fixed size, or (for
    upsample) a scale, or the size of a tensor named by `like`."""

    resizes = True
    tensor_fields: ClassVar[tuple[str, ...]] = ("like",)
    ways: ClassVar[tuple[str, ...]] = ("size", "like")

    def _one_way(self) -> None:
        given = [name for name in self.ways if getattr(self, name) is not None]
        if len(given) != 1:
            ways = ", ".join(f"{name}=" for name in self.ways)
            got = f"got {', '.join(given)}" if given else "got none"
            raise ShapeError(f"{self.op} takes one of {ways} ({got})")

    def target(self, shape: Shape, like: Shape | None) -> tuple[int, int]:
        """The output's height and width."""
        raise NotImplementedError

    def infer(self, shape: Shape) -> Inferred:
        return self.infer_reading(shape, {})

    def infer_reading(self, shape: Shape, tensors: Mapping[str, Shape]) -> Inferred:
        self._one_way()
        c, _, _ = image(self.op, shape)
        like = tensors.get(self.like) if self.like is not None else None
        if like is not None and len(like) != 3:
            raise ShapeError(f"{self.op}: like={self.like} is {fmt(like)}, not an image")
        return Inferred((c, *self.target(shape, like)))

    def reads(self) -> tuple[str, ...]:
        return (self.like,) if self.like is not None else ()


class Upsample(_Resize, op="upsample", module="nn.Upsample"):
    """upsample by a scale, to a size, or to the size of a named tensor (like=)"""

    scale: PositiveScale | tuple[PositiveScale, PositiveScale] | None = None
    size: Size | None = None
    like: str | None = None
    mode: Literal["nearest", "bilinear", "bicubic"] = "nearest"
    align_corners: bool | None = None

    positional = ()
    ways = ("scale", "size", "like")
    torch_names = {"scale": "scale_factor"}
    example = ("upsample(2, mode=bilinear, align_corners=false)", "3x4x5")

    def target(self, shape: Shape, like: Shape | None) -> tuple[int, int]:
        if self.align_corners is not None and self.mode not in ("bilinear", "bicubic"):
            raise ShapeError(
                f"upsample: align_corners applies to mode bilinear or bicubic, not {self.mode}"
            )
        if like is not None:
            return like[1], like[2]
        if self.size is not None:
            return pair(self.size)
        # torch: floor(size * scale), for a scale given as a float or a whole number
        out = tuple(int(size * s) for size, s in zip(shape[1:], pair(self.scale)))
        if min(out) < 1:
            raise ShapeError(
                f"upsample by {self.scale} makes {fmt(shape)} {out[0]}x{out[1]}: a scale that "
                "shrinks a size below 1"
            )
        return out  # type: ignore[return-value]

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        kwargs = tuple(
            (cls.torch_names.get(name, name), args[name])
            for name in ("size", "scale", "mode", "align_corners")
            if name in args
        )
        if "like" in args:  # sized when it runs, after the tensor it reads
            return ModuleCall("UpsampleLike", (), kwargs)
        return ModuleCall(cls.module, (), kwargs)


class Crop(_Resize, op="crop", module="CenterCrop"):
    """crop the centre to a size, or to the size of a named tensor (like=)"""

    size: Size | None = None
    like: str | None = None

    positional = ("size",)
    example = ("crop((4, 3))", "3x8x7")

    def target(self, shape: Shape, like: Shape | None) -> tuple[int, int]:
        height, width = (like[1], like[2]) if like is not None else pair(self.size)
        if height > shape[1] or width > shape[2]:
            source = f"like={self.like} ({fmt(like)})" if like is not None else "the size"
            raise ShapeError(
                f"crop to {height}x{width} ({source}) is larger than its input {fmt(shape)}"
            )
        return height, width

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        return ModuleCall(cls.module, tuple(args[n] for n in ("size",) if n in args))


class Pad(_Resize, op="pad", module="PadTo"):
    """zero-pad evenly around the image to a size, or to the size of a named tensor (like=)"""

    size: Size | None = None
    like: str | None = None

    positional = ("size",)
    example = ("pad((10, 9))", "3x8x7")

    def target(self, shape: Shape, like: Shape | None) -> tuple[int, int]:
        height, width = (like[1], like[2]) if like is not None else pair(self.size)
        if height < shape[1] or width < shape[2]:
            source = f"like={self.like} ({fmt(like)})" if like is not None else "the size"
            raise ShapeError(
                f"pad to {height}x{width} ({source}) is smaller than its input {fmt(shape)}"
            )
        return height, width

    @classmethod
    def constructor(cls, args: Mapping[str, T], channels: T, image: bool) -> ModuleCall:
        return ModuleCall(cls.module, tuple(args[n] for n in ("size",) if n in args))


class PixelShuffle(Layer, op="pixel_shuffle", module="nn.PixelShuffle"):
    """C x H x W -> C/r² x rH x rW: channels rearranged into space (sub-pixel convolution)"""

    r: PositiveInt

    positional = ("r",)
    resizes = True
    example = ("pixel_shuffle(2)", "8x3x4")

    def infer(self, shape: Shape) -> Inferred:
        c, h, w = image("pixel_shuffle", shape)
        if c % (self.r * self.r):
            raise ShapeError(
                f"pixel_shuffle({self.r}) needs channels divisible by {self.r * self.r}, "
                f"got {fmt(shape)}"
            )
        return Inferred((c // (self.r * self.r), h * self.r, w * self.r))


class PixelUnshuffle(Layer, op="pixel_unshuffle", module="nn.PixelUnshuffle"):
    """C x H x W -> r²C x H/r x W/r: space rearranged into channels"""

    r: PositiveInt

    positional = ("r",)
    resizes = True
    example = ("pixel_unshuffle(2)", "2x4x6")

    def infer(self, shape: Shape) -> Inferred:
        c, h, w = image("pixel_unshuffle", shape)
        if h % self.r or w % self.r:
            raise ShapeError(
                f"pixel_unshuffle({self.r}) needs height and width divisible by {self.r}, "
                f"got {fmt(shape)}"
            )
        return Inferred((c * self.r * self.r, h // self.r, w // self.r))

"""The few torch modules a spec needs beyond torch.nn: the combinators, reshape, and the
layers of newer networks torch has no module for (ConvNeXt's norm and scale, stochastic
depth).

Each combinator keeps its branches in a ModuleDict called `branches`: given a list, keyed "0", "1",
...; given a dict, by its names. So state_dict keys read `stage.item.branches.1.0.weight`.
Plain loops over ModuleDicts trace cleanly under torch.compile(fullgraph=True) and export.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

Branches = dict[str, nn.Module] | list[nn.Module]


def named(branches: Branches) -> dict[str, nn.Module]:
    """Branches by name; a list is named by position."""
    if isinstance(branches, dict):
        return dict(branches)
    return {str(i): branch for i, branch in enumerate(branches)}


class Concat(nn.Module):
    """Run every branch on the input; concatenate their outputs along channels."""

    def __init__(self, branches: Branches):
        super().__init__()
        self.branches = nn.ModuleDict(named(branches))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches.values()], dim=1)


class Add(nn.Module):
    """Sum the branches. With a single branch, add the input back (the residual shortcut),
    through `shortcut` (a 1x1 convolution) when the branch changes the shape. With `scale`,
    the branch's output is first multiplied by `layer_scale`, a learned scale per channel
    (channels x 1 x 1, starting at `scale`) held ahead of the branch, as torchvision's
    ConvNeXt block holds its own."""

    def __init__(
        self,
        branches: Branches,
        shortcut: nn.Module | None = None,
        scale: float | None = None,
        channels: int | None = None,
    ):
        super().__init__()
        self.residual = len(branches) == 1
        if scale is not None:
            if not self.residual or channels is None:
                raise ValueError("a scale needs one branch and its output channels")
            self.layer_scale = nn.Parameter(torch.full((channels, 1, 1), float(scale)))
        else:
            self.layer_scale = None
        self.branches = nn.ModuleDict(named(branches))
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches.values()]
        if self.layer_scale is not None:
            outputs[0] = self.layer_scale * outputs[0]
        if self.residual:
            outputs.append(x if self.shortcut is None else self.shortcut(x))
        total = outputs[0]
        for out in outputs[1:]:
            total = total + out
        return total


class Dense(nn.Module):
    """DenseNet connectivity: each unit's output is concatenated onto its input."""

    def __init__(self, units: Branches):
        super().__init__()
        self.branches = nn.ModuleDict(named(units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.branches.values():
            x = torch.cat([x, unit(x)], dim=1)
        return x


class Mul(nn.Module):
    """A gate: the input times its branch's output, which broadcasts over the sizes it
    leaves at 1 (squeeze-and-excitation gives C x 1 x 1)."""

    def __init__(self, branches: Branches):
        super().__init__()
        self.branches = nn.ModuleDict(named(branches))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for gate in self.branches.values():  # one: inference allows no more
            out = out * gate(x)
        return out


class Split(nn.Module):
    """Cut the channels into equal chunks, one per branch in order; concatenate the
    branches' outputs along channels (ShuffleNetV2's unit)."""

    def __init__(self, branches: Branches):
        super().__init__()
        self.branches = nn.ModuleDict(named(branches))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = x.chunk(len(self.branches), dim=1)
        return torch.cat(
            [branch(chunk) for branch, chunk in zip(self.branches.values(), chunks)],
            dim=1,
        )


class SelectiveKernel(nn.Module):
    """SKNet's selective kernel: run every branch (on the whole input, or with `split` on
    its own equal chunk of the channels); from their sum, pooled, `attention` gives a
    weight per branch and channel, softmax across the branches; return the branches' sum
    weighed by them."""

    def __init__(self, branches: Branches, attention: nn.Module, split: bool = False):
        super().__init__()
        self.branches = nn.ModuleDict(named(branches))
        self.attention = attention
        self.split = split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = len(self.branches)
        inputs = x.chunk(count, dim=1) if self.split else [x] * count
        paths = torch.stack(
            [branch(part) for branch, part in zip(self.branches.values(), inputs)],
            dim=1,
        )
        pooled = paths.sum(dim=1).mean(dim=(2, 3), keepdim=True)
        n, _, channels = paths.shape[:3]
        weights = self.attention(pooled).view(n, count, channels, 1, 1)
        return (paths * weights.softmax(dim=1)).sum(dim=1)


class Res2(nn.Module):
    """Res2Net's split: cut the channels into one chunk per copy of a branch, plus one;
    copy i runs on chunk i, with copy i - 1's output added first (without `pool`), and
    the last chunk passes through (`pool`ed where given); concatenate them all. The copies'
    layers are held layer by layer, every copy's first layer then every copy's second, as
    Res2Net registers its `convs` and then its `bns`."""

    def __init__(self, branches: Branches, pool: nn.Module | None = None):
        super().__init__()
        built = named(branches).values()
        copies = [list(b) if isinstance(b, nn.Sequential) else [b] for b in built]
        self.layers = nn.ModuleList(nn.ModuleList(step) for step in zip(*copies))
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = x.chunk(len(self.layers[0]) + 1, dim=1)
        outputs: list[torch.Tensor] = []
        for i, chunk in enumerate(chunks[:-1]):
            y = chunk if i == 0 or self.pool is not None else outputs[-1] + chunk
            for step in self.layers:
                y = step[i](y)
            outputs.append(y)
        last = chunks[-1] if self.pool is None else self.pool(chunks[-1])
        return torch.cat([*outputs, last], dim=1)


class Heads(nn.Module):
    """Several outputs from one trunk: a tuple, one tensor per head."""

    def __init__(self, heads: Branches):
        super().__init__()
        self.branches = nn.ModuleDict(named(heads))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(head(x) for head in self.branches.values())


class Reshape(nn.Module):
    """View each sample as `shape` (seed 000's Reshape: 784 values -> 1x28x28)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return "x".join(map(str, self.shape))


class PointwiseLinear(nn.Linear):
    """A linear layer at each position of an image, as torchvision's ConvNeXt block applies
    nn.Linear: channels last, the linear, then back. The weight is out x in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels at each position of an image, as torchvision's ConvNeXt
    computes it (channels last, then back), so the numbers are the same."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(
            x,
            self.normalized_shape,
            self.weight,
            self.bias,
            self.eps,
        )
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A learned scale per channel, shaped C x 1 x 1 as ConvNeXt's `layer_scale`."""

    def __init__(self, channels: int, init: float = 1e-6):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels, 1, 1), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class DropPath(nn.Module):
    """Stochastic depth: in training, each sample is zeroed with probability p and the rest
    scaled by 1 / (1 - p); in evaluation, the identity. torchvision's StochasticDepth(p,
    "row"), drawing the same random numbers."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        if keep > 0.0:
            noise.div_(keep)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BilinearConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution whose weights start as bilinear upsampling of each channel
    (d2l's `bilinear_kernel`, as its FCN initialises its last layer)."""

    def reset_parameters(self) -> None:
        super().reset_parameters()
        channels, _, k, _ = self.weight.shape
        factor = (k + 1) // 2
        center = factor - 1 if k % 2 == 1 else factor - 0.5
        steps = torch.arange(k, dtype=torch.float32)
        ramp = 1 - torch.abs(steps - center) / factor
        with torch.no_grad():
            self.weight.zero_()
            for c in range(channels):
                self.weight[c, c] = ramp.reshape(-1, 1) * ramp.reshape(1, -1)


class UpsampleLike(nn.Module):
    """Upsample to the height and width of another tensor, read when it runs (FCN and
    DeepLab return to their input's size this way, whatever that size is)."""

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None):
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(
            x, size=like.shape[-2:], mode=self.mode, align_corners=self.align_corners
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class CenterCrop(nn.Module):
    """Crop the centre to `size`, or to another tensor's height and width (the paper's
    U-Net crops each skip to the upsampled map), where torchvision's center_crop would."""

    def __init__(self, size: int | tuple[int, int] | None = None):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else size

    def forward(self, x: torch.Tensor, like: torch.Tensor | None = None):
        height, width = like.shape[-2:] if like is not None else self.size
        # float(): traced for ONNX, a size is a tensor, which round() refuses
        top = round(float(x.shape[-2] - height) / 2.0)
        left = round(float(x.shape[-1] - width) / 2.0)
        return x[..., top : top + height, left : left + width]


class Network(nn.Sequential):
    """A compiled spec: its stages, in order, named as in the spec."""

    def __init__(self, name: str, stages: dict[str, nn.Module]):
        super().__init__(OrderedDict(stages))
        self.spec_name = name

    def extra_repr(self) -> str:
        return self.spec_name


class PadTo(nn.Module):
    """Zero-pad around the image to `size`, or to another tensor's height and width, the
    odd pixel after (as the common padded U-Net pads its upsampled maps)."""

    def __init__(self, size: int | tuple[int, int] | None = None):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else size

    def forward(self, x: torch.Tensor, like: torch.Tensor | None = None):
        height, width = like.shape[-2:] if like is not None else self.size
        dy, dx = height - x.shape[-2], width - x.shape[-1]
        sides = [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2]
        return nn.functional.pad(x, sides)


class ChannelSlice(nn.Module):
    """The channels from `start` up to `stop` (DPN's and ReXNet's partial paths)."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop]


class BranchSoftmax(nn.Module):
    """Softmax across `n` groups of channels (SKNet: one group per branch)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.reshape(x.shape[0], self.n, -1, *x.shape[2:])
        return torch.softmax(groups, dim=1).reshape(x.shape)


class BranchSum(nn.Module):
    """The sum of `n` groups of channels: n x C channels in, C out."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.n, -1, *x.shape[2:]).sum(dim=1)


class GraphNetwork(nn.Module):
    """A compiled spec whose stages read named tensors: each stage starts from the tensors
    it names (joined by concat, add or mul) and its layers that read another tensor
    (`like=`) get it; the network returns the tensors it names, in order.

    `steps` holds, per stage: its sources, its join, and its reading layers as (position,
    names), position -1 when the stage is that layer itself."""

    def __init__(self, name: str, stages: dict, steps: dict, outputs: tuple):
        super().__init__()
        for stage, module in stages.items():
            self.add_module(stage, module)
        self.spec_name = name
        self.steps = steps
        self.outputs = tuple(outputs)

    def forward(self, x: torch.Tensor):
        tensors = {"input": x}
        for name, (sources, join, readers) in self.steps.items():
            stage = self._modules[name]
            tensors[name] = run_stage(stage, sources, join, readers, tensors)
        if len(self.outputs) == 1:
            return tensors[self.outputs[0]]
        return tuple(tensors[name] for name in self.outputs)

    def extra_repr(self) -> str:
        return self.spec_name


def run_stage(module: nn.Module, sources, join, readers, tensors: dict) -> torch.Tensor:
    """One stage of a GraphNetwork, reading what it needs from `tensors`."""
    x = tensors[sources[0]]
    for name in sources[1:]:
        if join == "concat":
            x = torch.cat([x, tensors[name]], dim=1)
        elif join == "add":
            x = x + tensors[name]
        else:
            x = x * tensors[name]
    if not readers:
        return module(x)
    if readers[0][0] == -1:
        return module(x, *(tensors[n] for n in readers[0][1]))
    reads = dict(readers)
    for i, layer in enumerate(module):
        x = layer(x, *(tensors[n] for n in reads[i])) if i in reads else layer(x)
    return x


def make_divisible(v, divisor=8, min_value=None):
    """torchvision's `_make_divisible`, for width rules in generated block classes (the
    spec language's own copy, in `language/expressions.py`, is tested equal to it)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def ceil(x):
    """math.ceil, for depth rules in generated block classes (EfficientNet's)."""
    return math.ceil(x)


def log(x, base=None):
    """math.log, for width rules in generated block classes (RegNet's)."""
    return math.log(x) if base is None else math.log(x, base)


def init_xavier(module: nn.Module) -> None:
    """d2l's `init_weights`: xavier-uniform weights for every conv and linear layer.

    Every module's own initial values are drawn again first, in module order, so that
    from one seed the network starts the same whatever order its modules were made in."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)

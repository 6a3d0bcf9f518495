"""The combinators of the classic CNNs: concat, add, dense, heads, mul and split."""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import Pos, ShapeError, SpecError
from ...language import ir
from ...language.symbols import Named
from ..generic_nodes import Guarded, NotGeneric
from ..graph import Flow, Node, describe_output
from ..ops import Conv, ModuleCall, Shape, fmt
from .base import (
    Combinator,
    T,
    branches,
    broadcast,
    chunk,
    conditional,
    gate_shapes,
    given,
    in_sequence,
    keeps_size,
    node,
    on_channels,
    path_stride,
    same_shapes,
)


class Concat(Combinator, kind="concat"):
    """Branches side by side, joined on channels."""

    examples = (("concat:", "    conv(4, k=1) relu", "    maxpool(3, s=1, p=1)"),)

    optional_branches = True
    join_rule = "concatenated tensors must agree in everything but channels"

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        found = branches(walker, comb, flow, env)
        same_shapes(
            comb, found, lambda a, b: on_channels([a, b]) is not None,
            "concatenated branches must agree in everything but channels",
        )  # fmt: skip
        return node(comb, flow.shape, found, on_channels([n.out_shape for _, n in found]))

    @classmethod
    def joins(cls, shapes: list[Shape]) -> Shape | None:
        return on_channels(shapes)


class Add(Combinator, kind="add"):
    """Branches summed; one branch is a residual: the input is added back, through a 1x1
    convolution when the branch changes the shape or steps by more than 1 (or
    `project=true` asks for one).
    `scale=init` multiplies the residual branch by a learned scale per channel (C x 1 x 1,
    starting at init) that the residual holds itself, ahead of its branch (ConvNeXt's
    `layer_scale`)."""

    examples = (
        ("add:", "    conv(3, k=3, p=1) relu"),  # identity shortcut
        ("add:", "    conv(6, k=3, s=2, p=1)"),  # projected shortcut
        ("add:", "    a: conv(4, k=1)", "    b: conv(4, k=3, p=1)"),  # two branches summed
        # a residual with its own learned scale (ConvNeXt), with and without a projection
        ("add(scale=0.5):", "    conv(3, k=3, p=1) relu"),
        ("add(scale=0.5, project=true):", "    conv(4, k=3, p=1)"),
    )

    options = {"project": "flag", "scale": "number"}
    symbol = "+"
    skip_through = "shortcut"
    join_rule = "added tensors must have the same shape"

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        if len(comb.branches) > 1:
            _check_sum_is_meant(comb, options)
        found = branches(walker, comb, flow, env)
        if len(found) > 1:
            same_shapes(comb, found, lambda a, b: a == b, "added branches must have the same shape")
            return node(comb, flow.shape, found, found[0][1].out_shape)
        main = found[0][1]
        project, scale = options.get("project"), options.get("scale")
        scaled: tuple[tuple[str, int], ...] = ()
        if scale is not None:
            if len(main.out_shape) != 3:
                raise ShapeError(
                    f"add: scale= needs the branch to give an image (C x H x W), got "
                    f"{describe_output(main.out_shape)}",
                    given(comb, "scale").pos,
                )
            scaled = (("layer_scale", main.out_shape[0]),)  # the runtime's parameter
        owned: tuple[tuple[str, Node], ...] = ()
        if walker.generic:
            owned = _generic_shortcut(walker, comb, flow, main, project)
            kept = () if scale is None else (("scale", scale),)
            return node(comb, flow.shape, found, main.out_shape, owned, kept, own_params=scaled)
        # Projected where the branch changes the shape or steps by more than 1, as
        # torchvision's blocks are (`stride != 1 or inplanes != planes`): a 1x1 image
        # stepped by 2 stays 1x1, and generated classes, which see no sizes, decide so too.
        stride = path_stride(main)
        strided = project is None and stride not in (None, (1, 1)) and _steps_to(flow.shape, stride)
        if main.out_shape != flow.shape or project is True or strided:
            if project is False:
                raise _unprojected(comb, flow.shape, main.out_shape)
            shortcut = walker.apply(_projection(flow.shape, main, comb.pos), flow, comb.pos)
            owned = (("shortcut", shortcut),)
        kept = () if scale is None else (("scale", float(scale)),)
        return node(comb, flow.shape, found, main.out_shape, owned, kept, own_params=scaled)

    @classmethod
    def joins(cls, shapes: list[Shape]) -> Shape | None:
        return shapes[0] if all(s == shapes[0] for s in shapes) else None

    @classmethod
    def constructor(
        cls, branches: T, owned: Mapping[str, T], options: Mapping[str, T], channels: T
    ) -> ModuleCall:
        args = (branches, owned["shortcut"]) if "shortcut" in owned else (branches,)
        scale = (("scale", options["scale"]), ("channels", channels)) if "scale" in options else ()
        return ModuleCall(cls.module, args, scale)

    @classmethod
    def skips(cls, node: Node) -> bool:
        return len(node.children) == 1  # a residual: the input is added back

    @classmethod
    def shaped_by_input(cls, node: Node) -> bool:
        return len(node.children) == 1  # projected where the branch changes the shape


def _generic_shortcut(walker, comb, flow: Flow, main: Node, project) -> tuple:
    """The shortcut for every argument, by the rule above: projected where the branch
    changes the channels or steps by other than 1, which in a generic body may depend on
    the arguments (a `Guarded` projection); never where the branch's output is the
    input's shape as one expression (C to C)."""
    src, dst = flow.shape, main.out_shape
    flag = project if isinstance(project, Named) else None  # a parameter: decided by it
    if flag is None and (project is False or (project is None and repr(dst) == repr(src))):
        if project is False and dst != src:
            raise _unprojected(comb, src, dst)
        return ()
    stride = path_stride(main)
    if stride is None or not keeps_size(main):
        raise NotGeneric(
            "a shortcut projection around windows that change the size (or of unknown stride)",
            comb.pos,
        )
    differs = [(dst[0], src[0])] if repr(dst[0]) != repr(src[0]) else []
    differs += [(s, 1) for s in {repr(s): s for s in stride}.values() if repr(s) != "1"]
    shortcut = walker.apply(_projection(src, main, comb.pos), flow, comb.pos)
    written_stride = any(type(s) is int and s > 1 for s in stride)
    if project is True or (flag is None and written_stride):  # as torchvision's stride 2
        return (("shortcut", shortcut),)
    if not differs and flag is None:
        return ()
    guarded = Guarded(
        "guarded", "shortcut", src, dst, shortcut.params, shortcut.macs, comb.pos,
        children=(("layer", shortcut),), differs=tuple(differs), flag=flag,
    )  # fmt: skip
    return (("shortcut", guarded),)


def _unprojected(comb: ir.Combinator, src: Shape, dst: Shape) -> ShapeError:
    """`project=false` around a branch that changes the shape."""
    return ShapeError(
        f"add: the branch turns {fmt(src)} into {fmt(dst)} but project=false keeps the "
        "shortcut as it is; they cannot be added",
        comb.pos,
    )


def _check_sum_is_meant(comb: ir.Combinator, options) -> None:
    """Several branches are summed with no shortcut. Lines meant as one residual path read
    that way too, so unnamed lines must say they are branches, and `project` and `scale`
    (which only a residual has) are refused rather than ignored."""
    for option, missing in (("project", "shortcut to project"), ("scale", "residual to scale")):
        if options.get(option) is not None:
            raise SpecError(
                f"add has {len(comb.branches)} branches, which are summed with no {missing}; "
                f"{option}= applies to one branch with the input added back",
                given(comb, option).pos,
            )
    if all(branch.name is None and not _is_combinator(branch) for branch in comb.branches):
        raise SpecError(
            f"add has {len(comb.branches)} unnamed branches (one per line), summed with no "
            "shortcut; for one residual path put its layers in one branch (one line, "
            "(...) across lines, or under a name such as main:), or name the branches to sum",
            comb.branches[1].pos,
        )


def _is_combinator(branch: ir.Branch) -> bool:
    return len(branch.body) == 1 and isinstance(branch.body[0], ir.Combinator)


def _steps_to(shape: Shape, stride: tuple[int, int]) -> bool:
    """Whether a 1x1 convolution of `stride` keeps an image of `shape` at its size (a 1x1
    image stepped by 2), so that a shortcut projected with it still adds up."""
    return len(shape) == 3 and all((n - 1) // s + 1 == n for n, s in zip(shape[1:], stride))


def _projection(src: Shape, main: Node, pos: Pos) -> Conv:
    """The 1x1 convolution that carries a shortcut from `src` to the main path's output.

    It steps over the input with the main path's own stride, so both sides of the sum see
    the same pixels; that stride must then give the main path's output size."""
    dst = main.out_shape
    stride = path_stride(main)
    if len(src) != 3 or len(dst) != 3 or stride is None:
        raise ShapeError(
            f"add: cannot project a shortcut from {fmt(src)} to {describe_output(dst)}; "
            "a projection needs an image path with a fixed stride",
            pos,
        )
    if any((size - 1) // s + 1 != target for size, s, target in zip(src[1:], stride, dst[1:])):
        raise ShapeError(
            f"add: the branch turns {fmt(src)} into {fmt(dst)}, which a 1x1 convolution with "
            f"the branch's stride {stride[0]}x{stride[1]} cannot match; pad the branch's "
            "windows to keep the size (p = k // 2)",
            pos,
        )
    return Conv(out=dst[0], k=1, s=stride[0] if stride[0] == stride[1] else stride)


class Dense(Combinator, kind="dense"):
    """DenseNet connectivity: each unit sees everything before it, concatenated.
    Each line is a unit; a line written `(...) * n` is n units."""

    examples = (("dense:", "    (batchnorm relu conv(2, k=3, p=1)) * 2"),)

    symbol = "concat"
    layout = "chain"

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        units: list[tuple[str, Node]] = []
        start = flow
        for branch in comb.branches:
            if branch.name is not None:
                raise SpecError("dense units are not named", branch.pos)
            if conditional(branch):
                raise SpecError(
                    "a dense unit cannot be present only under a condition; "
                    "put the condition around the dense",
                    branch.pos,
                )
            body, count = dense_unit(branch)
            if walker.generic and count is not None:  # one loop of units, for any count
                loop = walker.loop(count, flow, env, unit=True)
                units.append((str(len(units)), loop))
                flow = Flow(loop.out_shape, "dense", branch.pos)
                continue
            for k in range(walker.repeat_count(count, env) if count is not None else 1):
                scope = {**env, count.index: k} if count is not None and count.index else env
                unit, out = walker.sequence(body, flow, scope, str(len(units)), branch.pos)
                c, *rest = flow.shape
                if len(out.shape) != len(flow.shape) or tuple(rest) != tuple(out.shape[1:]):
                    raise ShapeError(
                        f"dense unit turns {fmt(flow.shape)} into "
                        f"{describe_output(out.shape)}; a unit must keep the height and width "
                        "to be concatenated",
                        branch.pos,
                    )
                units.append((str(len(units)), unit))
                flow = Flow((c + out.shape[0], *rest), "dense", branch.pos)
        return node(comb, start.shape, units, flow.shape)

    @classmethod
    def stride(cls, node: Node, strides: list[tuple[int, int]]) -> tuple[int, int]:
        return in_sequence(strides)  # units run one after another


def dense_unit(branch: ir.Branch) -> tuple[tuple, ir.Repeat | None]:
    """A dense line's unit body, and the repeat that makes it several units (if any)."""
    if len(branch.body) == 1 and isinstance(branch.body[0], ir.Repeat):
        return branch.body[0].body, branch.body[0]
    return branch.body, None


class Heads(Combinator, kind="heads"):
    """Several outputs from one trunk: a tuple, one tensor per head."""

    examples = (("heads:", "    a: conv(2, k=1)", "    b: conv(3, k=1) relu"),)

    optional_branches = True
    layout = "outputs"

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        found = branches(walker, comb, flow, env)  # none gives several outputs itself
        return node(comb, flow.shape, found, tuple(n.out_shape for _, n in found))


class Mul(Combinator, kind="mul"):
    """A gate: the input times its one branch's output, which has the input's shape or size
    1 where it differs (C x 1 x 1: squeeze-and-excitation; 1 x H x W: spatial attention)."""

    examples = (
        # squeeze-and-excitation: a C x 1 x 1 gate
        ("mul:", "    gap conv(2, k=1) relu conv(3, k=1) hardsigmoid"),
        ("mul:", "    gate: conv(1, k=3, p=1) sigmoid"),  # spatial attention: 1 x H x W
        ("mul:", "    conv(C, k=3, p=1) sigmoid"),  # an elementwise gate: C x H x W
    )

    symbol = "×"
    keeps_size = True
    join_rule = "multiplied tensors must agree, or be 1 where they differ"

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        if len(comb.branches) != 1:
            raise SpecError(
                f"mul takes one branch, the gate that multiplies the input; got "
                f"{len(comb.branches)} (put the gate's layers on one line, or under one name)",
                comb.branches[1].pos,
            )
        (name, gate), branch = branches(walker, comb, flow, env)[0], comb.branches[0]
        out, shape = gate.out_shape, flow.shape
        if len(out) != len(shape) or any(g not in (1, s) for g, s in zip(out, shape)):
            gates = " or ".join(dict.fromkeys(fmt(g) for g in gate_shapes(shape)))
            raise ShapeError(
                f"mul: the gate gives {describe_output(out)}, which cannot multiply the input "
                f"{fmt(shape)} (from {flow.origin()}); a gate gives the input's shape or 1 "
                f"where it differs, such as {gates}",
                branch.pos,
            )
        return node(comb, shape, [(name, gate)], shape)

    @classmethod
    def joins(cls, shapes: list[Shape]) -> Shape | None:
        return broadcast(shapes)

    @classmethod
    def skips(cls, node: Node) -> bool:
        return True  # the input is what the gate multiplies


class Split(Combinator, kind="split"):
    """The input's channels cut into equal chunks, one per branch in order; the branches'
    outputs joined on channels (ShuffleNetV2's unit)."""

    examples = (
        ("split:", "    identity", "    conv(2, k=1) relu", "    conv(1, k=3, p=1)"),
        ("split:", "    a: conv(5, k=3, s=2, p=1)", "    b: maxpool(2)", "    c: avgpool(2)"),
    )

    symbol = "concat"

    @classmethod
    def infer(cls, walker, comb, flow, env, options) -> Node:
        found = branches(walker, comb, chunk(comb, flow), env)
        same_shapes(
            comb, found, lambda a, b: on_channels([a, b]) is not None,
            "concatenated branches must agree in everything but channels",
        )  # fmt: skip
        return node(comb, flow.shape, found, on_channels([n.out_shape for _, n in found]))

"""Properties of random specs: every backend agrees on networks nobody wrote by hand.

A Hypothesis strategy writes valid `.cnn` specs from the grammar's constructs (user
blocks with defaults, repeats, every combinator, the ops of the registry) at random input
sizes, tracking the shape as it goes so that most of what it writes is valid. For each
spec that checks:

- the live build runs, and every layer's runtime output shape is the inferred one;
- generated code imports, has the same state_dict keys, initial weights and outputs;
- `.cnn -> convert -> .yaml` loads back to the same IR, and that YAML checks.

CNNSPEC_PROPERTY_EXAMPLES=2000 makes it the longer, randomised run before a release:

    CNNSPEC_PROPERTY_EXAMPLES=2000 python -m pytest tests/test_properties.py
"""

from __future__ import annotations

import os

import pytest
import torch
from conftest import check_all_backends

import cnnspec
from cnnspec.analysis.ops import LAYERS
from cnnspec.backends.emit_yaml import to_yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# CI runs a fixed sample (derandomized, so main stays reproducible); a longer run explores.
EXAMPLES = int(os.environ.get("CNNSPEC_PROPERTY_EXAMPLES", "40"))
EXPLORE = "CNNSPEC_PROPERTY_EXAMPLES" in os.environ

# Ops that take no required argument and keep the shape: the registry's activations and
# the like, so a new activation is generated the moment it is registered.
PLAIN = sorted(
    op
    for op, layer in LAYERS.items()
    if not layer.required() and not layer.resizes and op not in ("flatten", "gap")
)


class Writer:
    """Draws items one at a time, keeping the shape (C, H, W) they lead to."""

    def __init__(self, draw, blocks: dict[str, int]):
        self.draw = draw
        self.blocks = blocks  # name -> how many channels it outputs, given as `c`

    def channels(self) -> int:
        return self.draw(st.integers(1, 6))

    def item(self, shape, depth: int) -> tuple[str, tuple[int, int, int]]:
        c, h, w = shape
        choices = ["plain", "conv", "conv_same", "batchnorm", "dropout", "cond"]
        if min(h, w) >= 2:
            choices += ["pool"]
        if depth < 2:
            choices += ["repeat", "concat", "add", "residual", "dense"]
        if self.blocks:
            choices += ["block"]
        kind = self.draw(st.sampled_from(choices))
        if kind == "plain":
            return self.draw(st.sampled_from(PLAIN)), shape
        if kind == "batchnorm":
            return "batchnorm", shape
        if kind == "dropout":
            return f"dropout({self.draw(st.sampled_from(['0', '0.5', '0.25']))})", shape
        if kind == "cond":  # a condition on the input's channels, as a block would test
            out, bound = self.channels(), self.draw(st.integers(1, 6))
            op = self.draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
            holds = eval(f"{c} {op} {bound}")  # noqa: S307 (two small integers)
            test = self.draw(st.sampled_from([f"C {op} {bound}", f"not C {op} {bound} or false"]))
            holds = holds if test.startswith("C") else not holds
            item = f"(conv({self.width(out)}, k=1) relu) if {test}"
            return item, ((out, h, w) if holds else shape)
        if kind == "conv":
            out = self.channels()
            k = self.draw(st.integers(1, min(3, h, w)))
            s = self.draw(st.integers(1, 2))
            p = self.draw(st.integers(0, k // 2))
            bias = self.draw(st.sampled_from(["", ", bias=false"]))
            size = lambda n: (n + 2 * p - k) // s + 1  # noqa: E731
            return f"conv({self.width(out)}, k={k}, s={s}, p={p}{bias})", (out, size(h), size(w))
        if kind == "conv_same":
            out = self.channels()
            return f"conv({out}, k=3, p=1)", (out, h, w)
        if kind == "pool":
            op = self.draw(st.sampled_from(["maxpool", "avgpool"]))
            return f"{op}(2)", (c, h // 2, w // 2)
        if kind == "block":
            name = self.draw(st.sampled_from(sorted(self.blocks)))
            out = self.channels()
            act = self.draw(st.sampled_from(["", *(f", act={op}" for op in PLAIN)]))
            if self.draw(st.booleans()):
                return f"{name}({out}{act})", (self.blocks[name] * out, h, w)
            return f"{name}(c={out}, k=1{act})", (self.blocks[name] * out, h, w)
        if kind == "repeat":
            count = self.draw(st.integers(0, 2))
            out = self.channels()
            body = self.draw(st.sampled_from(PLAIN))
            if self.draw(st.booleans()):  # a per-repeat rate from the index
                body += f" dropout(0.5 * i / {max(count, 1)})"
                return f"(conv({out}, k=3, p=1) {body}) * {count} as i", (out if count else c, h, w)
            return f"(conv({out}, k=3, p=1) {body}) * {count}", (out if count else c, h, w)
        return self.combinator(kind, shape, depth)

    def width(self, out: int) -> str:
        """`out` as written plainly or by a width rule that gives it."""
        rules = [f"int({out} * 1.0)", f"round({2 * out} / 2)", f"make_divisible({out}, 1)"]
        return self.draw(st.sampled_from([str(out), f"max({out}, 1)", *rules]))

    def combinator(self, kind: str, shape, depth: int) -> tuple[str, tuple[int, int, int]]:
        c, h, w = shape
        pad = "    " * (depth + 3)
        if kind == "concat":
            widths = [self.channels() for _ in range(self.draw(st.integers(1, 3)))]
            lines = [f"conv({n}, k={k}, p={k // 2})" for n, k in zip(widths, [1, 3, 1])]
            named = self.draw(st.booleans())
            lines = [f"b{i}: {x}" if named else x for i, x in enumerate(lines)]
            return "concat:\n" + "".join(f"{pad}{x}\n" for x in lines), (sum(widths), h, w)
        if kind == "add":
            out = self.channels()
            lines = [f"a: conv({out}, k=1)", f"b: conv({out}, k=3, p=1) relu"]
            return "add:\n" + "".join(f"{pad}{x}\n" for x in lines), (out, h, w)
        if kind == "residual":  # one branch: the input is added back, projected if needed
            out = self.channels()
            inner, (c2, h2, w2) = self.item((out, h, w), depth + 1)
            if "\n" in inner or (c2, h2, w2) != (out, h, w):
                inner = ""
            project = self.draw(st.sampled_from(["", "(project=true)"]))
            if not project and out == c:
                project = self.draw(st.sampled_from(["", "(project=false)"]))
            body = f"conv({out}, k=3, p=1) {inner}".rstrip()
            return f"add{project}:\n{pad}{body}\n", (out, h, w)
        # dense: each unit's output is concatenated onto its input
        growth, units = self.channels(), self.draw(st.integers(1, 3))
        unit = f"(batchnorm relu conv({growth}, k=3, p=1)) * {units}"
        return f"dense:\n{pad}{unit}\n", (c + growth * units, h, w)


@st.composite
def specs(draw) -> str:
    blocks = {}
    text = ""
    for i in range(draw(st.integers(0, 2))):
        name = f"blk{i}"
        widths = draw(st.integers(1, 2))  # concat of `widths` convs of c channels each
        body = "conv(min(c, 64), k=k, p=k // 2) act relu if k > 1"
        if widths == 2:
            body = "concat:\n        conv(c, k=1)\n        conv(c, k=k, p=k // 2) act"
        text += f"block {name}(c, k=3, act=relu):\n    {body}\n"
        blocks[name] = widths
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(4, 12)), draw(st.integers(4, 12))
    classes = draw(st.integers(1, 5))
    text += f"network T(input={c}x{h}x{w}, classes={classes}):\n"
    writer = Writer(draw, blocks)
    shape = (c, h, w)
    for stage in range(draw(st.integers(1, 3))):
        items = []
        for _ in range(draw(st.integers(1, 4))):
            item, shape = writer.item(shape, 0)
            items.append(item)
        # An item that spans lines goes last on its stage's line, or on a line of its own.
        text += f"    s{stage}:\n" + "".join(f"        {x}\n" for x in items)
    ending = draw(st.sampled_from(["gap", "flatten", "heads"]))
    if ending == "gap":
        text += "    head: gap flatten linear(classes)\n"
    elif ending == "flatten":
        text += "    head: flatten linear(classes)\n"
    else:
        text += "    head:\n        gap flatten\n        heads:\n"
        text += "            a: linear(classes)\n            linear(2) relu\n"
    return text


def runtime_shapes(spec: cnnspec.Spec) -> dict[str, tuple]:
    """Each layer's output shape (one example) from a real forward pass, by path."""
    net = spec.build().eval()
    shapes, hooks = {}, []
    for path, module in net.named_modules():
        hooks.append(
            module.register_forward_hook(
                lambda m, i, out, path=path: (
                    isinstance(out, torch.Tensor) and shapes.__setitem__(path, tuple(out.shape[1:]))
                )
            )
        )
    with torch.no_grad():
        net(torch.randn(2, *spec.input_shape))
    for hook in hooks:
        hook.remove()
    return shapes


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not EXPLORE,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=specs())
def test_every_backend_agrees_on_random_specs(text, tmp_path):
    spec = cnnspec.load(text)  # the strategy writes valid specs only: this must check
    shapes = runtime_shapes(spec)
    for layer in spec.layers:
        assert shapes[layer["path"]] == tuple(layer["output_shape"]), (layer, text)
    check_all_backends(text, tmp_path, "random_net")
    yaml_text = to_yaml(spec.ir)
    assert cnnspec.load(yaml_text, format="yaml").ir == spec.ir

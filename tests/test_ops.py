"""Every op and every combinator, driven by the registries: each one is inferred, built and
generated, at network level and inside a block class, and all three agree.

An op is tested from the example on its class, a combinator from the examples below; a
new op or combinator is covered the moment it is registered (and a combinator without an
example fails `test_every_combinator_has_an_example`).
"""

from functools import cache

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import check_all_backends

import cnnspec
from cnnspec.analysis.combinators import RULES
from cnnspec.analysis.ops import LAYERS
from cnnspec.backends.emit_yaml import to_yaml
from cnnspec.backends.runtime_source import runtime_names
from cnnspec.backends.schema import yaml_schema
from cnnspec.language.ir import COMBINATORS

COMBINATOR_CASES = [
    pytest.param(kind, list(lines), id=f"{kind}{i}")
    for kind, rule in RULES.items()
    for i, lines in enumerate(rule.examples)
]


def indented(lines: list[str], depth: int) -> str:
    return "\n".join("    " * depth + line for line in lines)


def network_spec(lines: list[str], input: str) -> str:
    return f"network T(input={input}, classes=10):\n    s:\n{indented(lines, 2)}\n"


def block_spec(lines: list[str], input: str) -> str:
    """The body as a user block (so it becomes a generic class in generated code)."""
    return (
        f"block wrap(c=1):\n{indented(lines, 1)}\n\n"
        f"network T(input={input}, classes=10):\n    s: wrap()\n"
    )


@cache
def schema_validator():
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(yaml_schema())


def assert_yaml_round_trip(spec: cnnspec.Spec) -> None:
    """The YAML form loads back to the same IR, and the JSON schema accepts it."""
    text = to_yaml(spec.ir)
    data = yaml.safe_load(text)  # plain YAML
    assert cnnspec.load(text, format="yaml").ir == spec.ir
    assert [e.message for e in schema_validator().iter_errors(data)] == []


# --- ops --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(LAYERS))
def test_op_at_network_level(op, tmp_path):
    call, input = LAYERS[op].example
    spec = check_all_backends(network_spec([call], input), tmp_path, f"net_{op}")
    assert spec.layers[0]["op"] == op
    assert_yaml_round_trip(spec)


@pytest.mark.parametrize("op", list(LAYERS))
def test_op_inside_a_block_class(op, tmp_path):
    model = LAYERS[op]
    call, input = model.example
    text = block_spec([f"{call} identity"], input)
    spec = check_all_backends(text, tmp_path, f"block_{op}")
    # An op whose output channels follow H and W cannot live in a generic block class:
    # the block is written out inline with its concrete sizes instead.
    c, h, w = (int(n) for n in input.split("x")) if "x" in input else (int(input), 0, 0)
    follows = False
    if h:
        try:
            larger = cnnspec.load(block_spec([call], f"{c}x{h * 2}x{w * 2}"))
            follows = (
                larger.output_shape[0] != cnnspec.load(block_spec([call], input)).output_shape[0]
            )
        except cnnspec.CnnspecError:
            follows = False  # it refuses other sizes, as its block does
    assert ("class Wrap(" in spec.codegen()) != follows


@pytest.mark.parametrize("op", list(LAYERS))
def test_op_documents_itself(op):
    model = LAYERS[op]
    assert model.op == op and model.doc(), f"{op} needs a docstring: its first line is its doc"
    assert model.module.startswith("nn.") or model.module in runtime_names()


# What each op's example must compute, written independently of the op's class with
# torch.nn.functional (weights, where the op has them, taken from the built module).
REFERENCE = {
    "conv": lambda x, m: F.conv2d(x, m.weight, m.bias, stride=2, padding=1),
    "maxpool": lambda x, m: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
    "avgpool": lambda x, m: F.avg_pool2d(x, 2, count_include_pad=False),
    "adaptive_avgpool": lambda x, m: F.adaptive_avg_pool2d(x, (2, 3)),
    "adaptive_maxpool": lambda x, m: F.adaptive_max_pool2d(x, 2),
    "gap": lambda x, m: x.mean(dim=(2, 3), keepdim=True),
    "flatten": lambda x, m: x.reshape(x.shape[0], -1),
    "reshape": lambda x, m: x.reshape(x.shape[0], 2, 12, 4),
    "linear": lambda x, m: x @ m.weight.T + m.bias,
    "pointwise_linear": lambda x, m: (
        torch.einsum("nchw,oc->nohw", x, m.weight) + m.bias[:, None, None]
    ),
    "dropout": lambda x, m: x,  # eval mode
    "batchnorm": lambda x, m: (
        (x - m.running_mean[:, None, None]) / torch.sqrt(m.running_var[:, None, None] + 0.001)
    ),
    "identity": lambda x, m: x,
    "relu": lambda x, m: x.clamp(min=0),
    "relu6": lambda x, m: x.clamp(0, 6),
    "leaky_relu": lambda x, m: torch.where(x > 0, x, 0.2 * x),
    "sigmoid": lambda x, m: 1 / (1 + torch.exp(-x)),
    "tanh": lambda x, m: torch.tanh(x),
    "gelu": lambda x, m: 0.5 * x * (1 + torch.erf(x / 2**0.5)),
    "silu": lambda x, m: x / (1 + torch.exp(-x)),
    "hardswish": lambda x, m: x * (x + 3).clamp(0, 6) / 6,
    "hardsigmoid": lambda x, m: (x + 3).clamp(0, 6) / 6,
    "groupnorm": lambda x, m: F.group_norm(x, 2, m.weight, m.bias, eps=0.001),
    "layernorm2d": lambda x, m: (
        (x - x.mean(1, keepdim=True))
        / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 0.001)
        * m.weight[:, None, None]
        + m.bias[:, None, None]
    ),
    "layer_scale": lambda x, m: 0.5 * x,
    "drop_path": lambda x, m: x,  # eval mode
    "conv_transpose": lambda x, m: F.conv_transpose2d(
        x, m.weight, m.bias, stride=2, padding=1, output_padding=1
    ),
    "upsample": lambda x, m: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
    "crop": lambda x, m: x[..., 2:6, 2:5],
    "pad": lambda x, m: F.pad(x, [1, 1, 1, 1]),
    "pixel_shuffle": lambda x, m: (
        x.reshape(x.shape[0], 2, 2, 2, 3, 4).permute(0, 1, 4, 2, 5, 3).reshape(x.shape[0], 2, 6, 8)
    ),
    "pixel_unshuffle": lambda x, m: (
        x.reshape(x.shape[0], 2, 2, 2, 3, 2).permute(0, 1, 3, 5, 2, 4).reshape(x.shape[0], 8, 2, 3)
    ),
    "slice": lambda x, m: x[:, 1:4],
    "branch_softmax": lambda x, m: (
        torch.cat([torch.exp(x[:, :3]), torch.exp(x[:, 3:])], dim=1)
        / (torch.exp(x[:, :3]) + torch.exp(x[:, 3:])).repeat(1, 2, 1, 1)
    ),
    "branch_sum": lambda x, m: x[:, 0:2] + x[:, 2:4] + x[:, 4:6],
    "channel_shuffle": lambda x, m: x.reshape(x.shape[0], 3, 2, 4, 4).transpose(1, 2).flatten(1, 2),
}


def test_every_op_has_a_reference():
    assert set(REFERENCE) == set(LAYERS)


@pytest.mark.parametrize("op", list(LAYERS))
def test_op_computes_what_its_reference_says(op):
    call, input = LAYERS[op].example
    net = cnnspec.compile(network_spec([call], input), init="default").eval()
    x = torch.randn(2, *cnnspec.load(network_spec([call], input)).input_shape) * 4
    with torch.no_grad():
        torch.testing.assert_close(net(x), REFERENCE[op](x, net.s), atol=1e-5, rtol=1e-5)


def test_ops_names_are_unique_and_not_combinators():
    assert not set(LAYERS) & set(COMBINATORS)


# --- combinators ------------------------------------------------------------------------


def test_every_combinator_has_a_rule_and_an_example():
    assert list(RULES) == list(COMBINATORS)
    assert all(RULES[kind].examples for kind in COMBINATORS)


def test_every_combinator_is_a_runtime_class_and_the_joins_have_a_rule():
    """A combinator's three places: its class (registered), its name in the language and
    the runtime module its constructor names; the kinds that join named tensors say how."""
    from cnnspec.backends.runtime_source import runtime_names
    from cnnspec.language.ir import JOINS

    for kind, rule in RULES.items():
        call = rule.constructor([], {"shortcut": None, "attention": None}, {}, 3)
        assert call.module == rule.module and rule.module in runtime_names(), kind
    assert [kind for kind, rule in RULES.items() if rule.joins([(2, 4, 4), (2, 4, 4)])] == list(
        JOINS
    )


@pytest.mark.parametrize(("kind", "lines"), COMBINATOR_CASES)
def test_combinator_at_network_level(kind, lines, tmp_path):
    spec = check_all_backends(network_spec(lines, "3x8x8"), tmp_path, f"net_{kind}")
    assert spec.to_dict()["blocks"][0]["kind"] == kind
    assert_yaml_round_trip(spec)


@pytest.mark.parametrize(("kind", "lines"), COMBINATOR_CASES)
def test_combinator_inside_a_block_class(kind, lines, tmp_path):
    check_all_backends(block_spec(lines, "3x8x8"), tmp_path, f"block_{kind}")


def test_a_gate_inside_a_residual_keeps_its_stride(tmp_path):
    """MobileNetV3's unit: squeeze-and-excitation inside a residual. The gate's pooling does
    not change the path's size, so the shortcut is projected with the path's own stride, in
    the build and in a generic block class."""
    lines = [
        "add:",
        "    main:",
        "        conv(4, k=3, s=2, p=1) hardswish",
        "        mul:",
        "            gap conv(2, k=1) relu conv(4, k=1) hardsigmoid",
    ]
    spec = check_all_backends(network_spec(lines, "3x8x8"), tmp_path, "net_gate")
    assert spec.build().s.shortcut.stride == (2, 2)
    spec = check_all_backends(block_spec(lines, "3x8x8"), tmp_path, "block_gate")
    assert "class Wrap(" in spec.codegen()


def test_a_scaled_residual_holds_its_scale_first(tmp_path):
    """ConvNeXt's block: the input plus the branch times a learned scale per channel, which
    the residual holds ahead of its branch's layers (as torchvision's block holds its
    `layer_scale`), in the build and in a generic block class."""
    lines = ["add(scale=0.5):", "    conv(3, k=3, p=1) relu"]
    spec = check_all_backends(network_spec(lines, "3x8x8"), tmp_path, "net_scaled")
    assert spec.params == 3 * 27 + 3 + 3
    net = spec.build(init="default").eval()
    state = net.state_dict()
    assert list(state)[0] == "s.layer_scale" and state["s.layer_scale"].shape == (3, 1, 1)
    x = torch.randn(2, 3, 8, 8)
    conv = net.s.branches["0"][0]
    with torch.no_grad():
        expected = x + 0.5 * F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1))
        torch.testing.assert_close(net(x), expected)
    spec = check_all_backends(block_spec(lines, "3x8x8"), tmp_path, "block_scaled")
    assert "class Wrap(" in spec.codegen()


# --- drawn and exported, every op and combinator --------------------------------------

EVERY_EXAMPLE = [
    pytest.param(network_spec([LAYERS[op].example[0]], LAYERS[op].example[1]), op, id=op)
    for op in LAYERS
] + [
    pytest.param(network_spec(lines, "3x8x8"), kind, id=case.id)
    for case in COMBINATOR_CASES
    for kind, lines in [case.values]
]


@pytest.mark.parametrize("text, name", EVERY_EXAMPLE)
def test_every_op_and_combinator_is_drawn(text, name):
    from cnnspec.backends.dot import to_dot

    spec = cnnspec.load(text)
    dot = to_dot(spec.graph, depth=3)
    # a merge node as what it does; heads as an output oval per head
    symbols = {kind: rule.symbol for kind, rule in RULES.items()}
    label = {**symbols, "heads": "a\\n2x8x8"}.get(name, name)
    assert label in dot, f"{name} is not in its picture"
    shapes = spec.output_shape if isinstance(spec.output_shape[0], tuple) else [spec.output_shape]
    for shape in shapes:  # every output's edge is labelled with its shape
        assert "x".join(map(str, shape)) in dot


@pytest.mark.slow
@pytest.mark.parametrize("text, name", EVERY_EXAMPLE)
def test_every_op_and_combinator_exports_to_onnx(text, name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from cnnspec.backends.export import to_onnx

    spec = cnnspec.load(text)
    net = spec.build(init="default").eval()
    to_onnx(net, spec.input_shape, tmp_path / "net.onnx")
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    x = torch.randn(3, *spec.input_shape)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = net(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(torch.from_numpy(a), b, rtol=1e-4, atol=1e-5)

"""Networks as graphs of named tensors: stages read earlier stages by name, join them,
size layers after them, and return several of them; every backend follows the graph."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import check_all_backends, error_of
from test_ops import assert_yaml_round_trip

import cnnspec
from cnnspec.backends.dot import to_dot

# A small feature pyramid: laterals from two scales, a top-down sum, two outputs.
PYRAMID = """\
network Pyramid(input=3x32x32, classes=10):
    c2: conv(8, k=3, s=2, p=1) relu
    c3: conv(16, k=3, s=2, p=1) relu
    lat2: c2 conv(4, k=1)
    lat3: c3 conv(4, k=1)
    up3: lat3 upsample(like=lat2)
    td2: add(lat2, up3) conv(4, k=3, p=1)
    outputs: td2, lat3
"""


def reference_pyramid(net, x):
    """The same network written by hand, reading the built network's weights."""
    c2 = F.relu(net.c2[0](x))
    c3 = F.relu(net.c3[0](c2))
    lat2, lat3 = net.lat2(c2), net.lat3(c3)
    up3 = F.interpolate(lat3, size=lat2.shape[-2:], mode="nearest")
    return net.td2(lat2 + up3), lat3


def test_a_pyramid_infers_builds_and_generates_alike(tmp_path):
    spec = check_all_backends(PYRAMID, tmp_path, "pyramid")
    assert spec.output_shape == ((4, 16, 16), (4, 8, 8))
    net = spec.build().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for got, want in zip(net(x), reference_pyramid(net, x)):
            torch.testing.assert_close(got, want)
    assert_yaml_round_trip(spec)


def test_generated_forward_names_each_tensor_in_graph_order():
    source = cnnspec.load(PYRAMID).codegen()
    forward = source[source.rindex("def forward") :]
    statements = [line.strip().split("  #")[0] for line in forward.splitlines()[2:]]
    assert statements == [
        "c2 = self.c2(x)",
        "c3 = self.c3(c2)",
        "lat2 = self.lat2(c2)",
        "lat3 = self.lat3(c3)",
        "up3 = self.up3(lat3, lat2)",
        "td2 = lat2 + up3",
        "td2 = self.td2(td2)",
        "return td2, lat3",
    ]


def test_upsampling_to_the_input_follows_any_input_size():
    """`like=input` reads the size when the network runs: FCN's head is not tied to the
    size the spec declares."""
    text = (
        "network Seg(input=3x32x32, classes=5):\n"
        "    body: conv(8, k=3, s=4, p=1) relu\n"
        "    head: conv(classes, k=1) upsample(like=input, mode=bilinear)\n"
    )
    spec = cnnspec.load(text)
    assert spec.output_shape == (5, 32, 32)
    net = spec.build().eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 48, 40)).shape == (1, 5, 48, 40)


def test_a_reading_layer_inside_a_stage_gets_its_tensor(tmp_path):
    text = (
        "network Unet(input=1x64x64, classes=2):\n"
        "    e1: conv(4, k=3) relu\n"
        "    e2: maxpool(2) conv(8, k=3) relu\n"
        "    up: conv_transpose(4, k=2, s=2)\n"
        "    skip: e1 crop(like=up)\n"
        "    d1: concat(skip, up) conv(4, k=3) relu upsample(like=up) conv(classes, k=1)\n"
    )
    spec = check_all_backends(text, tmp_path, "unet")
    rows = {r["path"]: r for r in spec.layers}
    assert rows["skip"]["output_shape"] == [4, 58, 58]  # 62 cropped to the upsampled 58
    assert rows["d1.2"]["output_shape"] == [4, 58, 58]  # back to up's size after the conv
    source = spec.codegen()
    for statement in ("d1 = self.d1[0:2](d1)", "d1 = self.d1[2](d1, up)", "d1 = self.d1[3](d1)"):
        assert statement in source


def test_the_summary_says_what_each_stage_reads():
    table = cnnspec.load(PYRAMID).summary()
    assert "c2 → conv(out=4, k=1)" in table
    assert "add(lat2, up3) → conv(out=4, k=3, p=1)" in table
    assert "upsample(like=lat2)" in table


def test_the_picture_draws_skips_and_every_output():
    dot = to_dot(cnnspec.load(PYRAMID).graph)
    assert dot.count('style="dashed"') == 2  # c2 -> lat2 and c3 -> lat3 skip the stage above
    assert 'style="dotted"' in dot  # upsample reads lat2's size
    assert '"td2\\n4x16x16"' in dot and '"lat3\\n4x8x8"' in dot


def test_the_yaml_form_names_joins_and_outputs():
    data = yaml.safe_load(_yaml(PYRAMID))
    assert data["network"]["outputs"] == ["td2", "lat3"]
    assert data["network"]["stages"]["td2"][0] == {"from": ["lat2", "up3"], "join": "add"}
    assert data["network"]["stages"]["lat2"][0] == {"from": "c2"}
    assert cnnspec.load(_yaml(PYRAMID), format="yaml").ir == cnnspec.load(PYRAMID).ir


def _yaml(text: str) -> str:
    from cnnspec.backends.emit_yaml import to_yaml

    return to_yaml(cnnspec.load(text).ir)


@pytest.mark.parametrize(
    "stages, message, where",
    [
        # a name nothing made
        (["a: conv(4, k=1)", "b: add(a, c)"], "unknown tensor 'c'", (3, 15)),
        # a name made further down
        (
            ["a: conv(4, k=1)", "b: add(a, c)", "c: a relu"],
            "'c' is read before it is made: stage c is at 4:5",
            (3, 15),
        ),
        # shapes that do not join, naming both tensors, their shapes and where each is made
        (
            ["a: conv(4, k=1)", "b: conv(4, k=3, s=2, p=1)", "c: add(a, b)"],
            "add: b is 4x4x4 (stage b at 3:5) but a is 4x8x8 (stage a at 2:5)",
            (4, 15),
        ),
        (
            ["a: conv(4, k=1)", "b: a conv(4, k=3, s=2, p=1)", "c: concat(a, b)"],
            "concat: b is 4x4x4 (stage b at 3:5) but a is 4x8x8",
            (4, 18),
        ),
        # a join in the middle of a stage
        (["a: conv(4, k=1)", "b: relu add(a, input)"], "starts a stage", (3, 13)),
        # a tensor used as a layer
        (["a: conv(4, k=1)", "b: relu a"], "'a' is a tensor, not a layer", (3, 13)),
        # a stage that nothing reads
        (["a: conv(4, k=1)", "b: input relu"], "stage 'a' is read by no stage", (2, 5)),
        # the input's name is taken
        (["input: conv(4, k=1)"], "'input' names the network's input", (2, 5)),
        # a reading layer inside a combinator's branch
        (
            [
                "a: conv(4, k=1)",
                "b:",
                "    concat:",
                "        upsample(like=a)",
                "        identity",
            ],
            "reads a named tensor, which only the layers of a stage or of a block's named line",
            (5, 27),
        ),
        # upsample told its size two ways
        (["a: upsample(2, like=input)"], "upsample takes one of scale=, size=, like=", (2, 8)),
        # a word the op does not take
        (["a: upsample(2, mode=bilinar)"], "takes one of nearest, bilinear, bicubic", (2, 25)),
    ],
)
def test_named_tensor_errors_point_at_the_use(stages, message, where):
    text = "network T(input=4x8x8, classes=10):\n" + "".join(f"    {s}\n" for s in stages)
    err = error_of(text)
    assert message in err.message
    assert err.pos == where


def test_outputs_name_tensors_once():
    text = "network T(input=4x8x8, classes=10):\n    a: relu\n    outputs: a, a\n"
    err = error_of(text)
    assert "'a' is an output twice (first at 3:14)" in err.message


def test_a_reading_layer_inside_a_block_is_refused():
    text = (
        "block b():\n    upsample(like=input)\n\nnetwork T(input=4x8x8, classes=10):\n    s: b()\n"
    )
    assert "only the layers of a stage or of a block's named line can" in error_of(text).message


def test_a_stage_named_like_a_layer_is_still_read_by_joins(tmp_path):
    """Stage names may be layer names (`avgpool:`); joins read them as tensors, while a bare
    layer name first in a stage stays that layer."""
    text = (
        "network T(input=4x8x8, classes=10):\n"
        "    relu: conv(4, k=1)\n"
        "    b: relu\n"
        "    c: add(relu, b)\n"
    )
    spec = check_all_backends(text, tmp_path, "named_like_layers")
    assert [(r["path"], r["op"]) for r in spec.layers] == [("relu", "conv"), ("b", "relu")]
    assert "c = relu + b" in spec.codegen()


def test_training_a_network_that_returns_maps_is_refused_before_any_work(tmp_path, capsys):
    """The trainer fits class scores; a segmentation map is refused in one line, naming
    the network's line, before data is looked for (no data folder exists here)."""
    from cnnspec.cli import main

    spec = tmp_path / "seg.cnn"
    spec.write_text(
        "network Seg(input=1x28x28, classes=10):\n"
        "    body: conv(8, k=3, p=1) relu\n"
        "    head: conv(classes, k=1)\n"
    )
    missing = tmp_path / "no-data"
    assert main(["train", str(spec), "--data-dir", str(missing), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:1:9: Seg returns 10x28x28; cnnspec train fits class scores" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def d2l_bilinear_kernel(in_channels, out_channels, kernel_size):
    """d2l 14.10's `bilinear_kernel`, as the book writes it."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1), torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels, kernel_size, kernel_size))
    weight[range(in_channels), range(out_channels), :, :] = filt
    return weight


@pytest.mark.parametrize("k", [4, 5, 64])
def test_a_bilinear_transposed_convolution_starts_as_d2l_s(k, tmp_path):
    text = (
        f"network T(input=3x4x4, classes=3):\n    s: conv_transpose(3, k={k}, s=2, init=bilinear)\n"
    )
    spec = check_all_backends(text, tmp_path, f"bilinear{k}")
    for net in (spec.build(), _generated(spec, tmp_path, k)):
        torch.testing.assert_close(net.s.weight.detach(), d2l_bilinear_kernel(3, 3, k))


def _generated(spec, tmp_path, k):
    from conftest import module_from_source

    return module_from_source(spec.codegen(), tmp_path, f"bilinear_gen{k}").T()


def test_a_bilinear_transposed_convolution_keeps_each_channel_to_itself():
    text = "network T(input=3x4x4, classes=3):\n    s: conv_transpose(4, k=4, s=2, init=bilinear)\n"
    assert "out equal to the input's channels (3)" in error_of(text).message


# --- blocks of named lines ----------------------------------------------------------------

SE_RESIDUAL = """\
block se_res(c):
    main: conv(c, k=3, p=1) batchnorm relu conv(c, k=3, p=1) batchnorm
    gate: main gap conv(c // 4, k=1) relu conv(c, k=1) sigmoid
    scaled: mul(main, gate)
    out: add(scaled, input) relu

network T(input=8x16x16, classes=10):
    s1: se_res(8) se_res(8)
    head: gap flatten linear(classes)
"""


def test_a_block_of_named_lines_is_a_class_whose_forward_reads_as_its_lines(tmp_path):
    spec = check_all_backends(SE_RESIDUAL, tmp_path, "se_res")
    source = spec.codegen()
    cls = source[source.index("class SeRes(nn.Module)") : source.index("class T(")]
    forward = cls[cls.index("def forward") :]
    assert [line.strip() for line in forward.splitlines()[1:] if line.strip()] == [
        "main = self.main(x)",
        "gate = self.gate(main)",
        "scaled = main * gate",
        "out = scaled + x",
        "out = self.out(out)",
        "return out",
    ]
    assert "self.out_channels = c" in cls
    assert_yaml_round_trip(spec)
    rows = {r["path"]: r for r in spec.to_dict()["blocks"]}
    assert rows["s1.0.gate"]["sources"] == ["main"] and rows["s1.0.out"]["join"] == "add"


def test_a_block_of_named_lines_computes_what_it_says():
    net = cnnspec.compile(SE_RESIDUAL, init="default").eval()
    x = torch.randn(2, 8, 16, 16)
    block = net.s1[0]
    main = block.main(x)
    want = torch.relu(main * block.gate(main) + x)
    with torch.no_grad():
        torch.testing.assert_close(block(x), want)


def test_a_block_of_named_lines_sized_by_its_input_is_written_in_place(tmp_path):
    """A line that reads H cannot be one generic class: each use is written with its
    concrete sizes, as a GraphNetwork, and still equals the build."""
    text = (
        "block pool_back():\n"
        "    pooled: avgpool(H) conv(C, k=1) relu upsample(like=input, mode=bilinear)\n"
        "    out: add(pooled, input) conv(4, k=3, p=1)\n\n"
        "network T(input=3x16x16, classes=10):\n"
        "    s1: conv(8, k=3, p=1) pool_back()\n"
        "    head: gap flatten linear(classes)\n"
    )
    spec = check_all_backends(text, tmp_path, "pool_back")
    assert "GraphNetwork(" in spec.codegen() and "class PoolBack" not in spec.codegen()


@pytest.mark.parametrize(
    "body, message, where",
    [
        (["a: conv(4, k=1)", "relu"], "name this line (name: ...)", (3, 5)),
        (["a: conv(4, k=1)", "a: relu"], "line 'a' is named twice", (3, 5)),
        (
            ["a: b relu", "b: conv(4, k=1)"],
            "'b' is read before it is made: line b is at 3:5",
            (2, 8),
        ),
        (["a: conv(4, k=1)", "b: input relu"], "line 'a' is read by no line", (2, 5)),
        (["input: relu"], "'input' names the block's input", (2, 5)),
        (["a: relu", "b: add(a, input, c)"], "unknown tensor 'c'", (3, 22)),
    ],
)
def test_named_line_errors_point_at_the_line(body, message, where):
    text = (
        "block blk():\n" + "".join(f"    {line}\n" for line in body) + "\n"
        "network T(input=4x8x8, classes=10):\n    s: blk()\n"
    )
    err = error_of(text)
    assert message in err.message
    assert err.pos == where


def test_a_named_line_outside_a_block_body_is_refused():
    text = "network T(input=4x8x8, classes=10):\n    s:\n        a: relu\n"
    assert "stands only among the lines of a block's body" in error_of(text).message


def test_c_in_is_the_block_s_input_where_c_is_the_branch_s(tmp_path):
    """Inside a branch, C is what the branch's layer receives; C_in is the block's input,
    in the live build and in the generated class alike."""
    text = (
        "block widen(c):\n"
        "    concat:\n"
        "        a: conv(c, k=1) conv(C * 2, k=1)\n"
        "        b: conv(C_in * 2, k=1)\n\n"
        "network T(input=3x8x8, classes=10):\n"
        "    s: widen(4) widen(5)\n"
        "    head: gap flatten linear(classes)\n"
    )
    spec = check_all_backends(text, tmp_path, "c_in")
    outs = [r["output_shape"][0] for r in spec.layers if r["op"] == "conv"]
    assert outs == [4, 8, 6, 5, 10, 28]  # C_in: 3 into the first widen, 14 into the second
    assert "nn.Conv2d(in_channels, 2 * in_channels, kernel_size=1)" in spec.codegen()


def _readme_block(after: str, fence: str = "```") -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index(fence, readme.index(after)) + len(fence)
    start = readme.index("\n", start) + 1
    return readme[start : readme.index("```", start)]


def test_the_readme_s_pyramid_is_what_cnnspec_generates():
    spec = cnnspec.load(_readme_block("A feature\npyramid:"))
    assert spec.output_shape == ((64, 56, 56), (64, 28, 28))
    shown = _readme_block("as torchvision's models read:").strip("\n")
    source = spec.codegen()
    forward = source[source.rindex("    def forward") :].rstrip("\n")
    assert forward == shown


def test_the_readme_s_block_of_named_lines_is_the_tested_one():
    assert _readme_block("squeeze-and-excitation block:") in SE_RESIDUAL


def test_pad_to_a_named_tensor_evens_an_odd_size(tmp_path):
    """The padded U-Net's upsampled map comes out a pixel short of an odd-sized skip;
    `pad(like=)` pads it evenly, the odd pixel after, as milesial's Pytorch-UNet does."""
    text = (
        "network T(input=1x11x11, classes=2):\n"
        "    e1: conv(2, k=3, p=1)\n"
        "    up: maxpool(2) conv_transpose(2, k=2, s=2) pad(like=e1)\n"
        "    d: concat(e1, up) conv(classes, k=1)\n"
    )
    spec = check_all_backends(text, tmp_path, "pad_like")
    assert {r["path"]: r["output_shape"] for r in spec.layers}["up.2"] == [2, 11, 11]
    net = spec.build().eval()
    x = torch.randn(1, 1, 11, 11)
    with torch.no_grad():
        short = net.up[1](net.up[0](net.e1(x)))
        torch.testing.assert_close(net.up[2](short, x), F.pad(short, [0, 1, 0, 1]))


SELECTIVE = """\
# A residual onto part of the channels (ReXNet), and SKNet's selective kernel.
block partial(c):
    y: conv(c, k=3, p=1) batchnorm
    head: y slice(0, C_in)
    summed: add(head, input)
    tail: y slice(C_in, c)
    out: concat(summed, tail)

block selective(c):
    a: conv(c, k=3, p=1) batchnorm relu
    b: input conv(c, k=3, p=2, d=2) batchnorm relu
    u: add(a, b)
    weights: u gap conv(c // 2, k=1) batchnorm relu conv(2 * c, k=1) branch_softmax(2)
    paths: concat(a, b)
    out: mul(paths, weights) branch_sum(2)

network T(input=4x8x8, classes=10):
    s: partial(6) selective(6)
    head: gap flatten linear(classes)
"""


def test_a_partial_residual_and_a_selective_kernel(tmp_path):
    spec = check_all_backends(SELECTIVE, tmp_path, "selective")
    net = spec.build(init="default").eval()
    x = torch.randn(2, 4, 8, 8)
    part, sk = net.s[0], net.s[1]
    with torch.no_grad():
        y = part.y(x)
        want = torch.cat([y[:, :4] + x, y[:, 4:]], dim=1)
        torch.testing.assert_close(part(x), want)
        a, b = sk.a(want), sk.b(want)
        logits = sk.weights[:-1](a + b)  # the gate, before its softmax
        w = torch.softmax(logits.reshape(2, 2, 6, 1, 1), dim=1)
        torch.testing.assert_close(sk(want), (torch.stack([a, b], 1) * w).sum(1))


NOT = "It takes no in_channels (8 here): "  # the class's docstring, where it leaves it out
SELECT = "\n        select{}:\n            conv(C * 2, k=1)\n            conv(C * 2, k=3, p=1)"


@pytest.mark.parametrize(
    "stage, written",
    [
        # 4 channels below 4, else as many as come in
        ("conv(max(C, 4), k=1) relu", "nn.Conv2d(in_channels, max(in_channels, 4), "),
        ("conv(C // 2 + 3, k=1)", "nn.Conv2d(in_channels, in_channels // 2 + 3, "),
        ("conv(min(classes, 5) * 2, k=1)", "nn.Conv2d(in_channels, min(num_classes, 5) * 2, "),
        ("conv(make_divisible(C * 1.5, 4), k=1)", "make_divisible(in_channels * 1.5, 4)"),
        ("conv(C * C, k=1)", "nn.Conv2d(in_channels, in_channels * in_channels, "),
        ("conv(min(C, 64), k=1)", "min(in_channels, 64)"),  # in step from 8 up to 64
        ("conv(C * 2 + max(3, 5), k=1) conv(int(C / 2), k=1)", "int((2 * in_channels + 5) / 2)"),
        ("conv(C * 2 + max(3, 5), k=1) conv(C - 3, k=1)", "2 * in_channels + 2"),
        ("(conv(16, k=1) if C > 100) conv(8, k=1)", NOT + "a comparison ('>') reads it"),
        ("conv((4, 8, 16, 32)[C % 4], k=1)", NOT + "an index reads it"),
        # a residual projected as C != 16
        (
            "\n        add:\n            conv(16, k=1)",
            NOT + "a residual written out in place projects",
        ),
        ("\n        add:\n            conv(C, k=1)", "nn.Conv2d(in_channels, in_channels, "),
        # a shape rule that bends: select's attention is max(C // 16, 32) wide
        (SELECT.format(""), NOT + "select's default width follows it"),
        (SELECT.format("(width=8)"), "nn.Conv2d(8, 4 * in_channels, kernel_size=1"),
    ],
)
def test_the_network_class_writes_sizes_as_the_spec_computes_them(stage, written, tmp_path):
    """Each size that follows in_channels or num_classes is written as the spec computes
    it, bends included (max, //, make_divisible); a choice of structure made on one (a
    condition, select's default width) makes the class leave it out. The conftest check
    builds the class over a range of values against the spec."""
    text = (
        f"network T(input=8x8x8, classes=10):\n    s: {stage}\n"
        "    head: gap flatten linear(classes)\n"
    )
    spec = check_all_backends(text, tmp_path, "nonlinear")
    source = spec.codegen()
    assert ("in_channels: int" in source) is (not written.startswith(NOT)), source
    assert written in source, source
    assert "nn.Linear(" in source and "num_classes)" in source


def test_the_network_class_leaves_out_a_parameter_a_repeat_count_reads(tmp_path):
    text = (
        "network T(input=8x8x8, classes=10):\n    s: conv(4, k=1) * (classes // 5)\n"
        "    head: gap flatten linear(classes)\n"
    )
    source = check_all_backends(text, tmp_path, "repeat_count").codegen()
    assert "in_channels: int = 8" in source and "num_classes: int" not in source
    assert "It takes no num_classes (10 here): a repeat count reads it." in source


def test_a_tensor_named_like_a_builtin_is_a_local_of_its_own_name_with_an_underscore(tmp_path):
    """`sum` and `min` as tensors' names would hide Python's functions inside forward: the
    locals get a trailing underscore, as block and parameter names do."""
    text = (
        "block m(c):\n    lat: conv(c, k=1)\n    top: input conv(c, k=1)\n"
        "    sum: add(lat, top)\n    max: sum relu\n\n"
        "network T(input=4x5x5, classes=10):\n    sum: m(4)\n    min: conv(3, k=1)\n"
        "    out: add(min, min)\n    outputs: out\n"
    )
    source = check_all_backends(text, tmp_path, "builtins").codegen()
    for line in ("sum_ = lat + top", "max_ = self.max(sum_)", "min_ = self.min(sum_)"):
        assert line in source

"""Networks as graphs of named tensors: stages read earlier stages by name, join them,
size layers after them, and return several of them; every backend follows the graph."""

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
    assert dot.count('style="dashed"') >= 3  # c2 -> lat2, c2 -> (via lat2) td2, lat2 -> td2
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
            "reads a named tensor, which only a stage's own layers can",
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
    assert "only a stage's own layers can" in error_of(text).message


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

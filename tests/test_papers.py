"""Networks written from their papers (specs/papers/): each builds with the shapes its
paper gives, holds the parameters its reference implementation counts, and where a
reference is at hand here (torchvision, d2l's few lines over it), computes what it does.

Shapes and parameter counts come from inference, which needs no torch; forwards run at
small inputs, one thread, batches of one or two.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, check_all_backends, module_from_source
from test_graph_language import d2l_bilinear_kernel  # the book's bilinear_kernel, as written
from torch import nn

import cnnspec
from cnnspec.backends.transfer import load_by_position
from cnnspec.errors import CnnspecError
from cnnspec.limits import Limits

PAPERS = ROOT / "specs" / "papers"
TESTED = {"unet", "unet_padded", "fcn_d2l", "yolov3", "fpn_resnet18"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small batches gain nothing from a second thread on a shared two-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(name: str, **options) -> cnnspec.Spec:
    return cnnspec.load(PAPERS / f"{name}.cnn", **options)


def with_input(name: str, shape: str) -> str:
    """The spec's text declaring another input: a size at which a test's forward is cheap."""
    text = (PAPERS / f"{name}.cnn").read_text()
    declared = text[text.index("input=") :].split(",")[0].split(")")[0]
    return text.replace(declared, f"input={shape}", 1)


def conv_params(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_every_paper_spec_is_tested_and_cites_its_source():
    assert {p.stem for p in PAPERS.glob("*.cnn")} == TESTED
    readme = (PAPERS / "README.md").read_text()
    for path in PAPERS.glob("*.cnn"):
        header = path.read_text().split("\n\n")[0]
        assert header.startswith("# ") and any(year in header for year in ("2015", "2017", "2018"))
        assert f"`{path.name}`" in readme


# --- U-Net as published ---------------------------------------------------------------------

# The published U-Net holds 279 million activation values per example at 572x572, more than
# the default budget (2^28); the budget is raised for it, as `--max-activations` does.
UNET_LIMITS = Limits(max_activations=1 << 30)

# Figure 1 of the paper: (channels, side) after each convolution, max pool, up-convolution
# and crop, top to bottom of the contracting path and then of the expanding path.
FIGURE_1 = [
    ("conv", 64, 570), ("conv", 64, 568),
    ("maxpool", 64, 284), ("conv", 128, 282), ("conv", 128, 280),
    ("maxpool", 128, 140), ("conv", 256, 138), ("conv", 256, 136),
    ("maxpool", 256, 68), ("conv", 512, 66), ("conv", 512, 64),
    ("maxpool", 512, 32), ("conv", 1024, 30), ("conv", 1024, 28),
    ("conv_transpose", 512, 56), ("crop", 512, 56), ("conv", 512, 54), ("conv", 512, 52),
    ("conv_transpose", 256, 104), ("crop", 256, 104), ("conv", 256, 102), ("conv", 256, 100),
    ("conv_transpose", 128, 200), ("crop", 128, 200), ("conv", 128, 198), ("conv", 128, 196),
    ("conv_transpose", 64, 392), ("crop", 64, 392), ("conv", 64, 390), ("conv", 64, 388),
    ("conv", 2, 388),
]  # fmt: skip


def test_unet_has_the_sizes_of_figure_1():
    spec = load("unet", limits=UNET_LIMITS)
    assert spec.input_shape == (1, 572, 572) and spec.output_shape == (2, 388, 388)
    sizes = [
        (r["op"], r["output_shape"][0], r["output_shape"][1])
        for r in spec.layers
        if r["op"] in ("conv", "maxpool", "conv_transpose", "crop")
    ]
    assert sizes == FIGURE_1
    assert all(r["output_shape"][1] == r["output_shape"][2] for r in spec.layers)
    # the copies that are cropped: 64 -> 56, 136 -> 104, 280 -> 200, 568 -> 392
    crops = [(r["path"], r["input_shape"][1]) for r in spec.layers if r["op"] == "crop"]
    assert crops == [("skip4", 64), ("skip3", 136), ("skip2", 280), ("skip1", 568)]
    # 23 convolutional layers (section 2), counting the up-convolutions
    assert sum(r["op"] in ("conv", "conv_transpose") for r in spec.layers) == 23


def test_unet_parameters_are_the_sum_of_its_layers():
    down = [(1, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]
    expected = sum(conv_params(a, b, 3) + conv_params(b, b, 3) for a, b in down)
    for c in (512, 256, 128, 64):  # up-convolution halving 2c, then two 3x3 convolutions
        expected += conv_params(2 * c, c, 2) + conv_params(2 * c, c, 3) + conv_params(c, c, 3)
    expected += conv_params(64, 2, 1)
    assert load("unet", limits=UNET_LIMITS).params == expected == 31_030_658


def test_unet_at_572_needs_a_raised_activation_budget():
    with pytest.raises(CnnspecError, match="--max-activations raises the bound"):
        load("unet")


# The smallest input U-Net takes: 188 = 16 * 8 + 60 gives a 4x4 bottleneck and a 4x4 map.
UNET_SMALL = "1x188x188"


def test_unet_computes_copy_and_crop_as_written_by_hand():
    """The network against its forward written by hand over the built modules: the skips
    are centre crops (torchvision's center_crop) concatenated before the upsampled map."""
    from torchvision.transforms.functional import center_crop

    spec = cnnspec.load(with_input("unet", UNET_SMALL))
    assert spec.output_shape == (2, 4, 4)
    net = spec.build(init="default").eval()
    x = torch.randn(1, 1, 188, 188)
    with torch.no_grad():
        e1 = net.e1(x)
        e2 = net.e2(e1)
        e3 = net.e3(e2)
        e4 = net.e4(e3)
        y = net.e5(e4)
        for up, d, skip in ((net.up4, net.d4, e4), (net.up3, net.d3, e3), (net.up2, net.d2, e2),
                            (net.up1, net.d1, e1)):  # fmt: skip
            y = up(y)
            y = d(torch.cat([center_crop(skip, list(y.shape[-2:])), y], dim=1))
        torch.testing.assert_close(net(x), net.head(y), atol=0, rtol=0)


@pytest.mark.slow
def test_unet_live_and_generated_agree(tmp_path):
    check_all_backends(with_input("unet", UNET_SMALL), tmp_path, "unet")


# --- the padded U-Net (milesial/Pytorch-UNet) ------------------------------------------------


def test_padded_unet_keeps_the_input_size():
    spec = load("unet_padded")
    assert spec.input_shape == (3, 256, 256) and spec.output_shape == (2, 256, 256)
    expected = 0
    for a, b in [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]:  # inc, down1..4
        expected += conv_params(a, b, 3, bias=False) + conv_params(b, b, 3, bias=False) + 4 * b
    for c in (512, 256, 128, 64):  # up1..up4
        expected += conv_params(2 * c, c, 2) + conv_params(2 * c, c, 3, bias=False)
        expected += conv_params(c, c, 3, bias=False) + 4 * c
    expected += conv_params(64, 2, 1)
    assert spec.params == expected == 31_037_698


@pytest.mark.parametrize("size", [(64, 64), (96, 160)])
def test_padded_unet_runs_at_any_multiple_of_16(size):
    spec = load("unet_padded").with_input((3, *size))
    assert spec.output_shape == (2, *size)
    net = spec.build(init="default").eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, *size)).shape == (1, 2, *size)


def test_padded_unet_refuses_a_size_its_reference_would_pad():
    """milesial's Up zero-pads the upsampled map to the skip's size; the language has no
    such padding, so an input whose sides are not multiples of 16 is refused at the join."""
    with pytest.raises(CnnspecError, match="concat: up2 is 256x24x24 .* but down2 is 256x25x25"):
        load("unet_padded", overrides={"input": "3x100x100"})


@pytest.mark.slow
def test_padded_unet_live_and_generated_agree(tmp_path):
    check_all_backends(with_input("unet_padded", "3x16x16"), tmp_path, "unet_padded")


# --- d2l's FCN ---------------------------------------------------------------------------------


def d2l_fcn(num_classes: int = 21) -> nn.Module:
    """The book's net (d2l 14.11), from torchvision's ResNet-18 without pretrained weights."""
    import torchvision

    pretrained_net = torchvision.models.resnet18()
    net = nn.Sequential(*list(pretrained_net.children())[:-2])
    net.add_module("final_conv", nn.Conv2d(512, num_classes, kernel_size=1))
    net.add_module(
        "transpose_conv",
        nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16, stride=32),
    )
    W = d2l_bilinear_kernel(num_classes, num_classes, 64)
    net.transpose_conv.weight.data.copy_(W)
    return net


def test_fcn_has_the_book_s_shapes():
    spec = load("fcn_d2l")
    assert spec.input_shape == (3, 320, 480) and spec.output_shape == (21, 320, 480)
    stages = {r["path"].split(".")[0]: r["output_shape"] for r in spec.layers}
    assert stages["layer4"] == [512, 10, 15] and stages["final_conv"] == [21, 10, 15]
    resnet18_body = 11_689_512 - (512 * 1000 + 1000)  # torchvision's count, fc left out
    assert spec.params == resnet18_body + conv_params(512, 21, 1) + conv_params(21, 21, 64)


def test_fcn_upsampling_starts_as_d2l_s_bilinear_kernel(tmp_path):
    spec = load("fcn_d2l")
    generated = module_from_source(spec.codegen(), tmp_path, "fcn_bilinear").FCN()
    for net in (spec.build(), generated):
        weight = net.transpose_conv.weight.detach()
        torch.testing.assert_close(weight, d2l_bilinear_kernel(21, 21, 64), atol=0, rtol=0)


def test_fcn_live_and_generated_agree(tmp_path):
    check_all_backends((PAPERS / "fcn_d2l.cnn").read_text(), tmp_path, "fcn_d2l")


def test_fcn_is_the_book_s_net():
    """d2l's own construction over torchvision's ResNet-18: the same tensors in the same
    order (so the book's pretrained body loads by position) and the same segmentation map."""
    torch.manual_seed(0)
    book = d2l_fcn().eval()
    with torch.no_grad():  # batch-norm statistics that are not the identity's
        for m in book.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    net = load("fcn_d2l").build().eval()
    report = load_by_position(net, book.state_dict(), "d2l")
    assert report.loaded == report.total == len(book.state_dict())
    x = torch.randn(1, 3, 320, 480)
    with torch.no_grad():
        torch.testing.assert_close(net(x), book(x), atol=1e-5, rtol=0)


# --- YOLOv3 --------------------------------------------------------------------------------------


def yolov3_convs(classes: int = 80, anchors: int = 3) -> list[tuple[int, int, int, bool]]:
    """yolov3.cfg's convolutions in its order, as (in, out, kernel, batch norm)."""
    convs: list[tuple[int, int, int, bool]] = []

    def conv(c_in: int, c_out: int, k: int, bn: bool = True) -> int:
        convs.append((c_in, c_out, k, bn))
        return c_out

    c = conv(3, 32, 3)
    for width, units in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):  # Darknet-53
        c = conv(c, width, 3)  # stride 2
        for _ in range(units):  # the residual units
            conv(conv(width, width // 2, 1), width, 3)
    # The heads at 13, 26 and 52: after the first, [route] -4 goes back to the previous
    # set's 1x1 output (c), a 1x1 convolution and [upsample] follow, and [route] -1, 61
    # (or 36) adds layer 61's 512 (or layer 36's 256) channels.
    for width, routed in ((512, 0), (256, 512), (128, 256)):
        if routed:
            c = conv(c, width, 1) + routed
        for _ in range(2):
            c = conv(conv(c, width, 1), 2 * width, 3)
        c = conv(c, width, 1)
        conv(conv(c, 2 * width, 3), anchors * (classes + 5), 1, bn=False)
    return convs


def test_yolov3_gives_three_scales_of_255_channels():
    spec = load("yolov3")
    assert spec.input_shape == (3, 416, 416)
    assert spec.output_shape == ((255, 13, 13), (255, 26, 26), (255, 52, 52))


def test_yolov3_parameters_are_the_original_model_s():
    """61,949,149 learned parameters: convolution weights, the biases of the three output
    convolutions, and batch norm's scale and shift. darknet's yolov3.weights holds
    62,001,757 numbers after its header: also batch norm's running mean and variance."""
    convs = yolov3_convs()
    assert len(convs) == 75  # the cfg's [convolutional] sections
    learned = sum(conv_params(a, b, k, bias=not bn) + (2 * b if bn else 0) for a, b, k, bn in convs)
    running = sum(2 * b for _, b, _, bn in convs if bn)
    spec = load("yolov3")
    assert spec.params == learned == 61_949_149
    # darknet prints 65.86 BFLOPs for YOLOv3 at 416: two operations per multiply-accumulate
    assert round(2 * spec.macs / 1e9, 2) == 65.86
    assert learned + running == 62_001_757
    with torch.device("meta"):  # shapes only
        net = spec.build()
    assert sum(p.numel() for p in net.parameters()) == learned
    stats = [b for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var"))]
    assert sum(b.numel() for b in stats) == running
    # the convolutions in the cfg's order, the order of the weights file
    layers = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    found = [(m.in_channels, m.out_channels, m.kernel_size[0], m.bias is None) for m in layers]
    assert found == convs


@pytest.mark.slow
def test_yolov3_live_and_generated_agree(tmp_path):
    spec = check_all_backends(with_input("yolov3", "3x64x64"), tmp_path, "yolov3")
    assert spec.output_shape == ((255, 2, 2), (255, 4, 4), (255, 8, 8))


# --- a feature pyramid on ResNet-18 --------------------------------------------------------------


def test_fpn_gives_five_levels_of_256_channels():
    spec = load("fpn_resnet18")
    assert spec.output_shape == tuple((256, s, s) for s in (56, 28, 14, 7, 4))


def test_fpn_is_torchvision_s_backbone_with_fpn():
    """torchvision's BackboneWithFPN over resnet18 (with its LastLevelMaxPool): the same
    tensors in the same order, and the same five maps."""
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    torch.manual_seed(0)
    layers = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
    reference = BackboneWithFPN(
        torchvision.models.resnet18(), layers, [64, 128, 256, 512], 256, LastLevelMaxPool()
    ).eval()
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    spec = load("fpn_resnet18")
    assert spec.params == sum(p.numel() for p in reference.parameters())
    net = spec.build().eval()
    report = load_by_position(net, reference.state_dict(), "torchvision")
    assert report.loaded == report.total == len(reference.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = net(x), reference(x)
    assert list(theirs) == ["0", "1", "2", "3", "pool"]
    for a, b in zip(ours, theirs.values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_fpn_live_and_generated_agree(tmp_path):
    check_all_backends(with_input("fpn_resnet18", "3x64x64"), tmp_path, "fpn")


def test_fpn_top_down_path_is_nearest_upsampling_and_a_sum():
    net = load("fpn_resnet18").with_input((3, 64, 64)).build(init="default").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        c2 = net.c2(net.stem(x))
        c3 = net.c3(c2)
        c4 = net.c4(c3)
        c5 = net.c5(c4)
        m4 = net.lat4(c4) + F.interpolate(net.lat5(c5), scale_factor=2.0, mode="nearest")
        m3 = net.lat3(c3) + F.interpolate(m4, scale_factor=2.0, mode="nearest")
        m2 = net.lat2(c2) + F.interpolate(m3, scale_factor=2.0, mode="nearest")
        p5 = net.p5(net.lat5(c5))
        want = (net.p2(m2), net.p3(m3), net.p4(m4), p5, p5[..., ::2, ::2])
        for got, expected in zip(net(x), want, strict=True):
            torch.testing.assert_close(got, expected, atol=0, rtol=0)

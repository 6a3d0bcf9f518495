"""`res2`, Res2Net's split, against timm's `Bottle2neck`: the same parameters in the same
order, and the same outputs with timm's weights copied in, at scales other than the 4 of
specs/timm/res2net50_26w_4s.cnn; its module paths; what it refuses."""

import pytest
import torch

import cnnspec
from cnnspec.errors import CnnspecError

res2net = pytest.importorskip("timm.models.res2net")

# timm's Bottle2neck(64, 16, base_width=64, scale=n): chunks of 16 channels, 64 out.
SPEC = """\
network B(input=64x8x8, classes=10):
    s:
        add:
            main:
                conv({wide}, k=1, bias=false) batchnorm relu
                res2(scale={scale}{stage}):
                    conv(16, k=3, s={s}, p=1, bias=false) batchnorm relu
                conv(64, k=1, bias=false) batchnorm
            {skip}
    r: relu
"""


def reference(scale, stride):
    torch.manual_seed(0)
    down = None
    if stride > 1:
        down = torch.nn.Sequential(
            torch.nn.Conv2d(64, 64, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(64)
        )
    ref = res2net.Bottle2neck(
        64, 16, stride=stride, downsample=down, base_width=64, scale=scale,
        norm_layer=torch.nn.BatchNorm2d,
    ).eval()  # fmt: skip
    with torch.no_grad():  # batch norm statistics other than the initial ones
        for tensor in ref.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return ref


def spec_for(scale, stride):
    stage = stride > 1  # timm's is_first: a stride (or a downsample)
    return cnnspec.load(
        SPEC.format(
            wide=16 * scale,
            scale=scale,
            stage=", stage=true" if stage else "",
            s=stride,
            skip="skip: conv(64, k=1, s=2, bias=false) batchnorm" if stage else "",
        )
    )


@pytest.mark.parametrize("scale, stride", [(2, 1), (3, 1), (5, 1), (3, 2), (4, 2)])
def test_res2_is_timms_bottle2neck(scale, stride):
    """Without stage, each copy after the first adds the previous copy's output to its
    chunk; with stage=true (timm's is_first) none does, and the last chunk is pooled."""
    spec, ref = spec_for(scale, stride), reference(scale, stride)
    net = spec.build().eval()
    ours, theirs = net.state_dict(), ref.state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()]
    assert spec.params == sum(p.numel() for p in ref.parameters())
    net.load_state_dict(dict(zip(ours, theirs.values())))
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x))


def test_a_copys_layers_sit_at_their_module_paths():
    """Copy i's layer j is the module `layers.j.i`; the copy's own row, which no module
    has, reads `layers.*.i`."""
    spec = spec_for(3, 1)
    keys = set(spec.build().state_dict())
    rows = [path for path, _, _ in spec.graph.walk()]
    assert [p for p in rows if "*" in p] == [f"s.branches.main.3.layers.*.{i}" for i in (0, 1)]
    convs = [p for p, node in spec.graph.layers() if node.layer.op == "conv" and "layers" in p]
    assert convs == ["s.branches.main.3.layers.0.0", "s.branches.main.3.layers.0.1"]
    assert all(f"{path}.weight" in keys for path in convs)
    norms = [p for p, node in spec.graph.layers() if node.layer.op == "batchnorm"]
    assert "s.branches.main.3.layers.1.1" in norms
    assert all(f"{path}.running_mean" in keys for path in norms)


def test_a_copy_of_one_layer_is_that_layer():
    spec = cnnspec.load(
        "network T(input=4x8x8, classes=10):\n    s:\n        res2:\n            relu\n"
    )
    assert [p for p, _ in spec.graph.layers()] == [f"s.layers.0.{i}" for i in range(3)]
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        y = spec.build()(x)
    # chunk 0 as is, 1 and 2 each after the previous output is added, 3 as is
    c = x.chunk(4, dim=1)
    y0 = c[0].relu()
    y1 = (y0 + c[1]).relu()
    y2 = (y1 + c[2]).relu()
    torch.testing.assert_close(y, torch.cat([y0, y1, y2, c[3]], dim=1))


@pytest.mark.parametrize(
    "shape, body, message, line",
    [
        ("4x8x8", ["res2:", "    conv(1, k=1)", "    conv(1, k=1)"], "res2 takes one branch", 3),
        ("4x8x8", ["res2(scale=1):", "    relu"], "res2: scale must be a whole number >= 2", 3),
        ("4x8x8", ["res2(scale=2.5):", "    relu"], "res2: scale must be a whole number", 3),
        ("6x8x8", ["res2:", "    relu"], "res2 with scale 4 needs an image whose channels "
         "divide by 4, got 6x8x8", 3),
        ("4x8x8", ["res2:", "    conv(2, k=1)"], "its branch must keep the chunk's shape 1x8x8, "
         "but it gives 2x8x8; give stage=true", 4),
        ("4x8x8", ["res2(stage=true):", "    adaptive_avgpool(3)"], "with no fixed stride", 4),
        ("4x8x8", ["res2(stage=true):", "    conv(1, k=3)"], "res2's last chunk, pooled, is "
         "1x8x8 but the branch gives 1x6x6", 4),
        ("4x8x8", ["res2:", "    relu if false"], "cannot be present only under a condition", 4),
    ],
)  # fmt: skip
def test_res2_refuses_what_it_cannot_split(shape, body, message, line):
    text = f"network T(input={shape}, classes=10):\n    s:\n" + "".join(
        f"        {item}\n" for item in body
    )
    with pytest.raises(CnnspecError) as err:
        cnnspec.load(text)
    assert message in err.value.message, err.value.render()
    assert err.value.pos[0] == line, err.value.render()

"""Seed 004's second model, SVHN_Model2 (specs/svhn_resnet50.cnn): torchvision's ResNet-50
without its classifier, then five heads. Its backbone is torchvision's resnet50 tensor for
tensor, so ImageNet weights load into it by position; and the seed's own mistake, heads of
512 inputs after 2,048 features, is refused where it is written."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import spec_path

import cnnspec
from cnnspec.backends.transfer import load_by_position
from cnnspec.errors import ShapeError

SPEC = spec_path("svhn_resnet50")


@pytest.fixture(scope="module")
def resnet50() -> torch.nn.Module:
    """torchvision's resnet50, randomly initialised, batch norm not the identity."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return net


def without_fc(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}


def test_backbone_state_dict_is_resnet50_without_fc(resnet50):
    with torch.device("meta"):
        ours = cnnspec.compile(SPEC, init="default")
    backbone = [tuple(v.shape) for v in ours.cnn.state_dict().values()]
    assert backbone == [tuple(v.shape) for v in without_fc(resnet50).values()]
    heads = [tuple(v.shape) for k, v in ours.state_dict().items() if k.startswith("fc.")]
    assert heads == [(11, 2048), (11,)] * 5


def test_resnet50_weights_by_position_give_its_features(resnet50):
    ours = cnnspec.compile(SPEC, init="default").eval()
    theirs = without_fc(resnet50)
    assert len(ours.cnn.state_dict()) == len(theirs)
    report = load_by_position(ours.cnn, theirs, "resnet50")
    assert report.loaded == report.total, report.mismatch
    resnet50.fc = torch.nn.Identity()  # what remains is the seed's backbone, then flatten
    x = torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = resnet50(x)
        got = ours.cnn(x)
        heads = ours(x)
    assert got.shape == (2, 2048) and expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert [tuple(h.shape) for h in heads] == [(2, 11)] * 5


def test_the_seeds_512_feature_heads_are_refused_at_their_line():
    text = SPEC.read_text()
    bad = text.replace("c1: linear(classes)", "c1: linear(classes, in_features=512)")
    assert bad != text
    lines = bad.split("\n")
    line = next(i for i, s in enumerate(lines, 1) if s.strip().startswith("c1: linear"))
    column = lines[line - 1].index("linear") + 1
    with pytest.raises(ShapeError) as caught:
        cnnspec.load(bad, format="cnn")
    err = caught.value
    assert err.pos == (line, column)
    assert re.match(r"linear expects 512 input features, got 2048\b", err.message)
    rendered = err.render()
    assert rendered.splitlines()[1].strip() == "c1: linear(classes, in_features=512)"

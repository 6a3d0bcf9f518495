"""torchvision's dense-prediction models and multi-output networks, written as specs
(specs/dense/), are torchvision's models: the same parameters, tensor for tensor in
state_dict order, and the same outputs once torchvision's weights are copied across by
position. Their generated code is the compiled module again.

These specs are graphs of named tensors: stages that read earlier stages (ASPP's branches,
the LR-ASPP head's two inputs, the FPN's laterals), joins, layers sized after another
tensor (`upsample(like=input)`), and several outputs (the FPN's five maps, Inception v3's
logits and auxiliary logits). The segmentation models and the FPN run here at 64x80, not
the 224x224 their specs declare: a size they were never inferred at, not square, so the
upsampling to the input's size and to each lateral's size is checked where a swapped
height and width would show. Inception v3 runs at 299x299, the smallest input its
auxiliary head takes.

Tests are grouped by model (a module-scoped fixture per model), so each torchvision model
is built once and dropped before the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import assert_equivalent, module_from_source

import cnnspec
from cnnspec.backends.transfer import load_by_position

ROOT = Path(__file__).resolve().parent.parent
DENSE = ROOT / "specs" / "dense"
BATCH = 2


def segmentation(name: str) -> Callable[[], torch.nn.Module]:
    def make():
        import torchvision.models.segmentation as seg

        kwargs = {"aux_loss": False} if name != "lraspp_mobilenet_v3_large" else {}
        return getattr(seg, name)(weights=None, weights_backbone=None, num_classes=21, **kwargs)

    return make


def resnet50_fpn(**kwargs) -> torch.nn.Module:
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    return resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5, **kwargs)


def inception_v3() -> torch.nn.Module:
    import torchvision

    return torchvision.models.inception_v3(
        weights=None, aux_logits=True, init_weights=True, transform_input=False
    )


def out_only(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """torchvision's segmentation models return {"out": ...} (and "aux" with aux_loss)."""
    result = net(x)
    assert list(result) == ["out"]
    return (result["out"],)


def fpn_maps(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """BackboneWithFPN returns the maps as an OrderedDict, finest first, then 'pool'."""
    result = net(x)
    assert list(result) == ["0", "1", "2", "3", "pool"]
    return tuple(result.values())


def logits_and_aux(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Inception3 returns the auxiliary logits only while `net.training` is set: its
    forward tests the flag of the top module alone. The top module is put in training
    mode and every module under it back in evaluation, so batch norm uses its running
    statistics and dropout passes its input, as the spec's network does in eval mode, and
    the result is InceptionOutputs(logits, aux_logits)."""
    net.train()
    for child in net.children():
        child.eval()
    result = net(x)
    assert result._fields == ("logits", "aux_logits")
    return tuple(result)


@dataclass(frozen=True)
class DenseModel:
    name: str
    torchvision: Callable[[], torch.nn.Module]
    outputs: Callable[[torch.nn.Module, torch.Tensor], tuple[torch.Tensor, ...]]
    declared: tuple  # the spec's output shape at its declared input
    size: tuple[int, int] = (64, 80)  # height and width the forward comparisons run at
    # torchvision's norm is FrozenBatchNorm2d: weight and bias are buffers, not
    # parameters, and there is no num_batches_tracked.
    frozen_bn: bool = False
    # Redraw convolution and linear weights with He init (see `reference`).
    he_init: bool = False

    @property
    def path(self) -> Path:
        return DENSE / f"{self.name}.cnn"


MODELS: dict[str, DenseModel] = {
    m.name: m
    for m in (
        DenseModel("fcn_resnet50", segmentation("fcn_resnet50"), out_only, (21, 224, 224)),
        DenseModel(
            "deeplabv3_resnet50", segmentation("deeplabv3_resnet50"), out_only, (21, 224, 224)
        ),
        DenseModel(
            "lraspp_mobilenet_v3_large",
            segmentation("lraspp_mobilenet_v3_large"),
            out_only,
            (21, 224, 224),
        ),
        DenseModel(
            "resnet50_fpn",
            resnet50_fpn,
            fpn_maps,
            ((256, 56, 56), (256, 28, 28), (256, 14, 14), (256, 7, 7), (256, 4, 4)),
            frozen_bn=True,
        ),
        DenseModel(
            "inception_v3",
            inception_v3,
            logits_and_aux,
            ((1000,), (1000,)),
            size=(299, 299),
            he_init=True,
        ),
    )
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batches of two are too small to share among threads: on a busy two-core machine,
    intra-op threads waiting for each other made these forwards many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_dense_spec_is_tested():
    assert sorted(p.stem for p in DENSE.glob("*.cnn")) == sorted(MODELS)


@pytest.fixture(scope="module", params=list(MODELS))
def model(request) -> DenseModel:
    return MODELS[request.param]


def is_norm(m: torch.nn.Module) -> bool:
    from torchvision.ops.misc import FrozenBatchNorm2d

    return isinstance(m, torch.nn.modules.batchnorm._BatchNorm | FrozenBatchNorm2d)


@pytest.fixture(scope="module")
def reference(model: DenseModel) -> torch.nn.Module:
    """torchvision's model in eval mode, with batch-norm statistics and affine parameters
    (FrozenBatchNorm2d's too) drawn at random so that normalisation is not the identity
    it is after init.

    Inception v3's own init draws every convolution's weights with std 0.1 whatever its
    fan-in, which grows the logits to about 1e12 through 94 convolutions; a relative
    tolerance of 1e-4 would then forgive absolute differences of 1e8. He init keeps
    them near 1, where the comparison means something."""
    torch.manual_seed(0)
    net = model.torchvision().eval()
    with torch.no_grad():
        for m in net.modules():
            if is_norm(m):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
            if model.he_init and isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                torch.nn.init.kaiming_normal_(m.weight)
    return net


def small(model: DenseModel) -> cnnspec.Spec:
    return cnnspec.load(model.path).with_input((3, *model.size))


def empty(make) -> torch.nn.Module:
    """A module with allocated but unset tensors: every one is loaded from a state_dict
    afterwards, so initialising them would only cost time."""
    with torch.device("meta"):
        net = make()
    return net.to_empty(device="cpu").eval()


def comparable(model: DenseModel, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state_dict as torchvision's model holds it. FrozenBatchNorm2d keeps no
    num_batches_tracked (it never updates its statistics), so against it ours is compared
    without them; they only count batch-norm's updates in training, and the forward in
    evaluation never reads them."""
    if not model.frozen_bn:
        return state
    return {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}


def load_torchvision(model: DenseModel, net: torch.nn.Module, source: torch.nn.Module) -> None:
    """Copy `source`'s state_dict into `net` pairing tensors by position, not by name:
    every tensor, each of the same shape. Against FrozenBatchNorm2d, our own
    num_batches_tracked tensors are slotted in where torchvision has none, so the
    remaining tensors pair by position as they would by name-order, and those counters
    keep their value."""
    theirs = iter(source.state_dict().items())
    ours = net.state_dict()
    assert len(comparable(model, ours)) == len(source.state_dict())
    weights = {}
    for key, tensor in ours.items():
        if key not in comparable(model, ours):
            weights[key] = tensor
        else:
            their_key, value = next(theirs)
            weights[their_key] = value
    report = load_by_position(net, weights, "torchvision")
    assert report.loaded == report.total, report.mismatch


@pytest.fixture(scope="module")
def ours(model: DenseModel, reference: torch.nn.Module) -> torch.nn.Module:
    """The compiled spec (inferred at the test size) holding torchvision's weights."""
    net = empty(lambda: small(model).build(init="default"))
    load_torchvision(model, net, reference)
    return net


def test_spec_declares_its_shapes(model):
    spec = cnnspec.load(model.path)
    assert spec.input_shape == ((3, 299, 299) if model.name == "inception_v3" else (3, 224, 224))
    assert spec.output_shape == model.declared


def test_parameter_count_equals_torchvision(model, reference):
    theirs = sum(p.numel() for p in reference.parameters())
    if model.frozen_bn:  # FrozenBatchNorm2d's weight and bias are buffers, fixed
        theirs += sum(m.weight.numel() + m.bias.numel() for m in reference.modules() if is_norm(m))
    assert cnnspec.load(model.path).params == theirs


def test_state_dict_shapes_in_order_equal_torchvision(model, reference):
    with torch.device("meta"):
        net = cnnspec.load(model.path).build(init="default")
    shapes = [tuple(v.shape) for v in comparable(model, net.state_dict()).values()]
    assert shapes == [tuple(v.shape) for v in reference.state_dict().values()]


def sample(model: DenseModel) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 3, *model.size, generator=g)


def our_outputs(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = net(x)
    return out if isinstance(out, tuple) else (out,)


def test_outputs_equal_torchvision(model, reference, ours):
    """FrozenBatchNorm2d computes x * (w / sqrt(var + eps)) + (b - mean * that scale),
    batch norm (x - mean) / sqrt(var + eps) * w + b: the same function (eps 1e-5 in both),
    rounded differently. The FPN's maps, with values up to about 200, then differ by up
    to about 2.5e-4, about a millionth of their scale, so against the frozen norm the absolute
    tolerance is 1e-5 of the largest value; the next test shows the rest is exact."""
    x = sample(model)
    with torch.no_grad():
        expected = model.outputs(reference, x)
    got = our_outputs(ours, x)
    inferred = small(model).output_shape
    inferred = inferred if isinstance(inferred[0], tuple) else (inferred,)
    assert [tuple(g.shape[1:]) for g in got] == list(inferred)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert e.abs().max() > 0  # a dead network would match anything
        atol = 1e-5 * e.abs().max().item() if model.frozen_bn else 1e-4
        torch.testing.assert_close(g, e, rtol=1e-4, atol=atol)


def test_outputs_equal_torchvision_with_batchnorm_for_its_frozen_norm(model, reference, ours):
    """torchvision's own FPN body built with norm_layer=nn.BatchNorm2d, holding the frozen
    model's tensors, gives our maps to the last bit: the frozen norm's rounding is the
    whole difference above."""
    if not model.frozen_bn:
        pytest.skip("torchvision's model has no FrozenBatchNorm2d")
    unfrozen = model.torchvision(norm_layer=torch.nn.BatchNorm2d).eval()
    missing = unfrozen.load_state_dict(reference.state_dict(), strict=False).missing_keys
    assert all(k.endswith(".num_batches_tracked") for k in missing)
    x = sample(model)
    with torch.no_grad():
        expected = model.outputs(unfrozen, x)
    for g, e in zip(our_outputs(ours, x), expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_generated_code_equals_the_compiled_module(model, ours, tmp_path):
    spec = small(model)
    module = module_from_source(spec.codegen(), tmp_path, f"generated_{model.name}")
    generated = empty(getattr(module, spec.name))
    assert list(generated.state_dict()) == list(ours.state_dict())
    generated.load_state_dict(ours.state_dict())
    x = sample(model)
    for g, o in zip(our_outputs(generated, x), our_outputs(ours, x), strict=True):
        torch.testing.assert_close(g, o, rtol=0, atol=0)


@pytest.mark.slow
def test_generated_code_initialises_and_takes_its_arguments_as_the_build(model, tmp_path):
    """conftest's whole check: the recipe's init drawn alike, and the generated class's
    in_channels and num_classes build what the spec gives for them."""
    spec = small(model)
    module = module_from_source(spec.codegen(), tmp_path, f"generated_{model.name}")
    assert_equivalent(spec, getattr(module, spec.name))

"""torchvision's classification models, written as specs (specs/zoo/), are torchvision's
models: the same parameters, tensor for tensor in state_dict order, and the same outputs
once torchvision's weights are copied across by position. Their generated code is the
compiled module again: the same state_dict keys and outputs.

Tests are grouped by model (a module-scoped fixture per model), so each torchvision model
is built once and dropped before the next.
"""

from __future__ import annotations

import pytest
import torch
from zoo_models import MODELS, ZOO, ZooModel

import cnnspec
from cnnspec.backends.transfer import load_by_position

BATCH = 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batches of two at 64x64 are too small to share among threads: on a busy two-core
    machine, intra-op threads waiting for each other made these forwards 10-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_zoo_spec_is_tested():
    assert sorted(p.stem for p in ZOO.glob("*.cnn")) == sorted(MODELS)


@pytest.fixture(scope="module", params=list(MODELS))
def model(request) -> ZooModel:
    return MODELS[request.param]


@pytest.fixture(scope="module")
def reference(model: ZooModel) -> torch.nn.Module:
    """torchvision's model in eval mode, with batch-norm statistics and affine parameters
    drawn at random so that normalisation is not the identity it is after init, and
    ConvNeXt's layer scales drawn near 1: at their initial 1e-6 the blocks would add
    nothing the comparison could see."""
    torch.manual_seed(0)
    net = model.torchvision().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
        for name, p in net.named_parameters():
            if name.endswith("layer_scale"):
                p.uniform_(0.5, 1.5)
    return net


def small(model: ZooModel) -> cnnspec.Spec:
    return cnnspec.load(model.path).with_input((3, model.size, model.size))


def empty(make) -> torch.nn.Module:
    """A module with allocated but unset tensors: every one is loaded from a state_dict
    afterwards, so initialising them would only cost time (VGG's are 130M values)."""
    with torch.device("meta"):
        net = make()
    return net.to_empty(device="cpu").eval()


def load_torchvision(net: torch.nn.Module, source: torch.nn.Module) -> None:
    """Copy `source`'s state_dict into `net` pairing tensors by position, not by name:
    every tensor, each of the same shape."""
    theirs = source.state_dict()
    assert len(net.state_dict()) == len(theirs)
    report = load_by_position(net, theirs, "torchvision")
    assert report.loaded == report.total, report.mismatch


@pytest.fixture(scope="module")
def ours(model: ZooModel, reference: torch.nn.Module) -> torch.nn.Module:
    """The compiled spec (inferred at the small test size) holding torchvision's weights."""
    net = empty(lambda: small(model).build(init="default"))
    load_torchvision(net, reference)
    return net


def test_spec_is_the_imagenet_network(model):
    spec = cnnspec.load(model.path)
    assert spec.input_shape == (3, 224, 224)
    assert spec.output_shape == (1000,)


def test_parameter_count_equals_torchvision(model, reference):
    assert cnnspec.load(model.path).params == sum(p.numel() for p in reference.parameters())


def test_state_dict_shapes_in_order_equal_torchvision(model, reference):
    with torch.device("meta"):
        net = cnnspec.load(model.path).build(init="default")
    shapes = [tuple(v.shape) for v in net.state_dict().values()]
    assert shapes == [tuple(v.shape) for v in reference.state_dict().values()]


def forward(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def sample(model: ZooModel) -> torch.Tensor:
    return torch.randn(BATCH, 3, model.size, model.size, generator=torch.Generator().manual_seed(1))


def test_outputs_equal_torchvision(model, reference, ours):
    x = sample(model)
    expected, got = forward(reference, x), forward(ours, x)
    assert tuple(got.shape[1:]) == small(model).output_shape
    assert expected.abs().max() > 0  # a dead network would match anything
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_generated_code_equals_the_compiled_module(model, ours):
    spec = cnnspec.load(model.path)
    source = spec.codegen()
    namespace = {"__name__": f"generated_{model.name}"}
    exec(compile(source, f"<generated {model.name}>", "exec"), namespace)
    generated = empty(namespace[spec.name])
    assert list(generated.state_dict()) == list(ours.state_dict())
    generated.load_state_dict(ours.state_dict())
    x = sample(model)
    torch.testing.assert_close(forward(generated, x), forward(ours, x), rtol=1e-4, atol=1e-4)

"""timm's networks written as specs (specs/timm/) are timm's models: the same parameters,
tensor for tensor in state_dict order, and the same outputs once timm's weights are copied
across by position. Their generated code is the compiled module again.

Each model is built as `timm.create_model(name, pretrained=False)`. The forward
comparisons run at a small size each network takes (64x64: every one ends in global
pooling, and HRNet's fusion needs a multiple of 32), with batch-norm statistics and affine
parameters drawn at random so that normalisation is not the identity it is after init.

Tests are grouped by model (a module-scoped fixture per model), so each timm model is
built once and dropped before the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import assert_equivalent, module_from_source

import cnnspec
from cnnspec.backends.transfer import load_by_position

ROOT = Path(__file__).resolve().parent.parent
TIMM = ROOT / "specs" / "timm"
BATCH = 2


@dataclass(frozen=True)
class TimmModel:
    name: str  # the spec's file name and timm's model name
    size: int = 64  # height and width the forward comparisons run at

    @property
    def path(self) -> Path:
        return TIMM / f"{self.name}.cnn"


MODELS: dict[str, TimmModel] = {
    m.name: m
    for m in (
        TimmModel("skresnet18"),
        TimmModel("rexnet_100"),
        TimmModel("dpn68"),
        TimmModel("dla34"),
        TimmModel("hrnet_w18_small"),
        TimmModel("res2net50_26w_4s"),
    )
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batches of two at 64x64 are too small to share among threads: on a busy two-core
    machine, intra-op threads waiting for each other made these forwards many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_timm_spec_is_tested():
    assert sorted(p.stem for p in TIMM.glob("*.cnn")) == sorted(MODELS)


@pytest.fixture(scope="module", params=list(MODELS))
def model(request) -> TimmModel:
    return MODELS[request.param]


@pytest.fixture(scope="module")
def reference(model: TimmModel) -> torch.nn.Module:
    """timm's model in eval mode, with batch-norm statistics and affine parameters drawn at
    random. (timm is imported here, not when the suite is collected: it takes seconds.)"""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.create_model(model.name, pretrained=False).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return net


def small(model: TimmModel) -> cnnspec.Spec:
    return cnnspec.load(model.path).with_input((3, model.size, model.size))


def empty(make) -> torch.nn.Module:
    """A module with allocated but unset tensors: every one is loaded from a state_dict
    afterwards, so initialising them would only cost time."""
    with torch.device("meta"):
        net = make()
    return net.to_empty(device="cpu").eval()


@pytest.fixture(scope="module")
def ours(model: TimmModel, reference: torch.nn.Module) -> torch.nn.Module:
    """The compiled spec (inferred at the test size) holding timm's weights, paired by
    position, not by name: every tensor, each of the same shape."""
    net = empty(lambda: small(model).build(init="default"))
    theirs = reference.state_dict()
    assert len(net.state_dict()) == len(theirs)
    report = load_by_position(net, theirs, "timm")
    assert report.loaded == report.total, report.mismatch
    return net


def test_spec_is_the_imagenet_network(model):
    spec = cnnspec.load(model.path)
    assert spec.input_shape == (3, 224, 224)
    assert spec.output_shape == (1000,)


def test_parameter_count_equals_timm(model, reference):
    assert cnnspec.load(model.path).params == sum(p.numel() for p in reference.parameters())


def test_state_dict_shapes_in_order_equal_timm(model, reference):
    with torch.device("meta"):
        net = cnnspec.load(model.path).build(init="default")
    shapes = [tuple(v.shape) for v in net.state_dict().values()]
    assert shapes == [tuple(v.shape) for v in reference.state_dict().values()]


def sample(model: TimmModel) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 3, model.size, model.size, generator=g)


def forward(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def test_outputs_equal_timm(model, reference, ours):
    x = sample(model)
    expected, got = forward(reference, x), forward(ours, x)
    assert tuple(got.shape[1:]) == small(model).output_shape
    assert expected.abs().max() > 0  # a dead network would match anything
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_generated_code_equals_the_compiled_module(model, ours, tmp_path):
    spec = small(model)
    module = module_from_source(spec.codegen(), tmp_path, f"generated_{model.name}")
    generated = empty(getattr(module, spec.name))
    assert list(generated.state_dict()) == list(ours.state_dict())
    generated.load_state_dict(ours.state_dict())
    x = sample(model)
    torch.testing.assert_close(forward(generated, x), forward(ours, x), rtol=0, atol=0)


@pytest.mark.slow
def test_generated_code_initialises_and_takes_its_arguments_as_the_build(model, tmp_path):
    """conftest's whole check: the recipe's init drawn alike, and the generated class's
    in_channels and num_classes build what the spec gives for them."""
    spec = small(model)
    module = module_from_source(spec.codegen(), tmp_path, f"generated_{model.name}")
    assert_equivalent(spec, getattr(module, spec.name))


def readme_rows() -> dict[str, list[str]]:
    """The table of specs/timm/README.md, by spec name: the cells after the name."""
    rows = {}
    for line in (TIMM / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in MODELS:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_readme_table_holds_cnnspec_s_figures():
    """The README's parameters and MACs are cnnspec's (benchmarks/timm_table.py writes the
    table): a spec changed without making the table again shows here."""
    rows = readme_rows()
    assert sorted(rows) == sorted(MODELS)
    for name, cells in rows.items():
        spec = cnnspec.load(MODELS[name].path)
        assert cells[:2] == [f"{spec.params:,}", f"{spec.macs / 1e9:.2f} G"], name

"""The live backend: module structure, API, init, and compile/export friendliness."""

import pytest
import torch
from conftest import EVERY_CONSTRUCT, SPEC_NAMES, net, spec_path

import cnnspec


def test_compile_accepts_a_path_a_string_path_and_text():
    text = spec_path("lenet").read_text()
    for source in (spec_path("lenet"), str(spec_path("lenet")), text):
        assert sum(p.numel() for p in cnnspec.compile(source).parameters()) == 61_706


def test_load_exposes_figures_as_plain_data():
    spec = cnnspec.load(spec_path("googlenet"))
    assert spec.input_shape == (1, 96, 96) and spec.output_shape == (10,)
    assert spec.params == 5_977_530 and spec.macs > 0
    assert spec.layers[0]["path"] == "b1.0" and spec.layers[-1]["output_shape"] == [10]
    assert "GoogLeNet" in spec.summary()


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_summary_paths_are_module_paths(name):
    spec = cnnspec.load(spec_path(name))
    modules = dict(spec.build().named_modules())
    for row in spec.layers:
        assert row["path"] in modules, row["path"]
    params = {k: v.numel() for k, v in spec.build().named_parameters()}
    for row in spec.layers:
        own = sum(n for k, n in params.items() if k.rsplit(".", 1)[0] == row["path"])
        assert own == row["params"], row["path"]


def test_state_dict_keys_read_like_the_spec():
    keys = set(cnnspec.compile(spec_path("googlenet")).state_dict())
    assert "b3.0.branches.1.2.weight" in keys  # stage b3, inception 0, path 2, 3x3 conv
    assert "head.weight" in keys
    keys = set(cnnspec.compile(spec_path("resnet18")).state_dict())
    assert "b3.0.0.shortcut.weight" in keys and "b2.0.0.shortcut.weight" not in keys
    keys = set(cnnspec.compile(spec_path("svhn_multihead")).state_dict())
    assert {f"fc.branches.c{i}.weight" for i in range(1, 7)} <= keys


def test_one_head_returns_a_tensor_several_return_a_tuple():
    single = cnnspec.compile(spec_path("lenet"))(torch.zeros(2, 1, 28, 28))
    assert isinstance(single, torch.Tensor) and single.shape == (2, 10)
    many = cnnspec.compile(spec_path("svhn_multihead"))(torch.zeros(2, 3, 64, 128))
    assert isinstance(many, tuple) and [o.shape for o in many] == [(2, 11)] * 6


def test_xavier_init_follows_the_recipe_and_can_be_overridden():
    torch.manual_seed(0)
    xavier = cnnspec.compile(spec_path("alexnet"))  # recipe: init=xavier
    torch.manual_seed(0)
    default = cnnspec.compile(spec_path("alexnet"), init="default")
    w_x, w_d = xavier.classifier[1].weight, default.classifier[1].weight
    bound = (6 / (6400 + 4096)) ** 0.5  # xavier-uniform bound for a 6400 -> 4096 layer
    assert w_x.abs().max() <= bound and w_x.abs().max() > 0.9 * bound
    assert w_d.abs().max() <= 1 / 6400**0.5  # PyTorch's default: U(-1/sqrt(in), 1/sqrt(in))
    # Biases keep PyTorch's default draw, U(-1/sqrt(in), 1/sqrt(in)), under either init
    for model in (xavier, default):
        bias = model.classifier[1].bias
        assert bias.abs().max() <= 1 / 6400**0.5 and bias.abs().max() > 0.9 / 6400**0.5


@pytest.mark.parametrize("name", [*SPEC_NAMES, "every construct"])
def test_fullgraph_compile_without_graph_breaks(name):
    torch._dynamo.reset()
    spec = cnnspec.load(EVERY_CONSTRUCT if name == "every construct" else spec_path(name))
    module = spec.build().eval()
    x = torch.randn(2, *spec.input_shape)
    explanation = torch._dynamo.explain(module)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    with torch.no_grad():
        for a, b in zip(_tuple(compiled(x)), _tuple(module(x))):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_channels_last_gives_the_same_outputs(name):
    spec = cnnspec.load(spec_path(name))
    module = spec.build().eval()
    x = torch.randn(2, *spec.input_shape)
    with torch.no_grad():
        expected = _tuple(module(x))
        module = module.to(memory_format=torch.channels_last)
        got = _tuple(module(x.to(memory_format=torch.channels_last)))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_torch_export(name):
    spec = cnnspec.load(spec_path(name))
    module = spec.build().eval()
    x = torch.randn(2, *spec.input_shape)
    exported = torch.export.export(module, (x,))
    with torch.no_grad():
        for a, b in zip(_tuple(exported.module()(x)), _tuple(module(x))):
            torch.testing.assert_close(a, b)


def test_budget_is_checked_before_building():
    with pytest.raises(cnnspec.CnnspecError, match="parameters"):
        cnnspec.compile(net("flatten linear(100000) linear(100000)"))


def _tuple(out):
    return out if isinstance(out, tuple) else (out,)

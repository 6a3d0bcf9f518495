"""The layer table: its depth, what each row is called, and the memory it reports."""

from __future__ import annotations

import json
from math import prod

import pytest
import torch
from conftest import SPEC_NAMES, spec_path

import cnnspec
from cnnspec.backends.summary import activations, memory
from cnnspec.cli import main


def rows(table: str) -> list[str]:
    lines = table.splitlines()
    end = next(i for i in range(3, len(lines)) if lines[i].startswith("---"))
    return lines[3:end]


def test_default_depth_shows_stages_and_what_they_hold():
    spec = cnnspec.load(spec_path("googlenet"))
    shown = [r.split()[0] for r in rows(spec.summary())]
    assert shown[:3] == ["b1", "b1.0", "b1.1"]
    assert "b3.0" in shown and not any(p.startswith("b3.0.") for p in shown)
    assert [r.split()[0] for r in rows(spec.summary(1))] == ["b1", "b2", "b3", "b4", "b5", "head"]
    deep = [r.split()[0] for r in rows(spec.summary(99))]
    assert len([p for p, _ in spec.graph.layers()]) < len(deep)  # every layer and group


def test_rows_name_what_they_are():
    table = cnnspec.load(spec_path("densenet")).summary(3)
    assert "dense_block(4, 32)" in table and "dense unit" in table
    unit = next(r for r in rows(table) if r.split()[0] == "features.0.branches.0")
    assert unit.split()[1:3] == ["dense", "unit"]  # not "0", its index
    assert (
        "inception(64, (96, 128), (16, 32), 32)" in cnnspec.load(spec_path("googlenet")).summary()
    )
    assert "heads" in cnnspec.load(spec_path("svhn_multihead")).summary()


@pytest.mark.parametrize("name", ["lenet", "resnet18", "svhn_multihead"])
def test_activations_are_what_a_forward_pass_produces(name):
    """Counted statically, checked against the outputs of every leaf module at runtime."""
    spec = cnnspec.load(spec_path(name))
    net = spec.build().eval()
    seen = [prod(spec.input_shape)]
    for module in net.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda m, i, out: seen.append(out[0].numel()))
    with torch.no_grad():
        net(torch.zeros(1, *spec.input_shape))
    assert activations(spec.graph) == sum(seen)


def test_memory_lines_follow_the_recipe():
    spec = cnnspec.load(spec_path("lenet"))  # sgd without momentum, batch 256
    table = spec.summary()
    per_example = activations(spec.graph) * 4
    assert f"activations: {per_example / 1000:,.1f} KB per example" in table
    assert "training at batch 256" in table and "sgd state" in table


@pytest.mark.parametrize(
    "optimizer, momentum, copies",
    [("sgd", 0.0, 2), ("sgd", 0.9, 3), ("adam", 0.0, 4), ("adamw", 0.0, 4)],
)
def test_training_memory_counts_the_optimizers_state(optimizer, momentum, copies):
    """Weights and gradients, and what the optimizer keeps per weight: nothing for plain
    SGD, a momentum buffer, Adam's two moments; added to the activations of a batch."""
    spec = cnnspec.load(spec_path("lenet")).variant(optimizer=optimizer, momentum=momentum)
    m = memory(spec.graph)
    assert m.weights == spec.params * 4 * copies
    assert m.activations == activations(spec.graph) * 4 * spec.recipe.batch
    assert m.training == m.activations + m.weights
    line = spec.summary().splitlines()[-1]
    assert f"{m.training / 1e6:,.1f} MB" in line and f"{m.weights / 1e3:,.1f} KB" in line
    assert f"{optimizer} state" in line


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_json_carries_each_layers_arguments(name, capsys):
    assert main(["build", str(spec_path(name)), "--json", "--no-forward"]) == 0
    data = json.loads(capsys.readouterr().out)
    spec = cnnspec.load(spec_path(name))
    for row, (_, node) in zip(data["layers"], spec.graph.layers()):
        assert row["args"] == json.loads(json.dumps(node.layer.arguments()))


def test_depth_flag(capsys):
    assert main(["build", str(spec_path("googlenet")), "--depth", "1", "--no-forward"]) == 0
    assert "b3.0" not in capsys.readouterr().out


def test_readme_layer_table_is_the_registry(capsys):
    readme = (spec_path("lenet").parent.parent / "README.md").read_text()
    assert main(["schema", "--layers"]) == 0
    assert capsys.readouterr().out in readme, (
        "README's layer table is stale: cnnspec schema --layers"
    )

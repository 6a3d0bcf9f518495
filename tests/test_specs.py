"""Every seed network: parameter counts, the shapes the seeds print, and .cnn == .yaml."""

import pytest
from conftest import SPEC_NAMES, SPECS, spec_path

import cnnspec
from cnnspec.backends.summary import table_rows
from cnnspec.limits import Limits

# Total parameters of the seeds' own PyTorch code.
SEED_PARAMS = {
    "lenet": 61_706,
    "lenet_bn": 44_878,
    "lenet_maxpool": 44_426,
    "alexnet": 46_764_746,
    "vgg11": 128_806_154,
    "nin": 1_992_166,
    "googlenet": 5_977_530,
    "resnet18": 11_178_378,
    "densenet": 758_226,
    "svhn_multihead": 49_506,
    # SVHN_Model2's ResNet-50 backbone with its five heads taking the 2,048 features that
    # arrive; the seed's nn.Linear(512, 11) heads (23,536,247 in all) cannot run.
    "svhn_resnet50": 23_620_727,
}

# Output shapes the seeds print (batch dimension dropped), keyed by our node path.
SEED_SHAPES = {
    "lenet": {  # seed 000, layer by layer
        "features.0": (1, 28, 28), "features.1": (6, 28, 28), "features.2": (6, 28, 28),
        "features.3": (6, 14, 14), "features.4": (16, 10, 10), "features.5": (16, 10, 10),
        "features.6": (16, 5, 5), "classifier.0": (400,), "classifier.1": (120,),
        "classifier.2": (120,), "classifier.3": (84,), "classifier.4": (84,),
        "classifier.5": (10,),
    },
    "lenet_maxpool": {"conv": (16, 4, 4), "fc.1": (120,), "fc": (10,)},  # seed 003
    "alexnet": {  # seed 002, layer by layer
        "features.0": (96, 54, 54), "features.2": (96, 26, 26), "features.3": (256, 26, 26),
        "features.5": (256, 12, 12), "features.6": (384, 12, 12), "features.8": (384, 12, 12),
        "features.10": (256, 12, 12), "features.12": (256, 5, 5), "classifier.0": (6400,),
        "classifier.1": (4096,), "classifier.4": (4096,), "classifier.7": (10,),
    },
    "vgg11": {  # seed 002 / 004: one line per vgg block
        "features.0": (64, 112, 112), "features.1": (128, 56, 56), "features.2": (256, 28, 28),
        "features.3": (512, 14, 14), "features.4": (512, 7, 7), "classifier.0": (25088,),
        "classifier.1": (4096,), "classifier": (10,),
    },
    "nin": {  # seed 002 / 004
        "features.0": (96, 54, 54), "features.1": (96, 26, 26), "features.2": (256, 26, 26),
        "features.3": (256, 12, 12), "features.4": (384, 12, 12), "features.5": (384, 5, 5),
        "features.6": (384, 5, 5), "features.7": (10, 5, 5), "head.0": (10, 1, 1),
        "head.1": (10,),
    },
    "googlenet": {  # seed 004
        "b1": (64, 24, 24), "b2": (192, 12, 12), "b3": (480, 6, 6), "b4": (832, 3, 3),
        "b5.2": (1024, 1, 1), "b5.3": (1024,), "head": (10,),
    },
    "resnet18": {  # seed 002
        "b1": (64, 56, 56), "b2": (64, 56, 56), "b3": (128, 28, 28), "b4": (256, 14, 14),
        "b5": (512, 7, 7), "head.0": (512, 1, 1), "head.1": (512,), "head.2": (10,),
    },
    "svhn_multihead": {  # seed 004
        "cnn.0": (16, 31, 63), "cnn.1": (16, 31, 63), "cnn.2": (16, 15, 31),
        "cnn.3": (32, 7, 15), "cnn.4": (32, 7, 15), "cnn.5": (32, 3, 7), "cnn.6": (672,),
        "fc": ((11,),) * 6,
    },
    "densenet": {"b1": (64, 24, 24), "features": (248, 3, 3), "head": (10,)},  # d2l 8.7
}  # fmt: skip


def test_every_seed_network_has_a_spec():
    assert set(SPEC_NAMES) == set(SEED_PARAMS)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_parameter_count_equals_the_seed(name):
    assert cnnspec.load(spec_path(name)).params == SEED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(SEED_SHAPES))
def test_shapes_equal_the_seed_printout(name):
    spec = cnnspec.load(spec_path(name))
    shapes = {path: node.out_shape for path, _, node in spec.graph.walk()}
    assert {path: shapes[path] for path in SEED_SHAPES[name]} == SEED_SHAPES[name]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_cnn_and_yaml_give_equal_ir(name):
    text = cnnspec.load(spec_path(name))
    yaml = cnnspec.load(spec_path(name, ".yaml"))
    assert text.ir == yaml.ir
    assert text.ir.model_dump() == yaml.ir.model_dump()
    assert text.params == yaml.params and text.macs == yaml.macs


EVERY_SPEC = sorted(
    str(p.relative_to(SPECS)) for p in [*SPECS.rglob("*.cnn"), *SPECS.rglob("*.yaml")]
)


@pytest.mark.parametrize("name", EVERY_SPEC)
def test_layer_figures_add_up(name):
    """Every parameter and MAC of every spec in specs/ is in one layer row, and each row of
    the table holds what the rows below it hold (a combinator's own parameters, such as
    add(scale=)'s layer scale, have a row of their own)."""
    spec = cnnspec.load(SPECS / name, limits=Limits(max_activations=1 << 30))  # U-Net: 2^28+
    assert sum(row["params"] for row in spec.layers) == spec.params
    assert sum(row["macs"] for row in spec.layers) == spec.macs
    rows = table_rows(spec.graph, depth=1 << 30)
    for i, row in enumerate(rows):
        below = []
        for inner in rows[i + 1 :]:
            if inner.level <= row.level:
                break
            if inner.level == row.level + 1:
                below.append(inner)
        if below:
            assert sum(r.params for r in below) == row.params, row.path
            assert sum(r.macs for r in below) == row.macs, row.path
    stages = [r for r in rows if r.level == 0]
    assert sum(r.params for r in stages) == spec.params


def test_a_residuals_own_scale_is_a_row_named_as_its_state_dict_key():
    spec = cnnspec.load(SPECS / "zoo" / "convnext_tiny.cnn")
    scales = [row for row in spec.layers if row["op"] == "layer_scale"]
    assert len(scales) == 18 and sum(row["params"] for row in scales) == 6_624
    text = (
        "network T(input=4x8x8, classes=10):\n"
        "    s:\n        add(scale=0.5):\n            conv(4, k=3, p=1)\n"
    )
    spec, net = cnnspec.load(text), cnnspec.compile(text)
    keys = {k: v.numel() for k, v in net.state_dict().items()}
    assert {r["path"]: r["params"] for r in spec.layers if r["op"] == "layer_scale"} == {
        "s.layer_scale": keys["s.layer_scale"]
    }


def test_recipes_carry_the_seeds_settings():
    alexnet = cnnspec.load(spec_path("alexnet")).recipe
    assert (alexnet.lr, alexnet.epochs, alexnet.batch, alexnet.resize) == (0.01, 10, 128, 224)
    svhn = cnnspec.load(spec_path("svhn_multihead")).recipe
    assert (svhn.optimizer, svhn.lr, svhn.batch, svhn.init) == ("adam", 0.005, 40, "default")


def test_macs_of_a_known_layer():
    # conv(6, k=5, p=2) on 1x28x28: 6 * 28 * 28 outputs, each 1 * 5 * 5 MACs.
    rows = {r["path"]: r for r in cnnspec.load(spec_path("lenet")).layers}
    assert rows["features.1"]["macs"] == 6 * 28 * 28 * 25
    assert rows["classifier.1"]["macs"] == 400 * 120

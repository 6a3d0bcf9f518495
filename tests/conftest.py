import ast
import gzip
import importlib.util
import inspect
import struct
from pathlib import Path

import pytest
import torch

import cnnspec
from cnnspec.backends.runtime_source import runtime_names
from cnnspec.errors import CnnspecError

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SPEC_NAMES = sorted(p.stem for p in SPECS.glob("*.cnn"))


def spec_path(name: str, suffix: str = ".cnn") -> Path:
    return SPECS / f"{name}{suffix}"


def error_of(text: str, format: str = "cnn") -> CnnspecError:
    """The error `text` raises; fails the test if it loads cleanly."""
    with pytest.raises(CnnspecError) as info:
        cnnspec.load(text, format=format)
    return info.value


def net(body: str, input: str = "1x28x28", blocks: str = "") -> str:
    """A one-stage network around `body` (for tests of single features)."""
    return f"{blocks}\nnetwork T(input={input}, classes=10):\n    s: {body}\n"


# One spec using every construct: user blocks calling blocks, defaults, repeats, shape
# names, add with projection, named branches, nested combinators, dense, heads, a recipe.
EVERY_CONSTRUCT = """
block unit(c, k=3):
    conv(c, k=k, p=k // 2) batchnorm relu
block pair(c, k=3):
    unit(c, k) unit(c * 2, k=k)
block mix(c, growth=4):
    add:
        concat:
            conv(c, k=1)
            conv(c, k=3, p=1)
        main:
            conv(C, k=1) relu conv(c * 2, k=1)
    dense:
        (batchnorm relu conv(growth, k=3, p=1)) * 2
        identity
block proj(c):
    add(project=true):
        conv(c, k=3, p=1)
block stack(n, c):
    (conv(c, k=3, p=1) relu) * n
    residual(c, s=2) vgg_block(n, c)
network Mixed(input=3x32x32, classes=5):
    a: pair(8) mix(4) mix(C // 2, growth=2)
    b: stack(2, 16) stack(1, 8) proj(C) transition(C // 2) dense_block(2, 3)
    out:
        heads:
            first: gap flatten linear(classes)
            gap flatten linear(2)
train(optimizer=adamw, lr=0.003, epochs=2, batch=32, weight_decay=0.05)
"""


# --- a small dataset in Fashion-MNIST's own file format --------------------------------------


def write_idx(path: Path, array: torch.Tensor) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.dim()) + struct.pack(
        f">{array.dim()}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.numpy().tobytes())


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class shows as a bright bar at a class-dependent row: learnable."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 230
    return images, labels.to(torch.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fashion")
    for split, n, seed in (("train", 640, 0), ("t10k", 160, 1)):
        images, labels = synthetic(n, seed)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


# --- generated code -----------------------------------------------------------------


def load_module(path: Path, name: str = "generated_net"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_from_source(source: str, tmp_path: Path, name: str = "snippet"):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return load_module(path, name)


def assert_equivalent(spec: cnnspec.Spec, generated_cls) -> None:
    """Generated code is the live build: the same state_dict keys, the recipe's init, the
    same outputs with the same weights."""
    torch.manual_seed(0)
    live = spec.build().eval()
    torch.manual_seed(0)
    ours = generated_cls().eval()
    live_state, gen_state = live.state_dict(), ours.state_dict()
    assert list(gen_state) == list(live_state)
    assert {k: v.shape for k, v in gen_state.items()} == {k: v.shape for k, v in live_state.items()}
    # With the recipe's xavier init, every initial value is drawn again in module order, so
    # from one seed the two start equal, biases included, whatever order they were made in.
    if spec.recipe.init == "xavier":
        for key, value in live_state.items():
            assert torch.equal(gen_state[key], value), f"{key} is initialised differently"
    live = spec.build(init="default").eval()  # other weights, to check the forward with
    live_state = live.state_dict()
    ours.load_state_dict(live_state)
    assert_constructor_parameters(spec, generated_cls)
    x = torch.randn(2, *spec.input_shape)
    with torch.no_grad():
        expected, got = live(x), ours(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def assert_constructor_parameters(spec: cnnspec.Spec, generated_cls) -> None:
    """Each parameter the network class takes (in_channels, num_classes) builds what the
    spec gives for that value, over a range: the smallest values (where max(C, 4) or C // 2
    part from a straight line), values beyond those codegen checks, and one far out (where
    min(C, 64) bends)."""
    for name, param in inspect.signature(generated_cls).parameters.items():
        for moved in sorted({1, 2, 4, param.default + 3, 2 * param.default + 7, 100}):
            _assert_parameter_at(spec, generated_cls, name, moved)


def _assert_parameter_at(spec: cnnspec.Spec, generated_cls, name: str, moved: int) -> None:
    try:
        if name in ("in_channels", "in_features"):
            variant = spec.with_input((moved, *spec.input_shape[1:]))
        else:
            assert name == "num_classes", name
            variant = spec.with_classes(moved)
    except CnnspecError:
        return  # the spec itself refuses this value
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        ours, live = generated_cls(**{name: moved}), variant.build()
        ours_shapes = [tuple(v.shape) for v in ours.state_dict().values()]
        live_shapes = [tuple(v.shape) for v in live.state_dict().values()]
        assert ours_shapes == live_shapes, f"{name}={moved}"
        out = ours.eval()(torch.empty(1, *variant.input_shape))
    outs = out if isinstance(out, tuple) else (out,)
    inferred = variant.output_shape if isinstance(out, tuple) else (variant.output_shape,)
    assert [tuple(o.shape[1:]) for o in outs] == [tuple(s) for s in inferred], f"{name}={moved}"


def check_all_backends(
    text: str, tmp_path, name: str, cls: str | None = None, format: str = "cnn"
) -> cnnspec.Spec:
    """Inference, the live build and generated code agree on `text`. `cls` names the
    network's class in generated code; by default, the last class the code defines."""
    spec = cnnspec.load(text, format=format)
    live = spec.build(init="default").eval()
    with torch.no_grad():
        out = live(torch.randn(2, *spec.input_shape))
    outs = out if isinstance(out, tuple) else (out,)
    inferred = spec.output_shape if isinstance(out, tuple) else (spec.output_shape,)
    assert [tuple(o.shape[1:]) for o in outs] == [tuple(s) for s in inferred]
    source = spec.codegen()
    if cls is None:
        cls = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)][-1]
    assert_equivalent(spec, getattr(module_from_source(source, tmp_path, name), cls))
    assert_defines_only_what_it_uses(source)
    return spec


def assert_defines_only_what_it_uses(source: str) -> None:
    """Every runtime definition copied into generated code is used by the code after it."""
    tree = ast.parse(source)
    defined = [
        node
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.Assign))
        and _name(node) in runtime_names()
    ]
    for node in defined:
        others = [n for n in tree.body if n is not node]
        used = {n.id for other in others for n in ast.walk(other) if isinstance(n, ast.Name)}
        assert _name(node) in used, f"generated code defines {_name(node)} but never uses it"


def _name(node) -> str:
    return node.targets[0].id if isinstance(node, ast.Assign) else node.name

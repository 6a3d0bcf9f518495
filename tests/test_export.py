"""`cnnspec export --onnx`: onnxruntime computes what the live build computes."""

from __future__ import annotations

import pytest
import torch
from conftest import SPEC_NAMES, spec_path

import cnnspec
from cnnspec.cli import main

ort = pytest.importorskip("onnxruntime")

# The seeds' AlexNet and VGG-11 hold 47M and 129M parameters at 224 px (a 0.5 GB file):
# exported at a size their classifiers take, the same code path costs a tenth.
SMALLER = {"alexnet": (1, 96, 96), "vgg11": (1, 64, 64)}


def outputs(session, x: torch.Tensor) -> list:
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_onnxruntime_equals_the_live_build(name, tmp_path, capsys):
    spec = cnnspec.load(spec_path(name))
    if name in SMALLER:
        spec = spec.with_input(SMALLER[name])
        source = tmp_path / f"{name}.yaml"
        from cnnspec.backends.emit_yaml import to_yaml

        source.write_text(to_yaml(spec.ir))
    else:
        source = spec_path(name)
    target = tmp_path / f"{name}.onnx"
    torch.manual_seed(0)
    assert main(["export", str(source), "--onnx", str(target)]) == 0
    torch.manual_seed(0)
    live = spec.build().eval()  # the same seed: the weights the export saw
    session = ort.InferenceSession(str(target))
    declared = [port.shape[0] for port in (*session.get_inputs(), *session.get_outputs())]
    assert all(isinstance(dim, str) for dim in declared), declared  # named, so not fixed
    for batch in (1, 3):  # the batch dimension stays free
        x = torch.randn(batch, *spec.input_shape)
        with torch.no_grad():
            expected = live(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = outputs(session, x)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            torch.testing.assert_close(torch.from_numpy(a), b, rtol=1e-4, atol=1e-5)


PYRAMID = """
network Pyramid(input=3x32x32, classes=10):
    c2: conv(8, k=3, s=2, p=1) relu
    c3: conv(8, k=3, s=2, p=1) relu
    up: c3 upsample(like=c2)
    p2: add(c2, up) conv(8, k=3, p=1)
    outputs: p2, c3
"""


@pytest.mark.parametrize(
    "source, names",
    [
        (PYRAMID, ["p2", "c3"]),
        (PYRAMID.replace("    outputs: p2, c3\n", ""), ["output"]),  # a graph, none declared
        ("lenet", ["output"]),
        ("svhn_multihead", [f"output_{i}" for i in range(6)]),
    ],
)
def test_the_files_outputs_are_named_as_the_spec_names_them(source, names, tmp_path, capsys):
    if source.startswith("\nnetwork"):
        path = tmp_path / "pyramid.cnn"
        path.write_text(source)
    else:
        path = spec_path(source)
    target = tmp_path / "net.onnx"
    assert main(["export", str(path), "--onnx", str(target)]) == 0
    session = ort.InferenceSession(str(target))
    assert [port.name for port in session.get_outputs()] == names
    assert [port.name for port in session.get_inputs()] == ["input"]
    ports = (*session.get_inputs(), *session.get_outputs())
    assert [port.shape[0] for port in ports] == ["batch"] * len(ports)  # one free batch


@pytest.mark.slow
def test_what_the_tracer_cannot_export_goes_through_torch_export(tmp_path, monkeypatch):
    """The slower torch.export path, taken when tracing fails, writes the same network."""
    import cnnspec.backends.export as export

    def refuse(*args):
        raise torch.onnx.errors.UnsupportedOperatorError("aten::x", 20, 20)

    monkeypatch.setattr(export, "_traced", refuse)
    spec = cnnspec.load(spec_path("svhn_multihead"))
    net = spec.build().eval()
    names = export.output_names(spec.graph, ())
    export.to_onnx(net, spec.input_shape, tmp_path / "net.onnx", names)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    assert [port.name for port in session.get_outputs()] == [f"output_{i}" for i in range(6)]
    x = torch.randn(3, *spec.input_shape)
    with torch.no_grad():
        expected = net(x)
    for a, b in zip(outputs(session, x), expected, strict=True):
        torch.testing.assert_close(torch.from_numpy(a), b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("used", [False, True])
def test_what_onnx_runtimes_refuse_to_run_is_refused_before_a_byte(used, tmp_path, capsys):
    """torch takes an output padding as large as the stride beside a larger dilation;
    onnxruntime refuses to run that node, so export refuses it, at its place (in a used
    file too), and writes nothing."""
    layer = "conv_transpose(4, k=3, s=1, p=1, d=2, output_padding=1)"
    spec = tmp_path / "net.cnn"
    if used:
        (tmp_path / "blocks.cnn").write_text(f"block up(c):\n    {layer}\n")
        spec.write_text('use "blocks.cnn"\nnetwork T(input=1x8x8):\n    s: up(4)\n')
        place = f"{tmp_path / 'blocks.cnn'}:2:5"
    else:
        spec.write_text(f"network T(input=1x8x8):\n    s: {layer}\n")
        place = f"{spec}:2:8"
    target = tmp_path / "net.onnx"
    assert main(["export", str(spec), "--onnx", str(target)]) == 1
    err = capsys.readouterr().err
    message = "conv_transpose (s) has output_padding 1 not below its stride 1"
    assert err.startswith(f"{place}: {message}")
    assert not target.exists()

"""The table of specs/zoo/README.md: each spec against the torchvision model it writes.

Parameters are counted twice, by cnnspec's inference (no torch) and on torchvision's built
model. Outputs are compared as tests/test_zoo.py compares them: torchvision's model in eval
mode with batch-norm statistics drawn at random, its tensors copied into the compiled spec
by position, both run on the same batch of two 3x64x64 images; the column gives the
largest absolute difference of the logits. Lines are code lines, blank lines, comments and
docstrings left out, of the spec and of the torchvision source file its builder lives in.
MACs are cnnspec's, at 224x224.

    python benchmarks/zoo_table.py > /tmp/table.md
"""

import ast
import importlib
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
import torchvision  # noqa: E402
from zoo_models import MODELS  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.transfer import load_by_position  # noqa: E402

SKIPPED_TOKENS = {
    tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
    tokenize.ENDMARKER,
}  # fmt: skip


def spec_lines(path: Path) -> int:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return sum(1 for line in lines if line and not line.startswith("#"))


def docstring_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def python_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    skip = docstring_lines(ast.parse(source))
    code = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIPPED_TOKENS:
            code.update(range(token.start[0], token.end[0] + 1))
    return len(code - skip)


def randomised(net: torch.nn.Module) -> torch.nn.Module:
    """Normalisation that is not the identity it is after init, and layer scales near 1
    rather than ConvNeXt's initial 1e-6 (as tests/test_zoo.py draws them)."""
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
    return net.eval()


def outputs_equal(spec: cnnspec.Spec, reference: torch.nn.Module, size: int) -> str:
    """'yes' and the largest difference if the outputs agree to 1e-4, else 'no' and why."""
    ours = spec.with_input((3, size, size)).build(init="default").eval()
    mine, theirs = ours.state_dict(), reference.state_dict()
    if [v.shape for v in mine.values()] != [v.shape for v in theirs.values()]:
        return "no (state_dict shapes differ)"
    load_by_position(ours, theirs, "torchvision")
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - reference(x)).abs().max().item()
    return f"yes ({diff:.1g})" if diff <= 1e-4 else f"no ({diff:.1g})"


def main() -> None:
    print("| model | params (cnnspec = torchvision) | outputs equal (max diff) | spec lines "
          "| torchvision source lines | MACs at 224 |")  # fmt: skip
    print("|---|---:|---|---:|---|---:|")
    for name, model in MODELS.items():
        spec = cnnspec.load(model.path)
        torch.manual_seed(0)
        reference = randomised(model.torchvision())
        theirs = sum(p.numel() for p in reference.parameters())
        params = f"{spec.params:,} = {theirs:,}" if spec.params == theirs else (
            f"{spec.params:,} != {theirs:,}")  # fmt: skip
        module = importlib.import_module(getattr(torchvision.models, name).__module__)
        source_file = Path(module.__file__).name
        tv_lines = python_lines(Path(module.__file__).read_text())
        print(
            f"| {name} | {params} | {outputs_equal(spec, reference, model.size)} "
            f"| {spec_lines(model.path)} | {tv_lines} ({source_file}) "
            f"| {spec.macs / 1e9:.2f} G |"
        )


if __name__ == "__main__":
    main()

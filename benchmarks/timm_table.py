"""The table of specs/timm/README.md: each spec against the timm model it writes.

Parameters and MACs (at the declared 224x224) are cnnspec's, from inference, without torch;
timm's parameters are counted on its built model. Outputs are compared as
tests/test_timm_zoo.py compares them: timm's model in eval mode with batch-norm statistics
and affine parameters drawn at random, its tensors copied into the compiled spec by
position, both run on the same batch of two images at the test's size; the column gives
the largest absolute difference of the logits. Lines are the spec's code lines (blank
lines and comments left out). tests/test_timm_zoo.py checks the parameters and MACs of
the table against cnnspec's.

    python benchmarks/timm_table.py > /tmp/table.md
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import timm  # noqa: E402
import torch  # noqa: E402
from test_timm_zoo import MODELS, TimmModel  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.transfer import load_by_position  # noqa: E402


def spec_lines(path: Path) -> int:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return sum(1 for line in lines if line and not line.startswith("#"))


def randomised(net: torch.nn.Module) -> torch.nn.Module:
    """Normalisation that is not the identity it is after init (as the test draws it)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return net.eval()


def outputs_equal(spec: cnnspec.Spec, reference: torch.nn.Module, model: TimmModel) -> str:
    """'yes' and the largest difference if the outputs agree to 1e-4, else 'no' and why."""
    ours = spec.with_input((3, model.size, model.size)).build(init="default").eval()
    mine, theirs = ours.state_dict(), reference.state_dict()
    if [v.shape for v in mine.values()] != [v.shape for v in theirs.values()]:
        return "no (state_dict shapes differ)"
    load_by_position(ours, theirs, "timm")
    x = torch.randn(2, 3, model.size, model.size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - reference(x)).abs().max().item()
    verdict = "yes" if diff <= 1e-4 else "no"
    return f"{verdict} ({diff:.1g} at {model.size}x{model.size})"


def main() -> None:
    print(
        "| spec | params | MACs at 224x224 | timm's params | outputs equal (max diff) "
        "| spec lines |"
    )
    print("|---|---:|---:|---:|---|---:|")
    for name, model in MODELS.items():
        spec = cnnspec.load(model.path)
        torch.manual_seed(0)
        reference = randomised(timm.create_model(name, pretrained=False))
        theirs = sum(p.numel() for p in reference.parameters())
        print(
            f"| {name} | {spec.params:,} | {spec.macs / 1e9:.2f} G | {theirs:,} "
            f"| {outputs_equal(spec, reference, model)} | {spec_lines(model.path)} |"
        )


if __name__ == "__main__":
    main()

"""The network class's `forward`, written from the typed graph's steps.

A network of stages in sequence reads `x = self.stage(x)` line by line. A network whose
stages read named tensors reads as torchvision's dense-prediction models do: each stage's
output is a local named after it (the input is `x`), a join is written out (`torch.cat`,
`+`, `*`), a layer that reads another tensor gets it as an argument, and the network
returns the tensors it names. Each statement ends with the shape it gives.
"""

from __future__ import annotations

from ...analysis.graph import Graph, Output, Step
from ...language.ir import INPUT
from .pyformat import BODY_INDENT, WIDTH, Call, List, lines, sum_lines


def batch_shape(shape: Output) -> str:
    """`N x 64 x 24 x 24`, or one such per output."""
    if shape and isinstance(shape[0], tuple):
        return "(" + ", ".join(batch_shape(s) for s in shape) + ")"
    return "N x " + " x ".join(str(d) for d in shape)


def forward_lines(graph: Graph) -> list[str]:
    """The body of `forward(self, x)`, its return included."""
    pad = " " * BODY_INDENT
    out = [f"{pad}# {batch_shape(graph.input_shape)}"]
    if not graph.reads_tensors:
        for name, node in graph.root.children:
            out.extend(_commented([f"{pad}x = self.{name}(x)"], node.out_shape))
        return [*out, f"{pad}return x"]
    local = local_names(graph)
    for step in graph.steps():
        out.extend(_step(step, local))
    returned = ", ".join(local[name] for name in graph.returns)
    return [*out, f"{pad}return {returned}"]


def local_names(graph: Graph) -> dict[str, str]:
    """Each tensor's local variable: the input is `x`, a stage its own name (`x_` for a
    stage called x)."""
    names = {INPUT: "x"}
    for name, _ in graph.root.children:
        names[name] = name + "_" if name == "x" else name
    return names


def _step(step: Step, local: dict[str, str]) -> list[str]:
    target = local[step.name]
    sources = [local[name] for name in step.sources]
    node = step.node
    if node.kind == "seq" and not node.children:  # the stage is its join (or a new name)
        return _commented(_assign(target, step.join, sources), node.out_shape)
    statements: list[str] = []
    value = sources[0]
    if step.join is not None:  # joined into the stage's own name first, then run on
        statements.extend(_assign(target, step.join, sources))
        value = target
    module = f"self.{step.name}"
    if not step.readers:
        statements.extend(lines(Call(module, (value,)), BODY_INDENT, f"{target} = "))
    elif step.readers[0][0] == -1:
        reads = tuple(local[n] for n in step.readers[0][1])
        statements.extend(lines(Call(module, (value, *reads)), BODY_INDENT, f"{target} = "))
    else:
        reads = dict(step.readers)
        count, start = len(node.children), 0
        for i in [*sorted(reads), count]:
            if i > start:  # the layers between readers, as a slice of the stage
                part = f"{module}[{start}]" if i == start + 1 else f"{module}[{start}:{i}]"
                statements.extend(lines(Call(part, (value,)), BODY_INDENT, f"{target} = "))
                value = target
            if i < count:
                args = (value, *(local[n] for n in reads[i]))
                statements.extend(lines(Call(f"{module}[{i}]", args), BODY_INDENT, f"{target} = "))
                value, start = target, i + 1
    return _commented(statements, node.out_shape)


def _assign(target: str, join: str | None, sources: list[str]) -> list[str]:
    if join is None:
        return [f"{' ' * BODY_INDENT}{target} = {sources[0]}"]
    if join == "concat":
        call = Call("torch.cat", (List(tuple(sources)), ("dim", "1")))
        return lines(call, BODY_INDENT, f"{target} = ")
    return sum_lines(target, f" {'+' if join == 'add' else '*'} ".join(sources), BODY_INDENT)


def _commented(statements: list[str], shape: Output) -> list[str]:
    """The statements with the shape they give after the last, or above the first where
    it would not fit."""
    comment = f"  # {batch_shape(shape)}"
    if len(statements[-1]) + len(comment) <= WIDTH:
        return [*statements[:-1], statements[-1] + comment]
    return [f"{' ' * BODY_INDENT}# {batch_shape(shape)}", *statements]

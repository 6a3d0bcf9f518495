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
from .names import MODULE_NAMES
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
    local = local_names(name for name, _ in graph.root.children)
    for step in graph.steps():
        out.extend(_step(step, local))
    returned = ", ".join(local[name] for name in graph.returns)
    return [*out, f"{pad}return {returned}"]


def local_names(names) -> dict[str, str]:
    """Each tensor's local variable: the input is `x`, a stage or line its own name, with
    a trailing underscore where it would be `x` or hide a name the module uses (`sum_`,
    `torch_`)."""
    local = {INPUT: "x"}
    for name in names:
        local[name] = name + "_" if name == "x" or name in MODULE_NAMES else name
    return local


def _step(step: Step, local: dict[str, str]) -> list[str]:
    node = step.node
    count = 0 if node.kind == "seq" and not node.children else len(node.children) or 1
    statements = line_statements(
        local[step.name], f"self.{step.name}", step, count, local, BODY_INDENT
    )
    return _commented(statements, node.out_shape)


def line_statements(target, module, step, count: int, local, indent: int) -> list[str]:
    """`target = ...` for one line of a graph: its sources joined, then its module run
    (`count` layers, 0 when it holds none), its reading layers given their tensors."""
    sources = [local[name] for name in step.sources]
    if count == 0:  # the line is its join (or a new name)
        return _assign(target, step.join, sources, indent)
    statements: list[str] = []
    value = sources[0]
    if step.join is not None:  # joined into the line's own name first, then run on
        statements.extend(_assign(target, step.join, sources, indent))
        value = target

    def call(part: str, *args: str) -> None:
        statements.extend(lines(Call(part, args), indent, f"{target} = "))

    if not step.readers:
        call(module, value)
    elif step.readers[0][0] == -1:
        call(module, value, *(local[n] for n in step.readers[0][1]))
    else:
        reads, start = dict(step.readers), 0
        for i in [*sorted(reads), count]:
            if i > start:  # the layers between readers, as a slice of the line
                call(f"{module}[{start}]" if i == start + 1 else f"{module}[{start}:{i}]", value)
                value = target
            if i < count:
                call(f"{module}[{i}]", value, *(local[n] for n in reads[i]))
                value, start = target, i + 1
    return statements


def _assign(target: str, join: str | None, sources: list[str], indent: int) -> list[str]:
    if join is None:
        return [f"{' ' * indent}{target} = {sources[0]}"]
    if join == "concat":
        call = Call("torch.cat", (List(tuple(sources)), ("dim", "1")))
        return lines(call, indent, f"{target} = ")
    return sum_lines(target, f" {'+' if join == 'add' else '*'} ".join(sources), indent)


def _commented(statements: list[str], shape: Output) -> list[str]:
    """The statements with the shape they give after the last, or above the first where
    it would not fit."""
    comment = f"  # {batch_shape(shape)}"
    if len(statements[-1]) + len(comment) <= WIDTH:
        return [*statements[:-1], statements[-1] + comment]
    return [f"{' ' * BODY_INDENT}# {batch_shape(shape)}", *statements]

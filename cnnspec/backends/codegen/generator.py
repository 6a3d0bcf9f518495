"""Code generation: a spec -> one readable, standalone PyTorch module (needs torch only).

The network class is written here from the typed graph, with the sizes inference gave
(carrying their expressions of `in_channels` and `num_classes`: see `network_args.py`)
and a shape comment after each stage; each block it uses becomes a generic class
(`blocks.py`). Each layer's constructor is its op's own `constructor` (in
`analysis/ops`), rendered by `values.py`; each combinator's is its class's `constructor`,
naming a runtime class whose source (and that of what it uses) is copied from
`runtime.py`.

Python computes every string; the templates in `templates/` only lay them out. Names reach
the source only after `resolve.py` has checked they are safe identifiers; everything else
goes through `repr()`.
"""

from __future__ import annotations

import json
import textwrap
from functools import cache, cached_property
from importlib.resources import files
from itertools import chain, islice
from pathlib import Path

import jinja2

from ...analysis.combinators import RULES
from ...analysis.graph import Graph, Node
from ...analysis.graph import steps as steps_of
from ...analysis.ops import LAYERS, ModuleCall, plain_module
from ...analysis.resolve import resolve
from ...language import ir, symbols
from ...language.expressions import OpRef
from ...limits import DEFAULT, Limits
from ...version import __version__
from ..runtime_source import runtime_names, runtime_source
from .blocks import BlockClass, BlockWriter, OtherWitness
from .forward import forward_lines
from .names import PythonNames
from .network_args import Written, parameters
from .pyformat import BODY_INDENT, Call, Dict, List, lines
from .values import CodegenError, collect, constructor, layer_constructor, py_value

__all__ = ["CodegenError", "generate"]

# The calls of a block its class is tried from, at most, before it is written in place.
_WITNESSES = 8


class _Generator:
    def __init__(self, doc: ir.Document, graph: Graph, limits: Limits = DEFAULT):
        self.graph = graph
        self.limits = limits  # the bounds the spec was checked within
        self.blocks = resolve(doc)  # every block the spec can call, in definition order
        self.used: list[str] = []  # blocks the network instantiates as classes
        self.runtime: set[str] = set()
        self.names = PythonNames(graph.name, self.blocks)
        # Each block's generic class, or None where it cannot be one; then each use of
        # the block is written out with concrete sizes instead (see `module`).
        self.classes: dict[str, BlockClass | None] = {}
        # The network parameters a residual written out in place chose its shortcut on.
        self.read: set[str] = set()

    @cached_property
    def calls(self) -> dict[str, list[Node]]:
        """Each block's calls in the network with distinct values, in forward order: the
        witnesses its class may be written from (found when a class first needs one)."""
        found: dict[str, dict[tuple[str, str], Node]] = {}
        for _, _, node in self.graph.walk():
            if node.block is not None:
                found.setdefault(node.block, {}).setdefault(_values(node), node)
        return {name: list(calls.values()) for name, calls in found.items()}

    def generic(self, name: str, witness: Node) -> BlockClass | None:
        """The block's class, written from its body walked with the values of `witness`
        (the node of its first call met), or of another call where an arm `witness`
        does not take fails with its values; None where it cannot be one."""
        if name not in self.classes:
            self.classes[name] = None  # until written: blocks cannot recurse
            others = (n for n in self.calls.get(name, ()) if _values(n) != _values(witness))
            for node in islice(chain([witness], others), _WITNESSES):
                try:
                    self.classes[name] = BlockWriter(self, self.blocks[name], node).write()
                except OtherWitness:
                    continue
                except CodegenError:
                    pass
                break
        return self.classes[name]

    def runtime_class(self, name: str) -> str:
        """`name`, noting that the module needs its definition from the runtime."""
        if name in runtime_names():
            self.runtime.add(name)
        return name

    def construct(self, call: ModuleCall) -> Call:
        """An op's module constructor as source, noting any runtime class it needs."""
        self.runtime_class(call.module)
        return constructor(call)

    def use_block(self, name: str) -> None:
        if name not in self.used:
            self.used.append(name)

    def module(self, node: Node):
        """The constructor expression for a node, with concrete sizes."""
        if node.is_layer:
            return self.construct(layer_constructor(node))
        generic = node.block is not None and self.generic(node.block, node) is not None
        if generic and self.passable(node):
            self.use_block(node.block)
            cls = self.names.class_of(node.block)
            return Call(cls, (py_value(node.in_shape[0]), *self.block_args(node)))
        children = [(name, self.module(child)) for name, child in node.children]
        # Made as its input's shape decides: a choice on the parameters its shapes carry,
        # unless they are one expression (a residual from C to C never projects).
        shaped = node.kind in RULES and RULES[node.kind].shaped_by_input(node)
        if shaped and repr(node.in_shape) != repr(node.out_shape):
            self.read |= symbols.names((node.in_shape, node.out_shape))
        if node.kind == "seq":
            return Call("nn.Sequential", tuple(expr for _, expr in children))
        if node.kind == "graph":  # a block of named lines, with its concrete sizes
            steps = {s.name: (s.sources, s.join, s.readers) for s in steps_of(node)}
            return Call(
                self.runtime_class("GraphNetwork"),
                (
                    json.dumps(node.label),
                    Dict(tuple((json.dumps(n), e) for n, e in children)),
                    Dict(tuple((json.dumps(n), py_value(v)) for n, v in steps.items())),
                    py_value(node.outputs),
                ),
            )
        # Numbered branches stay a list unless one was left out (its number stays free).
        collected = collect(children)
        owned = {name: self.module(layer) for name, layer in node.owned}
        options = {name: py_value(value) for name, value in node.options}
        channels = None if isinstance(node.out_shape[0], tuple) else py_value(node.out_shape[0])
        return self.construct(RULES[node.kind].constructor(collected, owned, options, channels))

    def passable(self, node: Node) -> bool:
        """Whether the block's arguments can be passed to its class: layers as classes,
        and no explicit none where the class reads None as "compute the default" (a
        default written as an expression of other parameters or C)."""
        ops = [v.op for _, v in node.args if isinstance(v, OpRef)]
        if not all(plain_module(LAYERS[op]) is not None for op in ops):
            return False
        defaults = {p.name: p.default for p in self.blocks[node.block].params}
        return not any(value is None and _computed(defaults[name]) for name, value in node.args)

    def arg_value(self, value) -> str:
        if isinstance(value, OpRef):
            return self.runtime_class(plain_module(LAYERS[value.op]))
        return py_value(value)

    def block_args(self, node: Node) -> list:
        """The block's arguments: required ones by position, the others by keyword
        (as torchvision writes `stride=2`), leaving out those equal to a literal default."""
        params = {p.name: p for p in self.blocks[node.block].params}
        python = self.names.params_of(node.block)
        args: list = []
        for name, value in node.args:
            default = params[name].default
            if default is None:
                args.append(self.arg_value(value))
            elif not _is_default(default, value):
                args.append((python[name], self.arg_value(value)))
        return args

    def written(self) -> Written:
        """Each stage's constructor expression, with the sizes of the graph's nodes."""
        stages = [(name, self.module(node)) for name, node in self.graph.root.children]
        return Written(stages, frozenset(self.read), tuple(self.used), frozenset(self.runtime))

    def written_for(self, moved: ir.Document, graph: Graph) -> Written:
        """The stages for the spec with its input or classes set otherwise, symbolic or
        not (and inferred so). Its blocks are this spec's, so their generic classes
        (written from the text alone) are shared."""
        other = _Generator(moved, graph)
        other.classes = self.classes
        return other.written()

    def network(self, doc: ir.Document) -> dict:
        graph = self.graph
        written, candidates = parameters(doc, graph, self.written_for, self.limits)
        params = [p for p in candidates if p.fixed is None]
        stages, self.used = written.stages, list(written.blocks)
        self.runtime |= written.runtime
        pad = " " * BODY_INDENT
        init = []
        for (name, tree), (_, node) in zip(stages, graph.root.children):
            if node.kind == "seq" and not node.children and graph.reads_tensors:
                continue  # a stage that only joins or names tensors holds no module
            init.extend(lines(tree, BODY_INDENT, f"self.{name} = "))
        if graph.recipe.init == "xavier":  # as `cnnspec.compile` initialises it
            init.append(f"{pad}{self.runtime_class('init_xavier')}(self)")
        heads = isinstance(graph.output_shape[0], tuple)
        return {
            "name": self.names.network,
            "doc": _docstring(graph, [p for p in candidates if p.fixed is not None]),
            "params": "".join(f", {p.name}: int = {p.default}" for p in params),
            "init": init,
            "forward": forward_lines(graph),
            "returns": "tuple[torch.Tensor, ...]" if heads else "torch.Tensor",
        }

    def block_classes(self) -> list[dict]:
        """The classes the network uses, with the classes they use, callees first."""
        needed, pending = set(), list(self.used)
        while pending:
            name = pending.pop()
            if name not in needed:
                needed.add(name)
                pending.extend(self.classes[name].calls)
        self.runtime |= {r for name in needed for r in self.classes[name].runtime}
        order = list(self.blocks)  # definition order: callees come before callers
        return [self.classes[n].template for n in sorted(needed, key=order.index)]


def _docstring(graph: Graph, fixed: list) -> str:
    """The network class's docstring: its shapes, and why it takes no parameter it leaves
    out (a bare TypeError would not say)."""
    head = f"{graph.name}: input N x {_shape(graph.input_shape)}, {graph.params:,} parameters."
    if not fixed:
        return head
    notes = " ".join(f"It takes no {p.name} ({p.default} here): {p.fixed}." for p in fixed)
    body = textwrap.wrap(notes, 84)
    return head + "\n\n" + "".join(f"    {line}\n" for line in body) + "    "


def _values(call: Node) -> tuple[str, str]:
    """What a call of a block walks its body with: its input's shape and its arguments."""
    return repr(call.in_shape), repr(call.args)


def _computed(default: ir.Node | None) -> bool:
    """A default the block class fills in when given None: not a literal, nor a layer."""
    return default is not None and not isinstance(default, (ir.Num, ir.Const, ir.Name))


def _is_default(default: ir.Node, value) -> bool:
    """Whether `value` is what a literal default gives (`1`, `none`, `relu`)."""
    if symbols.symbolic(value):
        return False  # equal to the default here, not for every value of the parameter
    if isinstance(default, ir.Name):
        return value == OpRef(default.id)
    return isinstance(default, (ir.Num, ir.Const)) and default.value == value


def _shape(shape) -> str:
    return " x ".join(str(d) for d in shape)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML: every value is made safe before here
    )


def generate(doc: ir.Document, graph: Graph, source_name: str, limits: Limits = DEFAULT) -> str:
    """The spec (its IR and inferred graph, within `limits`) as Python source;
    `source_name` is the spec's path, for the header."""
    gen = _Generator(doc, graph, limits)
    network = gen.network(doc)
    blocks = gen.block_classes()
    runtime = runtime_source(gen.runtime)
    names = sorted([network["name"], *(b["name"] for b in blocks)])  # as ruff's RUF022 wants
    env = _environment()
    return env.get_template("module.py.j2").render(
        header=[
            f"# Generated by cnnspec {__version__} from {Path(source_name).as_posix()!r}.",
            "# Edit the spec and regenerate rather than editing this file.",
        ],
        doc=f"{graph.name} as plain PyTorch (needs torch only).",
        all_lines=lines(List(tuple(json.dumps(n) for n in names)), 0, "__all__ = "),
        runtime=list(runtime.values()),
        math=any("math." in source for source in runtime.values()),
        blocks=[env.get_template("block.py.j2").render(**b).rstrip("\n") for b in blocks],
        network=env.get_template("network.py.j2").render(**network).rstrip("\n"),
    )

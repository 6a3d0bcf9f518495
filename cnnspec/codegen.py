"""Code generation: a spec -> one readable, standalone PyTorch module (needs torch only).

The network class is written from the typed graph, with concrete sizes and a shape comment
after each stage. Each block the network uses becomes a class whose constructor takes the
input channels and the block's parameters, written from the block's definition the way
d2l writes its own (`Inception(in_channels, c1, c2, c3, c4)`): channel counts are carried
as Python expressions, and through a variable where a repeat changes them.

Python computes every string; the templates in `templates/` only lay them out. Names reach
the source only after `resolve.py` has checked they are safe identifiers; everything else
goes through `repr()`.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path

import jinja2

from . import __version__, ir
from .errors import SpecError
from .evaluate import PYTHON_CONSTANTS, unparse
from .graph import Node
from .infer import dense_unit, match_arguments, required_arguments
from .layers import LAYERS
from .pyformat import Call, Dict, List, lines
from .resolve import MODULE_ATTRIBUTES
from .spec import Spec, prelude

RUNTIME_CLASSES = ("Concat", "Add", "Dense", "Heads", "Reshape")
COMBINATOR_CLASSES = {"concat": "Concat", "add": "Add", "dense": "Dense", "heads": "Heads"}


class CodegenError(SpecError):
    """The spec is valid, but a block uses something a generic block class cannot express."""


# --- layers, per op: given arguments as source text -> the torch constructor -------------


def _kw(args: dict[str, str], **names: str) -> tuple:
    return tuple((torch_name, args[ours]) for ours, torch_name in names.items() if ours in args)


def _pool(cls: str):
    def make(a, channels, image):
        names = {"s": "stride", "p": "padding", "ceil_mode": "ceil_mode"}
        if cls == "nn.AvgPool2d":
            names["count_include_pad"] = "count_include_pad"
        return Call(cls, (a["k"], *_kw(a, **names)))

    return make


def _plain(cls: str):
    return lambda a, channels, image: Call(cls)


LAYER_CODE = {
    "conv": lambda a, channels, image: Call("nn.Conv2d", (
        channels, a["out"], ("kernel_size", a["k"]),
        *_kw(a, s="stride", p="padding", d="dilation", groups="groups", bias="bias"),
    )),
    "maxpool": _pool("nn.MaxPool2d"),
    "avgpool": _pool("nn.AvgPool2d"),
    "adaptive_avgpool": lambda a, channels, image: Call("nn.AdaptiveAvgPool2d", (a["size"],)),
    "adaptive_maxpool": lambda a, channels, image: Call("nn.AdaptiveMaxPool2d", (a["size"],)),
    "gap": lambda a, channels, image: Call("nn.AdaptiveAvgPool2d", ("(1, 1)",)),
    "flatten": _plain("nn.Flatten"),
    "reshape": lambda a, channels, image: Call("Reshape", (a["shape"],)),
    "linear": lambda a, channels, image: Call(
        "nn.Linear", (channels, a["out"], *_kw(a, bias="bias"))),
    "dropout": lambda a, channels, image: Call("nn.Dropout", (a["p"],) if "p" in a else ()),
    "batchnorm": lambda a, channels, image: Call(
        "nn.BatchNorm2d" if image else "nn.BatchNorm1d",
        (channels, *_kw(a, eps="eps", momentum="momentum"))),
    "identity": _plain("nn.Identity"),
    "relu": _plain("nn.ReLU"),
    "relu6": _plain("nn.ReLU6"),
    "leaky_relu": lambda a, channels, image: Call("nn.LeakyReLU", _kw(a, slope="negative_slope")),
    "sigmoid": _plain("nn.Sigmoid"),
    "tanh": _plain("nn.Tanh"),
    "gelu": _plain("nn.GELU"),
    "silu": _plain("nn.SiLU"),
}  # fmt: skip

_WINDOWS = ("conv", "maxpool", "avgpool")


def py_value(value) -> str:
    """A Python literal for an evaluated argument."""
    if isinstance(value, bool) or value is None:
        return PYTHON_CONSTANTS[value]
    if isinstance(value, tuple):
        inner = ", ".join(py_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def class_name(block: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in block.split("_") if part)


def _collect(branches: list[tuple[str | None, object]]):
    """Branches as a list (numbered) or, when any is named, a dict literal."""
    if all(name is None or name == str(i) for i, (name, _) in enumerate(branches)):
        return List(tuple(expr for _, expr in branches))
    return Dict(tuple((json.dumps(name if name is not None else str(i)), expr)
                      for i, (name, expr) in enumerate(branches)))  # fmt: skip


# --- generic block classes --------------------------------------------------------------


@dataclass
class _State:
    channels: str  # source text of the current channel count
    image: bool = True
    strides: list[str] = field(default_factory=list)  # window strides along this path
    same: bool = True  # every window keeps the size at stride 1 (needed for projections)


class _BlockWriter:
    """Writes one block's class from its definition."""

    def __init__(self, gen: _Generator, block: ir.BlockDef):
        self.gen = gen
        self.block = block
        self.params = {p.name for p in block.params}
        self.body: list[str] = []  # lines of __init__, relative indentation
        self.depth = 0
        self.counter: dict[str, int] = {}

    def fail(self, what: str, pos) -> CodegenError:
        return CodegenError(f"block '{self.block.name}': {what} in a block class", pos)

    def line(self, text: str) -> None:
        self.body.append("    " * self.depth + text)

    def assign(self, target: str, expr, op: str = "=") -> None:
        self.body.extend("    " * self.depth + ln for ln in _layout(expr, 0, f"{target} {op} "))

    def statement(self, expr) -> None:
        self.body.extend("    " * self.depth + ln for ln in _layout(expr))

    def fresh(self, stem: str) -> str:
        self.counter[stem] = self.counter.get(stem, 0) + 1
        n = self.counter[stem]
        return stem if n == 1 else f"{stem}{n}"

    def py(self, expr: ir.Node, state: _State) -> str:
        def name(identifier: str) -> str:
            if identifier in self.params:
                return identifier
            if identifier == "C":
                return f"({state.channels})" if " " in state.channels else state.channels
            raise self.fail(f"the name '{identifier}' (only parameters and C can be used)",
                            expr.pos)  # fmt: skip

        return unparse(expr, name, PYTHON_CONSTANTS)

    # items -> module expressions ("*name" splices a list built by statements)
    def items(self, items, state: _State) -> tuple[list, _State]:
        out: list = []
        for item in items:
            exprs, state = self.item(item, state)
            out.extend(exprs)
        return out, state

    def sequence(self, items, state: _State) -> tuple[object, _State]:
        exprs, state = self.items(items, state)
        if len(items) == 1 and not isinstance(items[0], ir.Repeat):
            return exprs[0], state
        return Call("nn.Sequential", tuple(exprs)), state

    def item(self, item, state: _State) -> tuple[list, _State]:
        if isinstance(item, ir.Repeat):
            return self.repeat(item, state)
        if isinstance(item, ir.Combinator):
            cls, args, state = self.combinator(item, state)
            return [Call(cls, args)], state
        if item.op in LAYERS:
            return [self.layer(item, state)], self.after_layer(item, state)
        return self.block_call(item, state)

    def layer(self, call: ir.Call, state: _State):
        model = LAYERS[call.op]
        exprs = match_arguments(call, model.signature(), required_arguments(model))
        if call.op in ("flatten", "reshape"):
            raise self.fail(f"'{call.op}' (it needs the height and width)", call.pos)
        args = {name: self.py(e, state) for name, e in exprs.items() if name != "in_features"}
        return LAYER_CODE[call.op](args, state.channels, state.image)

    def after_layer(self, call: ir.Call, state: _State) -> _State:
        model = LAYERS[call.op]
        exprs = match_arguments(call, model.signature(), required_arguments(model))
        channels = self.py(exprs["out"], state) if call.op in ("conv", "linear") else state.channels
        strides, same = list(state.strides), state.same
        if call.op in _WINDOWS:
            stride = exprs.get("s") or (exprs["k"] if call.op != "conv" else None)
            if stride is not None:
                strides.append(self.py(stride, state))
            same = same and _keeps_size(exprs, call.op)
        if call.op.startswith("adaptive") or call.op == "gap":
            same = False
        return _State(channels, call.op != "linear" and state.image, strides, same)

    def block_call(self, call: ir.Call, state: _State) -> tuple[list, _State]:
        callee = self.gen.blocks[call.op]
        if self.gen.is_single_layer(callee):
            raise self.fail(f"'{call.op}' (a one-layer block; write its layer)", call.pos)
        self.gen.use_block(call.op)
        args = [self.py(a, state) for a in call.args]
        kwargs = [(kw.name, self.py(kw.value, state)) for kw in call.kwargs]
        var = self.fresh(call.op)
        self.assign(var, Call(class_name(call.op), (state.channels, *args, *kwargs)))
        return [var], _State(f"{var}.out_channels", state.image, [], False)

    def repeat(self, item: ir.Repeat, state: _State) -> tuple[list, _State]:
        count = self.py(item.count, state)
        target = self.fresh("layers")
        self.line(f"{target} = []")
        if state.channels != "channels":
            self.line(f"channels = {state.channels}")
        self.line(f"for _ in range({count}):")
        self.depth += 1
        exprs, after = self.items(item.body, _State("channels", state.image))
        self.assign(target, List(tuple(exprs)), "+=")
        if after.channels != "channels":
            self.line(f"channels = {after.channels}")
        self.depth -= 1
        return [f"*{target}"], _State("channels", after.image, [], False)

    def combinator(self, comb: ir.Combinator, state: _State) -> tuple[str, tuple, _State]:
        self.gen.runtime.add(COMBINATOR_CLASSES[comb.kind])
        start = state.channels
        if start == "channels":  # branches must not see each other's loops
            start = self.fresh("in_channels_")
            self.line(f"{start} = channels")
        begin = _State(start, state.image)
        if comb.kind == "dense":
            return self.dense(comb, begin)
        branches, ends = [], []
        for branch in comb.branches:
            expr, end = self.sequence(branch.body, _State(start, state.image))
            branches.append((branch.name, expr))
            ends.append(end)
        collected = _collect(branches)
        if comb.kind == "concat":
            total = " + ".join(e.channels for e in ends)  # sums need no brackets
            return "Concat", (collected,), _State(total, state.image, [], False)
        if comb.kind == "heads":
            return "Heads", (collected,), _State("None", False, [], False)
        return self.add(comb, begin, collected, ends)

    def add(self, comb, begin: _State, collected, ends) -> tuple[str, tuple, _State]:
        end = ends[0]
        if len(ends) > 1:
            return "Add", (collected,), _State(end.channels, begin.image, [], False)
        project = next((self.py(k.value, begin) for k in comb.kwargs if k.name == "project"),
                       "None")  # fmt: skip
        if not end.same:
            raise self.fail("a shortcut projection around windows that change the size "
                            "(or of unknown stride)", comb.pos)  # fmt: skip
        stride = " * ".join(f"({s})" if " " in s else s for s in end.strides if s != "1") or "1"
        changes = [f"{end.channels} != {begin.channels}"] if end.channels != begin.channels else []
        if stride != "1":
            changes.append(f"{stride} != 1")
        if project == "False" or (project == "None" and not changes):
            return "Add", (collected,), _State(end.channels, begin.image, [], False)
        if project == "None":
            condition = " or ".join(changes)
        elif project != "True":  # a parameter: true, false, or none for "when needed"
            needed = " or ".join(changes)
            condition = f"{project} or ({project} is None and ({needed}))" if changes else project
        conv = Call("nn.Conv2d", (begin.channels, end.channels, ("kernel_size", "1"),
                                  *((("stride", stride),) if stride != "1" else ())))  # fmt: skip
        if project == "True":  # always projected
            self.assign("shortcut", conv)
        else:
            self.line("shortcut = None")
            self.line(f"if {condition}:")
            self.depth += 1
            self.assign("shortcut", conv)
            self.depth -= 1
        return "Add", (collected, "shortcut"), _State(end.channels, begin.image, [], False)

    def dense(self, comb: ir.Combinator, begin: _State) -> tuple[str, tuple, _State]:
        self.line("units = []")
        self.line(f"channels = {begin.channels}")
        for branch in comb.branches:
            body, repeat = dense_unit(branch)
            if repeat is not None:
                self.line(f"for _ in range({self.py(repeat.count, begin)}):")
                self.depth += 1
            unit, end = self.sequence(body, _State("channels", begin.image))
            self.statement(Call("units.append", (unit,)))
            self.line(f"channels = channels + {end.channels}")
            if repeat is not None:
                self.depth -= 1
        return "Dense", ("units",), _State("channels", begin.image, [], False)

    def write(self) -> dict:
        block = self.block
        params = ["self", "in_channels: int"] + [
            p.name if p.default is None else f"{p.name}={unparse(p.default, str, PYTHON_CONSTANTS)}"
            for p in block.params
        ]
        start = _State("in_channels")
        single = len(block.body) == 1 and not isinstance(block.body[0], ir.Repeat)
        first = block.body[0] if single else None
        if isinstance(first, ir.Combinator):
            base, args, end = self.combinator(first, start)
        elif isinstance(first, ir.Call) and first.op not in LAYERS:
            self.gen.use_block(first.op)
            base = class_name(first.op)
            args = ("in_channels", *(self.py(a, start) for a in first.args),
                    *((k.name, self.py(k.value, start)) for k in first.kwargs))  # fmt: skip
            end = None
        else:
            base = "nn.Sequential"
            exprs, end = self.items(block.body, start)
            args = tuple(exprs)
        self.body.extend(_layout(Call("super().__init__", args), 0))
        if end is not None and end.channels != "None":
            self.line(f"self.out_channels = {end.channels}")
        return {
            "name": class_name(block.name),
            "base": base,
            "doc": f"`{block.name}` from the spec: its parameters are the constructor's.",
            "def_lines": lines(Call("def __init__", tuple(params)), 0, "", " -> None:"),
            "body": self.body,
        }


def _keeps_size(exprs: dict, op: str) -> bool:
    """Whether a window keeps the size at stride 1: literal kernel, padding and dilation
    with 2p == d(k - 1)."""

    def literal(name, default):
        e = exprs.get(name)
        return default if e is None else (e.value if isinstance(e, ir.Num) else None)

    k, p, d = literal("k", None), literal("p", 0), literal("d", 1)
    if not all(isinstance(v, int) for v in (k, p, d)):
        return False
    return 2 * p == d * (k - 1)


def _layout(expr, indent: int = 0, prefix: str = "", suffix: str = "") -> list[str]:
    return lines(expr, indent, prefix, suffix)


# --- the network class, from the typed graph ------------------------------------------------


class _Generator:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.blocks = {**prelude(), **{b.name: b for b in spec.ir.blocks}}
        self.used: list[str] = []
        self.runtime: set[str] = set()

    def is_single_layer(self, block: ir.BlockDef) -> bool:
        body = block.body
        return len(body) == 1 and isinstance(body[0], ir.Call) and body[0].op in LAYERS

    def use_block(self, name: str) -> None:
        if name not in self.used:
            self.used.append(name)

    def module(self, node: Node):
        """The constructor expression for a node, with concrete sizes."""
        if node.is_layer:
            args = {k: py_value(v) for k, v in node.layer.arguments().items()}
            code = LAYER_CODE[node.layer.op](args, str(node.in_shape[0]), len(node.in_shape) == 3)
            if code.func in RUNTIME_CLASSES:
                self.runtime.add(code.func)
            return code
        if node.block is not None:
            self.use_block(node.block)
            return Call(class_name(node.block), (str(node.in_shape[0]), *self.block_args(node)))
        children = [(name, self.module(child)) for name, child in node.children]
        if node.kind == "seq":
            return Call("nn.Sequential", tuple(expr for _, expr in children))
        cls = COMBINATOR_CLASSES[node.kind]
        self.runtime.add(cls)
        collected = _collect([(None if n.isdigit() else n, e) for n, e in children])
        if node.shortcut is not None:
            return Call(cls, (collected, self.module(node.shortcut)))
        return Call(cls, (collected,))

    def block_args(self, node: Node) -> list[str]:
        """The block's arguments, positionally, leaving out trailing literal defaults."""
        params = {p.name: p for p in self.blocks[node.block].params}
        values = list(node.args)
        while values:
            name, value = values[-1]
            default = params[name].default
            if not (isinstance(default, (ir.Num, ir.Const)) and default.value == value):
                break
            values.pop()
        return [py_value(v) for _, v in values]

    def network(self) -> dict:
        graph = self.spec.graph
        init, forward = [], [f"# {_batch_shape(graph.input_shape)}"]
        for name, node in graph.root.children:
            init.extend(_layout(self.module(node), 0, f"self.{name} = "))
            forward.append(f"x = self.{name}(x)  # {_batch_shape(node.out_shape)}")
        heads = isinstance(graph.output_shape[0], tuple)
        return {
            "name": graph.name,
            "doc": f"{graph.name}: input N x {_shape(graph.input_shape)}, "
                   f"{graph.params:,} parameters.",
            "init": init,
            "forward": forward,
            "returns": "tuple[torch.Tensor, ...]" if heads else "torch.Tensor",
        }  # fmt: skip

    def block_classes(self) -> list[dict]:
        written: dict[str, dict] = {}
        pending = list(self.used)
        while pending:  # writing a class can use further blocks
            name = pending.pop(0)
            if name not in written:
                written[name] = _BlockWriter(self, self.blocks[name]).write()
                pending.extend(n for n in self.used if n not in written)
        order = list(self.blocks)  # definition order: callees come before callers
        return [written[n] for n in sorted(written, key=order.index)]


def _shape(shape) -> str:
    return " x ".join(str(d) for d in shape)


def _batch_shape(shape) -> str:
    """`N x 64 x 24 x 24`, or one such per head."""
    if shape and isinstance(shape[0], tuple):
        return "(" + ", ".join(_batch_shape(s) for s in shape) + ")"
    return f"N x {_shape(shape)}"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: files("cnnspec.templates").joinpath(name).read_text(encoding="utf-8")
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML: every value is made safe before here
    )


@cache
def _runtime_definitions() -> dict[str, str]:
    """Top-level definitions of `modules.py` by name, as source text. Read, not imported:
    the generator needs no torch, and the generated file gets the very same code."""
    text = files("cnnspec").joinpath("modules.py").read_text(encoding="utf-8")
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            found[node.name] = ast.get_source_segment(text, node)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.get_source_segment(text, node)
    return found


def _runtime_source(names: set[str]) -> list[str]:
    """The combinator classes the module uses, with what they need, in `modules.py` order."""
    needed = set(names)
    if names - {"Reshape"}:
        needed |= {"Branches", "named"}
    return [src for name, src in _runtime_definitions().items() if name in needed]


def generate(spec: Spec) -> str:
    """The spec as Python source."""
    try:
        return _generate(spec)
    except SpecError as err:
        raise err.with_source(spec.source) from None


def _generate(spec: Spec) -> str:
    gen = _Generator(spec)
    network = gen.network()
    blocks = gen.block_classes()
    taken = {b["name"] for b in blocks} | set(RUNTIME_CLASSES) | MODULE_ATTRIBUTES
    if network["name"] in taken or len({b["name"] for b in blocks}) < len(blocks):
        raise CodegenError(
            f"class name '{network['name']}' would clash in the generated module; rename the "
            "network or a block",
            spec.ir.network.pos,
        )
    runtime = _runtime_source(gen.runtime)
    names = [network["name"], *(b["name"] for b in blocks)]  # the network first
    env = _environment()
    return env.get_template("module.py.j2").render(
        header=[
            f"# Generated by cnnspec {__version__} from {Path(spec.source.name).as_posix()!r}.",
            "# Edit the spec and regenerate rather than editing this file.",
        ],
        doc=f"{spec.name} as plain PyTorch (needs torch only).",
        all_lines=lines(List(tuple(json.dumps(n) for n in names)), 0, "__all__ = "),
        runtime=runtime,
        blocks=[env.get_template("block.py.j2").render(**b).rstrip("\n") for b in blocks],
        network=env.get_template("network.py.j2").render(**network).rstrip("\n"),
    )

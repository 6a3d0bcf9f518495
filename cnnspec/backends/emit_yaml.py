"""IR -> the YAML form, laid out for reading: one line per layer sequence where it fits."""

from __future__ import annotations

import json

import yaml

from ..analysis.ops import LAYERS, fmt
from ..analysis.resolve import builtin_blocks
from ..language import ir
from ..language.expressions import unparse as expr_text
from ..language.parse_yaml import SpecLoader

_WIDTH = 96


def _scalar(text: str) -> str:
    """`text` as a YAML scalar that reads back as that same string.

    Scalars are mostly written inside flow collections (`{conv: t[0]}`), where brackets,
    braces and commas end a plain scalar, so plainness is judged there."""
    try:
        read = yaml.load(f"[{text}]", Loader=SpecLoader)  # noqa: S506 (a safe loader)
        plain = read == [text] and ":" not in text and "#" not in text
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def _key(name: str) -> str:
    """A name as a mapping key that reads back as that name: `on`, `no` or `null` would
    read as true, false or null bare, so those are quoted."""
    return _scalar(name)


def _number(value: int | float) -> str:
    """A number as YAML 1.1 reads it back (`1e-05` alone reads as a string there)."""
    if isinstance(value, int):
        return repr(value)
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return "-.inf" if value < 0 else ".inf"
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _plain(value) -> str:
    """A recipe's value: a number, a word, true, false or null."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return _number(value)
    return json.dumps(value)


def _value(expr: ir.Node) -> str:
    if isinstance(expr, ir.Num):
        return _number(expr.value)
    if isinstance(expr, ir.Const):
        return {True: "true", False: "false", None: "null"}[expr.value]
    if isinstance(expr, ir.TupleExpr):
        return "[" + ", ".join(_value(i) for i in expr.items) + "]"
    return _scalar(expr_text(expr))


def _call(call: ir.Call) -> str:
    if not call.args and not call.kwargs:
        return _scalar(call.op)
    if not call.args:
        head = "null"
    elif len(call.args) == 1 and not isinstance(call.args[0], ir.TupleExpr):
        head = _value(call.args[0])
    else:
        head = "[" + ", ".join(_value(a) for a in call.args) + "]"
    kwargs = "".join(f", {_key(kw.name)}: {_value(kw.value)}" for kw in call.kwargs)
    return f"{{{_scalar(call.op)}: {head}{kwargs}}}"


def _flow(item) -> str | None:
    """A one-line form for calls and repeats of calls; None for combinators."""
    if isinstance(item, _Source):
        return f"{{from: {_scalar(item)}}}"
    if isinstance(item, ir.Call):
        return _call(item)
    if isinstance(item, ir.Join):
        names = ", ".join(_scalar(n.id) for n in item.inputs)
        return f"{{from: [{names}], join: {item.op}}}"
    if isinstance(item, ir.Line):
        body = [_flow(i) for i in item.body]
        if None not in body:
            return f"{{line: {_scalar(item.name)}, body: [{', '.join(body)}]}}"
    if isinstance(item, ir.Repeat):
        body = [_flow(i) for i in item.body]
        if None not in body:
            return f"{{repeat: {_value(item.count)}{_index(item)}, body: [{', '.join(body)}]}}"
    if isinstance(item, ir.For):
        body = [_flow(i) for i in item.body]
        if None not in body:
            names = ", ".join(_scalar(n) for n in item.names)
            return f"{{for: [{names}], in: {_value(item.rows)}, body: [{', '.join(body)}]}}"
    if isinstance(item, ir.If):
        arms = [[_flow(i) for i in arm] for arm in (item.body, item.orelse)]
        if not any(None in arm for arm in arms):
            orelse = f", else: [{', '.join(arms[1])}]" if item.orelse else ""
            return f"{{if: {_value(item.test)}, body: [{', '.join(arms[0])}]{orelse}}}"
    return None


class _Source(str):
    """A stage's first item naming the tensor it starts from, written `{from: name}`."""


def _tensors(doc: ir.Document) -> set[str]:
    """The names a stage may start from: the input and the stages, less the layers and
    blocks a bare name calls instead."""
    blocks = {*builtin_blocks(), *(b.name for b in doc.blocks), *(b.name for b in doc.used)}
    names = {ir.INPUT, *(stage.name for stage in doc.network.stages)}
    return {name for name in names if name not in LAYERS and name not in blocks}


def _with_sources(block: ir.BlockDef, doc: ir.Document) -> tuple:
    """A block's body with what each named line starts from written `{from: name}`."""
    lines = [item for item in block.body if isinstance(item, ir.Line)]
    if not lines:
        return block.body
    blocks = {*builtin_blocks(), *(b.name for b in doc.blocks), *(b.name for b in doc.used)}
    params = {p.name for p in block.params}
    names = {ir.INPUT, *(line.name for line in lines)}
    tensors = {n for n in names if n not in LAYERS and n not in blocks and n not in params}
    out = []
    for item in block.body:
        if isinstance(item, ir.Line) and item.body and _reads(item.body[0], tensors):
            item = item.model_copy(update={"body": (_Source(item.body[0].op), *item.body[1:])})
        out.append(item)
    return tuple(out)


def _reads(item, tensors: set[str]) -> bool:
    return isinstance(item, ir.Call) and not item.args and not item.kwargs and item.op in tensors


def _index(repeat: ir.Repeat) -> str:
    return f", index: {_scalar(repeat.index)}" if repeat.index is not None else ""


def _body(items, indent: int) -> list[str]:
    """A body as the lines after its key; a one-line flow list when it fits."""
    pad = " " * indent
    flows = [_flow(i) for i in items]
    if None not in flows:
        line = "[" + ", ".join(flows) + "]"
        if len(line) + indent <= _WIDTH:
            return [" " + line]
    lines = [""]
    for item, flow in zip(items, flows):
        if flow is not None:
            lines.append(f"{pad}- {flow}")
        elif isinstance(item, ir.Repeat):
            lines.append(f"{pad}- repeat: {_value(item.count)}")
            if item.index is not None:
                lines.append(f"{pad}  index: {_scalar(item.index)}")
            lines.append(f"{pad}  body:" + _joined(_body(item.body, indent + 4)))
        elif isinstance(item, ir.For):
            lines.append(f"{pad}- for: [{', '.join(_scalar(n) for n in item.names)}]")
            lines.append(f"{pad}  in: {_value(item.rows)}")
            lines.append(f"{pad}  body:" + _joined(_body(item.body, indent + 4)))
        elif isinstance(item, ir.Line):
            lines.append(f"{pad}- line: {_scalar(item.name)}")
            lines.append(f"{pad}  body:" + _joined(_body(item.body, indent + 4)))
        elif isinstance(item, ir.If):
            lines.append(f"{pad}- if: {_value(item.test)}")
            lines.append(f"{pad}  body:" + _joined(_body(item.body, indent + 4)))
            if item.orelse:
                lines.append(f"{pad}  else:" + _joined(_body(item.orelse, indent + 4)))
        else:
            lines.extend(_combinator(item, indent))
    return lines


def _joined(lines: list[str]) -> str:
    return "\n".join(lines)


def _combinator(comb: ir.Combinator, indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}- {comb.kind}:"]
    named = any(branch.name is not None for branch in comb.branches)
    for i, branch in enumerate(comb.branches):
        if named:  # a mapping; unnamed branches keep their position as key
            key = _key(branch.name) if branch.name is not None else f'"{i}"'
            lines.append(f"{pad}    {key}:" + _joined(_body(branch.body, indent + 6)))
        else:
            lines.append(f"{pad}    -" + _joined(_body(branch.body, indent + 6)))
    lines.extend(f"{pad}  {_key(kw.name)}: {_value(kw.value)}" for kw in comb.kwargs)
    return lines


def to_yaml(doc: ir.Document) -> str:
    out: list[str] = []
    if doc.uses:
        out.append(f"use: [{', '.join(json.dumps(u.path) for u in doc.uses)}]")
    if doc.blocks:
        out.append("blocks:")
        for block in doc.blocks:
            params = []
            for p in block.params:
                text = p.name if p.default is None else f"{p.name}={expr_text(p.default)}"
                params.append(_scalar(text))
            out.append(f"  {_key(block.name)}:")
            out.append(f"    params: [{', '.join(params)}]")
            out.append("    body:" + _joined(_body(_with_sources(block, doc), 6)))
    net = doc.network
    out += ["network:", f"  name: {_scalar(net.name)}", f"  input: {fmt(net.input)}"]
    if "classes" in net.model_fields_set:  # written as given: the default stays implicit
        out.append(f"  classes: {net.classes}")
    if net.params:
        out.append(
            "  params: {"
            + ", ".join(f"{_key(kw.name)}: {_value(kw.value)}" for kw in net.params)
            + "}"
        )
    out.append("  stages:")
    tensors = _tensors(doc)
    for stage in net.stages:
        body = stage.body
        if body and _reads(body[0], tensors):  # `{from: c4}`: what the stage starts from
            body = (_Source(body[0].op), *body[1:])
        out.append(f"    {_key(stage.name)}:" + _joined(_body(body, 6)))
    if net.outputs:
        out.append(f"  outputs: [{', '.join(_scalar(n.id) for n in net.outputs)}]")
    recipe = doc.train.model_dump(exclude_unset=True)
    if recipe:
        fields = ", ".join(f"{_key(k)}: {_plain(v)}" for k, v in recipe.items())
        out.append(f"train: {{{fields}}}")
    return "\n".join(out) + "\n"

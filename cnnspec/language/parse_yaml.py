"""Front end for the YAML form: YAML text -> the same plain dicts as `parse_cnn`.

    blocks:
      inception:
        params: [c1, c2, c3, c4]
        body:
          - concat:
              - [{conv: c1, k: 1}, relu]
              - [{conv: "c2[0]", k: 1}, relu, {conv: "c2[1]", k: 3, p: 1}, relu]
    network:
      name: GoogLeNet
      input: 1x96x96
      classes: 10
      stages:
        b1: [{conv: 64, k: 7, s: 2, p: 3}, relu, {maxpool: 3, s: 2, p: 1}]
    train: {lr: 0.1, epochs: 10, batch: 128, resize: 96}

A layer is its name (`relu`) or a mapping whose first key names it, with its positional
arguments as that key's value (one value or a list) and keyword arguments as further keys.
`{repeat: n, body: [...]}` repeats; `{if: cond, body: [...], else: [...]}` chooses;
`{concat: [branch, ...]}` (likewise each of ir.COMBINATORS) joins branches, each a
list of layers, or a mapping of named branches. Strings in argument positions are
expressions (`"c * 2"`). Only plain YAML is read: no anchors, aliases or tags.
"""

from __future__ import annotations

import re

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import CnnspecError, LimitError, Pos, SpecError, SpecSyntaxError
from ..limits import DEFAULT, Limits
from .expressions import bounded, brief, int_literal
from .ir import COMBINATORS, JOINS, LOADED_KEYS, METADATA_KEYS
from .parse_cnn import parse_expression, parse_param

_YAML = "tag:yaml.org,2002:"
_PLAIN_TAGS = {f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}
# Plain scalars YAML 1.1 resolves to tags SafeLoader cannot construct: `<<` (merge) and `=`
# (value). In a spec they are just text (and so unknown keys or names).
_TEXT_TAGS = {f"{_YAML}merge", f"{_YAML}value"}
_LONGEST_INT = 64  # characters; longer is out of range in any base YAML writes


_SHAPE = re.compile(r"\d+(x\d+)+")


class SpecLoader(yaml.SafeLoader):
    """Safe YAML that also reads `5e-5` as the number it means: YAML 1.1 wants a dot in
    a float (`5.0e-5`), and would read the usual spelling of a rate as a string."""


SpecLoader.add_implicit_resolver(
    f"{_YAML}float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _pos(node: Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Reader:
    def __init__(self, loader: yaml.SafeLoader, limits: Limits):
        self.loader = loader
        self.limits = limits

    # --- plain YAML values --------------------------------------------------------------
    def scalar(self, node: Node):
        if not isinstance(node, ScalarNode):
            raise SpecError("expected a single value here", _pos(node))
        if node.tag in _TEXT_TAGS:
            return node.value
        if node.tag == f"{_YAML}int" and len(node.value) > _LONGEST_INT:
            # refused before int() meets Python's 4,300-digit limit
            raise LimitError(
                f"number {brief(node.value)} is out of range (at most 1e18 in magnitude)",
                _pos(node),
            )
        try:
            value = self.loader.construct_object(node)
        except (ValueError, OverflowError):  # a date such as 2001-02-30
            raise SpecError(f"cannot read '{brief(node.value)}' as a value", _pos(node)) from None
        return bounded(value, _pos(node), text=node.value)

    def mapping(self, node: Node, what: str) -> list[tuple[str, Node, Pos]]:
        if not isinstance(node, MappingNode):
            raise SpecError(f"{what} must be a mapping (key: value)", _pos(node))
        pairs, seen = [], {}
        for key, value in node.value:
            name = self.scalar(key)
            if not isinstance(name, str):
                read = "true or false" if isinstance(name, bool) else repr(name)
                if name is None:
                    read = "null"
                raise SpecError(
                    f"keys in {what} must be names, got {key.value}, which YAML reads as {read}",
                    _pos(key),
                )
            if name in METADATA_KEYS:
                raise SpecError(f"unknown key '{name}' in {what}", _pos(key))
            if name in seen:
                line, col = seen[name]
                raise SpecError(f"key '{name}' appears twice (first at {line}:{col})", _pos(key))
            seen[name] = _pos(key)
            pairs.append((name, value, _pos(key)))
        return pairs

    def items_of(self, node: Node) -> list[Node]:
        return list(node.value) if isinstance(node, SequenceNode) else [node]

    # --- expressions ----------------------------------------------------------------------
    def expr(self, node: Node) -> dict:
        pos = _pos(node)
        if isinstance(node, SequenceNode):
            return {"kind": "tuple", "items": [self.expr(n) for n in node.value], "pos": pos}
        value = self.scalar(node)
        if isinstance(value, str):
            return _snippet(parse_expression, node, value, self.limits)
        if isinstance(value, bool) or value is None:
            return {"kind": "const", "value": value, "pos": pos}
        if isinstance(value, (int, float)):
            return {"kind": "num", "value": value, "pos": pos}
        raise SpecError(f"cannot use {value!r} as an argument", pos)

    def kwarg(self, name: str, node: Node, pos: Pos) -> dict:
        return {"name": name, "value": self.expr(node), "pos": pos}

    # --- layers -----------------------------------------------------------------------------
    def body(self, node: Node) -> list[dict]:
        return [self.item(n) for n in self.items_of(node)]

    def item(self, node: Node) -> dict:
        if isinstance(node, ScalarNode):
            op = self.scalar(node)
            if not isinstance(op, str):
                raise SpecError(f"expected a layer name, got {op!r}", _pos(node))
            return {"kind": "call", "op": op, "args": [], "kwargs": [], "pos": _pos(node)}
        pairs = self.mapping(node, "a layer")
        if not pairs:
            raise SpecError("an empty mapping is not a layer", _pos(node))
        (op, value, pos), rest = pairs[0], pairs[1:]
        if op == "repeat":
            keys = {name: (v, p) for name, v, p in rest}
            extra = [p for name, _, p in rest if name not in ("body", "index")]
            if extra or "body" not in keys:
                raise SpecError(
                    "repeat takes `repeat: n`, `body: [...]` and an optional `index: name`",
                    extra[0] if extra else pos,
                )
            node = {
                "kind": "repeat",
                "count": self.expr(value),
                "body": self.body(keys["body"][0]),
                "pos": pos,
            }
            if "index" in keys:
                index, where = keys["index"]
                node.update(index=self.scalar(index), keypos={"index": where})
            return node
        if op == "if":
            return self.conditional(value, rest, pos)
        if op == "for":
            return self.for_loop(value, rest, pos)
        if op == "from":
            return self.source(value, rest, pos)
        if op == "line" and [name for name, _, _ in rest] == ["body"]:
            name = self.scalar(value)
            if not isinstance(name, str):
                raise SpecError(f"a line's name must be a name, got {name!r}", _pos(value))
            return {"kind": "line", "name": name, "body": self.body(rest[0][1]), "pos": pos}
        kwargs = [self.kwarg(name, v, p) for name, v, p in rest]
        if op in COMBINATORS:
            return {"kind": op, "kwargs": kwargs, "branches": self.branches(value), "pos": pos}
        args = [] if self._is_null(value) else [self.expr(v) for v in self.items_of(value)]
        return {"kind": "call", "op": op, "args": args, "kwargs": kwargs, "pos": pos}

    def conditional(self, test: Node, rest: list, pos: Pos) -> dict:
        """`{if: cond, body: [...], else: [...]}`: the body when the condition holds."""
        keys = {name: v for name, v, _ in rest}
        extra = [p for name, _, p in rest if name not in ("body", "else")]
        if extra or "body" not in keys:
            raise SpecError(
                "if takes `if: condition`, `body: [...]` and an optional `else: [...]`",
                extra[0] if extra else pos,
            )
        orelse = self.body(keys["else"]) if "else" in keys else []
        return {
            "kind": "if",
            "test": self.expr(test),
            "body": self.body(keys["body"]),
            "orelse": orelse,
            "pos": pos,
        }

    def source(self, value: Node, rest: list, pos: Pos) -> dict:
        """What a stage starts from: `{from: c4}`, a tensor; `{from: [a, b], join: add}`,
        tensors joined."""
        keys = {name: (v, p) for name, v, p in rest}
        extra = [p for name, _, p in rest if name != "join"]
        if not isinstance(value, SequenceNode):
            if extra or keys:
                raise SpecError("`from: name` takes nothing else", (extra or [keys["join"][1]])[0])
            name = self.names(SequenceNode(f"{_YAML}seq", [value]))[0]
            return {"kind": "call", "op": name["id"], "args": [], "kwargs": [], "pos": name["pos"]}
        if extra or "join" not in keys:
            raise SpecError(
                f"`from: [...]` joins tensors: add `join:` with one of {', '.join(JOINS)}",
                extra[0] if extra else pos,
            )
        join, where = keys["join"]
        op = self.scalar(join)
        if op not in JOINS:
            raise SpecError(f"join must be one of {', '.join(JOINS)}, got {op!r}", where)
        return {"kind": "join", "op": op, "inputs": self.names(value), "pos": pos}

    def names(self, node: Node) -> list[dict]:
        """A list of tensor names: `[p2, p3]`."""
        if not isinstance(node, SequenceNode):
            raise SpecError("expected a list of tensor names, like [p2, p3]", _pos(node))
        names = []
        for item in node.value:
            name = self.scalar(item)
            if not isinstance(name, str):
                raise SpecError(f"expected a tensor name, got {name!r}", _pos(item))
            names.append({"kind": "name", "id": name, "pos": _pos(item)})
        return names

    def for_loop(self, names: Node, rest: list, pos: Pos) -> dict:
        """`{for: [t, c], in: [[1, 16], [6, 24]], body: [...]}`: the body once per row."""
        keys = {name: v for name, v, _ in rest}
        extra = [p for name, _, p in rest if name not in ("in", "body")]
        if extra or "in" not in keys or "body" not in keys:
            raise SpecError(
                "for takes `for: [names]`, `in: [rows]` and `body: [...]`",
                extra[0] if extra else pos,
            )
        found = [self.scalar(n) for n in self.items_of(names)]
        if not found or not all(isinstance(n, str) for n in found):
            raise SpecError("for names its values: `for: [t, c, n, s]`", _pos(names))
        return {
            "kind": "for",
            "names": found,
            "rows": self.expr(keys["in"]),
            "body": self.body(keys["body"]),
            "pos": pos,
            "keypos": {"names": _pos(names)},
        }

    def _is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and self.scalar(node) is None

    def branches(self, node: Node) -> list[dict]:
        # A list holds unnamed branches; a mapping names them: `{heads: {digit1: [...]}}`.
        # In a mapping, a key that is the branch's own position ("0", "1", ...) leaves it
        # unnamed, so named and unnamed branches can be mixed.
        if isinstance(node, MappingNode):
            pairs = self.mapping(node, "named branches")
            return [
                {"name": None if name == str(i) else name, "body": self.body(v), "pos": p}
                for i, (name, v, p) in enumerate(pairs)
            ]
        return [{"name": None, "body": self.body(b), "pos": _pos(b)} for b in self.items_of(node)]

    # --- top level ------------------------------------------------------------------------
    def options(self, node: Node, what: str, words: bool = False) -> dict:
        out: dict = {"pos": _pos(node), "keypos": {}}
        for name, value, pos in self.mapping(node, what):
            if name == "stages" and what == "the network":
                out[name] = [
                    {"name": stage, "body": self.body(body), "pos": p}
                    for stage, body, p in self.mapping(value, "stages")
                ]
            elif name == "outputs" and what == "the network":
                out[name] = self.names(value)
            elif name == "params" and what == "the network":
                out[name] = [self.kwarg(k, v, p) for k, v, p in self.mapping(value, "params")]
            else:
                out[name] = self.literal(value, words)
            out["keypos"][name] = pos
        return out

    def literal(self, node: Node, words: bool):
        if isinstance(node, SequenceNode):
            return [self.literal(n, words) for n in node.value]
        if isinstance(node, MappingNode):  # never valid here; the IR names the key
            return {k: self.literal(v, words) for k, v, _ in self.mapping(node, "a value")}
        value = self.scalar(node)
        if isinstance(value, str) and not words and _SHAPE.fullmatch(value):
            (line, col), dims = _pos(node), []  # a shape: 1x28x28
            col += node.style in ("'", '"')
            for d in value.split("x"):
                dims.append(int_literal(d, (line, col)))
                col += len(d) + 1
            return dims
        return value

    def block(self, name: str, node: Node, pos: Pos) -> dict:
        block: dict = {"name": name, "params": [], "body": [], "pos": pos, "keypos": {}}
        for key, value, kpos in self.mapping(node, f"block '{name}'"):
            block["keypos"][key] = kpos
            if key == "params":
                for p in self.items_of(value):
                    text = self.scalar(p)
                    block["params"].append(_snippet(parse_param, p, str(text), self.limits))
            elif key == "body":
                block["body"] = self.body(value)
            else:
                block[key] = self.literal(value, words=True)  # unknown: the IR names it
        return block

    def document(self, node: Node) -> dict:
        doc: dict = {"blocks": [], "network": None, "train": None, "pos": _pos(node), "keypos": {}}
        for key, value, pos in self.mapping(node, "the spec"):
            doc["keypos"][key] = pos
            if key == "blocks":
                doc["blocks"] = [self.block(n, v, p) for n, v, p in self.mapping(value, "blocks")]
            elif key in LOADED_KEYS:
                raise SpecError(f"unknown key '{key}' in the spec", pos)
            elif key == "use":
                doc["uses"] = [
                    {"path": self.scalar(n), "pos": _pos(n)} for n in self.items_of(value)
                ]
            elif key == "network":
                doc["network"] = self.options(value, "the network")
            elif key == "train":
                doc["train"] = self.options(value, "the train recipe", words=True)
            else:
                doc[key] = self.literal(value, words=True)  # unknown: the IR names it
        return doc


def _check_plain(text: str, limits: Limits) -> None:
    """Refuse anchors, aliases, tags and deep nesting before anything is composed.

    The event stream is read iteratively, and stops at the first problem: composing a
    20,000-deep document would recurse past Python's stack (and take minutes first).
    """
    bound = limits.max_nesting + 8  # the document's own nesting, plus the layout's levels
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        pos = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, yaml.AliasEvent):
            raise SpecError("YAML aliases (*name) are not allowed in specs", pos)
        if getattr(event, "anchor", None):
            raise SpecError("YAML anchors (&name) are not allowed in specs", pos)
        tag = getattr(event, "tag", None)
        if tag and tag not in _PLAIN_TAGS and tag != "!":
            raise SpecError(f"YAML tag '{tag}' is not allowed in specs", pos)
        if isinstance(event, (yaml.CollectionStartEvent, yaml.ScalarEvent)):
            if depth + 1 > bound:  # the root is level 1
                raise LimitError(f"nested more than {bound} levels deep", pos)
            depth += isinstance(event, yaml.CollectionStartEvent)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_yaml(text: str, limits: Limits = DEFAULT) -> dict:
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_file_bytes:
        raise LimitError(f"spec is larger than {limits.max_file_bytes} bytes", (1, 1))
    try:
        _check_plain(text, limits)
        loader = SpecLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecSyntaxError(
            f"invalid YAML: {err.problem or err.context}{_hint(err)}", pos
        ) from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow
        before = text[: err.position]
        pos = (before.count("\n") + 1, err.position - before.rfind("\n"))
        char = repr(chr(err.character)) if isinstance(err.character, int) else "?"
        raise SpecSyntaxError(f"invalid YAML: character {char} is not allowed", pos) from None
    except yaml.YAMLError as err:
        raise SpecSyntaxError(f"invalid YAML: {str(err).splitlines()[0]}", (1, 1)) from None
    if root is None:
        raise SpecError("the YAML document is empty", (1, 1))
    try:
        return _Reader(loader, limits).document(root)
    except RecursionError:
        raise LimitError("spec is nested too deeply to read", (1, 1)) from None


def _hint(err: yaml.MarkedYAMLError) -> str:
    """Brackets end a plain value inside `[...]` and `{...}`: say how to write one."""
    problem = err.problem or ""
    if "but got '['" in problem or "but got '{'" in problem:
        return ' (inside [...] or {...}, quote an expression that holds brackets: "c[0]")'
    return ""


def _snippet(parse, node: ScalarNode, value: str, limits: Limits) -> dict:
    """A scalar parsed as .cnn text (an expression or a parameter), placed in the file."""
    pos, quoted = _pos(node), node.style in ("'", '"')
    if _as_written(node, value, quoted):
        return parse(value, (pos[0], pos[1] + quoted), limits)
    # Folded over lines or holding escapes: columns in the value are not columns in the
    # file, so everything in it is placed at the scalar.
    try:
        return _placed_at(parse(value, pos, limits), pos)
    except CnnspecError as err:
        err.pos = pos
        raise


def _as_written(node: ScalarNode, value: str, quoted: bool) -> bool:
    """Whether the scalar's value stands in the file character for character, on one line."""
    start, end = node.start_mark, node.end_mark
    return start.line == end.line and end.column - start.column == len(value) + 2 * quoted


def _placed_at(plain, pos: Pos):
    """`plain` (an expression as plain data) with every position set to `pos`."""
    stack = [plain]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "pos" in item:
                item["pos"] = pos
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return plain

"""JSON Schema of the YAML form, for editor completion and checking.

Generated from the layer models and the IR, so it lists every op with its keyword
arguments, the combinators, and the network and train options. Block calls are open
(any name, any arguments): blocks are defined in the spec itself.
"""

from __future__ import annotations

from ..analysis.combinators import RULES as COMBINATOR_RULES
from ..analysis.ops import LAYERS
from ..analysis.resolve import builtin_blocks
from ..language import ir

_EXPR = {"$ref": "#/$defs/expr"}
_BODY = {"$ref": "#/$defs/body"}


def _layer_schema(op: str) -> dict:
    model = LAYERS[op]
    props: dict = {
        op: {
            "description": model.doc(),
            "anyOf": [_EXPR, {"type": "array", "items": _EXPR}, {"type": "null"}],
        }
    }
    for name in model.signature():
        props[name] = _EXPR
    return {"type": "object", "properties": props, "required": [op], "additionalProperties": False}


def _combinator_schema(kind: str, body: dict) -> dict:
    branches = {
        "anyOf": [
            {"type": "array", "items": body},
            {"type": "object", "additionalProperties": body},
        ]
    }
    props = {kind: branches}
    rule = COMBINATOR_RULES[kind]
    for option, kind_of in rule.options.items():
        props[option] = {"type": ["number" if kind_of == "number" else "boolean", "null"]}
    return {
        "type": "object",
        "properties": props,
        "required": [kind],
        "additionalProperties": False,
    }


_STAGE = {"$ref": "#/$defs/stage"}
_FROM = {
    "type": "object",
    "description": "what a stage starts from: {from: c4}, or {from: [a, b], join: add}",
    "anyOf": [
        {
            "properties": {"from": {"type": "string"}},
            "required": ["from"],
            "additionalProperties": False,
        },
        {
            "properties": {
                "from": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "join": {"enum": list(ir.JOINS)},
            },
            "required": ["from", "join"],
            "additionalProperties": False,
        },
    ],
}


def _stage(body: str, item: str) -> dict:
    """A stage's body, which may start from a named tensor or a join of them."""
    start = {"anyOf": [{"$ref": item}, _FROM]}
    return {
        "anyOf": [
            {"$ref": body},
            {"type": "array", "prefixItems": [start], "items": {"$ref": item}},
        ]
    }


def _item(body: dict, closed: bool) -> dict:
    """One item of a body. Closed, a name must be an op or a built-in block: a spec with
    no `blocks` of its own can call nothing else, so a misspelt layer is an error."""
    names = sorted(op for op, model in LAYERS.items() if not model.required())
    builtins = sorted(builtin_blocks())
    bare = {"type": "string", "description": "a layer or block without arguments"}
    call = {
        "type": "object",
        "description": "a block call: {name: args, keyword: value}",
        "examples": builtins,
        "minProperties": 1,
    }
    if closed:
        bare["enum"] = names + builtins
        call["anyOf"] = [{"required": [name]} for name in builtins]
    else:
        bare["examples"] = names
    return {
        "anyOf": [
            bare,
            *(_layer_schema(op) for op in sorted(LAYERS)),
            *(_combinator_schema(kind, body) for kind in ir.COMBINATORS),
            {
                "type": "object",
                "description": "repeat a body n times; index names 0 .. n - 1 in the body",
                "properties": {"repeat": _EXPR, "index": {"type": "string"}, "body": body},
                "required": ["repeat", "body"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "description": "the body once per row of a table, its values named",
                "properties": {
                    "for": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "in": _EXPR,
                    "body": body,
                },
                "required": ["for", "in", "body"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "description": "a named line of a block: later lines read its output by name",
                "properties": {"line": {"type": "string"}, "body": _STAGE},
                "required": ["line", "body"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "description": "the body when the condition holds, else the else",
                "properties": {"if": _EXPR, "body": body, "else": body},
                "required": ["if", "body"],
                "additionalProperties": False,
            },
            call,
        ]
    }


def yaml_schema() -> dict:
    item = _item(_BODY, closed=False)
    closed_body = {"$ref": "#/$defs/closed_body"}
    closed_item = _item(closed_body, closed=True)
    recipe = ir.Recipe.model_json_schema()
    recipe.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cnnspec network (YAML form)",
        "type": "object",
        "properties": {
            "use": {
                "description": "files whose blocks this spec uses, relative to it",
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            },
            "blocks": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "params": {"type": "array", "items": {"type": "string"}},
                        "body": _BODY,
                    },
                    "required": ["body"],
                    "additionalProperties": False,
                },
            },
            "network": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "input": {
                        "anyOf": [
                            {"type": "string", "pattern": r"^\d+(x\d+)*$"},
                            {"type": "integer", "minimum": 1},  # a feature count: 12
                            {"type": "array", "items": {"type": "integer"}},
                        ]
                    },
                    "classes": {"type": "integer", "minimum": 1},
                    "params": {
                        "description": "the network's own parameters, read by its stages",
                        "type": "object",
                        "additionalProperties": _EXPR,
                    },
                    "stages": {"type": "object", "additionalProperties": _STAGE},
                    "outputs": {
                        "description": "the tensors the network returns, in order",
                        "type": "array",
                        "items": {"type": "string"},
                    },
                },
                "required": ["name", "input", "stages"],
                "additionalProperties": False,
            },
            "train": {**recipe, "additionalProperties": False},
        },
        "required": ["network"],
        "additionalProperties": False,
        # Without blocks of its own or used from other files, every stage is held to the
        # closed body as well.
        "if": {"not": {"anyOf": [{"required": ["blocks"]}, {"required": ["use"]}]}},
        "then": {
            "properties": {
                "network": {
                    "properties": {
                        "stages": {"additionalProperties": {"$ref": "#/$defs/closed_stage"}}
                    }
                }
            }
        },
        "$defs": {
            "expr": {
                "anyOf": [
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                    {"type": "string", "description": "an expression: c * 2, C // 2"},
                    {"type": "array", "items": _EXPR},
                ]
            },
            "item": item,
            "body": {"anyOf": [item, {"type": "array", "items": {"$ref": "#/$defs/item"}}]},
            "closed_item": closed_item,
            "closed_body": {
                "anyOf": [closed_item, {"type": "array", "items": {"$ref": "#/$defs/closed_item"}}]
            },
            "stage": _stage("#/$defs/body", "#/$defs/item"),
            "closed_stage": _stage("#/$defs/closed_body", "#/$defs/closed_item"),
        },
    }


def layer_table() -> str:
    """Every op with its arguments in positional order (defaults shown), as Markdown: the
    table README.md carries, so it cannot drift from the ops themselves."""
    lines = ["| layer | arguments | what it does |", "|---|---|---|"]
    for op in sorted(LAYERS):
        model = LAYERS[op]
        args = []
        for name, field in model.model_fields.items():
            args.append(name if field.is_required() else f"{name}={_default(field.default)}")
        lines.append(f"| `{op}` | {', '.join(f'`{a}`' for a in args) or '—'} | {model.doc()} |")
    return "\n".join(lines) + "\n"


def _default(value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    return value if isinstance(value, str) else repr(value)

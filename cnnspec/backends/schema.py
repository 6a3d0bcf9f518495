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


def _combinator_schema(kind: str) -> dict:
    branches = {
        "anyOf": [
            {"type": "array", "items": _BODY},
            {"type": "object", "additionalProperties": _BODY},
        ]
    }
    props = {kind: branches}
    for option in COMBINATOR_RULES[kind].options:
        props[option] = {"type": ["boolean", "null"]}
    return {
        "type": "object",
        "properties": props,
        "required": [kind],
        "additionalProperties": False,
    }


def yaml_schema() -> dict:
    no_args = sorted(op for op, model in LAYERS.items() if not model.required())
    item = {
        "anyOf": [
            {
                "type": "string",
                "description": "a layer or block without arguments",
                "examples": no_args,
            },
            *(_layer_schema(op) for op in sorted(LAYERS)),
            *(_combinator_schema(kind) for kind in ir.COMBINATORS),
            {
                "type": "object",
                "description": "repeat a body n times; index names 0 .. n - 1 in the body",
                "properties": {"repeat": _EXPR, "index": {"type": "string"}, "body": _BODY},
                "required": ["repeat", "body"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "description": "the body when the condition holds, else the else",
                "properties": {"if": _EXPR, "body": _BODY, "else": _BODY},
                "required": ["if", "body"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "description": "a block call: {name: args, keyword: value}",
                "examples": sorted(builtin_blocks()),
                "minProperties": 1,
            },
        ]
    }
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
                    "stages": {"type": "object", "additionalProperties": _BODY},
                },
                "required": ["name", "input", "stages"],
                "additionalProperties": False,
            },
            "train": {**recipe, "additionalProperties": False},
        },
        "required": ["network"],
        "additionalProperties": False,
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
        },
    }

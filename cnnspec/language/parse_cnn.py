"""Front end for the text language: `.cnn` text -> plain dicts (see `ir.py` for their shape).

The grammar (`grammar.lark`) is the language reference. This module only turns its parse
tree into the plain data both front ends share; validation happens in the IR.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError
from lark.indenter import DedentError, Indenter

from ..errors import (
    CnnspecError,
    LimitError,
    Pos,
    Source,
    SpecError,
    SpecSyntaxError,
    did_you_mean,
)
from ..limits import DEFAULT, Limits
from .expressions import FUNCTIONS, bounded, int_literal
from .ir import COMBINATORS, JOINS, METADATA_KEYS, NETWORK_OPTIONS, RESERVED_WORDS

# Readable names for the terminals a syntax error can expect.
_TERMINALS = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "SHAPE": "a shape",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COLON": "':'",
    "COMMA": "','",
    "EQUAL": "'='",
    "STAR": "'*'",
    "IF": "'if'",
    "ELSE": "'else'",
    "COMPARE": "a comparison",
    "STRING": "a quoted path",
    "AS": "'as'",
    "FOR": "'for'",
    "IN": "'in'",
    "_NL": "end of line",
    "_INDENT": "an indented block",
    "_DEDENT": "less indentation",
    "COMBINATOR": "a combinator",
    "$END": "end of file",
}


class _Indenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4
    max_nesting = DEFAULT.max_nesting

    def process(self, stream):
        # Bound brackets and indentation while lexing, before any tree gets deep.
        for token in super().process(stream):
            if self.paren_level > self.max_nesting or len(self.indent_level) > self.max_nesting:
                raise LimitError(
                    f"nested more than {self.max_nesting} levels deep", (token.line, token.column)
                )
            yield token


@cache
def _parser(start: str) -> Lark:
    grammar = files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    grammar = grammar.replace("@COMBINATORS@", "|".join(COMBINATORS))
    postlex = _Indenter() if start == "start" else None
    return Lark(
        grammar,
        parser="lalr",
        start=start,
        postlex=postlex,
        propagate_positions=True,
        maybe_placeholders=True,
    )


def _pos(item) -> Pos:
    if isinstance(item, Token):
        return (item.line or 0, item.column or 0)
    return (getattr(item, "line", 0) or 0, getattr(item, "column", 0) or 0)


def _expected(expected: set[str]) -> str:
    names = sorted({_TERMINALS.get(t, repr(t.lower()) if t.isupper() else t) for t in expected})
    if len(names) > 6:
        return ""
    return "; expected " + " or ".join(names)


def _syntax_error(err: UnexpectedInput, offset: Pos = (0, 0), text: str = "") -> SpecSyntaxError:
    line, col = getattr(err, "line", 0) or 0, getattr(err, "column", 0) or 0
    token = getattr(err, "token", None)
    if text and token is not None and token.type in ("_INDENT", "_DEDENT"):
        line, col = _next_code_line(text, line) or (line, col)  # lark puts these a line early
    if offset != (0, 0):  # an expression embedded in YAML: shift to the YAML scalar
        line, col = offset[0] + line - 1, (offset[1] + col - 1 if line == 1 else col)
    if isinstance(err, UnexpectedCharacters):
        char = f"'{err.char}'" if err.char.isprintable() else repr(err.char)
        return SpecSyntaxError(f"unexpected character {char}", (line, col))
    if isinstance(err, UnexpectedEOF) or getattr(err, "token", None) in (None, ""):
        return SpecSyntaxError("unexpected end of input" + _expected(err.expected), (line, col))
    token = err.token
    if text and token.type not in ("_INDENT", "_DEDENT"):
        reserved = _reserved_as_name(text.split("\n")[line - 1], token, line, col, err)
        if reserved:
            return reserved
    if token.type == "COLON" and text:
        hint = _not_a_combinator(text.split("\n")[line - 1][: col - 1], line)
        if hint:
            return hint
    lines = text.split("\n") if text else []
    indented = line <= len(lines) and lines[line - 1][:1] in (" ", "\t")
    if indented and _after_outputs(lines[: line - 1]):  # a stage after `outputs:`
        return SpecSyntaxError(
            "'outputs: ...' is the network's last line: put the stages before it", (line, col)
        )
    if token.type == "_NL":
        what = "end of line"
    elif token.type in ("_INDENT", "_DEDENT"):
        what = "indentation"
    elif token.type == "$END":
        what = "end of file"
    else:
        what = f"'{token}'"
    before = text.split("\n")[line - 1][: col - 1] if text else ""
    hint = _counted_call(before) or _spaced_call(before)
    return SpecSyntaxError(f"unexpected {what}" + _expected(err.expected) + hint, (line, col))


def _counted_call(before: str) -> str:
    """A hint where the error stands inside `* max(n, 1)`: a repeat count is a number, a
    name or a bracketed expression, so the count read is `max`, then a group."""
    match = re.search(r"\*[ \t\f]*([A-Za-z_]\w*)[ \t\f]*\([^()]*$", before)
    if match is None or match.group(1) not in FUNCTIONS:
        return ""
    name = match.group(1)
    return f" (a repeat count is a number, a name or a bracketed expression: * ({name}(...)))"


def _after_outputs(lines: list[str]) -> bool:
    """Whether the last line with code before these is `outputs: ...`."""
    code = [line for line in lines if line.split("#")[0].strip()]
    return bool(code) and re.match(r"[ \t\f]*outputs[ \t\f]*:", code[-1]) is not None


def _spaced_call(before: str) -> str:
    """A hint where the error stands inside `name (...)`: read as a call, as in Python,
    where the writer may have meant the layer and then a group."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):  # the innermost bracket still open
        depth += {")": 1, "(": -1}.get(before[i], 0)
        if depth < 0:
            match = re.search(r"\b([A-Za-z_]\w*)[ \t\f]+$", before[:i])
            if match and match.group(1) not in RESERVED_WORDS:
                name = match.group(1)
                return (
                    f" ('{name} (' is a call of {name}, space or not; a group after it "
                    "goes on a line of its own, or first)"
                )
            return ""
    return ""


def _reserved_as_name(
    text: str, token: Token, line: int, col: int, err: UnexpectedInput
) -> SpecSyntaxError | None:
    """A reserved word where the spec has a name (a stage `block:`, a parameter `true=1`), or
    a combinator with neither ':' nor '(' after it, which can only be a tensor's name."""
    before = text[: col - 1]
    expected = getattr(err, "expected", ())
    outputs = re.match(r"([ \t\f]*)outputs[ \t\f]*:", text)
    if outputs and not re.fullmatch(r"[ \t\f]*outputs[ \t\f]*:[ \t\f]*\w[ \t\f,\w]*(#.*)?", text):
        return SpecSyntaxError(  # `outputs: conv(...)`, meant as a stage
            "'outputs' is a reserved word: 'outputs: a, b', the network's last line, lists "
            "the tensors it returns, and names no stage",
            (line, len(outputs.group(1)) + 1),
        )
    word, where = None, col
    as_name = text[col - 1 + len(str(token)) :].lstrip().startswith(":")  # `for: ...`
    if str(token) in ("if", "for") and not before.strip() and not as_name and "NAME" in expected:
        return SpecSyntaxError(  # `if flag:` among a network's stages
            f"'{token}' stands inside a body (a stage's indented lines, a block's), not among "
            "a network's stages, which are each named (`name: ...`)",
            (line, col),
        )
    if token.type != "NAME" and str(token) in RESERVED_WORDS and "NAME" in expected:
        word = str(token)  # read as a keyword where a name stands
    elif token.type == "COLON" and "NAME" in expected:  # `block:`, the word taken as keyword
        match = re.search(r"\b([a-z]+)[ \t\f]*$", before)
        if match and match.group(1) in RESERVED_WORDS:
            word, where = match.group(1), match.start(1) + 1
    if word is not None:
        return SpecSyntaxError(
            f"'{word}' is a reserved word ({_reserved_kind(word)}) and cannot be a name; "
            "choose another",
            (line, where),
        )
    match = re.search(rf"\b({'|'.join(COMBINATORS)})[ \t\f]*$", before)
    lead = before[: match.start()] if match else ""
    if match and "LPAR" in expected and token.type == "COLON" and lead.strip():
        word = match.group(1)  # a combinator mid-line
        if _has_layers(lead):  # `s: conv(4, k=1) add:`
            where = "put what comes before it on a line above"
        else:  # `s: add:`
            where = f"put it on the line below '{lead.strip()}', indented"
        return SpecSyntaxError(
            f"'{word}:' starts a line of its own, its branches indented below it; {where}",
            (line, match.start(1) + 1),
        )
    if match and "LPAR" in expected:
        word = match.group(1)
        return SpecSyntaxError(
            f"'{word}' is a reserved word (a combinator: '{word}:' over branches, or "
            f"'{word}(a, b)' joining tensors) and cannot name a tensor",
            (line, match.start(1) + 1),
        )
    return None


def _has_layers(text: str) -> bool:
    """Whether `text` (a line up to some point) holds more than a stage's or line's name."""
    return bool(re.sub(r"^[ \t\f]*\w+[ \t\f]*:", "", text).strip())


def _reserved_kind(word: str) -> str:
    if word == "else":  # most often an else with no if before it
        return "a keyword of the language, which follows the lines of an if"
    return "a combinator" if word in COMBINATORS else "a keyword of the language"


_BEFORE_COLON = re.compile(r"([ \t\f]*)([A-Za-z_]\w*)[ \t\f]*(\(.*\))?[ \t\f]*")


def _not_a_combinator(before: str, line: int) -> SpecSyntaxError | None:
    """`concatt:` where a line of layers is expected: most likely a misspelt combinator."""
    match = _BEFORE_COLON.fullmatch(before)
    if not match:
        return None
    name, col = match.group(2), len(match.group(1)) + 1
    hint = did_you_mean(name, COMBINATORS)
    if hint:
        return SpecSyntaxError(f"unknown combinator '{name}'{hint}", (line, col))
    return SpecSyntaxError(
        f"unexpected ':' after '{name}', which is not a combinator "
        f"({', '.join(COMBINATORS)}) and cannot name a branch here",
        (line, len(before) + 1),
    )


class _Kwargs:
    """Some of a parse tree's keyword arguments, as `_kwarg_list` reads them."""

    def __init__(self, children: list[dict]):
        self.children = children


def _kwarg_list(kwargs) -> list[dict]:
    return list(kwargs.children) if kwargs is not None else []


@v_args(inline=True, meta=True)
class _ToPlain(Transformer):
    """Parse tree -> plain dicts. Method names are grammar rule names."""

    # --- expressions ------------------------------------------------------------------
    def int(self, meta, token):
        return {"kind": "num", "value": int_literal(str(token), _pos(token)), "pos": _pos(token)}

    def float(self, meta, token):
        value = bounded(float(token), _pos(token), text=str(token))
        return {"kind": "num", "value": value, "pos": _pos(token)}

    def shape(self, meta, token):
        items, (line, col) = [], _pos(token)
        for d in str(token).split("x"):
            items.append({"kind": "num", "value": int_literal(d, (line, col)), "pos": _pos(token)})
            col += len(d) + 1
        return {"kind": "tuple", "items": items, "pos": _pos(token)}

    def name(self, meta, token):
        return {"kind": "name", "id": str(token), "pos": _pos(token)}

    def true(self, meta):
        return {"kind": "const", "value": True, "pos": _pos(meta)}

    def false(self, meta):
        return {"kind": "const", "value": False, "pos": _pos(meta)}

    def none(self, meta):
        return {"kind": "const", "value": None, "pos": _pos(meta)}

    def tuple(self, meta, *items):
        return {"kind": "tuple", "items": [i for i in items if i is not None], "pos": _pos(meta)}

    def neg(self, meta, operand):
        return {"kind": "neg", "operand": operand, "pos": _pos(meta)}

    def not_(self, meta, operand):
        return {"kind": "not", "operand": operand, "pos": _pos(meta)}

    def compare(self, meta, left, op, right):
        return {"kind": "binop", "op": str(op), "left": left, "right": right, "pos": _pos(meta)}

    def index(self, meta, target, index):
        return {"kind": "index", "target": target, "index": index, "pos": _pos(meta)}

    def func(self, meta, name, arguments):
        call = self.call(meta, name, arguments)
        return {
            "kind": "func",
            "name": call["op"],
            "args": call["args"],
            "kwargs": call["kwargs"],
            "pos": call["pos"],
        }

    def _binop(op):
        def method(self, meta, left, right):
            return {"kind": "binop", "op": op, "left": left, "right": right, "pos": _pos(meta)}

        return method

    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    floordiv = _binop("//")
    mod = _binop("%")
    truediv = _binop("/")
    and_ = _binop("and")
    or_ = _binop("or")
    del _binop

    # --- layers and sequences -------------------------------------------------------
    def kwarg(self, meta, name, value):
        return {"name": str(name), "value": value, "pos": _pos(name)}

    def call(self, meta, name, arguments):
        args, kwargs = [], []
        for a in arguments.children if arguments is not None else []:
            (kwargs if "name" in a and "value" in a else args).append(a)
        return {"kind": "call", "op": str(name), "args": args, "kwargs": kwargs, "pos": _pos(name)}

    def group(self, meta, seq):
        return ("group", seq)

    def repeat(self, meta, what, count, index):
        body = what[1] if isinstance(what, tuple) else [what]
        node = {"kind": "repeat", "count": count, "body": body, "pos": _pos(meta)}
        if index is not None:
            node.update(index=str(index), keypos={"index": _pos(index)})
        return node

    def for_loop(self, meta, *parts):
        *names, rows, body = parts
        names = [n for n in names if n is not None]
        node = {"kind": "for", "names": [str(n) for n in names], "rows": rows, "body": body}
        return {**node, "pos": _pos(meta), "keypos": {"names": _pos(names[0])}}

    def guarded(self, meta, what, test):
        body = what[1] if isinstance(what, tuple) else [what]
        return {"kind": "if", "test": test, "body": body, "pos": body[0]["pos"]}

    def conditional(self, meta, test, body, orelse):
        return {"kind": "if", "test": test, "body": body, "orelse": orelse or [], "pos": _pos(meta)}

    def seq(self, meta, *elements):
        items: list[dict] = []
        for e in elements:
            items.extend(e[1] if isinstance(e, tuple) else [e])  # a bare group just nests
        return items

    def inline_body(self, meta, seq):
        return seq

    def indented_body(self, meta, *lines):
        items: list[dict] = []
        for line in lines:
            items.extend(line if isinstance(line, list) else [line])
        return items

    def branch(self, meta, name, seq):
        pos = _pos(name) if name is not None else _pos(meta)
        return {"name": str(name) if name is not None else None, "body": seq, "pos": pos}

    def long_branch(self, meta, name, *lines):
        return {"name": str(name), "body": self.indented_body(meta, *lines), "pos": _pos(name)}

    def combinator_branch(self, meta, combinator):
        return {"name": None, "body": [combinator], "pos": combinator["pos"]}

    def inline_branches(self, meta, seq):
        return [{"name": None, "body": seq, "pos": _pos(meta)}]

    def indented_branches(self, meta, *branches):
        return list(branches)

    def combinator(self, meta, kind, arguments, branches):
        call = self.call(meta, kind, arguments)
        if call["args"]:
            raise SpecError(
                f"{kind}'s options are written name=value; named tensors are joined with "
                f"{kind}(a, b) on a stage's line, not before ':'",
                call["args"][0]["pos"],
            )
        return {
            "kind": str(kind),
            "kwargs": call["kwargs"],
            "branches": branches,
            "pos": _pos(kind),
        }

    def join(self, meta, kind, arguments):
        call = self.call(meta, kind, arguments)
        if str(kind) not in JOINS:
            raise SpecError(
                f"{kind} joins branches (written {kind}: ...); only {', '.join(JOINS)} join "
                "named tensors",
                _pos(kind),
            )
        for arg in [*call["args"], *call["kwargs"]]:
            if arg.get("kind") != "name":
                raise SpecError(
                    f"{kind}(...) joins named tensors: write the names of stages or input",
                    arg["pos"],
                )
        return {"kind": "join", "op": str(kind), "inputs": call["args"], "pos": _pos(kind)}

    def named_line(self, meta, name, body):
        hint = did_you_mean(str(name), COMBINATORS)
        if hint and body and body[0]["pos"][0] > name.line:  # `concatt:` over branches
            raise SpecSyntaxError(f"unknown combinator '{name}'{hint}", _pos(name))
        return {"kind": "line", "name": str(name), "body": body, "pos": _pos(name)}

    def outputs(self, meta, *names):
        return [{"kind": "name", "id": str(n), "pos": _pos(n)} for n in names if n is not None]

    # --- top level ----------------------------------------------------------------------
    def param(self, meta, name, default):
        return {"name": str(name), "default": default, "pos": _pos(name)}

    def block_def(self, meta, name, *rest):
        *params, body = rest
        return (
            "block",
            {
                "name": str(name),
                "params": [p for p in params if p is not None],
                "body": body,
                "pos": _pos(name),
            },
        )

    def use(self, meta, path):
        return ("use", {"path": str(path)[1:-1], "pos": _pos(path)})

    def stage(self, meta, name, body):
        return {"name": str(name), "body": body, "pos": _pos(name)}

    def network(self, meta, name, kwargs, *stages_and_outputs):
        *stages, outputs = stages_and_outputs
        # Options other than the network's own are its parameters, for the stages to read.
        own = [kw for kw in _kwarg_list(kwargs) if kw["name"] in NETWORK_OPTIONS]
        params = [kw for kw in _kwarg_list(kwargs) if kw["name"] not in NETWORK_OPTIONS]
        node = {
            **_options(_Kwargs(own), "network"),
            "name": str(name),
            "stages": list(stages),
            "pos": _pos(name),
        }
        if outputs is not None:
            node["outputs"] = outputs
        if params:
            _options(_Kwargs(params), "network")  # refuses a parameter given twice
            node["params"] = params
        return ("network", node)

    def recipe(self, meta, kwargs):
        return ("train", {**_options(kwargs, "train", words=True), "pos": _pos(meta)})

    def start(self, meta, *items):
        doc: dict = {"uses": [], "blocks": [], "network": None, "train": None, "pos": (1, 1)}
        for kind, node in items:
            if kind in ("block", "use"):
                doc[f"{kind}s"].append(node)
            elif doc[kind] is not None:
                what = "network" if kind == "network" else "train recipe"
                raise SpecError(f"a spec holds one {what}; this is a second one", node["pos"])
            else:
                doc[kind] = node
        return doc


def _options(kwargs, what: str, words: bool = False) -> dict:
    """`name=value` options of the network or the recipe: constants, with their positions."""
    options: dict = {"keypos": {}}
    for kw in _kwarg_list(kwargs):
        if kw["name"] in options["keypos"] or kw["name"] in METADATA_KEYS:
            reason = "given twice" if kw["name"] in options["keypos"] else "not an option"
            raise SpecError(f"{what} option '{kw['name']}' is {reason}", kw["pos"])
        options[kw["name"]] = _literal(kw["value"], names_are_words=words)
        options["keypos"][kw["name"]] = kw["pos"]
    return options


def _literal(expr: dict, names_are_words: bool = False):
    """A constant expression as a Python value (network and train options are constants).

    Anything else is passed through unchanged for the IR to reject with a position.
    """
    kind = expr["kind"]
    if kind in ("num", "const"):
        return expr["value"]
    if kind == "neg" and expr["operand"]["kind"] == "num":
        return -expr["operand"]["value"]
    if kind == "tuple":
        return [_literal(i, names_are_words) for i in expr["items"]]
    if kind == "name" and names_are_words:
        return expr["id"]
    return expr


def parse_cnn(text: str, limits: Limits = DEFAULT) -> dict:
    """Parse `.cnn` text into the plain document dict."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_file_bytes:
        raise LimitError(f"spec is larger than {limits.max_file_bytes} bytes", (1, 1))
    if not text.endswith("\n"):
        text += "\n"
    parser = _parser("start")
    parser.options.postlex.max_nesting = limits.max_nesting
    try:
        tree = parser.parse(text)
        _check_expression_depth(tree, limits)
        return _ToPlain().transform(tree)
    except UnexpectedInput as err:
        raise _syntax_error(err, text=text) from None
    except DedentError:
        line = _dedent_line(text)
        raise SpecSyntaxError("indentation does not match any outer level", (line, 1)) from None
    except RecursionError:
        raise LimitError("spec is nested too deeply to read", (1, 1)) from None
    except VisitError as err:  # lark wraps errors raised inside the transformer
        inner = err.orig_exc
        if isinstance(inner, CnnspecError):
            raise inner from None
        if isinstance(inner, RecursionError):
            raise LimitError("spec is nested too deeply to read", (1, 1)) from None
        raise


# The parse tree's nodes that become nodes of an expression (the grammar's aliases).
_EXPRESSION_NODES = frozenset(
    """or_ and_ not_ compare add sub mul floordiv mod truediv neg index func kwarg int float
    shape name true false none tuple""".split()
)


def _check_expression_depth(tree: Tree, limits: Limits) -> None:
    """Refuse an expression whose operators lie more than `max_expression_depth` inside one
    another, at the expression's start, before anything recurses through it. A long flat
    chain (`1 + 1 + ... + 1`) is such an expression: each operator holds the ones before."""
    heights: dict[int, int] = {}
    order, stack = [], [tree]
    while stack:  # the nodes, each after those above it
        node = stack.pop()
        order.append(node)
        stack.extend(child for child in node.children if isinstance(child, Tree))
    for node in reversed(order):  # heights from the leaves up
        below = max((heights[id(c)] for c in node.children if isinstance(c, Tree)), default=0)
        heights[id(node)] = below + (node.data in _EXPRESSION_NODES)
    for node in order:  # the outermost expression too deep: where it starts
        if node.data in _EXPRESSION_NODES and heights[id(node)] > limits.max_expression_depth:
            raise LimitError(
                f"expression nests more than {limits.max_expression_depth} operations (in a "
                "chain such as 1 + 2 + 3, each operator holds the ones before it); compute "
                "parts of it as block or network parameters",
                _pos(node.meta),
            )


def _next_code_line(text: str, after: int) -> Pos | None:
    """Where the first non-blank, non-comment line after line `after` starts."""
    for number, line in enumerate(text.split("\n")[after:], after + 1):
        stripped = line.lstrip(" \t\f")
        if stripped and not stripped.startswith("#"):
            return number, len(line) - len(stripped) + 1
    return None


def _dedent_line(text: str) -> int:
    """The first line whose indentation matches no enclosing level (lark gives none)."""
    levels = [0]
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip(" \t\f")
        if not stripped or stripped.startswith("#"):
            continue
        lead = line[: len(line) - len(stripped)]
        indent = lead.count(" ") + lead.count("\t") * _Indenter.tab_len  # as lark counts it
        if indent > levels[-1]:
            levels.append(indent)
        else:
            while indent < levels[-1]:
                levels.pop()
            if indent != levels[-1]:
                return number
    return 1


def parse_expression(text: str, pos: Pos = (1, 1), limits: Limits = DEFAULT) -> dict:
    """Parse one expression (used by the YAML front end for string values)."""
    return _parse_snippet("expr", text, pos, limits)


def parse_param(text: str, pos: Pos = (1, 1), limits: Limits = DEFAULT) -> dict:
    """Parse one block parameter, `name` or `name=default` (YAML block definitions)."""
    return _parse_snippet("param", text, pos, limits)


def _parse_snippet(start: str, text: str, pos: Pos, limits: Limits) -> dict:
    _check_brackets(text, pos, limits)
    try:
        tree = _parser(start).parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, pos) from None
    try:
        _check_expression_depth(tree, limits)
    except LimitError as err:
        err.pos = _shift_pos(err.pos, pos)
        raise
    try:
        return _shift(_ToPlain().transform(tree), pos)
    except UnexpectedInput as err:
        raise _syntax_error(err, pos) from None
    except RecursionError:  # a very long chain of operators
        raise LimitError("expression is nested too deeply to read", pos) from None
    except VisitError as err:  # raised inside the transformer, at a position in the snippet
        inner = err.orig_exc
        if isinstance(inner, CnnspecError):
            inner.pos = _shift_pos(inner.pos, pos)
            raise inner from None
        if isinstance(inner, RecursionError):
            raise LimitError("expression is nested too deeply to read", pos) from None
        raise


def _check_brackets(text: str, origin: Pos, limits: Limits) -> None:
    """Bound the brackets of a snippet before parsing it, as the .cnn lexer does for files."""
    depth, line, col = 0, 1, 1
    for char in text:
        if char == "#":
            break
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if depth > limits.max_nesting:
            where = _shift_pos((line, col), origin)
            raise LimitError(f"nested more than {limits.max_nesting} levels deep", where)
        line, col = (line + 1, 1) if char == "\n" else (line, col + 1)


def _shift(node, origin: Pos):
    """Move positions parsed from a snippet to where the snippet sits in its file."""
    if isinstance(node, list):
        return [_shift(n, origin) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _shift(v, origin) for k, v in node.items()}
    if "pos" in node:
        out["pos"] = _shift_pos(node["pos"], origin)
    return out


def _shift_pos(pos: Pos, origin: Pos) -> Pos:
    line, col = pos
    return (origin[0] + line - 1, origin[1] + col - 1 if line == 1 else col)


# The name errors and graph nodes give the file of the built-in blocks.
PRELUDE = "cnnspec/language/prelude.cnn"


@cache
def parse_prelude() -> tuple[dict, Source]:
    """The built-in blocks, `prelude.cnn`, as plain data (blocks only, no network)."""
    text = files(__package__).joinpath("prelude.cnn").read_text(encoding="utf-8")
    source = Source(PRELUDE, text)
    try:
        return parse_cnn(text), source
    except SpecError as err:
        raise err.with_source(source) from None

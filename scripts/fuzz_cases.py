"""What scripts/fuzz.py runs: generated specs that use the language's newer features, the
folders they live in (with `use`d files, paths that leave the folder, symbolic links), and
weights files for transfer, intact or damaged.

Every generator takes a `random.Random` and nothing else, so a seed reproduces a case.
"""

from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass, field

# Small blocks the generated networks call; each keeps the channels it is given as `c`.
BLOCKS = {
    "unit": """\
block unit(c, k=3, act=relu):
    conv(c, k=k, p=k // 2) batchnorm act
""",
    "gated": """\
block gated(c):
    main: conv(c, k=3, p=1) relu
    gate: main gap conv(max(c // 4, 1), k=1) relu conv(c, k=1) sigmoid
    out: mul(main, gate)
""",
    "table": """\
block table(c, width=1.0):
    for (k, n) in [(1, 1), (3, 2)]:
        (conv(make_divisible(c * width, 2), k=k, p=k // 2) relu drop_path(0.1 * i / n)) * n as i
    conv(c, k=1)
""",
    "choose": """\
block choose(c, s=1):
    if s == 1 and c == C:
        add: conv(c, k=3, p=1) batchnorm
    else:
        conv(c, k=3, s=s, p=1) batchnorm
""",
    "sk": """\
block sk(c, halves=false):
    select(width=8, split=halves):
        conv(c, k=3, p=1) relu
        conv(c, k=3, p=2, d=2) relu
""",
    "shuffle": """\
block shuffle(c):
    split:
        identity
        conv(C, k=3, p=1, groups=C) batchnorm conv(C, k=1) relu
    channel_shuffle(2)
""",
}

SPECIAL = ["0", "-1", "1.5", "10000", "1e308", "99999999999", "(1, 2)", "none", "true", "C"]


@dataclass
class Net:
    """A network being written: its stages, the level (halvings) of each tensor, and
    which tensors something reads."""

    rng: random.Random
    width: int
    lines: list[str] = field(default_factory=list)
    level: dict[str, int] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)
    blocks: set[str] = field(default_factory=set)

    def num(self, value: int | str) -> str:
        """`value`, or now and then a value at or past some bound."""
        return self.rng.choice(SPECIAL) if self.rng.random() < 0.03 else str(value)

    def read(self, name: str) -> None:
        if name in self.unread:
            self.unread.remove(name)

    def stage(self, name: str, body: str, level: int, reads: list[str]) -> None:
        for r in reads:
            self.read(r)
        self.lines.append(f"    {name}:" + ("" if body.startswith("\n") else " ") + body)
        self.level[name] = level
        self.unread.append(name)

    def call(self, block: str, args: str) -> str:
        self.blocks.add(block)
        return f"{block}({args})"


def _stage(net: Net, name: str) -> None:
    """One random stage, reading the stage above or tensors named before it."""
    rng, c = net.rng, net.width
    last = list(net.level)[-1]
    lv = net.level[last]
    same = [t for t, v in net.level.items() if v == lv and t != last]
    lower = [t for t, v in net.level.items() if v < lv]
    kind = rng.choice(
        ["block", "repeat", "if", "down", "join", "gate", "up", "transpose", "guard", "plain",
         "fork"]
    )  # fmt: skip
    if kind == "block":
        block = rng.choice(sorted(BLOCKS))
        extra = {"unit": f", k={net.num(rng.choice([1, 3, 5]))}, act=hardswish", "choose": ", s=1"}
        extra["sk"] = f", halves={rng.choice(['true', 'false'])}"
        extra["table"] = f", width={rng.choice(['0.5', 'width', '1.0'])}"
        body = net.call(block, f"C{extra.get(block, '')}")
        net.stage(name, body, lv, [last])
    elif kind == "repeat":
        n = net.num(rng.randint(1, 3))
        body = f"(conv(C, k=3, p=1) relu drop_path(0.2 * i / {n})) * {n} as i"
        net.stage(name, body, lv, [last])
    elif kind == "if":
        other = rng.choice(["gelu", "relu6 if depth > 1", "identity"])
        lines = [
            f"if width > {net.num(rng.choice(['0.5', '1']))}:",
            f"    conv(C, k={net.num(1)}) relu",
            "else:",
            f"    {net.call('choose', 'C, s=1')}",
            other,
        ]
        net.stage(name, "".join(f"\n        {line}" for line in lines), lv, [last])
    elif kind == "down":
        net.stage(name, f"{net.call('choose', 'C, s=2')} relu", lv + 1, [last])
    elif kind == "join" and same:
        other = rng.choice(same)
        op = rng.choice(["add", "concat", "mul"])
        tail = f" conv({c}, k=1)" if op == "concat" else ""
        net.stage(name, f"{op}({last}, {other}){tail}", lv, [last, other])
    elif kind == "gate":
        # the gate is 1x1: a level of its own, so that nothing else joins it
        net.stage(name, f"{last} gap conv({c}, k=1) sigmoid", lv + 1000, [last])
        net.stage(f"{name}m", f"mul({last}, {name})", lv, [last, name])
    elif kind == "up" and lower:
        like = rng.choice(lower)
        mode = rng.choice(["nearest", "bilinear"])
        net.stage(name, f"{last} upsample(like={like}, mode={mode})", net.level[like], [last])
        net.stage(f"{name}j", f"add({name}, {like})", net.level[like], [name, like])
    elif kind == "transpose" and lower:
        like = rng.choice(lower)
        body = f"conv_transpose(C, k={net.num(2)}, s=2, init=bilinear) crop(like={like})"
        if net.level[like] != lv - 1:
            body = f"upsample(like={like})"
        net.stage(name, body, net.level[like], [last])
    elif kind == "fork":  # from an earlier tensor: the stage above may become an output
        start = rng.choice([t for t, v in net.level.items() if v < 1000])
        net.stage(name, f"{start} conv(C, k=1) relu", net.level[start], [start])
    elif kind == "guard":
        net.stage(name, "(conv(C, k=3, p=1) relu) if depth > 1 relu", lv, [last])
    else:
        op = rng.choice(["gelu", "silu", f"groupnorm({net.num(2)})", "layernorm2d", "identity"])
        net.stage(name, op, lv, [last])


def spec_text(rng: random.Random) -> str:
    """A network of random stages over the newer constructs, valid most of the time."""
    width = 2 * rng.randint(2, 6)
    net = Net(rng, width)
    size = rng.choice([8, 16, 32])
    net.stage("stem", f"conv({width}, k=3, p=1) relu", 0, [])
    for i in range(rng.randint(1, 7)):
        _stage(net, f"s{i}")
    if rng.random() < 0.5:  # a classifier on the last tensor
        net.stage("head", "gap flatten linear(classes)", 99, [list(net.level)[-1]])
    params = f"width={rng.choice(['0.5', '1.0', '2'])}, depth={rng.randint(1, 3)}"
    header = f"network Gen(input={rng.randint(1, 3)}x{size}x{size}, classes=10, {params}):"
    # both parameters must be read: a stage that reads them keeps them from being refused
    body = [*net.lines, "    tail: relu if width > 0 and depth > 0"]
    net.unread = [t for t in net.unread if t != list(net.level)[-1]] + ["tail"]
    if len(net.unread) > 1:
        body.append(f"    outputs: {', '.join(net.unread)}")
    blocks = [BLOCKS[b] for b in sorted(net.blocks)]
    recipe = f"train(lr={rng.choice(['0.1', '0.01'])}, epochs=1, batch=8)\n"
    return "".join(blocks) + "\n".join([header, *body]) + "\n\n" + recipe


def split_blocks(text: str) -> tuple[str, str]:
    """The spec's block definitions, and the rest: to put the blocks in a used file."""
    head, sep, rest = text.partition("network ")
    return head, sep + rest


# --- folders for `use` ------------------------------------------------------------------

SECRET = "SECRET-7f3a"  # in files outside the spec's folder: no output may show it


# The ways of `use` that reach outside the spec's folder: each must be refused.
LEAVING = ("leave", "link_out", "absolute")


def use_folder(rng: random.Random, spec: str) -> tuple[str, dict[str, str | tuple[str, str]]]:
    """Files of a folder `root/` (and one beside it) for a spec whose blocks are used from
    another file: plain text, or ("link", target) for a symbolic link, ("fifo", "") for a
    named pipe; and which way the spec's `use` goes. The spec is root/main.cnn."""
    blocks, network = split_blocks(spec)
    outside = f"block leak(c):\n    conv(c, k=1)  # {SECRET}\n"
    files: dict[str, str | tuple[str, str]] = {"outside.cnn": outside}
    way = rng.choice(
        ["plain", "nested", "leave", "link_out", "link_in", "absolute", "cycle", "fifo",
         "folder", "binary", "missing", "self", "control", "empty", "deep"]
    )  # fmt: skip
    target = {
        "plain": "blocks.cnn", "nested": "sub/blocks.cnn", "leave": "../outside.cnn",
        "link_out": "link.cnn", "link_in": "link.cnn", "absolute": "/etc/passwd",
        "cycle": "a.cnn", "fifo": "pipe.cnn", "folder": "sub", "binary": "bin.cnn",
        "missing": "nowhere.cnn", "self": "main.cnn", "control": "\x1b[31mred.cnn",
        "empty": "", "deep": "d0.cnn",
    }[way]  # fmt: skip
    files["root/blocks.cnn"] = blocks
    if way == "nested":
        files["root/sub/blocks.cnn"] = 'use "../more.cnn"\n' + blocks
        files["root/more.cnn"] = "block more(c):\n    relu\n"
    elif way == "link_out":
        files["root/link.cnn"] = ("link", "../outside.cnn")
    elif way == "link_in":
        files["root/link.cnn"] = ("link", "blocks.cnn")
    elif way == "cycle":
        files["root/a.cnn"] = 'use "b.cnn"\n' + blocks
        files["root/b.cnn"] = 'use "a.cnn"\n'
    elif way == "fifo":
        files["root/pipe.cnn"] = ("fifo", "")
    elif way == "folder":
        files["root/sub/x.cnn"] = blocks
    elif way == "binary":
        files["root/bin.cnn"] = "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(200))
    elif way == "deep":
        depth = rng.randint(1, 12)
        for i in range(depth):
            files[f"root/d{i}.cnn"] = f'use "d{i + 1}.cnn"\n'
        files[f"root/d{depth}.cnn"] = blocks
    if rng.random() < 0.3:  # and a block of the outside file called by name
        network = network.replace("relu if width", "leak(2) relu if width", 1)
    files["root/main.cnn"] = f'use "{target}"\n' + network
    return way, files


# --- weights for transfer ---------------------------------------------------------------


def damaged_weights(rng: random.Random, state: dict, torch) -> tuple[str, bytes]:
    """A weights file made from `state` (a state_dict), saved as torch.save does and then
    perhaps damaged: (how, the file's bytes)."""
    state = dict(state)
    how = rng.choice(
        ["intact", "truncate", "flip", "dtype", "shape", "drop", "extra", "not_tensor",
         "wrapped", "object", "deflate", "empty", "sparse", "huge_claim", "reorder"]
    )  # fmt: skip
    keys = list(state) or ["x"]
    key = rng.choice(keys)
    if how == "dtype" and state:
        kind = rng.choice([torch.float16, torch.int64, torch.bool, torch.complex64, torch.uint8])
        state[key] = state[key].to(kind)
    elif how == "shape" and state:
        state[key] = torch.randn([rng.randint(0, 5) for _ in range(rng.randint(0, 4))])
    elif how == "drop" and state:
        del state[key]
    elif how == "extra":
        state["extra.weight"] = torch.randn(3)
    elif how == "not_tensor":
        state[key] = rng.choice([1, "text", [1, 2], None])
    elif how == "wrapped":
        state = {rng.choice(["state_dict", "model"]): state, "epoch": 3}
    elif how == "object":
        state = {key: io.StringIO("x")}
    elif how == "empty":
        state = {}
    elif how == "sparse":
        state[key] = torch.eye(3).to_sparse()
    elif how == "reorder":
        state = dict(reversed(list(state.items())))
    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
    except Exception:  # noqa: BLE001  (an object torch cannot save: save the plain one)
        buffer = io.BytesIO()
        torch.save({"x": torch.zeros(1)}, buffer)
    data = buffer.getvalue()
    if how == "truncate":
        data = data[: rng.randrange(len(data))]
    elif how == "flip":
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
    elif how == "deflate":
        data = _recompressed(data)
    elif how == "huge_claim":
        data = data[:-22] + data[-22:-12] + (2**31 - 1).to_bytes(4, "little") + data[-8:]
    return how, data


def _recompressed(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()

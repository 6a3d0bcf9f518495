"""The files a spec uses (`use "blocks.cnn"`): read, parsed and name-checked, each once.

Paths are relative to the file that names them; the number of files, the depth and the
text of the spec and its files all told are bounded, cycles are refused, and an error
inside a used file is shown in that file with the `use` that brought it in.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CnnspecError, LimitError, Source, SpecError
from ..language import ir
from ..language.parse_cnn import parse_cnn
from ..language.parse_yaml import parse_yaml
from ..language.reading import read
from ..limits import Limits
from .resolve import resolve


class UsedFiles:
    """The blocks of the files a spec uses, read depth first: each file once, every path
    relative to the file that names it, within the limits and without cycles."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.blocks: list[ir.BlockDef] = []
        self.origins: dict[str, tuple[Source, str]] = {}
        self.read: set[Path] = set()
        self.text_bytes = 0  # of the spec and every file read so far: at most max_file_bytes

    def load(self, uses, by: Source, chain: list[Path]) -> None:
        if not chain:  # the spec itself: its text counts toward the bound too
            self.text_bytes += _size(by.text)
        base = Path(by.name).parent if by.name != "<string>" else Path.cwd()
        for use in uses:
            path = (base / use.path).resolve()
            if path in chain or Path(by.name).resolve() == path:
                cycle = " -> ".join(p.name for p in [*chain, path])
                raise SpecError(f"'{use.path}' is used in a cycle ({cycle})", use.pos).with_source(
                    by
                )
            if path in self.read:
                continue
            if len(chain) >= self.limits.max_use_depth or len(self.read) >= self.limits.max_uses:
                raise LimitError(
                    f"specs may use at most {self.limits.max_uses} files, "
                    f"{self.limits.max_use_depth} deep",
                    use.pos,
                ).with_source(by)
            self.read.add(path)
            self.file(path, use, by, [*chain, path])

    def file(self, path: Path, use: ir.Use, by: Source, chain: list[Path]) -> None:
        context = f"used at {by.name}:{use.pos[0]}:{use.pos[1]}"
        try:
            source, fmt = read(path, limits=self.limits)
        except OSError as err:
            raise SpecError(f"cannot use '{use.path}': {err.strerror or err}", use.pos).with_source(
                by
            ) from None
        except CnnspecError as err:
            raise _in_used(err, source=None, context=context) from None
        # Each file is bounded alone, and so are all of them together: 64 files of 1 MiB
        # each would take hours to parse.
        self.text_bytes += _size(source.text)
        if self.text_bytes > self.limits.max_file_bytes:
            raise LimitError(
                f"the spec and the files it uses are larger than {self.limits.max_file_bytes} "
                f"bytes in all, with '{use.path}'",
                use.pos,
            ).with_source(by)
        try:
            text = source.text
            plain = parse_cnn(text, self.limits) if fmt == "cnn" else parse_yaml(text, self.limits)
            extra = plain.get("network") or plain.get("train")
            if extra is not None:
                raise SpecError(
                    "a used file holds blocks only (and uses), not a network or a train recipe",
                    extra["pos"],
                )
            plain["network"] = {"name": "used", "input": [1], "stages": []}
            doc = ir.to_ir(plain)
        except CnnspecError as err:
            raise _in_used(err, source, context) from None
        self.load(doc.uses, source, chain)
        try:
            resolve(doc.model_copy(update={"used": tuple(self.blocks), "origins": {}}))
            for block in doc.blocks:
                if block.name in self.origins:
                    other = self.origins[block.name][0].name
                    raise SpecError(f"block '{block.name}' is also defined in {other}", block.pos)
        except CnnspecError as err:
            raise _in_used(err, source, context) from None
        for block in doc.blocks:
            self.blocks.append(block)
            self.origins[block.name] = (source, context)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _in_used(err: CnnspecError, source: Source | None, context: str) -> CnnspecError:
    """An error in a used file: placed in that file, saying which `use` brought it in."""
    if context not in err.message:
        err.message = f"{err.message} ({context})"
        err.args = (err.message,)
    return err.with_source(source) if source is not None else err

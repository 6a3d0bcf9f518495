"""The files a spec uses (`use "blocks.cnn"`): read, parsed and name-checked, each once.

Paths are relative to the file that names them; the number of files and the depth are
bounded, cycles are refused, and an error inside a used file is shown in that file with
the `use` that brought it in.
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

    def load(self, uses, by: Source, chain: list[Path]) -> None:
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
            try:
                self.file(path, use, by, [*chain, path])
            except CnnspecError as err:
                err.via.append((by.name if chain else None, use.pos))
                raise

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
        self.library(source, fmt, chain, context)

    def library(
        self, source: Source, fmt: str, chain: list[Path], context: str | None = None
    ) -> ir.Document:
        """A file of blocks (and uses) read and checked, its blocks added to those found: a
        used file, or such a file on its own (an editor's). Errors are placed in it."""
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
        if context is not None:  # a used file's: callable from the file that uses it
            for block in doc.blocks:
                self.blocks.append(block)
                self.origins[block.name] = (source, context)
        return doc


def _in_used(err: CnnspecError, source: Source | None, context: str | None) -> CnnspecError:
    """An error in a used file: placed in that file, saying which `use` brought it in."""
    for found in (err, *err.more):
        if context is not None and context not in found.message:
            found.message = f"{found.message} ({context})"
            found.args = (found.message,)
        if source is not None:
            found.with_source(source)
    return err

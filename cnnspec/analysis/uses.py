"""The files a spec uses (`use "blocks.cnn"`): read, parsed and name-checked, each once.

Paths are relative to the file that names them, and must lead to a file inside the root:
the folder of the spec being loaded (the current folder for spec text) unless the caller
names another (`--use-root`). A path that leaves it, as written or through a symbolic
link, is refused before anything outside is touched, so a spec you were handed can read
nothing of yours beyond its own folder, nor learn whether a file exists there. A file
that does not begin as a spec does (`block`, `use`, `network` or `train`; in YAML one of
those keys) is refused without a line of it shown. The number of files, their depth and
the text they hold together are bounded, cycles are refused, and an error inside a used
file is shown in that file with the `use` that brought it in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CnnspecError, LimitError, Source, SpecError, shown
from ..language import ir
from ..language.parse_cnn import parse_cnn
from ..language.parse_yaml import parse_yaml
from ..language.reading import read
from ..limits import Limits
from .resolve import resolve


class UsedFiles:
    """The blocks of the files a spec uses, read depth first: each file once, every path
    relative to the file that names it, within the limits and without cycles."""

    def __init__(self, limits: Limits, top: Source, root: str | os.PathLike | None = None):
        self.limits = limits
        self.blocks: list[ir.BlockDef] = []
        self.origins: dict[str, tuple[Source, str]] = {}
        self.read: set[Path] = set()
        self.sources: list[Source] = []  # every file read, in order
        if root is None:
            root = Path(top.name).parent if top.name != "<string>" else Path.cwd()
        self.root = _absolute(Path(root))
        self.real_root = Path(os.path.realpath(self.root))
        self.text = len(top.text.encode("utf-8", "surrogatepass"))  # all files read, told

    def load(self, uses, by: Source, chain: list[Path]) -> None:
        base = Path(by.name).parent if by.name != "<string>" else Path.cwd()
        for use in uses:
            path = self.locate(use, base, by)
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

    def locate(self, use: ir.Use, base: Path, by: Source) -> Path:
        """The file a `use` names, resolved, or a positioned error if it leaves the root
        (checked as written before any file is looked at, then through links)."""

        def refuse(why: str) -> SpecError:
            return SpecError(f"cannot use '{shown(use.path)}': {why}", use.pos).with_source(by)

        outside = (
            f"it is outside {shown(str(self.root))}, the folder used files must be in "
            "(--use-root names another)"
        )
        try:
            written = _absolute(base / use.path)
            if not written.is_relative_to(self.root):
                raise refuse(outside)
            path = Path(os.path.realpath(written, strict=False))
        except ValueError:  # a NUL or a lone surrogate: no file can have that name
            raise refuse("that is no file name") from None
        except (RuntimeError, OSError) as err:  # a loop of symbolic links
            raise refuse(
                f"it cannot be followed ({getattr(err, 'strerror', None) or err})"
            ) from None
        if not path.is_relative_to(self.real_root):
            raise refuse(outside.replace("it is outside", "a symbolic link leads outside"))
        return path

    def file(self, path: Path, use: ir.Use, by: Source, chain: list[Path]) -> None:
        context = f"used at {shown(by.name)}:{use.pos[0]}:{use.pos[1]}"

        def refuse(why: str) -> SpecError:
            return SpecError(f"cannot use '{shown(use.path)}': {why}", use.pos).with_source(by)

        try:
            source, fmt = read(path, limits=self.limits)
        except OSError as err:
            raise refuse(err.strerror or str(err)) from None
        except CnnspecError as err:
            raise _in_used(err, source=None, context=context) from None
        self.text += len(source.text.encode("utf-8", "surrogatepass"))
        if self.text > self.limits.max_file_bytes:
            raise LimitError(
                f"the spec and the files it uses hold more than {self.limits.max_file_bytes:,} "
                "bytes of text together",
                use.pos,
            ).with_source(by)
        self.sources.append(source)
        if not _begins_as_a_spec(source.text, fmt):
            raise refuse(
                "it does not begin as a file of blocks does (`block` or `use`), so none of "
                "it is read or shown"
            )
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


def _absolute(path: Path) -> Path:
    """`path` made absolute and normalised as written (`a/../b` is `b`), without asking
    the file system anything, so that nothing outside the root is ever looked at."""
    return Path(os.path.normpath(Path.cwd() / path))


_SPEC_START = {
    "cnn": re.compile(r"(use|block|network|train)\b"),
    "yaml": re.compile(r"""(\{\s*)?["']?(use|blocks|network|train)["']?\s*:"""),
}


def _begins_as_a_spec(text: str, fmt: str) -> bool:
    """Whether the first line that says anything (not blank, not a comment, nor YAML's
    `---`) starts as a spec's does: a file that does not is no spec, whatever it holds."""
    for line in text.split("\n"):
        line = line.strip()
        if line and not line.startswith("#") and line != "---":
            return bool(_SPEC_START[fmt].match(line))
    return True  # nothing in it: an empty file of blocks


def _in_used(err: CnnspecError, source: Source | None, context: str | None) -> CnnspecError:
    """An error in a used file: placed in that file, saying which `use` brought it in."""
    for found in (err, *err.more):
        if context is not None and context not in found.message:
            found.message = f"{found.message} ({context})"
            found.args = (found.message,)
        if source is not None:
            found.with_source(source)
    return err

"""Spec text from a path or a string: bounded in size, decoded, line endings made one.

A path that cannot be read raises the OSError that says why, which the command line
reports as a usage error; everything else wrong with the text is a positioned error.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from ..errors import LimitError, Source, SpecError, SpecSyntaxError
from ..limits import DEFAULT, Limits

SUFFIXES = {".cnn": "cnn", ".yaml": "yaml", ".yml": "yaml"}


def read(
    source: str | os.PathLike,
    format: str | None = None,
    limits: Limits = DEFAULT,
    name: str | os.PathLike | None = None,
) -> tuple[Source, str]:
    """A spec path or spec text, and its format ("cnn" or "yaml").

    A path that cannot be read raises the OSError that says why (FileNotFoundError,
    IsADirectoryError, PermissionError, or an OSError for a FIFO or device): the command line
    reports those as usage errors. A single line with no spec in it that names no file is
    taken for a mistyped path, not for spec text.

    With `name`, `source` is spec text, never a path: the text of the file at that path, as
    an editor holds it before it is saved, or a notebook's cell. The format follows the
    name's suffix (or the text), errors call it by that name, and the files it uses are
    found beside it.
    """
    if name is not None:
        _check_unicode(str(source), str(name))
        suffix = SUFFIXES.get(Path(name).suffix.lower())
        fmt = format or suffix or _guess_format(normalize(str(source)))
        return Source(str(name), normalize(str(source), fmt)), fmt
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        data = _read_file(path, limits)
        fmt = format or SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise SpecError(f"cannot tell the format of '{path}': use .cnn, .yaml or .yml")
        name = str(source)
        text = _decode(data, name)
    else:
        name = "<string>"
        text = str(source)
        _check_unicode(text, name)
        fmt = format or _guess_format(normalize(text))
    return Source(name, normalize(text, fmt)), fmt


def _read_file(path: Path, limits: Limits) -> bytes:
    # Opened without blocking (a FIFO, or a file such as /proc/kmsg that waits for data
    # rather than ending, would hang the read), then checked to be a regular file, on what
    # was opened rather than on the name, which may change in between.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    if stat.S_ISDIR(path.stat().st_mode):  # FileNotFoundError and the like: usage errors
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limits.max_file_bytes:  # refused before reading it
            err = LimitError(f"spec is larger than {limits.max_file_bytes} bytes", (1, 1))
            raise err.with_source(Source(str(path), ""))
        try:
            data = f.read(limits.max_file_bytes + 1)  # it may have grown since
        except BlockingIOError:
            raise OSError(errno.EAGAIN, "a file that waits for data to read", str(path)) from None
        if data is None:  # no data yet, from a file that would have blocked
            raise OSError(errno.EAGAIN, "a file that waits for data to read", str(path))
    if len(data) > limits.max_file_bytes:
        err = LimitError(f"spec is larger than {limits.max_file_bytes} bytes", (1, 1))
        raise err.with_source(Source(str(path), ""))
    return data


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8")  # valid up to the bad byte
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        shown = Source(name, normalize(data.decode("utf-8", "replace")))
        raise SpecSyntaxError("spec is not UTF-8 text", (line, col), shown) from None


def _check_unicode(text: str, name: str) -> None:
    """Spec text given as a string may hold lone surrogates, which no file can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        line = text.count("\n", 0, err.start) + 1
        col = err.start - (text.rfind("\n", 0, err.start) + 1) + 1
        shown = Source(name, normalize(text.encode("utf-8", "replace").decode("utf-8")))
        raise SpecSyntaxError("spec is not valid Unicode text", (line, col), shown) from None


_YAML_BREAKS = str.maketrans({"\x85": "\n", "\u2028": "\n", "\u2029": "\n"})


def normalize(text: str, fmt: str = "cnn") -> str:
    """Text with every line ending as "\n", so that the parsers and the caret agree on lines.

    CRLF and a lone CR become LF, and a leading byte-order mark goes. YAML also counts NEL,
    U+2028 and U+2029 as line breaks, so for YAML those become LF too; in .cnn they are not
    line breaks, and stay to be reported where they stand.
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_YAML_BREAKS) if fmt == "yaml" else text


def _looks_like_path(source: str) -> bool:
    if "\n" in source or "\r" in source or not source.strip():
        return False
    if Path(source).suffix.lower() in SUFFIXES or os.path.exists(source):
        return True
    # One line that holds no spec (no `network` or `block`, no YAML mapping) is a mistyped
    # path, such as `specs/lenet`: say that it does not exist rather than parse it.
    return not re.search(r"\b(network|block)\b|:", source)


def _guess_format(text: str) -> str:
    return "cnn" if re.search(r"^\s*(network|block)\s+\w+\s*\(", text, re.MULTILINE) else "yaml"

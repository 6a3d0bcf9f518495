"""Bounds that keep a hostile or mistaken spec from exhausting the machine.

Every bound is checked before the work it guards: file size before parsing, nesting while
parsing, repeats and layer counts while expanding, parameters before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 1 << 20  # 1 MiB of spec text
    max_nesting: int = 32  # brackets, indentation levels, and block-in-block calls
    max_repeat: int = 10_000  # one `* n`
    max_layers: int = 200_000  # layers after every block and repeat is expanded
    max_params: int = 1_000_000_000  # ~4 GB of fp32 weights
    max_dim: int = 1 << 20  # any one channel count, feature count or spatial size


DEFAULT = Limits()


NUMBER_LIMIT = 10**18
"""The largest magnitude of any number in a spec, written or computed. Far above every real
size (see `max_dim`, `max_params`), and inside torch's int64, so a huge number is refused
where it is written instead of overflowing a float, the int-to-str limit, or a kernel."""

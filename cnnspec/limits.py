"""Bounds that keep a hostile or mistaken spec from exhausting the machine.

Every bound is checked before the work it guards: file size before parsing, nesting while
parsing, repeats, layer counts and the steps of expansion while expanding, parameters,
multiply-accumulates and activations before anything is built or run. The last three are
budgets a real network may exceed: each has a command-line flag (`--max-params`,
`--max-macs`, `--max-activations`) that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LimitError, Pos


@dataclass(frozen=True)
class Limits:
    # 256 KiB of spec text (the largest spec shipped is 6 KB): reading, resolving and
    # inferring that much takes seconds
    max_file_bytes: int = 1 << 18
    max_nesting: int = 32  # brackets, indentation levels, and block-in-block calls
    # Operators inside one another in one expression: `1 + 1 + ... + 1` of n terms is n - 1
    # deep. The IR's validation follows nodes at most about 255 deep, and with every level of
    # nesting around an expression, 100 leaves room.
    max_expression_depth: int = 100
    max_repeat: int = 10_000  # one `* n`
    # Layers after every block and repeat is expanded (DenseNet-121 has under 1,000).
    # Build and codegen take time linear in them: 20,000 is seconds.
    max_layers: int = 20_000
    # Steps of expansion, whether or not they give a layer: each item walked, each turn of
    # a repeat or a for, each expression node evaluated (`(relu if false) * n` is work too).
    max_steps: int = 1_000_000
    max_params: int = 1_000_000_000  # ~4 GB of fp32 weights
    # Per example: `build`'s forward check runs one, so these bound its time and memory.
    max_macs: int = 200_000_000_000  # ~13x VGG-16 at 224 px; several seconds on a CPU
    max_activations: int = 1 << 28  # values output by all layers: 1 GiB of fp32
    max_dim: int = 1 << 20  # any one channel count, feature count or spatial size
    max_uses: int = 64  # files a spec reads through `use`, all told
    max_use_depth: int = 8  # a file used by a file used by ...


DEFAULT = Limits()

# The bounds a command-line flag may raise: `--max-macs N` sets `max_macs`.
BUDGETS = ("max_params", "max_macs", "max_activations")

NUMBER_LIMIT = 10**18
"""The largest magnitude of any number in a spec, written or computed. Far above every real
size (see `max_dim`, `max_params`), and inside torch's int64, so a huge number is refused
where it is written instead of overflowing a float, the int-to-str limit, or a kernel."""


class Steps:
    """The work an expansion has done, counted as it is done: a spec whose repeats, block
    calls or conditions do much work and give few layers stops at the bound, at the place
    it was reached."""

    __slots__ = ("at", "left", "limit")

    def __init__(self, limit: int):
        self.limit = limit
        self.left = limit
        self.at: Pos = (0, 0)  # where the last step was taken

    def spend(self, pos: Pos | None = None, n: int = 1) -> None:
        """Take `n` steps at `pos` (by default where the last one was taken)."""
        if pos is not None:
            self.at = pos
        self.left -= n
        if self.left < 0:
            raise LimitError(
                f"network takes more than {self.limit:,} steps to expand (repeats, conditions, "
                "block calls and expressions, whether or not they give layers)",
                self.at,
            )

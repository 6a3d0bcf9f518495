from pathlib import Path

import pytest

import cnnspec
from cnnspec.errors import CnnspecError

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SPEC_NAMES = sorted(p.stem for p in SPECS.glob("*.cnn"))


def spec_path(name: str, suffix: str = ".cnn") -> Path:
    return SPECS / f"{name}{suffix}"


def error_of(text: str, format: str = "cnn") -> CnnspecError:
    """The error `text` raises; fails the test if it loads cleanly."""
    with pytest.raises(CnnspecError) as info:
        cnnspec.load(text, format=format)
    return info.value


def net(body: str, input: str = "1x28x28", blocks: str = "") -> str:
    """A one-stage network around `body` (for tests of single features)."""
    return f"{blocks}\nnetwork T(input={input}, classes=10):\n    s: {body}\n"

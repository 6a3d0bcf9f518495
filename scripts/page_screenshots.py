"""The screenshots of `cnnspec graph -o page.html` in docs/: ResNet-50 with one block opened
and a layer hovered, and DenseNet-121 as it first opens.

    python scripts/page_screenshots.py   # needs playwright and a Chromium
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnspec.cli import main  # noqa: E402


def shoot(browser, name: str, actions) -> None:
    with tempfile.TemporaryDirectory() as folder:
        page_file = Path(folder) / f"{name}.html"
        main(["graph", f"specs/zoo/{name}.cnn", "-o", str(page_file)])
        tab = browser.new_page(viewport={"width": 1400, "height": 860})
        tab.goto(page_file.as_uri())
        actions(tab)
        tab.screenshot(path=str(ROOT / "docs" / f"page_{name}.png"))
        print(f"wrote docs/page_{name}.png")


def open_a_block(tab) -> None:
    tab.click('#net [data-path="layer2.0"] > .head')
    tab.hover('#net [data-path="layer2.0.0.branches.main.3"]')


def main_() -> None:
    os.chdir(ROOT)  # the page names its spec as given: specs/zoo/...
    chromium = next(shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        shoot(browser, "resnet50", open_a_block)
        shoot(browser, "densenet121", lambda tab: None)
        browser.close()


if __name__ == "__main__":
    main_()

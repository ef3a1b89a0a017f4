"""Regenerate the README screenshots from real panels: JupyterLab + Chromium via the test harness.

Run: .venv/bin/python docs/screenshots.py   (writes docs/img/*.png)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, JupyterLab, open_and_run  # noqa: E402
from tests.conftest import kernel_env  # noqa: E402

SHOTS = {
    "shapes_panel.png": (
        ".nbdebug-shapes",
        [
            "import torch\nfrom torch import nn\n%load_ext nbdebug\n"
            "model = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),\n"
            "    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),\n"
            "    nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),\n"
            "    nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())\n"
            "yy, xx = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing='ij')\n"
            "x = ((xx**2 + yy**2 - 0.5).abs() < 0.15).float().expand(8, 1, 28, 28)",
            "%nn_shapes model x",
        ],
        ["next", "next", "next", "next", "next"],
    ),
}


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        lab = JupyterLab(Path(tmp), kernel_env())
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 1100})
                for name, (selector, cells, clicks) in SHOTS.items():
                    open_and_run(page, lab, name.replace(".png", ".ipynb"), cells)
                    page.locator(selector).wait_for()
                    for click in clicks:
                        page.locator(f"{selector}-{click}").click()
                        page.wait_for_timeout(300)
                    page.wait_for_timeout(800)
                    page.locator(selector).screenshot(path=str(ROOT / "docs" / "img" / name))
                    print(f"wrote docs/img/{name}")
                browser.close()
        finally:
            lab.stop()


if __name__ == "__main__":
    main()

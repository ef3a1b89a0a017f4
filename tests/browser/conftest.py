"""Fixtures for real-browser tests: one JupyterLab per session, a fresh Chromium page per test.

A failing test leaves a screenshot and the JupyterLab log in `test-artifacts/`. Pass or fail, the page
is closed and every kernel the test started is interrupted and shut down when the test ends.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, JupyterLab, lab_page
from tests.conftest import ROOT, kernel_env

ARTIFACTS = ROOT / "test-artifacts"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install chromium` (make test does)")
    server = JupyterLab(tmp_path_factory.mktemp("lab"), kernel_env())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def page(browser, lab, request):
    height = 1600 if os.environ.get("NBDEBUG_GALLERY") == "1" else 1000  # whole panels in the gallery
    with lab_page(browser, lab, height) as pg:  # closes the page, shuts the test's kernels down
        yield pg
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            try:
                pg.screenshot(
                    path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True, timeout=30_000
                )
            finally:
                shutil.copy(lab.root / "jupyterlab.log", ARTIFACTS / f"{request.node.name}.jupyterlab.log")


GALLERY = ROOT / "docs" / "img"


@pytest.fixture
def gallery():
    """`gallery(locator, "name")` saves a screenshot of a panel for the README when NBDEBUG_GALLERY=1
    (`make gallery`); in ordinary test runs it does nothing, so tests never rewrite committed files."""

    def shoot(locator, name: str) -> None:
        if os.environ.get("NBDEBUG_GALLERY") != "1":
            return
        GALLERY.mkdir(parents=True, exist_ok=True)
        locator.page.wait_for_timeout(500)  # let images and fonts settle
        locator.screenshot(path=str(GALLERY / f"{name}.png"))

    return shoot

"""%nn_mem in real JupyterLab + Chromium: sort the table by clicking a column, Refresh after new tensors."""

from __future__ import annotations

from tests.browser.harness import cell_errors, kernel_stdout, open_and_run

SETUP = """
import torch
%load_ext nbdebug
zeta = torch.ones(1000)
alpha = torch.ones(10)
mid = torch.ones(100)
"""

FIRST_ROW = "() => document.querySelector('.nbdebug-memory-rows tbody tr').dataset.name"


def _names(page) -> list[str]:
    return page.eval_on_selector_all(".nbdebug-memory-rows tbody tr", "rows => rows.map(r => r.dataset.name)")


def test_sort_and_refresh(page, lab, gallery):
    open_and_run(page, lab, "memory_panel.ipynb", [SETUP, "%nn_mem"])
    assert cell_errors(page) == []
    page.locator(".nbdebug-memory-panel").wait_for()
    assert _names(page) == ["zeta", "mid", "alpha"]  # largest first
    assert "3 tensors" in page.locator(".nbdebug-memory-headline").inner_text()

    page.locator(".nbdebug-memory-sort-name").click()
    page.wait_for_function(f"() => ({FIRST_ROW})() === 'alpha'")
    assert _names(page) == ["alpha", "mid", "zeta"]
    page.locator(".nbdebug-memory-sort-name").click()  # again: descending
    page.wait_for_function(f"() => ({FIRST_ROW})() === 'zeta'")
    assert _names(page) == ["zeta", "mid", "alpha"]

    page.locator(".nbdebug-memory-sort-storage-bytes").click()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-memory-rows').dataset.sort === 'storage_bytes'"
    )

    # a new tensor appears in the kernel; Refresh re-scans the namespace
    assert kernel_stdout(page, "omega = torch.ones(5000)") == ""
    page.locator(".nbdebug-memory-refresh").click()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-memory-headline').innerText.includes('4 tensors')"
    )
    page.wait_for_function(f"() => ({FIRST_ROW})() === 'omega'")  # largest first again
    assert _names(page) == ["omega", "zeta", "mid", "alpha"]
    table = page.locator(".nbdebug-memory-rows").inner_text()
    assert "19.5 KiB" in table  # 5000 float32
    gallery(page.locator(".nbdebug-memory-panel"), "memory_panel")

    # the live watch updates the page from its background thread while the kernel is idle, and stops
    page.locator(".nbdebug-memory-watch").click()
    page.wait_for_function(
        "() => (document.querySelector('.nbdebug-memory-live-status span') || {dataset: {}}).dataset.samples > 3"
    )
    assert "watching" in page.locator(".nbdebug-memory-live-status").inner_text()
    page.locator(".nbdebug-memory-watch").click()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-memory-live-status').innerText.includes('stopped')"
    )

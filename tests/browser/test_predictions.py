"""The predictions and filters panels in real JupyterLab + Chromium: move the example slider, switch
the mistakes filter, switch layers and channels in the filter panel."""

from tests.browser.harness import cell_errors, open_and_run

CELLS = [
    "import torch\nfrom torch import nn\nimport nbdebug\n%load_ext nbdebug\ntorch.manual_seed(0)\n"
    "model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),"
    " nn.Linear(96, 3))\nx = torch.randn(30, 1, 8, 8)\ny = torch.arange(30) % 3",
    "%nn_preds model (x,y) -k 3",
    "%nn_filters model --data (x,y)",
]


def _src(page, selector):
    return page.eval_on_selector(selector, "el => (el.querySelector('img') || el).getAttribute('src')")


def _wait_src_change(page, selector, before):
    page.wait_for_function(
        "([sel, before]) => { const el = document.querySelector(sel);"
        " const img = el.querySelector('img') || el; return img.getAttribute('src') !== before; }",
        arg=[selector, before],
    )


def test_predictions_and_filters_panels(page, lab, gallery):
    open_and_run(page, lab, "preds_probe.ipynb", CELLS)
    assert cell_errors(page) == []

    caption = page.locator(".nbdebug-preds-caption")
    caption.wait_for()
    assert "example 0 (1 of 30)" in caption.inner_text()
    image_before = _src(page, ".nbdebug-preds-example")
    handle = page.locator(".nbdebug-preds-slider .noUi-handle")
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-preds-caption').innerText.includes('example 3 (4 of 30)')"
    )
    _wait_src_change(page, ".nbdebug-preds-example", image_before)

    gallery(page.locator(".nbdebug-preds"), "preds_panel")
    page.locator(".nbdebug-preds-show select").select_option("mistakes only")
    page.wait_for_function(
        "() => /\\(1 of (\\d+)\\)/.test(document.querySelector('.nbdebug-preds-caption').innerText)"
        " && document.querySelector('.nbdebug-preds-caption').innerText.includes('\\u2717')"
    )

    summary = page.locator(".nbdebug-filters-summary")
    summary.wait_for()
    assert summary.inner_text().startswith("0: Conv2d weight (4, 1, 3, 3)")
    grid_before = _src(page, ".nbdebug-filters-grid")
    page.locator(".nbdebug-filters-layer select").select_option(index=1)
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-filters-summary').innerText.startsWith('2: Conv2d weight (6, 4, 3, 3)')"
    )
    assert page.locator(".nbdebug-filters-channel select option").count() == 4
    page.locator(".nbdebug-filters-channel select").select_option(label="channel 3")
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-filters-summary').innerText.includes('channel 3')"
    )
    _wait_src_change(page, ".nbdebug-filters-grid", grid_before)
    gallery(page.locator(".nbdebug-filters"), "filters_panel")
    assert cell_errors(page) == []

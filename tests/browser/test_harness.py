"""The harness itself: a plain ipywidgets button renders and reacts to a click in real Chromium."""

from tests.browser.harness import cell_errors, open_and_run


def test_widget_renders_and_clicks(page, lab):
    cells = [
        "import ipywidgets as w\nb = w.Button(description='hello')\nb.add_class('probe-button')\n"
        "b.on_click(lambda _: setattr(b, 'description', 'clicked'))\nb",
    ]
    open_and_run(page, lab, "harness_probe.ipynb", cells)
    assert cell_errors(page) == []
    button = page.locator(".probe-button")
    button.wait_for()
    button.click()
    page.wait_for_function("() => document.querySelector('.probe-button').innerText.includes('clicked')")

"""One contract for every magic: expressions with brackets, commas and spaces work unquoted; `-o/--output`
(and the old `--return`) returns the result object; `--static` (and the old `--table`, `--no-panel`)
shows the result's static view instead of a panel."""

from __future__ import annotations

import pytest
import torch
from IPython.core.error import UsageError
from torch import nn

import nbdebug
from nbdebug._core.magic import split_expressions, unquote

pytestmark = pytest.mark.slow  # IPython shells and panels: `make test` runs them, `make check` does not

LINE = {
    # magic: (line, result type); every line uses an expression with spaces inside brackets
    "nn_shapes": ("m x[:4, :]", nbdebug.Trace),
    "nn_mem": ("m", nbdebug.MemoryReport),
    "nn_check": ("m (x[:16], y[:16]) nn.CrossEntropyLoss()", nbdebug.CheckReport),
    "nn_gradcheck": ("nn.Linear(6, 2) torch.randn(3, 6, dtype=torch.float64)", nbdebug.GradcheckResult),
    "nn_overfit": ("m (x, y) nn.CrossEntropyLoss() -n 6 --epochs 3 --time 5", nbdebug.OverfitResult),
    "nn_preds": ("m (x, y) -k 2", nbdebug.PredictionReport),
    "nn_filters": ("conv 0 --data (img, y[:8])", nbdebug.FilterView),
    "nn_search": ("train {'lr': nbdebug.loguniform(1e-3, 1e-1)} -n 2", nbdebug.SearchResult),
}
CELL = {
    "nn_watch": (
        "m opt",
        "for _ in range(3):\n    opt.zero_grad(); nn.functional.cross_entropy(m(x), y).backward(); opt.step()\n",
        nbdebug.Watch,
    ),
    "nn_gan": (
        "D G opt_d opt_g",
        "for _ in range(2):\n"
        "    opt_d.zero_grad(); fake = G(torch.randn(8, 2))\n"
        "    d = nn.functional.binary_cross_entropy_with_logits\n"
        "    (d(D(img_flat), torch.ones(8, 1)) + d(D(fake.detach()), torch.zeros(8, 1))).backward(); opt_d.step()\n"
        "    opt_g.zero_grad(); d(D(fake), torch.ones(8, 1)).backward(); opt_g.step()\n",
        nbdebug.GanWatch,
    ),
}


@pytest.fixture
def ns(ip):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    G, D = nn.Linear(2, 4), nn.Linear(4, 1)
    ip.user_ns.update(
        m=m, x=torch.randn(32, 6), y=torch.arange(32) % 3, opt=torch.optim.SGD(m.parameters(), lr=0.01),
        conv=nn.Sequential(nn.Conv2d(1, 2, 3)), img=torch.randn(8, 1, 6, 6), nn=nn, torch=torch,
        nbdebug=nbdebug, train=lambda lr: -abs(lr - 0.01), G=G, D=D, img_flat=torch.randn(8, 4),
        opt_d=torch.optim.SGD(D.parameters(), lr=0.01), opt_g=torch.optim.SGD(G.parameters(), lr=0.01),
    )  # fmt: skip
    return ip


def test_split_keeps_bracketed_expressions_whole():
    assert split_expressions("m (x[:64], y[:64]) nn.CrossEntropyLoss() -n 20") == [
        "m", "(x[:64], y[:64])", "nn.CrossEntropyLoss()", "-n", "20",
    ]  # fmt: skip
    assert split_expressions("f {'a': 'b c'} --lr 1e-3") == ["f", "{'a': 'b c'}", "--lr", "1e-3"]
    assert unquote('"(x, y)"') == "(x, y)" and unquote("x") == "x"
    with pytest.raises(UsageError, match="unbalanced brackets or quotes"):
        split_expressions("m (x, y nn.MSELoss()")
    with pytest.raises(UsageError, match="closing bracket without"):
        split_expressions("m x) y")


@pytest.mark.parametrize("magic", sorted(LINE))
@pytest.mark.parametrize("flag", ["-o", "--output", "--return"])
def test_every_line_magic_returns_its_result(ns, magic, flag):
    line, kind = LINE[magic]
    result = ns.run_line_magic(magic, f"{line} {flag}")
    assert isinstance(result, kind), (magic, type(result))


@pytest.mark.parametrize("magic", sorted(LINE))
@pytest.mark.parametrize("flag", ["--static", "--table", "--no-panel"])
def test_every_line_magic_has_a_static_view(ns, magic, flag, capsys):
    line, kind = LINE[magic]
    assert ns.run_line_magic(magic, f"{line} {flag}") is None
    result = ns.run_line_magic(magic, f"{line} {flag} -o")
    assert isinstance(result, kind)
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"} and bundle["text/plain"].strip()


@pytest.mark.parametrize("magic", sorted(CELL))
def test_every_cell_magic_returns_its_result_and_runs_without_a_panel(ns, magic):
    line, cell, kind = CELL[magic]
    for flags in ("--static -o", "--no-panel --output", "--static --return"):
        result = ns.run_cell_magic(magic, f"{line} {flags}", cell)
        assert isinstance(result, kind) and result.steps > 0


def test_old_class_score_option_has_its_own_name(ns):
    class DictModel(nn.Module):  # a Hugging Face-style model that returns a dict
        def __init__(self) -> None:
            super().__init__()
            self.body = ns.user_ns["m"]

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.body(x)}

    ns.user_ns["dict_model"] = DictModel()
    report = ns.run_line_magic("nn_preds", "dict_model (x, y) --scores 'logits' -o")
    assert isinstance(report, nbdebug.PredictionReport) and report.n == 32
    with pytest.raises(UsageError, match="--scores"):
        ns.run_line_magic("nn_preds", "dict_model (x, y) -o")

"""Golden text: the `to_text()` of results on fixed inputs, compared with files under tests/golden/.

A change to a rendering shows up as a diff to review. Regenerate after an intended change with
`make golden` (NBDEBUG_UPDATE_GOLDEN=1 pytest tests/test_golden.py) and read the diff before committing.
Wall-clock seconds are masked; everything else must match exactly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import nbdebug

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("NBDEBUG_UPDATE_GOLDEN") == "1"


def masked(text: str) -> str:
    """Seconds vary run to run: `0.31 s`, `seconds` columns and `1.2s` become `<t>`."""
    text = re.sub(r"\b\d+(\.\d+)? ?s\b", "<t> s", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"


def check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    text = masked(text)
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing: run `make golden` to create it, then review and commit it")
        path.write_text(text)
        return
    assert text == path.read_text(), (
        f"{name}: to_text() changed; if intended, run `make golden` and review the diff"
    )


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def test_trace_text():
    check("trace", nbdebug.trace(Net(), torch.randn(2, 1, 8, 8)).to_text())


def test_failed_trace_text():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(64, 10))
    check("trace_error", nbdebug.trace(model, torch.randn(2, 1, 8, 8)).to_text())


def test_memory_report_text():
    model = nn.Linear(16, 8)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 16)).sum().backward()
    opt.step()
    batch = {"x": torch.zeros(32, 16), "y": torch.zeros(32, dtype=torch.long)}
    check("memory", nbdebug.memory(model, opt, batch, names=["model", "opt", "batch"], gpu=False).to_text())


def test_memory_step_text():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    batch = (torch.randn(8, 16), torch.randint(0, 4, (8,)))
    result = nbdebug.memory.step(model, batch, nn.CrossEntropyLoss(), budget="1MB")
    check("memory_step", result.to_text())


def test_check_report_text():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3), nn.Softmax(dim=1))
    x, y = torch.randn(32, 8), torch.arange(32) % 3
    check("check", nbdebug.check(model, (x, y), nn.CrossEntropyLoss()).to_text())


def test_prediction_report_text():
    x = torch.randn(200, 4)
    y = (torch.arange(200) % 10 == 0).long()
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([2.0, 0.0]))
    check("predictions", nbdebug.predictions(model, (x, y), classes=["other", "rare"]).to_text())


def test_filter_view_text():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3))
    check("filters", nbdebug.filters(conv, "0", data=torch.randn(2, 3, 8, 8)).to_text())


def test_search_result_text():
    def train(lr: float, width: int) -> float:
        return -abs(torch.log10(torch.tensor(lr)).item() + 2) - 0.01 * width

    space = {"lr": nbdebug.loguniform(1e-4, 1), "width": nbdebug.intlog(8, 64)}
    result = nbdebug.search(train, space, trials=6, seed=0)
    for trial in result.trials:
        trial.seconds = 0.0  # wall-clock time of each trial
    check("search", result.to_text())

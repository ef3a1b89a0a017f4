"""bench/gpu_check.py, the one prepared GPU check: its logic run on the CPU (`--cpu-smoke`), and its exit
status without a GPU."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # ecosystem tests: `make test` runs them, `make check` does not

SCRIPT = ROOT / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_cpu_smoke_runs_every_path_and_prints_the_overheads():
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    for section in ("== memory", "== watch", "== gan", "== overhead"):
        assert section in out
    assert "FAIL" not in out
    passed = re.findall(r"^PASS (\w+)", out, re.M)
    assert {"inventory", "memory", "watch", "gan"} <= set(passed)
    overheads = re.findall(r"^OVERHEAD (.+): [\d.]+ vs [\d.]+ ms = ([\d.]+)x$", out, re.M)
    assert [w.split(" vs ")[0] for w, _ in overheads] == [
        "memory.step", "watch default", "watch every=1", "watch_gan",
    ]  # fmt: skip
    assert all(float(x) > 0 for _, x in overheads)
    assert re.search(r"^13 passed, 0 failed", out, re.M)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the script would run")
def test_without_cuda_it_says_so_and_exits_2():
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "no CUDA device" in r.stdout and "--cpu-smoke" in r.stdout

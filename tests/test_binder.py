"""Binder's environment files work: install them into a fresh virtual environment (as repo2docker does,
from the repository root), run postBuild, and execute the tour in that environment's own kernel."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.notebook
def test_binder_environment_installs_and_runs_tour(tmp_path):
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_RETRIES="1", PIP_TIMEOUT="10", PIP_DISABLE_PIP_VERSION_CHECK="1")
    install = subprocess.run(
        [py, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    version = subprocess.run(
        [py, "-c", "import torch, nbdebug; print(torch.__version__, nbdebug.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert version.startswith("2.13.0") and str(ROOT) in version
    post = subprocess.run(
        ["bash", "binder/postBuild"], cwd=ROOT, env=dict(env, PATH=f"{venv}/bin:{env['PATH']}")
    )
    assert post.returncode == 0
    out = tmp_path / "tour.ipynb"
    run = subprocess.run(
        [py, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=600",
         "--output", str(out), str(ROOT / "notebooks" / "00_tour.ipynb")],
        cwd=ROOT / "notebooks", env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.exists()

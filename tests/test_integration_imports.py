"""nbdebug imports no training framework: `import nbdebug`, `nbdebug.watch` and the integration modules
leave Lightning, transformers and accelerate unimported, and nbdebug works where they are not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # ecosystem tests: `make test` runs them, `make check` does not

FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "accelerate")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_nbdebug_imports_no_framework():
    r = _run(
        f"""
        import sys, torch
        import nbdebug, nbdebug.integrations, nbdebug.integrations.lightning, nbdebug.integrations.transformers
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with nbdebug.watch(model) as w:
            for _ in range(3):
                opt.zero_grad(); model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
        assert w.steps == 3, w.steps
        print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_nbdebug_works_without_the_frameworks_installed():
    """The frameworks made unimportable (a None entry in sys.modules makes `import x` raise ImportError):
    watch works, and asking for a callback says what to install."""
    r = _run(
        f"""
        import sys
        for m in {FRAMEWORKS!r}:
            sys.modules[m] = None
        import torch, nbdebug
        from nbdebug.integrations import lightning, transformers
        model = torch.nn.Linear(4, 2)
        with nbdebug.watch(model) as w:
            model(torch.randn(8, 4)).sum().backward()
        for mod, name in ((lightning, "lightning"), (transformers, "transformers")):
            try:
                mod.NbdebugCallback
            except ImportError as e:
                assert f"pip install {{name}}" in str(e), e
            else:
                raise AssertionError(name)
        print("ok")
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"

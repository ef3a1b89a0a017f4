"""`%nn_shapes` through a real IPython shell, as `%load_ext nbdebug` registers it."""

from __future__ import annotations

import pytest
import torch
from IPython.core.error import UsageError

from nbdebug.shapes.trace import Trace
from tests.models import DenoisingAutoencoder, SmallCNN


def test_load_ext_registers_magic(ip):
    assert "nn_shapes" in ip.magics_manager.magics["line"]


def test_nn_shapes_returns_trace_with_o(ip):
    ip.user_ns.update(model=DenoisingAutoencoder(), x=torch.randn(2, 1, 28, 28))
    t = ip.run_line_magic("nn_shapes", "model x -o")
    assert isinstance(t, Trace) and t.ok
    assert t.steps[-1].output_shapes == [(2, 1, 28, 28)]
    meta = ip.run_line_magic("nn_shapes", "model x --meta -o")
    assert meta.device == "meta"


def test_nn_shapes_displays_panel(ip, capsys):
    ip.user_ns.update(model=DenoisingAutoencoder(), x=torch.randn(2, 1, 28, 28))
    assert ip.run_line_magic("nn_shapes", "model x") is None
    assert ip.run_line_magic("nn_shapes", "model x[:1] --table") is None
    out = capsys.readouterr().out
    assert "encoder.0" in out


def test_nn_shapes_failing_model_still_returns_trace(ip):
    ip.user_ns.update(bad=SmallCNN(in_features=3136), x=torch.randn(2, 1, 14, 14))
    t = ip.run_line_magic("nn_shapes", "bad x -o")
    assert t.error.where == "fc"


def test_nn_shapes_usage_errors(ip):
    ip.user_ns.update(model=DenoisingAutoencoder(), x=torch.randn(2, 1, 28, 28))
    with pytest.raises(UsageError, match="model 'nope' is not defined"):
        ip.run_line_magic("nn_shapes", "nope x")
    with pytest.raises(UsageError, match="input 'no_such_input' is not defined"):
        ip.run_line_magic("nn_shapes", "model no_such_input")
    with pytest.raises(UsageError, match="needs an nn.Module.*got Tensor"):
        ip.run_line_magic("nn_shapes", "x x")
    with pytest.raises(UsageError):
        ip.run_line_magic("nn_shapes", "")


def test_docstring_documents_options(ip):
    doc = ip.magics_manager.magics["line"]["nn_shapes"].__doc__
    for opt in ("--meta", "--table", "-o"):
        assert opt in doc

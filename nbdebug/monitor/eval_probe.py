"""Whether the model's evaluation is random: dropout left on after `model.eval()`.

Two kinds of evidence, both taken on forward passes made while the model is in eval mode:

- a dropout *function* called with `training=True` (`F.dropout(x, p)`, whose default is training=True,
  `torch.dropout(x, p, True)`): seen by a `TorchFunctionMode` that is active only during the first
  PROBED eval forwards (it sees every torch call; eval passes only, so training is never slowed);
- the same input tensor (same object, unmodified) passed twice with the weights unchanged, giving
  different outputs: whatever makes evaluation random (a hand-written `torch.rand(...) > p` mask behind a
  flag that stays True). Each eval output is reduced to two numbers on the device; they are read back
  only when such a repeat happens.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .._core.hooks import HookSet
from .._core.intercept import unpatched
from .._core.tensors import first_tensor, is_float
from .modes import take_off
from .records import record_error, safe

PROBED = 16  # eval forwards watched by the dropout-function mode
KEEP = 4  # recent eval forwards remembered for the same-input comparison
REPEAT_RTOL = 1e-4  # outputs of the same input differ beyond float noise (nondeterministic kernels)

# dropout functions and the position of their `training` argument
DROPOUT_FUNCTIONS: dict[Any, tuple[str, int]] = {
    F.dropout: ("F.dropout", 2),
    F.dropout1d: ("F.dropout1d", 2),
    F.dropout2d: ("F.dropout2d", 2),
    F.dropout3d: ("F.dropout3d", 2),
    F.alpha_dropout: ("F.alpha_dropout", 2),
    F.feature_alpha_dropout: ("F.feature_alpha_dropout", 2),
    torch.dropout: ("torch.dropout", 2),
    torch.dropout_: ("torch.dropout_", 2),
    torch.alpha_dropout: ("torch.alpha_dropout", 2),
    torch.feature_dropout: ("torch.feature_dropout", 2),
    torch.feature_alpha_dropout: ("torch.feature_alpha_dropout", 2),
}


def _training_arg(args: tuple, kwargs: dict, pos: int) -> tuple[bool, float]:
    """(training, p) of a dropout call as PyTorch reads them (F.dropout's defaults: p=0.5, training=True)."""
    training = kwargs.get("training", kwargs.get("train", args[pos] if len(args) > pos else True))
    p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
    return bool(training), float(p)


class _DropoutSpy(TorchFunctionMode):
    def __init__(self, probe: EvalProbe) -> None:
        super().__init__()
        self.probe = probe

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        known = DROPOUT_FUNCTIONS.get(func)
        if known is not None:
            try:
                training, p = _training_arg(args, kwargs, known[1])
                if training and p > 0:
                    self.probe.dropout_seen(known[0], p)
            except Exception as e:  # never break the user's forward
                record_error(self.probe.internal_errors, "eval dropout", e)
        return unpatched(func)(*args, **kwargs)  # a loss imported by name stays unseen (see intercept)


class EvalProbe:
    """Watches the model's eval-mode forwards (see the module docstring)."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self.model: nn.Module = monitor.model
        self._names = {m: n for n, m in self.model.named_modules()}
        self.dropout_calls: list[dict[str, Any]] = []  # {"function", "p", "module", "forwards"}
        self.repeats: list[dict[str, Any]] = []  # {"forwards", "differ", "shape", "diff"}
        self.eval_forwards = 0
        self._mode: _DropoutSpy | None = None
        self._input: tuple[Any, int, tuple[int, ...], torch.Tensor] | None = None
        # (input ref, version, weights, output summary, input summary) of recent eval forwards
        self._recent: list[tuple[Any, int, int, torch.Tensor, torch.Tensor]] = []

    @property
    def internal_errors(self) -> list[str]:
        return self.monitor.internal_errors

    def attach(self, hooks: HookSet) -> None:
        root = self.monitor.root
        hooks.forward_pre(root, self._pre)
        hooks.forward(root, self._post, always_call=True)

    def _weights(self) -> int:
        return sum(p._version for p in self.model.parameters())

    @safe
    def _pre(self, module: nn.Module, args: tuple) -> None:
        if self.model.training or self._mode is not None:
            return
        self.eval_forwards += 1
        x = first_tensor(args)
        self._input = None
        if isinstance(x, torch.Tensor) and x.numel():  # its values too: `x.data += ...` keeps the version
            with torch.no_grad(), torch._C.DisableTorchFunction():
                xf = x.detach().float()
                self._input = (
                    weakref.ref(x),
                    x._version,
                    tuple(x.shape),
                    torch.stack([xf.sum(), xf.abs().sum()]),
                )
        # not under the activation probe's mode (a training forward in eval mode): modes must nest
        if self.eval_forwards <= PROBED and not self.dropout_calls and self.monitor.probe.mode is None:
            mode = _DropoutSpy(self)
            mode.__enter__()
            self._mode = mode

    def _post(self, module: nn.Module, args: tuple, out: Any) -> None:
        mode, self._mode = self._mode, None
        if mode is not None:
            take_off(mode, self.internal_errors, "eval dropout")
        seen, self._input = self._input, None
        if self.model.training or seen is None or self.repeats:
            return
        try:
            self._compare(seen, first_tensor(out))
        except Exception as e:
            record_error(self.internal_errors, "eval repeat", e)

    def _compare(self, seen: tuple[Any, int, tuple[int, ...], torch.Tensor], y: Any) -> None:
        """Same input object, version and values, same weights as a recent eval forward: outputs must match."""
        ref, version, shape, values = seen
        if not is_float(y) or y.numel() == 0:
            return
        with torch.no_grad(), torch._C.DisableTorchFunction():
            yf = y.detach().float()
            summary = torch.stack([yf.sum(), yf.abs().sum()])
        weights = self._weights()
        x = ref()
        for r, v, w, s, xs in self._recent:
            if x is not None and r() is x and v == version and w == weights and bool((xs == values).all()):
                diff = float((summary[1] - s[1]).abs() + (summary[0] - s[0]).abs())
                scale = float(s[1].abs()) + 1e-12
                if diff > REPEAT_RTOL * scale:
                    self.repeats.append(
                        {"forwards": self.eval_forwards, "shape": shape, "diff": diff / scale}
                    )
                self._recent = []
                return
        self._recent = [*self._recent[-(KEEP - 1) :], (ref, version, weights, summary, values)]

    def dropout_seen(self, function: str, p: float) -> None:
        """A dropout function ran with training=True in an eval forward: name the module whose forward
        called it (the innermost `self` of the model on the Python stack)."""
        where = None
        frame = inspect.currentframe()
        while frame is not None and where is None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, nn.Module) and owner in self._names:
                where = self._names[owner] or type(owner).__name__
            frame = frame.f_back
        del frame
        if not any(c["function"] == function and c["module"] == where for c in self.dropout_calls):
            self.dropout_calls.append(
                {"function": function, "p": p, "module": where, "forwards": self.eval_forwards}
            )

"""PyTorch Lightning: `with nbdebug.watch(lit_module): trainer.fit(...)`, or `NbdebugCallback()` for scripts.

What Lightning does that a hand-written loop does not, and how the monitor reads it:
- the optimizers come from `configure_optimizers` and are stepped by the Trainer: adopted at their first
  step (`watch` without an optimizer); with several (manual optimization), the first one to step sets
  the monitor's steps;
- automatic optimization calls `optimizer.step(closure)`, and `training_step`, `zero_grad` and
  `backward` run inside that closure: the step is recorded once the closure has run
  (`monitor/closure.py`), so the loss and gradient norm are this step's;
- gradient accumulation (`accumulate_grad_batches=k`) runs k-1 closures with no step, then a step: the
  backward passes of a window are one step whose loss is the sum of the k losses Lightning divided by
  k (their mean); a window before the first step is training too (`expect_optimizer`);
- precision plugins: `bf16-mixed` autocasts the forward and backpropagates the loss as it is; `16-mixed`
  (CUDA) scales it with a GradScaler, which the monitor unscales (`monitor/amp.py` where present);
- the sanity check (`num_sanity_val_steps`) runs validation batches before training: left out, so the
  first epoch's validation numbers are the first epoch's; validation and test passes run with gradients
  off (`inference_mode`) and count as validation.

`NbdebugCallback` starts the same `Watch` at `on_fit_start` and closes it at `on_fit_end` or
`on_exception`; the result is `callback.watch`. It is built on first use from the Lightning the user
imported (`lightning.pytorch`, else `pytorch_lightning`); nbdebug itself never imports Lightning.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from ..monitor.watch import Watch, watch
from . import LIGHTNING_MODULES
from .callback import WatchHolder


class LightningWatch(Watch):
    """A `Watch` of a LightningModule: leaves the Trainer's sanity-check batches out."""

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self.monitor.expect_optimizer = True

    def _sanity_checking(self) -> bool:
        trainer = getattr(self.model, "_trainer", None)
        return bool(getattr(trainer, "sanity_checking", False))

    def on_loss(self, name: str, input: Any, target: Any, output: Any, kwargs: dict) -> None:
        # a training loss (gradients on) is never the sanity check's, which validates without them: the
        # Trainer's property costs more than the rest of this call
        training = torch.is_grad_enabled() and getattr(input, "requires_grad", False)
        if training or not self._sanity_checking():
            super().on_loss(name, input, target, output, kwargs)

    def on_loader_iter(self, loader: Any) -> None:
        if not self._sanity_checking():
            super().on_loader_iter(loader)


def _callback_base() -> type:
    """Lightning's `Callback` class, from the package the user imported (lightning first)."""
    for name in LIGHTNING_MODULES:
        callback = getattr(sys.modules.get(name), "Callback", None)
        if isinstance(callback, type):
            return callback
    try:
        import lightning.pytorch as pl
    except ImportError:
        try:
            import pytorch_lightning as pl
        except ImportError as e:
            raise ImportError(
                "nbdebug.integrations.lightning.NbdebugCallback needs PyTorch Lightning "
                "(pip install lightning)"
            ) from e
    return pl.Callback


def _make_callback_class(base: type) -> type:
    class NbdebugCallback(WatchHolder, base):  # type: ignore[misc, valid-type]
        """Runs `nbdebug.watch` over `trainer.fit(...)`: `Trainer(callbacks=[cb])`, then `cb.watch.findings`.

        Keyword arguments are `nbdebug.watch`'s (`every`, `histograms`, `bins`, `on_update`, ...).
        """

        def __init__(self, **watch_kwargs: Any) -> None:
            super().__init__()
            self.watch_kwargs = watch_kwargs
            self.watch: Watch | None = None

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self.close()
            self.watch = watch(pl_module, **self.watch_kwargs)
            self.watch.__enter__()

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self.close()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            self.close(exception)

    return NbdebugCallback


_CLASSES: dict[type, type] = {}


def __getattr__(name: str) -> Any:
    if name == "NbdebugCallback":
        base = _callback_base()
        if base not in _CLASSES:
            _CLASSES[base] = _make_callback_class(base)
        return _CLASSES[base]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

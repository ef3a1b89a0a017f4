"""Hugging Face `Trainer`: `with nbdebug.watch(model): trainer.train()`, or `NbdebugCallback()` for scripts.

What the Trainer does, and how the monitor reads it:
- the optimizer is made by `create_optimizer()` inside `train()` and wrapped by accelerate
  (`AcceleratedOptimizer`, whose `step()` calls the torch optimizer's): adopted at its first step;
- the model computes its own loss (`labels=` in the batch: `CrossEntropyLoss` / `loss_function`, both
  through `torch.nn.functional`), and `accelerator.backward(loss)` backpropagates it;
- gradient accumulation (`gradient_accumulation_steps=k`): k backward passes of losses the Trainer divided
  by k, then one step; the window before the first step is training too (`expect_optimizer`);
- `max_grad_norm` (default 1.0) clips before `optimizer.step()`: the gradient norm the monitor records is
  the clipped one, which is what the optimizer used;
- evaluation runs under `torch.no_grad()`: validation; the learning-rate schedule shows in `history.lr`.

`NbdebugCallback` starts the same `Watch` at `on_train_begin` and closes it at `on_train_end`; the result is
`callback.watch`. The Trainer has no hook for an exception inside `train()`: in a notebook prefer
`with nbdebug.watch(model): trainer.train()`, which detaches in every case; after a failed `train()` call
`callback.close()` (the next `train()` closes a watch left open too).
"""

from __future__ import annotations

from typing import Any

from ..monitor.watch import Watch, watch
from .callback import WatchHolder


class TransformersWatch(Watch):
    """A `Watch` of a Hugging Face model: backward passes before the first optimizer step are training."""

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self.monitor.expect_optimizer = True


def _make_callback_class() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError as e:
        raise ImportError(
            "nbdebug.integrations.transformers.NbdebugCallback needs transformers (pip install transformers)"
        ) from e

    class NbdebugCallback(WatchHolder, TrainerCallback):
        """Runs `nbdebug.watch` over `Trainer.train()`: `Trainer(..., callbacks=[cb])`, then
        `cb.watch.findings`. Keyword arguments are `nbdebug.watch`'s (`every`, `histograms`, ...)."""

        def __init__(self, **watch_kwargs: Any) -> None:
            self.watch_kwargs = watch_kwargs
            self.watch: Watch | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            self.close()
            if model is None:
                raise ValueError("NbdebugCallback: the Trainer passed no model to on_train_begin")
            self.watch = watch(model, **self.watch_kwargs)
            self.watch.__enter__()

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.close()

    return NbdebugCallback


_CLASS: list[type] = []


def __getattr__(name: str) -> Any:
    if name == "NbdebugCallback":
        if not _CLASS:
            _CLASS.append(_make_callback_class())
        return _CLASS[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

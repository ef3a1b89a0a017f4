"""`%%nn_watch`: run a training cell under `nbdebug.watch` with the live dashboard."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.magic import evaluate, output_option, parse, run_watched_cell, static_option, usage_errors


@magics_class
class WatchMagics(Magics):
    @magic_arguments()
    @argument("model", help="name of the nn.Module being trained")
    @argument(
        "optimizer",
        nargs="?",
        default=None,
        help="name of its optimizer (optional: without it each backward is a step)",
    )
    @argument(
        "--loss",
        default=None,
        help="name of the loss module or function (optional: losses are seen through torch.nn.functional)",
    )
    @argument(
        "--every",
        type=int,
        default=10,
        help="layer statistics on the first 5 and every N-th step (every layer and histograms: the first and every N-th; default 10)",
    )
    @argument("--no-histograms", action="store_true", help="skip activation/gradient histograms")
    @argument(
        "--interval", type=float, default=0.5, help="seconds between live redraws at most (default 0.5)"
    )
    @static_option("no live panel: show the static summary at the end")
    @argument(
        "--save", default=None, metavar="NAME", help="also store the Watch in the notebook variable NAME"
    )
    @output_option("Watch (findings, history, layer_stats())")
    @cell_magic
    def nn_watch(self, line: str, cell: str):
        """Run the cell (your own training loop) under nbdebug.watch, with a live per-layer dashboard.

        Usage: %%nn_watch model [optimizer] [--loss criterion] [--every N] [--no-histograms]
                          [--interval S] [--static] [--save NAME] [-o]

        While the cell runs, the panel shows the loss (per step and per epoch, linear or log), the
        update/weight ratio of every layer against the 1e-3 reference, activation and gradient
        histograms per layer, train/validation curves, and findings (missing zero_grad, learning rate,
        dead ReLUs, NaN, ...) as soon as they are detected. The cell's code is not changed: the same
        seed gives the same weights with and without the magic. An exception in the cell still leaves
        the panel with what was seen, and the model without any nbdebug hook. `--save NAME` keeps the
        Watch in a variable for the plain API (`NAME.findings`, `NAME.history`, `NAME.layer_stats()`).
        """
        args = parse(self.nn_watch, line)
        model = evaluate(self.shell, args.model, "model")
        optimizer = evaluate(self.shell, args.optimizer, "optimizer") if args.optimizer else None
        loss_fn = evaluate(self.shell, args.loss, "loss") if args.loss else None
        from .watch import watch

        with usage_errors():
            w = watch(
                model,
                optimizer,
                loss_fn,
                every=args.every,
                histograms=not args.no_histograms,
                update_interval=args.interval,
            )
        if args.save:
            if not args.save.isidentifier():
                raise UsageError(f"--save needs a variable name, got {args.save!r}")
            self.shell.user_ns[args.save] = w
        from .panel import watch_panel

        return run_watched_cell(
            self.shell, cell, w, watch_panel, "nn_watch", panel=not args.static, output=args.output
        )


MAGICS = WatchMagics

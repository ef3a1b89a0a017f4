"""`%nn_check`, `%nn_gradcheck`, `%nn_overfit`: the three sanity checks before training."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.magic import evaluate, output_option, parse, show, static_option, usage_errors


@magics_class
class MAGICS(Magics):
    @magic_arguments()
    @argument("model", help="the nn.Module to check (a name or expression in the notebook)")
    @argument("batch", help="one batch: (x, y), a tensor, a dict, or a DataLoader (its first batch is used)")
    @argument("loss_fn", help="the loss: an nn.Module such as nn.CrossEntropyLoss() or a function")
    @argument("--optimizer", default=None, help="your optimizer; its state is saved and restored")
    @argument("--classes", type=int, default=None, help="number of classes, when it is not output.shape[1]")
    @argument("--expected", type=float, default=None, help="the expected initial loss, overriding ln(C)")
    @argument(
        "--reg",
        default=None,
        help="a function strength -> loss_fn; checks that more regularization raises the loss",
    )
    @argument(
        "--reg-strengths",
        default="0,0.1,1,10",
        help="comma-separated strengths for --reg (default 0,0.1,1,10)",
    )
    @static_option("the report (the only view of a check; accepted for uniformity)")
    @output_option("CheckReport instead of only displaying it")
    @line_magic
    def nn_check(self, line: str) -> Any:
        """One forward/backward pass with dropout off; findings name what to fix before training.

        Reports initial-loss (against ln C / ln 2), softmax-before-ce, nll-without-log-softmax,
        softmax-wrong-dim, log-softmax-unstable, sigmoid-before-bce-logits,
        sigmoid-bceloss, target-broadcast, out-of-range or mistyped targets, no-grad, nonfinite,
        unnormalized-input, dead-relu, saturated-activation and, with --reg, reg-not-increasing-loss.
        The model's mode, weights, gradients, buffers, optimizer state and RNG are restored.

        Example: %nn_check model (x[:64], y[:64]) nn.CrossEntropyLoss()
        """
        args = parse(self.nn_check, line)
        ns = self.shell
        model = evaluate(ns, args.model, "model")
        batch = evaluate(ns, args.batch, "batch")
        loss_fn = evaluate(ns, args.loss_fn, "loss function")
        opt = evaluate(ns, args.optimizer, "optimizer") if args.optimizer else None
        reg = evaluate(ns, args.reg, "regularization") if args.reg else None
        try:
            strengths = tuple(float(s) for s in args.reg_strengths.split(","))
        except ValueError:
            raise UsageError(
                f"--reg-strengths must be comma-separated numbers, got {args.reg_strengths!r}"
            ) from None
        from .check import check

        with usage_errors():
            report = check(
                model, batch, loss_fn, opt, num_classes=args.classes, expected_loss=args.expected,
                reg=reg, reg_strengths=strengths,
            )  # fmt: skip
        return show(report, args)

    @magic_arguments()
    @argument("fn", help="an nn.Module, a function, or a custom torch.autograd.Function class")
    @argument("inputs", nargs="+", help="the inputs (names or expressions); integer tensors pass through")
    @argument("--eps", type=float, default=1e-6, help="finite-difference step (default 1e-6, float64)")
    @argument("--max-entries", type=int, default=20, help="entries sampled per tensor (default 20)")
    @argument("--no-params", action="store_true", help="check only the inputs, not the module's parameters")
    @static_option("the result (the only view of a gradient check; accepted for uniformity)")
    @output_option("GradcheckResult")
    @line_magic
    def nn_gradcheck(self, line: str) -> Any:
        """Numerical vs analytic gradients in float64 on a copy, per parameter and per input.

        Reads the max relative error |a - n| / max(|a|, |n|) the CS231n way: above 1e-2 wrong
        (gradcheck-failed), 1e-4 suspicious, below 1e-7 good. Entries on a kink (ReLU/max at 0) are
        reported and left out of the verdict.

        Example: %nn_gradcheck MyFunction torch.randn(8, 3)
        """
        args = parse(self.nn_gradcheck, line)
        fn = evaluate(self.shell, args.fn, "function")
        inputs = [evaluate(self.shell, e, "input") for e in args.inputs]
        from .gradcheck import gradcheck

        with usage_errors():
            result = gradcheck(
                fn, *inputs, eps=args.eps, max_entries=args.max_entries, params=not args.no_params
            )
        return show(result, args)

    @magic_arguments()
    @argument("model", help="the nn.Module to overfit (restored afterwards unless --keep)")
    @argument("data", help="DataLoader, Dataset, (x, y) tensors, or an iterable of batches")
    @argument("loss_fn", help="the loss: an nn.Module or a function")
    @argument("-n", type=int, default=20, help="number of examples, stratified by class (default 20)")
    @argument(
        "--optimizer", default=None, help="your optimizer (class and lr reused, weight decay 0) or a class"
    )
    @argument(
        "--lr", type=float, default=None, help="learning rate (default: your optimizer's, else Adam 3e-3)"
    )
    @argument("--epochs", type=int, default=500, help="maximum number of epochs (default 500)")
    @argument("--time", type=float, default=30.0, help="time budget in seconds (default 30)")
    @argument(
        "--target", type=float, default=None, help="loss to reach (default 0.05, or 5%% of the first loss)"
    )
    @argument("--batch-size", type=int, default=None, help="mini-batch size (default: all n at once)")
    @argument("--log", action="store_true", help="start with a log-scale loss axis")
    @argument("--keep", action="store_true", help="keep the trained weights instead of restoring the model")
    @static_option("no live panel: run, then show the static result")
    @output_option("OverfitResult")
    @line_magic
    def nn_overfit(self, line: str) -> Any:
        """Train on a tiny subset until the loss is near zero: a model that cannot has a bug (CS231n).

        Turns dropout and weight decay off and says so, shows the loss per epoch live (linear/log toggle,
        accuracy, progress, Stop), and ends with a verdict: passed, or cannot-overfit with the likely
        causes ranked from the loss curve. The model's weights, optimizer state, mode and RNG are
        restored afterwards - also after Stop or a kernel interrupt - unless --keep.

        Example: %nn_overfit model (x, y) nn.CrossEntropyLoss() -n 20 --optimizer opt
        """
        args = parse(self.nn_overfit, line)
        ns = self.shell
        model = evaluate(ns, args.model, "model")
        data = evaluate(ns, args.data, "data")
        loss_fn = evaluate(ns, args.loss_fn, "loss function")
        opt = evaluate(ns, args.optimizer, "optimizer") if args.optimizer else None
        from IPython.display import display as ip_display

        from .overfit import overfit
        from .panel import OverfitPanel

        kwargs = dict(
            n=args.n, optimizer=opt, lr=args.lr, max_epochs=args.epochs, time_budget=args.time,
            target=args.target, batch_size=args.batch_size, keep=args.keep,
        )  # fmt: skip
        if args.static:
            with usage_errors():
                result = overfit(model, data, loss_fn, **kwargs)
            return show(result, args)
        panel = OverfitPanel(log=args.log)
        handle = ip_display(panel, display_id=True)
        try:
            with usage_errors():
                result = overfit(
                    model, data, loss_fn, callback=panel.update, should_stop=panel.should_stop, **kwargs
                )
        finally:
            if handle is not None:  # the saved output's static HTML/text now carries the final verdict
                handle.update(panel)
        return result if args.output else None

"""`%nn_preds` and `%nn_filters`: parse arguments, call `nbdebug.predictions` / `nbdebug.filters`,
display the panel."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.errors import NbdebugError
from .._core.magic import evaluate, output_option, parse, show, static_option, usage_errors


@magics_class
class MAGICS(Magics):
    @magic_arguments()
    @argument("model", help="the classifier (a name or expression in the notebook)")
    @argument("data", help="DataLoader, Dataset, (x, y) tuple or iterable of batches")
    @argument("-k", type=int, default=5, help="top classes per example (default 5)")
    @argument("-n", type=int, default=None, help="use only the first N examples")
    @argument("--classes", default=None, help="expression giving the class names (default data.classes)")
    @argument(
        "--scores",
        default=None,
        help="expression picking the class scores from the output: a key, index or function",
    )
    @argument(
        "--labels", default=None, help="expression giving the labels (tensor or function batch -> labels)"
    )
    @argument("--image-shape", default=None, help="reshape inputs to show them, e.g. 8,8")
    @argument(
        "--history", default=None, help="expression giving a TopkTracker (or its history) to plot drift"
    )
    @static_option("the static report instead of the panel")
    @output_option("PredictionReport")
    @line_magic
    def nn_preds(self, line: str = "") -> Any:
        """Predictions vs labels: top-k per example, label vs predicted frequencies, findings.

        Runs MODEL over DATA in eval mode under no_grad (mode restored) and shows a panel: findings
        (predicts-mode, class-imbalance with ready-to-paste class weights), label vs argmax frequency
        per class with the mean predicted probability, the confusion matrix, and an example browser
        (input image, top-k bars, true label; filter to mistakes or one class, sort by loss or
        confidence).

        Example: %nn_preds model (x_test,y_test) -k 3 --classes names
        """
        args = parse(self.nn_preds, line)
        from .compute import predictions

        shell = self.shell
        model = evaluate(shell, args.model, "model")
        data = evaluate(shell, args.data, "data")
        kwargs: dict[str, Any] = {"k": args.k, "n": args.n}
        for opt, kw in (("classes", "classes"), ("scores", "output"), ("labels", "labels")):
            expr = getattr(args, opt)
            if expr is not None:
                kwargs[kw] = evaluate(shell, expr, opt)
        if args.image_shape:
            try:
                kwargs["image_shape"] = tuple(int(s) for s in args.image_shape.replace("x", ",").split(","))
            except ValueError:
                raise UsageError(
                    f"--image-shape must look like 8,8 or 3,32,32, got {args.image_shape!r}"
                ) from None
        history = None
        if args.history is not None:
            history = evaluate(shell, args.history, "history")
            history = getattr(history, "history", history)
        try:
            report = predictions(model, data, **kwargs)
        except NbdebugError as e:  # the API's output= is this magic's --scores
            raise UsageError(str(e).replace("pass output=", "pass --scores (output=)")) from None
        from .panel import PredictionsPanel

        return show(report, args, lambda: PredictionsPanel(report, history=history))

    @magic_arguments()
    @argument("model", help="the model (a name or expression in the notebook)")
    @argument("layer", nargs="?", default=None, help="conv layer name (default: the first conv layer)")
    @argument("--data", default=None, help="expression giving data; shows feature maps of one example")
    @argument("--example", type=int, default=0, help="which example of --data (default 0)")
    @argument("--channel", type=int, default=None, help="input channel to show in grayscale (default RGB/0)")
    @argument("--global", dest="global_", action="store_true", help="one colour scale for the whole layer")
    @static_option("the static view instead of the panel")
    @output_option("FilterView")
    @line_magic
    def nn_filters(self, line: str = "") -> Any:
        """Filters of a conv layer as an image grid, and feature maps for one example.

        Conv1d/2d/3d and ConvTranspose layers; 3-channel filters in RGB, others per input channel in
        a diverging colour map; per-filter or global scaling; the layer dropdown lists every conv layer
        with its weight shape. The summary gives the filters' mean smoothness (neighbouring-weight
        correlation: ~0 for random initialization, towards 1 for smooth trained filters).

        Example: %nn_filters model conv1 --data (x_test,y_test) --example 3
        """
        args = parse(self.nn_filters, line)
        from .filters import filters

        shell = self.shell
        model = evaluate(shell, args.model, "model")
        data = evaluate(shell, args.data, "data") if args.data is not None else None
        with usage_errors():
            view = filters(
                model, args.layer, data=data, example=args.example,
                normalize="global" if args.global_ else "filter", channel=args.channel,
            )  # fmt: skip
        from .panel import FiltersPanel

        return show(view, args, lambda: FiltersPanel(view, model=model, data=data))

"""`%nn_search`: hyperparameter random search with the live panel."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.magic import evaluate, output_option, parse, show, static_option, usage_errors


@magics_class
class SearchMagics(Magics):
    @magic_arguments()
    @argument("train_fn", help="name of the function train_fn(**params) -> score or dict of metrics")
    @argument("space", help="name of the dict of name -> nbdebug.loguniform/uniform/intlog/choice")
    @argument("-n", "--trials", type=int, default=20, help="number of trials (default 20)")
    @argument("-s", "--seed", type=int, default=0, help="seed of the draws and of each trial (default 0)")
    @argument("-m", "--metric", default=None, help="key to optimize when train_fn returns a dict of metrics")
    @argument("--mode", choices=("max", "min"), default=None,
              help="max or min the score (default: min for a metric named like loss/error, else max)")  # fmt: skip
    @argument("--timeout", type=float, default=None, help="start no new trial after this many seconds")
    @argument("--background", action="store_true",
              help="run in a thread so the panel's Stop button works while trials run (the cell returns at once)")  # fmt: skip
    @static_option("no live panel: run, then show the static result")
    @output_option("SearchResult (with --background: the panel; panel.wait() gives the result)")
    @line_magic
    def nn_search(self, line: str):
        """Random search over SPACE, calling TRAIN_FN(**params) for each trial, with a live panel.

        Usage: %nn_search train_fn space [-n 20] [-s 0] [-m METRIC] [--mode max|min] [--timeout S]
               [--background] [--static] [-o]

        Parameters are drawn on the scale of their distribution (log for loguniform/intlog) from a seeded
        generator: the same seed gives the same draws. The panel shows a table of trials (parameters,
        score, time, status), the score against each parameter on log axes with the best trial marked, a
        progress bar and a Stop button. A trial that raises or returns NaN is recorded as failed and the
        search goes on. Interrupting the kernel stops the search and keeps the finished trials. At the end
        the panel lists findings about the search: best value at the edge of a range, a parameter the score
        does not depend on, too few trials, failed trials.
        """
        args = parse(self.nn_search, line)
        train_fn = evaluate(self.shell, args.train_fn, "train_fn")
        space = evaluate(self.shell, args.space, "space")
        if args.background and args.static:
            raise UsageError("--background needs the live panel: drop --static")
        kwargs = dict(
            trials=args.trials, seed=args.seed, metric=args.metric, mode=args.mode, timeout=args.timeout
        )
        from .run import search

        if args.static:
            with usage_errors():
                result = search(train_fn, space, **kwargs)
            return show(result, args)
        from IPython.display import display as ip_display

        from .panel import live_search

        handles = []

        def show_panel(panel):  # keep the handle so the saved output can carry the final static rendering
            handles.append(ip_display(panel, display_id=True))

        with usage_errors():
            panel = live_search(train_fn, space, background=args.background, display=show_panel, **kwargs)
        if not args.background and handles and handles[0] is not None:
            handles[0].update(panel)  # nbconvert / GitHub now show the finished table and scatter
        if args.background:
            return panel if args.output else None
        return panel.result if args.output else None


MAGICS = SearchMagics

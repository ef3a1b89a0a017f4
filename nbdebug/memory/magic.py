"""`%nn_mem`: which tensors hold the memory, the GPU allocator's view, a live watch, one step's activations."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.magic import evaluate, output_option, parse, show, static_option, unquote, usage_errors


@magics_class
class MemoryMagics(Magics):
    @magic_arguments()
    @argument("names", nargs="*", help="objects to break down (default: the whole notebook namespace)")
    @argument("--all", action="store_true", help="also list tensors no name reaches (found via gc): leaks")
    @argument("--top", type=int, default=20, help="rows of the largest-tensors table (default 20)")
    @static_option("the static report instead of the panel")
    @argument("--watch", action="store_true", help="plot allocated/reserved memory live while cells run")
    @argument("--seconds", type=float, default=60.0, help="how long --watch samples (default 60 s)")
    @argument("--interval", type=float, default=0.1, help="seconds between --watch samples (default 0.1)")
    @argument(
        "--step", action="store_true", help="NAMES are MODEL BATCH LOSS_FN [OPTIMIZER]: activation memory"
    )
    @argument("--budget", default=None, help="with --step: memory budget for the largest batch, e.g. 12GB")
    @output_option("result (MemoryReport, MemoryWatch or StepMemory) instead of displaying a panel")
    @line_magic
    def nn_mem(self, line: str):
        """Show which tensors hold the memory.

        Usage:
          %nn_mem                         every tensor reachable from the notebook namespace
          %nn_mem model optimizer         just these objects, broken down by role
          %nn_mem --all                   also tensors that no name reaches (gc): the leaks
          %nn_mem --watch [--seconds 60] [--interval 0.1]
                                          live allocated/reserved plot while other cells run
          %nn_mem --step model batch loss_fn [optimizer] [--budget 12GB]
                                          activation memory per layer and peak vs batch size
          add -o to get the result object (MemoryReport, MemoryWatch or StepMemory)

        The inventory names each tensor by its path (`model.0.weight`, `opt.state[0.weight].exp_avg`,
        `batch['image']`, `history[3]`), with role, shape, dtype, device and bytes; totals count each
        storage once. On CUDA it adds allocated, reserved, peak and fragmentation per device.
        """
        args = parse(self.nn_mem, line)
        args.names = [unquote(n) for n in args.names]
        from .inventory import inventory as memory
        from .live import watch as start_watch
        from .step import step

        if args.top < 1:
            raise UsageError(f"--top must be at least 1, got {args.top}")
        if args.watch:
            with usage_errors():
                watch = start_watch(interval=args.interval, seconds=args.seconds)
            from .panel import WatchPanel

            return show(watch, args, lambda: WatchPanel(watch))
        if args.step:
            if len(args.names) not in (3, 4):
                raise UsageError(
                    f"--step needs MODEL BATCH LOSS_FN [OPTIMIZER], got {len(args.names)} names: {args.names}"
                )
            model = evaluate(self.shell, args.names[0], "model")
            batch = evaluate(self.shell, args.names[1], "batch")
            loss_fn = evaluate(self.shell, args.names[2], "loss function")
            opt = evaluate(self.shell, args.names[3], "optimizer") if len(args.names) == 4 else None
            with usage_errors():
                result = step(model, batch, loss_fn, optimizer=opt, budget=args.budget)
            return show(result, args)

        def scan():  # Refresh calls this again: names are looked up anew, so rebinding shows
            objects = [evaluate(self.shell, name, "object") for name in args.names]
            if objects:
                return memory(*objects, names=list(args.names), all=args.all)
            return memory(namespace=self.shell.user_ns, all=args.all)

        with usage_errors():
            report = scan()
        from .panel import MemoryPanel

        return show(report, args, lambda: MemoryPanel(report, refresh=scan, n=args.top))


MAGICS = MemoryMagics

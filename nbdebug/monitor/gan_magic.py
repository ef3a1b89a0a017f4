"""`%%nn_gan`: run a GAN training cell under `nbdebug.watch_gan` with the live GAN dashboard."""

from __future__ import annotations

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.magic import evaluate, output_option, parse, run_watched_cell, static_option, usage_errors


@magics_class
class GanMagics(Magics):
    @magic_arguments()
    @argument("discriminator", help="name of the discriminator (nn.Module)")
    @argument("generator", help="name of the generator (nn.Module)")
    @argument("d_optimizer", help="name of the discriminator's optimizer")
    @argument("g_optimizer", help="name of the generator's optimizer")
    @argument(
        "--every",
        type=int,
        default=10,
        help="per-layer statistics on the first and every N-th step (default 10)",
    )
    @argument(
        "--samples-every",
        type=int,
        default=25,
        help="sample grid from the fixed noise batch and diversity every N G steps (default 25)",
    )
    @argument("--n-samples", type=int, default=64, help="size of the fixed noise batch (default 64)")
    @argument(
        "--noise",
        default=None,
        help="expression for the fixed noise batch (default: N draws shaped like G's first input, private seed)",
    )
    @argument(
        "--real",
        default=None,
        help="expression for real examples used as the diversity reference (default: the real batches D sees)",
    )
    @argument(
        "--interval", type=float, default=0.5, help="seconds between live redraws at most (default 0.5)"
    )
    @static_option("no live panel: show the static summary at the end")
    @output_option("GanWatch (findings, history, frames)")
    @cell_magic
    def nn_gan(self, line: str, cell: str):
        """Run the cell (your own GAN loop) under nbdebug.watch_gan, with a live GAN dashboard.

        Usage: %%nn_gan D G opt_d opt_g [--every N] [--samples-every N] [--n-samples N]
                        [--noise EXPR] [--real EXPR] [--interval S] [--static] [-o]

        While the cell runs, the panel shows D and G loss, D(x) and D(G(z)) as probabilities (whether D
        returns logits or probabilities), both networks' gradient norms and update/weight ratios, the
        diversity of G's samples against the real data's, and a grid of G's samples from a noise batch
        fixed at the start, refreshed every --samples-every G steps (a slider steps back through them).
        Findings name the failing network and optimizer as soon as they are seen: a missing zero_grad()
        (only gradients that reach an optimizer step count: G's backward filling D's .grad is normal),
        the discriminator winning outright (gan-d-collapse, with causes ranked), G's gradient vanishing,
        mode collapse, Sigmoid + BCELoss, NaN/Inf, and learning rates far from the 1e-3 update ratio.
        The cell's code is not changed: the same seed gives the same weights with and without it.
        """
        args = parse(self.nn_gan, line)
        D = evaluate(self.shell, args.discriminator, "discriminator")
        G = evaluate(self.shell, args.generator, "generator")
        opt_d = evaluate(self.shell, args.d_optimizer, "d_optimizer")
        opt_g = evaluate(self.shell, args.g_optimizer, "g_optimizer")
        noise = evaluate(self.shell, args.noise, "noise") if args.noise else None
        real = evaluate(self.shell, args.real, "real") if args.real else None
        from .watch_gan import watch_gan

        with usage_errors():
            g = watch_gan(
                D,
                G,
                opt_d,
                opt_g,
                every=args.every,
                samples_every=args.samples_every,
                n_samples=args.n_samples,
                noise=noise,
                real=real,
                update_interval=args.interval,
                names=(args.discriminator, args.generator, args.d_optimizer, args.g_optimizer),
            )
        from .gan_panel import gan_panel

        return run_watched_cell(
            self.shell, cell, g, gan_panel, "nn_gan", panel=not args.static, output=args.output
        )


MAGICS = GanMagics

"""`%nn_shapes`: the layer-by-layer shape walkthrough."""

from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.magic import evaluate, output_option, parse, show, static_option, usage_errors


@magics_class
class ShapesMagics(Magics):
    @magic_arguments()
    @argument("model", help="name of the nn.Module in the notebook namespace")
    @argument("inputs", nargs="+", help="one or more inputs (names or expressions)")
    @argument(
        "--meta",
        action="store_true",
        help="walk through shapes on the meta device (no compute, no weights copied)",
    )
    @static_option("the static table instead of the stepper panel")
    @output_option("Trace instead of displaying the panel")
    @line_magic
    def nn_shapes(self, line: str):
        """Step through the forward pass of MODEL on INPUTS, layer by layer and op by op.

        Usage: %nn_shapes model x [y ...] [--meta] [--static] [-o]

        Each step shows its input and output shapes, dtype and parameter count; conv, transposed conv,
        pooling and upsampling steps show their output-size arithmetic; image-like outputs show their first
        channels. When the forward pass fails, the panel opens on the failing step with a hint.
        """
        args = parse(self.nn_shapes, line)
        model = evaluate(self.shell, args.model, "model")
        inputs = [evaluate(self.shell, expr, "input") for expr in args.inputs]
        from .trace import trace

        with usage_errors():
            result = trace(model, *inputs, device="meta" if args.meta else None)
        from .panel import ShapesPanel

        return show(result, args, lambda: ShapesPanel(result))


MAGICS = ShapesMagics

"""What `trace` returns: the steps of one forward pass and the error if it failed, renderable without a
kernel (text table, HTML table, the failure with its hint)."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .._core.errors import NbdebugError
from .._core.result import Result

Shape = tuple[int, ...]  # a nested tensor's ragged dimension is None


@dataclass(slots=True)
class Step:
    """One step of the forward pass: a module call or a functional operation.

    `formula` is the output-size arithmetic written out with the layer's own numbers (conv, transposed
    conv, pooling, upsampling, flatten), else None. `parent` is the index of the enclosing module step.
    """

    index: int
    name: str
    kind: str  # "module" | "function"
    type: str
    input_shapes: list[Shape]
    output_shapes: list[Shape] | None
    dtype: str | None
    params: int
    formula: str | None = None
    depth: int = 0
    parent: int | None = None
    call: int = 1
    is_container: bool = False
    # "ok" | "error" | "incomplete" (an enclosing module of the failing step) | "caught" (it raised, and the
    # forward pass caught the exception and went on)
    status: str = "ok"
    input_repr: str = ""
    output_repr: str = ""
    preview: torch.Tensor | None = field(default=None, repr=False, compare=False)
    preview_of: str = "output"  # the model's root step previews its input: what every layer starts from

    def describe(self) -> str:
        """One line: `name (type): in -> out`."""
        return f"{self.name} ({self.type}): {self.input_repr or '-'} -> {self.output_repr or '-'}"


@dataclass
class TraceError:
    """Where the forward pass failed, what it got, and what to do about it."""

    where: str
    message: str
    hint: str
    step: int | None = None
    type: str = ""
    exception_type: str = ""
    input_shapes: list[Shape] = field(default_factory=list)

    def __str__(self) -> str:
        shapes = ", ".join(_fmt_shape(s) for s in self.input_shapes) or "-"
        return (
            f"forward pass failed at {self.where} ({self.type}) with input {shapes}: "
            f"{self.exception_type}: {self.message}\nHint: {self.hint}"
        )


@dataclass
class Trace(Result):
    """Every step of one forward pass, in execution order, and the error if it failed."""

    steps: list[Step]
    error: TraceError | None = None
    model_type: str = ""
    input_repr: str = ""
    output_repr: str = ""
    device: str = "cpu"
    seconds: float = 0.0
    total_params: int = 0
    notes: list[str] = field(default_factory=list)  # what nbdebug itself could not record (never the model)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __getitem__(self, key: int | str) -> Step:
        if isinstance(key, int):
            return self.steps[key]
        for s in self.steps:
            if s.name == key:
                return s
        raise KeyError(f"no step named {key!r}; names: {', '.join(s.name for s in self.steps[:12])}")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failing_step(self) -> Step | None:
        if self.error is None or self.error.step is None:
            return None
        return self.steps[self.error.step]

    def raise_for_error(self) -> Trace:
        """Raise `NbdebugError` with the failing step and hint when the forward pass failed."""
        if self.error is not None:
            raise NbdebugError(str(self.error))
        return self

    def to_frame(self):
        """One row per step: index, name, kind, type, input/output shapes, dtype, params, formula, ..."""
        import pandas as pd

        rows = [
            {f.name: getattr(s, f.name) for f in dataclasses.fields(Step) if f.name != "preview"}
            for s in self.steps
        ]
        cols = [f.name for f in dataclasses.fields(Step) if f.name != "preview"]
        return pd.DataFrame(rows, columns=cols).set_index("index", drop=False).rename_axis(None)

    # -- rendering (no kernel needed) -----------------------------------------------------------------
    def summary(self) -> str:
        n_mod = sum(s.kind == "module" for s in self.steps)
        n_fn = len(self.steps) - n_mod
        head = f"{self.model_type}: {len(self.steps)} steps ({n_mod} module calls, {n_fn} functional ops)"
        head += f", {self.total_params:,} parameters, input {self.input_repr}"
        if self.error is None:
            head += f" -> output {self.output_repr}"
        return head

    def to_text(self, max_rows: int = 200) -> str:
        lines = [self.summary()]
        rows = [("#", "name", "type", "input", "output", "params")]
        for s in self.steps[:max_rows]:
            mark = {"error": "!! ", "incomplete": ".. ", "caught": "x  "}.get(s.status, "")
            name = "  " * s.depth + s.name
            rows.append(
                (str(s.index), mark + name, s.type, s.input_repr, s.output_repr or "-", f"{s.params:,}")
            )
        widths = [min(max(len(r[i]) for r in rows), 48) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(c[:48].ljust(w) for c, w in zip(r, widths)).rstrip())
        if len(self.steps) > max_rows:
            lines.append(f"... {len(self.steps) - max_rows} more steps (see .to_frame())")
        lines.extend(f"Note: {n}" for n in self.notes)
        if self.error is not None:
            lines.append("")
            lines.append(f"ERROR {self.error}")
        return "\n".join(lines)

    def to_html(self, max_rows: int = 400, current: int | None = None) -> str:
        """Static HTML table of the steps (`current` highlighted), the failure and its hint first."""
        if max_rows == 400 and current is None:
            return super().to_html()
        return self._html(max_rows, current)

    def _html(self, max_rows: int = 400, current: int | None = None) -> str:
        esc = html.escape
        out = [f'<div class="nbdebug-trace"><p><b>{esc(self.summary())}</b></p>']
        if self.error is not None:
            out.append(error_html(self.error))
        out.append(
            '<table class="nbdebug-trace-table" style="border-collapse:collapse;font-size:12px">'
            "<thead><tr><th>#</th><th>name</th><th>kind</th><th>type</th><th>input</th><th>output</th>"
            "<th>dtype</th><th>params</th><th>arithmetic</th></tr></thead><tbody>"
        )
        for s in self.steps[:max_rows]:
            style = ""
            if s.status == "error":
                style = "background:#fde2e1"
            elif s.index == current:
                style = "background:#fff3b0"
            elif s.kind == "function":
                style = "background:#eef6ff"
            pad = f"padding-left:{4 + 12 * s.depth}px"
            formula = esc(s.formula or "").replace("\n", "<br>")
            out.append(
                f'<tr data-step="{s.index}" data-status="{s.status}" style="{style}">'
                f'<td>{s.index}</td><td style="{pad}"><code>{esc(s.name)}</code></td><td>{s.kind}</td>'
                f"<td>{esc(s.type)}</td><td>{esc(s.input_repr)}</td><td>{esc(s.output_repr or '-')}</td>"
                f'<td>{esc(s.dtype or "")}</td><td style="text-align:right">{s.params:,}</td>'
                f'<td style="font-family:monospace;font-size:11px">{formula}</td></tr>'
            )
        out.append("</tbody></table>")
        if len(self.steps) > max_rows:
            out.append(f"<p>... {len(self.steps) - max_rows} more steps (see <code>.to_frame()</code>)</p>")
        out.extend(f"<p><i>Note: {esc(n)}</i></p>" for n in self.notes)
        out.append("</div>")
        return "".join(out)

    def __repr__(self) -> str:
        status = "ok" if self.error is None else f"error at {self.error.where}"
        return f"<Trace {self.model_type}: {len(self.steps)} steps, {status}>"


def error_html(error: TraceError) -> str:
    esc = html.escape
    shapes = ", ".join(_fmt_shape(s) for s in error.input_shapes) or "-"
    return (
        '<div class="nbdebug-trace-error" style="border-left:4px solid #c62828;background:#fdecea;'
        'padding:6px 10px;margin:6px 0">'
        f"<b>Forward pass failed at <code>{esc(error.where)}</code> ({esc(error.type)})</b>"
        f" with input {esc(shapes)}<br><code>{esc(error.exception_type)}: {esc(error.message)}</code>"
        f"<br><b>Hint:</b> {esc(error.hint)}</div>"
    )


def _fmt_shape(shape: Sequence[int] | None) -> str:
    if shape is None:
        return "-"
    text = str(tuple(shape))  # "(8, 1, 28, 28)"; called per step, so kept to one C-level str()
    if "N" in text:  # a nested tensor's ragged dimension
        text = text.replace("None", "*")
    return text[:-2] + ")" if text.endswith(",)") else text

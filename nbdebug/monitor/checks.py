"""Diagnosis of a watched training run: pure functions from collected summaries to findings.

Each check documents its rule next to the code, with the catalogue threshold it applies (see
the catalogue, `_core/catalogue.py`) and what makes it robust against false alarms on a healthy run: every
statistical check needs the condition to *persist* over several samples, because a monitor that cries
wolf is switched off. Checks only read data; they are called live (on sampled steps and epoch ends)
and once more when the watch closes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from .._core.findings import Finding
from .blowup import check_blowup
from .chains import explain
from .freeze_checks import check_freeze
from .layout_checks import LAYOUT_CHECKS, frozen_batchnorm
from .loop_checks import check_frozen, check_never_steps, check_schedule
from .loss_checks import check_labels, check_loss_calls, check_loss_curve
from .lr_checks import check_learning_rate
from .pitfall_checks import check_amp_pitfalls
from .records import record_error
from .rundata import (
    BLOCK,
    DEAD_FRAC,
    GRAD_GROWTH,
    GRAD_HUGE,
    MIN_ROWS,
    PERSIST,
    SATURATED_FAR,
    SATURATED_FRAC,
    VANISH_ABS,
    VANISH_REL,
    RunData,
    _f,
    _start_loss,
)
from .wiring_checks import check_wiring

__all__ = ["BLOCK", "GRAD_HUGE", "PERSIST", "RunData", "diagnose"]


def check_grad_not_zeroed(run: RunData) -> Iterator[Finding]:
    """Leak confirmed at step time: a backward added onto the gradient the previous step used and
    step() consumed it. Deliberate accumulation (several backward passes, zero after the step) never
    leaks, since the first backward after a step finds the gradients zeroed."""
    leaky = [r for r in run.steps if r.leaked]
    if not leaky:
        return
    first = leaky[0]
    norms = [r.grad_norm for r in run.steps if math.isfinite(r.grad_norm)]
    growth = f"; gradient norm went from {norms[0]:.3g} to {max(norms):.3g}" if len(norms) > 1 else ""
    names = sorted(run.leaked_params, key=lambda n: -run.leaked_params[n])
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    yield _f(
        "grad-not-zeroed",
        "error",
        f"from step {first.step}, {first.leaked} of {run.n_params} parameters' .grad still held the previous "
        f"step's gradient when backward() added the new one, and optimizer.step() used the sum "
        f"({len(leaky)} of {len(run.steps)} steps leaked{growth}). Parameters: {shown}",
        "call optimizer.zero_grad() once per step, before loss.backward() (or right after optimizer.step()); "
        "for deliberate gradient accumulation over k batches, zero after every k-th step",
        "optimizer",
        first_step=first.step,
        leaked_steps=len(leaky),
        params=names,
    )


def check_nonfinite(run: RunData) -> Iterator[Finding]:
    """Any NaN/Inf: the loss (the step's forward replayed to name the first layer), the gradients
    (the first layer backward reached), or an activation seen on a sampled step."""
    if run.nonfinite_events:
        e = run.nonfinite_events[0]
        if e["what"] == "loss":
            where = e["where"]
            if where == "input":
                msg = (
                    f"the loss became {e['value']} at step {e['step']}: the input batch itself holds NaN/Inf"
                )
                hint = "clean the data (torch.nan_to_num, drop bad rows) or fix the preprocessing that divides by zero"
            elif e.get("phase") == "late":
                msg = (
                    f"the loss became {e['value']} at step {e['step']}; when it was read (values are read in "
                    "batches at sampled steps, to add no GPU synchronization) the update had already written "
                    "NaN/Inf into the weights, so the layer that produced it first cannot be replayed"
                )
                hint = (
                    "rerun with watch(..., every=1) to name the layer; meanwhile lower the learning rate, clip "
                    "gradients (torch.nn.utils.clip_grad_norm_), or look for log(0) / division by zero"
                )
            elif e.get("phase") == "outside":
                msg = (
                    f"the loss became {e['value']} at step {e['step']}; replaying {e.get('through')} (the first of "
                    "the model's submodules the step called) found every output finite: the loss, or what the "
                    f"step computes outside {e.get('through')}, produced it"
                )
                hint = (
                    "look for log(0), division by zero or sqrt of a negative in the loss and in the step's own "
                    "operations (training_step); clamp with an eps"
                )
            elif e.get("phase") == "unreplayed":
                msg = (
                    f"the loss became {e['value']} at step {e['step']}; its forward could not be replayed to name "
                    "the layer (the step's input was not kept: the forward did not go through the model or one "
                    "of its direct submodules)"
                )
                hint = (
                    "check the batch (torch.isfinite(x).all()), then look for log(0), division by zero or sqrt "
                    "of a negative in the forward and the loss; clamp with an eps"
                )
            elif where in (None, "loss function"):
                msg = (
                    f"the loss became {e['value']} at step {e['step']} while every layer's output was finite: "
                    "the loss computation produced it"
                )
                hint = (
                    "look for log(0), division by zero or sqrt of a negative in the loss; clamp with an eps"
                )
            else:
                msg = f"the loss became {e['value']} at step {e['step']}; replaying the forward, layer {where} produced the first NaN/Inf"
                hint = "lower the learning rate, clip gradients (torch.nn.utils.clip_grad_norm_), or guard the op in that layer"
        else:
            where = e["where"]
            layers = ", ".join(e.get("layers", [])[:4])
            msg = f"gradients became non-finite at step {e['step']} with a finite loss; first reached in backward: {where} (non-finite in: {layers})"
            hint = "an op with an infinite derivative (sqrt or log at 0, pow with a negative base); add an eps, or clip gradients"
        yield _f("nonfinite", "error", msg, hint, where, step=e["step"], phase=e.get("phase"))
        return
    for step in sorted(run.samples):
        for s in run.samples[step]:
            if s.act_nonfinite:
                yield _f(
                    "nonfinite",
                    "error",
                    f"the output of {s.layer} ({s.type}) holds NaN/Inf at step {step} (first such layer)",
                    "check that layer's input range and the learning rate; clip gradients",
                    s.layer,
                    step=step,
                )
                return


def check_gradient_scale(run: RunData) -> Iterator[Finding]:
    """exploding (persistent; the conclusive blow-ups are `blowup.py`'s): total gradient norm > 1e3, or
    > 100x its first value, on PERSIST steps in a row. A state: a sum-reduced loss whose large gradient
    shrinks as it trains (the polynomial-fit tutorial) has it withdrawn once the norm comes down.
    vanishing: the first layer's gradient norm < 1e-7 or < 1e-4 x the last layer's, on PERSIST samples
    in a row."""
    norms = [(r.step, r.grad_norm) for r in run.steps if math.isfinite(r.grad_norm)]
    if len(norms) > PERSIST:
        first = norms[0][1]
        last = norms[-PERSIST:]
        if all(n > GRAD_HUGE or (first > 0 and n > GRAD_GROWTH * first) for _, n in last):
            yield _f(
                "exploding-gradients",
                "warning",
                f"total gradient norm is {last[-1][1]:.3g} at step {last[-1][0]} (first step: {first:.3g}), "
                f"above 1e3 or 100x its start for {PERSIST} steps in a row",
                "clip gradients (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)), lower the learning "
                "rate, or add normalization layers",
                "optimizer",
                grad_norm=last[-1][1],
                first=first,
            )
    steps = sorted(run.samples)[-PERSIST:]
    if len(steps) < PERSIST:
        return
    verdicts = []
    for step in steps:
        rows = [s for s in run.samples[step] if math.isfinite(s.grad_norm)]
        if len(rows) < 2:
            return
        first_l, last_l = rows[0], rows[-1]
        if last_l.grad_norm <= 0:
            return
        small = first_l.grad_norm < VANISH_ABS or first_l.grad_norm < VANISH_REL * last_l.grad_norm
        verdicts.append((small, first_l, last_l))
    if all(v[0] for v in verdicts):
        _, f, la = verdicts[-1]
        yield _f(
            "vanishing-gradients",
            "warning",
            f"the first layer {f.layer} ({f.type}) gets a gradient norm of {f.grad_norm:.2g} against "
            f"{la.grad_norm:.2g} for the last layer {la.layer} ({la.type}) (ratio {f.grad_norm / la.grad_norm:.1e}) on {PERSIST} samples in a row",
            "use ReLU-family activations instead of sigmoid/tanh in deep stacks, Kaiming/Xavier init, "
            "normalization layers or residual connections",
            f.layer,
            first=f.grad_norm,
            last=la.grad_norm,
        )


def _layer_rows(run: RunData) -> dict[str, list[Any]]:
    """Each layer's samples in step order."""
    by_layer: dict[str, list[Any]] = {}
    for step in sorted(run.samples):
        for s in run.samples[step]:
            by_layer.setdefault(s.layer, []).append(s)
    return by_layer


def upstream_zero_grad(run: RunData, layer: str, step: int) -> list[str] | None:
    """The parametrized layers before `layer` (forward order) at `step`, when every one of them got a
    gradient norm of exactly 0 (a layer that passes no gradient cuts them off); None when any got more,
    [] when none is known."""
    order = {n: i for i, n in enumerate(run.layer_order)}
    if layer not in order:
        return []
    before = [
        s
        for s in run.samples.get(step, [])
        if order.get(s.layer, len(order)) < order[layer] and math.isfinite(s.grad_norm)
    ]
    if any(s.grad_norm != 0.0 for s in before):
        return None
    return [s.layer for s in before]


def check_activations(run: RunData) -> Iterator[Finding]:
    """dead-relu: a ReLU (a module or `torch.relu` in forward) whose units output zero for every example
    of the batch. Conclusive on the latest sample when every unit is dead on >= MIN_ROWS rows and the
    parametrized layers before it get exactly zero gradient (nothing can revive them); else >= 70% dead on
    PERSIST samples in a row. saturated-activation: a hidden tanh/sigmoid with > 50% of its units in the
    flat tails (see `activations.SATURATION_LIMITS`): conclusive at initialization (the first step, when
    no update can have caused it) or at >= 90% on the latest sample; else on PERSIST samples in a row.
    The model's output activation is not judged for saturation: targets at 0/1 or +-1 pin it on purpose."""
    for layer, rows in _layer_rows(run).items():
        last = rows[-1]
        if run.sample_steps and last.step != run.sample_steps[-1]:
            continue  # the layer was not seen on the latest sample
        recent = rows[-PERSIST:]
        dead_ok = [s for s in recent if math.isfinite(s.dead_frac) and s.rows >= MIN_ROWS]
        if dead_ok and dead_ok[-1] is last:
            upstream = upstream_zero_grad(run, layer, last.step) if last.dead_frac >= 1.0 else None
            conclusive = upstream is not None
            persistent = len(dead_ok) == PERSIST and all(s.dead_frac >= DEAD_FRAC for s in dead_ok)
            if conclusive or persistent:
                yield _dead_finding(run, last, upstream, rows)
        if last.is_output or not math.isfinite(last.saturated_frac):
            continue
        sat = [s.saturated_frac for s in recent if math.isfinite(s.saturated_frac)]
        at_init = last.step == 1 and last.saturated_frac > SATURATED_FRAC
        far = last.saturated_frac >= SATURATED_FAR
        persistent = len(sat) == PERSIST and all(v > SATURATED_FRAC for v in sat)
        if at_init or far or persistent:
            why = (
                "at initialization, before any update"
                if at_init
                else (
                    f"{PERSIST} samples in a row" if persistent else f"on one sample, >= {SATURATED_FAR:.0%}"
                )
            )
            learning = None if at_init else _still_learning(run)
            note = (
                f"; the loss still falls ({learning[0]:.3g} -> {learning[1]:.3g}): learned saturation (an "
                "attention score, a gate) is advice, not a bug"
                if learning
                else ""
            )
            yield _f(
                "saturated-activation",
                "info" if learning else "warning",
                f"{last.saturated_frac:.0%} of the units of {layer} ({last.type}) sit in its flat tails "
                f"(|tanh| > 0.99, sigmoid within 0.01 of 0 or 1), where its gradient is < 2% of its peak ({why}, "
                f"last at step {last.step}){_zero_grad_note(run, layer, last.step)}{note}",
                "normalize the inputs (and regression targets), use a smaller init (Xavier for tanh, or scale "
                "the weights by 1/sqrt(fan_in)), add normalization before the activation, or lower the learning rate",
                layer,
                saturated_frac=last.saturated_frac,
                conclusive=at_init or far,
                step=last.step,
                **_since(rows, lambda v: v.saturated_frac > SATURATED_FRAC),
            )


def _since(rows: list[Any], bad: Callable[[Any], bool]) -> dict[str, Any]:
    """first_step: the first sample of the run of `bad` samples that ends at the latest one; alive_before:
    an earlier sample was not bad (the condition arose during training, not at initialization)."""
    first, alive = rows[-1].step, False
    for s in reversed(rows):
        if bad(s):
            first = s.step
        else:
            alive = True
            break
    return {"first_step": first, "alive_before": alive}


def _zero_grad_note(run: RunData, layer: str, step: int) -> str:
    cut = upstream_zero_grad(run, layer, step)
    if cut:
        shown = ", ".join(cut[:4]) + (", ..." if len(cut) > 4 else "")
        return f"; the layers before it get a gradient of exactly 0 ({shown})"
    return ""


def _dead_finding(run: RunData, last: Any, upstream: list[str] | None, rows: list[Any]) -> Finding:
    layer = last.layer
    since = _since(rows, lambda v: v.dead_frac >= DEAD_FRAC)
    first_dead = since["first_step"]
    if upstream is not None:
        evidence = f"every unit of {layer} ({last.type}) outputs zero for all {last.rows} rows of the batch at step {last.step}"
        if upstream:
            shown = ", ".join(upstream[:4]) + (", ..." if len(upstream) > 4 else "")
            evidence += f", and the {len(upstream)} layer(s) before it get a gradient of exactly 0 ({shown}): nothing can revive them"
        elif last.is_output:
            evidence += ": the model predicts 0 for everything and no gradient flows back through it"
    else:
        evidence = (
            f"{last.dead_frac:.0%} of the units of {layer} ({last.type}) output zero for every example of the batch "
            f"(>= {DEAD_FRAC:.0%} on {PERSIST} samples in a row, last at step {last.step})"
        )
    if first_dead < last.step:
        evidence += f"; dead since step {first_dead}"
    severity = "error" if upstream is not None else "warning"
    learning = _still_learning(run)
    if upstream is None and learning is not None:
        severity = "info"  # the rest of the network learns: capacity lost, not a failure
        evidence += f"; the loss still falls ({learning[0]:.3g} -> {learning[1]:.3g}): the other units learn"
    hint = (
        "drop the ReLU on the output (a regression output should be unbounded, or use softplus for a "
        "positive one)"
        if last.is_output
        else "lower the learning rate, use LeakyReLU/GELU, check the init (Kaiming) and that no large negative "
        "bias or unnormalized input pushes pre-activations below zero"
    )
    return _f(
        "dead-relu",
        severity,
        evidence,
        hint,
        layer,
        dead_frac=last.dead_frac,
        conclusive=upstream is not None,
        step=last.step,
        **since,
    )


def _still_learning(run: RunData) -> tuple[float, float] | None:
    """(start, recent) loss when the mean of the last 20 steps is under half the start level (the first 5
    steps): the network learns in spite of what a check sees; None otherwise."""
    start = _start_loss(run)
    recent = [r.loss for r in run.steps[-20:] if math.isfinite(r.loss)]
    if start and recent and len(run.steps) >= 20 and sum(recent) / len(recent) < 0.5 * start:
        return start, sum(recent) / len(recent)
    return None


def check_no_grad(run: RunData) -> Iterator[Finding]:
    """Trainable parameters of the optimizer whose .grad stayed None at every step (>= 10 steps, or at
    the end of a run of >= 2 steps)."""
    if not run.never_grad or not (len(run.steps) >= 10 or (run.final and len(run.steps) >= 2)):
        return
    names = sorted(run.never_grad)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    if sum(r.backwards for r in run.steps) == 0:
        yield _f(
            "no-grad",
            "error",
            f"no backward pass in {len(run.steps)} optimizer steps: none of the {len(names)} trainable "
            "parameters ever received a gradient, so optimizer.step() changes nothing",
            "call loss.backward() before optimizer.step() in every step",
            "loss",
            params=names,
        )
        return
    yield _f(
        "no-grad",
        "warning",
        f"{len(names)} trainable parameter(s) never received a gradient in {len(run.steps)} steps: {shown}",
        "the graph is cut before them (.detach(), .item(), torch.no_grad(), a numpy round trip), or the layer "
        "is never used in forward(); freeze it on purpose with requires_grad_(False)",
        names[0].rsplit(".", 1)[0],
        params=names,
    )


def check_eval_mode(run: RunData) -> Iterator[Finding]:
    """optimizer.step() while the model is in eval mode and has Dropout/BatchNorm layers."""
    bad = [r.step for r in run.steps if r.eval_mode]
    if bad:
        frozen = frozen_batchnorm(run)
        yield _f(
            "eval-mode",
            "info" if frozen else "warning",
            f"{len(bad)} optimizer step(s) were taken with the model in eval mode (first: step {bad[0]}): "
            "dropout is off and batch-norm uses frozen running statistics while training"
            + (
                f"; the model has no dropout and trains on batches of {frozen}: BatchNorm frozen on purpose, "
                "the usual practice at such batch sizes (see batchnorm-small-batch)"
                if frozen
                else ""
            ),
            ("nothing, if BatchNorm is frozen on purpose; else " if frozen else "")
            + "call model.train() at the start of each training epoch (after any validation pass)",
            "model",
            steps=len(bad),
        )


def check_inputs(run: RunData) -> Iterator[Finding]:
    """unnormalized-input: the first training batch's |mean| > 3, std > 10 or std < 0.01 (float only)."""
    if not run.input_stats:
        return
    step, mean, std = run.input_stats[0]
    if abs(mean) > 3 or std > 10 or std < 0.01:
        yield _f(
            "unnormalized-input",
            "warning",
            f"the model's input has mean {mean:.3g} and std {std:.3g} (step {step}); networks train best on "
            "zero-mean, unit-variance inputs",
            "standardize: x = (x - mean) / std with the training set's statistics (transforms.Normalize)",
            "input",
            mean=mean,
            std=std,
        )


CHECKS = (
    check_grad_not_zeroed,
    check_nonfinite,
    check_learning_rate,
    check_gradient_scale,
    check_activations,
    check_no_grad,
    check_eval_mode,
    check_loss_calls,
    check_amp_pitfalls,
    check_inputs,
    check_labels,
    check_loss_curve,
    check_blowup,
    check_frozen,
    check_never_steps,
    check_schedule,
    check_wiring,
    check_freeze,
)


def run_checks(run: RunData, checks: tuple[Callable[[RunData], Iterator[Finding]], ...]) -> list[Finding]:
    """Every check on `run`; one that raises is recorded in `run.internal_errors` (named, with the error)
    and `run.extra["partial"]` is set, and the others still run: a bug in one rule never hides the rest."""
    out: list[Finding] = []
    for check in checks:
        try:
            out.extend(check(run))
        except Exception as e:
            record_error(run.internal_errors, check.__name__, e)
            run.extra["partial"] = True
    return out


def diagnose(run: RunData) -> list[Finding]:
    """What holds now: the findings of every check, a causal chain told as one finding (see `chains`)."""
    out = run_checks(run, CHECKS + LAYOUT_CHECKS)
    try:
        out = explain(run, out)
    except Exception as e:
        record_error(run.internal_errors, "explain", e)
        run.extra["partial"] = True
    return out

"""The GAN checks: pure functions of `GanWatch`'s per-G-step history rows, each documenting its threshold
(catalogue entries gan-*), plus how a generic training finding is re-addressed to one network."""

from __future__ import annotations

import dataclasses
import math
from statistics import median
from typing import TYPE_CHECKING, Any

from .._core.findings import Finding
from .checks import PERSIST

if TYPE_CHECKING:
    from .gan import GanWatch

# Thresholds (catalogue entries gan-*; each documented where it is applied)
COLLAPSE_HIGH = 0.95  # D(x) above this ...
COLLAPSE_LOW = 0.05  # ... and D(G(z)) below this: D separates perfectly
COLLAPSE_STEPS = 5  # consecutive D steps the separation must last
VANISH_REL = 1e-2  # gradient at D's output in G's backward below 1% of its early level (first 5 G steps)
DIVERSITY_LOW = 0.1  # G's batch diversity below 10% of the real batch's
DIVERSITY_POINTS = 2  # consecutive measurements it must stay there
IGNORES_NOISE = 1e-3  # G's samples from independent noise this close together: G ignores its noise
SATURATING_TOL = 0.02  # g_signal within 2% of D(G(z)): G's loss is the saturating log(1 - D(G(z)))
SATURATING_BELOW = 0.3  # ... judged while D(G(z)) < 0.3, where 1 - D(G(z)) is >= 2.3x D(G(z))
LR_RATIO = 5.0  # D's lr this many times G's is named as a cause of D winning


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _soft_labels(targets: list[tuple[float, float]]) -> bool:
    """Targets that are neither exactly 0 nor exactly 1 somewhere: soft or noisy labels."""
    return any(not (lo in (0.0, 1.0) and hi in (0.0, 1.0)) for lo, hi in targets)


def _for_network(f: Finding, role: str, model_name: str, opt_name: str) -> Finding:
    """A generic training finding re-addressed to one network of the GAN and its optimizer."""
    if f.where == "optimizer":
        where = opt_name
    elif f.where in (None, "model", "input"):
        where = model_name
    else:
        where = f"{model_name}.{f.where}"
    hint = f.hint.replace("optimizer.zero_grad()", f"{opt_name}.zero_grad()").replace(
        "optimizer.step()", f"{opt_name}.step()"
    )
    message = f"{role} ({model_name}, optimizer {opt_name}): {f.message}"
    return dataclasses.replace(
        f, message=message, hint=hint, where=where, evidence={**f.evidence, "network": role}
    )


def _collapse_run(rows: list[dict[str, Any]]) -> tuple[int, int] | None:
    """(first index, length) of the first run of >= COLLAPSE_STEPS rows where D separates outright."""
    start, n = None, 0
    for i, r in enumerate(rows):
        ok = (
            _finite(r["d_real"])
            and _finite(r["d_fake"])
            and r["d_real"] > COLLAPSE_HIGH
            and r["d_fake"] < COLLAPSE_LOW
        )
        if ok:
            start, n = (i, 1) if start is None or n == 0 else (start, n + 1)
        elif n >= COLLAPSE_STEPS:
            return start, n
        else:
            start, n = None, 0
    return (start, n) if start is not None and n >= COLLAPSE_STEPS else None


def check_d_collapse(
    rows: list[dict[str, Any]], gw: GanWatch, found: set[tuple[str, str | None]]
) -> Finding | None:
    """gan-d-collapse: D(x) > 0.95 and D(G(z)) < 0.05 (probabilities, before D's update) for 5 G steps
    in a row. D's loss is evidence, not a condition: soft labels keep it above 0 while D separates
    perfectly (ganhacks). Hints are ranked by what else was observed."""
    run = _collapse_run(rows)
    if run is None:
        return None
    i, n = run
    first, last = rows[i], rows[i + n - 1]
    still = i + n == len(rows)
    d_name, g_name, d_opt, g_opt = gw.names
    hints = []
    if ("grad-not-zeroed", g_opt) in found:
        hints.append(
            f"the generator's optimizer is never zeroed (see grad-not-zeroed): every G update is the running "
            f"sum of all past gradients, G overshoots and D wins; call {g_opt}.zero_grad() before the G loss's "
            "backward() - this is the cause, the hints below only treat the symptom"
        )
    if ("grad-not-zeroed", d_opt) in found:
        hints.append(f"call {d_opt}.zero_grad() before D's backward passes (see grad-not-zeroed)")
    g_ratios = [r["g_ratio"] for r in rows if _finite(r["g_ratio"])]
    if gw.steps == 0:
        hints.append(f"G is never updated: {g_opt}.step() was not called")
    elif g_ratios and median(g_ratios[-PERSIST:]) < 1e-5:
        hints.append(
            f"G barely moves (update/weight ratio {median(g_ratios[-PERSIST:]):.1e}): check that {g_opt} holds G's parameters and its learning rate"
        )
    d_lr, g_lr = last["d_lr"], last["g_lr"]
    if _finite(d_lr) and _finite(g_lr) and g_lr > 0 and d_lr >= LR_RATIO * g_lr:
        hints.append(
            f"D's learning rate is {d_lr / g_lr:.0f}x G's ({d_lr:g} vs {g_lr:g}): lower it (DCGAN uses 2e-4 for both)"
        )
    k = median([r["d_steps"] for r in rows[i : i + n]])
    if k > 1:
        hints.append(f"fewer D steps per G step (now {k:g})")
    if any(r["soft_labels"] for r in rows):
        hints.append(
            "soft/noisy labels are already in use: they keep D's loss above 0 but D still separates "
            "perfectly, so they hide the collapse rather than fix it"
        )
    else:
        hints.append(
            "one-sided label smoothing (real targets 0.9) or soft, noisy labels (real 0.7-1.2, fake 0-0.3)"
        )
    hints.append(
        "instance noise: add Gaussian noise to D's real and fake inputs, annealed to 0 (inference.vc)"
    )
    ranked = "; ".join(f"{j}) {h}" for j, h in enumerate(hints, 1))
    span = "and is still collapsed" if still else f"for {n} G steps"
    return Finding(
        "gan-d-collapse",
        "error" if still else "warning",
        f"the discriminator wins outright from G step {first['step']} {span}: D(x) = {last['d_real']:.3f}, "
        f"D(G(z)) = {last['d_fake']:.3g}, D loss = {last['d_loss']:.3g} (D separates real from fake "
        f"perfectly, so G gets no useful signal)",
        ranked,
        d_name,
        {
            "first_step": first["step"],
            "steps": n,
            "d_real": last["d_real"],
            "d_fake": last["d_fake"],
            "hints": hints,
        },
    )


def check_g_vanishing(rows: list[dict[str, Any]], gw: GanWatch) -> Finding | None:
    """gan-g-vanishing: on PERSIST G steps in a row D(G(z)) < 0.05 while the gradient G's loss puts on D's
    logits (`g_signal`, summed over the fakes) is below 1% of its early level (median of the first 5 G
    steps). The saturating loss log(1 - D(G(z))) has gradient D(G(z)) there, so it vanishes once D
    rejects every fake (Goodfellow et al. 2014, section 3); the non-saturating loss has 1 - D(G(z)).
    Read at D's output, the rule does not depend on the scale of G's weights; G's own gradient norm is
    reported as evidence."""
    vanished = _vanished(rows, gw)
    return vanished if vanished is not None else _saturating_loss(rows, gw)


def _vanished(rows: list[dict[str, Any]], gw: GanWatch) -> Finding | None:
    sig = [r["g_signal"] for r in rows if _finite(r["g_signal"])]
    if len(sig) < 5 + PERSIST:
        return None
    early = median(sig[:5])
    last = rows[-PERSIST:]
    for r in last:
        if not (_finite(r["d_fake_g"]) and r["d_fake_g"] < COLLAPSE_LOW and _finite(r["g_signal"])):
            return None
        if not r["g_signal"] < VANISH_REL * early:
            return None
    r = last[-1]
    norms = [x["g_grad_norm"] for x in rows[:5] if _finite(x["g_grad_norm"])]
    g_early = median(norms) if norms else math.nan
    return Finding(
        "gan-g-vanishing",
        "error",
        f"G's loss puts a gradient of {r['g_signal']:.2g} on D's output at G step {r['step']}, "
        f"{r['g_signal'] / early:.1e} of its early level ({early:.2g}), while D(G(z)) = {r['d_fake_g']:.2g}: D "
        f"rejects every fake and G's loss saturates ({PERSIST} G steps in a row; G's gradient norm "
        f"{g_early:.2g} -> {r['g_grad_norm']:.2g})",
        "use the non-saturating generator loss: BCE(D(G(z)), ones), i.e. maximise log D(G(z)), instead of "
        "minimising log(1 - D(G(z))); and weaken D (see gan-d-collapse)",
        gw.names[1],
        {"signal": r["g_signal"], "early": early, "d_fake_g": r["d_fake_g"], "grad_norm": r["g_grad_norm"]},
    )


def check_mode_collapse(rows: list[dict[str, Any]], gw: GanWatch) -> Finding | None:
    """gan-mode-collapse: the spread (mean pairwise distance) of G's training batch below 10% of the real
    batch's on the last 2 measurements, and either (a) fallen to under half the highest spread seen
    before (G had found diversity and lost it), or (b) under a quarter of the spread of G's samples
    from the fixed, independent noise batch (the batch's examples share their noise). An untrained G
    often starts narrow (5% of the real spread on the ring of Gaussians, measured): without (a) or
    (b) that is not collapse. When G's training batch was not seen, the fixed-noise samples stand in."""
    points = []
    for r in rows:
        batch = r["diversity"] if _finite(r["diversity"]) else r["sample_diversity"]
        if _finite(batch):
            points.append((r["step"], batch, r["sample_diversity"]))
    if points:
        ignored = _ignores_noise(points[-1], gw)
        if ignored is not None:
            return ignored
    if len(points) < DIVERSITY_POINTS:
        return None
    last = points[-DIVERSITY_POINTS:]
    if not all(v < DIVERSITY_LOW for _, v, _ in last):
        return None
    before = [v for _, v, _ in points[:-DIVERSITY_POINTS]]
    best = max(before, default=0.0)
    declined = all(v < 0.5 * best for _, v, _ in last)
    shared = all(_finite(s) and v < 0.25 * s for _, v, s in last)
    if not (declined or shared):
        return None
    step, v, s = last[-1]
    if shared and not declined:
        msg = (
            f"G's training batch has {v:.1%} of the real data's spread (mean pairwise distance) at G step {step}, "
            f"while G's samples from independent noise have {s:.0%}: the examples of each batch get the same "
            "noise vector, so G learns one output"
        )
        hint = "draw fresh noise per example inside the loop: z = torch.randn(batch_size, nz) (not randn(1, nz).expand)"
    else:
        msg = (
            f"G's samples lost their diversity: their mean pairwise distance fell from {best:.0%} to {v:.1%} of "
            f"the real data's by G step {step} (below {DIVERSITY_LOW:.0%} on the last {DIVERSITY_POINTS} "
            "measurements): G maps every noise vector to a few outputs"
        )
        hint = (
            "see the sample grid; lower G's learning rate or balance D and G (see the other findings), add "
            "minibatch discrimination / minibatch-stddev to D, or use a Wasserstein loss with gradient penalty "
            "(ganhacks)"
        )
    return Finding(
        "gan-mode-collapse",
        "warning",
        msg,
        hint,
        gw.names[1],
        {
            "diversity": v,
            "highest": best,
            "sample_diversity": s,
            "step": step,
            "shared_noise": shared and not declined,
        },
    )


def _ignores_noise(point: tuple[int, float, float], gw: GanWatch) -> Finding | None:
    """Conclusive on one measurement, from G's first step: G's samples for independent noise vectors (the
    fixed noise batch; G's training batch when no grid could be drawn) lie within 0.1% of the real data's
    spread of each other. An untrained G is narrow (~5% of the real spread, measured on the ring of
    Gaussians), never identical: identical samples mean G's output does not depend on its noise."""
    step, batch, independent = point
    value = independent if _finite(independent) else batch
    if not _finite(value) or value >= IGNORES_NOISE:
        return None
    source = (
        "from independent noise vectors (the fixed noise batch)"
        if _finite(independent)
        else "in its training batch"
    )
    return Finding(
        "gan-mode-collapse",
        "error",
        f"G's samples {source} are identical: their spread is {value:.2%} of the real data's at G step {step} "
        "(under 0.1%): G's output does not depend on its noise, so it can only learn one sample",
        "check that the noise reaches G's output: G.forward uses its input z (not a stored or zeroed tensor), "
        "z is not multiplied by 0 or detached into a constant, and a fresh z is drawn per example "
        "(torch.randn(batch_size, nz))",
        gw.names[1],
        {"diversity": batch, "sample_diversity": independent, "step": step, "ignores_noise": True},
    )


def _saturating_loss(rows: list[dict[str, Any]], gw: GanWatch) -> Finding | None:
    """gan-g-vanishing, identified by the loss's form: for a mean-reduced G loss, the gradient it puts on
    D's logits, summed over the fakes, is D(G(z)) for the saturating log(1 - D(G(z))) and 1 - D(G(z)) for
    the non-saturating -log D(G(z)) (Goodfellow et al. 2014, section 3). On PERSIST G steps in a row with
    D(G(z)) < 0.3 (where the two differ by >= 2.3x) a signal within 2% of D(G(z)) names the saturating
    loss: its signal shrinks with D(G(z)) and vanishes as D wins."""
    last = rows[-PERSIST:]
    if len(last) < PERSIST:
        return None
    for r in last:
        p, sig = r["d_fake_g"], r["g_signal"]
        if not (_finite(p) and _finite(sig) and 0 < p < SATURATING_BELOW):
            return None
        if abs(sig - p) > SATURATING_TOL * p:
            return None
    r = last[-1]
    return Finding(
        "gan-g-vanishing",
        "warning",
        f"G minimises the saturating log(1 - D(G(z))): the gradient its loss puts on D's output equals D(G(z)) "
        f"({r['g_signal']:.3g} at G step {r['step']}, {PERSIST} G steps in a row), {(1 - r['d_fake_g']) / r['d_fake_g']:.1f}x "
        f"weaker than the {1 - r['d_fake_g']:.3g} the non-saturating loss gives while D rejects the fakes, and it "
        "vanishes as D wins",
        "use the non-saturating generator loss: BCE(D(G(z)), ones), i.e. maximise log D(G(z)) (softplus(-D(G(z))) "
        "on logits), instead of minimising log(1 - D(G(z)))",
        gw.names[1],
        {"signal": r["g_signal"], "d_fake_g": r["d_fake_g"], "saturating_loss": True},
    )

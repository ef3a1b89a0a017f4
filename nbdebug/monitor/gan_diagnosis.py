"""`GanWatch`'s diagnosis: the training monitor's checks run per network (each finding re-addressed to
that network and its optimizer), the GAN checks of `gan_checks.py`, and an optimizer that never steps
while the other network trains. Every check is guarded (`run_checks`): one that raises is recorded and
the others still run."""

from __future__ import annotations

from typing import Any

from .._core.findings import Finding
from .chains import explain
from .checks import (
    GRAD_HUGE,
    RunData,
    check_eval_mode,
    check_grad_not_zeroed,
    check_gradient_scale,
    check_learning_rate,
    check_loss_calls,
    check_no_grad,
    check_nonfinite,
    run_checks,
)
from .gan_checks import _for_network, check_d_collapse, check_g_vanishing, check_mode_collapse
from .layout_checks import detached_term
from .lifecycle import withdrawal_reason
from .loop_checks import check_frozen, check_schedule
from .rundata import NEVER_STEPS
from .stats import StepMonitor

# lr-too-high in a GAN: its losses do not settle as a classifier's do, so the persistent rule's "loss
# stalled" says nothing; only a median update/weight ratio 100x the 1e-3 reference names it (a healthy
# GAN at Adam(2e-3) on the ring runs at ~1.3e-2, measured on the bug corpus)
GAN_RATIO_HIGH = 0.1
# what the loss calls of a GAN tell (its losses do not fall like a classifier's: no initial-loss)
GAN_LOSS_CODES = (
    "sigmoid-bceloss",
    "sigmoid-before-bce-logits",
    "target-broadcast",
    "softmax-before-ce",  # an auxiliary classifier (AC-GAN) fed probabilities
    "nll-without-log-softmax",
    "softmax-wrong-dim",
)


class GanDiagnosis:
    """Mixin of `GanWatch` (reads its monitors, names, rows and loss calls)."""

    d_monitor: StepMonitor
    g_monitor: StepMonitor
    names: tuple[str, str, str, str]
    d_outputs: str | None
    _loss_calls: dict[str, Any]
    _rows: list[dict[str, Any]]
    _partial: bool
    wiring_findings: list[Finding]  # optimizer-wrong-network, known from the arguments (gan_wiring.py)
    _detached: Any  # DetachProbe

    # -- diagnosis -----------------------------------------------------------------------------------
    def _net_run(self, monitor: StepMonitor, final: bool, loss_calls: list | None = None) -> RunData:
        return RunData.from_monitor(monitor, loss_calls or [], final)

    def _diagnose(self, final: bool = False, urgent: bool = False) -> None:
        """Run the checks; a routine (not final, not urgent) run is skipped while the checks would take
        more than ~5% of the wall time (they read the whole history: long runs make them slower)."""
        if not (final or urgent or self._diagnosis_due()):
            return
        self._run_checks(
            lambda: self._diagnosis(final),
            lambda: self.g_monitor.count,
            lambda f: withdrawal_reason(f, self._net_run(self.g_monitor, final)),
        )

    def _diagnosis(self, final: bool) -> list[Finding]:
        out: list[Finding] = list(self.wiring_findings)
        labels = {
            "d": ("discriminator", self.names[0], self.names[2]),
            "g": ("generator", self.names[1], self.names[3]),
        }
        for net, monitor in (("d", self.d_monitor), ("g", self.g_monitor)):
            role, model_name, opt_name = labels[net]
            run = self._net_run(monitor, final)
            checks = (
                check_grad_not_zeroed,
                check_nonfinite,
                check_learning_rate,
                check_no_grad,
                check_eval_mode,
                check_frozen,
                check_schedule,
            )
            for f in explain(run, run_checks(run, checks)):
                if f.code == "lr-too-high" and not f.evidence.get("ratio", 0) > GAN_RATIO_HIGH:
                    continue  # a GAN's losses do not fall as a classifier's do: the ratio alone must be far off
                out.append(_for_network(f, role, model_name, opt_name))
            self._partial = self._partial or bool(run.extra.get("partial"))
            never = self._never_steps(net, final) if not self.wiring_findings else None
            if never is not None:
                out.append(never)
            for f in run_checks(run, (check_gradient_scale,)):
                # only the absolute rule (> 1e3): G's first gradients are tiny while D is untrained, so
                # "100x the first step" is normal growth in a GAN; vanishing: see gan-g-vanishing
                if f.code == "exploding-gradients" and f.evidence.get("grad_norm", 0) > GRAD_HUGE:
                    out.append(_for_network(f, role, model_name, opt_name))
        for f in check_loss_calls(self._net_run(self.d_monitor, final, list(self._loss_calls.values()))):
            if f.code in GAN_LOSS_CODES:
                out.append(f)
        codes = {(f.code, f.where) for f in out}
        out.extend(self._gan_checks(codes))
        detached = detached_term(self._detached.read(), self._detached.marked)  # monitor/detached.py
        return out + ([detached] if detached is not None else [])

    def _never_steps(self, net: str, final: bool) -> Finding | None:
        """optimizer-never-steps for one network: the other network stepped >= NEVER_STEPS times (or at
        all, at the end) while this one's optimizer never did, though backward passes reached it."""
        mine, other = (self.d_monitor, self.g_monitor) if net == "d" else (self.g_monitor, self.d_monitor)
        if (
            mine.count
            or not mine.train_backwards
            or not (other.count >= NEVER_STEPS or (final and other.count))
        ):
            return None
        i = 0 if net == "d" else 1
        model_name, opt_name = self.names[i], self.names[i + 2]
        other_name = self.names[1 - i]
        return Finding(
            "optimizer-never-steps",
            "error",
            f"{opt_name}.step() was never called in {other.count} {other_name} steps, though backward passes "
            f"reached {model_name}'s parameters: {model_name} keeps its initial weights",
            f"call {opt_name}.step() after {model_name}'s loss.backward() (and {opt_name}.zero_grad() before it)",
            opt_name,
            {"network": "discriminator" if net == "d" else "generator", "other_steps": other.count},
        )

    @property
    def d_probabilities(self) -> bool:
        """Whether D's outputs are probabilities (a final Sigmoid) or logits of one (fed to
        BCEWithLogitsLoss). For a Wasserstein critic, hinge or least-squares D the history still holds
        sigmoid(score), but the collapse and vanishing rules, which read probabilities, are not applied."""
        return self.d_outputs == "probability" or "binary_cross_entropy_with_logits" in self._loss_calls

    def _gan_checks(self, found: set[tuple[str, str | None]]) -> list[Finding]:
        rows = self._rows
        out: list[Finding] = []
        if self.d_probabilities:
            collapse = check_d_collapse(rows, self, found)
            if collapse is not None:
                out.append(collapse)
        # the vanishing rule reads the gradient G's loss puts on D's output, whatever D's loss: a Wasserstein
        # or hinge G loss (-D(G(z))) has a constant one, least squares one that grows; only the saturating
        # log(1 - sigmoid(D(G(z)))) - BCE or softplus written by hand - loses it while D rejects the fakes
        vanish = check_g_vanishing(rows, self)
        if vanish is not None:
            out.append(vanish)
        mode = check_mode_collapse(rows, self)
        if mode is not None:
            out.append(mode)
        return out

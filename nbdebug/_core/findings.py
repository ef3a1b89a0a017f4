"""Findings: a named bug with evidence and a fix, never just a number; their text and HTML rendering.

Every code comes from `CATALOGUE` (catalogue.py), which documents its threshold and source.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .catalogue import CATALOGUE

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem: `code` from `CATALOGUE`, the evidence in `message`, the fix in `hint`."""

    code: str
    severity: Severity
    message: str
    hint: str = ""
    where: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(
                f"unknown finding code {self.code!r}; add it to the catalogue in nbdebug/_core/catalogue.py"
            )
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def __str__(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        hint = f"\n    fix: {self.hint}" if self.hint else ""
        return f"{self.severity.upper()} {self.code}{where}: {self.message}{hint}"

    def _repr_html_(self) -> str:
        return findings_html([self])


_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}


def findings_html(findings: Sequence[Finding], empty: str = "No findings.") -> str:
    """Static HTML list of findings with severity colours (works in nbconvert and on GitHub)."""
    if not findings:
        return f'<div class="nbdebug-findings nbdebug-ok" style="color:#2e7d32">&#10003; {html.escape(empty)}</div>'
    items = []
    for f in findings:
        colour = _COLOURS.get(f.severity, "#333")
        where = f" <code>{html.escape(f.where)}</code>" if f.where else ""
        hint = f'<div style="margin-left:1.5em"><b>fix:</b> {html.escape(f.hint)}</div>' if f.hint else ""
        items.append(
            f'<li class="nbdebug-finding nbdebug-{f.severity}" data-code="{html.escape(f.code)}">'
            f'<span style="color:{colour};font-weight:bold">{f.severity.upper()}</span> '
            f"<code>{html.escape(f.code)}</code>{where}: {html.escape(f.message)}{hint}</li>"
        )
    return '<ul class="nbdebug-findings" style="list-style:none;padding-left:0">' + "".join(items) + "</ul>"


def findings_text(findings: Sequence[Finding], empty: str = "No findings.") -> str:
    return "\n".join(str(f) for f in findings) if findings else empty


@dataclass(frozen=True)
class FindingEvent:
    """One entry of a live monitor's finding history: `finding` was "raised" or "withdrawn" at `step`
    (`reason`: what contradicted it, for a withdrawal)."""

    step: int
    action: Literal["raised", "withdrawn"]
    finding: Finding
    reason: str = ""

    def __str__(self) -> str:
        f = self.finding
        where = f" [{f.where}]" if f.where else ""
        why = f": {self.reason}" if self.reason else ""
        return f"step {self.step}: {self.action} {f.severity} {f.code}{where}{why}"


def withdrawn_text(events: Sequence[FindingEvent]) -> str:
    """The findings a live monitor withdrew, each with the step and what contradicted it."""
    if not events:
        return ""
    lines = [f"Withdrawn ({len(events)}): raised earlier, contradicted by later evidence"]
    for e in events:
        f = e.finding
        where = f" [{f.where}]" if f.where else ""
        lines.append(f"  withdrawn at step {e.step}: {f.code}{where}: {e.reason}\n    was: {f.message}")
    return "\n".join(lines)


def withdrawn_html(events: Sequence[FindingEvent]) -> str:
    """Static HTML of the withdrawn findings (struck through, grey, with the reason)."""
    if not events:
        return ""
    items = []
    for e in events:
        f = e.finding
        where = f" <code>{html.escape(f.where)}</code>" if f.where else ""
        items.append(
            f'<li class="nbdebug-finding nbdebug-withdrawn" data-code="{html.escape(f.code)}" style="color:#757575">'
            f"<s><code>{html.escape(f.code)}</code>{where}</s> withdrawn at step {e.step}: "
            f'{html.escape(e.reason)}<div style="margin-left:1.5em"><i>was:</i> {html.escape(f.message)}</div></li>'
        )
    return (
        '<div class="nbdebug-withdrawn-list"><b>Withdrawn</b> (raised earlier, contradicted by later evidence)'
        '<ul class="nbdebug-findings" style="list-style:none;padding-left:0">'
        + "".join(items)
        + "</ul></div>"
    )


def worst(findings: Iterable[Finding]) -> str | None:
    """The most severe severity present, or None."""
    present = {f.severity for f in findings}
    return next((s for s in SEVERITIES if s in present), None)


def catalogue_frame():
    """The catalogue as a DataFrame (code, title, threshold, source), for docs and the README."""
    import pandas as pd

    return pd.DataFrame([vars(c) for c in CATALOGUE.values()])

"""The contract every result object keeps, so that it renders anywhere without a kernel.

A result is what a feature's core computation returns (a `Trace`, a `MemoryReport`, a `Watch`, ...). It
gives one line (`summary()`), the full text (`to_text()`) and static HTML (`to_html()`, built once and
cached until the result changes), and `_repr_mimebundle_` with both, so the same object shows as a table
in a terminal, in nbconvert and on GitHub, and as the static fallback of its live panel.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable
from typing import Any

from .findings import findings_text


class Result(abc.ABC):
    """Base class of nbdebug's result objects (see the module docstring)."""

    #: what `to_text()` says under the summary when there is no finding
    no_findings: str = "No findings."

    @abc.abstractmethod
    def summary(self) -> str:
        """One line: what was measured and the headline figure."""

    @abc.abstractmethod
    def _html(self) -> str:
        """Build the static HTML (called by `to_html`, which caches it)."""

    def to_text(self) -> str:
        """The full plain-text rendering: the summary, then the findings."""
        findings = getattr(self, "findings", None)
        if findings is None:
            return self.summary()
        return f"{self.summary()}\n{findings_text(findings, self.no_findings)}"

    def _html_key(self) -> Hashable:
        """What the cached HTML depends on: a result that changes (a live run) returns its state."""
        return None

    def to_html(self) -> str:
        """Static HTML (tables, figures as embedded PNG, findings), cached until `_html_key()` changes."""
        key = self._html_key()
        cache = self.__dict__.get("_nbdebug_html")
        if cache is not None and cache[0] == key:
            return cache[1]
        out = self._html()
        self.__dict__["_nbdebug_html"] = (key, out)
        return out

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        findings = getattr(self, "findings", None)
        n = f"; {len(findings)} finding{'s' if len(findings) != 1 else ''}" if findings is not None else ""
        return f"{type(self).__name__}({self.summary()}{n})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

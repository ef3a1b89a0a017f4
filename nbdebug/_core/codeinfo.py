"""The catalogue's entry type (see `catalogue.py`): a code, what it means, its threshold, the public
source of that threshold and its nature. Apart so the entries can live in more than one module."""

from __future__ import annotations

from dataclasses import dataclass

NATURES = ("event", "state")


@dataclass(frozen=True)
class CodeInfo:
    """Catalogue entry: what the code means, its threshold, the source of that threshold, and its nature
    ("event": never withdrawn; "state": withdrawn when later evidence contradicts it)."""

    code: str
    title: str
    threshold: str
    source: str
    nature: str = "event"


def entry(code: str, title: str, threshold: str, source: str, nature: str = "event") -> tuple[str, CodeInfo]:
    if nature not in NATURES:
        raise ValueError(f"{code}: nature must be one of {NATURES}, got {nature!r}")
    return code, CodeInfo(code, title, threshold, source, nature)

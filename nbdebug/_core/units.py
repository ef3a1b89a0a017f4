"""Byte sizes in the units the allocator and nvidia-smi use, both ways."""

from __future__ import annotations

from .errors import NbdebugError


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units, as the allocator and nvidia-smi count)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_bytes(value: int | float | str) -> int:
    """'12GB' / '12 GiB' / '512MiB' / 1e9 -> bytes. GB is read as GiB, as GPU vendors quote memory."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise NbdebugError(f"a memory budget must be positive, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise NbdebugError(f"cannot read a memory size from {type(value).__name__} {value!r}")
    text = value.strip().replace(" ", "").upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if text and text[-1] in scale:
            return parse_bytes(float(text[:-1]) * scale[text[-1]])
        return parse_bytes(float(text))
    except ValueError:
        raise NbdebugError(
            f"cannot read a memory size from {value!r}: write e.g. '12GB' or '512MiB'"
        ) from None

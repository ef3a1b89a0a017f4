"""What the frameworks' `NbdebugCallback`s share: the watch they hold, closing it once, its findings."""

from __future__ import annotations

from typing import Any


class WatchHolder:
    """Mixin of a framework callback whose `watch` (a `Watch`, or None before training starts) is entered
    by the framework's start hook and left here."""

    watch: Any = None

    def close(self, exception: BaseException | None = None) -> None:
        """Detach the watch (at the end of training or on an exception; safe to call again)."""
        if self.watch is not None and self.watch.running:
            exc_type = type(exception) if exception is not None else None
            self.watch.__exit__(exc_type, exception, None)

    @property
    def findings(self) -> list:
        return self.watch.findings if self.watch is not None else []

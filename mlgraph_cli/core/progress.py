"""Progress reporting without a UI dependency.

Library code reports through a :class:`ProgressHook`; the CLI passes one that draws a rich
progress bar, tests and library users get the silent default.
"""

from __future__ import annotations


class ProgressHook:
    """Receives progress from long-running library code. The base class ignores everything."""

    def start(self, description: str, total: int | None = None, unit: str = "items") -> None:
        """Begin a phase of ``total`` units (``None`` when unknown)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current phase are done."""

    def stop(self) -> None:
        """The current phase is over."""

    def log(self, message: str) -> None:
        """A line for the user (a warning, a skipped file); shown above the bar."""


NULL_PROGRESS = ProgressHook()

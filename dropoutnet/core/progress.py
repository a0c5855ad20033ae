"""Progress of a long step (reading samples, training, embedding, building the index).

On an interactive terminal (``dropoutnet run`` from a shell) it is a tqdm bar on stderr; in
the Airflow task log, or any output that is not a terminal, a log line every
``every_seconds`` and one at the end: rows done, of how many, and rows per second.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """``update(done)`` with the running count; ``close()`` (or a ``with`` block) at the end."""

    def __init__(self, label: str, logger: logging.Logger, total: int | None = None,
                 unit: str = "rows", every_seconds: float = 30.0) -> None:
        self.label, self.log, self.total, self.unit = label, logger, total, unit
        self.every = every_seconds
        self.started = self.last = time.monotonic()
        self.done = 0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit=f" {unit}", unit_scale=True,
                            leave=False, file=sys.stderr)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, done: int, **figures: Any) -> None:
        """Record ``done`` rows so far (a running total, not an increment), with optional
        figures (e.g. the loss) to show; logs a line at most every ``every_seconds``."""
        if self.bar is not None:
            self.bar.update(done - self.done)
            if figures:
                self.bar.set_postfix(figures, refresh=False)
        self.done = done
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._say(figures)

    def _say(self, figures: dict[str, Any]) -> None:
        seconds = max(time.monotonic() - self.started, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        share = f" ({100.0 * self.done / self.total:.0f} %)" if self.total else ""
        extra = "".join(f", {k} {v}" for k, v in figures.items())
        self.log.info("%s: %s%s %s%s, %.0f %s/s%s", self.label, f"{self.done:,}", of,
                      self.unit, share, self.done / seconds, self.unit, extra)

    def close(self, **figures: Any) -> None:
        """End the step: close the bar and log the final count and rate, with ``figures``."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._say(figures)

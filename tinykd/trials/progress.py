"""One progress bar for a whole run of trials on the driver: done / running / stopped."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm


class TrialProgress:
    """Counts trials as they start and end; a finished trial's one-line summary is logged above the bar."""

    def __init__(self, total: int, desc: str, log: Callable[[str], None]):
        self.bar = tqdm(total=total, desc=desc, unit="trial", dynamic_ncols=True)
        self.log = log
        self.running: set[str] = set()
        self.stopped = 0
        self.failed = 0
        self.reports: dict[str, list[dict]] = {}  # every result each trial reported, in order
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(f"running {len(self.running)}, stopped {self.stopped}", refresh=True)

    def _say(self, message: str) -> None:
        with tqdm.external_write_mode():
            self.log(message)

    def started(self, name: str) -> None:
        self.running.add(name)
        self._show()

    def ended(self, name: str, metrics: dict) -> None:
        """A trial ended: finished (its work returned) or stopped by the scheduler."""
        self.running.discard(name)
        if metrics.get("finished"):
            if metrics.get("summary"):
                self._say(f"  {metrics['summary']}")
        else:
            self.stopped += 1
            if metrics.get("stopped_note"):
                self._say(f"  {name}: stopped ({metrics['stopped_note']})")
        self.bar.update(1)
        self._show()

    def errored(self, name: str) -> None:
        self.running.discard(name)
        self.failed += 1
        self.bar.update(1)
        self._show()

    def close(self) -> None:
        self.bar.close()

"""Which runs are being cancelled, for the executors of one process.

An executor at the model notices a cancel within about a second. Reading its run twice a second
would cost each run a request every half second: with a hundred runs at the model, two hundred
requests a second, most of a small instance's storage work. Instead a cancel also flags the
run's row in the active-runs index, and one query of the index, twice a second while any run of
this process is at the model, tells all of them. Each executor still reads its own run every
few seconds (the executor's LOOK_SECONDS), in case a flag could not be written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .storage import ActiveRuns, StorageUnavailable

log = logging.getLogger("assistants.runs")


class CancelWatch:
    def __init__(self, active_runs: Callable[[], ActiveRuns], interval: float) -> None:
        self._active_runs = active_runs
        self.interval = interval
        self._lock = threading.Lock()
        self._watching = threading.Condition(self._lock)  # notified when something is watched
        self._watched: Counter[str] = Counter()
        self._looker: threading.Thread | None = None
        self._cancelling: frozenset[str] = frozenset()

    @contextmanager
    def watching(self, run_id: str) -> Iterator[None]:
        """While the block runs, `asked(run_id)` follows the index (looked at by one thread, made
        once, which looks while anything is watched and sleeps while nothing is)."""
        with self._lock:
            self._watched[run_id] += 1
            if self._looker is None:
                self._looker = threading.Thread(target=self._look, name="cancel-watch", daemon=True)
                self._looker.start()
            self._watching.notify()
        try:
            yield
        finally:
            with self._lock:
                self._watched[run_id] -= 1
                if not self._watched[run_id]:
                    del self._watched[run_id]

    def asked(self, run_id: str) -> bool:
        """Whether the run was flagged as being cancelled, at the last look."""
        return run_id in self._cancelling

    def _look(self) -> None:
        while True:
            with self._lock:
                while not self._watched:
                    self._watching.wait()
            time.sleep(self.interval)  # a run just taken has not been cancelled yet, most likely
            with self._lock:
                if not self._watched:
                    continue
            try:
                self._cancelling = self._active_runs().cancelling()
            except StorageUnavailable:  # the executors' own reads of their runs still find a cancel
                log.warning("could not look for cancelled runs; looking again shortly")

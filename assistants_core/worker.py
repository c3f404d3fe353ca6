"""The background side of runs: the queue trigger's executor and the timer's sweeper."""

from __future__ import annotations

import logging
import time

from .executor import Executor
from .files import Files
from .runs import Runs
from .storage import StorageUnavailable, Store
from .storage.queue import read_message
from .tools.code_interpreter import CodeInterpreter
from .vector_stores import VectorStores

log = logging.getLogger("assistants.runs")

# host.json's extensions.queues.maxDequeueCount: the delivery after which the host gives up.
LAST_DELIVERY = 3
# A run queued this long with no executor lost its message (or its delivery failed): send another.
REQUEUE_AFTER_SECONDS = 60


class Worker:
    def __init__(
        self,
        store: Store,
        runs: Runs,
        files: Files | None = None,
        vector_stores: VectorStores | None = None,
        code: CodeInterpreter | None = None,
    ) -> None:
        self._store = store
        self._runs = runs
        self._executor: Executor = runs.executor
        self._files = files or Files(store)  # the service's, so that its deletion hooks run
        self._code = code
        self._vector_stores = vector_stores

    def ingest(self, body: bytes, dequeue_count: int | None) -> None:
        """Ingest the vector-store file an ingestion message names (see vector_stores)."""
        if self._vector_stores is not None:
            self._vector_stores.ingest(body, dequeue_count)

    def execute(self, body: bytes, dequeue_count: int | None) -> None:
        """Drive the run a queue message names. A failure is raised, so that the host delivers
        the message again; on the last delivery the run is failed first."""
        named = read_message(body)
        if named is None:
            log.warning("dropped a runs-queue message that names no run")
            return
        thread_id, run_id = named
        try:
            for _ in self._executor.drive(thread_id, run_id):
                pass
        except Exception:
            log.exception("run %s failed in its executor (delivery %d)", run_id, dequeue_count)
            if (dequeue_count or 1) >= LAST_DELIVERY:
                try:
                    self._executor.fail(thread_id, run_id, "Sorry, something went wrong.")
                except StorageUnavailable:
                    log.warning("could not fail run %s; the sweeper will end it", run_id)
            raise

    def sweep(self) -> None:
        """End the runs that must end now (past their deadline, their executor lost), send again
        the runs queued too long, and forget the runs that have ended; expire the Uploads past
        their hour."""
        if self._code is not None:
            self._code.reap_idle()  # code_interpreter sessions idle past their hour
        try:
            self._files.sweep()
        except StorageUnavailable:
            log.warning("sweeper could not reach storage for uploads; it tries again on its next round")
        if self._vector_stores is not None:
            try:
                self._vector_stores.sweep()
            except StorageUnavailable:
                log.warning("sweeper could not reach storage for vector stores; it tries again next round")
        active = self._store.active_runs()
        for thread_id, run_id in list(active):
            try:
                state = self._executor.settle(thread_id, run_id)
                if state is None or not state.run.is_active:
                    active.remove(run_id)
                elif (
                    state.run.status == "queued"
                    and time.time() - state.execution.queued_at > REQUEUE_AFTER_SECONDS
                ):
                    self._runs.enqueue(state.run)
            except StorageUnavailable:
                log.warning("sweeper could not reach storage; it tries again on its next round")
                return

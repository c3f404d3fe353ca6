"""Runs: each lives in its thread's partition, with its steps, beside the thread's messages.

    row key                 holds
    t, property `run`       the id of the run that locks the thread, or "" (see threads.py for `t`)
    rd.., ra..              the thread's runs: an ordered collection of kind `r` (collection.py)
    s<run>d.., s<run>a..    a run's steps: an ordered collection of kind `s<run's key>`

A run is created in one transaction with the thread row, conditional on the version of the
thread row that was read: it takes the next sequence number, sets the lock, and inserts the
run (and any messages it adds) together. Of concurrent creates on one thread, one commits; the
others find the lock when they read again. A run's end clears the lock in the same transaction
that writes its terminal status, so a thread is never locked by a finished run, and never
unlocked while its run goes on.

The partition `active-runs` holds a row for each run that has not ended yet, keyed by run id.
It is written beside the run's transaction and removed after its end, on a best-effort basis: the
sweeper reads it to end the runs nobody is driving, and drops rows whose run has ended or never
came to be. A cancel flags the run's row (`cancelling`), so that one query tells the executors
of a process which of their runs to stop (cancels.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import suppress

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TransactionOperation, UpdateMode

from .. import ids
from .collection import Collection
from .rows import Operation, Partition, Record, translated_errors, unchanged_since

LOCK = "run"
THREAD = "t"
ACTIVE = "active-runs"


class ThreadRuns:
    """The runs of one thread, their steps, and the thread's lock."""

    def __init__(self, table: TableClient, thread_id: str, messages: Collection) -> None:
        self._table = table
        self.thread_id = thread_id
        self.partition = Partition(table, thread_id)
        self.messages = messages
        self.runs = Collection(
            table, thread_id, owner_exists=lambda: self.partition.has_row(THREAD), kind="r"
        )

    def steps(self, run_id: str) -> Collection:
        return Collection(self._table, self.thread_id, kind="s" + ids.sort_key(run_id))

    def get(self, run_id: str) -> Record | None:
        """The run, in one point read (no check of the thread beside it: polling must be cheap;
        a deleted thread's runs are gone once its rows are)."""
        return self.runs.get(run_id, for_write=True)

    def lock(self, thread: Record, run_id: str, next_number: int) -> Operation:
        """Locks the thread for `run_id` and moves its sequence on, only if the thread row is
        still at `thread`."""
        row = self.partition.row(THREAD, **{LOCK: run_id, "next": next_number})
        return (TransactionOperation.UPDATE, row, {"mode": "merge", **unchanged_since(thread)})

    def unlock(self) -> Operation:
        return (TransactionOperation.UPDATE, self.partition.row(THREAD, **{LOCK: ""}), {"mode": "merge"})

    def submit(self, operations: Sequence[Operation]) -> None:
        self.partition.submit(operations)


def locked_by(thread: Record) -> str | None:
    """The id of the run that locks the thread, if one does."""
    return str(thread.first.get(LOCK) or "") or None


class ActiveRuns:
    """The runs that have not ended yet, for the sweeper."""

    def __init__(self, table: TableClient) -> None:
        self._partition = Partition(table, ACTIVE)

    def add(self, thread_id: str, run_id: str) -> None:
        with translated_errors(self._partition.table):
            self._partition.table.upsert_entity(self._partition.row(run_id, thread=thread_id))

    def mark_cancelling(self, run_id: str) -> None:
        """Flags the run's row, if it has one, as being cancelled."""
        with translated_errors(self._partition.table), suppress(ResourceNotFoundError):
            self._partition.table.update_entity(
                self._partition.row(run_id, cancelling=True), mode=UpdateMode.MERGE
            )

    def cancelling(self) -> frozenset[str]:
        """The ids of the runs flagged as being cancelled."""
        with translated_errors(self._partition.table):
            rows = self._partition.table.query_entities(
                "PartitionKey eq @pk and cancelling eq @flag",
                parameters={"pk": ACTIVE, "flag": True},
                select=["RowKey"],
            )
            return frozenset(str(row["RowKey"]) for row in rows)

    def remove(self, run_id: str) -> None:
        with translated_errors(self._partition.table), suppress(ResourceNotFoundError):
            self._partition.table.delete_entity(ACTIVE, run_id)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(thread id, run id) of every run not known to have ended."""
        with translated_errors(self._partition.table):
            for row in self._partition.query("", "~", 1000, select=["RowKey", "thread"]):
                yield str(row["thread"]), str(row["RowKey"])

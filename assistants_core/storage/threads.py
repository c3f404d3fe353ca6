"""Threads: each thread is one partition, holding the thread and its messages.

    row key        holds
    t[.NN]         the thread's document; `next`, the sequence number of its next message or
                     run; `run`, the run that locks it (see runs.py)
    d.., a.., g..  its messages: an ordered collection (see collection.py), whose sentinel rows
                     d! and a! exist exactly while the thread does
    r.., s..       its runs and their steps (see runs.py)
    x              while a deletion is under way: the thread is gone, its rows are going

A message id is made from `next` (`ids.sequential_id`), and a message is added in the same
transaction that increments `next`, conditional on the thread row being unchanged. So messages
list in the order the service accepted them, whatever the clocks of the instances say.

Creating a thread with messages writes the messages first and the thread row last, in as few
transactions as the limits allow. Until the last one commits nothing of the thread can be
seen, since its id has not been handed out. If one fails, the rows already written are removed
at once if storage lets us; if it does not, they stay: unreachable, so only wasted space.

Deleting swaps the thread row and the sentinels for the marker in one transaction: from then on
the thread and all its messages are gone for readers (message reads find no sentinel or no
thread row, message writes carry the thread row as a guard). Then the partition's rows are
removed, in parallel batches, and the marker last. A deletion cut short is finished by the next
DELETE of the same thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from azure.data.tables import TableClient, TransactionOperation

from .collection import Collection
from .rows import (
    TRANSACTION_OPERATIONS,
    ConcurrentUpdate,
    Operation,
    Partition,
    Record,
    packed,
    part_key,
    translated_errors,
    unchanged_since,
)
from .runs import LOCK, ThreadRuns

log = logging.getLogger(__name__)

THREAD = "t"
DELETING = "x"
_PURGE_WORKERS = 8
_PURGE_PAGE = 1000


class Threads:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, thread_id: str) -> Record | None:
        return Partition(self._table, thread_id).read_document(THREAD, thread_id)

    def create(
        self,
        thread_id: str,
        document: bytes,
        messages: Sequence[tuple[str, bytes]],
        run: tuple[str, bytes] | None = None,
    ) -> None:
        """Store a thread and its first messages (ids from `sequential_id(0...)`), all or nothing;
        with `run` (its id from `sequential_id(len(messages))` and its document), a run that
        locks the thread from the start."""
        partition = Partition(self._table, thread_id)
        collection = self.messages(thread_id)
        groups = [collection.insert_operations(message_id, body) for message_id, body in messages]
        lock = {LOCK: run[0]} if run else {}
        thread_rows = partition.document_rows(
            THREAD, thread_id, document, next=len(messages) + (1 if run else 0), **lock
        )
        groups.append(
            [
                *[(TransactionOperation.CREATE, row) for row in thread_rows],
                *collection.sentinel_operations(),
                *(self.runs(thread_id).runs.insert_operations(*run) if run else []),
            ]
        )
        written: list[list[Operation]] = []
        try:
            for transaction in packed(groups):  # the thread row is in the last one
                partition.submit(transaction)
                written.append(transaction)
        except BaseException:
            self._undo(partition, written)
            raise

    def replace(self, thread_id: str, current: Record, document: bytes) -> None:
        """Write a new version, only if the thread is still at `current` (else ConcurrentUpdate)."""
        Partition(self._table, thread_id).replace_document(THREAD, thread_id, current, document)

    def add_message(
        self, thread: Record, message_id: str, document: bytes, run_id: str | None = None
    ) -> None:
        """Add the message numbered `next_message(thread)`, only if the thread is still at
        `thread` (else ConcurrentUpdate: read the thread again and renumber). A run's message
        is also indexed under the run, for the `run_id` filter."""
        thread_id = thread.first["id"]
        collection = self.messages(thread_id)
        bump = collection.row(THREAD, next=next_message(thread) + 1)
        collection.submit(
            [
                (TransactionOperation.UPDATE, bump, {"mode": "merge", **unchanged_since(thread)}),
                *collection.insert_operations(message_id, document, group=run_id),
            ]
        )

    def runs(self, thread_id: str) -> ThreadRuns:
        return ThreadRuns(self._table, thread_id, self.messages(thread_id))

    def messages(self, thread_id: str) -> Collection:
        """The thread's messages: every read of them raises OwnerGone, and every write fails,
        once the thread is gone."""
        guard = (
            TransactionOperation.UPDATE,
            {"PartitionKey": thread_id, "RowKey": THREAD},
            {"mode": "merge"},
        )
        return Collection(
            self._table, thread_id, guard=guard, owner_exists=lambda: self._exists(thread_id), sentinels=True
        )

    def _exists(self, thread_id: str) -> bool:
        return Partition(self._table, thread_id).has_row(THREAD)

    def delete(self, thread_id: str) -> bool:
        """Delete a thread and everything in it; False if there was no such thread. Raises
        ConcurrentUpdate if the thread changed while this ran (try again)."""
        partition = Partition(self._table, thread_id)
        thread = partition.read_document(THREAD, thread_id)
        if thread is not None:
            partition.submit(
                [
                    (TransactionOperation.DELETE, partition.row(THREAD), unchanged_since(thread)),
                    *[
                        (TransactionOperation.DELETE, partition.row(part_key(THREAD, n)))
                        for n in range(1, thread.rows)
                    ],
                    *[
                        (TransactionOperation.DELETE, partition.row(k))
                        for k in self.messages(thread_id).sentinel_keys()
                    ],
                    (TransactionOperation.UPSERT, partition.row(DELETING, id=thread_id)),
                ]
            )
        elif not partition.has_row(DELETING):
            return False
        _purge(partition)
        return True

    def _undo(self, partition: Partition, written: list[list[Operation]]) -> None:
        for transaction in written:
            try:
                partition.submit(
                    [(TransactionOperation.DELETE, partition.row(op[1]["RowKey"])) for op in transaction]
                )
            except Exception:  # unreachable rows of an id never handed out: invisible, only space
                log.warning("could not remove a partly created thread %s", partition.partition, exc_info=True)


def next_message(thread: Record) -> int:
    """The sequence number the thread's next message takes."""
    return int(thread.first["next"])


def _purge(partition: Partition) -> None:
    """Remove every row of the partition but the marker, then the marker."""
    with translated_errors(partition.table):  # the row listing below fetches its pages lazily, as it is read
        _purge_rows(partition)
        partition.table.delete_entity(partition.partition, DELETING)


def _purge_rows(partition: Partition) -> None:
    while True:
        with ThreadPoolExecutor(_PURGE_WORKERS) as pool:
            batches: list[Future[None]] = []
            keys: list[str] = []
            for row in partition.query("", DELETING, _PURGE_PAGE, select=["RowKey"]):
                keys.append(row["RowKey"])
                if len(keys) == TRANSACTION_OPERATIONS:
                    batches.append(pool.submit(_delete_rows, partition, keys))
                    keys = []
            if keys:
                batches.append(pool.submit(_delete_rows, partition, keys))
            raced = False
            for batch in batches:
                try:
                    batch.result()
                except ConcurrentUpdate:  # a row went first (a concurrent delete): go round again
                    raced = True
        if not raced:
            return


def _delete_rows(partition: Partition, keys: list[str]) -> None:
    partition.submit([(TransactionOperation.DELETE, partition.row(key)) for key in keys])

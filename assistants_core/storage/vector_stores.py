"""Vector stores' rows, in the `vectorstores` table.

Each store has a partition of its own, so that a file's status and the counts of its store and
batch change in one transaction (a conditional write of all three):

    row key        holds
    s              the store's document (with its file counts and usage_bytes)
    f...           its files, a collection (see `collection`) keyed by file id, grouped by batch
    b...           its file batches, a collection keyed by batch id

The `stores` partition lists the stores (a collection of `{"id"}` documents, so that a list
pages in id order and reads each store from its own partition). `ingesting` has a row per file
being ingested (`<store id>:<file id>`) for the sweeper, and `expiring` a row per store with an
expiry, keyed by its time, as the Files' expiries are. A file's parsed text (its `content`) is a
blob in the files' container (`text_blob`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.data.tables import TableClient, TransactionOperation

from .. import ids
from .collection import INDEX, Collection
from .files import Expiries
from .rows import (
    PART_SEPARATOR,
    TRANSACTION_OPERATIONS,
    ConcurrentUpdate,
    Operation,
    Partition,
    Record,
    translated_errors,
    unchanged_since,
)

STORE_KEY = "s"
FILES = "f"
BATCHES = "b"
LISTING = "stores"
INGESTING = "ingesting"
EXPIRING = "expiring"
MAINTENANCE = "maintenance"
_PURGE_ATTEMPTS = 5
HOLDERS = "holders-"  # + a file id: a row per store that holds the file


def text_blob(store_id: str, file_id: str) -> str:
    """The blob, in the files' container, of a vector-store file's parsed text."""
    return f"vector_stores/{store_id}/{file_id}.txt"


class VectorStoreRows:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self.listing = Collection(table, partition=LISTING)
        self.expiries = Expiries(table, EXPIRING)
        self._ingesting = Partition(table, INGESTING)

    def partition(self, store_id: str) -> Partition:
        return Partition(self._table, store_id)

    def files(self, store_id: str) -> Collection:
        return Collection(self._table, partition=store_id, kind=FILES)

    def batches(self, store_id: str) -> Collection:
        return Collection(self._table, partition=store_id, kind=BATCHES)

    # --- the store's document ----------------------------------------------------------------

    def get(self, store_id: str) -> Record | None:
        return self.partition(store_id).read_document(STORE_KEY, store_id)

    def create(self, store_id: str, document: bytes) -> None:
        """The store, listed first: a listed store whose document is missing is skipped."""
        self.listing.insert(store_id, b'{"id": "%s"}' % store_id.encode())
        rows = self.partition(store_id).document_rows(STORE_KEY, store_id, document)
        self.partition(store_id).submit([(TransactionOperation.CREATE, row) for row in rows])

    def store_replacement(self, store_id: str, current: Record, document: bytes) -> list[Operation]:
        return self.partition(store_id).document_replacement(STORE_KEY, store_id, current, document)

    def submit(self, store_id: str, operations: list[Operation]) -> None:
        """One transaction in the store's partition (ConcurrentUpdate if a condition failed)."""
        self.partition(store_id).submit(operations)

    def purge(self, store_id: str, keep_store: bool = False) -> None:
        """Every row of the store's partition gone, its document first (so that the store 404s at
        once and every write conditional on it fails), then its listing row; with `keep_store`,
        all but its document. Rows removed meanwhile by another writer are read again."""
        partition = self.partition(store_id)

        def is_store(key: str) -> bool:
            return key == STORE_KEY or key.startswith(STORE_KEY + PART_SEPARATOR)

        for _ in range(_PURGE_ATTEMPTS):
            with translated_errors(self._table):
                keys = [str(row["RowKey"]) for row in partition.query("", "~", 1000, select=["RowKey"])]
            keys = (
                [k for k in keys if not is_store(k)]
                if keep_store
                else sorted(keys, key=lambda k: not is_store(k))
            )
            try:
                for start in range(0, len(keys), TRANSACTION_OPERATIONS):
                    chunk = keys[start : start + TRANSACTION_OPERATIONS]
                    partition.submit([(TransactionOperation.DELETE, partition.row(k)) for k in chunk])
                break
            except ConcurrentUpdate:
                continue
        if not keep_store:
            record = self.listing.get(store_id)
            if record is not None:
                self.listing.delete(store_id, record)

    # --- files being ingested, for the sweeper ------------------------------------------------

    def ingesting(self, store_id: str, file_ids: list[str]) -> None:
        since = ids.unix_seconds()
        rows = [self._ingesting.row(f"{store_id}:{file_id}", since=since) for file_id in file_ids]
        for start in range(0, len(rows), TRANSACTION_OPERATIONS):
            chunk = rows[start : start + TRANSACTION_OPERATIONS]
            self._ingesting.submit([(TransactionOperation.UPSERT, row) for row in chunk])

    def ingested(self, store_id: str, file_id: str) -> None:
        with translated_errors(self._table):
            self._table.delete_entity(INGESTING, f"{store_id}:{file_id}")

    def all_ingesting(self) -> Iterator[tuple[str, str, int]]:
        """(store id, file id, since when) of every file marked as being ingested."""
        with translated_errors(self._table):
            for row in self._ingesting.query("", "~", 1000, select=["RowKey", "since"]):
                store_id, _, file_id = str(row["RowKey"]).partition(":")
                yield store_id, file_id, int(row.get("since") or 0)

    # --- which stores hold a file (for a File's deletion) -------------------------------------

    def hold(self, file_id: str, store_id: str) -> None:
        holders = Partition(self._table, HOLDERS + file_id)
        holders.submit([(TransactionOperation.UPSERT, holders.row(store_id))])

    def release(self, file_id: str, store_id: str) -> None:
        with translated_errors(self._table):
            self._table.delete_entity(HOLDERS + file_id, store_id)

    def holders(self, file_id: str) -> list[str]:
        holders = Partition(self._table, HOLDERS + file_id)
        with translated_errors(self._table):
            return [str(row["RowKey"]) for row in holders.query("", "~", 1000, select=["RowKey"])]

    def file_ids(self, store_id: str) -> list[str]:
        """Every file id of the store (its files' index rows)."""
        prefix = FILES + INDEX
        partition = self.partition(store_id)
        with translated_errors(self._table):
            rows = partition.query(prefix, prefix + "~", 1000, select=["RowKey"])
            return [ids.FILE + "-" + str(row["RowKey"])[len(prefix) :] for row in rows]

    # --- index maintenance, debounced: a row per store that has new chunks -----------------------

    def maintenance_due(self, store_id: str) -> None:
        due = Partition(self._table, MAINTENANCE)
        due.submit([(TransactionOperation.UPSERT, due.row(store_id, at=ids.unix_seconds()))])

    def maintenance(self) -> Iterator[tuple[str, Record]]:
        """Stores due for maintenance, with the row's version (a newer request outlives it)."""
        due = Partition(self._table, MAINTENANCE)
        with translated_errors(self._table):
            for row in due.query("", "~", 1000):
                etag = str(getattr(row, "metadata", {}).get("etag", ""))
                yield str(row["RowKey"]), Record(b"", etag, 1, {})

    def maintained(self, store_id: str, record: Record) -> None:
        due = Partition(self._table, MAINTENANCE)
        # A failed condition means more chunks came meanwhile: the next round maintains again.
        with contextlib.suppress(ConcurrentUpdate):
            due.submit([(TransactionOperation.DELETE, due.row(store_id), unchanged_since(record))])

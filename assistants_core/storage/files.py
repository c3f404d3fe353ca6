"""Files' and Uploads' rows.

Files are one collection (see `collection`) in the `files` partition, grouped by purpose so
that a list by purpose reads its own index. Each Upload has a partition of its own in the
`uploads` table:

    row key        holds
    u              the Upload's document; its first row also names the file it becomes (`file`)
    p<part key>    one part: its size and how many blocks it staged (`bytes`, `blocks`)

and while it is pending, a row in the `pending` partition keyed by its expiry time
(`<expires_at>:<upload id>`), so the sweeper finds expired Uploads with one range query; once
past it, a row in `finished` keyed by when its rows are to be removed. Files
given an `expires_after` have the same kind of row in the `expiring` partition of `files`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from azure.data.tables import TableClient, TransactionOperation

from .. import ids
from .rows import TRANSACTION_OPERATIONS, Partition, Record, translated_errors

PENDING = "pending"
FINISHED = "finished"
EXPIRING = "expiring"
UPLOAD_KEY = "u"
PART = "p"


def _expiry_key(expires_at: int, upload_id: str) -> str:
    return f"{expires_at:012d}:{upload_id}"


class Expiries:
    """Ids by the time they expire, in one partition: one range query finds those due."""

    def __init__(self, table: TableClient, partition: str) -> None:
        self._table = table
        self._partition = Partition(table, partition)

    def add(self, expires_at: int, object_id: str) -> None:
        row = self._partition.row(_expiry_key(expires_at, object_id))
        self._partition.submit([(TransactionOperation.UPSERT, row)])

    def remove(self, expires_at: int, object_id: str) -> None:
        with translated_errors(self._table):
            # The SDK's delete_entity ignores a row already gone.
            self._table.delete_entity(self._partition.partition, _expiry_key(expires_at, object_id))

    def due(self, now: int) -> Iterator[tuple[str, int]]:
        """(id, expires_at) of those whose time has come."""
        with translated_errors(self._table):
            for row in self._partition.query("", f"{now:012d}~", 100, select=["RowKey"]):
                expires_at, _, object_id = str(row["RowKey"]).partition(":")
                yield object_id, int(expires_at)


@dataclass(frozen=True)
class UploadRecord:
    record: Record
    file_id: str


class Uploads:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self.pending = Expiries(table, PENDING)
        self.finished = Expiries(table, FINISHED)

    def _partition(self, upload_id: str) -> Partition:
        return Partition(self._table, upload_id)

    def insert(self, upload_id: str, file_id: str, expires_at: int, document: bytes) -> None:
        """The Upload, and its row among the pending ones (two partitions: two writes, the
        expiry row first, so that an Upload is never pending unseen by the sweeper)."""
        self.pending.add(expires_at, upload_id)
        partition = self._partition(upload_id)
        rows = partition.document_rows(UPLOAD_KEY, upload_id, document, file=file_id)
        partition.submit([(TransactionOperation.CREATE, row) for row in rows])

    def get(self, upload_id: str) -> UploadRecord | None:
        record = self._partition(upload_id).read_document(UPLOAD_KEY, upload_id)
        return UploadRecord(record, str(record.first["file"])) if record else None

    def replace(self, upload_id: str, current: Record, document: bytes) -> None:
        """A new version, only if it is still at `current` (else ConcurrentUpdate)."""
        self._partition(upload_id).replace_document(UPLOAD_KEY, upload_id, current, document)

    def add_part(self, upload_id: str, part_id: str, size: int, blocks: int) -> None:
        partition = self._partition(upload_id)
        row = partition.row(PART + ids.sort_key(part_id), id=part_id, bytes=size, blocks=blocks)
        partition.submit([(TransactionOperation.CREATE, row)])

    def parts(self, upload_id: str) -> dict[str, tuple[int, int]]:
        """Every part added: part id -> (bytes, blocks)."""
        partition = self._partition(upload_id)
        with translated_errors(self._table):
            rows = partition.query(PART, PART + "~", 1000, select=["id", "bytes", "blocks"])
            return {str(row["id"]): (int(row["bytes"]), int(row["blocks"])) for row in rows}

    def purge(self, upload_id: str) -> None:
        """Every row of the Upload gone."""
        partition = self._partition(upload_id)
        with translated_errors(self._table):
            keys = [str(row["RowKey"]) for row in partition.query("", "~", 1000, select=["RowKey"])]
        for start in range(0, len(keys), TRANSACTION_OPERATIONS):
            deletes = [
                (TransactionOperation.DELETE, partition.row(k))
                for k in keys[start : start + TRANSACTION_OPERATIONS]
            ]
            partition.submit(deletes)

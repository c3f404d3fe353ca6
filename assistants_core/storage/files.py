"""Files' and Uploads' rows.

Files are one collection (see `collection`) in the `files` partition, grouped by purpose so
that a list by purpose reads its own index. Each Upload has a partition of its own in the
`uploads` table:

    row key        holds
    u              the Upload's document; its first row also names the file it becomes (`file`)
    p<part key>    one part: its size and how many blocks it staged (`bytes`, `blocks`)

and while it is pending, a row in the `pending` partition keyed by its expiry time
(`<expires_at>:<upload id>`), so the sweeper finds expired Uploads with one range query.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from azure.data.tables import TableClient, TransactionOperation

from .. import ids
from .rows import Partition, Record, translated_errors

PENDING = "pending"
UPLOAD_KEY = "u"
PART = "p"


def _expiry_key(expires_at: int, upload_id: str) -> str:
    return f"{expires_at:012d}:{upload_id}"


@dataclass(frozen=True)
class UploadRecord:
    record: Record
    file_id: str


class Uploads:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def _partition(self, upload_id: str) -> Partition:
        return Partition(self._table, upload_id)

    def insert(self, upload_id: str, file_id: str, expires_at: int, document: bytes) -> None:
        """The Upload, and its row among the pending ones (two partitions: two writes, the
        expiry row first, so that an Upload is never pending unseen by the sweeper)."""
        pending = Partition(self._table, PENDING)
        pending.submit([(TransactionOperation.UPSERT, pending.row(_expiry_key(expires_at, upload_id)))])
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

    def settled(self, upload_id: str, expires_at: int) -> None:
        """No longer pending: off the sweeper's list."""
        pending = Partition(self._table, PENDING)
        row = pending.row(_expiry_key(expires_at, upload_id))
        with translated_errors(self._table):
            # The SDK's delete_entity ignores a row already gone.
            self._table.delete_entity(row["PartitionKey"], row["RowKey"])

    def expired(self, now: int) -> Iterator[tuple[str, int]]:
        """(upload id, expires_at) of the pending Uploads whose time has passed."""
        pending = Partition(self._table, PENDING)
        with translated_errors(self._table):
            for row in pending.query("", f"{now:012d}~", 100, select=["RowKey"]):
                expires_at, _, upload_id = str(row["RowKey"]).partition(":")
                yield upload_id, int(expires_at)

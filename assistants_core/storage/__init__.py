"""Azure Table Storage: the only package that knows tables, partitions, row keys, filters and
chunks. The rest of the app stores and reads JSON documents by object id."""

from .collection import Batch, Collection, Order
from .rows import (
    MAX_DOCUMENT_BYTES,
    ConcurrentUpdate,
    DocumentTooLarge,
    OwnerGone,
    Record,
    StorageUnavailable,
)
from .runs import ActiveRuns, ThreadRuns, locked_by
from .store import Store
from .threads import Threads, next_message

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "ActiveRuns",
    "Batch",
    "Collection",
    "ConcurrentUpdate",
    "DocumentTooLarge",
    "Order",
    "OwnerGone",
    "Record",
    "StorageUnavailable",
    "Store",
    "ThreadRuns",
    "Threads",
    "locked_by",
    "next_message",
]

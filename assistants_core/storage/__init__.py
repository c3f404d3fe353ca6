"""Azure Table Storage: the only package that knows tables, partitions, row keys, filters and
chunks. The rest of the app stores and reads JSON documents by object id."""

from .collection import Collection, Order
from .rows import (
    MAX_DOCUMENT_BYTES,
    ConcurrentUpdate,
    DocumentTooLarge,
    OwnerGone,
    Record,
    StorageUnavailable,
)
from .store import Store
from .threads import Threads, next_message

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Collection",
    "ConcurrentUpdate",
    "DocumentTooLarge",
    "Order",
    "OwnerGone",
    "Record",
    "StorageUnavailable",
    "Store",
    "Threads",
    "next_message",
]

"""The vector index behind one small interface, so that another engine (Azure AI Search) can stand
in for the embedded one without the service noticing. `lance.py` is the embedded engine and the
only module that imports lancedb; importing this package costs nothing.

A store's index holds chunks: each a file's window of text with its vector, the file's name and
attributes. A file's chunks are written in one commit that replaces whatever that file had
(a redelivered ingestion never duplicates), so a file is in search whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Attributes = Mapping[str, str | int | float | bool]
SearchMode = Literal["hybrid", "vector", "keyword"]


@dataclass(frozen=True)
class VectorSpace:
    """What a store's vectors were made with: a store never mixes two."""

    model: str
    dimensions: int


@dataclass(frozen=True)
class IndexedChunk:
    index: int
    text: str
    vector: Sequence[float]


@dataclass(frozen=True)
class SearchHit:
    file_id: str
    filename: str
    chunk_index: int
    text: str
    score: float  # 0..1, higher is better
    attributes: dict[str, Any] = field(default_factory=dict)


class IndexFailure(Exception):
    """The index could not do what was asked (storage failed, a commit kept conflicting)."""


class VectorSpaceMismatch(IndexFailure):
    """Vectors of another model or dimension count than the store was built with."""


class VectorIndex(Protocol):
    def create(self, store_id: str, space: VectorSpace) -> None:
        """The store's empty index, made once by the store's creator before any file is added
        (idempotent when retried, not safe to race)."""

    def add_file(
        self,
        store_id: str,
        space: VectorSpace,
        file_id: str,
        filename: str,
        attributes: Attributes,
        chunks: Sequence[IndexedChunk],
        *,
        replace: bool = True,
    ) -> None:
        """The file's chunks, replacing any it had, in one commit; `IndexFailure` if the store
        has no index, `VectorSpaceMismatch` if the vectors are not of its space. `replace=False`
        appends without looking for earlier chunks: only for a file known to have none (its
        first ingestion, which no other worker runs at the same time)."""

    def set_attributes(self, store_id: str, file_id: str, attributes: Attributes) -> None:
        """New attributes for the file's chunks (what search filters see)."""

    def remove_file(self, store_id: str, file_id: str) -> None:
        """The file's chunks gone (nothing if it had none)."""

    def search(
        self,
        store_id: str,
        query: str,
        vector: Sequence[float],
        *,
        max_results: int = 10,
        filters: Mapping[str, Any] | None = None,
        score_threshold: float = 0.0,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        """The best chunks for the query, best first, scores 0..1; `filters` are OpenAI's
        comparison and compound filters on file attributes (validated by the caller)."""

    def drop(self, store_id: str) -> None:
        """The store's index gone (nothing if it had none)."""

    def maintain(self, store_id: str) -> None:
        """Compact, bring indexes up to date, clean old versions: one at a time per store."""

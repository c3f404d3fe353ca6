"""Wire models of vector stores (so far: the chunking strategy a file is attached with)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Tag, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .base import TAG, RequestModel, SparseModel, by_type_among

MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
AUTO_CHUNK_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400


class AutoChunkingStrategy(SparseModel):
    type: Literal["auto"]


class StaticChunking(SparseModel):
    max_chunk_size_tokens: Annotated[int, Field(ge=MIN_CHUNK_TOKENS, le=MAX_CHUNK_TOKENS)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @field_validator("chunk_overlap_tokens")
    @classmethod
    def _at_most_half(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("max_chunk_size_tokens")
        if isinstance(size, int) and value > size // 2:
            raise PydanticCustomError(
                "invalid_value",
                "Invalid 'chunk_overlap_tokens': must not exceed half of 'max_chunk_size_tokens' "
                "({half}), got {value}.",
                {"half": size // 2, "value": value},
            )
        return value


class StaticChunkingStrategy(SparseModel):
    """What every vector-store file reports, `auto` resolved to 800/400."""

    type: Literal["static"]
    static: StaticChunking

    @classmethod
    def auto(cls) -> StaticChunkingStrategy:
        return cls(
            type="static",
            static=StaticChunking(
                max_chunk_size_tokens=AUTO_CHUNK_TOKENS, chunk_overlap_tokens=AUTO_OVERLAP_TOKENS
            ),
        )


ChunkingStrategyParam = Annotated[
    Annotated[AutoChunkingStrategy, Tag(TAG + "auto")]
    | Annotated[StaticChunkingStrategy, Tag(TAG + "static")],
    by_type_among("chunking strategy", "auto", "static"),
]


class _Chunking(RequestModel):
    chunking_strategy: ChunkingStrategyParam | None = None


def chunking_strategy(value: Any) -> StaticChunkingStrategy:
    """A request's `chunking_strategy` (absent or null: `auto`) as the static strategy it
    resolves to; a 400 naming the field (`chunking_strategy.static.chunk_overlap_tokens`) if it
    breaks the reference's bounds."""
    given = _Chunking.parse({"chunking_strategy": value}).chunking_strategy
    if isinstance(given, StaticChunkingStrategy):
        return given
    return StaticChunkingStrategy.auto()

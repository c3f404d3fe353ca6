"""Wire models of vector stores: the store, its files and file batches, their requests, search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, Tag, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .base import (
    TAG,
    ApiObject,
    Metadata,
    RequestModel,
    SparseModel,
    WireModel,
    by_type_among,
    check_pairs,
)
from .tools import FoundryOnly

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


# --- the objects --------------------------------------------------------------------------------

MAX_FILE_IDS = 500  # file_ids of one create or batch, as OpenAI
MAX_SEARCH_RESULTS = 50
DAY_SECONDS = 86_400

StoreStatus = Literal["expired", "in_progress", "completed"]
FileStatus = Literal["in_progress", "completed", "cancelled", "failed"]
BatchStatus = Literal["in_progress", "completed", "cancelled", "failed"]
AttributeValue = str | bool | float | int


def check_attributes(value: dict[str, AttributeValue] | None) -> dict[str, AttributeValue] | None:
    if value is not None:
        check_pairs(value, "attributes")
    return value


Attributes = Annotated[dict[str, AttributeValue] | None, AfterValidator(check_attributes)]


class FileCounts(WireModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0

    def moved(self, before: FileStatus | None, after: FileStatus | None) -> FileCounts:
        """The counts once a file goes from `before` to `after` (None: not there)."""
        counts = self.model_dump()
        if before is not None:
            counts[before] -= 1
            counts["total"] -= 1
        if after is not None:
            counts[after] += 1
            counts["total"] += 1
        return FileCounts(**counts)


class StoreExpiresAfter(WireModel):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


class LastError(WireModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStore(ApiObject):
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str | None = None
    usage_bytes: int = 0
    file_counts: FileCounts = Field(default_factory=FileCounts)
    status: StoreStatus = "completed"
    expires_after: StoreExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    def as_of(self, now: int) -> VectorStore:
        """The store with its status as it stands at `now`."""
        if self.expires_at is not None and now >= self.expires_at:
            status: StoreStatus = "expired"
        else:
            status = "in_progress" if self.file_counts.in_progress else "completed"
        return self.model_copy(update={"status": status})


class VectorStoreFile(ApiObject):
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int = 0
    created_at: int
    vector_store_id: str
    status: FileStatus = "in_progress"
    last_error: LastError | None = None
    chunking_strategy: StaticChunkingStrategy
    attributes: dict[str, AttributeValue] | None = None


class VectorStoreFileBatch(ApiObject):
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: BatchStatus = "in_progress"
    file_counts: FileCounts = Field(default_factory=FileCounts)

    def settled(self, cancelled: bool) -> VectorStoreFileBatch:
        """The status its counts make: in progress exactly while a file is."""
        counts = self.file_counts
        if counts.in_progress:
            status: BatchStatus = "in_progress"
        elif cancelled:
            status = "cancelled"
        elif counts.failed and not counts.completed:
            status = "failed"
        else:
            status = "completed"
        return self.model_copy(update={"status": status})


class VectorStoreDeleted(WireModel):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: bool = True


class VectorStoreFileDeleted(WireModel):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: bool = True


class TextContent(WireModel):
    type: Literal["text"] = "text"
    text: str


class FileContentPage(WireModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[TextContent]
    has_more: bool = False
    next_page: str | None = None


class SearchResult(WireModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, AttributeValue] | None = None
    content: list[TextContent]


class SearchResultsPage(WireModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


# --- the requests -------------------------------------------------------------------------------


class CreateVectorStoreRequest(RequestModel):
    configuration: FoundryOnly = None  # Foundry's stores built from Azure data assets
    name: str | None = None
    file_ids: Annotated[list[str], Field(max_length=MAX_FILE_IDS)] | None = None
    expires_after: StoreExpiresAfter | None = None
    chunking_strategy: ChunkingStrategyParam | None = None
    metadata: Metadata | None = None


class ModifyVectorStoreRequest(RequestModel):
    name: str | None = None
    expires_after: StoreExpiresAfter | None = None
    metadata: Metadata | None = None


class AttachFileRequest(RequestModel):
    data_source: FoundryOnly = None  # ahead of file_id: Foundry sends this instead of one
    file_id: str
    chunking_strategy: ChunkingStrategyParam | None = None
    attributes: Attributes = None


class UpdateFileRequest(RequestModel):
    attributes: Attributes


class BatchFile(RequestModel):
    file_id: str
    chunking_strategy: ChunkingStrategyParam | None = None
    attributes: Attributes = None


class CreateBatchRequest(RequestModel):
    data_sources: FoundryOnly = None
    file_ids: Annotated[list[str], Field(max_length=MAX_FILE_IDS)] | None = None
    files: Annotated[list[BatchFile], Field(max_length=MAX_FILE_IDS)] | None = None
    chunking_strategy: ChunkingStrategyParam | None = None
    attributes: Attributes = None


class RankingOptions(RequestModel):
    ranker: Literal["auto", "default-2024-11-15", "none"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] | None = None


class SearchRequest(RequestModel):
    query: str | Annotated[list[str], Field(min_length=1, max_length=10)]
    max_num_results: Annotated[int, Field(ge=1, le=MAX_SEARCH_RESULTS)] = 10
    filters: dict[str, Any] | None = None
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)

"""Tools, tool resources and response formats: shared by assistants now and by threads and runs later."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .base import TAG, SparseModel, WireModel, by_type, by_type_among

MAX_TOOLS = 128
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
SERVED_TOOLS = ("code_interpreter", "file_search", "function")
# Azure AI Foundry Agent Service (classic) tools, as azure-ai-agents 1.1.0 and 1.2.0b6 define
# them: refused with a 400 that names them, rather than stored and silently never used.
FOUNDRY_TOOLS = frozenset(
    {
        "azure_ai_search",
        "azure_function",
        "bing_custom_search",
        "bing_grounding",
        "browser_automation",
        "computer_use_preview",
        "connected_agent",
        "deep_research",
        "fabric_dataagent",
        "mcp",
        "openapi",
        "sharepoint_grounding",
    }
)


class NotServedTool(WireModel):
    """A Foundry tool, in `tools` or `tool_choice`: whatever else it carries, its type is refused."""

    model_config = ConfigDict(extra="ignore")

    type: str

    @field_validator("type")
    @classmethod
    def _not_served(cls, kind: str) -> str:
        raise PydanticCustomError(
            "unsupported_value",
            "The '{kind}' tool is an Azure AI Foundry Agent Service tool that this service does "
            "not serve. Supported tool types are: {supported}.",
            {"kind": kind, "supported": ", ".join(f"'{t}'" for t in SERVED_TOOLS)},
        )


def not_served_tag(value: Any) -> str | None:
    """TAG + "not_served" for a Foundry tool; else None (the union's own tag decides)."""
    tag = by_type(value)
    return TAG + "not_served" if tag is not None and tag[len(TAG) :] in FOUNDRY_TOOLS else None


def _refuse_foundry_field(value: Any, info: ValidationInfo) -> None:
    if value is not None:
        raise PydanticCustomError(
            "unsupported_parameter",
            "'{field}' is for Azure AI Foundry Agent Service tools and data sources, which this "
            "service does not serve.",
            {"field": info.field_name},
        )
    return None


# A field only Foundry's agents API has: absent or null is fine, anything else a 400 naming it.
# Excluded from output, so the objects this service returns are unchanged.
FoundryOnly = Annotated[Any, AfterValidator(_refuse_foundry_field), Field(exclude=True)]


class CodeInterpreterTool(SparseModel):
    type: Literal["code_interpreter"]


class FileSearchRankingOptions(SparseModel):
    ranker: Literal["auto", "default_2024_08_21"] | None = None
    score_threshold: float = Field(ge=0, le=1)


class FileSearchOptions(SparseModel):
    max_num_results: int | None = Field(default=None, ge=1, le=50)
    ranking_options: FileSearchRankingOptions | None = None


class FileSearchTool(SparseModel):
    type: Literal["file_search"]
    file_search: FileSearchOptions | None = None


class FunctionDefinition(SparseModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(SparseModel):
    type: Literal["function"]
    function: FunctionDefinition


def _tool_tag(value: Any) -> str | None:
    return not_served_tag(value) or by_type(value)


AssistantTool = Annotated[
    Annotated[CodeInterpreterTool, Tag(TAG + "code_interpreter")]
    | Annotated[FileSearchTool, Tag(TAG + "file_search")]
    | Annotated[FunctionTool, Tag(TAG + "function")]
    | Annotated[NotServedTool, Tag(TAG + "not_served")],
    by_type_among("tool", *SERVED_TOOLS, tag=_tool_tag),
]


class CodeInterpreterResources(SparseModel):
    file_ids: list[str] = Field(default_factory=list, max_length=20)
    data_sources: FoundryOnly = None


class VectorStoreHelper(SparseModel):
    """A store to create from these files, in place of its id (create requests only)."""

    file_ids: list[str] = Field(default_factory=list, max_length=10_000)
    chunking_strategy: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


class FileSearchResources(SparseModel):
    vector_store_ids: list[str] | None = Field(default=None, max_length=1)
    # Resolved into `vector_store_ids` before anything is stored: never returned.
    vector_stores: list[VectorStoreHelper] | None = Field(default=None, max_length=1, exclude=True)


class ToolResources(SparseModel):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None
    azure_ai_search: FoundryOnly = None
    mcp: FoundryOnly = None


class ResponseFormatText(SparseModel):
    type: Literal["text"]


class ResponseFormatJsonObject(SparseModel):
    type: Literal["json_object"]


class JsonSchema(SparseModel):
    # `schema` would shadow a BaseModel attribute, hence the alias.
    model_config = ConfigDict(serialize_by_alias=True, validate_by_alias=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatJsonSchema(SparseModel):
    type: Literal["json_schema"]
    json_schema: JsonSchema


def _response_format_tag(value: Any) -> str | None:
    return "auto" if value == "auto" else by_type(value)


ResponseFormat = Annotated[
    Annotated[Literal["auto"], Tag("auto")]
    | Annotated[ResponseFormatText, Tag(TAG + "text")]
    | Annotated[ResponseFormatJsonObject, Tag(TAG + "json_object")]
    | Annotated[ResponseFormatJsonSchema, Tag(TAG + "json_schema")],
    Discriminator(
        _response_format_tag,
        custom_error_type="invalid_union_member",
        custom_error_message=(
            "Invalid response format. Supported values are: 'auto', {'type': 'text'}, "
            "{'type': 'json_object'} and {'type': 'json_schema', 'json_schema': {...}}."
        ),
    ),
]

"""The assistant object and the bodies that create and modify it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import ApiObject, Metadata, NotNull, RequestModel, WireModel
from .tools import MAX_TOOLS, AssistantTool, ResponseFormat, ToolResources

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class Assistant(ApiObject):
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None = None
    description: str | None = None
    model: str
    instructions: str | None = None
    tools: list[AssistantTool] = Field(default_factory=list)
    tool_resources: ToolResources = Field(default_factory=ToolResources)
    metadata: dict[str, str] = Field(default_factory=dict)
    temperature: float = 1.0
    top_p: float = 1.0
    response_format: ResponseFormat = "auto"
    reasoning_effort: ReasoningEffort | None = None


class AssistantDeleted(WireModel):
    id: str
    object: Literal["assistant.deleted"] = "assistant.deleted"
    deleted: bool = True


class _AssistantSettings(RequestModel):
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    reasoning_effort: ReasoningEffort | None = None
    tools: Annotated[list[AssistantTool] | None, NotNull] = Field(default=None, max_length=MAX_TOOLS)
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    response_format: ResponseFormat | None = None


class CreateAssistantRequest(_AssistantSettings):
    model: str


class ModifyAssistantRequest(_AssistantSettings):
    model: Annotated[str | None, NotNull] = None

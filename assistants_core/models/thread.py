"""The thread object and the bodies that create and modify it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import ApiObject, Metadata, NotNull, RequestModel, WireModel
from .message import CreateMessageRequest
from .tools import ToolResources


class Thread(ApiObject):
    object: Literal["thread"] = "thread"
    created_at: int
    metadata: dict[str, str] = Field(default_factory=dict)
    tool_resources: ToolResources = Field(default_factory=ToolResources)


class ThreadDeleted(WireModel):
    id: str
    object: Literal["thread.deleted"] = "thread.deleted"
    deleted: bool = True


class ModifyThreadRequest(RequestModel):
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


class CreateThreadRequest(ModifyThreadRequest):
    messages: Annotated[list[CreateMessageRequest] | None, NotNull] = None

    def file_references(self, within: str = "") -> list[tuple[str, str]]:
        """(where in the body, file id) of every file its messages name."""
        prefix = f"{within}." if within else ""
        return [
            reference
            for n, message in enumerate(self.messages or [])
            for reference in message.file_references(f"{prefix}messages[{n}]")
        ]

    def thread_fields(self) -> dict[str, object]:
        """What the body sets on the thread itself (its messages aside)."""
        return {name: value for name, value in self.given().items() if name != "messages"}

"""The message object, its content parts, and the bodies that create and modify it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from .base import TAG, ApiObject, Metadata, RequestModel, SparseModel, WireModel, by_type, by_type_among
from .tools import CodeInterpreterTool, FoundryOnly

MAX_TEXT = 256_000
Detail = Literal["auto", "low", "high"]


class ImageURL(WireModel):
    url: str = Field(pattern=r"(?i)^(https?://|data:)")
    detail: Detail = "auto"


class ImageURLContentBlock(WireModel):
    type: Literal["image_url"]
    image_url: ImageURL


class ImageFile(WireModel):
    file_id: str
    detail: Detail = "auto"


class ImageFileContentBlock(WireModel):
    type: Literal["image_file"]
    image_file: ImageFile


class Text(WireModel):
    value: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)


class TextContentBlock(WireModel):
    type: Literal["text"]
    text: Text


MessageContent = Annotated[
    Annotated[TextContentBlock, Tag(TAG + "text")]
    | Annotated[ImageURLContentBlock, Tag(TAG + "image_url")]
    | Annotated[ImageFileContentBlock, Tag(TAG + "image_file")],
    Discriminator(by_type),
]


class TextContentBlockParam(WireModel):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=MAX_TEXT)


ContentPartParam = Annotated[
    Annotated[TextContentBlockParam, Tag(TAG + "text")]
    | Annotated[ImageURLContentBlock, Tag(TAG + "image_url")]
    | Annotated[ImageFileContentBlock, Tag(TAG + "image_file")],
    by_type_among("content part", "text", "image_url", "image_file"),
]


def _content_form(value: Any) -> str | None:
    if isinstance(value, str):
        return TAG + "string"
    return TAG + "parts" if isinstance(value, list) else None


ContentParam = Annotated[
    Annotated[Annotated[str, Field(min_length=1, max_length=MAX_TEXT)], Tag(TAG + "string")]
    | Annotated[Annotated[list[ContentPartParam], Field(min_length=1)], Tag(TAG + "parts")],
    Discriminator(
        _content_form,
        custom_error_type="invalid_type",
        custom_error_message="Invalid type for 'content': expected a string or an array of content parts.",
    ),
]


class FileSearchToolTypeOnly(SparseModel):
    type: Literal["file_search"]


AttachmentTool = Annotated[
    Annotated[CodeInterpreterTool, Tag(TAG + "code_interpreter")]
    | Annotated[FileSearchToolTypeOnly, Tag(TAG + "file_search")],
    by_type_among("attachment tool", "code_interpreter", "file_search"),
]


class Attachment(WireModel):
    data_source: FoundryOnly = None  # ahead of file_id: Foundry's attachments carry this instead
    file_id: str
    tools: list[AttachmentTool]


class Message(ApiObject):
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: Literal["in_progress", "incomplete", "completed"] = "completed"
    incomplete_details: dict[str, Any] | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None
    role: Literal["user", "assistant"]
    content: list[MessageContent]
    assistant_id: str | None = None
    run_id: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)


class MessageDeleted(WireModel):
    id: str
    object: Literal["thread.message.deleted"] = "thread.message.deleted"
    deleted: bool = True


class CreateMessageRequest(RequestModel):
    role: Literal["user", "assistant"]
    content: ContentParam
    attachments: list[Attachment] | None = None
    metadata: Metadata | None = None

    def file_references(self, within: str = "") -> list[tuple[str, str]]:
        """(where in the body, file id) of every file the message names."""
        prefix = f"{within}." if within else ""
        found: list[tuple[str, str]] = []
        if isinstance(self.content, list):
            for n, part in enumerate(self.content):
                if isinstance(part, ImageFileContentBlock):
                    found.append((f"{prefix}content[{n}].image_file.file_id", part.image_file.file_id))
        for n, attachment in enumerate(self.attachments or []):
            found.append((f"{prefix}attachments[{n}].file_id", attachment.file_id))
        return found

    def to_message(self, message_id: str, thread_id: str, created_at: int) -> Message:
        """The message this body creates: text becomes text parts with no annotations."""
        parts = [self.content] if isinstance(self.content, str) else self.content
        content = [_stored(part) for part in parts]
        return Message(
            id=message_id,
            created_at=created_at,
            completed_at=created_at,
            thread_id=thread_id,
            role=self.role,
            content=content,
            attachments=self.attachments or [],
            metadata=self.metadata or {},
        )


def _stored(
    part: str | TextContentBlockParam | ImageURLContentBlock | ImageFileContentBlock,
) -> TextContentBlock | ImageURLContentBlock | ImageFileContentBlock:
    if isinstance(part, str):
        return TextContentBlock(type="text", text=Text(value=part))
    if isinstance(part, TextContentBlockParam):
        return TextContentBlock(type="text", text=Text(value=part.text))
    return part


class ModifyMessageRequest(RequestModel):
    metadata: Metadata | None = None

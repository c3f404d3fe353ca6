"""The File and Upload objects, and the bodies that start and complete an Upload."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ApiObject, RequestModel, WireModel

# What a client may upload for; `assistants_output` is only ever made by the service.
UPLOAD_PURPOSES = ("assistants", "vision", "user_data", "batch", "fine-tune", "evals")
Purpose = Literal[
    "assistants",
    "assistants_output",
    "vision",
    "user_data",
    "batch",
    "batch_output",
    "fine-tune",
    "fine-tune-results",
    "evals",
]
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 2_592_000
MAX_UPLOAD_BYTES = 8 * 1024**3  # OpenAI's limit for an Upload


class File(ApiObject):
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: Purpose
    # Deprecated but required by the spec and the Python SDK's model; files are usable at once.
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None


class FileDeleted(WireModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class ExpiresAfter(WireModel):
    anchor: Literal["created_at"]
    seconds: int = Field(ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS)


class Upload(ApiObject):
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    filename: str
    purpose: Purpose
    status: Literal["pending", "completed", "cancelled", "expired"] = "pending"
    expires_at: int
    file: File | None = None


class UploadPart(ApiObject):
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


class CreateUploadRequest(RequestModel):
    filename: str = Field(min_length=1, max_length=1024)
    purpose: Literal["assistants", "vision", "user_data", "batch", "fine-tune", "evals"]
    bytes: int = Field(ge=1, le=MAX_UPLOAD_BYTES)
    mime_type: str = Field(min_length=1, max_length=256)
    expires_after: ExpiresAfter | None = None


class CompleteUploadRequest(RequestModel):
    part_ids: list[str]
    md5: str | None = None

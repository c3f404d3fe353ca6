"""Wire models, named after the spec's objects (`Assistant`, `...Request`)."""

from .assistant import (
    Assistant,
    AssistantDeleted,
    CreateAssistantRequest,
    ModifyAssistantRequest,
)

__all__ = [
    "Assistant",
    "AssistantDeleted",
    "CreateAssistantRequest",
    "ModifyAssistantRequest",
]

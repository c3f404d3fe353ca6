"""Wire models, named after the spec's objects (`Assistant`, `Thread`, `Message`, `...Request`)."""

from .assistant import Assistant, AssistantDeleted, CreateAssistantRequest, ModifyAssistantRequest
from .base import ApiObject
from .message import CreateMessageRequest, Message, MessageDeleted, ModifyMessageRequest
from .thread import CreateThreadRequest, ModifyThreadRequest, Thread, ThreadDeleted

__all__ = [
    "ApiObject",
    "Assistant",
    "AssistantDeleted",
    "CreateAssistantRequest",
    "CreateMessageRequest",
    "CreateThreadRequest",
    "Message",
    "MessageDeleted",
    "ModifyAssistantRequest",
    "ModifyMessageRequest",
    "ModifyThreadRequest",
    "Thread",
    "ThreadDeleted",
]

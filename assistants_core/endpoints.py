"""One function per documented endpoint: read the request, call the service."""

from __future__ import annotations

from . import ids
from .http import Call
from .models import (
    Assistant,
    AssistantDeleted,
    CreateAssistantRequest,
    ModifyAssistantRequest,
)
from .pagination import ListPage, ListQuery


def create_assistant(call: Call) -> Assistant:
    return call.service.create_assistant(CreateAssistantRequest.parse(call.json()))


def list_assistants(call: Call) -> ListPage[Assistant]:
    return call.service.list_assistants(ListQuery.from_params(call.params, ids.ASSISTANT))


def retrieve_assistant(call: Call) -> Assistant:
    return call.service.retrieve_assistant(call.path("assistant_id"))


def modify_assistant(call: Call) -> Assistant:
    request = ModifyAssistantRequest.parse(call.json())
    return call.service.modify_assistant(call.path("assistant_id"), request)


def delete_assistant(call: Call) -> AssistantDeleted:
    return call.service.delete_assistant(call.path("assistant_id"))

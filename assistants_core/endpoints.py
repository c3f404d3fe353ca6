"""One function per documented endpoint: read the request, call the service."""

from __future__ import annotations

from . import ids
from .http import Call
from .models import (
    Assistant,
    AssistantDeleted,
    CreateAssistantRequest,
    CreateMessageRequest,
    CreateThreadRequest,
    Message,
    MessageDeleted,
    ModifyAssistantRequest,
    ModifyMessageRequest,
    ModifyThreadRequest,
    Thread,
    ThreadDeleted,
)
from .pagination import ListPage, ListQuery, id_param

# --- assistants ------------------------------------------------------------------------------


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


# --- threads ---------------------------------------------------------------------------------


def create_thread(call: Call) -> Thread:
    return call.service.create_thread(CreateThreadRequest.parse(call.json()))


def retrieve_thread(call: Call) -> Thread:
    return call.service.retrieve_thread(call.path("thread_id"))


def modify_thread(call: Call) -> Thread:
    return call.service.modify_thread(call.path("thread_id"), ModifyThreadRequest.parse(call.json()))


def delete_thread(call: Call) -> ThreadDeleted:
    return call.service.delete_thread(call.path("thread_id"))


# --- messages --------------------------------------------------------------------------------


def create_message(call: Call) -> Message:
    return call.service.create_message(call.path("thread_id"), CreateMessageRequest.parse(call.json()))


def list_messages(call: Call) -> ListPage[Message]:
    query = ListQuery.from_params(call.params, ids.MESSAGE)
    run_id = id_param(call.params, "run_id", ids.RUN)
    return call.service.list_messages(call.path("thread_id"), query, run_id)


def retrieve_message(call: Call) -> Message:
    return call.service.retrieve_message(call.path("thread_id"), call.path("message_id"))


def modify_message(call: Call) -> Message:
    request = ModifyMessageRequest.parse(call.json())
    return call.service.modify_message(call.path("thread_id"), call.path("message_id"), request)


def delete_message(call: Call) -> MessageDeleted:
    return call.service.delete_message(call.path("thread_id"), call.path("message_id"))

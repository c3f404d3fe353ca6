"""Storage requests per call, against the fewest Table Storage allows (counts, not timings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assistants_core.models import (
    CreateAssistantRequest,
    CreateMessageRequest,
    CreateThreadRequest,
    ModifyAssistantRequest,
    ModifyMessageRequest,
    ModifyThreadRequest,
)
from assistants_core.pagination import ListQuery
from tests.support import Azurite, StorageMeter, in_process_service


def test_requests_per_call(azurite: Azurite) -> None:
    meter = StorageMeter()
    service = in_process_service(azurite.connection_string, meter=meter)
    # Tables are created on first use, once per process: not part of any call's cost.
    assistant = service.create_assistant(CreateAssistantRequest.parse({"model": "m"})).id
    three = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(3)]}
    thread = service.create_thread(CreateThreadRequest.parse(three)).id
    message = service.list_messages(thread, ListQuery(limit=1), None).data[0].id
    user = CreateMessageRequest.parse({"role": "user", "content": "x"})

    def cost(call: Callable[[], Any]) -> int:
        meter.reset()
        call()
        return meter.requests

    counts = {
        "create assistant": cost(
            lambda: service.create_assistant(CreateAssistantRequest.parse({"model": "m"}))
        ),
        "retrieve assistant": cost(lambda: service.retrieve_assistant(assistant)),
        "modify assistant": cost(
            lambda: service.modify_assistant(assistant, ModifyAssistantRequest.parse({"name": "n"}))
        ),
        "list assistants": cost(lambda: service.list_assistants(ListQuery(limit=20))),
        "create thread with 3 messages": cost(
            lambda: service.create_thread(CreateThreadRequest.parse(three))
        ),
        "retrieve thread": cost(lambda: service.retrieve_thread(thread)),
        "modify thread": cost(
            lambda: service.modify_thread(thread, ModifyThreadRequest.parse({"metadata": {}}))
        ),
        "create message": cost(lambda: service.create_message(thread, user)),
        "list messages": cost(lambda: service.list_messages(thread, ListQuery(limit=20), None)),
        "retrieve message": cost(lambda: service.retrieve_message(thread, message)),
        "modify message": cost(
            lambda: service.modify_message(
                thread, message, ModifyMessageRequest.parse({"metadata": {"k": "v"}})
            )
        ),
        "delete message": cost(lambda: service.delete_message(thread, message)),
        "delete assistant": cost(lambda: service.delete_assistant(assistant)),
    }
    assert counts == {
        "create assistant": 1,
        "retrieve assistant": 1,
        "modify assistant": 2,
        "list assistants": 1,
        "create thread with 3 messages": 1,
        "retrieve thread": 1,
        "modify thread": 2,
        "create message": 2,
        "list messages": 1,
        "retrieve message": 2,  # the message and, beside it, the thread row (deleted threads: 404 at once)
        "modify message": 2,
        "delete message": 2,
        "delete assistant": 2,
    }

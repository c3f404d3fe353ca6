"""Writing documents: the optimistic-retry loop every read-then-write uses, the check that an
object fits what storage holds, and a new thread as it will be stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from . import ids
from .errors import InvalidRequest
from .models import CreateThreadRequest, Thread
from .storage import MAX_DOCUMENT_BYTES, ConcurrentUpdate

T = TypeVar("T")


def optimistically(attempt: Callable[[], T], on_conflict: Callable[[], object] | None = None) -> T:
    """Run a read-then-conditional-write until no other write got in between."""
    while True:
        try:
            return attempt()
        except ConcurrentUpdate:
            if on_conflict is not None:
                on_conflict()


def document(obj: BaseModel, fields: dict[str, Any], within: str = "") -> bytes:
    """The object as stored, or a 400 naming the largest field given if it is too large to store."""
    encoded = obj.model_dump_json().encode()
    if len(encoded) > MAX_DOCUMENT_BYTES:
        largest = max(fields, key=lambda name: len(repr(fields[name])), default=None)
        param = ".".join(p for p in (within, largest) if p) or None
        kind = type(obj).__name__.lower().removeprefix("stored")  # a StoredRun is a run
        raise InvalidRequest(
            f"The {kind} is too large to store: it takes {len(encoded):,} bytes as JSON, and this "
            f"service stores at most {MAX_DOCUMENT_BYTES:,} bytes per object.",
            param=param,
            code="object_too_large",
        )
    return encoded


@dataclass(frozen=True)
class NewThread:
    """A thread and its first messages as they will be stored."""

    thread: Thread
    document: bytes
    messages: list[tuple[str, bytes]]

    @classmethod
    def of(cls, request: CreateThreadRequest, within: str = "") -> NewThread:
        """`within` says where the thread sits in the request body, for a 400's `param`."""
        thread_id, created_at = ids.new_id(ids.THREAD)
        thread = Thread(id=thread_id, created_at=created_at).with_changes(request.thread_fields())
        messages = []
        prefix = f"{within}." if within else ""
        for number, body in enumerate(request.messages or []):
            message = body.to_message(ids.sequential_id(ids.MESSAGE, number), thread_id, created_at)
            messages.append((message.id, document(message, body.given(), f"{prefix}messages[{number}]")))
        return cls(thread, document(thread, request.thread_fields(), within), messages)

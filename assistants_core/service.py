"""What each operation does, in terms of wire models and stored documents."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import ids
from .errors import InvalidRequest, NotFound
from .models import (
    Assistant,
    AssistantDeleted,
    CreateAssistantRequest,
    ModifyAssistantRequest,
)
from .pagination import ListPage, ListQuery
from .storage import MAX_DOCUMENT_BYTES, Collection, ConcurrentUpdate, DocumentTooLarge, Record, Store


class Service:
    def __init__(self, store: Store) -> None:
        self._store = store

    # --- assistants -------------------------------------------------------------------------

    def create_assistant(self, request: CreateAssistantRequest) -> Assistant:
        assistant_id, created_at = ids.new_id(ids.ASSISTANT)
        assistant = Assistant(id=assistant_id, created_at=created_at, model=request.model)
        assistant = assistant.with_changes(request.given())
        with _size_checked("assistant", request.given()):
            self._store.assistants().insert(assistant.id, _document(assistant))
        return assistant

    def list_assistants(self, query: ListQuery) -> ListPage[Assistant]:
        documents, has_more = self._store.assistants().page(
            query.order, query.limit, query.after, query.before
        )
        return ListPage[Assistant].of([Assistant.model_validate_json(d) for d in documents], has_more)

    def retrieve_assistant(self, assistant_id: str) -> Assistant:
        _, record = self._find_assistant(assistant_id)
        return Assistant.model_validate_json(record.document)

    def modify_assistant(self, assistant_id: str, request: ModifyAssistantRequest) -> Assistant:
        while True:  # optimistic concurrency: re-read and re-apply when another write got in first
            collection, record = self._find_assistant(assistant_id)
            assistant = Assistant.model_validate_json(record.document).with_changes(request.given())
            try:
                with _size_checked("assistant", request.given()):
                    collection.replace(assistant_id, record, _document(assistant))
            except ConcurrentUpdate:
                continue
            return assistant

    def delete_assistant(self, assistant_id: str) -> AssistantDeleted:
        while True:
            collection, record = self._find_assistant(assistant_id)
            try:
                collection.delete(assistant_id, record)
            except ConcurrentUpdate:
                continue
            return AssistantDeleted(id=assistant_id)

    def _find_assistant(self, assistant_id: str) -> tuple[Collection, Record]:
        if not ids.is_valid(ids.ASSISTANT, assistant_id):
            raise NotFound.object("assistant", assistant_id)
        collection = self._store.assistants()
        record = collection.get(assistant_id)
        if record is None:
            raise NotFound.object("assistant", assistant_id)
        return collection, record


def _document(obj: Assistant) -> bytes:
    return obj.model_dump_json().encode()


@contextmanager
def _size_checked(kind: str, fields: dict[str, Any]) -> Iterator[None]:
    """Turns a document too large for storage into a 400 naming the largest field given."""
    try:
        yield
    except DocumentTooLarge as exc:
        largest = max(fields, key=lambda name: len(repr(fields[name])), default=None)
        raise InvalidRequest(
            f"The {kind} is too large to store: it takes {exc.size:,} bytes as JSON, and this "
            f"service stores at most {MAX_DOCUMENT_BYTES:,} bytes per object.",
            param=largest,
            code="object_too_large",
        ) from None

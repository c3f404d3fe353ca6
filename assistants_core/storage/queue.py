"""The runs queue: a message per run that waits for an executor, read by the queue trigger.

Messages are JSON, base64-encoded as the Functions host expects by default (a message it
cannot decode goes to the poison queue unread). The queue is reached as the tables are: with
the connection string, or in Azure at `ASSISTANTS_STORAGE_CONNECTION_STRING__queueServiceUri`
as the app's identity, the same connection the trigger uses.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from .. import ids
from ..settings import Settings
from .rows import translated_errors
from .store import CLIENT_OPTIONS, transport


class _Queue:
    def __init__(self, settings: Settings, name: str) -> None:
        self._settings = settings
        self._name = name
        self._client: QueueClient | None = None
        self._lock = threading.Lock()

    def _send(self, message: dict[str, str]) -> None:
        """StorageUnavailable if the queue cannot be reached."""
        with translated_errors():
            self._queue().send_message(json.dumps(message))

    def _queue(self) -> QueueClient:
        with self._lock:
            if self._client is None:
                self._client = _client(self._settings, self._name)
                if self._settings.storage_connection_string:  # local storage: make the queue if missing
                    try:
                        self._client.create_queue()
                    except ResourceExistsError:
                        pass
                    except HttpResponseError:
                        self._client = None
                        raise
            return self._client


class RunQueue(_Queue):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.runs_queue)

    def send(self, thread_id: str, run_id: str) -> None:
        """Ask for an executor for the run."""
        self._send({"thread_id": thread_id, "run_id": run_id})


class IngestQueue(_Queue):
    """A message per (vector store, file) to ingest, on a queue of its own."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.ingest_queue)

    def send(self, store_id: str, file_id: str) -> None:
        self._send({"vector_store_id": store_id, "file_id": file_id})


def _client(settings: Settings, name: str) -> QueueClient:
    policies: dict[str, Any] = {
        "transport": transport(),
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
    }
    if settings.storage_connection_string:
        return QueueClient.from_connection_string(
            settings.storage_connection_string, name, **policies, **CLIENT_OPTIONS
        )
    from azure.identity import DefaultAzureCredential

    return QueueClient(
        settings.queue_service_url or "",
        name,
        credential=DefaultAzureCredential(),
        **policies,
        **CLIENT_OPTIONS,
    )


def _named(body: bytes, *fields: tuple[str, str]) -> tuple[str, ...] | None:
    """The ids a message's JSON object holds under `fields` (name, id prefix), each valid; None
    for anything else."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    found = tuple(value.get(name) for name, _ in fields)
    for item, (_, prefix) in zip(found, fields, strict=True):
        if not (isinstance(item, str) and ids.is_valid(prefix, item)):
            return None
    return tuple(str(item) for item in found)


def read_message(body: bytes) -> tuple[str, str] | None:
    """The (thread id, run id) a queue message names; None for anything else."""
    named = _named(body, ("thread_id", ids.THREAD), ("run_id", ids.RUN))
    return (named[0], named[1]) if named else None


def read_ingest_message(body: bytes) -> tuple[str, str] | None:
    """The (vector store id, file id) an ingestion message names; None for anything else."""
    named = _named(body, ("vector_store_id", ids.VECTOR_STORE), ("file_id", ids.FILE))
    return (named[0], named[1]) if named else None

"""The process's connection to Table Storage."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..settings import ConfigurationError, Settings
from .collection import Collection
from .rows import translated_errors
from .runs import ActiveRuns
from .threads import Threads

# Storage calls (tables and the queue) fail fast and in bounded time, so a client sees a 503
# rather than a hang.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 1,
    "connection_timeout": 5,
    "read_timeout": 30,
}


# Connections kept open to storage: one for every request in flight, so that none is opened (in
# Azure, with a TLS handshake) and thrown away per request. The SDK's own default keeps 10.
POOLED_CONNECTIONS = 128


def _transport() -> RequestsTransport:
    session = requests.Session()
    # Retries are the pipeline's (CLIENT_OPTIONS); the connection pool's own stay off.
    adapter = HTTPAdapter(
        pool_maxsize=POOLED_CONNECTIONS, max_retries=Retry(total=False, raise_on_status=False)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=False)


def table_service(settings: Settings, **options: Any) -> TableServiceClient:
    """The client the settings ask for: by managed identity at an account URL, or by
    connection string. Neither makes a request until used."""
    options.setdefault("transport", _transport())
    if settings.storage_account_url:
        from azure.identity import DefaultAzureCredential  # only a deployment pays for this import

        return TableServiceClient(
            settings.storage_account_url, credential=DefaultAzureCredential(), **options
        )
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    raise ConfigurationError("No storage is configured: give an account URL or a connection string.")


class Store:
    """Tables are created on first use, once per process.

    `observe`, if given, sees every storage response (for counting round trips).
    """

    def __init__(
        self, settings: Settings, observe: Callable[[PipelineResponse[Any, Any]], None] | None = None
    ) -> None:
        self.settings = settings
        self._options = dict(CLIENT_OPTIONS, raw_response_hook=observe) if observe else CLIENT_OPTIONS
        self._service: TableServiceClient | None = None
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def assistants(self) -> Collection:
        return Collection(self._table("assistants"), partition="assistants")

    def threads(self) -> Threads:
        return Threads(self._table("threads"))

    def active_runs(self) -> ActiveRuns:
        return ActiveRuns(self._table("threads"))

    def _table(self, name: str) -> TableClient:
        full_name = self.settings.table_prefix + name
        table = self._tables.get(full_name)
        if table is not None:
            return table
        with self._lock, translated_errors():
            if full_name not in self._tables:
                if self._service is None:
                    self._service = table_service(self.settings, **self._options)
                self._tables[full_name] = self._service.create_table_if_not_exists(full_name)
            return self._tables[full_name]

"""The process's connection to Table Storage."""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import requests
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from ..settings import ConfigurationError, Settings
from .blobs import READ_BYTES, Blobs
from .collection import Collection
from .files import EXPIRING, Expiries, Uploads
from .rows import translated_errors
from .runs import ActiveRuns
from .threads import Threads
from .vector_stores import VectorStoreRows

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


class _Session(requests.Session):
    """A session that hands a storage request straight to its adapter when nothing that
    `Session.request` merges in applies, as for every request azure-core's transport makes here:
    no proxy (the environment has none: `trust_env` off), no cookies, auth, hooks, parameters or
    files, redirects left to the pipeline's own policy. `Session.request` would merge the
    defaults through `typing` protocol checks, look at the environment and the cookie jars, and
    look for a redirect to follow: ~0.4 ms of CPU a storage request (issue 22). Storage sets no
    cookies, so none are kept from its responses. Anything else goes the whole way."""

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        plain = not (
            allow_redirects
            or self.trust_env
            or params
            or cookies
            or files
            or auth
            or hooks
            or proxies
            or json is not None
            or self.params
            or self.auth
            or self.proxies
            or any(self.hooks.values())
            or len(self.cookies)
            or "@" in url  # credentials in the URL: requests takes them for basic auth
        )
        if not plain:
            return super().request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                cookies=cookies,
                files=files,
                auth=auth,
                timeout=timeout,
                allow_redirects=allow_redirects,
                proxies=proxies,
                hooks=hooks,
                stream=stream,
                verify=verify,
                cert=cert,
                json=json,
            )
        merged = CaseInsensitiveDict(self.headers)
        merged.update(headers or {})
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.prepare_url(url, None)
        prepared.prepare_headers({k: v for k, v in merged.items() if v is not None})
        prepared.prepare_body(data or {}, None)
        prepared.prepare_hooks(None)
        stream = self.stream if stream is None else stream
        response = self.get_adapter(url).send(
            prepared,
            stream=stream,
            timeout=timeout,
            verify=self.verify if verify is None else verify,
            cert=self.cert if cert is None else cert,
            proxies={},
        )
        if not stream:
            response.content  # noqa: B018  read whole, as Session.send does: the connection goes back
        return response


def transport() -> RequestsTransport:
    """One HTTP session for a storage client, its connections pooled, its timeouts
    CLIENT_OPTIONS' (a client handed a transport leaves the transport's own, 300 s, in force)."""
    session = _Session()
    # Trusting the environment, requests reads every variable (for proxies), .netrc and the CA
    # bundle's variables again on each request: a quarter of a point read's CPU with a Functions
    # app's hundred settings (measured). The CA bundle is read once, here; a proxy, if one is
    # set, is still found per request, as requests does it (NO_PROXY included).
    session.trust_env = bool(urllib.request.getproxies())
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    # Retries are the pipeline's (CLIENT_OPTIONS); the connection pool's own stay off.
    adapter = HTTPAdapter(
        pool_maxsize=POOLED_CONNECTIONS, max_retries=Retry(total=False, raise_on_status=False)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(
        session=session,
        session_owner=False,
        connection_timeout=CLIENT_OPTIONS["connection_timeout"],
        read_timeout=CLIENT_OPTIONS["read_timeout"],
        connection_verify=bundle or True,
    )


def table_service(settings: Settings, **options: Any) -> TableServiceClient:
    """The client the settings ask for: by managed identity at an account URL, or by
    connection string. Neither makes a request until used."""
    options.setdefault("transport", transport())
    if settings.storage_account_url:
        from azure.identity import DefaultAzureCredential  # only a deployment pays for this import

        return TableServiceClient(
            settings.storage_account_url, credential=DefaultAzureCredential(), **options
        )
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    raise ConfigurationError("No storage is configured: give an account URL or a connection string.")


def blob_container(settings: Settings, name: str, **options: Any) -> Any:
    """The blob container the settings reach, as `table_service` reaches tables (the blob
    service's address, in Azure, from its own setting or else the table endpoint's)."""
    from azure.storage.blob import BlobServiceClient  # imported by the first file request

    options.setdefault("transport", transport())
    # A download asks storage for this much at a time: what it holds in memory, whatever the size.
    options.update(max_single_get_size=READ_BYTES, max_chunk_get_size=READ_BYTES)
    if settings.storage_account_url:
        from azure.identity import DefaultAzureCredential

        url = settings.blob_service_url or settings.storage_account_url.replace(".table.", ".blob.", 1)
        service = BlobServiceClient(url, credential=DefaultAzureCredential(), **options)
    elif settings.storage_connection_string:
        service = BlobServiceClient.from_connection_string(settings.storage_connection_string, **options)
    else:
        raise ConfigurationError("No storage is configured: give an account URL or a connection string.")
    return service.get_container_client(name)


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
        self._blobs: Blobs | None = None

    def assistants(self) -> Collection:
        return Collection(self._table("assistants"), partition="assistants")

    def threads(self) -> Threads:
        return Threads(self._table("threads"))

    def active_runs(self) -> ActiveRuns:
        return ActiveRuns(self._table("threads"))

    def files(self) -> Collection:
        return Collection(self._table("files"), partition="files")

    def file_expiries(self) -> Expiries:
        return Expiries(self._table("files"), EXPIRING)

    def uploads(self) -> Uploads:
        return Uploads(self._table("uploads"))

    def vector_stores(self) -> VectorStoreRows:
        return VectorStoreRows(self._table("vectorstores"))

    def blobs(self) -> Blobs:
        """The files' bytes; the container is named like the tables (`<prefix>files`, lowercased)."""
        if self._blobs is None:
            name = (self.settings.table_prefix + "files").lower()
            self._blobs = Blobs(blob_container(self.settings, name, **self._options))
        return self._blobs

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

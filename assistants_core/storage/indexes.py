"""Where vector-store indexes live in Blob Storage, and how the index engine reaches them.

The index engine (LanceDB) talks to Blob Storage itself, through its own client: this module gives
it the location (`az://<container>/vector_stores`, one table per store beneath) and the storage
options that engine-choice.md measured, for a connection string (an account key, Azurite's
included) and for the app's managed identity in Azure. The container is created on first use,
once per process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..settings import ConfigurationError, Settings

INDEX_FOLDER = "vector_stores"
CONTAINER = "indexes"


@dataclass(frozen=True)
class IndexLocation:
    uri: str
    storage_options: dict[str, str] = field(repr=False)


_created: set[tuple[str, str]] = set()
_lock = threading.Lock()


def container_name(settings: Settings) -> str:
    """`indexes`, after the table prefix if there is one (a container name is 3-63 lowercase
    letters, digits and hyphens; a table prefix is at most 51 letters and digits)."""
    prefix = settings.table_prefix.lower()
    return f"{prefix}-{CONTAINER}" if prefix else CONTAINER


def index_location(settings: Settings) -> IndexLocation:
    container = container_name(settings)
    service, options = _service(settings)
    key = (service.url, container)
    if key not in _created:
        with _lock:
            if key not in _created:
                from azure.core.exceptions import ResourceExistsError

                with contextlib.suppress(ResourceExistsError):
                    service.create_container(container)
                _created.add(key)
    return IndexLocation(f"az://{container}/{INDEX_FOLDER}", options)


def _service(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[Any, dict[str, str]]:
    env = os.environ if environ is None else environ
    from azure.storage.blob import BlobServiceClient

    if settings.storage_connection_string:
        service = BlobServiceClient.from_connection_string(settings.storage_connection_string)
        account_key = getattr(service.credential, "account_key", None)
        if not account_key:
            raise ConfigurationError(
                "Vector stores need an account key in the storage connection string (or the managed "
                "identity, with an account URL)."
            )
        endpoint = service.url.rstrip("/")
        options = {
            "account_name": service.account_name,
            "account_key": account_key,
            # The account's path must be in it for Azurite, whose endpoint carries the account.
            "azure_storage_endpoint": endpoint,
        }
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
        return service, options
    if settings.storage_account_url:
        from azure.identity import DefaultAzureCredential

        host = urlsplit(settings.storage_account_url).hostname or ""
        account = host.split(".", 1)[0]
        blob_url = f"https://{host.replace('.table.', '.blob.', 1)}"
        service = BlobServiceClient(blob_url, credential=DefaultAzureCredential())
        options = {"account_name": account}
        # LanceDB's object_store reads only AZURE_* variables by itself: the App Service identity
        # endpoint and a user-assigned identity's client id must be handed over (engine-choice.md).
        if env.get("IDENTITY_ENDPOINT"):
            options["azure_msi_endpoint"] = env["IDENTITY_ENDPOINT"]
        if env.get("AZURE_CLIENT_ID"):
            options["azure_client_id"] = env["AZURE_CLIENT_ID"]
        return service, options
    raise ConfigurationError("No storage is configured: give an account URL or a connection string.")

"""The app's settings, read once from the environment (app settings in Azure, `Values` locally)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

API_KEYS = "ASSISTANTS_API_KEYS"
STORAGE_CONNECTION_STRING = "ASSISTANTS_STORAGE_CONNECTION_STRING"
STORAGE_ACCOUNT_URL = "ASSISTANTS_STORAGE_ACCOUNT_URL"
TABLE_PREFIX = "ASSISTANTS_TABLE_PREFIX"
RUNS_QUEUE = "ASSISTANTS_RUNS_QUEUE"
INGEST_QUEUE = "ASSISTANTS_INGEST_QUEUE"
INGEST_LEASE_SECONDS = "ASSISTANTS_INGEST_LEASE_SECONDS"
# The queue trigger's connection is named after the storage setting, so that locally the one
# connection string serves tables and queues; in Azure the identity-based form applies.
QUEUE_SERVICE_URL = STORAGE_CONNECTION_STRING + "__queueServiceUri"
# Files' bytes, in Azure: the blob endpoint (else derived from the account URL's table endpoint).
BLOB_SERVICE_URL = STORAGE_CONNECTION_STRING + "__blobServiceUri"
MODEL_BASE_URL = "ASSISTANTS_MODEL_BASE_URL"
MODEL_API_KEY = "ASSISTANTS_MODEL_API_KEY"
RUN_EXPIRY_SECONDS = "ASSISTANTS_RUN_EXPIRY_SECONDS"
STREAM_HEARTBEAT_SECONDS = "ASSISTANTS_STREAM_HEARTBEAT_SECONDS"
# code_interpreter's sandbox (assistants_core/sandbox/).
SANDBOX = "ASSISTANTS_SANDBOX"
SANDBOX_ENDPOINT = "ASSISTANTS_SANDBOX_ENDPOINT"
SANDBOX_SECRET = "ASSISTANTS_SANDBOX_SECRET"
SANDBOX_TIMEOUT_SECONDS = "ASSISTANTS_SANDBOX_TIMEOUT_SECONDS"
SANDBOX_IDLE_SECONDS = "ASSISTANTS_SANDBOX_IDLE_SECONDS"
SANDBOX_MAX_SESSIONS = "ASSISTANTS_SANDBOX_MAX_SESSIONS"
SANDBOX_MEMORY_MB = "ASSISTANTS_SANDBOX_MEMORY_MB"
SANDBOX_PROCESSES = "ASSISTANTS_SANDBOX_PROCESSES"
SANDBOX_CPU_SECONDS = "ASSISTANTS_SANDBOX_CPU_SECONDS"
SANDBOX_UNSAFE_LOCAL = "ASSISTANTS_SANDBOX_UNSAFE_LOCAL"
EMBEDDINGS_MODEL = "ASSISTANTS_EMBEDDINGS_MODEL"
EMBEDDINGS_DIMENSIONS = "ASSISTANTS_EMBEDDINGS_DIMENSIONS"
MAX_EMBEDDINGS_DIMENSIONS = 8192

# Table names are 3-63 alphanumerics starting with a letter; the longest suffix we add is 10.
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,50}")
_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")


class ConfigurationError(RuntimeError):
    """The app cannot serve with these settings; the message says which one to fix."""


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int, unit: str) -> int:
    value = env.get(name, "").strip() or str(default)
    if not value.isdigit() or not low <= int(value) <= high:
        raise ConfigurationError(f"{name} must be a number of {unit} from {low} to {high}.")
    return int(value)


@dataclass(frozen=True)
class SandboxSettings:
    """code_interpreter's sandbox: `local` (an IPython kernel under bubblewrap, per instance) or
    `dynamic_sessions` (an Azure Container Apps session pool at `endpoint`); by default the pool
    when an endpoint is set, else local. The limits apply per session of the local sandbox."""

    kind: str = "local"
    endpoint: str | None = None
    # Keys sessions (HMAC of the thread id); empty: derived from the first API key.
    secret: bytes = b""
    timeout_seconds: int = 60
    idle_seconds: int = 3600
    max_sessions: int = 4
    memory_mb: int = 2048
    processes: int = 64
    cpu_seconds: int = 600
    unsafe_local: bool = False

    @classmethod
    def from_environ(cls, env: Mapping[str, str], api_keys: tuple[bytes, ...] = ()) -> SandboxSettings:
        endpoint = env.get(SANDBOX_ENDPOINT, "").strip().rstrip("/") or None
        kind = env.get(SANDBOX, "").strip() or ("dynamic_sessions" if endpoint else "local")
        if kind not in ("local", "dynamic_sessions"):
            raise ConfigurationError(f"{SANDBOX} must be local or dynamic_sessions, got {kind!r}.")
        if kind == "dynamic_sessions" and not (endpoint and endpoint.startswith(("https://", "http://"))):
            raise ConfigurationError(
                f"{SANDBOX} is dynamic_sessions: set {SANDBOX_ENDPOINT} to the session pool's "
                "management endpoint (https://<region>.dynamicsessions.io/subscriptions/...)."
            )
        unsafe = env.get(SANDBOX_UNSAFE_LOCAL, "").strip()
        if unsafe not in ("", "0", "1"):
            raise ConfigurationError(f"{SANDBOX_UNSAFE_LOCAL} must be 1 or 0 (or empty).")
        secret = env.get(SANDBOX_SECRET, "").strip().encode()
        if not secret and api_keys:
            secret = hashlib.sha256(b"assistants-sandbox\0" + api_keys[0]).digest()
        return cls(
            kind=kind,
            endpoint=endpoint,
            secret=secret,
            # Dynamic sessions stop a call at 220 s; a run expires at 600 s.
            timeout_seconds=_bounded_int(env, SANDBOX_TIMEOUT_SECONDS, 60, 1, 220, "seconds"),
            idle_seconds=_bounded_int(env, SANDBOX_IDLE_SECONDS, 3600, 1, 86400, "seconds"),
            max_sessions=_bounded_int(env, SANDBOX_MAX_SESSIONS, 4, 1, 1000, "sessions"),
            memory_mb=_bounded_int(env, SANDBOX_MEMORY_MB, 2048, 256, 1048576, "MiB"),
            processes=_bounded_int(env, SANDBOX_PROCESSES, 64, 16, 65536, "processes"),
            cpu_seconds=_bounded_int(env, SANDBOX_CPU_SECONDS, 600, 1, 86400, "seconds"),
            unsafe_local=unsafe == "1",
        )


@dataclass(frozen=True)
class Settings:
    """Storage is reached either with a connection string (local runs, Azurite) or, in Azure,
    at an account URL as the app's managed identity (`AZURE_CLIENT_ID` names a user-assigned one)."""

    api_keys: tuple[bytes, ...]
    storage_connection_string: str | None = None
    storage_account_url: str | None = None
    table_prefix: str = ""
    runs_queue: str = "runs"
    ingest_queue: str = "ingestion"
    # How long an ingestion may hold its file before the sweeper takes it to be lost.
    ingest_lease_seconds: int = 600
    queue_service_url: str | None = None
    blob_service_url: str | None = None
    model_base_url: str | None = None
    model_api_key: str | None = None
    run_expiry_seconds: int = 600
    stream_heartbeat_seconds: float = 15.0
    sandbox: SandboxSettings = SandboxSettings()
    # OpenAI's own file_search: text-embedding-3-large shortened to 256 dimensions.
    embeddings_model: str = "text-embedding-3-large"
    embeddings_dimensions: int = 256

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        keys = tuple(k.strip().encode() for k in env.get(API_KEYS, "").split(",") if k.strip())
        if not keys:
            raise ConfigurationError(
                f"{API_KEYS} is not set: configure at least one API key (comma-separated) "
                "before serving requests."
            )
        connection_string = env.get(STORAGE_CONNECTION_STRING, "").strip() or None
        account_url = env.get(STORAGE_ACCOUNT_URL, "").strip() or None
        if connection_string and account_url:
            raise ConfigurationError(
                f"Both {STORAGE_CONNECTION_STRING} and {STORAGE_ACCOUNT_URL} are set: set only one "
                "(the URL to use the managed identity, the connection string for local runs)."
            )
        if (
            connection_string
            and "tableendpoint=" in connection_string.lower()
            and "queueendpoint=" not in connection_string.lower()
        ):
            # Else the storage SDK would make the queue's address up from the account's name,
            # in the public cloud: never what a connection string with its own endpoints means.
            raise ConfigurationError(
                f"{STORAGE_CONNECTION_STRING} names a TableEndpoint but no QueueEndpoint: runs travel "
                "through a storage queue, so give the queue service's endpoint too."
            )
        if not (connection_string or account_url):
            raise ConfigurationError(
                f"Neither {STORAGE_ACCOUNT_URL} nor {STORAGE_CONNECTION_STRING} is set: give the table "
                "endpoint to reach storage as the managed identity, or a connection string "
                "(UseDevelopmentStorage=true for Azurite)."
            )
        prefix = env.get(TABLE_PREFIX, "").strip()
        if prefix and not _TABLE_PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                f"{TABLE_PREFIX} must be 1-51 letters or digits starting with a letter, got {prefix!r}."
            )
        queue = env.get(RUNS_QUEUE, "").strip() or "runs"
        if not _QUEUE_NAME.fullmatch(queue):
            raise ConfigurationError(
                f"{RUNS_QUEUE} must be a storage queue name (3-63 lowercase letters, digits and single "
                f"hyphens), got {queue!r}."
            )
        ingest_queue = env.get(INGEST_QUEUE, "").strip() or "ingestion"
        if not _QUEUE_NAME.fullmatch(ingest_queue) or ingest_queue == queue:
            raise ConfigurationError(
                f"{INGEST_QUEUE} must be a storage queue name (3-63 lowercase letters, digits and single "
                f"hyphens) other than the runs queue's, got {ingest_queue!r}."
            )
        lease = env.get(INGEST_LEASE_SECONDS, "").strip() or "600"
        if not lease.isdigit() or not 1 <= int(lease) <= 1800:
            raise ConfigurationError(f"{INGEST_LEASE_SECONDS} must be a number of seconds from 1 to 1800.")
        expiry = env.get(RUN_EXPIRY_SECONDS, "").strip() or "600"  # OpenAI's 10 minutes, and the most
        if not expiry.isdigit() or not 1 <= int(expiry) <= 600:
            raise ConfigurationError(f"{RUN_EXPIRY_SECONDS} must be a number of seconds from 1 to 600.")
        heartbeat = env.get(STREAM_HEARTBEAT_SECONDS, "").strip() or "15"
        try:
            heartbeat_seconds = float(heartbeat)
        except ValueError:
            heartbeat_seconds = 0
        if not 0.1 <= heartbeat_seconds <= 60:
            raise ConfigurationError(
                f"{STREAM_HEARTBEAT_SECONDS} must be a number of seconds from 0.1 to 60."
            )
        dimensions = env.get(EMBEDDINGS_DIMENSIONS, "").strip() or "256"
        if not dimensions.isdigit() or not 1 <= int(dimensions) <= MAX_EMBEDDINGS_DIMENSIONS:
            raise ConfigurationError(
                f"{EMBEDDINGS_DIMENSIONS} must be a whole number from 1 to {MAX_EMBEDDINGS_DIMENSIONS}."
            )
        return cls(
            api_keys=keys,
            storage_connection_string=connection_string,
            storage_account_url=account_url,
            table_prefix=prefix,
            runs_queue=queue,
            ingest_queue=ingest_queue,
            ingest_lease_seconds=int(lease),
            queue_service_url=env.get(QUEUE_SERVICE_URL, "").strip() or None,
            blob_service_url=env.get(BLOB_SERVICE_URL, "").strip() or None,
            model_base_url=env.get(MODEL_BASE_URL, "").strip() or None,
            model_api_key=env.get(MODEL_API_KEY, "").strip() or None,
            run_expiry_seconds=int(expiry),
            stream_heartbeat_seconds=heartbeat_seconds,
            sandbox=SandboxSettings.from_environ(env, keys),
            embeddings_model=env.get(EMBEDDINGS_MODEL, "").strip() or "text-embedding-3-large",
            embeddings_dimensions=int(dimensions),
        )

"""Telemetry to Application Insights through OpenTelemetry, when the app setting
APPLICATIONINSIGHTS_CONNECTION_STRING is present (in Azure). Ingestion authenticates as the app's
managed identity, since the Application Insights resource accepts no key-based writes.

What is recorded: the Functions host's request spans, this app's storage calls (dependencies)
and the `assistants` logger (one line a request: method, path, status, time, request id). Each
request's span carries its `x-request-id`. Never recorded: API keys and request or response
bodies; nothing here logs headers or content, and the storage SDK's own request logging is off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
REQUEST_ID = "assistants.request_id"
LOGGER = "assistants"

_enabled = False


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Start exporting, if a connection string is set; whether telemetry is on."""
    global _enabled
    connection_string = (os.environ if environ is None else environ).get(CONNECTION_STRING, "").strip()
    if not connection_string or _enabled:
        return _enabled
    # Imported here: these are heavy, and only a deployment pays for them.
    from azure.identity import DefaultAzureCredential
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=connection_string, credential=DefaultAzureCredential(), logger_name=LOGGER
    )
    _enabled = True
    return True


def enable_request_ids() -> None:
    """Tag spans with request ids from now on, for an OpenTelemetry set up elsewhere."""
    global _enabled
    _enabled = True


def tag_request(request_id: str) -> None:
    """Put the request id on the current span, so traces match the id the client was given."""
    if _enabled:
        from opentelemetry import trace

        trace.get_current_span().set_attribute(REQUEST_ID, request_id)

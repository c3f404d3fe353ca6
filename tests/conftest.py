"""Session-wide servers and clients; see support.py for how they are run."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from tests.support import API_KEYS, Azurite, DevHost, free_port, running_devhost, sdk_clients


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def devhost(azurite: Azurite) -> Iterator[DevHost]:
    with running_devhost(azurite.connection_string) as host:
        yield host


@pytest.fixture(params=["azure", "openai"])
def client(request: pytest.FixtureRequest, devhost: DevHost) -> OpenAI:
    """Each test that takes `client` runs once with AzureOpenAI and once with OpenAI."""
    return sdk_clients(devhost)[request.param]


@pytest.fixture
def http(devhost: DevHost) -> Iterator[httpx.Client]:
    """Raw HTTP with a valid key, for what the SDK would hide (status lines, error bodies)."""
    with httpx.Client(base_url=devhost.api_url, headers={"api-key": API_KEYS[0]}, timeout=60) as c:
        yield c

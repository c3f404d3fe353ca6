"""Session-wide servers and clients; see support.py for how they are run."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from tests.model_server import ModelServer
from tests.support import API_KEYS, Azurite, DevHost, free_port, running_devhost, sdk_clients


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def model(model_server: ModelServer) -> ModelServer:
    """The scripted chat-completions server the dev hosts run assistants on, reset for each test."""
    model_server.reset()
    return model_server


@pytest.fixture(scope="session")
def devhost(azurite: Azurite, model_server: ModelServer) -> Iterator[DevHost]:
    with running_devhost(
        azurite.connection_string,
        ASSISTANTS_MODEL_BASE_URL=model_server.base_url,
        ASSISTANTS_STREAM_HEARTBEAT_SECONDS="1",  # heartbeats in every stream the tests read
    ) as host:
        yield host


@pytest.fixture(scope="session")
def expiring_host(azurite: Azurite, model_server: ModelServer) -> Iterator[DevHost]:
    """A dev host whose runs expire 3 seconds after their creation."""
    with running_devhost(
        azurite.connection_string,
        ASSISTANTS_MODEL_BASE_URL=model_server.base_url,
        ASSISTANTS_RUN_EXPIRY_SECONDS="3",
    ) as host:
        yield host


@pytest.fixture(scope="session")
def no_model_host(azurite: Azurite) -> Iterator[DevHost]:
    """A dev host with no model backend configured."""
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

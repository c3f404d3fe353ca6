"""Storage failing in the middle of a multi-step write: afterwards the object is whole or absent,
and making the same call again succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from tests.support import API_KEYS, Azurite, DevHost, FaultyProxy, running_devhost, stored_rows

MESSAGES = 1200  # 2,400 rows: about 25 transactions to create, 24 to delete


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(azurite.port, azurite.queue_port)
    yield proxy
    proxy.close()


@pytest.fixture
def host(proxy: FaultyProxy) -> Iterator[DevHost]:
    """A dev host reaching Azurite through the proxy."""
    with running_devhost(proxy.connection_string) as host:
        yield host


@pytest.fixture
def http(host: DevHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=120) as client:
        assert client.post("/threads", json={}).status_code == 200  # tables exist, connections warm
        yield client


def thread_rows(azurite: Azurite, table_prefix: str) -> int:
    table = TableClient.from_connection_string(azurite.connection_string, table_prefix + "threads")
    return sum(1 for _ in table.query_entities("RowKey eq @t", parameters={"t": "t"}, select=["RowKey"]))


def all_messages(http: httpx.Client, thread_id: str) -> list[str]:
    texts: list[str] = []
    params: dict[str, Any] = {"order": "asc", "limit": 100}
    while True:
        page = http.get(f"/threads/{thread_id}/messages", params=params).json()
        texts += [m["content"][0]["text"]["value"] for m in page["data"]]
        if not page["has_more"]:
            return texts
        params["after"] = page["last_id"]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert response.json()["error"]["code"] == "service_unavailable"


def test_thread_creation_cut_short_shows_nothing_and_a_retry_succeeds(
    azurite: Azurite, proxy: FaultyProxy, host: DevHost, http: httpx.Client
) -> None:
    prefix = host.table_prefix
    body = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(MESSAGES)]}
    threads_before = thread_rows(azurite, prefix)

    proxy.fail_after(10)  # ten transactions land, then storage goes away
    assert_unavailable(http.post("/threads", json=body))
    proxy.heal()
    assert thread_rows(azurite, prefix) == threads_before  # no thread: its messages cannot be reached

    retried = http.post("/threads", json=body)
    assert retried.status_code == 200
    assert all_messages(http, retried.json()["id"]) == [f"m{i}" for i in range(MESSAGES)]
    assert thread_rows(azurite, prefix) == threads_before + 1


@pytest.mark.parametrize(
    ("allowed", "thread_survives"),
    [(1, True), (5, False)],
    ids=["cut-before-the-swap", "cut-while-purging"],
)
def test_thread_deletion_cut_short_is_whole_or_gone_and_a_retry_finishes(
    azurite: Azurite,
    proxy: FaultyProxy,
    host: DevHost,
    http: httpx.Client,
    allowed: int,
    thread_survives: bool,
) -> None:
    body = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(MESSAGES)]}
    thread = http.post("/threads", json=body).json()
    table = host.table_prefix + "threads"

    proxy.fail_after(allowed)
    assert_unavailable(http.delete(f"/threads/{thread['id']}"))
    proxy.heal()
    if thread_survives:  # whole: the thread and every message
        assert http.get(f"/threads/{thread['id']}").json() == thread
        assert len(all_messages(http, thread["id"])) == MESSAGES
    else:  # gone, at once, though rows remain to be removed
        assert http.get(f"/threads/{thread['id']}").status_code == 404
        assert http.get(f"/threads/{thread['id']}/messages").status_code == 404
        assert stored_rows(azurite.connection_string, table, thread["id"]) > 0

    retried = http.delete(f"/threads/{thread['id']}")
    assert retried.status_code == 200 and retried.json()["deleted"] is True
    assert stored_rows(azurite.connection_string, table, thread["id"]) == 0
    assert http.delete(f"/threads/{thread['id']}").status_code == 404

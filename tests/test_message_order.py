"""Messages list in the order the service accepted them: concurrently, across instances whose
clocks disagree, across page boundaries, and at the cost of one page however long the thread."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from openai import OpenAI

from assistants_core import ids
from assistants_core.models import CreateMessageRequest, CreateThreadRequest
from assistants_core.pagination import ListQuery
from tests.support import Azurite, DevHost, StorageMeter, in_process_service, sdk_clients, text_of

COUNT = 25


def walk(client: OpenAI, thread_id: str, order: str, limit: int) -> list[str]:
    seen: list[str] = []
    params: dict[str, Any] = {"order": order, "limit": limit}
    while True:
        page = client.beta.threads.messages.list(thread_id, **params)
        seen += [m.id for m in page.data]
        if not page.has_more:
            return seen
        params["after"] = page.data[-1].id


def test_48_concurrent_creates_all_land_in_one_order(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    with ThreadPoolExecutor(48) as pool:
        created = list(
            pool.map(
                lambda i: client.beta.threads.messages.create(thread.id, role="user", content=str(i)).id,
                range(48),
            )
        )
    assert len(set(created)) == 48
    ascending = walk(client, thread.id, "asc", 10)
    assert sorted(ascending) == sorted(created)
    assert ascending == sorted(ascending)  # ids carry the accepted order
    assert walk(client, thread.id, "desc", 7) == ascending[::-1]
    assert [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=100)] == ascending


def test_order_is_acceptance_order_across_instances_with_skewed_clocks(
    azurite: Azurite, devhost: DevHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dev host has the true clock; an in-process instance runs an hour ahead, then a day
    behind. Messages still list in the order they were accepted."""
    client = sdk_clients(devhost)["openai"]
    other = in_process_service(azurite.connection_string, devhost.table_prefix)
    thread = client.beta.threads.create()
    accepted: list[str] = []
    true_now = ids.clock.now
    for i in range(6):
        accepted.append(client.beta.threads.messages.create(thread.id, role="user", content=f"true {i}").id)
        skew = 3600 * 10**9 if i % 2 == 0 else -86400 * 10**9
        monkeypatch.setattr(ids.clock, "now", lambda skew=skew: true_now() + skew)
        body = CreateMessageRequest.parse({"role": "user", "content": f"skewed {i}"})
        accepted.append(other.create_message(thread.id, body).id)
        monkeypatch.setattr(ids.clock, "now", true_now)
    listed = client.beta.threads.messages.list(thread.id, order="asc", limit=100).data
    assert [m.id for m in listed] == accepted
    created_at = [m.created_at for m in listed]
    assert created_at != sorted(created_at)  # the clocks did disagree


@pytest.fixture(scope="module")
def listed_thread(devhost: DevHost) -> Iterator[tuple[str, list[str]]]:
    client = sdk_clients(devhost)["openai"]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(10)])
    for i in range(10, COUNT):
        client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}")
    created = [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", limit=100)]
    assert len(created) == COUNT
    yield thread.id, created


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_both_cursors_across_page_boundaries(
    client: OpenAI, listed_thread: tuple[str, list[str]], order: str
) -> None:
    thread_id, created = listed_thread
    expected = created if order == "asc" else created[::-1]
    assert walk(client, thread_id, order, 7) == expected

    def page(**params: Any) -> tuple[list[str], bool]:
        result = client.beta.threads.messages.list(thread_id, order=order, **params)  # type: ignore[arg-type]
        return [m.id for m in result.data], bool(result.has_more)

    assert page(limit=5, before=expected[12]) == (expected[7:12], True)
    assert page(limit=20, before=expected[12]) == (expected[:12], False)
    assert page(limit=5, after=expected[12]) == (expected[13:18], True)
    assert page(limit=100, after=expected[3], before=expected[9]) == (expected[4:9], False)
    assert page(limit=5, before=expected[0]) == ([], False)
    assert page(limit=5, after=expected[-1]) == ([], False)


def test_cursors_stay_valid_while_messages_are_added(client: OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"old {i}"} for i in range(9)])
    seen: list[str] = []
    added: list[str] = []
    params: dict[str, Any] = {"order": "asc", "limit": 4}
    while True:
        if len(added) < 3:  # one more message lands between each of the first page reads
            added.append(client.beta.threads.messages.create(thread.id, role="user", content="new").id)
        page = client.beta.threads.messages.list(thread.id, **params)
        seen += [m.id for m in page.data]
        if not page.has_more:
            break
        params["after"] = page.data[-1].id
    texts = [text_of(m) for m in client.beta.threads.messages.list(thread.id, order="asc")]
    assert texts == [f"old {i}" for i in range(9)] + ["new"] * 3
    assert seen == [m.id for m in client.beta.threads.messages.list(thread.id, order="asc")]
    assert seen[-3:] == added


def test_a_page_of_a_long_thread_costs_what_a_page_of_a_short_one_does(
    azurite: Azurite, devhost: DevHost
) -> None:
    meter = StorageMeter()
    service = in_process_service(azurite.connection_string, devhost.table_prefix, meter)

    def thread_of(count: int) -> tuple[str, list[str]]:
        body = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(count)]}
        thread = service.create_thread(CreateThreadRequest.parse(body))
        page = service.list_messages(thread.id, ListQuery(limit=100, order="asc"), None)
        first = [m.id for m in page.data]
        return thread.id, first

    costs: dict[int, list[tuple[int, int]]] = {}
    for count in (30, 10_000):
        thread_id, first = thread_of(count)
        costs[count] = []
        for params in (
            {},
            {"order": "asc"},
            {"after": first[15]},
            {"before": first[15]},
            {"order": "asc", "after": first[3]},
            {"order": "asc", "before": first[25]},
        ):
            meter.reset()
            page = service.list_messages(
                thread_id, ListQuery.from_params({"limit": "10", **params}, "msg"), None
            )
            assert len(page.data) == 10
            costs[count].append((meter.requests, meter.rows))
    assert costs[10_000] == costs[30]
    # A page from the start proves the thread exists in the same query (its sentinel row heads
    # the range); a page from a cursor checks the thread row beside it. Ascending pages read the
    # index, then the data.
    assert [requests for requests, _ in costs[30]] == [1, 2, 2, 3, 3, 2]
    assert all(rows <= 1 + 2 * 12 for _, rows in costs[30])


def test_run_filter_does_not_read_the_thread(azurite: Azurite, devhost: DevHost) -> None:
    meter = StorageMeter()
    service = in_process_service(azurite.connection_string, devhost.table_prefix, meter)
    body = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(500)]}
    thread = service.create_thread(CreateThreadRequest.parse(body))
    meter.reset()
    run_id = "run_" + secrets.token_hex(12)
    assert service.list_messages(thread.id, ListQuery(limit=20), run_id).data == []
    assert (meter.requests, meter.rows) == (2, 1 + 21)  # the thread row, then one index query

"""Listing assistants: both orders, both cursors, page boundaries, strict creation order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from assistants_core import ids
from assistants_core.models import CreateAssistantRequest
from assistants_core.pagination import ListQuery
from tests.support import API_KEYS, DevHost, StorageMeter, in_process_service, running_devhost, sdk_clients

COUNT = 25


@pytest.fixture(scope="module")
def listing(azurite: Any) -> Iterator[tuple[DevHost, list[str]]]:
    """A dev host on tables of its own holding exactly COUNT assistants, ids in creation order."""
    with running_devhost(azurite.connection_string) as host:
        client = sdk_clients(host)["openai"]
        created = [client.beta.assistants.create(model="m", name=f"a{i}").id for i in range(COUNT)]
        yield host, created


@pytest.fixture(params=["azure", "openai"])
def lclient(request: pytest.FixtureRequest, listing: tuple[DevHost, list[str]]) -> OpenAI:
    return sdk_clients(listing[0])[request.param]


def page(client: OpenAI, **params: Any) -> tuple[list[str], Any]:
    result = client.beta.assistants.list(**params)
    return [a.id for a in result.data], result


def test_default_is_newest_first_twenty(lclient: OpenAI, listing: tuple[DevHost, list[str]]) -> None:
    created = listing[1]
    got, result = page(lclient)
    assert got == created[::-1][:20]
    assert result.has_more is True
    assert (result.first_id, result.last_id) == (got[0], got[-1])


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_after_walks_every_page_in_order(
    lclient: OpenAI, listing: tuple[DevHost, list[str]], order: str
) -> None:
    expected = listing[1] if order == "asc" else listing[1][::-1]
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"order": order, "limit": 7}
        if after:
            params["after"] = after
        got, result = page(lclient, **params)
        seen += got
        if not result.has_more:
            break
        after = got[-1]
    assert seen == expected
    # The SDK's own auto-pagination follows the same cursors.
    assert [a.id for a in lclient.beta.assistants.list(order=order, limit=4)] == expected  # type: ignore[arg-type,unused-ignore]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_before_returns_the_page_just_ahead_of_the_cursor(
    lclient: OpenAI, listing: tuple[DevHost, list[str]], order: str
) -> None:
    expected = listing[1] if order == "asc" else listing[1][::-1]
    cursor = expected[12]
    got, result = page(lclient, order=order, limit=5, before=cursor)
    assert got == expected[7:12]
    assert result.has_more is True  # seven more lie further back
    got, result = page(lclient, order=order, limit=20, before=cursor)
    assert got == expected[:12]
    assert result.has_more is False
    got, result = page(lclient, order=order, limit=5, before=expected[0])
    assert got == [] and result.has_more is False


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_after_and_before_together_bound_the_page(
    lclient: OpenAI, listing: tuple[DevHost, list[str]], order: str
) -> None:
    expected = listing[1] if order == "asc" else listing[1][::-1]
    got, result = page(lclient, order=order, limit=100, after=expected[3], before=expected[9])
    assert got == expected[4:9]
    assert result.has_more is False


def test_empty_page_envelope(listing: tuple[DevHost, list[str]]) -> None:
    host, created = listing
    with httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}) as http:
        body = http.get("/assistants", params={"after": created[0], "order": "desc"}).json()
        assert body == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
        full = http.get("/assistants", params={"limit": 100, "order": "asc"}).json()
        assert [a["id"] for a in full["data"]] == created
        assert (full["first_id"], full["last_id"], full["has_more"]) == (created[0], created[-1], False)


def test_cursor_of_a_deleted_assistant_still_marks_its_place(
    listing: tuple[DevHost, list[str]], azurite: Any
) -> None:
    host, created = listing
    client = sdk_clients(host)["azure"]
    extra = client.beta.assistants.create(model="m").id
    client.beta.assistants.delete(extra)
    got, _ = page(client, order="desc", limit=3, after=extra)
    assert got == created[::-1][:3]


def test_same_millisecond_creations_list_in_creation_order(
    azurite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty assistants created with the wall clock stuck on one instant still list in the order
    they were created: through the service in-process, read back over HTTP."""
    with running_devhost(azurite.connection_string) as host:
        service = in_process_service(azurite.connection_string, host.table_prefix)
        frozen = time.time_ns()
        monkeypatch.setattr(ids.clock, "now", lambda: frozen)
        created = [
            service.create_assistant(CreateAssistantRequest.parse({"model": "m", "name": str(i)})).id
            for i in range(50)
        ]
        monkeypatch.undo()
        client = sdk_clients(host)["openai"]
        assert [a.id for a in client.beta.assistants.list(order="asc", limit=100)] == created
        assert [a.id for a in client.beta.assistants.list(order="desc", limit=100)] == created[::-1]
        assert [a.name for a in client.beta.assistants.list(order="asc", limit=100)] == [
            str(i) for i in range(50)
        ]


def test_a_page_costs_two_queries_of_about_limit_rows_wherever_it_starts(azurite: Any) -> None:
    meter = StorageMeter()
    service = in_process_service(azurite.connection_string, meter=meter)
    created = [service.create_assistant(CreateAssistantRequest.parse({"model": "m"})).id for _ in range(300)]
    for order in ("asc", "desc"):
        listed = created if order == "asc" else created[::-1]  # positions in the requested order
        cursors: list[dict[str, str]] = [
            {},
            {"after": listed[150]},
            {"before": listed[150]},
            {"after": listed[20]},
            {"after": listed[280]},
            {"before": listed[20]},
            {"before": listed[280]},
            {"after": listed[40], "before": listed[260]},
        ]
        for cursor in cursors:
            meter.reset()
            page = service.list_assistants(
                ListQuery.from_params({"limit": "10", "order": order, **cursor}, "asst")
            )
            assert len(page.data) == 10 and page.has_more, (order, cursor)
            assert meter.requests <= 2, (order, cursor, meter.requests)
            assert meter.rows <= 2 * 11, (order, cursor, meter.rows)

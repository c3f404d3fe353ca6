"""The per-run index that the `run_id` filter reads: runs will write through it (storage level,
on Azurite), so its pages, cursors and deletes are checked here before any run exists."""

from __future__ import annotations

import json
import secrets

from assistants_core import ids
from assistants_core.models import CreateThreadRequest
from assistants_core.service import Service
from assistants_core.storage import Order, next_message
from tests.support import Azurite, in_process_store, stored_rows


def test_a_runs_messages_page_by_run_in_both_orders_and_leave_with_their_message(azurite: Azurite) -> None:
    prefix = "t" + secrets.token_hex(4)
    table = prefix + "threads"
    store = in_process_store(azurite.connection_string, prefix)  # where runs will write; no run API yet
    thread_id = Service(store).create_thread(CreateThreadRequest.parse({})).id
    run, other = "run_" + "A" * 24, "run_" + "B" * 24
    added: dict[str, list[str]] = {run: [], other: [], "": []}
    for i in range(15):
        owner = [run, other, ""][i % 3]
        thread = store.threads().get(thread_id)
        assert thread is not None
        message_id = ids.sequential_id(ids.MESSAGE, next_message(thread))
        document = json.dumps({"id": message_id, "n": i}).encode()
        store.threads().add_message(thread, message_id, document, run_id=owner or None)
        added[owner].append(message_id)

    messages = store.threads().messages(thread_id)

    def page(order: Order, limit: int, after: str | None = None, before: str | None = None) -> list[str]:
        documents, _ = messages.page(order, limit, after, before, group=run)
        return [json.loads(d)["id"] for d in documents]

    mine = added[run]
    assert page("asc", 10) == mine
    assert page("desc", 10) == mine[::-1]
    assert page("asc", 2, after=mine[1]) == mine[2:4]
    assert page("desc", 2, before=mine[1]) == mine[3:1:-1]
    documents, more = messages.page("asc", 3, None, None, group=run)
    assert len(documents) == 3 and more is True

    record = messages.get(mine[2])
    assert record is not None
    rows_before = stored_rows(azurite.connection_string, table, thread_id)
    messages.delete(mine[2], record)
    # Its data row, its index row and both of its run's index rows: nothing left to dangle.
    assert stored_rows(azurite.connection_string, table, thread_id) == rows_before - 4
    assert page("asc", 10) == mine[:2] + mine[3:]
    everything, _ = messages.page("asc", 20, None, None)
    assert len(everything) == 14  # the message went from the thread as well as from its run

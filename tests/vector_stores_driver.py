"""Vector stores as `openai==1.58.1` sees them: `client.beta.vector_stores` (the same routes the
current SDK reaches at `client.vector_stores`). Run as a script under that SDK's venv by
tests/test_vector_stores.py; it imports nothing but the SDK and the standard library and prints
what it saw as JSON:

    python tests/vector_stores_driver.py '{"base_url": ..., "api_key": ...}'
"""

from __future__ import annotations

import json
import sys
from typing import Any

import openai
from openai import OpenAI


def drive(client: OpenAI) -> dict[str, Any]:
    stores: Any = client.beta.vector_stores  # type: ignore[attr-defined]  # 1.58.1 has it
    tides = client.files.create(
        file=("tides.txt", b"Ocean tides are caused by the gravitational pull of the moon."),
        purpose="assistants",
    )
    store = stores.create(name="old sdk", file_ids=[tides.id])
    attached = stores.files.upload_and_poll(
        vector_store_id=store.id, file=("bees.txt", b"Honey bees dance to show where flowers are.")
    )
    batch = stores.file_batches.upload_and_poll(
        store.id, files=[("volcano.md", b"# Volcanoes\nLava flows from a volcano's vent.")]
    )
    polled = stores.files.poll(tides.id, vector_store_id=store.id)
    listed = [f.id for f in stores.files.list(store.id, filter="completed")]
    retrieved = stores.retrieve(store.id)
    updated = stores.update(store.id, name="renamed")
    detached = stores.files.delete(attached.id, vector_store_id=store.id)
    deleted = stores.delete(store.id)
    return {
        "sdk": openai.__version__,
        "attached": attached.status,
        "batch": [batch.status, batch.file_counts.completed, batch.file_counts.total],
        "polled": polled.status,
        "listed": len(listed),
        "counts": [retrieved.file_counts.completed, retrieved.file_counts.total, retrieved.status],
        "name": updated.name,
        "detached": detached.deleted,
        "deleted": deleted.deleted,
    }


if __name__ == "__main__":
    options = json.loads(sys.argv[1])
    client = OpenAI(base_url=options["base_url"], api_key=options["api_key"], max_retries=0)
    print(json.dumps(drive(client)))

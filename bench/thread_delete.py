"""How long creating and deleting a thread takes as it grows: 100, 1,000 and 10,000 messages.

    .venv/bin/python -m bench.thread_delete

Starts its own in-memory Azurite and dev host; creates each thread in one request (initial
messages), deletes it through the API, and checks its rows are gone from storage.
"""

from __future__ import annotations

import time

from openai import OpenAI

from tests.support import Azurite, free_port, running_devhost, sdk_clients, stored_rows


def main() -> None:
    azurite = Azurite(free_port())
    azurite.start()
    try:
        with running_devhost(azurite.connection_string) as host:
            client: OpenAI = sdk_clients(host)["openai"].with_options(timeout=600)
            print(f"{'messages':>9} {'create s':>9} {'delete s':>9} {'rows before':>12} {'rows after':>11}")
            for count in (100, 1_000, 10_000):
                messages = [{"role": "user", "content": f"message {i}"} for i in range(count)]
                started = time.perf_counter()
                thread = client.beta.threads.create(messages=messages)  # type: ignore[arg-type]
                created = time.perf_counter() - started
                rows = stored_rows(azurite.connection_string, host.table_prefix + "threads", thread.id)
                started = time.perf_counter()
                assert client.beta.threads.delete(thread.id).deleted
                deleted = time.perf_counter() - started
                left = stored_rows(azurite.connection_string, host.table_prefix + "threads", thread.id)
                print(f"{count:>9,} {created:>9.2f} {deleted:>9.2f} {rows:>12,} {left:>11,}")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()

"""Load: N concurrent clients for T seconds against the dev host on Azurite, then proof that
nothing acknowledged was lost, reordered or resurrected.

    .venv/bin/python -m bench.load [--clients 16] [--seconds 30] [--hot-threads 3]   (make load)

Each client mixes creates, lists, retrieves, modifies and deletes of messages (on threads of its
own and on a few hot threads every client writes to), assistants and threads. Afterwards, read
only through the API:
  - every acknowledged message, assistant and thread is there, with its last acknowledged change;
  - messages list in an order consistent with acknowledgement: a message acknowledged before
    another was sent is listed before it;
  - everything whose deletion was acknowledged is gone.
Prints requests/s, latency percentiles, errors by status and the dev host's peak memory; exits
non-zero on any 5xx, loss, reordering or resurrected delete.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support import API_KEYS, Azurite, free_port, running_devhost


@dataclass
class Ledger:
    """What the service acknowledged, as the clients saw it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    messages: dict[str, dict[str, tuple[float, float]]] = field(default_factory=lambda: defaultdict(dict))
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)  # message id -> last acknowledged
    deleted_messages: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    assistants: set[str] = field(default_factory=set)
    deleted_assistants: set[str] = field(default_factory=set)
    deleted_threads: set[str] = field(default_factory=set)


class Client:
    def __init__(self, base: str, ledger: Ledger, hot: list[str], seed: int) -> None:
        self.http = httpx.Client(base_url=base, headers={"api-key": API_KEYS[0]}, timeout=60)
        self.ledger = ledger
        self.hot = hot
        self.random = random.Random(seed)
        self.threads: list[str] = []
        self.mine: list[tuple[str, str]] = []  # (thread, message) this client created and has not deleted

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, float, float]:
        started = time.monotonic()
        response = self.http.request(method, path, **kwargs)
        done = time.monotonic()
        with self.ledger.lock:
            self.ledger.latencies.append(done - started)
            self.ledger.statuses[response.status_code] += 1
        return response, started, done

    def step(self) -> None:
        r = self.random.random()
        if r < 0.30 or not self.mine:
            self.create_message()
        elif r < 0.50:
            thread = self.random.choice(self.hot + self.threads)
            self.call(
                "GET",
                f"/threads/{thread}/messages",
                params={"limit": 20, "order": self.random.choice(["asc", "desc"])},
            )
        elif r < 0.62:
            thread, message = self.random.choice(self.mine)
            self.call("GET", f"/threads/{thread}/messages/{message}")
        elif r < 0.74:
            thread, message = self.random.choice(self.mine)
            value = {"v": str(self.random.random())}
            response, _, _ = self.call(
                "POST", f"/threads/{thread}/messages/{message}", json={"metadata": value}
            )
            if response.status_code == 200:
                with self.ledger.lock:
                    self.ledger.metadata[message] = value
        elif r < 0.82:
            thread, message = self.mine.pop(self.random.randrange(len(self.mine)))
            response, _, _ = self.call("DELETE", f"/threads/{thread}/messages/{message}")
            if response.status_code == 200:
                with self.ledger.lock:
                    self.ledger.deleted_messages[thread].add(message)
        elif r < 0.92:
            self.assistant_round()
        else:
            self.thread_round()

    def create_message(self) -> None:
        if not self.threads or self.random.random() < 0.05:
            response, _, _ = self.call(
                "POST", "/threads", json={"messages": [{"role": "user", "content": "hi"}]}
            )
            if response.status_code == 200:
                self.threads.append(response.json()["id"])
            return
        thread = (
            self.random.choice(self.hot) if self.random.random() < 0.5 else self.random.choice(self.threads)
        )
        response, started, done = self.call(
            "POST", f"/threads/{thread}/messages", json={"role": "user", "content": "x"}
        )
        if response.status_code == 200:
            message = response.json()["id"]
            self.mine.append((thread, message))
            with self.ledger.lock:
                self.ledger.messages[thread][message] = (started, done)

    def assistant_round(self) -> None:
        response, _, _ = self.call("POST", "/assistants", json={"model": "m", "name": "load"})
        if response.status_code != 200:
            return
        assistant = response.json()["id"]
        self.call("POST", f"/assistants/{assistant}", json={"temperature": 0.5})
        if (
            self.random.random() < 0.5
            and self.call("DELETE", f"/assistants/{assistant}")[0].status_code == 200
        ):
            with self.ledger.lock:
                self.ledger.deleted_assistants.add(assistant)
            return
        with self.ledger.lock:
            self.ledger.assistants.add(assistant)

    def thread_round(self) -> None:
        if len(self.threads) < 2:
            return
        thread = self.threads.pop(self.random.randrange(len(self.threads)))
        if self.call("DELETE", f"/threads/{thread}")[0].status_code == 200:
            self.mine = [(t, m) for t, m in self.mine if t != thread]
            with self.ledger.lock:
                self.ledger.deleted_threads.add(thread)
                self.ledger.messages.pop(thread, None)


def listed(http: httpx.Client, thread: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "asc", "limit": 100}
    while True:
        page = http.get(f"/threads/{thread}/messages", params=params).json()
        found += page["data"]
        if not page["has_more"]:
            return found
        params["after"] = page["last_id"]


def verify(http: httpx.Client, ledger: Ledger) -> dict[str, int]:
    problems: Counter[str] = Counter()
    for thread, acknowledged in ledger.messages.items():
        messages = listed(http, thread)
        position = {m["id"]: i for i, m in enumerate(messages)}
        gone = ledger.deleted_messages.get(thread, set())
        problems["lost messages"] += sum(1 for m in acknowledged if m not in gone and m not in position)
        problems["leaked deletes"] += sum(1 for m in gone if m in position)
        # Listed order must agree with acknowledgement: nothing listed after a message may have
        # been acknowledged before that message was sent.
        latest_start = float("-inf")
        for message in messages:
            if message["id"] in acknowledged:
                started, done = acknowledged[message["id"]]
                if done < latest_start:
                    problems["reordered messages"] += 1
                latest_start = max(latest_start, started)
            expected = ledger.metadata.get(message["id"])
            if expected is not None and message["metadata"] != expected:
                problems["lost modifies"] += 1
    for assistant in ledger.assistants:
        problems["lost assistants"] += http.get(f"/assistants/{assistant}").status_code != 200
    for assistant in ledger.deleted_assistants:
        problems["leaked deletes"] += http.get(f"/assistants/{assistant}").status_code != 404
    for thread in ledger.deleted_threads:
        problems["leaked deletes"] += http.get(f"/threads/{thread}").status_code != 404
    return dict(problems)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hot-threads", type=int, default=3)
    args = parser.parse_args()

    azurite = Azurite(free_port())
    azurite.start()
    try:
        with (
            running_devhost(azurite.connection_string) as host,
            httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=120) as http,
        ):
            hot = [http.post("/threads", json={}).json()["id"] for _ in range(args.hot_threads)]
            ledger = Ledger()
            stop = time.monotonic() + args.seconds
            clients = [Client(host.api_url, ledger, hot, seed) for seed in range(args.clients)]

            def run(client: Client) -> None:
                while time.monotonic() < stop:
                    client.step()

            workers = [threading.Thread(target=run, args=(c,)) for c in clients]
            started = time.monotonic()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.monotonic() - started
            problems = verify(http, ledger)
            peak = peak_rss_mb(host.pid)
    finally:
        azurite.stop()

    total = sum(ledger.statuses.values())
    server_errors = sum(n for status, n in ledger.statuses.items() if status >= 500)
    acknowledged = sum(len(m) for m in ledger.messages.values())
    print(f"clients {args.clients}, {args.seconds:.0f} s, {args.hot_threads} hot threads")
    print(f"requests {total}  ({total / elapsed:.0f}/s)")
    print(
        f"latency ms  p50 {percentile(ledger.latencies, 50):.1f}  p95 {percentile(ledger.latencies, 95):.1f}"
        f"  p99 {percentile(ledger.latencies, 99):.1f}"
    )
    print("statuses    " + "  ".join(f"{s}: {n}" for s, n in sorted(ledger.statuses.items())))
    deleted = len(ledger.deleted_assistants) + len(ledger.deleted_threads)
    print(
        f"checked     {acknowledged} acknowledged messages in {len(ledger.messages)} threads, "
        f"{len(ledger.assistants)} assistants, {deleted} deleted objects"
    )
    print(f"dev host peak RSS {peak:.0f} MiB")
    failures = {k: v for k, v in problems.items() if v} | ({"5xx": server_errors} if server_errors else {})
    print(
        "RESULT "
        + ("ok: zero 5xx, nothing lost, reordered or leaked" if not failures else f"FAILED {failures}")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

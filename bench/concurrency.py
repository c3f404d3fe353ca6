"""Concurrency: many keep-alive clients at once against one dev host on Azurite, and the event
loop's lag meanwhile.

    .venv/bin/python -m bench.concurrency [--clients 200] [--seconds 20]   (the last step of make bench)

Each client has an assistant and a thread of its own, made before the clock starts, and then,
until the time is up, reads and writes them one request after another: retrieve the assistant
(30 %), list the thread's newest 20 messages (30 %), add a message to the thread (20 %) or modify
the metadata of the assistant or the thread (20 %). Each client is an httpx.AsyncClient with one
keep-alive connection, all on one event loop in this process. The dev host's loop probe
(`GET /admin/devhost/loop`, a task that sleeps 50 ms and notes how late it wakes) is reset when
the clock starts and read when it stops: storage calls run on the edge's thread pool, not on the
loop, and the lag shows how long the loop still waits (docs/benchmarks.md says for what).

Prints requests, requests/s, latency percentiles (all calls and by call), errors, the loop's lag,
the cores the dev host, Azurite and this client used, and the dev host's peak memory; exits
non-zero on any error: a connection error, a timeout or any status but 200. The dev host's own
output goes to bench-concurrency.log in the temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.bench import peak_rss_mb
from tests.support import API_KEYS, Azurite, free_port, running_devhost

CALLS = ("retrieve assistant", "list messages (20)", "create message", "modify metadata")
REQUEST_TIMEOUT = 60.0
LOG = Path(tempfile.gettempdir()) / "bench-concurrency.log"  # the dev host's output


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in CALLS})
    errors: Counter[str] = field(default_factory=Counter)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def objects(http: httpx.AsyncClient) -> tuple[str, str]:
    """A client's own assistant and thread (of 3 messages)."""
    first = {"messages": [{"role": "user", "content": f"message {i}"} for i in range(3)]}
    ids = []
    for path, body in (("/assistants", {"model": "gpt-4o"}), ("/threads", first)):
        response = await http.post(path, json=body)
        assert response.status_code == 200, response.text[:300]
        ids.append(str(response.json()["id"]))
    return ids[0], ids[1]


async def client(
    http: httpx.AsyncClient, assistant: str, thread: str, seed: int, stop: float, tally: Tally
) -> None:
    rng = random.Random(seed)
    requests: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "retrieve assistant": lambda: http.get(f"/assistants/{assistant}"),
        "list messages (20)": lambda: http.get(f"/threads/{thread}/messages", params={"limit": 20}),
        "create message": lambda: http.post(
            f"/threads/{thread}/messages", json={"role": "user", "content": f"from client {seed}"}
        ),
        "modify metadata": lambda: http.post(
            rng.choice((f"/assistants/{assistant}", f"/threads/{thread}")),
            json={"metadata": {"n": str(rng.randrange(10**6))}},
        ),
    }
    while time.monotonic() < stop:
        name = rng.choices(CALLS, weights=(30, 30, 20, 20))[0]
        started = time.perf_counter()
        try:
            response = await requests[name]()
        except httpx.HTTPError as exc:  # connection refused or reset, timeout, protocol error
            tally.errors[f"{name}: {type(exc).__name__}"] += 1
            continue
        tally.latencies[name].append(time.perf_counter() - started)
        if response.status_code != 200:
            tally.errors[f"{name}: {response.status_code}"] += 1


async def run(
    api_url: str, base_url: str, clients: int, seconds: float, processes: dict[str, int]
) -> tuple[Tally, float, Any, dict[str, float]]:
    """The run's tally, its length, the loop's lag, and the cores each process used meanwhile."""
    options: dict[str, Any] = {
        "base_url": api_url,
        "headers": {"api-key": API_KEYS[0]},
        "timeout": REQUEST_TIMEOUT,
        "verify": ssl.create_default_context(),  # unused on plain HTTP, but costly to make per client
    }
    # Each client has an httpx client, so a keep-alive connection, of its own: a pool shared by
    # them all would cost this process far more (it scans every connection and waiting request
    # at each step), and would leave some connections idle while others are reused.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(httpx.AsyncClient(limits=one, **options)) for _ in range(clients)
        ]
        made = await asyncio.gather(*(objects(http) for http in https))
    # New connections for the run: the dev host (uvicorn) closes a connection idle for 5 s, and
    # a client reusing one just then would see it reset.
    async with contextlib.AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(httpx.AsyncClient(limits=one, **options)) for _ in range(clients)
        ]
        admin = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT))
        tally = Tally()
        (await admin.get("/admin/devhost/loop", params={"reset": "1"})).raise_for_status()
        processes = dict(processes, **{"this client": os.getpid()})
        cpu = {name: cpu_seconds(pid) for name, pid in processes.items()}
        started = time.monotonic()
        stop = started + seconds
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    client(http, assistant, thread, seed, stop, tally)
                    for seed, (http, (assistant, thread)) in enumerate(zip(https, made, strict=True))
                )
            ),
            seconds + 2 * REQUEST_TIMEOUT,  # every client stops by then whatever happens
        )
        elapsed = time.monotonic() - started
        cores = {name: (cpu_seconds(pid) - cpu[name]) / elapsed for name, pid in processes.items()}
        lag = (await admin.get("/admin/devhost/loop")).raise_for_status().json()
    return tally, elapsed, lag, cores


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    azurite = Azurite(free_port())
    azurite.start()
    LOG.unlink(missing_ok=True)
    try:
        with running_devhost(azurite.connection_string, log=LOG) as host:
            processes = {"dev host": host.pid, "Azurite (tables)": azurite.processes[0].pid}
            tally, elapsed, lag, cores = asyncio.run(
                run(host.api_url, host.base_url, args.clients, args.seconds, processes)
            )
            peak = peak_rss_mb(host.pid)
    finally:
        azurite.stop()

    ms = 1000
    every = [t for values in tally.latencies.values() for t in values]
    errors = sum(tally.errors.values())
    total = len(every) + errors
    lines = [
        f"6. concurrency: {args.clients} keep-alive clients for {args.seconds:.0f} s, "
        "one dev host on Azurite",
        f"{'call':<34}{'requests':>10}{'p50 ms':>9}{'p99 ms':>10}{'max ms':>9}",
    ]
    for name, values in [*tally.latencies.items(), ("all", every)]:
        lines.append(
            f"{name:<34}{len(values):>10,}{percentile(values, 0.5) * ms:>9.0f}"
            f"{percentile(values, 0.99) * ms:>10.0f}{max(values, default=float('nan')) * ms:>9.0f}"
        )
    lines.append(f"requests {total:,} in {elapsed:.1f} s: {total / elapsed:.0f}/s; errors {errors}")
    lines.append(
        f"event loop lag ({lag.get('samples', 0)} probes of 50 ms): p50 {lag.get('p50_ms')} ms, "
        f"p99 {lag.get('p99_ms')} ms, max {lag.get('max_ms')} ms"
    )
    used = ", ".join(f"{name} {n:.2f}" for name, n in cores.items())
    lines.append(f"cores used ({os.cpu_count()} in all): {used}")
    lines.append(f"dev host peak RSS: {peak:.0f} MiB")
    if errors:
        lines.append("FAILED: " + ", ".join(f"{what} x{n}" for what, n in sorted(tally.errors.items())))
    print("\n".join(lines))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

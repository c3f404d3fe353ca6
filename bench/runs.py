"""`make bench` (runs): what a run costs beyond the model it calls.

    .venv/bin/python -m bench.runs [--iterations 30] [--streams 100] [--seconds 20] [--cpu-runs 300]
    .venv/bin/python -m bench.runs --cpu-only [--cpu-runs 300]   # section 6 alone

Starts an in-memory Azurite, the scripted chat-completions server (tests/model_server.py) and
two dev hosts on it: one straight to Azurite, one whose table traffic goes through a counting
proxy. Each service measurement is interleaved with the same call made directly to the model
server (A/B, then B/A), with the same messages, so machine noise falls on both:

1. time to the first text delta: `runs.stream` against `chat.completions.create(stream=True)`;
   the whole stream; `create_and_poll` (its polling steered by `openai-poll-after-ms`) against
   one non-streamed completion;
2. storage requests (table requests counted at the proxy) of a streamed one-answer run and of a
   two-step function-call run, for a short and a 50-times longer answer;
3. 100 simultaneous streamed runs on one dev host against a model that takes 5 s per answer
   (its first word after 0.5 s), begun at one instant, then begun over 4 s (all still open
   together), then the 16 one Flex instance takes at once (perInstanceConcurrency): all
   complete, the time-to-first-delta overhead, peak memory; beside each begun at once, Azurite's
   own floor (the table requests a run makes before its first delta, straight to Azurite);
4. polled runs per second, clients looping on `create_and_poll` against an instant model;
5. `create_and_poll` with the poll interval the service could advise (`openai-poll-after-ms`):
   the latency each gives, for picking the one it does advise;
6. the CPU a streamed one-answer run costs the dev host process (user + system time from
   /proc/<pid>/stat, over `--cpu-runs` runs one after another on threads made beforehand).

Prints MISSED beside a target missed; exits non-zero only if a run fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from openai import AssistantEventHandler, OpenAI

from bench.bench import peak_rss_mb
from tests.model_server import ModelServer, Reply, Responder, call, text, tool_calls
from tests.support import (
    API_KEYS,
    Azurite,
    DevHost,
    FaultyProxy,
    connection_string,
    free_port,
    running_devhost,
)

ANSWER = " ".join(f"word{i}" for i in range(20))
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
}


# The HTTP requests one Flex Consumption instance takes at once (infra: perInstanceConcurrency):
# past it, Azure adds instances rather than queue more streams on one.
PER_INSTANCE = 16
# An ended run's row in the active-runs index is dropped after its stream ends, unwaited for.
SETTLE_SECONDS = 0.3
# The CPU a streamed one-answer run may cost the service process (issue 22).
CPU_TARGET_MS = 20
# How long the idle dev host is watched after the runs, for its own share of their window.
IDLE_SECONDS = 10.0


@dataclass
class Pair:
    name: str
    service: list[float]
    direct: list[float]
    target_ms: float

    @property
    def overhead_ms(self) -> float:
        return (statistics.median(self.service) - statistics.median(self.direct)) * 1000

    def row(self) -> str:
        service, direct = statistics.median(self.service) * 1000, statistics.median(self.direct) * 1000
        met = "met" if self.overhead_ms <= self.target_ms else "MISSED"
        return (
            f"{self.name:<38}{service:>9.1f}{direct:>9.1f}{self.overhead_ms:>10.1f}"
            f"{'<=' + format(self.target_ms, 'g'):>9}  {met}"
        )


def answer(body: dict[str, Any]) -> Reply:
    """Text, or a tool call when tools are offered and the last message is not a tool result."""
    last = body["messages"][-1]
    if body.get("tools") and last["role"] != "tool":
        return tool_calls(call("lookup", {"q": "x"}))
    return text(ANSWER)


class Handler(AssistantEventHandler):
    def __init__(self, started: float) -> None:
        super().__init__()
        self.started = started
        self.first_delta: float | None = None

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        if self.first_delta is None:
            self.first_delta = time.perf_counter() - self.started


def stream_run(client: OpenAI, assistant_id: str) -> tuple[float, float, str]:
    """(time to first delta, whole stream, status) of one streamed run on a new thread."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Count to twenty."}])
    started = time.perf_counter()
    handler = Handler(started)
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=handler
    ) as s:
        s.until_done()
        status = s.get_final_run().status
    return handler.first_delta or float("nan"), time.perf_counter() - started, status


def direct_stream(model: OpenAI) -> tuple[float, float]:
    started = time.perf_counter()
    first: float | None = None
    for chunk in model.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Count to twenty."},
        ],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started


def latency(client: OpenAI, model_client: OpenAI, iterations: int) -> list[Pair]:
    assistant_id = client.beta.assistants.create(model="m", instructions="Be brief.").id
    first = Pair("time to first text delta", [], [], 30)
    whole = Pair("whole stream", [], [], 60)
    polled = Pair("create_and_poll vs one completion", [], [], 300)
    for i in range(iterations):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            if side == 0:
                ttfd, total, status = stream_run(client, assistant_id)
                assert status == "completed", status
                first.service.append(ttfd)
                whole.service.append(total)
                thread = client.beta.threads.create(
                    messages=[{"role": "user", "content": "Count to twenty."}]
                )
                started = time.perf_counter()
                run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
                polled.service.append(time.perf_counter() - started)
                assert run.status == "completed", run.status
            else:
                ttfd, total = direct_stream(model_client)
                first.direct.append(ttfd)
                whole.direct.append(total)
                started = time.perf_counter()
                model_client.chat.completions.create(
                    model="m",
                    messages=[
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Count."},
                    ],
                )
                polled.direct.append(time.perf_counter() - started)
    return [first, whole, polled]


def storage_requests(host: DevHost, proxy: FaultyProxy, model: ModelServer) -> list[str]:
    client = OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0)
    plain = client.beta.assistants.create(model="m").id
    tooled = client.beta.assistants.create(model="m", tools=[TOOL]).id  # type: ignore[list-item]
    # One run first: the host's first model call imports the openai package (~2 s), during
    # which the cancel watch looks at the index every half second; a cold start, not a run's cost.
    stream_run_on(client, client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}]).id, plain)
    time.sleep(SETTLE_SECONDS)
    rows = []
    for words in (20, 1000):

        def respond(body: dict[str, Any], n: int = words) -> Reply:
            return answer(body) if body.get("tools") else text(" ".join(["w"] * n))

        model.respond_with(respond)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
        before = proxy.requests
        _, _, status = stream_run_on(client, thread.id, plain)
        time.sleep(SETTLE_SECONDS)
        rows.append(
            f"one-answer run, {words:>4}-word answer          {proxy.requests - before:>4}   ({status})"
        )
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
        before = proxy.requests
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=tooled) as s:
            s.until_done()
            run = s.get_final_run()
        assert run.required_action is not None
        calls = run.required_action.submit_tool_outputs.tool_calls
        outputs: Any = [{"tool_call_id": c.id, "output": "x"} for c in calls]
        with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread.id, run_id=run.id, tool_outputs=outputs
        ) as s:
            s.until_done()
            status = s.get_final_run().status
        time.sleep(SETTLE_SECONDS)
        rows.append(
            f"function-call run (2 steps), {words:>4} words   {proxy.requests - before:>4}   ({status})"
        )
    model.respond_with(answer)
    return rows


def stream_run_on(client: OpenAI, thread_id: str, assistant_id: str) -> tuple[float, float, str]:
    started = time.perf_counter()
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id) as s:
        s.until_done()
        return 0.0, time.perf_counter() - started, s.get_final_run().status


def slow(body: dict[str, Any]) -> Reply:
    """An answer that takes the model 5 s: ten words, half a second apart."""
    return text([f"w{i} " for i in range(10)], chunk_delay=0.5)


def concurrent_streams(
    host: DevHost, model: ModelServer, count: int, spread: float, target_ms: float
) -> tuple[list[str], bool]:
    """`count` streamed runs open at once against a model that takes 5 s per answer, begun
    together (`spread` 0) or one after another over `spread` seconds (less than an answer
    takes, so that all are still open together)."""
    model.respond_with(slow)
    model_client = OpenAI(base_url=model.base_url, api_key="x", max_retries=0)
    own = statistics.median(direct_stream(model_client)[0] for _ in range(3))  # the model's own first word
    client = OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0, timeout=120)
    assistant_id = client.beta.assistants.create(model="m").id
    threads = [
        client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}]).id for _ in range(count)
    ]
    results: list[tuple[float, float, float, str]] = []  # first delta, began, ended, status
    lock = threading.Lock()
    began = time.perf_counter() + 0.5

    def one(n: int, thread_id: str) -> None:
        time.sleep(max(0.0, began + spread * n / count - time.perf_counter()))
        started = time.perf_counter()
        handler = Handler(started)
        try:
            with client.beta.threads.runs.stream(
                thread_id=thread_id, assistant_id=assistant_id, event_handler=handler
            ) as s:
                s.until_done()
                status: str = s.get_final_run().status
        except Exception as exc:  # counted as a failure below
            status = f"error {type(exc).__name__}"
        with lock:
            results.append((handler.first_delta or float("nan"), started, time.perf_counter(), status))

    workers = [threading.Thread(target=one, args=(n, t)) for n, t in enumerate(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = max(ended for _, _, ended, _ in results) - began
    completed = sum(status == "completed" for *_, status in results)
    # The most streams open at one moment: at the latest start, how many had not ended.
    peak = max(sum(s <= start < e for _, s, e, _ in results) for _, start, _, _ in results)
    overheads = sorted((ttfd - own) * 1000 for ttfd, *_ in results)
    p95 = overheads[int(0.95 * (len(overheads) - 1))]
    model.respond_with(answer)
    met = "met" if completed == count and p95 <= target_ms else "MISSED"
    begun = "begun together" if spread == 0 else f"begun over {spread:.0f} s"
    rows = [
        f"{count} streamed runs, {begun}: {completed} completed in {wall:.1f} s, {peak} open at once"
        f" (5 s of model each, its first word after {own * 1000:.0f} ms)",
        f"  time to first delta over the model's, p50 {statistics.median(overheads):.0f} ms, p95 {p95:.0f} ms"
        f" (target <={target_ms:g})  {met}",
    ]
    return rows, completed == count


def azurite_floor(storage: str, count: int) -> str:
    """What Azurite alone puts under `count` runs begun at once: the table requests a streamed
    run makes before its first delta (the create transaction, the assistant's and the thread's
    reads, the index row, the prompt's history page, the open-message transaction: the
    executor starts from the thread as the create transaction left it), made by `count`
    threads of this process straight to Azurite with azure-data-tables, begun together; the
    p95 of the time each took."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(storage)
    table = service.create_table("floor" + os.urandom(4).hex())
    document = "x" * 1500

    def transaction(partition: str, first: int) -> None:
        table.submit_transaction(
            [
                ("upsert", {"PartitionKey": partition, "RowKey": f"r{first + i}", "d": document})
                for i in range(3)
            ]
        )

    spent: list[float] = []
    lock = threading.Lock()
    began = time.perf_counter() + 0.5

    def one(n: int) -> None:
        partition = f"p{n}"
        time.sleep(max(0.0, began - time.perf_counter()))
        transaction(partition, 0)
        table.get_entity(partition, "r0")
        table.get_entity(partition, "r1")
        table.upsert_entity({"PartitionKey": "index", "RowKey": partition})
        next(
            table.query_entities(
                "PartitionKey eq @p", parameters={"p": partition}, results_per_page=100
            ).by_page()
        )
        transaction(partition, 3)
        with lock:
            spent.append(time.perf_counter() - began)

    workers = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    service.delete_table(table.table_name)
    spent.sort()
    return (
        f"  Azurite's floor, {count} at once: the 7 table requests a run makes before its first delta,"
        f" straight to Azurite from {count} threads: p50 {statistics.median(spent) * 1000:.0f} ms,"
        f" p95 {spent[int(0.95 * (count - 1))] * 1000:.0f} ms"
    )


def polled_throughput(host: DevHost, seconds: float, clients: int = 16) -> str:
    client = OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0, timeout=120)
    assistant_id = client.beta.assistants.create(model="m").id
    done: list[str] = []
    stop = time.monotonic() + seconds

    def loop() -> None:
        thread_id = client.beta.threads.create().id
        while time.monotonic() < stop:
            client.beta.threads.messages.create(thread_id, role="user", content="Hi")
            done.append(
                client.beta.threads.runs.create_and_poll(
                    thread_id=thread_id, assistant_id=assistant_id
                ).status
            )

    began = time.monotonic()
    workers = [threading.Thread(target=loop) for _ in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - began
    failed = len(done) - done.count("completed")
    rate = len(done) / elapsed
    return f"polled runs: {len(done)} in {elapsed:.1f} s by {clients} clients, {rate:.1f}/s; {failed} failed"


def poll_intervals(host: DevHost, iterations: int) -> list[str]:
    """create_and_poll's latency if the service advised each interval (the SDK's own
    poll_interval_ms stands in for the header), interleaved."""
    client = OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0)
    assistant_id = client.beta.assistants.create(model="m").id
    intervals = (100, 250, 500, 1000)
    times: dict[int, list[float]] = {p: [] for p in intervals}
    for i in range(iterations):
        for interval in intervals if i % 2 == 0 else reversed(intervals):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
            started = time.perf_counter()
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=interval
            )
            times[interval].append(time.perf_counter() - started)
            assert run.status == "completed", run.status
    rows = []
    for interval, spent in times.items():
        median, p90 = statistics.median(spent) * 1000, sorted(spent)[int(0.9 * (len(spent) - 1))] * 1000
        reads = median / interval + 1
        rows.append(
            f"poll every {interval:>4} ms: median {median:6.0f} ms, p90 {p90:6.0f} ms, ~{reads:.1f} reads"
        )
    return rows


def cpu_per_run(host: DevHost, runs: int) -> str:
    """The dev host's CPU (user + system, from /proc) per streamed one-answer run: `runs` runs
    one after another, each on a thread made beforehand, so that only the runs are counted."""
    client = OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0)
    assistant_id = client.beta.assistants.create(model="m", instructions="Be brief.").id
    threads = [
        client.beta.threads.create(messages=[{"role": "user", "content": "Count to twenty."}]).id
        for _ in range(runs + 5)
    ]
    for thread_id in threads[:5]:  # warm the run path
        stream_run_on(client, thread_id, assistant_id)
    time.sleep(SETTLE_SECONDS)
    before, started = process_cpu_seconds(host.pid), time.monotonic()
    for thread_id in threads[5:]:
        _, _, status = stream_run_on(client, thread_id, assistant_id)
        assert status == "completed", status
    time.sleep(SETTLE_SECONDS)  # each run's index row is dropped after its stream ends
    spent = (process_cpu_seconds(host.pid) - before) / runs * 1000
    # The dev host's own idle work (its queue listeners' polling, its loop-lag probe: in Azure
    # the Functions host's, not the worker's) is in that window too: said beside it.
    window = time.monotonic() - started
    idle_before = process_cpu_seconds(host.pid)
    time.sleep(IDLE_SECONDS)
    idle = (process_cpu_seconds(host.pid) - idle_before) / IDLE_SECONDS * window / runs * 1000
    met = "met" if spent <= CPU_TARGET_MS else "MISSED"
    return (
        f"CPU per streamed one-answer run (dev host, {runs} runs): {spent:.1f} ms"
        f" (target <={CPU_TARGET_MS:g})  {met}; of it the idle dev host's over as long: {idle:.1f} ms"
    )


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def servers(responder: Responder = answer) -> Iterator[tuple[ModelServer, DevHost, DevHost, FaultyProxy]]:
    """Azurite, the scripted model (answering with `responder`), a dev host, and a second one
    whose table requests a proxy counts (its queues and blobs reached directly)."""
    with ExitStack() as stack:
        azurite = Azurite(free_port())
        azurite.start()
        stack.callback(azurite.stop)
        model = stack.enter_context(ModelServer(responder))
        host = stack.enter_context(
            running_devhost(azurite.connection_string, ASSISTANTS_MODEL_BASE_URL=model.base_url)
        )
        proxy = FaultyProxy(azurite.port, azurite.queue_port)
        stack.callback(proxy.close)
        storage = connection_string(proxy.port, azurite.queue_port, azurite.blob_port)
        counted = stack.enter_context(running_devhost(storage, ASSISTANTS_MODEL_BASE_URL=model.base_url))
        yield model, host, counted, proxy


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.runs", description=__doc__)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--spread", type=float, default=4, help="seconds over which streams begin")
    parser.add_argument("--cpu-runs", type=int, default=300, help="runs over which CPU per run is read")
    parser.add_argument("--cpu-only", action="store_true", help="measure CPU per run (6.) alone")
    args = parser.parse_args()
    with servers() as (model, host, counted, proxy):
        if args.cpu_only:
            print("6. " + cpu_per_run(host, args.cpu_runs))
            return
        client = OpenAI(base_url=host.api_url, api_key=API_KEYS[0], max_retries=0)
        model_client = OpenAI(base_url=model.base_url, api_key="x", max_retries=0)
        stream_run(client, client.beta.assistants.create(model="m").id)  # warm both
        pairs = latency(client, model_client, args.iterations)
        print("1. run against the bare model          service   direct  overhead   target  (median ms)")
        for pair in pairs:
            print(pair.row())
        print("\n2. storage requests (table, at a proxy)  requests")
        for row in storage_requests(counted, proxy, model):
            print(row)
        print("\n3. concurrency")
        all_completed = True
        for count, spread, target in (
            (args.streams, 0, 1000),
            (args.streams, args.spread, 100),
            (PER_INSTANCE, 0, 200),
        ):
            rows, completed = concurrent_streams(host, model, count, spread, target)
            all_completed &= completed
            for row in rows:
                print(row)
            if spread == 0:
                print(azurite_floor(host.storage, count))
        print(f"dev host peak RSS {peak_rss_mb(host.pid):.0f} MiB")
        print("\n4. " + polled_throughput(host, args.seconds))
        print("\n5. the poll interval to advise")
        for row in poll_intervals(host, max(4, args.iterations // 3)):
            print(row)
        print("\n6. " + cpu_per_run(host, args.cpu_runs))
    sys.exit(0 if all_completed else 1)  # a run that failed elsewhere has raised already


if __name__ == "__main__":
    main()

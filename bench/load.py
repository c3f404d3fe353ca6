"""Load: N concurrent clients for T seconds against the dev host on Azurite, then proof that
nothing acknowledged was lost, reordered or resurrected, and that every run ended consistent.

    .venv/bin/python -m bench.load [--clients 16] [--run-clients 6] [--seconds 30] [--hot-threads 3]
    (make load)

Each client mixes creates, lists, retrieves, modifies and deletes of messages (on threads of its
own and on a few hot threads every client writes to), assistants and threads. Run clients, beside
them, run assistants on threads of their own against a scripted chat-completions model
(tests/model_server.py, answering text, or a function call when tools are offered and the last
message is not a tool result): half of them polled runs (`create`, then GET as
`openai-poll-after-ms` advises, submitting tool outputs on `requires_action`), half streamed ones
(`stream: true`, read as Server-Sent Events, tool outputs submitted streamed); every other run
offers a function tool, and one run in four creates its thread with it. Afterwards, read only
through the API:
  - every acknowledged message, assistant and thread is there, with its last acknowledged change;
  - messages list in an order consistent with acknowledgement: a message acknowledged before
    another was sent is listed before it;
  - everything whose deletion was acknowledged is gone;
  - every acknowledged run has ended, and completed; its steps are completed, a tool_calls step
    with the outputs submitted; it has exactly one reply, completed, carrying its run_id, with
    the model's text, the one its message_creation step names; its usage is the sum of its
    steps'; its thread takes a message again.
Prints requests/s, latency percentiles, errors by status, runs/s, the runs by kind and their duration
and the dev host's peak memory; exits non-zero on any 5xx, loss, reordering, resurrected delete
or inconsistent run.
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

from tests.model_server import ModelServer, Reply, call, text, tool_calls
from tests.support import API_KEYS, Azurite, free_port, running_devhost, sse_events

ANSWER = "It is 18C in Paris."
OUTPUT = '{"temp_c": 18}'
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
RUN_DEADLINE = 120.0  # seconds a client waits for one run to end before counting it stuck
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def respond(body: dict[str, Any]) -> Reply:
    """The scripted model: a function call when tools are offered and the last message is not a
    tool result, else the text answer; streamed a little slower than instantly."""
    messages = body.get("messages") or [{}]
    if body.get("tools") and messages[-1].get("role") != "tool":
        return tool_calls(call("get_weather", {"city": "Paris"}), chunk_delay=0.005)
    return text(ANSWER, chunk_delay=0.005)


@dataclass
class RunRecord:
    thread: str
    kind: str  # "polled" or "streamed"
    tool: bool
    status: str = ""  # the last status the client saw


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
    runs: dict[str, RunRecord] = field(default_factory=dict)  # run id -> as acknowledged
    run_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # by kind
    run_problems: Counter[str] = field(default_factory=Counter)  # seen while running


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


class RunClient:
    """Runs assistants on threads of its own, one run at a time, each to its end: polled, or
    streamed (`streamed`)."""

    def __init__(
        self, base: str, ledger: Ledger, assistants: tuple[str, str], streamed: bool, seed: int
    ) -> None:
        self.http = httpx.Client(base_url=base, headers={"api-key": API_KEYS[0]}, timeout=120)
        self.ledger = ledger
        self.assistants = assistants  # (plain, with the function tool)
        self.streamed = streamed
        self.random = random.Random(seed)
        self.kind = "streamed" if streamed else "polled"
        self.thread: str | None = None
        self.rounds = 0

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        with self.ledger.lock:
            self.ledger.statuses[response.status_code] += 1
        return response

    def problem(self, what: str) -> None:
        with self.ledger.lock:
            self.ledger.run_problems[what] += 1

    def step(self) -> None:
        self.rounds += 1
        tool = self.rounds % 2 == 0
        body: dict[str, Any] = {"assistant_id": self.assistants[tool]}
        if self.thread is None or self.random.random() < 0.25:
            path = "/threads/runs"
            body["thread"] = {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
        else:
            path = f"/threads/{self.thread}/runs"
            added = self.call(
                "POST", f"/threads/{self.thread}/messages", json={"role": "user", "content": "And now?"}
            )
            if added.status_code != 200:  # its last run ended: the thread must take messages
                self.problem("threads locked after their run")
                return
        started = time.monotonic()
        status = self.streamed_run(path, body, tool) if self.streamed else self.polled_run(path, body, tool)
        if status in TERMINAL:  # a run's create to its end, as this client saw it
            with self.ledger.lock:
                self.ledger.run_seconds[self.kind].append(time.monotonic() - started)

    def acknowledge(self, run: dict[str, Any], tool: bool) -> RunRecord:
        record = RunRecord(run["thread_id"], self.kind, tool, run["status"])
        self.thread = run["thread_id"]
        with self.ledger.lock:
            self.ledger.runs[run["id"]] = record
        return record

    def outputs(self, run: dict[str, Any]) -> list[dict[str, str]]:
        calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
        return [{"tool_call_id": c["id"], "output": OUTPUT} for c in calls]

    def polled_run(self, path: str, body: dict[str, Any], tool: bool) -> str:
        created = self.call("POST", path, json=body)
        if created.status_code != 200:
            return ""
        run = created.json()
        record = self.acknowledge(run, tool)
        where = f"/threads/{run['thread_id']}/runs/{run['id']}"
        deadline = time.monotonic() + RUN_DEADLINE
        while time.monotonic() < deadline:
            response = self.call("GET", where)
            if response.status_code != 200:
                time.sleep(0.25)
                continue
            run = response.json()
            record.status = run["status"]
            if run["status"] in TERMINAL:
                return str(run["status"])
            if run["status"] == "requires_action":
                self.call("POST", where + "/submit_tool_outputs", json={"tool_outputs": self.outputs(run)})
                continue
            time.sleep(int(response.headers.get("openai-poll-after-ms", "250")) / 1000)
        self.problem("runs stuck")
        return record.status

    def streamed_run(self, path: str, body: dict[str, Any], tool: bool) -> str:
        events = self.events(path, {**body, "stream": True})
        if not events or events[0][0] not in ("thread.run.created", "thread.created"):
            return ""
        run = next(data for name, data in events if name == "thread.run.created")
        record = self.acknowledge(run, tool)
        while True:
            ends = [
                (name, data)
                for name, data in events
                if name.startswith("thread.run.") and not name.startswith("thread.run.step.")
            ]
            if not ends or events[-1][0] != "done":
                self.problem("streams cut short")
                return record.status
            if any(name == "error" for name, _ in events):
                self.problem("streams ending in an error")
            name, run = ends[-1]
            record.status = str(run["status"])
            if name != "thread.run.requires_action":
                return record.status
            where = f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs"
            events = self.events(where, {"tool_outputs": self.outputs(run), "stream": True})

    def events(self, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
        """The Server-Sent Events of a streamed request, [] if it was refused."""
        events: list[tuple[str, Any]] = []
        with self.http.stream("POST", path, json=body) as response:
            with self.ledger.lock:
                self.ledger.statuses[response.status_code] += 1
            if response.status_code != 200:
                response.read()
                return []
            events.extend(sse_events(response.iter_lines()))
        return events


def verify_runs(http: httpx.Client, ledger: Ledger) -> dict[str, int]:
    """Every acknowledged run ended, completed and consistent (see the module's docstring)."""
    problems: Counter[str] = Counter(ledger.run_problems)
    threads: set[str] = set()
    for run_id, record in ledger.runs.items():
        threads.add(record.thread)
        where = f"/threads/{record.thread}/runs/{run_id}"
        run = http.get(where).json()
        if run["status"] not in TERMINAL:
            problems["runs not ended"] += 1
            continue
        if run["status"] != "completed":
            problems[f"runs {run['status']}"] += 1
        steps = http.get(where + "/steps", params={"order": "asc", "limit": 100}).json()["data"]
        expected = ["tool_calls", "message_creation"] if record.tool else ["message_creation"]
        if [s["type"] for s in steps] != expected or any(s["status"] != "completed" for s in steps):
            problems["inconsistent steps"] += 1
        for step in steps:
            calls = step["step_details"].get("tool_calls") or []
            if step["type"] == "tool_calls" and any(c["function"]["output"] != OUTPUT for c in calls):
                problems["tool outputs lost"] += 1
        replies = http.get(f"/threads/{record.thread}/messages", params={"run_id": run_id}).json()["data"]
        named = [
            s["step_details"]["message_creation"]["message_id"]
            for s in steps
            if s["type"] == "message_creation"
        ]
        if (
            len(replies) != 1
            or replies[0]["role"] != "assistant"
            or replies[0]["status"] != "completed"
            or replies[0]["run_id"] != run_id
            or replies[0]["content"][0]["text"]["value"] != ANSWER
            or [replies[0]["id"]] != named
        ):
            problems["inconsistent replies"] += 1
        summed = {
            k: sum((s["usage"] or {}).get(k, 0) for s in steps)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
        if run["usage"] != summed or not summed["total_tokens"]:
            problems["inconsistent usage"] += 1
    for thread in threads:
        added = http.post(f"/threads/{thread}/messages", json={"role": "user", "content": "after"})
        problems["threads locked after their run"] += added.status_code != 200
    return dict(problems)


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
    parser.add_argument("--run-clients", type=int, default=6, help="half polled, half streamed")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hot-threads", type=int, default=3)
    args = parser.parse_args()

    azurite = Azurite(free_port())
    azurite.start()
    try:
        with (
            ModelServer(respond) as model,
            running_devhost(azurite.connection_string, ASSISTANTS_MODEL_BASE_URL=model.base_url) as host,
            httpx.Client(base_url=host.api_url, headers={"api-key": API_KEYS[0]}, timeout=120) as http,
        ):
            hot = [http.post("/threads", json={}).json()["id"] for _ in range(args.hot_threads)]
            assistants = (
                http.post("/assistants", json={"model": "gpt-load"}).json()["id"],
                http.post("/assistants", json={"model": "gpt-load", "tools": [WEATHER]}).json()["id"],
            )
            ledger = Ledger()
            stop = time.monotonic() + args.seconds
            clients: list[Client | RunClient] = [
                Client(host.api_url, ledger, hot, seed) for seed in range(args.clients)
            ]
            clients += [
                RunClient(host.api_url, ledger, assistants, streamed=n % 2 == 1, seed=n)
                for n in range(args.run_clients)
            ]

            def run(client: Client | RunClient) -> None:
                while time.monotonic() < stop:
                    client.step()

            workers = [threading.Thread(target=run, args=(c,)) for c in clients]
            started = time.monotonic()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.monotonic() - started
            problems = verify(http, ledger) | verify_runs(http, ledger)
            peak = peak_rss_mb(host.pid)
            model_calls = len(model.requests)
    finally:
        azurite.stop()

    total = sum(ledger.statuses.values())
    server_errors = sum(n for status, n in ledger.statuses.items() if status >= 500)
    acknowledged = sum(len(m) for m in ledger.messages.values())
    print(
        f"clients {args.clients} + {args.run_clients} running assistants, {args.seconds:.0f} s, "
        f"{args.hot_threads} hot threads"
    )
    print(f"requests {total}  ({total / elapsed:.0f}/s)")
    print(
        f"latency ms  p50 {percentile(ledger.latencies, 50):.1f}  p95 {percentile(ledger.latencies, 95):.1f}"
        f"  p99 {percentile(ledger.latencies, 99):.1f}  (messages, assistants, threads)"
    )
    print("statuses    " + "  ".join(f"{s}: {n}" for s, n in sorted(ledger.statuses.items())))
    deleted = len(ledger.deleted_assistants) + len(ledger.deleted_threads)
    print(
        f"checked     {acknowledged} acknowledged messages in {len(ledger.messages)} threads, "
        f"{len(ledger.assistants)} assistants, {deleted} deleted objects"
    )
    if args.run_clients:
        kinds = Counter((r.kind, r.tool) for r in ledger.runs.values())
        ended = Counter(r.status for r in ledger.runs.values())
        print(
            f"runs        {len(ledger.runs)}: polled {kinds['polled', False] + kinds['polled', True]} "
            f"({kinds['polled', True]} with a function call), streamed "
            f"{kinds['streamed', False] + kinds['streamed', True]} ({kinds['streamed', True]} with a "
            f"function call), {len(ledger.runs) / elapsed:.1f}/s; {model_calls} model calls; "
            + ", ".join(f"{status} {n}" for status, n in sorted(ended.items()))
        )
        for kind, seconds in sorted(ledger.run_seconds.items()):
            print(
                f"run ms      {kind:<8}  p50 {percentile(seconds, 50):.1f}  p95 {percentile(seconds, 95):.1f}"
                f"  p99 {percentile(seconds, 99):.1f}  (create to end, tool outputs included)"
            )
        print(
            f"checked     {len(ledger.runs)} runs: ended, steps, one completed reply each, usage = sum of "
            "steps, thread unlocked"
        )
    print(f"dev host peak RSS {peak:.0f} MiB")
    failures = {k: v for k, v in problems.items() if v} | ({"5xx": server_errors} if server_errors else {})
    print(
        "RESULT "
        + (
            "ok: zero 5xx, nothing lost, reordered or leaked; every run ended consistent"
            if not failures
            else f"FAILED {failures}"
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The dev host's queue and timer triggers, run as the Functions host runs them, on the session's
Azurite: small trigger functions defined here (in-process, with host.json options of their own)
and tests/apps/triggers.py (through `python -m devhost --app ...`)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost import Invoker, Trigger
from devhost.queues import Backoff, QueueListener, QueueOptions, queue_triggers, timespan
from devhost.timers import Schedule, Timer, timer_triggers
from tests.support import ROOT, Azurite, free_port, stop, wait_for_port

CONNECTION = "TRIGGERS_STORAGE"
YEARLY = "0 0 0 1 1 *"


def fresh_queue() -> str:
    return "q" + secrets.token_hex(6)


def queue(azurite: Azurite, name: str, base64: bool = True) -> QueueClient:
    """A client that sends as the app would: base64 (what the host decodes by default) or not."""
    policy = TextBase64EncodePolicy() if base64 else None
    return QueueClient.from_connection_string(azurite.connection_string, name, message_encode_policy=policy)


def make_queue(azurite: Azurite, name: str) -> QueueClient:
    client = queue(azurite, name)
    with suppress(ResourceExistsError):  # the listener may have made it
        client.create_queue()
    return client


def stored(azurite: Azurite, name: str) -> int:
    """Messages in a queue, visible or not."""
    return queue(azurite, name).get_queue_properties().approximate_message_count or 0


def texts(azurite: Azurite, name: str) -> list[str]:
    """The visible messages' texts as stored (undecoded)."""
    return [m.content for m in queue(azurite, name, base64=False).peek_messages(max_messages=32)]


def host_json(**queues: Any) -> dict[str, Any]:
    return {"version": "2.0", "extensions": {"queues": queues}}


async def eventually(check: Callable[[], object], seconds: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what or check}")
        await asyncio.sleep(0.05)


async def off_loop(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(call, *args, **kwargs)


@asynccontextmanager
async def running(triggers: dict[str, Trigger]) -> AsyncIterator[None]:
    """The triggers' listeners run meanwhile; each must then stop at once when cancelled (and
    must not have ended on its own)."""
    tasks = [asyncio.create_task(t.run()) for t in triggers.values()]
    try:
        yield
        for task in tasks:
            assert not task.done(), task
    finally:
        for task in tasks:
            task.cancel()
        started = time.monotonic()
        _, pending = await asyncio.wait(tasks, timeout=5)
        stopped_in = time.monotonic() - started
    assert not pending and stopped_in < 1, f"listeners stopped in {stopped_in:.2f} s"


@asynccontextmanager
async def listening(
    azurite: Azurite,
    handle: Callable[..., Any],
    name: str,
    host: dict[str, Any] | None = None,
    ready: bool = True,
    **options: Any,
) -> AsyncIterator[QueueListener]:
    """`handle` as a queue-triggered function on queue `name` (through the setting QUEUE), its
    listener running and (if `ready`) polling: its queues are made."""
    app = func.FunctionApp()
    app.queue_trigger(arg_name="msg", queue_name="%QUEUE%", connection=CONNECTION)(handle)
    settings = {CONNECTION: azurite.connection_string, "QUEUE": name}
    invoke = Invoker(settings)
    try:
        triggers = queue_triggers(app.get_functions(), settings, host or host_json(), invoke, **options)
        listener = triggers[handle.__name__]
        assert isinstance(listener, QueueListener)
        async with running(triggers):
            if ready:
                await eventually(lambda: listener.polls, what="the listener polls")
            yield listener
    finally:
        invoke.close()


# Queue triggers


def test_a_base64_message_runs_the_function_once_with_its_body_and_is_deleted(azurite: Azurite) -> None:
    name, seen = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        seen.append(msg)

    async def scenario() -> Any:
        async with listening(azurite, handle, name):
            sent = await off_loop(queue(azurite, name).send_message, '{"run_id": "run_1", "note": "héllo"}')
            await eventually(lambda: seen, what="the function ran")
            await eventually(lambda: stored(azurite, name) == 0, what="the message was deleted")
            await asyncio.sleep(0.5)
        return sent

    sent = asyncio.run(scenario())
    [msg] = seen
    assert msg.get_json() == {"run_id": "run_1", "note": "héllo"}
    assert (msg.id, msg.dequeue_count) == (sent.id, 1)
    assert msg.insertion_time == sent.inserted_on and msg.expiration_time == sent.expires_on
    assert msg.pop_receipt and msg.time_next_visible is not None
    assert (msg.time_next_visible - datetime.now(UTC)).total_seconds() > 590  # received for 10 minutes
    assert stored(azurite, name + "-poison") == 0


def test_a_failing_function_is_retried_after_the_visibility_timeout_then_poisoned(azurite: Azurite) -> None:
    name, attempts = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        attempts.append((msg.dequeue_count, time.monotonic()))
        raise RuntimeError("the model is down")

    async def scenario() -> None:
        options = host_json(maxDequeueCount=3, visibilityTimeout="00:00:01", maxPollingInterval="00:00:01")
        async with listening(azurite, handle, name, options):
            await off_loop(queue(azurite, name).send_message, "doomed")
            await eventually(lambda: stored(azurite, name + "-poison") == 1, what="poisoned")
            await asyncio.sleep(1.5)  # no fourth attempt

    asyncio.run(scenario())
    assert [count for count, _ in attempts] == [1, 2, 3]
    assert all(later - earlier > 0.5 for (_, earlier), (_, later) in pairwise(attempts))
    assert stored(azurite, name) == 0
    assert texts(azurite, name + "-poison") == [base64.b64encode(b"doomed").decode()]  # as it was sent


def test_a_message_that_is_not_base64_goes_to_poison_without_a_run(azurite: Azurite) -> None:
    name, seen = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        seen.append(msg)

    async def scenario() -> None:
        async with listening(azurite, handle, name):
            await off_loop(queue(azurite, name, base64=False).send_message, '{"run_id": "run_1"}')
            await eventually(lambda: stored(azurite, name + "-poison") == 1, what="poisoned")

    asyncio.run(scenario())
    assert seen == []
    assert stored(azurite, name) == 0
    assert texts(azurite, name + "-poison") == ['{"run_id": "run_1"}']  # as it was sent


def test_message_encoding_none_gives_the_text_as_it_was_sent(azurite: Azurite) -> None:
    name, seen = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        seen.append(msg.get_body())

    async def scenario() -> None:
        async with listening(azurite, handle, name, host_json(messageEncoding="none")):
            plain = queue(azurite, name, base64=False)
            await off_loop(plain.send_message, '{"run_id": "run_1"}')
            await off_loop(plain.send_message, "aGk=")  # base64 for "hi", not decoded
            await eventually(lambda: len(seen) == 2)
            await eventually(lambda: stored(azurite, name) == 0)

    asyncio.run(scenario())
    assert sorted(seen) == sorted([b'{"run_id": "run_1"}', b"aGk="])


def test_a_queue_name_from_a_setting_is_lowercased_and_made_with_its_poison_queue(azurite: Azurite) -> None:
    name, seen = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        seen.append(msg.get_body())

    async def scenario() -> None:
        async with listening(azurite, handle, name.upper()) as listener:
            assert listener.queue.queue_name == name
            for made in (name, name + "-poison"):  # before any message, as the dev host starts
                assert stored(azurite, made) == 0
            await off_loop(queue(azurite, name).send_message, "hello")
            await eventually(lambda: seen)

    asyncio.run(scenario())
    assert seen == [b"hello"]


def test_a_function_whose_settings_are_missing_is_left_out_with_an_error(
    azurite: Azurite, caplog: pytest.LogCaptureFixture
) -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%NO_SUCH_SETTING%", connection=CONNECTION)
    def no_queue(msg: func.QueueMessage) -> None: ...

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="NO_SUCH_CONNECTION")
    def no_connection(msg: func.QueueMessage) -> None: ...

    @app.timer_trigger(arg_name="timer", schedule="%NO_SUCH_SETTING%")
    def no_schedule(timer: func.TimerRequest) -> None: ...

    settings = {CONNECTION: azurite.connection_string}
    invoke = Invoker(settings)
    functions = app.get_functions()
    with caplog.at_level(logging.ERROR):
        assert queue_triggers(functions, settings, host_json(), invoke) == {}
        assert timer_triggers(functions, settings, invoke) == {}
    invoke.close()
    errors = caplog.text
    assert "'no_queue' function is in error: '%NO_SUCH_SETTING%' does not resolve" in errors
    assert "'no_connection' function is in error: storage connection 'NO_SUCH_CONNECTION'" in errors
    assert "'no_schedule' function is in error" in errors


def test_connections_and_options_are_read_as_the_host_reads_them() -> None:
    from devhost.queues import queue_clients

    by_prefix = queue_clients("Storage", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert by_prefix("q").url == "http://127.0.0.1:10001/devstoreaccount1/q"
    identity = queue_clients("RUNS", {"RUNS__queueServiceUri": "https://acct.queue.core.windows.net"})
    assert identity("runs").url == "https://acct.queue.core.windows.net/runs"

    defaults = QueueOptions.from_host_json({"version": "2.0"})
    assert (defaults.batch_size, defaults.max_polling_interval, defaults.visibility_timeout) == (16, 60, 0)
    assert (defaults.max_dequeue_count, defaults.base64) == (5, True)
    assert QueueOptions.from_host_json(host_json(batchSize=4, newBatchThreshold=2)).max_in_flight == 6
    assert timespan("00:00:02") == 2 and timespan("00:00:00.5") == 0.5 and timespan("1.00:01:00") == 86460
    for wrong in ({"batchSize": 33}, {"maxPollingInterval": "00:00:00.05"}, {"messageEncoding": "utf8"}):
        with pytest.raises(ValueError, match=r"host\.json"):
            QueueOptions.from_host_json(host_json(**wrong))


def test_messages_run_concurrently_up_to_batch_size_plus_new_batch_threshold(azurite: Azurite) -> None:
    name = fresh_queue()
    state = {"running": 0, "peak": 0, "done": 0}

    async def scenario() -> None:
        gate = asyncio.Semaphore(0)

        async def handle(msg: func.QueueMessage) -> None:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            try:
                await gate.acquire()
            finally:
                state["running"] -= 1
            state["done"] += 1

        def settles_at(count: int) -> Any:
            async def check() -> None:
                await eventually(lambda: state["running"] == count, what=f"{count} running")
                await asyncio.sleep(0.4)  # and no more are received meanwhile
                assert state["running"] == count

            return check()

        options = host_json(batchSize=2, newBatchThreshold=1, maxPollingInterval="00:00:01")
        sender = make_queue(azurite, name)
        for i in range(8):
            await off_loop(sender.send_message, f"m{i}")
        async with listening(azurite, handle, name, options):
            await settles_at(2)  # one batch, and more in flight than the threshold: no new batch
            gate.release()
            await settles_at(3)  # one left, at the threshold: a new batch of two
            gate.release()
            await settles_at(2)
            gate.release()
            await settles_at(3)
            for _ in range(8):
                gate.release()
            await eventually(lambda: state["done"] == 8)

    asyncio.run(scenario())
    assert state["peak"] == 3
    assert stored(azurite, name) == 0


def test_idle_polling_backs_off_and_still_picks_a_message_up_within_max_polling_interval(
    azurite: Azurite,
) -> None:
    name, seen = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        seen.append(time.monotonic())

    async def scenario() -> tuple[int, float]:
        async with listening(azurite, handle, name, host_json(maxPollingInterval="00:00:01")) as listener:
            await asyncio.sleep(3)
            polls = listener.polls  # 0.1 s, then about 0.2, 0.4, 0.8 and 1 s apart: not 30
            await off_loop(queue(azurite, name).send_message, "late")
            sent = time.monotonic()
            await eventually(lambda: seen)
            return polls, seen[0] - sent

    polls, latency = asyncio.run(scenario())
    assert 3 <= polls <= 8
    assert latency < 1.5


def test_the_back_off_doubles_with_jitter_up_to_the_maximum_and_resets_on_messages() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next(False) for _ in range(7)]
    assert delays[0] == 0.1
    for delay, (low, high) in zip(delays[1:4], [(0.18, 0.22), (0.26, 0.34), (0.42, 0.58)], strict=True):
        assert low <= delay <= high
    assert delays[-2:] == [1.0, 1.0]
    assert backoff.next(True) == 0.1  # messages found: the next empty poll starts over
    assert 0.18 <= backoff.next(False) <= 0.22


def test_a_long_run_keeps_its_message_invisible(azurite: Azurite) -> None:
    name, runs = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        runs.append(msg.dequeue_count)
        await asyncio.sleep(3.5)  # longer than the invisibility, which is renewed every second

    async def scenario() -> None:
        async with listening(azurite, handle, name, host_json(maxPollingInterval="00:00:01"), visibility=2):
            await off_loop(queue(azurite, name).send_message, "slow")
            await eventually(lambda: runs)
            await eventually(lambda: stored(azurite, name) == 0, seconds=6)

    asyncio.run(scenario())
    assert runs == [1]


def test_the_listener_rides_out_storage_being_down(azurite: Azurite) -> None:
    storage = Azurite(free_port())  # a private one, started only once the listener is polling
    name, seen = fresh_queue(), []

    async def handle(msg: func.QueueMessage) -> None:
        seen.append(msg.get_body())

    async def scenario() -> None:
        async with listening(storage, handle, name, host_json(maxPollingInterval="00:00:01"), ready=False):
            await asyncio.sleep(1)
            await off_loop(storage.start)
            sender = await off_loop(make_queue, storage, name)
            await off_loop(sender.send_message, "after the outage")
            await eventually(lambda: seen, seconds=15)

    try:
        asyncio.run(scenario())
    finally:
        storage.stop()
    assert seen == [b"after the outage"]


# Timer triggers


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/5 * * * * *", "2026-11-23T12:00:03", "2026-11-23T12:00:05"),
        ("*/5 * * * * *", "2026-11-23T12:00:05", "2026-11-23T12:00:10"),  # strictly after
        ("*/5 * * * * *", "2026-11-23T12:00:57.900", "2026-11-23T12:01:00"),
        ("0 10-20/5 9 * * *", "2026-11-23T09:12:00", "2026-11-23T09:15:00"),
        ("0 10-20/5 9 * * *", "2026-11-23T09:20:00", "2026-11-24T09:10:00"),
        ("0 5/20 * * * *", "2026-11-23T09:26:00", "2026-11-23T09:45:00"),
        ("0 0 9 * * 1-5", "2026-11-27T10:00:00", "2026-11-30T09:00:00"),  # Friday, then Monday
        ("0 30 8 * * 0", "2026-11-23T00:00:00", "2026-11-29T08:30:00"),  # 0 is Sunday
        ("0 0 9 * * Mon-Fri", "2026-11-28T00:00:00", "2026-11-30T09:00:00"),
        ("0 0 6 * Jan,jul sun", "2026-11-23T00:00:00", "2027-01-03T06:00:00"),
        ("0 0 0 13 * FRI", "2026-11-23T00:00:00", "2027-08-13T00:00:00"),  # day and weekday both
        ("0 0 0 31 * *", "2026-04-15T00:00:00", "2026-05-31T00:00:00"),  # April has 30 days
        ("0 0 12 29 2 *", "2026-03-01T00:00:00", "2028-02-29T12:00:00"),  # the next leap day
        ("0 0 0 28-31 * *", "2026-02-28T00:00:01", "2026-03-28T00:00:00"),
        ("0 0 0 1 1 *", "2026-12-31T23:59:59", "2027-01-01T00:00:00"),  # year rollover
        ("59 59 23 31 12 *", "2026-12-31T23:59:59", "2027-12-31T23:59:59"),
        ("0,30 * * * * *", "2026-12-31T23:59:45", "2027-01-01T00:00:00"),
    ],
)
def test_next_occurrence(schedule: str, after: str, expected: str) -> None:
    assert Schedule.parse(schedule).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("schedule", "complaint"),
    [
        ("0 */5 * * *", "six fields"),
        ("60 * * * * *", "60 is not in 0-59"),
        ("* * * 0 * *", "0 is not in 1-31"),
        ("* * * * 13 *", "13 is not in 1-12"),
        ("* * * * * 7", "7 is not in 0-6"),
        ("*/0 * * * * *", "no valid step"),
        ("5-1 * * * * *", "empty range"),
        ("* * * * foo *", "'foo' is not a value"),
        ("0 0 0 30 2 *", "never occurs"),
    ],
)
def test_invalid_schedules_are_refused(schedule: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Schedule.parse(schedule)


def timers(app: func.FunctionApp, settings: dict[str, str]) -> tuple[dict[str, Trigger], Invoker]:
    invoke = Invoker(settings)
    return timer_triggers(app.get_functions(), settings, invoke), invoke


def test_a_timer_every_second_runs_again_and_again_and_never_overlaps() -> None:
    app, started, runs = func.FunctionApp(), [], []

    @app.timer_trigger(arg_name="timer", schedule="%TICK%")
    def tick(timer: func.TimerRequest) -> None:  # a plain function: on the worker's thread pool
        started.append(time.time())
        time.sleep(1.2)  # longer than the schedule's second: the occurrences meanwhile are skipped
        runs.append((started[-1], time.time(), timer.past_due))

    triggers, invoke = timers(app, {"TICK": "*/1 * * * * *"})
    timer = triggers["tick"]
    assert isinstance(timer, Timer) and timer.schedule.text == "*/1 * * * * *"

    async def scenario() -> None:
        async with running(triggers):
            await eventually(lambda: started)
            await timer.fire("")  # from /admin while a scheduled run is under way: after it
            assert len(runs) == 2
            await eventually(lambda: len(runs) >= 3, seconds=5)

    asyncio.run(scenario())
    invoke.close()
    for (_, end, _), (start, _, _) in pairwise(runs):
        assert start >= end
    assert runs[0][0] % 1 < 0.3  # on the second, as scheduled
    assert not any(past_due for _, _, past_due in runs)


def test_run_on_startup_runs_a_timer_once_when_the_host_starts() -> None:
    app, runs = func.FunctionApp(), []

    @app.timer_trigger(arg_name="timer", schedule=YEARLY, run_on_startup=True)
    async def eager(timer: func.TimerRequest) -> None:
        runs.append(("eager", timer.past_due))

    @app.timer_trigger(arg_name="timer", schedule=YEARLY)
    async def patient(timer: func.TimerRequest) -> None:
        runs.append(("patient", timer.past_due))

    triggers, invoke = timers(app, {})

    async def scenario() -> None:
        async with running(triggers):
            await eventually(lambda: runs, seconds=2)
            await asyncio.sleep(0.5)

    asyncio.run(scenario())
    invoke.close()
    assert runs == [("eager", False)]


# The dev host itself, as a subprocess


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return tmp_path / "report.jsonl"


def reported(report: Path) -> list[dict[str, Any]]:
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines()]


@pytest.fixture
def triggers_host(azurite: Azurite, report: Path) -> Iterator[tuple[str, str]]:
    """The dev host serving tests/apps/triggers.py, on a fresh queue with one message waiting."""
    name = fresh_queue()
    sender = queue(azurite, name)
    sender.create_queue()
    sender.send_message("waiting")
    port = free_port()
    env = {
        **os.environ,
        "TRIGGERS_STORAGE": azurite.connection_string,
        "TRIGGERS_QUEUE": name,
        "TRIGGERS_SCHEDULE": YEARLY,
        "TRIGGERS_REPORT": str(report),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app=tests.apps.triggers:app", "--no-azurite", f"--port={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "dev host")
        yield f"http://127.0.0.1:{port}", name
    finally:
        stop(process)


def test_the_dev_host_runs_queue_and_timer_functions_and_admin_invocations(
    azurite: Azurite, triggers_host: tuple[str, str], report: Path
) -> None:
    base_url, name = triggers_host
    with httpx.Client(base_url=base_url, timeout=10) as http:
        assert http.post("/admin/functions/on_message", json={"input": "by hand"}).status_code == 202
        assert http.post("/admin/functions/on_timer", json={}).status_code == 202
        assert http.post("/admin/functions/no_such_function", json={}).status_code == 404
        queue(azurite, name).send_message("sent later")
        deadline = time.monotonic() + 15
        while len(reported(report)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    runs = reported(report)
    messages = sorted((r["body"], r["dequeue_count"]) for r in runs if r["function"] == "on_message")
    assert messages == [("by hand", 0), ("sent later", 1), ("waiting", 1)]
    assert [r for r in runs if r["function"] == "on_timer"] == [{"function": "on_timer", "past_due": False}]
    assert stored(azurite, name) == 0

"""Runs survive what the platform does to them: the same queue message delivered twice, an
executor that dies mid-run, a message that never arrives. The service runs in this process on
real storage, and its queue worker and sweeper are called as the Functions host would call them."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from assistants_core import executor
from assistants_core.backend import ModelBackend
from assistants_core.closing import Closing
from assistants_core.errors import NotFound
from assistants_core.executor import LOST
from assistants_core.models import (
    CreateAssistantRequest,
    CreateMessageRequest,
    CreateThreadRequest,
    ModifyMessageRequest,
)
from assistants_core.models.run import CreateRunRequest, Run
from assistants_core.pagination import ListQuery
from assistants_core.run_state import Execution, StoredRun
from assistants_core.service import Service
from assistants_core.storage import ActiveRuns, Batch, StorageUnavailable, Store
from assistants_core.storage.threads import THREAD
from assistants_core.worker import Worker
from tests.model_server import ModelServer, hang, text
from tests.support import Azurite, StorageMeter, in_process_store, run_concurrently, wait_until


@pytest.fixture
def service(azurite: Azurite, model: ModelServer) -> Iterator[tuple[Service, Worker]]:
    store = in_process_store(azurite.connection_string)
    store.settings = replace(store.settings, runs_queue="q" + secrets.token_hex(6))
    service = Service(store, ModelBackend(model.base_url, "unused"))
    yield service, Worker(store, service.runs)


def started_run(service: Service) -> tuple[str, str]:
    assistant = service.create_assistant(CreateAssistantRequest.parse({"model": "gpt-test"}))
    thread = service.create_thread(
        CreateThreadRequest.parse({"messages": [{"role": "user", "content": "Hi"}]})
    )
    run = service.runs.create(thread.id, CreateRunRequest.parse({"assistant_id": assistant.id}))
    assert isinstance(run, Run)
    return thread.id, run.id


def message(thread_id: str, run_id: str) -> bytes:
    return json.dumps({"thread_id": thread_id, "run_id": run_id}).encode()


def test_two_deliveries_of_one_run_make_one_reply(
    service: tuple[Service, Worker], model: ModelServer
) -> None:
    svc, worker = service
    model.respond_with(text("Only once.", delay_before=0.3))
    thread_id, run_id = started_run(svc)
    body = message(thread_id, run_id)
    run_concurrently([lambda: worker.execute(body, 1), lambda: worker.execute(body, 1)])
    worker.execute(body, 2)  # and a late redelivery
    assert svc.runs.retrieve(thread_id, run_id).status == "completed"
    assert len(model.requests) == 1
    replies = svc.list_messages(thread_id, ListQuery(), run_id).data
    assert [m.role for m in replies] == ["assistant"]


def test_a_run_whose_executor_died_is_failed_when_read(service: tuple[Service, Worker]) -> None:
    svc, _ = service
    thread_id, run_id = started_run(svc)
    abandon(svc, thread_id, run_id)
    run = svc.runs.retrieve(thread_id, run_id)
    assert run.status == "failed" and run.last_error is not None and run.last_error.message == LOST
    svc.create_message(thread_id, CreateMessageRequest.parse({"role": "user", "content": "unlocked"}))


def test_the_sweeper_ends_abandoned_runs_and_forgets_ended_ones(service: tuple[Service, Worker]) -> None:
    svc, worker = service
    thread_id, run_id = started_run(svc)
    abandon(svc, thread_id, run_id)
    active = svc.runs._store.active_runs()  # the index the sweeper reads
    assert (thread_id, run_id) in list(active)
    worker.sweep()
    assert svc.runs.retrieve(thread_id, run_id).status == "failed"
    assert (thread_id, run_id) not in list(active)
    svc.create_message(thread_id, CreateMessageRequest.parse({"role": "user", "content": "unlocked"}))


def test_a_message_to_a_locked_thread_ends_an_abandoned_run_first(service: tuple[Service, Worker]) -> None:
    svc, _ = service
    thread_id, run_id = started_run(svc)
    abandon(svc, thread_id, run_id)
    svc.create_message(thread_id, CreateMessageRequest.parse({"role": "user", "content": "goes in"}))
    assert svc.runs.retrieve(thread_id, run_id).status == "failed"


def test_a_queued_run_whose_message_was_lost_is_sent_again(
    service: tuple[Service, Worker], model: ModelServer
) -> None:
    svc, worker = service
    model.respond_with(text("Recovered."))
    thread_id, run_id = started_run(svc)

    def queued_an_hour_ago(state: StoredRun) -> None:
        state.execution.queued_at = int(time.time()) - 3600

    rewrite(svc, thread_id, run_id, queued_an_hour_ago)
    queue = svc.runs._queue._queue()
    queue.clear_messages()  # the original message is lost
    worker.sweep()
    sent = queue.receive_message()
    assert sent is not None and json.loads(sent.content) == {"thread_id": thread_id, "run_id": run_id}
    worker.execute(sent.content.encode(), 1)
    assert svc.runs.retrieve(thread_id, run_id).status == "completed"


def rewrite(svc: Service, thread_id: str, run_id: str, change: Callable[[StoredRun], None]) -> None:
    """The stored run, changed behind the service's back."""
    runs = svc.runs._store.threads().runs(thread_id)
    record = runs.get(run_id)
    assert record is not None
    state = StoredRun.model_validate_json(record.document)
    change(state)
    batch = Batch(runs.partition)
    batch.replace(runs.runs, run_id, record, state.model_dump_json().encode())
    batch.commit()


def abandon(svc: Service, thread_id: str, run_id: str) -> None:
    """The run as an executor leaves it that took it, then died: in progress, its lease lapsed."""

    def died(state: StoredRun) -> None:
        state.run.status, state.run.started_at = "in_progress", int(time.time())
        state.execution = Execution(owner="dead", lease_until=time.time() - 1, calls=1)

    rewrite(svc, thread_id, run_id, died)


def test_a_runs_storage_requests_do_not_grow_with_its_answer(
    azurite: Azurite, model: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per answer, a run reads and writes the same; only the looks for a cancel (the process's,
    twice a second, and the run's own every few seconds) grow with the time an answer takes
    (held still here)."""
    monkeypatch.setattr(executor, "CANCEL_CHECK_SECONDS", 60.0)
    meter = StorageMeter()
    store = in_process_store(azurite.connection_string, meter=meter)
    store.settings = replace(store.settings, runs_queue="q" + secrets.token_hex(6))
    svc = Service(store, ModelBackend(model.base_url, "unused"))
    worker = Worker(store, svc.runs)
    active_runs = Store(store.settings).active_runs()  # read unmetered
    counts = []
    for words in (10, 2000):
        model.script(text(" ".join(["word"] * words)))
        thread_id, run_id = started_run(svc)
        meter.reset()
        worker.execute(message(thread_id, run_id), 1)
        assert svc.runs.retrieve(thread_id, run_id).status == "completed"

        # The index row's removal runs on, unwaited, its request counted when its answer is
        # read: after the row is gone, which is not soon enough to count it.
        def dropped(row: tuple[str, str] = (thread_id, run_id)) -> bool:
            return row not in list(active_runs) and "DELETE" in meter.methods

        wait_until(dropped, 10, "the ended run's index row to go")
        counts.append(meter.requests)
    assert counts[0] == counts[1], counts


def at_the_model(svc: Service, thread_id: str, run_id: str) -> None:
    """Wait until the run's reply is open: its executor is reading the model's answer."""
    wait_until(lambda: svc.list_messages(thread_id, ListQuery(), run_id).data, 10, "the reply to open")


def cancel_one_of_two(svc: Service, worker: Worker, model: ModelServer) -> None:
    """Two runs at a slow model (3 s answers), each executed as the queue trigger would; the
    first is cancelled while its answer streams: it ends cancelled, its model call left before
    its end; the second completes."""
    model.respond_with(text(" ".join(["word"] * 30), chunk_delay=0.1))
    first, second = started_run(svc), started_run(svc)
    executing = [threading.Thread(target=worker.execute, args=(message(*ids), 1)) for ids in (first, second)]
    for thread in executing:
        thread.start()
    at_the_model(svc, *first)
    at_the_model(svc, *second)
    assert svc.runs.cancel(*first).status == "cancelling"
    for thread in executing:
        thread.join(timeout=30)
    deadline = time.monotonic() + 10
    while sorted(r.outcome for r in model.requests) != ["aborted", "completed"]:
        assert time.monotonic() < deadline, [r.outcome for r in model.requests]  # what they were
        time.sleep(0.05)
    assert svc.runs.retrieve(*first).status == "cancelled"
    assert svc.runs.retrieve(*second).status == "completed"


def test_a_cancel_reaches_the_runs_at_the_model_by_one_look_for_all(
    service: tuple[Service, Worker], model: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executors never read their own runs here: the process's one look at the active-runs
    index, for flagged cancels, is what stops the cancelled run, and only that one."""
    monkeypatch.setattr(executor, "LOOK_SECONDS", 3600.0)
    svc, worker = service
    cancel_one_of_two(svc, worker, model)


def test_a_cancel_whose_flag_could_not_be_written_is_found_by_its_executor(
    service: tuple[Service, Worker], model: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: ActiveRuns, run_id: str) -> None:
        raise StorageUnavailable("the index is out of reach")

    monkeypatch.setattr(ActiveRuns, "mark_cancelling", unreachable)
    monkeypatch.setattr(executor, "LOOK_SECONDS", 0.5)
    svc, worker = service
    cancel_one_of_two(svc, worker, model)


def expire(svc: Service, thread_id: str, run_id: str) -> None:
    """The run past its deadline, as nobody has yet seen."""

    def past(state: StoredRun) -> None:
        state.run.expires_at = int(time.time()) - 1

    rewrite(svc, thread_id, run_id, past)


def ended_by_another_first(
    monkeypatch: pytest.MonkeyPatch, svc: Service, thread_id: str, run_id: str
) -> None:
    """The next to end the run finds that another reader (a poll, the sweeper) ended it the moment
    before: between its read of the run and its write."""
    before_ending(monkeypatch, lambda: svc.runs.executor.settle(thread_id, run_id))


def before_ending(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]) -> None:
    """`meanwhile` happens once, as the next to end a run has read it and is about to write."""
    end = executor.Executor._end
    done: list[bool] = []

    def after_another(self: executor.Executor, held: Any, status: Any, *args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(True)
            meanwhile()
        return end(self, held, status, *args, **kwargs)

    monkeypatch.setattr(executor.Executor, "_end", after_another)


def test_a_run_a_poll_and_another_reader_end_at_once_reads_as_ended(
    service: tuple[Service, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two readers find a run past its deadline at once: the second to write answers with the
    end the first wrote, not a 500."""
    svc, _ = service
    thread_id, run_id = started_run(svc)
    expire(svc, thread_id, run_id)
    ended_by_another_first(monkeypatch, svc, thread_id, run_id)
    assert svc.runs.retrieve(thread_id, run_id).status == "expired"
    svc.create_message(thread_id, CreateMessageRequest.parse({"role": "user", "content": "unlocked"}))


def test_a_run_whose_thread_is_being_deleted_as_it_is_read_is_not_found(
    service: tuple[Service, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread's deletion removes the thread's row, then its runs: a poll that ends a run past its
    deadline in between finds no thread to unlock, and answers 404, as it will once the runs go."""
    svc, _ = service
    thread_id, run_id = started_run(svc)
    expire(svc, thread_id, run_id)
    table = svc.runs._store.threads()._table
    before_ending(monkeypatch, lambda: table.delete_entity(thread_id, THREAD))
    answers: list[BaseException] = []

    def retrieve() -> None:
        try:
            svc.runs.retrieve(thread_id, run_id)
        except NotFound as exc:
            answers.append(exc)

    reading = threading.Thread(target=retrieve, daemon=True)
    reading.start()
    reading.join(timeout=30)
    assert not reading.is_alive(), "the end's write was retried for ever"
    assert len(answers) == 1


@pytest.mark.parametrize("when", ["before it is taken", "at the model"])
def test_an_executor_whose_run_another_reader_ended_first_ends_quietly(
    service: tuple[Service, Worker], model: ModelServer, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The run's deadline passes, and a poll ends it just before its executor does (as the
    executor takes it, or while the model answers): the executor stops without an error, so its
    queue message is not delivered again for nothing."""
    svc, worker = service
    model.respond_with(hang(after=2))
    if when == "at the model":
        svc.runs._settings = replace(svc.runs._settings, run_expiry_seconds=2)
    thread_id, run_id = started_run(svc)
    if when == "before it is taken":
        expire(svc, thread_id, run_id)
    ended_by_another_first(monkeypatch, svc, thread_id, run_id)
    worker.execute(message(thread_id, run_id), 1)
    run = svc.runs.retrieve(thread_id, run_id)
    assert run.status == "expired"
    replies = svc.list_messages(thread_id, ListQuery(), run_id).data
    assert [m.status for m in replies] == ([] if when == "before it is taken" else ["incomplete"])


def test_a_reply_changed_as_its_answer_ends_is_closed_with_the_change_kept(
    service: tuple[Service, Worker], model: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply's metadata is modified just after the executor read the reply to close it: the
    closing write fails on the reply's version, and is redone from the reply as it now is (not
    retried for ever with the version it had read)."""
    svc, worker = service
    model.respond_with(text("Done."))
    thread_id, run_id = started_run(svc)
    closing = Closing.of
    changed: list[str] = []

    def read_then_changed(cls: type[Closing], runs: Any, state: StoredRun, *args: Any) -> Closing:
        parts = closing(runs, state, *args)
        message_id = state.execution.open_message
        if message_id and not changed:
            changed.append(message_id)
            svc.modify_message(thread_id, message_id, ModifyMessageRequest.parse({"metadata": {"k": "v"}}))
        return parts

    monkeypatch.setattr(Closing, "of", classmethod(read_then_changed))
    executing = threading.Thread(target=worker.execute, args=(message(thread_id, run_id), 1), daemon=True)
    executing.start()
    executing.join(timeout=30)
    assert not executing.is_alive(), "the executor kept retrying its write"
    assert svc.runs.retrieve(thread_id, run_id).status == "completed"
    reply = svc.list_messages(thread_id, ListQuery(), run_id).data[0]
    assert changed == [reply.id]
    assert reply.status == "completed" and reply.metadata == {"k": "v"}
    assert reply.content[0].text.value == "Done."  # type: ignore[union-attr]

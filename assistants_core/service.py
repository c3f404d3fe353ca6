"""What each operation does, in terms of wire models and stored documents.

Writes that depend on what was read (modify, delete, a message's number) are optimistic
(`_optimistically`): conditional on the stored version, and on a conflict they read again and
redo the change, so concurrent writers never lose each other's fields.
"""

from __future__ import annotations

from functools import partial

from . import ids
from .backend import ModelBackend
from .documents import NewThread, document, optimistically
from .errors import NotFound
from .executor import Executor
from .files import Files
from .models import (
    Assistant,
    AssistantDeleted,
    CreateAssistantRequest,
    CreateMessageRequest,
    CreateThreadRequest,
    Message,
    MessageDeleted,
    ModifyAssistantRequest,
    ModifyMessageRequest,
    ModifyThreadRequest,
    Thread,
    ThreadDeleted,
)
from .models.message import Attachment
from .models.tools import ToolResources
from .pagination import ListPage, ListQuery
from .resources import THREAD_STORE_DAYS, Resources
from .runs import Runs
from .sandbox import open_sandbox
from .storage import Collection, OwnerGone, Record, Store, next_message
from .tools import Toolbox
from .tools.code_interpreter import CodeInterpreter
from .tools.file_search import FileSearch
from .vector_stores import VectorStores


class Service:
    def __init__(self, store: Store, backend: ModelBackend | None = None) -> None:
        self._store = store
        self.files = Files(store)
        self.vector_stores = VectorStores(store, self.files, backend)
        self.code = CodeInterpreter(
            partial(open_sandbox, store.settings.sandbox), self.files, store.settings.sandbox.secret
        )
        self.resources = Resources(self.vector_stores)
        tools = Toolbox([FileSearch(self.vector_stores), self.code])
        self.runs = Runs(store, Executor(store, backend, tools=tools, images=self.files.image), self)

    # --- assistants -------------------------------------------------------------------------

    def create_assistant(self, request: CreateAssistantRequest) -> Assistant:
        assistant_id, created_at = ids.new_id(ids.ASSISTANT)
        assistant = Assistant(id=assistant_id, created_at=created_at, model=request.model)
        self.resources.resolve(request.tool_resources, "tool_resources", None)  # a helper's store: no expiry
        assistant = assistant.with_changes(request.given())
        self._store.assistants().insert(assistant.id, document(assistant, request.given()))
        return assistant

    def list_assistants(self, query: ListQuery) -> ListPage[Assistant]:
        documents, has_more = self._store.assistants().page(
            query.order, query.limit, query.after, query.before
        )
        return ListPage[Assistant].of([Assistant.model_validate_json(d) for d in documents], has_more)

    def retrieve_assistant(self, assistant_id: str) -> Assistant:
        return Assistant.model_validate_json(self.assistant_record(assistant_id).document)

    def modify_assistant(self, assistant_id: str, request: ModifyAssistantRequest) -> Assistant:
        self.resources.refuse_helper(request.tool_resources, "tool_resources")
        self.resources.resolve(request.tool_resources, "tool_resources", None)

        def attempt() -> Assistant:
            record = self.assistant_record(assistant_id)
            assistant = Assistant.model_validate_json(record.document).with_changes(request.given())
            self._store.assistants().replace(assistant_id, record, document(assistant, request.given()))
            return assistant

        return optimistically(attempt)

    def delete_assistant(self, assistant_id: str) -> AssistantDeleted:
        def attempt() -> AssistantDeleted:
            self._store.assistants().delete(assistant_id, self.assistant_record(assistant_id))
            return AssistantDeleted(id=assistant_id)

        return optimistically(attempt)

    def assistant_record(self, assistant_id: str) -> Record:
        record = (
            self._store.assistants().get(assistant_id) if ids.is_valid(ids.ASSISTANT, assistant_id) else None
        )
        if record is None:
            raise NotFound.object("assistant", assistant_id)
        return record

    # --- threads ----------------------------------------------------------------------------

    def create_thread(self, request: CreateThreadRequest) -> Thread:
        self.new_thread_resources(request)
        new = NewThread.of(request)
        self._store.threads().create(new.thread.id, new.document, new.messages)
        return new.thread

    def retrieve_thread(self, thread_id: str) -> Thread:
        return Thread.model_validate_json(self.thread_record(thread_id).document)

    def new_thread_resources(self, request: CreateThreadRequest, within: str = "") -> None:
        """A new thread's files checked, its resources resolved (a helper's store made), and its
        messages' file_search attachments put in its store."""
        self.files.require(request.file_references(within))
        prefix = f"{within}." if within else ""
        self.resources.resolve(request.tool_resources, f"{prefix}tool_resources", THREAD_STORE_DAYS)
        attachments = [a for m in request.messages or [] for a in m.attachments or []]
        resources = request.tool_resources or ToolResources()
        if self.resources.attach(resources, attachments):
            request.tool_resources = resources

    def attach_to_thread(self, thread_id: str, attachments: list[Attachment]) -> None:
        """Files attached to new messages for file_search, in the thread's store (made, and the
        thread changed to list it, if it has none)."""
        if not any(t.type == "file_search" for a in attachments for t in a.tools):
            return

        def attempt() -> None:
            record = self.thread_record(thread_id)
            thread = Thread.model_validate_json(record.document)
            self.runs.check_unlocked(
                record, lambda run_id: f"Can't add messages to {thread_id} while a run {run_id} is active."
            )
            if self.resources.attach(thread.tool_resources, attachments):
                changes = {"tool_resources": thread.tool_resources}
                self._store.threads().replace(thread_id, record, document(thread, changes))

        optimistically(attempt)

    def modify_thread(self, thread_id: str, request: ModifyThreadRequest) -> Thread:
        self.resources.refuse_helper(request.tool_resources, "tool_resources")
        self.resources.resolve(request.tool_resources, "tool_resources", None)

        def attempt() -> Thread:
            record = self.thread_record(thread_id)
            thread = Thread.model_validate_json(record.document).with_changes(request.given())
            self._store.threads().replace(thread_id, record, document(thread, request.given()))
            return thread

        return optimistically(attempt)

    def delete_thread(self, thread_id: str) -> ThreadDeleted:
        def attempt() -> ThreadDeleted:
            if not (ids.is_valid(ids.THREAD, thread_id) and self._store.threads().delete(thread_id)):
                raise NotFound.object("thread", thread_id)
            return ThreadDeleted(id=thread_id)

        deleted: ThreadDeleted = optimistically(attempt)
        self.code.end(thread_id)  # its code_interpreter session, if this instance holds one
        return deleted

    def thread_record(self, thread_id: str) -> Record:
        record = self._store.threads().get(thread_id) if ids.is_valid(ids.THREAD, thread_id) else None
        if record is None:
            raise NotFound.object("thread", thread_id)
        return record

    # --- messages ---------------------------------------------------------------------------

    def create_message(self, thread_id: str, request: CreateMessageRequest) -> Message:
        self.files.require(request.file_references())
        self.attach_to_thread(thread_id, request.attachments or [])

        def attempt() -> Message:  # a conflict means another message took this number
            thread = self.thread_record(thread_id)
            self.runs.check_unlocked(
                thread, lambda run_id: f"Can't add messages to {thread_id} while a run {run_id} is active."
            )
            message_id = ids.sequential_id(ids.MESSAGE, next_message(thread))
            message = request.to_message(message_id, thread_id, ids.unix_seconds())
            self._store.threads().add_message(thread, message_id, document(message, request.given()))
            return message

        return optimistically(attempt)

    def list_messages(self, thread_id: str, query: ListQuery, run_id: str | None) -> ListPage[Message]:
        if not ids.is_valid(ids.THREAD, thread_id):
            raise NotFound.object("thread", thread_id)
        try:
            documents, has_more = self._messages(thread_id).page(
                query.order, query.limit, query.after, query.before, group=run_id
            )
        except OwnerGone:  # also while a deleted thread's rows are still being removed
            raise NotFound.object("thread", thread_id) from None
        return ListPage[Message].of([Message.model_validate_json(d) for d in documents], has_more)

    def retrieve_message(self, thread_id: str, message_id: str) -> Message:
        return Message.model_validate_json(self._message(thread_id, message_id).document)

    def modify_message(self, thread_id: str, message_id: str, request: ModifyMessageRequest) -> Message:
        def attempt() -> Message:
            record = self._message(thread_id, message_id, for_write=True)
            message = Message.model_validate_json(record.document).with_changes(request.given())
            self._messages(thread_id).replace(message_id, record, document(message, request.given()))
            return message

        # A message write's guard fails for good once its thread is gone: that is a 404.
        return optimistically(attempt, on_conflict=lambda: self.thread_record(thread_id))

    def delete_message(self, thread_id: str, message_id: str) -> MessageDeleted:
        def attempt() -> MessageDeleted:
            self._messages(thread_id).delete(message_id, self._message(thread_id, message_id, for_write=True))
            return MessageDeleted(id=message_id)

        return optimistically(attempt, on_conflict=lambda: self.thread_record(thread_id))

    def _messages(self, thread_id: str) -> Collection:
        return self._store.threads().messages(thread_id)

    def _message(self, thread_id: str, message_id: str, for_write: bool = False) -> Record:
        """The stored message, or a 404 naming the thread if the thread is what is missing. For a
        write, the thread is left to the write's guard (see modify_message)."""
        if not ids.is_valid(ids.THREAD, thread_id):
            raise NotFound.object("thread", thread_id)
        if not ids.is_valid(ids.MESSAGE, message_id):
            self.thread_record(thread_id)
            raise NotFound.object("message", message_id)
        try:
            record = self._messages(thread_id).get(message_id, for_write=for_write)
        except OwnerGone:  # also while a deleted thread's rows are still being removed
            raise NotFound.object("thread", thread_id) from None
        if record is None:
            if for_write:
                self.thread_record(thread_id)
            raise NotFound.object("message", message_id)
        return record

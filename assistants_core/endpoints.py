"""One function per documented endpoint: read the request, call the service."""

from __future__ import annotations

from . import ids
from .errors import InvalidRequest
from .files import LIST_LIMIT, Download
from .http import Call
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
from .models.file import CompleteUploadRequest, CreateUploadRequest, File, FileDeleted, Upload, UploadPart
from .models.run import (
    CreateRunRequest,
    CreateThreadAndRunRequest,
    ModifyRunRequest,
    Run,
    RunStep,
    SubmitToolOutputsRequest,
)
from .models.vector_store import (
    AttachFileRequest,
    CreateBatchRequest,
    CreateVectorStoreRequest,
    FileContentPage,
    ModifyVectorStoreRequest,
    SearchRequest,
    SearchResultsPage,
    UpdateFileRequest,
    VectorStore,
    VectorStoreDeleted,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileDeleted,
)
from .pagination import ListPage, ListQuery, id_param
from .run_state import EventStream
from .runs import POLL_AFTER_MS
from .vector_stores import POLL_AFTER_MS as INGEST_POLL_AFTER_MS

# The one `include[]` value there is: file_search results' content.
INCLUDABLE = frozenset({"step_details.tool_calls[*].file_search.results[*].content"})

# --- assistants ------------------------------------------------------------------------------


def create_assistant(call: Call) -> Assistant:
    return call.service.create_assistant(CreateAssistantRequest.parse(call.json()))


def list_assistants(call: Call) -> ListPage[Assistant]:
    return call.service.list_assistants(ListQuery.from_params(call.params, ids.ASSISTANT))


def retrieve_assistant(call: Call) -> Assistant:
    return call.service.retrieve_assistant(call.path("assistant_id"))


def modify_assistant(call: Call) -> Assistant:
    request = ModifyAssistantRequest.parse(call.json())
    return call.service.modify_assistant(call.path("assistant_id"), request)


def delete_assistant(call: Call) -> AssistantDeleted:
    return call.service.delete_assistant(call.path("assistant_id"))


# --- threads ---------------------------------------------------------------------------------


def create_thread(call: Call) -> Thread:
    return call.service.create_thread(CreateThreadRequest.parse(call.json()))


def list_threads(call: Call) -> ListPage[Thread]:
    """Azure AI Foundry's `GET /threads` (OpenAI has none). Refused: each thread is a partition
    of its own, so a listing would need an index every thread creation writes to, one more
    storage request per thread, not atomic with it, and one hot partition for the service."""
    raise InvalidRequest(
        "Listing threads (GET /threads) is an Azure AI Foundry Agent Service operation this "
        "service does not serve: keep the ids of the threads you create.",
        code="unsupported_operation",
    )


def retrieve_thread(call: Call) -> Thread:
    return call.service.retrieve_thread(call.path("thread_id"))


def modify_thread(call: Call) -> Thread:
    return call.service.modify_thread(call.path("thread_id"), ModifyThreadRequest.parse(call.json()))


def delete_thread(call: Call) -> ThreadDeleted:
    return call.service.delete_thread(call.path("thread_id"))


# --- messages --------------------------------------------------------------------------------


def create_message(call: Call) -> Message:
    return call.service.create_message(call.path("thread_id"), CreateMessageRequest.parse(call.json()))


def list_messages(call: Call) -> ListPage[Message]:
    query = ListQuery.from_params(call.params, ids.MESSAGE)
    run_id = id_param(call.params, "run_id", ids.RUN, foreign=True)
    return call.service.list_messages(call.path("thread_id"), query, run_id)


def retrieve_message(call: Call) -> Message:
    return call.service.retrieve_message(call.path("thread_id"), call.path("message_id"))


def modify_message(call: Call) -> Message:
    request = ModifyMessageRequest.parse(call.json())
    return call.service.modify_message(call.path("thread_id"), call.path("message_id"), request)


def delete_message(call: Call) -> MessageDeleted:
    return call.service.delete_message(call.path("thread_id"), call.path("message_id"))


# --- runs ------------------------------------------------------------------------------------


def create_run(call: Call) -> Run | EventStream:
    search_content = _include(call)
    request = CreateRunRequest.parse(call.json())
    return call.service.runs.create(call.path("thread_id"), request, search_content)


def create_thread_and_run(call: Call) -> Run | EventStream:
    return call.service.runs.create_thread_and_run(CreateThreadAndRunRequest.parse(call.json()))


def list_runs(call: Call) -> ListPage[Run]:
    return call.service.runs.list(call.path("thread_id"), ListQuery.from_params(call.params, ids.RUN))


def retrieve_run(call: Call) -> Run:
    run = call.service.runs.retrieve(call.path("thread_id"), call.path("run_id"))
    if run.is_active:  # steers the SDKs' polling helpers (Python polls every 1 s, JS every 5 s)
        call.response_headers["openai-poll-after-ms"] = str(POLL_AFTER_MS)
    return run


def modify_run(call: Call) -> Run:
    request = ModifyRunRequest.parse(call.json())
    return call.service.runs.modify(call.path("thread_id"), call.path("run_id"), request)


def submit_tool_outputs(call: Call) -> Run | EventStream:
    request = SubmitToolOutputsRequest.parse(call.json())
    return call.service.runs.submit_tool_outputs(call.path("thread_id"), call.path("run_id"), request)


def cancel_run(call: Call) -> Run:
    return call.service.runs.cancel(call.path("thread_id"), call.path("run_id"))


def list_run_steps(call: Call) -> ListPage[RunStep]:
    search_content = _include(call)
    query = ListQuery.from_params(call.params, ids.STEP)
    page = call.service.runs.list_steps(call.path("thread_id"), call.path("run_id"), query)
    return page.model_copy(update={"data": [step.shown(search_content) for step in page.data]})


def retrieve_run_step(call: Call) -> RunStep:
    search_content = _include(call)
    thread_id, run_id, step_id = call.path("thread_id"), call.path("run_id"), call.path("step_id")
    return call.service.runs.retrieve_step(thread_id, run_id, step_id).shown(search_content)


# --- files and uploads -----------------------------------------------------------------------


def create_file(call: Call) -> File:
    return call.service.files.create(call.headers.get("content-type", ""), call.stream)


def list_files(call: Call) -> ListPage[File]:
    purpose = call.params.get("purpose")
    query = ListQuery.from_params(call.params, ids.FILE, default=LIST_LIMIT, maximum=LIST_LIMIT)
    return call.service.files.list(query, purpose)


def retrieve_file(call: Call) -> File:
    return call.service.files.retrieve(call.path("file_id"))


def delete_file(call: Call) -> FileDeleted:
    return call.service.files.delete(call.path("file_id"))


def retrieve_file_content(call: Call) -> Download:
    return call.service.files.content(call.path("file_id"), call.headers.get("range"))


def create_upload(call: Call) -> Upload:
    return call.service.files.create_upload(CreateUploadRequest.parse(call.json()))


def add_upload_part(call: Call) -> UploadPart:
    content_type = call.headers.get("content-type", "")
    return call.service.files.add_part(call.path("upload_id"), content_type, call.stream)


def complete_upload(call: Call) -> Upload:
    request = CompleteUploadRequest.parse(call.json())
    return call.service.files.complete(call.path("upload_id"), request)


def cancel_upload(call: Call) -> Upload:
    return call.service.files.cancel(call.path("upload_id"))


# --- vector stores ---------------------------------------------------------------------------


def create_vector_store(call: Call) -> VectorStore:
    return call.service.vector_stores.create(CreateVectorStoreRequest.parse(call.json()))


def list_vector_stores(call: Call) -> ListPage[VectorStore]:
    return call.service.vector_stores.list_stores(ListQuery.from_params(call.params, ids.VECTOR_STORE))


def retrieve_vector_store(call: Call) -> VectorStore:
    return call.service.vector_stores.retrieve(call.path("vector_store_id"))


def modify_vector_store(call: Call) -> VectorStore:
    request = ModifyVectorStoreRequest.parse(call.json())
    return call.service.vector_stores.modify(call.path("vector_store_id"), request)


def delete_vector_store(call: Call) -> VectorStoreDeleted:
    return call.service.vector_stores.delete(call.path("vector_store_id"))


def search_vector_store(call: Call) -> SearchResultsPage:
    return call.service.vector_stores.search(call.path("vector_store_id"), SearchRequest.parse(call.json()))


def create_vector_store_file(call: Call) -> VectorStoreFile:
    request = AttachFileRequest.parse(call.json())
    return call.service.vector_stores.attach_file(call.path("vector_store_id"), request)


def list_vector_store_files(call: Call) -> ListPage[VectorStoreFile]:
    query = ListQuery.from_params(call.params, ids.FILE)
    return call.service.vector_stores.list_files(
        call.path("vector_store_id"), query, call.params.get("filter")
    )


def retrieve_vector_store_file(call: Call) -> VectorStoreFile:
    file = call.service.vector_stores.retrieve_file(call.path("vector_store_id"), call.path("file_id"))
    if file.status == "in_progress":
        call.response_headers["openai-poll-after-ms"] = str(INGEST_POLL_AFTER_MS)
    return file


def update_vector_store_file(call: Call) -> VectorStoreFile:
    request = UpdateFileRequest.parse(call.json())
    return call.service.vector_stores.update_file(call.path("vector_store_id"), call.path("file_id"), request)


def delete_vector_store_file(call: Call) -> VectorStoreFileDeleted:
    return call.service.vector_stores.detach(call.path("vector_store_id"), call.path("file_id"))


def retrieve_vector_store_file_content(call: Call) -> FileContentPage:
    return call.service.vector_stores.file_content(call.path("vector_store_id"), call.path("file_id"))


def create_vector_store_file_batch(call: Call) -> VectorStoreFileBatch:
    request = CreateBatchRequest.parse(call.json())
    return call.service.vector_stores.create_batch(call.path("vector_store_id"), request)


def retrieve_vector_store_file_batch(call: Call) -> VectorStoreFileBatch:
    batch = call.service.vector_stores.retrieve_batch(call.path("vector_store_id"), call.path("batch_id"))
    if batch.status == "in_progress":
        call.response_headers["openai-poll-after-ms"] = str(INGEST_POLL_AFTER_MS)
    return batch


def cancel_vector_store_file_batch(call: Call) -> VectorStoreFileBatch:
    return call.service.vector_stores.cancel_batch(call.path("vector_store_id"), call.path("batch_id"))


def list_vector_store_file_batch_files(call: Call) -> ListPage[VectorStoreFile]:
    query = ListQuery.from_params(call.params, ids.FILE)
    store_id, batch_id = call.path("vector_store_id"), call.path("batch_id")
    return call.service.vector_stores.list_batch_files(store_id, batch_id, query, call.params.get("filter"))


def _include(call: Call) -> bool:
    """Whether the request asks for file_search results' content (the one `include[]` value)."""
    for value in call.param_values("include[]"):
        if value not in INCLUDABLE:
            raise InvalidRequest(
                f"Invalid value for 'include[]': {value!r}. Supported values are: {sorted(INCLUDABLE)}.",
                param="include[]",
                code="invalid_value",
            )
    return bool(call.param_values("include[]"))

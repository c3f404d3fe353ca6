"""The API's table of contents: one HTTP function per endpoint, each handing over to assistants_core.

Routes sit under the `openai` prefix set in host.json. Functions' own keys are off (ANONYMOUS):
the API key is checked in code, the way Azure OpenAI clients send it. The functions use the
HTTP-streams types (FastAPI's Request and Response) and are async, so that a body is awaited
and a response may stream; the work itself runs off the event loop (assistants_core.http).
"""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from assistants_core import endpoints
from assistants_core.files import MAX_PART_REQUEST_BYTES, MAX_REQUEST_BYTES
from assistants_core.http import Api
from assistants_core.routing import ALL_METHODS, FunctionApp

app = FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
api = Api.from_environment()  # refuses to start without API keys and storage settings


@app.route(route="assistants", methods=["POST"])
async def create_assistant(req: Request) -> Response:
    return await api.handle(req, endpoints.create_assistant)


@app.route(route="assistants", methods=["GET"])
async def list_assistants(req: Request) -> Response:
    return await api.handle(req, endpoints.list_assistants)


@app.route(route="assistants/{assistant_id}", methods=["GET"])
async def retrieve_assistant(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_assistant)


@app.route(route="assistants/{assistant_id}", methods=["POST"])
async def modify_assistant(req: Request) -> Response:
    return await api.handle(req, endpoints.modify_assistant)


@app.route(route="assistants/{assistant_id}", methods=["DELETE"])
async def delete_assistant(req: Request) -> Response:
    return await api.handle(req, endpoints.delete_assistant)


@app.route(route="threads", methods=["POST"])
async def create_thread(req: Request) -> Response:
    return await api.handle(req, endpoints.create_thread)


@app.route(route="threads", methods=["GET"])
async def list_threads(req: Request) -> Response:
    return await api.handle(req, endpoints.list_threads)


@app.route(route="threads/{thread_id}", methods=["GET"])
async def retrieve_thread(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_thread)


@app.route(route="threads/{thread_id}", methods=["POST"])
async def modify_thread(req: Request) -> Response:
    return await api.handle(req, endpoints.modify_thread)


@app.route(route="threads/{thread_id}", methods=["DELETE"])
async def delete_thread(req: Request) -> Response:
    return await api.handle(req, endpoints.delete_thread)


@app.route(route="threads/{thread_id}/messages", methods=["POST"])
async def create_message(req: Request) -> Response:
    return await api.handle(req, endpoints.create_message)


@app.route(route="threads/{thread_id}/messages", methods=["GET"])
async def list_messages(req: Request) -> Response:
    return await api.handle(req, endpoints.list_messages)


@app.route(route="threads/{thread_id}/messages/{message_id}", methods=["GET"])
async def retrieve_message(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_message)


@app.route(route="threads/{thread_id}/messages/{message_id}", methods=["POST"])
async def modify_message(req: Request) -> Response:
    return await api.handle(req, endpoints.modify_message)


@app.route(route="threads/{thread_id}/messages/{message_id}", methods=["DELETE"])
async def delete_message(req: Request) -> Response:
    return await api.handle(req, endpoints.delete_message)


@app.route(route="threads/{thread_id}/runs", methods=["POST"])
async def create_run(req: Request) -> Response:
    return await api.handle(req, endpoints.create_run)


@app.route(route="threads/runs", methods=["POST"])
async def create_thread_and_run(req: Request) -> Response:
    return await api.handle(req, endpoints.create_thread_and_run)


@app.route(route="threads/{thread_id}/runs", methods=["GET"])
async def list_runs(req: Request) -> Response:
    return await api.handle(req, endpoints.list_runs)


@app.route(route="threads/{thread_id}/runs/{run_id}", methods=["GET"])
async def retrieve_run(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_run)


@app.route(route="threads/{thread_id}/runs/{run_id}", methods=["POST"])
async def modify_run(req: Request) -> Response:
    return await api.handle(req, endpoints.modify_run)


@app.route(route="threads/{thread_id}/runs/{run_id}/submit_tool_outputs", methods=["POST"])
async def submit_tool_outputs(req: Request) -> Response:
    return await api.handle(req, endpoints.submit_tool_outputs)


@app.route(route="threads/{thread_id}/runs/{run_id}/cancel", methods=["POST"])
async def cancel_run(req: Request) -> Response:
    return await api.handle(req, endpoints.cancel_run)


@app.route(route="threads/{thread_id}/runs/{run_id}/steps", methods=["GET"])
async def list_run_steps(req: Request) -> Response:
    return await api.handle(req, endpoints.list_run_steps)


@app.route(route="threads/{thread_id}/runs/{run_id}/steps/{step_id}", methods=["GET"])
async def retrieve_run_step(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_run_step)


@app.route(route="files", methods=["POST"])
async def create_file(req: Request) -> Response:
    return await api.handle(req, endpoints.create_file, streamed_up_to=MAX_REQUEST_BYTES)


@app.route(route="files", methods=["GET"])
async def list_files(req: Request) -> Response:
    return await api.handle(req, endpoints.list_files)


@app.route(route="files/{file_id}", methods=["GET"])
async def retrieve_file(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_file)


@app.route(route="files/{file_id}", methods=["DELETE"])
async def delete_file(req: Request) -> Response:
    return await api.handle(req, endpoints.delete_file)


@app.route(route="files/{file_id}/content", methods=["GET"])
async def retrieve_file_content(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_file_content)


@app.route(route="uploads", methods=["POST"])
async def create_upload(req: Request) -> Response:
    return await api.handle(req, endpoints.create_upload)


@app.route(route="uploads/{upload_id}/parts", methods=["POST"])
async def add_upload_part(req: Request) -> Response:
    return await api.handle(req, endpoints.add_upload_part, streamed_up_to=MAX_PART_REQUEST_BYTES)


@app.route(route="uploads/{upload_id}/complete", methods=["POST"])
async def complete_upload(req: Request) -> Response:
    return await api.handle(req, endpoints.complete_upload)


@app.route(route="uploads/{upload_id}/cancel", methods=["POST"])
async def cancel_upload(req: Request) -> Response:
    return await api.handle(req, endpoints.cancel_upload)


@app.route(route="vector_stores", methods=["POST"])
async def create_vector_store(req: Request) -> Response:
    return await api.handle(req, endpoints.create_vector_store)


@app.route(route="vector_stores", methods=["GET"])
async def list_vector_stores(req: Request) -> Response:
    return await api.handle(req, endpoints.list_vector_stores)


@app.route(route="vector_stores/{vector_store_id}", methods=["GET"])
async def retrieve_vector_store(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_vector_store)


@app.route(route="vector_stores/{vector_store_id}", methods=["POST"])
async def modify_vector_store(req: Request) -> Response:
    return await api.handle(req, endpoints.modify_vector_store)


@app.route(route="vector_stores/{vector_store_id}", methods=["DELETE"])
async def delete_vector_store(req: Request) -> Response:
    return await api.handle(req, endpoints.delete_vector_store)


@app.route(route="vector_stores/{vector_store_id}/search", methods=["POST"])
async def search_vector_store(req: Request) -> Response:
    return await api.handle(req, endpoints.search_vector_store)


@app.route(route="vector_stores/{vector_store_id}/files", methods=["POST"])
async def create_vector_store_file(req: Request) -> Response:
    return await api.handle(req, endpoints.create_vector_store_file)


@app.route(route="vector_stores/{vector_store_id}/files", methods=["GET"])
async def list_vector_store_files(req: Request) -> Response:
    return await api.handle(req, endpoints.list_vector_store_files)


@app.route(route="vector_stores/{vector_store_id}/files/{file_id}", methods=["GET"])
async def retrieve_vector_store_file(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_vector_store_file)


@app.route(route="vector_stores/{vector_store_id}/files/{file_id}", methods=["POST"])
async def update_vector_store_file(req: Request) -> Response:
    return await api.handle(req, endpoints.update_vector_store_file)


@app.route(route="vector_stores/{vector_store_id}/files/{file_id}", methods=["DELETE"])
async def delete_vector_store_file(req: Request) -> Response:
    return await api.handle(req, endpoints.delete_vector_store_file)


@app.route(route="vector_stores/{vector_store_id}/files/{file_id}/content", methods=["GET"])
async def retrieve_vector_store_file_content(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_vector_store_file_content)


@app.route(route="vector_stores/{vector_store_id}/file_batches", methods=["POST"])
async def create_vector_store_file_batch(req: Request) -> Response:
    return await api.handle(req, endpoints.create_vector_store_file_batch)


@app.route(route="vector_stores/{vector_store_id}/file_batches/{batch_id}", methods=["GET"])
async def retrieve_vector_store_file_batch(req: Request) -> Response:
    return await api.handle(req, endpoints.retrieve_vector_store_file_batch)


@app.route(route="vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel", methods=["POST"])
async def cancel_vector_store_file_batch(req: Request) -> Response:
    return await api.handle(req, endpoints.cancel_vector_store_file_batch)


@app.route(route="vector_stores/{vector_store_id}/file_batches/{batch_id}/files", methods=["GET"])
async def list_vector_store_file_batch_files(req: Request) -> Response:
    return await api.handle(req, endpoints.list_vector_store_file_batch_files)


# --- background work -------------------------------------------------------------------------


@app.queue_trigger(
    arg_name="message",
    queue_name="%ASSISTANTS_RUNS_QUEUE%",
    connection="ASSISTANTS_STORAGE_CONNECTION_STRING",
)
def execute_run(message: func.QueueMessage) -> None:
    api.worker.execute(message.get_body(), message.dequeue_count)


@app.queue_trigger(
    arg_name="message",
    queue_name="%ASSISTANTS_INGEST_QUEUE%",
    connection="ASSISTANTS_STORAGE_CONNECTION_STRING",
)
def ingest_file(message: func.QueueMessage) -> None:
    api.worker.ingest(message.get_body(), message.dequeue_count)


@app.timer_trigger(schedule="*/15 * * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
def sweep_runs(timer: func.TimerRequest) -> None:
    api.worker.sweep()


@app.route(route="{*path}", methods=ALL_METHODS)
async def unmatched_route(req: Request) -> Response:
    return await api.handle_unmatched(req, app)

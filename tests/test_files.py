"""The Files and Uploads APIs through the official Python SDK (both clients) and raw HTTP: bytes in
Blob Storage, rows in Table Storage, nothing left behind by a request that fails."""

from __future__ import annotations

import hashlib
import io
import os
import socket
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pytest
from openai import OpenAI

from tests.model_server import ModelServer
from tests.support import API_KEYS, DevHost, assert_error, error_of, run_concurrently, stored_rows, wait_until


def blobs(host: DevHost) -> list[str]:
    """The names of the blobs in the host's files container (none if it was never made)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(host.storage, (host.table_prefix + "files").lower())
    try:
        return [blob.name for blob in container.list_blobs()]
    except ResourceNotFoundError:
        return []


def uncommitted(host: DevHost, name: str) -> int:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobClient

    blob = BlobClient.from_connection_string(host.storage, (host.table_prefix + "files").lower(), name)
    try:
        return len(blob.get_block_list("uncommitted")[1])
    except ResourceNotFoundError:
        return 0


def file_rows(host: DevHost) -> int:
    return stored_rows(host.storage, host.table_prefix + "files")


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def post_multipart(
    http: httpx.Client, body: bytes, boundary: str = "b0undary", path: str = "/files"
) -> httpx.Response:
    return http.post(
        path, content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )


# --- create, in every form the Python SDK takes -----------------------------------------------


def test_create_from_a_path_an_open_file_bytes_and_a_tuple(client: OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(b"# Notes\nhello")
    from_path = client.files.create(file=path, purpose="assistants")
    with path.open("rb") as handle:
        from_handle = client.files.create(file=handle, purpose="user_data")
    from_bytes = client.files.create(file=b"raw bytes", purpose="assistants")
    from_tuple = client.files.create(
        file=("report.pdf", b"%PDF-1.4 tiny", "application/pdf"), purpose="vision"
    )

    assert (from_path.filename, from_path.bytes, from_path.purpose) == ("notes.md", 13, "assistants")
    assert (from_handle.filename, from_handle.purpose) == ("notes.md", "user_data")
    assert (from_bytes.filename, from_bytes.bytes) == ("upload", 9)
    assert (from_tuple.filename, from_tuple.purpose) == ("report.pdf", "vision")
    for file in (from_path, from_handle, from_bytes, from_tuple):
        assert file.id.startswith("file-")
        assert file.object == "file"
        assert file.status == "processed"
        assert file.expires_at is None and file.status_details is None
        assert client.files.retrieve(file.id) == file
    assert client.files.content(from_tuple.id).read() == b"%PDF-1.4 tiny"
    assert client.files.content(from_path.id).read() == b"# Notes\nhello"


def test_the_wire_object_has_every_field(http: httpx.Client) -> None:
    body = multipart([("purpose", None, b"assistants"), ("file", "a.txt", b"abc")])
    created = post_multipart(http, body).json()
    assert set(created) == {
        "id",
        "object",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
        "status",
        "status_details",
    }
    assert created["status"] == "processed"


def test_expires_after_sets_expires_at(client: OpenAI) -> None:
    file = client.files.create(
        file=("a.txt", b"x"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert file.expires_at == file.created_at + 3600


def test_the_file_part_may_come_first_and_the_body_chunked(http: httpx.Client) -> None:
    """As JS SDK 6/7 send `fs.createReadStream`: the file part first, Transfer-Encoding chunked."""
    data = os.urandom(300_000)
    body = multipart([("file", "data.bin", data), ("purpose", None, b"assistants")])

    def pieces() -> Any:
        for i in range(0, len(body), 7_777):
            yield body[i : i + 7_777]

    response = http.post(
        "/files", content=pieces(), headers={"content-type": "multipart/form-data; boundary=b0undary"}
    )
    assert response.status_code == 200, response.text
    assert "content-length" not in response.request.headers
    file = response.json()
    assert file["bytes"] == len(data)
    assert http.get(f"/files/{file['id']}/content").content == data


def test_a_file_of_several_blocks_round_trips(client: OpenAI) -> None:
    data = os.urandom(9 * 1024 * 1024 + 123)
    file = client.files.create(file=("big.bin", data), purpose="assistants")
    assert file.bytes == len(data)
    assert client.files.content(file.id).read() == data


# --- list, retrieve, content, delete ----------------------------------------------------------


def test_list_by_purpose_in_both_orders_with_pagination(client: OpenAI, devhost: DevHost) -> None:
    purpose: Literal["fine-tune"] = (
        "fine-tune"  # this test's own group: other tests upload for other purposes
    )
    made = [client.files.create(file=(f"f{i}.jsonl", b"{}"), purpose=purpose).id for i in range(5)]
    newest_first = [f.id for f in client.files.list(purpose=purpose, limit=2) if f.id in made]
    assert newest_first == made[::-1]
    oldest_first = [f.id for f in client.files.list(purpose=purpose, limit=2, order="asc") if f.id in made]
    assert oldest_first == made
    page = client.files.list(purpose=purpose, limit=2, order="asc", after=made[3])
    assert [f.id for f in page.data] == [made[4]] or made[4] in [f.id for f in page.data]
    everything = [f.id for f in client.files.list(limit=100)]
    assert set(made) <= set(everything)
    for file_id in made:
        client.files.delete(file_id)


def test_a_list_page_always_has_its_cursors(http: httpx.Client) -> None:
    page = http.get("/files", params={"purpose": "evals", "limit": 1}).json()
    assert set(page) == {"object", "data", "first_id", "last_id", "has_more"}


def test_retrieve_content_deprecated_returns_the_text(client: OpenAI) -> None:
    file = client.files.create(file=("hello.txt", b"hello there"), purpose="assistants")
    with pytest.warns(DeprecationWarning):
        assert client.files.retrieve_content(file.id) == "hello there"


def test_content_headers_and_ranges(http: httpx.Client) -> None:
    name = "résumé 2024.txt"
    created = post_multipart(
        http, multipart([("purpose", None, b"assistants"), ("file", name, b"0123456789")])
    ).json()
    response = http.get(f"/files/{created['id']}/content", headers={"accept": "application/json"})
    assert response.content == b"0123456789"
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        response.headers["content-disposition"] == "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.txt"
    )
    part = http.get(f"/files/{created['id']}/content", headers={"range": "bytes=2-5"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (206, b"2345", "bytes 2-5/10")
    tail = http.get(f"/files/{created['id']}/content", headers={"range": "bytes=-3"})
    assert tail.content == b"789"
    outside = http.get(f"/files/{created['id']}/content", headers={"range": "bytes=50-"})
    assert outside.status_code == 416


def test_delete_then_404_with_openais_text(client: OpenAI, devhost: DevHost) -> None:
    file = client.files.create(file=("gone.txt", b"bye"), purpose="assistants")
    assert file.id in blobs(devhost)
    deleted = client.files.delete(file.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (file.id, True, "file")
    assert file.id not in blobs(devhost)
    for call in (client.files.retrieve, client.files.delete, client.files.content):
        with pytest.raises(openai.NotFoundError) as caught:
            call(file.id)
        error = error_of(caught.value)
        assert error["message"] == f"No such File object: {file.id}"
        assert error["param"] == "id"


def test_unknown_ids_are_404(http: httpx.Client) -> None:
    for file_id in ("file-abc", "nonsense", "file-" + "A" * 24):
        assert_error(http.get(f"/files/{file_id}"), 404, "id")


# --- errors and hostile input: a 4xx, and nothing stored ---------------------------------------


@pytest.fixture
def nothing_stored(devhost: DevHost) -> Any:
    rows, names = file_rows(devhost), set(blobs(devhost))
    yield
    assert file_rows(devhost) == rows
    new = set(blobs(devhost)) - names
    assert not new, new


def test_bad_purpose_and_missing_fields_name_their_param(
    client: OpenAI, http: httpx.Client, nothing_stored: None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("a.txt", b"x"), purpose="assistants_output")  # type: ignore[arg-type]
    assert error_of(caught.value)["param"] == "purpose"
    assert_error(post_multipart(http, multipart([("file", "a.txt", b"x")])), 400, "purpose")
    assert_error(post_multipart(http, multipart([("purpose", None, b"assistants")])), 400, "file")
    assert_error(
        post_multipart(http, multipart([("purpose", None, b"nope"), ("file", "a.txt", b"x")])), 400, "purpose"
    )
    assert_error(
        post_multipart(
            http, multipart([("purpose", None, b"assistants"), ("file", "a.txt", b"x"), ("x", None, b"1")])
        ),
        400,
        "x",
    )
    assert_error(http.post("/files", json={"purpose": "assistants"}), 400, None, "invalid_content_type")
    assert_error(http.get("/files", params={"purpose": "nope"}), 400, "purpose")


@pytest.mark.parametrize(
    "filename",
    ["../etc/passwd", "a\\b.txt", "bell\x07.txt", "x" * 1000 + ".txt", ""],
)
def test_hostile_filenames(http: httpx.Client, filename: str, nothing_stored: None) -> None:
    body = multipart([("purpose", None, b"assistants"), ("file", filename, b"data")])
    assert_error(post_multipart(http, body), 400, "file")


def test_an_empty_file_is_refused(http: httpx.Client, nothing_stored: None) -> None:
    body = multipart([("purpose", None, b"assistants"), ("file", "empty.txt", b"")])
    assert_error(post_multipart(http, body), 400, "file", "empty_file")


def test_a_body_that_lies_about_its_parts(http: httpx.Client, nothing_stored: None) -> None:
    good = multipart([("purpose", None, b"assistants"), ("file", "a.txt", os.urandom(5_000_000))])
    # Another boundary than the header names; the closing delimiter missing; a part without a name.
    assert_error(post_multipart(http, good, boundary="other"), 400, None, "invalid_multipart")
    assert_error(post_multipart(http, good[:-12]), 400, None, "invalid_multipart")
    nameless = good.replace(b'name="purpose"', b'nom="purpose"')
    assert_error(post_multipart(http, nameless), 400, None, "invalid_multipart")
    twice = multipart([("purpose", None, b"assistants"), ("file", "a.txt", b"1"), ("file", "b.txt", b"2")])
    assert_error(post_multipart(http, twice), 400, "file", "duplicate_parameter")


def raw_request(host: DevHost, head: bytes, body: bytes, read: bool = True) -> bytes:
    """A request written to the socket as given (a body shorter than it declares, say); the
    status line and headers of the answer, if `read`."""
    address, port = host.base_url.removeprefix("http://").split(":")
    with socket.create_connection((address, int(port)), timeout=30) as sock:
        sock.sendall(head + body)
        if not read:
            return b""
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def request_head(declared: int) -> bytes:
    return (
        b"POST /openai/files HTTP/1.1\r\nHost: x\r\napi-key: " + API_KEYS[0].encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
    )


def test_a_truncated_upload_leaves_nothing(
    devhost: DevHost, http: httpx.Client, nothing_stored: None
) -> None:
    """A client that declares 10 MB, sends 6 MB of a file and goes away."""
    head = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n'
    raw_request(devhost, request_head(10_000_000), head + os.urandom(6_000_000), read=False)
    # Whatever the host had staged is discarded once it sees the connection close.
    wait_until(
        lambda: all(uncommitted(devhost, name) == 0 for name in blobs(devhost)), 10, "no staged blocks"
    )


def test_over_the_request_limit_is_a_413(devhost: DevHost, nothing_stored: None) -> None:
    answer = raw_request(devhost, request_head(101 * 1024 * 1024), b"--b0undary\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_over_the_limit_is_a_413(http: httpx.Client, nothing_stored: None) -> None:
    head = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    block = b"\0" * (1024 * 1024)

    def body() -> Any:
        yield head
        for _ in range(101):
            yield block

    try:
        response = http.post(
            "/files", content=body(), headers={"content-type": "multipart/form-data; boundary=b0undary"}
        )
    except httpx.TransportError:  # the server answered and closed before the client finished
        return
    assert_error(response, 413, "file", "request_too_large")


# --- uploads ----------------------------------------------------------------------------------


def test_upload_file_chunked_in_several_parts(client: OpenAI, tmp_path: Path) -> None:
    data = os.urandom(2_500_000)
    path = tmp_path / "chunked.bin"
    path.write_bytes(data)
    upload = client.uploads.upload_file_chunked(
        file=path, mime_type="application/octet-stream", purpose="assistants", part_size=1_000_000
    )
    assert upload.status == "completed"
    assert upload.file is not None
    assert (upload.file.bytes, upload.file.filename, upload.file.status) == (
        len(data),
        "chunked.bin",
        "processed",
    )
    assert client.files.content(upload.file.id).read() == data


def test_complete_assembles_parts_in_the_order_given_and_checks_md5(client: OpenAI, devhost: DevHost) -> None:
    upload = client.uploads.create(bytes=6, filename="abc.txt", mime_type="text/plain", purpose="assistants")
    assert (upload.status, upload.object, upload.file) == ("pending", "upload", None)
    assert upload.expires_at == upload.created_at + 3600
    first = client.uploads.parts.create(upload.id, data=b"abc")
    second = client.uploads.parts.create(upload.id, data=b"def")
    assert (first.object, first.upload_id) == ("upload.part", upload.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.uploads.complete(upload.id, part_ids=[second.id, first.id], md5="0" * 32)
    assert error_of(caught.value)["param"] == "md5"
    upload2 = client.uploads.create(bytes=6, filename="abc.txt", mime_type="text/plain", purpose="assistants")
    a = client.uploads.parts.create(upload2.id, data=b"abc")
    b = client.uploads.parts.create(upload2.id, data=b"def")
    md5 = hashlib.md5(b"defabc").hexdigest()
    done = client.uploads.complete(upload2.id, part_ids=[b.id, a.id], md5=md5)
    assert done.status == "completed" and done.file is not None
    assert client.files.content(done.file.id).read() == b"defabc"
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(upload2.id, data=b"more")


def test_cancel_leaves_no_blocks_and_wrong_sizes_are_refused(client: OpenAI, devhost: DevHost) -> None:
    upload = client.uploads.create(
        bytes=10, filename="x.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    part = client.uploads.parts.create(upload.id, data=b"abc")
    with pytest.raises(openai.BadRequestError) as caught:
        client.uploads.complete(upload.id, part_ids=[part.id])
    assert error_of(caught.value)["param"] == "part_ids"
    with pytest.raises(openai.BadRequestError) as caught:
        client.uploads.complete(upload.id, part_ids=["part_" + "A" * 24])
    assert error_of(caught.value)["param"] == "part_ids[0]"
    with pytest.raises(openai.BadRequestError) as caught:
        client.uploads.parts.create(upload.id, data=b"12345678")  # 3 + 8 > 10
    assert error_of(caught.value)["param"] == "data"
    rows = file_rows(devhost)
    cancelled = client.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled"
    assert file_rows(devhost) == rows
    assert all(uncommitted(devhost, name) == 0 for name in blobs(devhost))
    with pytest.raises(openai.BadRequestError):
        client.uploads.cancel(upload.id)
    with pytest.raises(openai.NotFoundError):
        client.uploads.cancel("upload_" + "A" * 24)


def test_upload_request_errors(http: httpx.Client) -> None:
    assert_error(
        http.post("/uploads", json={"filename": "a", "purpose": "x", "bytes": 1, "mime_type": "t"}),
        400,
        "purpose",
    )
    assert_error(
        http.post("/uploads", json={"purpose": "assistants", "bytes": 1, "mime_type": "t"}), 400, "filename"
    )
    too_big = {"filename": "a", "purpose": "assistants", "bytes": 9 * 1024**3, "mime_type": "t"}
    assert_error(http.post("/uploads", json=too_big), 400, "bytes")


def test_uploads_and_files_expire(client: OpenAI, devhost: DevHost) -> None:
    """The sweeper's work, done in process against the same storage: the Upload's row made an
    hour old, then swept."""
    from assistants_core.files import Files
    from assistants_core.models.file import Upload
    from assistants_core.settings import Settings
    from assistants_core.storage import Store

    upload = client.uploads.create(
        bytes=3, filename="late.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    client.uploads.parts.create(upload.id, data=b"abc")
    settings = Settings.from_environ(
        {
            "ASSISTANTS_API_KEYS": "k",
            "ASSISTANTS_STORAGE_CONNECTION_STRING": devhost.storage,
            "ASSISTANTS_TABLE_PREFIX": devhost.table_prefix,
        }
    )
    store = Store(settings)
    found = store.uploads().get(upload.id)
    assert found is not None
    Files(store).sweep(now=upload.created_at + 3599)  # not yet
    assert Upload.model_validate_json(store.uploads().get(upload.id).record.document).status == "pending"  # type: ignore[union-attr]
    Files(store).sweep(now=upload.expires_at + 1)
    with pytest.raises(openai.BadRequestError) as caught:
        client.uploads.parts.create(upload.id, data=b"more")
    assert "expired" in error_of(caught.value)["message"]
    assert uncommitted(devhost, found.file_id) == 0
    # An hour later every row of it is gone, as are those of an Upload completed meanwhile.
    done = client.uploads.create(bytes=1, filename="d.txt", mime_type="text/plain", purpose="assistants")
    done = client.uploads.complete(done.id, part_ids=[client.uploads.parts.create(done.id, data=b"d").id])
    Files(store).sweep(now=done.expires_at + 1)
    assert stored_rows(devhost.storage, devhost.table_prefix + "uploads", upload.id) > 0
    Files(store).sweep(now=done.expires_at + 3600)
    for gone in (upload.id, done.id):
        assert stored_rows(devhost.storage, devhost.table_prefix + "uploads", gone) == 0
        with pytest.raises(openai.NotFoundError):
            client.uploads.cancel(gone)
    assert done.file is not None and client.files.retrieve(done.file.id).bytes == 1

    # A file's expires_after: deleted by the sweeper once its time has come, blob and row.
    file = client.files.create(
        file=("brief.txt", b"x"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert file.expires_at is not None
    Files(store).sweep(now=file.expires_at - 1)
    assert client.files.retrieve(file.id).id == file.id
    Files(store).sweep(now=file.expires_at)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)
    assert file.id not in blobs(devhost)
    assert file.id not in [
        i for i, _ in store.file_expiries().due(file.expires_at + 10)
    ]  # its row is gone too


# --- messages that name files -----------------------------------------------------------------


def test_messages_name_existing_files(client: OpenAI) -> None:
    image = client.files.create(file=("dot.png", b"\x89PNG\r\n\x1a\n"), purpose="vision")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "look"},
            {"type": "image_file", "image_file": {"file_id": image.id}},
        ],
        attachments=[{"file_id": image.id, "tools": [{"type": "code_interpreter"}]}],
    )
    assert message.attachments is not None and message.attachments[0].file_id == image.id
    missing = "file-" + "Z" * 24
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content=[
                {"type": "text", "text": "x"},
                {"type": "image_file", "image_file": {"file_id": missing}},
            ],
        )
    assert error_of(caught.value)["param"] == "content[1].image_file.file_id"
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="x",
            attachments=[{"file_id": missing, "tools": [{"type": "file_search"}]}],
        )
    assert error_of(caught.value)["param"] == "attachments[0].file_id"
    image_part: Any = {"type": "image_file", "image_file": {"file_id": missing}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.create(
            messages=[{"role": "user", "content": "x"}, {"role": "user", "content": [image_part]}]
        )
    assert error_of(caught.value)["param"] == "messages[1].content[0].image_file.file_id"
    assistant = client.beta.assistants.create(model="gpt-test")
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": [image_part]}]}
        )
    assert error_of(caught.value)["param"] == "thread.messages[0].content[0].image_file.file_id"
    client.files.delete(image.id)
    assert (
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id).attachments
        == message.attachments
    )


def test_file_calls_send_nothing_extra(http: httpx.Client) -> None:
    """Old SDKs send Content-Type: application/json on bodiless GET and DELETE: accepted."""
    response = http.get("/files", headers={"content-type": "application/json"})
    assert response.status_code == 200
    stream = io.BytesIO(b"")
    assert stream.read() == b""


def test_images_beyond_what_a_model_takes_fail_the_run(client: OpenAI, model: ModelServer) -> None:
    """One image over 20 MB, or a thread's images over 50 MB as base64: invalid_prompt, saying why,
    and no model call."""
    assistant = client.beta.assistants.create(model="gpt-test")

    def image_part(megabytes: int) -> Any:
        data = b"\x89PNG\r\n\x1a\n" + bytes(megabytes * 1024 * 1024)
        file = client.files.create(file=("big.png", data), purpose="vision")
        return {"type": "image_file", "image_file": {"file_id": file.id}}

    before = len(model.requests)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": [image_part(21)]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "invalid_prompt" and "20,971,520 bytes" in run.last_error.message

    parts = [image_part(13) for _ in range(3)]  # 52 MiB as base64
    thread = client.beta.threads.create(messages=[{"role": "user", "content": parts}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "invalid_prompt" and "52,428,800 bytes" in run.last_error.message
    assert len(model.requests) == before


def test_two_completions_at_once_or_a_retry_make_one_file(client: OpenAI) -> None:
    upload = client.uploads.create(
        bytes=4, filename="twice.txt", mime_type="text/plain", purpose="assistants"
    )
    part = client.uploads.parts.create(upload.id, data=b"once")
    answers: list[Any] = []
    run_concurrently(
        [lambda: answers.append(client.uploads.complete(upload.id, part_ids=[part.id])) for _ in range(2)]
    )
    assert {a.status for a in answers} == {"completed"}
    assert len({a.file.id for a in answers}) == 1
    assert client.files.content(answers[0].file.id).read() == b"once"
    assert client.uploads.complete(upload.id, part_ids=[part.id]) == answers[0]  # a retry


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/files"),
        ("GET", "/files"),
        ("GET", "/files/file-abc"),
        ("DELETE", "/files/file-abc"),
        ("GET", "/files/file-abc/content"),
        ("POST", "/uploads"),
        ("POST", "/uploads/upload_abc/parts"),
        ("POST", "/uploads/upload_abc/complete"),
        ("POST", "/uploads/upload_abc/cancel"),
    ],
)
def test_every_files_route_wants_a_key_and_a_known_version(devhost: DevHost, method: str, path: str) -> None:
    with httpx.Client(base_url=devhost.api_url) as anonymous:
        refused = anonymous.request(method, path, content=b"x" * 1000)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "401"
        versioned = anonymous.request(
            method, path, params={"api-version": "2023-01-01"}, headers={"api-key": API_KEYS[0]}, content=b"x"
        )
        assert versioned.status_code == 400 and versioned.json()["error"]["code"] == "BadRequest"


# --- the multipart reader on its own ------------------------------------------------------------


@pytest.mark.parametrize("piece", [1, 2, 3, 17, 4096])
def test_the_reader_finds_parts_however_the_body_is_cut(piece: int) -> None:
    from assistants_core.multipart import Reader

    data = b"\r\n--b0undarZ--b0undary" + os.urandom(3000) + b"\r\n--b0undar"  # near-delimiters inside
    body = (
        b"preamble\r\n"
        + multipart([("file", 'a \\"q\\".bin', data), ("purpose", None, b"vision")])
        + b"epilogue"
    )
    chunks = (body[i : i + piece] for i in range(0, len(body), piece))
    found = [(p.name, p.filename, b"".join(p.chunks())) for p in Reader(chunks, b"b0undary").parts()]
    assert found == [("file", 'a "q".bin', data), ("purpose", None, b"vision")]


def test_the_reader_skips_a_part_left_unread_and_refuses_a_truncated_body() -> None:
    from assistants_core.errors import InvalidRequest
    from assistants_core.multipart import Reader

    body = multipart([("a", None, b"1" * 100), ("b", None, b"2")])
    assert [p.name for p in Reader(iter([body]), b"b0undary").parts()] == ["a", "b"]
    with pytest.raises(InvalidRequest):
        for part in Reader(iter([body[:-20]]), b"b0undary").parts():
            b"".join(part.chunks())


def test_a_run_whose_image_was_deleted_fails_saying_so(client: OpenAI, model: ModelServer) -> None:
    assistant = client.beta.assistants.create(model="gpt-test")
    image = client.files.create(file=("gone.webp", b"RIFF0000WEBP"), purpose="vision")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": [{"type": "image_file", "image_file": {"file_id": image.id}}]}]
    )
    client.files.delete(image.id)
    before = len(model.requests)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "invalid_prompt"
    assert image.id in run.last_error.message and "no longer exists" in run.last_error.message
    assert len(model.requests) == before

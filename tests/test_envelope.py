"""Entity-group transactions in our own envelope (assistants_core/storage/envelope.py): the same
bytes as azure-data-tables' own encoder for every shape the service sends, the same results and
the same exceptions as its `submit_transaction` against Azurite, for every failure, and the same
exceptions of the storage package above it."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from http.client import HTTPResponse
from io import BytesIO
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse
from azure.data.tables import (
    TableClient,
    TableEntity,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)
from azure.data.tables._error import RequestTooLargeError

from assistants_core import ids
from assistants_core.storage import ConcurrentUpdate, DocumentTooLarge, StorageUnavailable, envelope
from assistants_core.storage.collection import Batch, Collection
from assistants_core.storage.rows import MAX_DOCUMENT_BYTES, Operation, Partition, written
from tests.support import Azurite, FaultyProxy

C, U, P, D = (
    TransactionOperation.CREATE,
    TransactionOperation.UPDATE,
    TransactionOperation.UPSERT,
    TransactionOperation.DELETE,
)
ETAG = "W/\"datetime'2026-01-02T03%3A04%3A05.678Z'\""
IF_SAME: dict[str, Any] = {"etag": ETAG, "match_condition": MatchConditions.IfNotModified}
TOO_BIG = 4 * 1024 * 1024  # a transaction's limit
UNUSED = "UseDevelopmentStorage=true"  # a client that sends nothing


class Captured(Exception):
    """Raised by the capturing transport in place of sending."""


class Capture(HttpTransport[Any, Any]):
    """A transport that keeps the request it is given instead of sending it."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        raise Captured()


def capturing(azurite: Azurite, name: str = "captured") -> tuple[TableClient, Capture]:
    transport = Capture()
    return TableClient.from_connection_string(azurite.connection_string, name, transport=transport), transport


def sent(
    table: TableClient, transport: Capture, submit: Callable[[], object]
) -> tuple[dict[str, str], bytes]:
    """The headers and body of the one request `submit` sends."""
    with pytest.raises(Captured):
        submit()
    request = transport.requests.pop()
    body = request.body if request.body is not None else request.content
    return dict(request.headers), bytes(body)


def sdk_request(azurite: Azurite, operations: Sequence[Operation]) -> tuple[dict[str, str], bytes]:
    table, transport = capturing(azurite)
    return sent(table, transport, lambda: table.submit_transaction(operations))


def our_request(azurite: Azurite, operations: Sequence[Operation]) -> tuple[dict[str, str], bytes]:
    table, transport = capturing(azurite)
    return sent(table, transport, lambda: envelope.submit(table, operations))


def boundaries_and_date(headers: dict[str, str], body: bytes) -> tuple[str, str, str]:
    batch = headers["Content-Type"].split("boundary=")[1]
    changeset = re.search(rb"boundary=(changeset_[0-9a-f-]+)", body)
    date = re.search(rb"\r\nx-ms-date: ([^\r]+)\r\n", body)
    assert changeset and date
    return batch, changeset.group(1).decode(), date.group(1).decode()


_DATES = re.compile(rb"\r\n(x-ms-date|Date): [^\r]+\r\n")


def dateless(body: bytes) -> bytes:
    """The body with its sub-requests' dates blanked: the SDK dates each sub-request as it
    encodes it, so two of them may fall on either side of a second."""
    return _DATES.sub(lambda m: b"\r\n" + m.group(1) + b": -\r\n", body)


def assert_same_envelope(azurite: Azurite, operations: Sequence[Operation]) -> None:
    """Ours, given the SDK's boundaries and date, is the SDK's byte for byte; and the request
    as our sender sends it carries the SDK's headers."""
    headers, body = sdk_request(azurite, operations)
    batch, changeset, date = boundaries_and_date(headers, body)
    base = f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    ours = envelope.envelope(base, "captured", "2019-02-02", operations, batch, changeset, date)
    assert dateless(ours) == dateless(body)

    our_headers, our_body = our_request(azurite, operations)
    our_batch, our_changeset, our_date = boundaries_and_date(our_headers, our_body)
    assert our_batch != batch and our_changeset != changeset  # fresh for every transaction
    normal = (
        our_body.replace(our_batch.encode(), batch.encode())
        .replace(our_changeset.encode(), changeset.encode())
        .replace(our_date.encode(), date.encode())
    )
    assert dateless(normal) == dateless(body)
    varying = {"x-ms-client-request-id", "x-ms-date", "Date", "Authorization", "Content-Type"}
    assert {k: v for k, v in our_headers.items() if k not in varying} == {
        k: v for k, v in headers.items() if k not in varying
    }
    assert our_headers.keys() == headers.keys()
    assert our_headers["Authorization"].startswith("SharedKey devstoreaccount1:")
    assert our_headers["Content-Type"] == f"multipart/mixed; boundary={our_batch}"


def row(key: str, partition: str = "p", **properties: Any) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": key, **properties}


EVERY_KIND: list[Operation] = [
    (C, row("a", n=1, t=True, f=1.5, s="text", b=b"\x00\xff bytes", none=None)),
    (U, row("b", s="replaced"), {"mode": "replace", **IF_SAME}),
    (U, row("c", s="merged"), {"mode": "merge", **IF_SAME}),
    (U, row("d", s="merged anyway"), {"mode": UpdateMode.MERGE}),
    (U, row("e", s="replaced anyway"), {"mode": "replace"}),
    (U, row("f")),
    (P, row("g", s="upserted"), {"mode": "replace"}),
    (P, row("h", s="merged in"), {"mode": "merge"}),
    (P, row("i")),
    (D, row("j")),
    (D, row("k"), IF_SAME),
]


def service_shapes() -> list[list[Operation]]:
    """Transactions as the storage package writes them: an object inserted with its index rows,
    a document of several rows replaced conditionally behind a guard, a removal."""
    guard: Operation = (U, row("t", "thread_x"), {"mode": "merge"})
    collection = Collection(TableClient.from_connection_string(UNUSED, "unused"), "thread_x", guard=guard)
    message_id = ids.sequential_id(ids.MESSAGE, 7)
    large = bytes(range(256)) * (200 * 1024 // 256)  # four rows of parts
    inserted = collection.insert_operations(message_id, '{"text": "\u00e9 \\" \\n"}'.encode(), group="run_1")
    current = written(collection.document_rows(collection.data_key(message_id), message_id, large), ETAG)
    replaced = [guard, *collection.replace_operations(message_id, current, b"{}")]
    return [inserted, replaced, [(D, row(f"k{n}", "thread_x")) for n in range(100)]]


@pytest.mark.parametrize(
    "operations",
    [
        EVERY_KIND,
        [(C, row("it's a key/with spaces & \u00e9", "part'ition", s='"quoted" \u2603 \n\t\x00'))],
        [
            (
                U,
                TableEntity(row("m", s="x")),
                {"match_condition": MatchConditions.IfNotModified, "etag": "plain"},
            )
        ],
        [(D, row("q"), {"etag": '"quoted"', "match_condition": MatchConditions.IfNotModified})],
        [(P, row(f"r{n:03}", b=secrets.token_bytes(30_000))) for n in range(100)],  # 100 entities, ~4 MiB
        *service_shapes(),
    ],
    ids=[
        "every kind",
        "escapes",
        "entity etag",
        "quoted etag",
        "100 entities",
        "insert",
        "replace",
        "delete",
    ],
)
def test_envelope_is_the_sdks_byte_for_byte(azurite: Azurite, operations: list[Operation]) -> None:
    assert_same_envelope(azurite, operations)


def entity_read_before() -> TableEntity:
    entity = TableEntity(row("m", s="x"))
    entity._metadata = {"etag": ETAG, "timestamp": None}
    return entity


def test_an_entity_read_before_gives_a_delete_its_etag(azurite: Azurite) -> None:
    """As in the SDK: a conditional delete of a TableEntity without an ETag uses the entity's;
    a conditional update of one without an ETag is refused (the next test)."""
    assert_same_envelope(
        azurite, [(D, entity_read_before(), {"match_condition": MatchConditions.IfNotModified})]
    )


@pytest.mark.parametrize(
    "operations",
    [
        [(C, row("a")), (C, row("b", "other"))],
        [(C, {"RowKey": "a"})],
        [(U, row("a"), {"mode": "sideways"})],
        [(U, row("a"), {"match_condition": MatchConditions.IfNotModified})],
        [(D, row("a"), {"etag": ETAG})],
        [(U, entity_read_before(), {"match_condition": MatchConditions.IfNotModified})],
        [(C, row("a", n=2**40))],
        [(C, row("a", x=object()))],
    ],
    ids=["two partitions", "no key", "mode", "no etag", "etag unconditionally", "entity", "int64", "type"],
)
def test_what_the_sdk_refuses_to_encode_ours_refuses(azurite: Azurite, operations: list[Operation]) -> None:
    with pytest.raises((ValueError, TypeError)) as theirs:
        sdk_request(azurite, operations)
    with pytest.raises((ValueError, TypeError)) as ours:
        our_request(azurite, operations)
    expected = type(theirs.value.__cause__ or theirs.value)  # the SDK re-raises a TypeError of its own
    assert isinstance(ours.value, expected)


# --- against Azurite ------------------------------------------------------------------------


@pytest.fixture
def table(azurite: Azurite) -> Iterator[TableClient]:
    client = TableClient.from_connection_string(azurite.connection_string, "env" + secrets.token_hex(4))
    client.create_table()
    yield client
    client.delete_table()


def rows_of(table: TableClient, partition: str = "p") -> dict[str, dict[str, Any]]:
    found = table.query_entities("PartitionKey eq @p", parameters={"p": partition})
    return {e["RowKey"]: {k: v for k, v in e.items() if k not in ("PartitionKey", "RowKey")} for e in found}


def etags_of(table: TableClient, partition: str = "p") -> dict[str, str]:
    found = table.query_entities("PartitionKey eq @p", parameters={"p": partition}, select=["RowKey"])
    return {e["RowKey"]: str(e.metadata["etag"]) for e in found}


def seeded(table: TableClient) -> dict[str, str]:
    """Rows b..k as EVERY_KIND expects them; their ETags."""
    for key in "bcdefjk":
        table.create_entity(row(key, s="old", kept="kept"))
    return etags_of(table)


def conditional(operations: Sequence[Operation], etags: dict[str, str]) -> list[Operation]:
    """The operations with each stand-in ETag made the row's real one."""
    out: list[Operation] = []
    for op in operations:
        if len(op) == 3 and op[2].get("etag") == ETAG:
            out.append((op[0], op[1], {**op[2], "etag": etags[op[1]["RowKey"]]}))
        else:
            out.append(op)
    return out


def test_every_kind_of_operation_lands_as_the_sdks_does(azurite: Azurite, table: TableClient) -> None:
    theirs = TableClient.from_connection_string(azurite.connection_string, "env" + secrets.token_hex(4))
    theirs.create_table()
    try:
        their_results = theirs.submit_transaction(conditional(EVERY_KIND, seeded(theirs)))
        our_results = envelope.submit(table, conditional(EVERY_KIND, seeded(table)))
        assert rows_of(table) == rows_of(theirs)
        assert rows_of(table)["b"] == {"s": "replaced"} and rows_of(table)["c"] == {
            "s": "merged",
            "kept": "kept",
        }
        assert "j" not in rows_of(table) and "k" not in rows_of(table)
        assert [sorted(r) for r in our_results] == [sorted(r) for r in their_results]
        etags = etags_of(table)
        for op, result in zip(EVERY_KIND, our_results, strict=True):
            if op[0] == D:
                assert result == {}
            else:  # the ETag the row now has
                assert result == {"etag": etags[op[1]["RowKey"]]}
    finally:
        theirs.delete_table()


def test_100_entities_and_a_whole_document_of_4_mib(table: TableClient) -> None:
    partition = Partition(table, "p")
    hundred: list[Operation] = [(C, row(f"r{n:03}", n=n)) for n in range(100)]
    assert len(partition.submit(hundred)) == 100
    assert len(rows_of(table)) == 100

    document = secrets.token_bytes(MAX_DOCUMENT_BYTES)  # the most one transaction carries
    rows = partition.document_rows("d", "obj", document)
    results = partition.submit([(C, r) for r in rows])
    record = partition.read_document("d", "obj")
    assert record is not None and record.document == document and record.etag == results[0]["etag"]


def test_a_stale_etag_is_a_concurrent_update_and_writes_nothing(azurite: Azurite, table: TableClient) -> None:
    table.create_entity(row("a", s="old"))
    stale = etags_of(table)["a"]
    table.update_entity(row("a", s="newer"))
    operations: list[Operation] = [
        (C, row("new")),
        (
            U,
            row("a", s="mine"),
            {"mode": "replace", "etag": stale, "match_condition": MatchConditions.IfNotModified},
        ),
    ]
    assert_same_failure(azurite, table, operations, 412, "UpdateConditionNotSatisfied")
    with pytest.raises(ConcurrentUpdate):
        Partition(table, "p").submit(operations)
    assert rows_of(table) == {"a": {"s": "newer"}}


def test_a_conditional_write_of_a_missing_row_is_a_concurrent_update(
    azurite: Azurite, table: TableClient
) -> None:
    operations: list[Operation] = [(C, row("new")), (D, row("gone"), {**IF_SAME})]
    assert_same_failure(azurite, table, operations, 404, "ResourceNotFound")
    with pytest.raises(ConcurrentUpdate):
        Partition(table, "p").submit(operations)
    assert rows_of(table) == {}


def test_an_existing_row_is_the_conflict_the_sdk_raises(azurite: Azurite, table: TableClient) -> None:
    table.create_entity(row("a"))
    operations: list[Operation] = [(P, row("b")), (C, row("a", s="again"))]
    error = assert_same_failure(azurite, table, operations, 409, "EntityAlreadyExists")
    assert error.index == 1  # type: ignore[attr-defined]
    with pytest.raises(TableTransactionError) as raised:  # not ours to translate: as before
        Partition(table, "p").submit(operations)
    assert raised.value.status_code == 409
    assert rows_of(table) == {"a": {}}


def test_a_400_inside_the_changeset_is_the_sdks_error(azurite: Azurite, table: TableClient) -> None:
    operations: list[Operation] = [(P, row("a")), (P, row("b", big=b"x" * (64 * 1024 + 1)))]
    assert_same_failure(azurite, table, operations, 400, "PropertyValueTooLarge")
    with pytest.raises(TableTransactionError):
        Partition(table, "p").submit(operations)
    assert rows_of(table) == {}


def test_more_than_4_mib_is_the_sdks_error(azurite: Azurite, table: TableClient) -> None:
    operations: list[Operation] = [
        (C, row(f"r{n:02}", "p", **{f"p{i}": secrets.token_bytes(60_000) for i in range(10)}))
        for n in range(8)
    ]
    assert sum(len(envelope.envelope("", "t", "v", [op], "b", "c", "d")) for op in operations) > TOO_BIG
    error = assert_same_failure(azurite, table, operations, 413, "RequestBodyTooLarge")
    assert isinstance(error, RequestTooLargeError)
    with pytest.raises(HttpResponseError):
        Partition(table, "p").submit(operations)
    assert rows_of(table) == {}


def test_a_document_too_large_is_refused_before_any_request(table: TableClient) -> None:
    with pytest.raises(DocumentTooLarge):
        Partition(table, "p").document_rows("d", "obj", b"x" * (MAX_DOCUMENT_BYTES + 1))


def test_a_missing_table_is_unavailable_then_made_again(azurite: Azurite, table: TableClient) -> None:
    operations: list[Operation] = [(C, row("a")), (C, row("b"))]
    table.delete_table()
    assert_same_failure(azurite, table, operations, 404, "TableNotFound")
    with pytest.raises(StorageUnavailable):  # and the table is made again, for the retry
        Partition(table, "p").submit(operations)
    Partition(table, "p").submit(operations)
    assert sorted(rows_of(table)) == ["a", "b"]


def test_a_cut_connection_is_storage_unavailable_and_a_retry_succeeds(
    azurite: Azurite, table: TableClient
) -> None:
    proxy = FaultyProxy(azurite.port)
    try:
        through = TableClient.from_connection_string(proxy.connection_string, table.table_name, retry_total=0)
        operations: list[Operation] = [(C, row("a")), (C, row("b"))]
        proxy.fail_after(0)
        with pytest.raises(StorageUnavailable):
            Partition(through, "p").submit(operations)
        with pytest.raises(AzureError) as theirs:
            through.submit_transaction(operations)
        with pytest.raises(type(theirs.value)):
            envelope.submit(through, operations)
        proxy.heal()
        assert rows_of(table) == {}
        assert len(Partition(through, "p").submit(operations)) == 2
        assert sorted(rows_of(table)) == ["a", "b"]
    finally:
        proxy.close()


def test_a_batch_commits_and_reports_the_new_records(table: TableClient) -> None:
    """What a run writes at each step: its objects' new records carry the ETags they now have."""
    collection = Collection(table, "p", kind="r")
    run_id = ids.sequential_id(ids.RUN, 1)
    collection.insert(run_id, b'{"status": "queued"}')
    current = collection.get(run_id)
    assert current is not None
    batch = Batch(collection)
    batch.replace(collection, run_id, current, b'{"status": "completed"}' * 40_000)
    batch.insert(collection, ids.sequential_id(ids.RUN, 2), b"{}")
    records = batch.commit()
    again = collection.get(run_id)
    assert again is not None and records[run_id] == again
    with pytest.raises(ConcurrentUpdate):  # the record it replaced is stale now
        collection.replace(run_id, current, b"{}")


def assert_same_failure(
    azurite: Azurite,
    table: TableClient,
    operations: Sequence[Operation],
    status: int | None = None,
    code: str | None = None,
) -> HttpResponseError:
    """Ours raises what the SDK raises for the same operations on the same rows (its type, status,
    error code and message, the request's own id and time aside); returns ours."""
    with pytest.raises(HttpResponseError) as theirs:
        table.submit_transaction(operations)
    with pytest.raises(HttpResponseError) as ours:
        envelope.submit(table, operations)
    assert type(ours.value) is type(theirs.value)
    assert ours.value.status_code == theirs.value.status_code
    assert getattr(ours.value, "error_code", None) == getattr(theirs.value, "error_code", None)
    assert getattr(ours.value, "index", None) == getattr(theirs.value, "index", None)

    def plain(message: str) -> str:
        return re.sub(r"(RequestId:|Time:)\S+|[0-9a-f]{8}-[0-9a-f-]{27}", "", message)

    assert plain(str(ours.value)) == plain(str(theirs.value))
    if status is not None:
        assert ours.value.status_code == status
    if code is not None:
        assert ours.value.error_code == code  # type: ignore[attr-defined]
    return ours.value


# --- reading responses as the service sends them ---------------------------------------------


def batch_response(*messages: bytes) -> bytes:
    """A `$batch` response body: one changeset of these HTTP responses, framed as Azure frames it."""
    part = (
        b"--changesetresponse_2\r\nContent-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\n"
    )
    return (
        b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
        + b"".join(part + message + b"\r\n" for message in messages)
        + b"--changesetresponse_2--\r\n--batchresponse_1--\r\n"
    )


AZURE_RESPONSE = batch_response(
    b"HTTP/1.1 201 Created\r\n"
    b"Content-ID: 1\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Preference-Applied: return-content\r\n"
    b"DataServiceVersion: 3.0;\r\n"
    b"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n"
    b"ETag: W/\"datetime'2026-12-04T10%3A00%3A00.1Z'\"\r\n"
    b"\r\n"
    b'{"odata.metadata":"x","PartitionKey":"p","RowKey":"a","s":"--changesetresponse_ \\r\\n\\r\\n"}',
    b"HTTP/1.1 204 No Content\r\nContent-ID: 2\r\netag: W/\"datetime'2026-12-04T10%3A00%3A00.2Z'\"\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-ID: 3\r\n\r\n",
)


def response_of(
    body: bytes, status: str = "202 Accepted", content_type: str = "multipart/mixed; boundary=batchresponse_1"
) -> Any:
    raw = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    socket = type("Socket", (), {"makefile": lambda self, *_: BytesIO(raw + body)})()
    internal = HTTPResponse(socket, method="POST")
    internal.begin()
    response = RestHttpClientTransportResponse(  # type: ignore[no-untyped-call]
        request=HttpRequest("POST", "http://x/$batch"), internal_response=internal
    )
    response.read()  # type: ignore[no-untyped-call]
    return response


def test_entities_returned_in_the_response_and_a_delete_without_etag_are_read() -> None:
    """Azure returns an inserted entity (no Prefer header asks otherwise), ETag headers in any
    case, and no ETag for a delete."""
    assert envelope.results("t", response_of(AZURE_RESPONSE)) == [
        {"etag": "W/\"datetime'2026-12-04T10%3A00%3A00.1Z'\""},
        {"etag": "W/\"datetime'2026-12-04T10%3A00%3A00.2Z'\""},
        {},
    ]


def test_a_response_that_is_not_multipart_is_refused() -> None:
    with pytest.raises(ValueError):
        envelope.results("t", response_of(b"{}", content_type="application/json"))


def failed_part(status: str, code: str, message: str) -> bytes:
    error = f'{{"odata.error":{{"code":"{code}","message":{{"lang":"en-US","value":"{message}"}}}}}}'
    return batch_response(
        f"HTTP/1.1 {status}\r\nContent-ID: 3\r\n".encode()
        + b"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n"
        + error.encode()
    )


def test_a_failed_sub_response_is_decoded_as_the_sdk_decodes_it() -> None:
    """As Azure words them: the failing operation's index leads the message."""
    with pytest.raises(TableTransactionError) as raised:
        envelope.results(
            "t", response_of(failed_part("412 Precondition Failed", "UpdateConditionNotSatisfied", "2:x"))
        )
    assert raised.value.status_code == 412 and raised.value.index == 2
    assert getattr(raised.value, "error_code", None) == "UpdateConditionNotSatisfied"
    with pytest.raises(RequestTooLargeError) as too_large:  # a 413 inside the changeset
        envelope.results(
            "t", response_of(failed_part("413 Request Entity Too Large", "RequestBodyTooLarge", "0:x"))
        )
    assert too_large.value.status_code == 202  # the SDK decodes the whole batch's response then

"""Entity-group transactions in an envelope of our own, sent through the table client's own
pipeline (its credential, retries, transport and hooks: no second HTTP stack, no second auth).

`TableClient.submit_transaction` builds a transaction's multipart envelope with the `email`
package, runs each sub-request's policies and then each sub-response's on thread pools it makes
and shuts down per transaction, and parses the response with `email` again: 6-8.5 ms of CPU for a
transaction of 3-8 entities, most of a run's storage CPU (issue 22). Here the same bytes are
written directly, in the Table service's batch format:

    --batch_<uuid>
    Content-Type: multipart/mixed; boundary=changeset_<uuid>

    --changeset_<uuid>                      one part per operation, Content-ID 0, 1, ...
    Content-Type: application/http
    Content-Transfer-Encoding: binary
    Content-ID: 0

    POST|PUT|PATCH|DELETE <table URL>[(PartitionKey='..',RowKey='..')] HTTP/1.1
    <headers: the JSON body's, version, Accept, If-Match (update, delete), the date>

    <the entity as JSON>
    --changeset_<uuid>--

    --batch_<uuid>--

byte for byte what the SDK's encoder writes for the same operations, boundaries aside (held to
it by tests/test_envelope.py), with the entities serialised by the SDK's own serializer. The
response is read with a few splits for each sub-response's status and ETag; a failure is decoded
by the SDK's own error decoder into exactly what `submit_transaction` raises (TableTransactionError
with the service's error code, RequestTooLargeError, HttpResponseError for the whole batch), so
that `rows.translated_errors` maps it as before. Only `rows.Partition.submit` calls this.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from http.client import HTTPResponse
from io import BytesIO
from typing import Any
from urllib.parse import quote
from wsgiref.handlers import format_date_time

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse
from azure.core.serialization import AzureJSONEncoder
from azure.core.tracing.decorator import distributed_trace
from azure.data.tables import (
    TableClient,
    TableEntity,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)
from azure.data.tables._error import RequestTooLargeError, _decode_error, _validate_tablename_error
from azure.data.tables._serialize import _add_entity_properties

Operation = (
    tuple[TransactionOperation, Mapping[str, Any]]
    | tuple[TransactionOperation, Mapping[str, Any], Mapping[str, Any]]
)

_CRLF = b"\r\n"
_HEAD_END = re.compile(rb"\r?\n\r?\n")


# Traced under the SDK's own name, so that a deployment's traces keep their shape.
@distributed_trace(name_of_span="TableClient.submit_transaction")
def submit(table: TableClient, operations: Sequence[Operation]) -> list[dict[str, str]]:
    """Commit the operations (all of one partition) together; each one's response metadata: its
    new `etag`, if the service gave one. Raises what `table.submit_transaction` would."""
    if not operations:  # the service answers an empty changeset with a 400, the SDK that with []
        return []
    if table._cosmos_endpoint:  # a merge goes otherwise there (and we have never sent one there)
        return [dict(result) for result in table.submit_transaction(operations)]
    base = f"{table.scheme}://{table._primary_hostname}"
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    body = envelope(
        base,
        table.table_name,
        table._client._config.version,
        operations,
        batch,
        changeset,
        format_date_time(time.time()),
    )
    request = HttpRequest(
        "POST",
        f"{base}/$batch",
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=body,
    )
    # Streamed, as the SDK sends it: not streamed, the pipeline would try to decode the multipart
    # body as JSON. Read whole, the connection goes back to the pool.
    response = table._client._client.send_request(request, stream=True)
    response.read()
    return results(table.table_name, response)


def envelope(
    base: str,
    table_name: str,
    version: str,
    operations: Sequence[Operation],
    batch: str,
    changeset: str,
    date: str,
) -> bytes:
    """The body of the `$batch` request: one changeset of the operations, against the table at
    `base`/`table_name`, dated `date` (an HTTP date)."""
    url = f"{base}/{quote(table_name, safe='')}"
    partition: str | None = None
    pieces = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for index, operation in enumerate(operations):
        entity = operation[1]
        if "PartitionKey" not in entity or "RowKey" not in entity:
            raise ValueError("PartitionKey and/or RowKey were not provided in entity")
        if partition is None:
            partition = entity["PartitionKey"]
        elif entity["PartitionKey"] != partition:
            raise ValueError("Partition Keys in the batch must all be the same.")
        pieces.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {index}\r\n\r\n".encode()
        )
        pieces.append(_sub_request(url, version, operation, date))
        pieces.append(_CRLF)
    pieces.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n".encode())
    return b"".join(pieces)


def _sub_request(url: str, version: str, operation: Operation, date: str) -> bytes:
    """One operation as the HTTP request the service reads inside the changeset."""
    kind, entity = operation[0].lower(), operation[1]
    options = dict(operation[2]) if len(operation) == 3 else {}
    mode = options.pop("mode", UpdateMode.MERGE)
    if_match: str | None = None
    if kind in ("update", "delete"):
        # As the SDK: a delete may take its ETag from a TableEntity read before; an update does
        # not (the SDK has made the entity a plain dict by the time it looks).
        held = entity if kind == "delete" else {}
        if_match = _if_match(held, options.pop("etag", None), options.pop("match_condition", None))
    if options:
        raise TypeError(f"transaction options not supported here: {sorted(options)}")
    target = f"{url}(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
    accept = "application/json"
    if kind == "create":
        method, target, accept = "POST", url, "application/json;odata=minimalmetadata"
    elif kind in ("update", "upsert"):
        if mode == UpdateMode.REPLACE:
            method = "PUT"
        elif mode == UpdateMode.MERGE:
            method = "PATCH"
        else:
            raise ValueError(f"Mode type '{mode}' is not supported.")
    elif kind == "delete":
        method, accept = "DELETE", "application/json;odata=minimalmetadata"
    else:
        raise ValueError(f"Unrecognized operation: {operation[0]}")
    head = f"{method} {target} HTTP/1.1\r\n"
    body = b""
    if method != "DELETE":
        body = json.dumps(_add_entity_properties(entity), cls=AzureJSONEncoder).encode("ascii")
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    head += f"x-ms-version: {version}\r\nDataServiceVersion: 3.0\r\nAccept: {accept}\r\n"
    if if_match is not None:
        head += f"If-Match: {if_match}\r\n"
    head += f"x-ms-date: {date}\r\nDate: {date}\r\n\r\n"
    return head.encode("ascii") + body


def _if_match(entity: Mapping[str, Any], etag: str | None, condition: MatchConditions | None) -> str:
    """The If-Match of an update or a delete, as the SDK's transaction accepts them: the ETag
    (IfNotModified: given, or the one `entity` was read with) or any version (unconditionally)."""
    if condition and not etag and isinstance(entity, TableEntity):
        etag = entity.metadata.get("etag")
    condition = condition or MatchConditions.Unconditionally
    if condition == MatchConditions.IfNotModified:
        if not etag:
            raise ValueError("IfNotModified must be specified with etag.")
        quoted = etag.startswith("W/") or any(etag[0] == q == etag[-1] for q in "\"'")
        return etag if quoted else f'"{etag}"'
    if condition == MatchConditions.Unconditionally:
        if etag:
            raise ValueError("Etag is not supported for an Unconditional operation.")
        return "*"
    raise ValueError(f"Unsupported match condition: {condition}")


def _key(value: str) -> str:
    """A key inside the entity's URL: quotes doubled (OData), then percent-encoded."""
    if not isinstance(value, str):
        raise TypeError("PartitionKey or RowKey must be of type string.")
    return quote(value.replace("'", "''"), safe="")


def results(table_name: str, response: HttpResponse) -> list[dict[str, str]]:
    """Each sub-response's metadata (its `etag`), or the first failure raised as the SDK
    raises it."""
    if response.status_code != 202:
        raise _failure(table_name, response)
    content_type = response.headers.get("Content-Type") or ""
    if not content_type.startswith("multipart/mixed"):
        raise ValueError("You can't get parts if the response is not multipart/mixed")
    metadata = []
    for message in _http_parts(response.content, content_type):
        head = _HEAD_END.split(message, 1)[0].splitlines()
        status = int(head[0].split(None, 2)[1])
        if not 200 <= status < 300:
            raise _failure(table_name, response, message, status)
        etag = _header(head[1:], "etag")
        metadata.append({"etag": etag} if etag is not None else {})
    return metadata


def _failure(
    table_name: str, response: HttpResponse, part: bytes | None = None, status: int | None = None
) -> HttpResponseError:
    """The failed batch, or its failed sub-response `part`, as the exception the SDK raises for
    it, made by the SDK's own decoder."""
    error: HttpResponseError
    if response.status_code == 413 or status == 413:
        error = _decode_error(  # type: ignore[no-untyped-call]
            response, error_message="The transaction request was too large", error_type=RequestTooLargeError
        )
        return error
    if part is None:
        error = _decode_error(response)  # type: ignore[no-untyped-call]
    else:
        error = _decode_error(  # type: ignore[no-untyped-call]
            response=_part_response(part, response), error_type=TableTransactionError
        )
    _validate_tablename_error(error, table_name)  # type: ignore[no-untyped-call]
    return error


def _http_parts(body: bytes, content_type: str) -> list[bytes]:
    """The `application/http` parts of a multipart/mixed body in order, changesets opened."""
    messages: list[bytes] = []
    for part in _parts(body, _boundary(content_type)):
        if part.startswith(_CRLF):  # a part with no headers
            head, content = b"", part[2:]
        else:
            head, _, content = part.partition(b"\r\n\r\n")
        part_type = _header(head.splitlines(), "content-type") or "text/plain"
        if part_type.startswith("multipart/mixed"):
            messages += _http_parts(content, part_type)
        elif part_type.split(";")[0].strip() == "application/http":
            messages.append(content)
        else:
            raise ValueError("Multipart doesn't support part other than application/http for now")
    return messages


def _header(lines: list[bytes], name: str) -> str | None:
    """The value of header `name` (lower case) among `lines`, if there."""
    prefix = name.encode() + b":"
    for line in lines:
        if line[: len(prefix)].lower() == prefix:
            return line[len(prefix) :].strip().decode("latin-1")
    return None


def _boundary(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise ValueError(f"multipart response without a boundary: {content_type}")


def _parts(body: bytes, boundary: str) -> list[bytes]:
    """The parts of a multipart body (RFC 2046: each delimiter is CRLF--boundary, the CRLF
    belonging to it, and the parts end at --boundary--)."""
    parts = []
    for piece in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece.partition(b"\n")[2]  # the rest of the delimiter's line
        parts.append(piece[:-2] if piece.endswith(_CRLF) else piece)
    return parts


class _Bytes:
    """What http.client reads a response from: bytes in place of a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, *_: Any) -> BytesIO:
        return BytesIO(self._data)


def _part_response(message: bytes, response: HttpResponse) -> RestHttpClientTransportResponse:
    """A failed sub-response as the response object the SDK decodes its errors from."""
    internal = HTTPResponse(_Bytes(message), method="POST")  # type: ignore[arg-type]
    internal.begin()
    return RestHttpClientTransportResponse(  # type: ignore[no-untyped-call]
        request=response.request, internal_response=internal
    )

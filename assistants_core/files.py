"""Files and Uploads: what each operation does, in terms of wire models, rows and blobs.

An upload's bytes go to the blob as the body arrives; its row is written only once the body has
been read whole and found valid, so a request that fails leaves neither (the blob's blocks are
discarded on the way out). A file is visible exactly while its row exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import get_args

from . import ids
from .documents import optimistically
from .errors import ApiError, InvalidRequest, NotFound, PayloadTooLarge
from .models.file import (
    MAX_EXPIRY_SECONDS,
    MIN_EXPIRY_SECONDS,
    UPLOAD_PURPOSES,
    CompleteUploadRequest,
    CreateUploadRequest,
    File,
    FileDeleted,
    Purpose,
    Upload,
    UploadPart,
)
from .multipart import Part, Reader, boundary_of
from .pagination import ListPage, ListQuery
from .storage import ConcurrentUpdate, Record, Store
from .storage.blobs import BlobTooLarge

log = logging.getLogger("assistants.files")

# The largest request the Functions host takes (its default maxRequestBodySize, also on Flex
# Consumption): one `POST /files` body, multipart envelope included. Larger files go in parts.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
MAX_PART_BYTES = 64 * 1024 * 1024  # an Upload part, as OpenAI (and the Python SDK's part size)
MAX_PART_REQUEST_BYTES = MAX_PART_BYTES + 64 * 1024  # the part and its multipart envelope
MAX_FILENAME = 255
# OpenAI's bounds for `GET /files` (limit 1-10,000, default 10,000), not the other lists' 20 and
# 100: Foundry's SDK sends no limit and does not page, so its `files.list()` sees one page.
LIST_LIMIT = 10_000
UPLOAD_SECONDS = 3600  # an Upload expires an hour after it is created, as OpenAI's
UPLOAD_KEPT_SECONDS = 3600  # and its rows are removed an hour after that
_FIELD_BYTES = 1024
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
# `filename` is Foundry's (azure-ai-agents sends it beside the part, which it may name `file`).
_FILE_FIELDS = ("file", "purpose", "filename", "expires_after[anchor]", "expires_after[seconds]")


@dataclass
class Download:
    """Bytes to send as they are read: the edge streams `chunks` with these headers."""

    chunks: Iterator[bytes]
    headers: dict[str, str]
    status: int = 200


class RangeNotSatisfiable(ApiError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__("The requested range is outside the file.", param="Range")
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


def media_type(filename: str) -> str:
    """The file's type, by its name's extension (clients label most parts octet-stream)."""
    return mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"


def not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="id")


def _missing(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
    )


def _unknown(name: str) -> InvalidRequest:
    return InvalidRequest(f"Unknown parameter: '{name[:64]}'.", param=name[:64], code="unknown_parameter")


def _twice(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"The '{name}' field is given more than once.", param=name, code="duplicate_parameter"
    )


def _check_filename(filename: str | None, param: str) -> str:
    if not filename:
        raise InvalidRequest(f"The '{param}' part has no filename.", param=param, code="invalid_value")
    if len(filename) > MAX_FILENAME:
        raise InvalidRequest(
            f"The filename is {len(filename)} characters long; at most {MAX_FILENAME} are allowed.",
            param=param,
            code="invalid_value",
        )
    if _UNSAFE_NAME.search(filename):
        raise InvalidRequest(
            "The filename contains a path separator or a control character.",
            param=param,
            code="invalid_value",
        )
    return filename


def _check_purpose(purpose: str | None) -> str:
    if purpose is None:
        raise _missing("purpose")
    if purpose not in UPLOAD_PURPOSES:
        supported = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
        raise InvalidRequest(
            f"Invalid value for 'purpose': {purpose[:64]!r}. Supported values are: {supported}.",
            param="purpose",
            code="invalid_value",
        )
    return purpose


def _expiry(anchor: str | None, seconds: str | None, created_at: int) -> int | None:
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest(
            "Invalid value for 'expires_after[anchor]': supported values are: 'created_at'.",
            param="expires_after[anchor]",
            code="invalid_value",
        )
    if (
        seconds is None
        or not seconds.isdigit()
        or not MIN_EXPIRY_SECONDS <= int(seconds) <= MAX_EXPIRY_SECONDS
    ):
        raise InvalidRequest(
            f"Invalid 'expires_after[seconds]': expected an integer from {MIN_EXPIRY_SECONDS} "
            f"to {MAX_EXPIRY_SECONDS}.",
            param="expires_after[seconds]",
            code="invalid_value",
        )
    return created_at + int(seconds)


def _counted(chunks: Iterable[bytes], sizes: list[int]) -> Iterator[bytes]:
    for chunk in chunks:
        sizes[0] += len(chunk)
        yield chunk


@dataclass
class Files:
    store: Store
    # Called with a file's id when it is deleted, before its blob and row go: where vector stores
    # and code interpreter will take the file out of their resources.
    on_delete: list[Callable[[str], None]] = field(default_factory=list)

    # --- files ------------------------------------------------------------------------------

    def create(self, content_type: str, body: Iterator[bytes]) -> File:
        """`POST /files`: the multipart body read in one pass, in whatever order its parts come;
        the file part written to its blob as it arrives; the row written last."""
        file_id, created_at = ids.new_id(ids.FILE)
        reader = Reader(body, boundary_of(content_type))
        fields: dict[str, str] = {}
        file: tuple[str | None, int] | None = None
        blobs = self.store.blobs()
        try:
            for part in reader.parts():
                if part.name not in _FILE_FIELDS:
                    raise _unknown(part.name)
                if part.name in fields or (part.name == "file" and file is not None):
                    raise _twice(part.name)
                if part.name == "file":
                    # A nameless part may be named by a `filename` field, before or after it.
                    if part.filename:
                        _check_filename(part.filename, "file")
                    file = (part.filename, self._write(file_id, part))
                else:
                    fields[part.name] = part.text(_FIELD_BYTES)
                    # refused before a file that follows is written
                    if part.name == "purpose":
                        _check_purpose(fields["purpose"])
                    elif part.name == "filename":
                        _check_filename(fields["filename"], "filename")
            purpose = _check_purpose(fields.get("purpose"))
            if file is None:
                raise _missing("file")
            filename = fields.get("filename") or _check_filename(file[0], "file")
            size = file[1]
            if size == 0:
                raise InvalidRequest("The file is empty.", param="file", code="empty_file")
            expires_at = _expiry(
                fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]"), created_at
            )
            stored = File(
                id=file_id,
                bytes=size,
                created_at=created_at,
                expires_at=expires_at,
                filename=filename,
                purpose=purpose,  # type: ignore[arg-type]  # checked against the purposes above
            )
            if expires_at is not None:  # first, so that no expiring file is unknown to the sweeper
                self.store.file_expiries().add(expires_at, file_id)
            try:
                self.store.files().insert(file_id, stored.model_dump_json().encode(), group=purpose)
            except BaseException:
                if expires_at is not None:
                    self.store.file_expiries().remove(expires_at, file_id)
                raise
        except BaseException:
            if file is not None:
                blobs.discard(file_id)
            raise
        return stored

    def _write(self, file_id: str, part: Part) -> int:
        try:
            return self.store.blobs().write(file_id, part.chunks(), MAX_REQUEST_BYTES)
        except (BlobTooLarge, PayloadTooLarge):  # the file, or the request it comes in
            raise _too_large(MAX_REQUEST_BYTES) from None

    def list(self, query: ListQuery, purpose: str | None) -> ListPage[File]:
        if purpose is not None and purpose not in get_args(Purpose):
            supported = ", ".join(f"'{p}'" for p in get_args(Purpose))
            raise InvalidRequest(
                f"Invalid value for 'purpose': {purpose[:64]!r}. Supported values are: {supported}.",
                param="purpose",
                code="invalid_value",
            )
        documents, has_more = self.store.files().page(
            query.order, query.limit, query.after, None, group=purpose
        )
        return ListPage[File].of([File.model_validate_json(d) for d in documents], has_more)

    def retrieve(self, file_id: str) -> File:
        record = self.store.files().get(file_id) if ids.is_valid(ids.FILE, file_id) else None
        if record is None:
            raise not_found(file_id)
        return File.model_validate_json(record.document)

    def exists(self, file_id: str) -> bool:
        return ids.is_valid(ids.FILE, file_id) and self.store.files().get(file_id) is not None

    def delete(self, file_id: str) -> FileDeleted:
        def attempt() -> FileDeleted:
            record = self.store.files().get(file_id) if ids.is_valid(ids.FILE, file_id) else None
            if record is None:
                raise not_found(file_id)
            for release in self.on_delete:
                release(file_id)
            # The bytes first: a failure after it leaves a row that a second delete removes,
            # never bytes that nothing names.
            self.store.blobs().delete(file_id)
            self.store.files().delete(file_id, record)
            return FileDeleted(id=file_id)

        return optimistically(attempt)

    def content(self, file_id: str, range_header: str | None) -> Download:
        file = self.retrieve(file_id)
        quoted = urllib.parse.quote(file.filename, safe="")
        headers = {
            "Content-Type": media_type(file.filename),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
            "Accept-Ranges": "bytes",
            "X-Content-Type-Options": "nosniff",
        }
        span = _range(range_header, file.bytes)
        start, end = span or (0, file.bytes - 1)
        chunks = self.store.blobs().read(file_id, start, end - start + 1)
        if chunks is None:  # deleted since its row was read
            raise not_found(file_id)
        headers["Content-Length"] = str(end - start + 1)
        if span is None:
            return Download(chunks, headers)
        headers["Content-Range"] = f"bytes {start}-{end}/{file.bytes}"
        return Download(chunks, headers, status=206)

    def image(self, file_id: str, limit: int) -> tuple[bytes, str] | None:
        """A file's bytes and type for the model, if it exists; BlobTooLarge past `limit`."""
        if not ids.is_valid(ids.FILE, file_id):
            return None
        record = self.store.files().get(file_id)
        if record is None:
            return None
        data = self.store.blobs().read_all(file_id, limit)
        if data is None:
            return None
        return data, media_type(File.model_validate_json(record.document).filename)

    def filename(self, file_id: str) -> str | None:
        """A file's name, if it exists."""
        record = self.store.files().get(file_id) if ids.is_valid(ids.FILE, file_id) else None
        return File.model_validate_json(record.document).filename if record is not None else None

    def read(self, file_id: str, limit: int) -> tuple[str, bytes] | None:
        """A file's name and bytes, if it exists; BlobTooLarge past `limit`."""
        record = self.store.files().get(file_id) if ids.is_valid(ids.FILE, file_id) else None
        data = self.store.blobs().read_all(file_id, limit) if record is not None else None
        if record is None or data is None:
            return None
        return File.model_validate_json(record.document).filename, data

    def keep(self, filename: str, data: bytes) -> File:
        """A file the service made (code_interpreter's outputs): `assistants_output`, its name as
        given (`/mnt/data/<name>`: not a name a client could upload under)."""
        file_id, created_at = ids.new_id(ids.FILE)
        size = self.store.blobs().write(file_id, [data], len(data))
        stored = File(
            id=file_id, bytes=size, created_at=created_at, filename=filename, purpose="assistants_output"
        )
        try:
            self.store.files().insert(file_id, stored.model_dump_json().encode(), group=stored.purpose)
        except BaseException:
            self.store.blobs().discard(file_id)
            raise
        return stored

    def require(self, references: Iterable[tuple[str, str]]) -> None:
        """A 400 naming the first `(param, file id)` whose file does not exist."""
        for param, file_id in references:
            if not self.exists(file_id):
                raise InvalidRequest(
                    f"Invalid '{param}': no file with id '{file_id[:64]}' exists.",
                    param=param,
                    code="invalid_value",
                )

    # --- uploads ----------------------------------------------------------------------------

    def create_upload(self, request: CreateUploadRequest) -> Upload:
        filename = _check_filename(request.filename, "filename")
        upload_id, created_at = ids.new_id(ids.UPLOAD)
        file_id, _ = ids.new_id(ids.FILE)
        upload = Upload(
            id=upload_id,
            bytes=request.bytes,
            created_at=created_at,
            filename=filename,
            purpose=request.purpose,
            expires_at=created_at + UPLOAD_SECONDS,
        )
        self.store.uploads().insert(upload_id, file_id, upload.expires_at, upload.model_dump_json().encode())
        return upload

    def _upload(self, upload_id: str) -> tuple[Upload, str, Record]:
        found = self.store.uploads().get(upload_id) if ids.is_valid(ids.UPLOAD, upload_id) else None
        if found is None:
            raise NotFound(f"No such Upload object: {upload_id}", param="upload_id")
        upload = Upload.model_validate_json(found.record.document)
        if upload.status == "pending" and upload.expires_at <= ids.unix_seconds():
            upload = self._expire(upload_id) or upload
        return upload, found.file_id, found.record

    def _pending(self, upload: Upload, action: str) -> None:
        if upload.status != "pending":
            raise InvalidRequest(
                f"Cannot {action} Upload {upload.id}: its status is '{upload.status}'.",
                param="upload_id",
                code="invalid_state",
            )

    def add_part(self, upload_id: str, content_type: str, body: Iterator[bytes]) -> UploadPart:
        upload, file_id, _ = self._upload(upload_id)
        self._pending(upload, "add a part to")
        # What the parts so far leave of the declared size bounds this one: an Upload never
        # holds more than it was created for (8 GB at most).
        room = upload.bytes - sum(size for size, _ in self.store.uploads().parts(upload_id).values())
        part_id, created_at = ids.new_id(ids.PART)
        staged: tuple[int, int] | None = None
        for part in Reader(body, boundary_of(content_type)).parts():
            if part.name != "data":
                raise _unknown(part.name)
            if staged is not None:
                raise _twice("data")
            try:
                staged = self.store.blobs().stage(file_id, part_id, part.chunks(), min(room, MAX_PART_BYTES))
            except BlobTooLarge:
                if room < MAX_PART_BYTES:
                    raise InvalidRequest(
                        f"The part would take Upload {upload_id} past the {upload.bytes:,} bytes it was "
                        "created for.",
                        param="data",
                        code="invalid_value",
                    ) from None
                raise _too_large(MAX_PART_BYTES, "An Upload part", "data") from None
            except PayloadTooLarge:
                raise _too_large(MAX_PART_BYTES, "An Upload part", "data") from None
        if staged is None:
            raise _missing("data")
        self.store.uploads().add_part(upload_id, part_id, *staged)
        # Cancelled, expired or completed while the part was arriving: its blocks must not stay.
        ended, _, _ = self._upload(upload_id)
        if ended.status != "pending":
            if ended.status != "completed":
                self.store.blobs().discard(file_id)
            self._pending(ended, "add a part to")
        return UploadPart(id=part_id, created_at=created_at, upload_id=upload_id)

    def complete(self, upload_id: str, request: CompleteUploadRequest) -> Upload:
        upload, file_id, record = self._upload(upload_id)
        if upload.status == "completed":  # a retry (the first answer lost) gets the same answer
            return upload
        self._pending(upload, "complete")
        parts = self.store.uploads().parts(upload_id)
        if len(set(request.part_ids)) != len(request.part_ids):
            raise InvalidRequest(
                "'part_ids' names a part more than once.", param="part_ids", code="invalid_value"
            )
        for n, part_id in enumerate(request.part_ids):
            if part_id not in parts:
                raise InvalidRequest(
                    f"Invalid 'part_ids[{n}]': Upload {upload_id} has no part '{part_id[:64]}'.",
                    param=f"part_ids[{n}]",
                    code="invalid_value",
                )
        size = sum(parts[p][0] for p in request.part_ids)
        if size != upload.bytes:
            raise InvalidRequest(
                f"The parts hold {size} bytes, but the Upload was created for {upload.bytes}.",
                param="part_ids",
                code="invalid_value",
            )
        blobs = self.store.blobs()
        blobs.commit(file_id, [(p, parts[p][1]) for p in request.part_ids])
        if request.md5 is not None:
            digest = hashlib.md5(usedforsecurity=False)
            for chunk in blobs.read(file_id) or ():
                digest.update(chunk)
            if digest.hexdigest() != request.md5.lower():
                blobs.discard(file_id)
                raise InvalidRequest(
                    "The md5 checksum given does not match the bytes uploaded.",
                    param="md5",
                    code="invalid_value",
                )
        file = File(
            id=file_id,
            bytes=size,
            created_at=ids.unix_seconds(),
            filename=upload.filename,
            purpose=upload.purpose,
        )
        try:
            self.store.files().insert(file_id, file.model_dump_json().encode(), group=upload.purpose)
        except Exception:
            if self.store.files().get(file_id) is None:
                raise
            # A concurrent completion of the same Upload wrote the file: its answer is this one's.
        completed = upload.model_copy(update={"status": "completed", "file": file})
        try:
            self.store.uploads().replace(upload_id, record, completed.model_dump_json().encode())
        except ConcurrentUpdate:
            settled, _, _ = self._upload(upload_id)
            if settled.status != "completed":
                raise
            return settled
        return completed

    def cancel(self, upload_id: str) -> Upload:
        upload, file_id, record = self._upload(upload_id)
        self._pending(upload, "cancel")
        return self._end(upload, file_id, record, "cancelled")

    def _end(self, upload: Upload, file_id: str, record: Record, status: str) -> Upload:
        ended = upload.model_copy(update={"status": status})
        self.store.uploads().replace(upload.id, record, ended.model_dump_json().encode())
        self.store.blobs().discard(file_id)
        return ended

    def _expire(self, upload_id: str) -> Upload | None:
        found = self.store.uploads().get(upload_id)
        if found is None:
            return None
        upload = Upload.model_validate_json(found.record.document)
        if upload.status != "pending":
            return upload
        return self._end(upload, found.file_id, found.record, "expired")

    def sweep(self, now: int | None = None) -> None:
        """Delete the files past their `expires_at`; expire the Uploads past their hour (status
        `expired`, their staged blocks gone); an hour later, remove every Upload's rows, however
        it ended (until then a retried call still finds it)."""
        now = ids.unix_seconds() if now is None else now
        for file_id, expires_at in list(self.store.file_expiries().due(now)):
            try:
                with contextlib.suppress(NotFound):
                    self.delete(file_id)
                self.store.file_expiries().remove(expires_at, file_id)
            except Exception:
                log.warning(
                    "could not delete expired file %s; the next sweep tries again", file_id, exc_info=True
                )
        uploads = self.store.uploads()
        for upload_id, expires_at in list(uploads.pending.due(now)):
            try:
                self._expire(upload_id)
                uploads.finished.add(expires_at + UPLOAD_KEPT_SECONDS, upload_id)
                uploads.pending.remove(expires_at, upload_id)
            except Exception:
                log.warning(
                    "could not expire upload %s; the next sweep tries again", upload_id, exc_info=True
                )
        for upload_id, purge_at in list(uploads.finished.due(now)):
            try:
                uploads.purge(upload_id)
                uploads.finished.remove(purge_at, upload_id)
            except Exception:
                log.warning(
                    "could not remove upload %s; the next sweep tries again", upload_id, exc_info=True
                )


def _too_large(
    limit: int, what: str = "A file uploaded in one request", param: str = "file"
) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} may be at most {limit:,} bytes; upload larger files with the Uploads API.", param=param
    )


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range `Range: bytes=...` asks for, inclusive; None for the whole file
    (no header, or one this does not serve, such as several ranges)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, dash, last = header[6:].strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # the last `last` bytes
        if int(last) == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(size)
    return start, end

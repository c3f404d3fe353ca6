"""A streaming `multipart/form-data` reader: parts in whatever order they come, each part's
bytes handed on as they arrive (a file is never held whole), from a body in chunks of any size
(chunked transfer encoding included).

Strict where a lenient reading could store the wrong thing: a body that ends before its closing
delimiter, a part without a name, oversized headers or fields are 400s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import InvalidRequest

MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 32
_READ = 64 * 1024
_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def malformed(detail: str) -> InvalidRequest:
    return InvalidRequest(f"The multipart body could not be read: {detail}", code="invalid_multipart")


def boundary_of(content_type: str) -> bytes:
    """The boundary a `multipart/form-data` Content-Type names; a 400 for any other body."""
    kind, params = _header_params(content_type)
    boundary = params.get("boundary", "")
    if kind != "multipart/form-data" or not 1 <= len(boundary) <= 70:
        raise InvalidRequest(
            "This endpoint expects a multipart/form-data body with a boundary "
            f"(got Content-Type {content_type[:100]!r}).",
            code="invalid_content_type",
        )
    return boundary.encode("latin-1", "replace")


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="file"; filename="a.txt"` -> ('form-data', {'name': 'file', ...})."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            # Only `\"` and `\\` are escapes: clients send other backslashes as they are.
            raw = re.sub(r'\\([\\"])', r"\1", raw[1:-1])
        params.setdefault(name, raw)
    return head.strip().lower(), params


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    _reader: Reader

    def chunks(self) -> Iterator[bytes]:
        """The part's bytes, as they arrive; read once."""
        return self._reader.content()

    def text(self, limit: int) -> str:
        """A field's value as text; a 400 naming the field past `limit` bytes or not UTF-8."""
        data = bytearray()
        for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                raise InvalidRequest(f"The '{self.name}' field is too long.", param=self.name)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"The '{self.name}' field is not valid UTF-8.", param=self.name) from None


class Reader:
    """Reads `body` (chunks of a multipart body) part by part."""

    def __init__(self, body: Iterator[bytes], boundary: bytes) -> None:
        self._body = body
        # A delimiter is CRLF, "--" and the boundary; the body's first one may lack the CRLF.
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray(b"\r\n")
        self._in_part = False
        self._done = False

    def _more(self) -> bool:
        for chunk in self._body:
            if chunk:
                self._buffer += chunk
                return True
        return False

    def parts(self) -> Iterator[Part]:
        self._skip_to_delimiter()
        count = 0
        while True:
            if self._in_part:  # the consumer left the previous part unread: skip the rest
                for _ in self.content():
                    pass
            if self._after_delimiter():
                return
            count += 1
            if count > MAX_PARTS:
                raise malformed(f"more than {MAX_PARTS} parts.")
            yield self._part()

    def _skip_to_delimiter(self) -> None:
        """Past the preamble and the first delimiter."""
        while (at := self._buffer.find(self._delimiter)) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES or not self._more():
                raise malformed("no part begins with the boundary the Content-Type names.")
        del self._buffer[: at + len(self._delimiter)]

    def _after_delimiter(self) -> bool:
        """Reads what follows a delimiter: True at the closing one (`--`), else past its CRLF."""
        while len(self._buffer) < 2:
            if not self._more():
                raise malformed("the body ends inside a delimiter.")
        if self._buffer[:2] == b"--":
            self._done = True
            return True
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES or not self._more():
                raise malformed("the body ends inside a delimiter.")
        if self._buffer[:end].strip(b" \t"):
            raise malformed("a delimiter is followed by more than white space.")
        del self._buffer[: end + 2]
        return False

    def _part(self) -> Part:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0 and not self._buffer.startswith(b"\r\n"):
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise malformed(f"a part's headers are longer than {MAX_HEADER_BYTES} bytes.")
            if not self._more():
                raise malformed("the body ends inside a part's headers.")
        if self._buffer.startswith(b"\r\n"):
            raw, end = b"", -2
        else:
            raw = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        try:
            lines = raw.decode("utf-8").split("\r\n") if raw else []
        except UnicodeDecodeError:
            raise malformed("a part's headers are not valid UTF-8.") from None
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise malformed("a part's header line has no colon.")
            headers.setdefault(name.strip().lower(), value.strip())
        kind, params = _header_params(headers.get("content-disposition", ""))
        if kind != "form-data" or not params.get("name"):
            raise malformed("a part has no Content-Disposition naming its field.")
        self._in_part = True
        return Part(params["name"], params.get("filename"), headers.get("content-type"), self)

    def content(self) -> Iterator[bytes]:
        """The current part's bytes up to the next delimiter."""
        if not self._in_part:
            return
        keep = len(self._delimiter) - 1
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                data = bytes(self._buffer[:at])
                del self._buffer[: at + len(self._delimiter)]
                self._in_part = False
                if data:
                    yield data
                return
            if len(self._buffer) > keep:
                data = bytes(self._buffer[: len(self._buffer) - keep])
                del self._buffer[: len(data)]
                yield data
            if not self._more():
                self._in_part = False
                raise malformed("the body ends before the part's closing boundary (truncated?).")

"""A file's bytes as text, chosen by the extension of its name.

`SUPPORTED` is the reference's list of file types file_search takes (extension -> MIME type): the
one table that both refuses other extensions when a file is attached (`check_supported`) and picks
the parser when it is ingested (`parse`). Content that cannot be read as its extension says raises
`ParseError`, whose `code` is what the vector-store file's `last_error` takes.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from ..errors import InvalidRequest

log = logging.getLogger("assistants.ingest")

SUPPORTED: dict[str, str] = {
    ".c": "text/x-c",
    ".cpp": "text/x-c++",
    ".cs": "text/x-csharp",
    ".css": "text/css",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".go": "text/x-golang",
    ".html": "text/html",
    ".java": "text/x-java",
    ".js": "text/javascript",
    ".json": "application/json",
    ".md": "text/markdown",
    ".pdf": "application/pdf",
    ".php": "text/x-php",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".py": "text/x-python",
    ".rb": "text/x-ruby",
    ".sh": "application/x-sh",
    ".tex": "text/x-tex",
    ".ts": "application/typescript",
    ".txt": "text/plain",
}

SUPPORTED_FILES_URL = "https://platform.openai.com/docs/assistants/tools/file-search/supported-files"
UNSUPPORTED_MESSAGE = "The file type is not supported."

ErrorCode = Literal["invalid_file", "unsupported_file"]


class ParseError(Exception):
    """The file's content cannot be read as text: `code` and `message` are its `last_error`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def extension(filename: str) -> str:
    """`Report.PDF` -> `.pdf`; `''` when the name has none."""
    name = filename.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_supported(filename: str) -> bool:
    return extension(filename) in SUPPORTED


def check_supported(filenames: Iterable[str], param: str = "file_ids") -> None:
    """OpenAI's 400 at attach time for files whose extension file_search does not take."""
    refused = sorted({extension(name) or name for name in filenames if not is_supported(name)})
    if refused:
        listed = ", ".join(refused)
        raise InvalidRequest(
            f"Files with extensions [{listed}] are not supported for retrieval. See {SUPPORTED_FILES_URL}",
            param=param,
            code="unsupported_file",
        )


def parse(data: bytes, filename: str) -> str:
    """The text of a file, by its extension; `ParseError` if there is none to be had."""
    kind = extension(filename)
    parser = _PARSERS.get(kind, _text if kind in SUPPORTED else None)
    if parser is None:
        raise ParseError("unsupported_file", UNSUPPORTED_MESSAGE)
    try:
        text = parser(data)
    except ParseError:
        raise
    except Exception as exc:  # untrusted bytes: whatever a parser trips on, the file is at fault
        log.info("could not parse %s: %r", kind, exc)
        raise ParseError("invalid_file", f"The file could not be parsed as {kind[1:]}.") from None
    text = _tidy(text)
    if not text.strip():
        raise ParseError("invalid_file", "The file could not be parsed because it contains no text.")
    return text


def _tidy(text: str) -> str:
    """Line ends as `\\n`, NULs out, no runs of blank lines or trailing spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def decode(data: bytes) -> str:
    """Text bytes in UTF-8, UTF-16/32 (with a byte-order mark) or ASCII, else whatever encoding
    charset-normalizer is confident of; binary content is `unsupported_file`."""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                break
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        import charset_normalizer

        best = charset_normalizer.from_bytes(data).best()
        if best is None:
            raise ParseError("unsupported_file", UNSUPPORTED_MESSAGE) from None
        text = str(best)
    if "\x00" in text:  # decodes, but is not text
        raise ParseError("unsupported_file", UNSUPPORTED_MESSAGE)
    return text


def _text(data: bytes) -> str:
    return decode(data)


def _pdf(data: bytes) -> str:
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        raise ParseError("invalid_file", "The file could not be parsed as pdf.") from None
    try:
        pages = []
        for number in range(len(document)):
            page = document[number]
            textpage = page.get_textpage()
            try:
                pages.append(textpage.get_text_range())
            finally:
                textpage.close()
                page.close()
        return "\n\n".join(pages)
    finally:
        document.close()


def _docx(data: bytes) -> str:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    parts: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            parts.extend(_table_rows(block.rows))
        else:
            parts.append(block.text)
    return "\n".join(parts)


def _table_rows(rows: Iterable[Any]) -> Iterator[str]:
    for row in rows:
        yield "\t".join(cell.text for cell in row.cells)


def _pptx(data: bytes) -> str:
    import pptx

    presentation = pptx.Presentation(io.BytesIO(data))
    slides: list[str] = []
    for slide in presentation.slides:
        parts = list(_shape_texts(slide.shapes))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            parts.append(slide.notes_slide.notes_text_frame.text)
        slides.append("\n".join(part for part in parts if part))
    return "\n\n".join(slides)


def _shape_texts(shapes: Iterable[Any]) -> Iterator[str]:
    for shape in shapes:
        if getattr(shape, "shapes", None) is not None:  # a group
            yield from _shape_texts(shape.shapes)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield shape.text_frame.text
        elif getattr(shape, "has_table", False) and shape.has_table:
            yield from _table_rows(shape.table.rows)


_BLOCKS = (
    "address,article,aside,blockquote,br,dd,div,dl,dt,figcaption,footer,form,h1,h2,h3,h4,h5,h6,"
    "header,hr,li,main,nav,ol,p,pre,section,table,title,tr,ul"
)


def _html(data: bytes) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode(data))
    tree.strip_tags(["script", "style", "noscript", "template", "svg"])
    # Block elements end a line and cells are tab-separated; inline markup joins its text.
    for node in tree.css(_BLOCKS):
        node.insert_after("\n")
    for node in tree.css("td,th"):
        node.insert_after("\t")
    root = tree.body or tree.root
    if root is None:
        return ""
    lines = (line.strip() for line in root.text(separator="").split("\n"))
    return "\n".join(line for line in lines if line)


def _unsupported(data: bytes) -> str:
    # Word 97-2003: no well-kept permissive parser exists (engine-choice.md, D).
    raise ParseError("unsupported_file", UNSUPPORTED_MESSAGE)


_PARSERS: dict[str, Callable[[bytes], str]] = {
    ".pdf": _pdf,
    ".docx": _docx,
    ".pptx": _pptx,
    ".html": _html,
    ".doc": _unsupported,
}

"""An answer's text as it streams, cut where it refers to what the run's tools produced: a
citation marker a search gave (`【3:0†handbook.pdf】` -> `file_citation`) or a link to a file the
code wrote (`sandbox:/mnt/data/out.csv` -> `file_path`). Such a reference is held back until
whole, then sent as one piece with its annotation; any other text (a reference the model made
up included) goes as it comes."""

from __future__ import annotations

import re
from typing import Any

_MARKER = re.compile(r"【(\d+):(\d+)†([^】\n]{0,255})】")
_LINK = "sandbox:/mnt/data/"
_LINK_ENDS = re.compile(r"[\s)\]\"'<>`]")
_LONGEST = 300  # a reference not closed within this many characters is plain text


class Annotator:
    def __init__(self, citations: dict[tuple[int, int], str], paths: dict[str, str]) -> None:
        """`citations`: (step, result) -> the cited file's id; `paths`: a name in /mnt/data ->
        the id of the file the code wrote there."""
        self._citations, self._paths = citations, paths
        self._held = ""
        self._ended = False  # the text is whole: a link may end with it

    def feed(self, text: str) -> list[tuple[str, dict[str, Any] | None]]:
        """Pieces ready to send: (text, the annotation's type and reference for a whole one)."""
        self._held += text
        pieces: list[tuple[str, dict[str, Any] | None]] = []
        while self._held:
            start = self._next_start()
            if start is None:
                pieces.append((self._held, None))
                self._held = ""
                break
            if start:
                pieces.append((self._held[:start], None))
                self._held = self._held[start:]
            whole = self._whole()
            if whole is None:
                if len(self._held) > _LONGEST:  # never closed: plain text after all
                    pieces.append((self._held[:1], None))
                    self._held = self._held[1:]
                    continue
                break
            pieces.append(whole)
        return _merged(pieces)

    def flush(self) -> list[tuple[str, dict[str, Any] | None]]:
        """What is held back, at the end of the answer: a link that ends the text is whole; the
        rest is plain text."""
        self._ended = True
        pieces = self.feed("")
        held, self._held = self._held, ""
        return _merged([*pieces, (held, None)])

    def _next_start(self) -> int | None:
        """Where the next reference may start: a bracket, a link, or a tail that may begin one."""
        found = [i for i in (self._held.find("【"), self._held.find(_LINK)) if i != -1]
        for size in range(min(len(_LINK) - 1, len(self._held)), 0, -1):
            if _LINK.startswith(self._held[-size:]):
                found.append(len(self._held) - size)
                break
        return min(found) if found else None

    def _whole(self) -> tuple[str, dict[str, Any] | None] | None:
        """The reference at the start of what is held, taken off it, if it is whole."""
        if self._held.startswith("【"):
            close = self._held.find("】")
            if close == -1:
                return None
            marker = self._take(close + 1)
            match = _MARKER.fullmatch(marker)
            file_id = self._citations.get((int(match[1]), int(match[2]))) if match else None
            cited = {"type": "file_citation", "file_citation": {"file_id": file_id}}
            return marker, cited if file_id else None
        if not self._held.startswith(_LINK):
            return None if _LINK.startswith(self._held) else (self._take(1), None)
        stop = _LINK_ENDS.search(self._held, len(_LINK))
        if stop is None and not self._ended:
            return None
        end = stop.start() if stop is not None else len(self._held)
        # A sentence's closing punctuation is not the name's.
        link = self._take(len(self._held[:end].rstrip(".,;:!?")))
        file_id = self._paths.get(link[len(_LINK) :])
        return link, {"type": "file_path", "file_path": {"file_id": file_id}} if file_id else None

    def _take(self, size: int) -> str:
        taken, self._held = self._held[:size], self._held[size:]
        return taken


def _merged(pieces: list[tuple[str, dict[str, Any] | None]]) -> list[tuple[str, dict[str, Any] | None]]:
    """Adjacent plain pieces as one."""
    merged: list[tuple[str, dict[str, Any] | None]] = []
    for text, annotation in pieces:
        if merged and annotation is None and merged[-1][1] is None:
            merged[-1] = (merged[-1][0] + text, None)
        elif text:
            merged.append((text, annotation))
    return merged

"""How an answer's references to its tools' work become annotations as it streams
(assistants_core.answer and tools.annotations): citation markers (`file_citation`) and links to
files the code wrote (`file_path`), by the rules the SDKs' delta accumulation needs -- a reference
sent whole in one delta with its annotation, each annotation index once, offsets in code points of
the text sent so far -- whatever the fragments the model's text arrives in."""

from __future__ import annotations

from typing import Any

import pytest

from assistants_core.answer import Answer
from assistants_core.models.tool_calls import (
    FileSearchDetails,
    FileSearchResult,
    FileSearchToolCall,
    ModelTurn,
)
from assistants_core.tools import Toolbox
from assistants_core.tools.annotations import Annotator
from assistants_core.tools.file_search import FileSearch, cited

SOURCES = {(3, 0): "file-a", (3, 1): "file-b"}
PATHS = {"out.csv": "file-out"}
TEXT = "Leave is 25 days【3:0†handbook.pdf】 and 🌴 starts in May【3:1†source】【9:9†made-up】."


def stream(fragments: list[str]) -> tuple[Answer, list[dict[str, Any]]]:
    answer = Answer(Toolbox().shape, Annotator(SOURCES, PATHS))
    deltas = [d.model_dump() for f in fragments for d in answer.add_text(f, "msg_1")]
    deltas += [d.model_dump() for d in answer.flush("msg_1")]
    return answer, [d["delta"]["content"][0]["text"] for d in deltas]


def accumulate(parts: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """As both SDKs do: values concatenated, annotations merged by index."""
    value, annotations = "", {}
    for part in parts:
        value += part["value"]
        for annotation in part.get("annotations") or []:
            assert annotation["index"] not in annotations, "an annotation index sent twice"
            annotations[annotation["index"]] = annotation
    return value, [annotations[i] for i in sorted(annotations)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000])
def test_markers_become_annotations_whatever_the_fragments(size: int) -> None:
    fragments = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    answer, parts = stream(fragments)
    assert parts[0]["annotations"] is not None  # the part's first delta carries a list
    value, annotations = accumulate(parts)
    assert value == answer.text == TEXT
    assert [(a["text"], a["file_citation"]["file_id"]) for a in annotations] == [
        ("【3:0†handbook.pdf】", "file-a"),
        ("【3:1†source】", "file-b"),
    ]
    for annotation in annotations:  # offsets in code points (the emoji counts one)
        assert TEXT[annotation["start_index"] : annotation["end_index"]] == annotation["text"]
        assert annotation["file_citation"]["quote"] == ""
    marked = [p for p in parts if p.get("annotations")]
    assert [p["value"] for p in marked] == ["【3:0†handbook.pdf】", "【3:1†source】"]  # whole, alone
    assert [{k: v for k, v in a.items() if k != "index"} for a in annotations] == [
        {**a, "file_citation": {**a["file_citation"], "quote": ""}} for a in answer.annotations
    ]


def test_a_bracket_never_closed_is_text() -> None:
    answer, parts = stream(["Price 【 list", " " + "x" * 400, " end"])
    assert accumulate(parts) == (answer.text, []) and answer.text.startswith("Price 【 list")
    _, parts = stream(["cut at 【3:0†hand"])  # the answer ends mid-marker: the rest is flushed
    assert accumulate(parts) == ("cut at 【3:0†hand", [])


def test_the_sources_come_from_the_runs_searches() -> None:
    results = [FileSearchResult(file_id=f, file_name=f + ".txt", score=0.5) for f in ("file-a", "file-b")]
    output = "【3:0†file-a.txt】\nfirst\n\n【3:1†file-b.txt】\nsecond"
    call = FileSearchToolCall(
        id="call_1",
        file_search=FileSearchDetails(results=results),
        model_turn=ModelTurn(name="file_search", arguments="{}", output=output),
    )
    assert cited([call]) == SOURCES
    cut = FileSearch(searcher=None).call("call_2", "file_search", None)  # type: ignore[arg-type]
    assert isinstance(cut, FileSearchToolCall) and cut.model_turn is None  # a cut call keeps no turn


@pytest.mark.parametrize("size", [1, 4, 7, 1000])
def test_links_to_written_files_become_file_path_annotations(size: int) -> None:
    said = "Get [it](sandbox:/mnt/data/out.csv), not sandbox:/mnt/data/other.csv; sandbox:/mnt/data/out.csv."
    answer, parts = stream([said[i : i + size] for i in range(0, len(said), size)])
    value, annotations = accumulate(parts)
    assert value == answer.text == said
    assert [(a["type"], a["text"], a["file_path"]["file_id"]) for a in annotations] == [
        ("file_path", "sandbox:/mnt/data/out.csv", "file-out")
    ] * 2
    for annotation in annotations:
        assert said[annotation["start_index"] : annotation["end_index"]] == annotation["text"]
    assert answer.annotations == [{k: v for k, v in a.items() if k != "index"} for a in annotations]

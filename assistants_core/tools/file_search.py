"""file_search: the model is offered one function taking a few search queries (as OpenAI's own
`msearch`); the service searches the run's vector stores (the assistant's and the thread's), and
gives the model the results, each after a citation marker `【{step}:{i}†{filename}】` to cite it
with. The step keeps the results (their content shown only when asked for); the answer's markers
become `file_citation` annotations as it streams (annotations.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol

from ..models.run import Run, StepToolCall
from ..models.tool_calls import (
    BuiltinToolCall,
    FileSearchCallDelta,
    FileSearchDetails,
    FileSearchRanking,
    FileSearchResult,
    FileSearchResultContent,
    FileSearchToolCall,
    ModelTurn,
)
from ..models.tools import FileSearchTool
from ..models.vector_store import VectorStore
from .shape import CallDelta, RunTools, ToolFailure

FUNCTION = "file_search"
MAX_QUERIES = 5
WAIT_SECONDS = 60  # what OpenAI's runs wait for a thread store's files before the first call
DEFAULT_RESULTS = 20
SMALL_MODEL_RESULTS = 5  # OpenAI's default for gpt-3.5 models
RANKER: Literal["default_2024_08_21"] = "default_2024_08_21"  # `auto`, as OpenAI returns it
DEFINITION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": FUNCTION,
        "description": (
            "Search the files the user has provided. Give one to five queries: the user's question "
            "resolved to stand alone, and rephrasings of it. Each result begins with a marker such "
            "as 【3:0†report.pdf】; when your answer uses a result, cite it by writing its marker, "
            "exactly as given, right after the statement it supports."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "queries": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": MAX_QUERIES,
                }
            },
            "required": ["queries"],
        },
    },
}
_MARKER = re.compile(r"【(\d+):(\d+)†([^】\n]{0,255})】")


class Hit(Protocol):
    """A chunk a search found."""

    @property
    def file_id(self) -> str: ...

    @property
    def filename(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def text(self) -> str: ...


class Searcher(Protocol):
    """The vector stores, as file_search uses them."""

    def as_of_now(self, store_ids: list[str]) -> dict[str, VectorStore]:
        """The stores among these that exist, as they are now (one past its expiry `expired`)."""

    def wait_for_files(self, store_id: str, seconds: float) -> bool:
        """Until the store has no file in progress, or `seconds` passed."""

    def search_for_run(
        self, store_ids: list[str], queries: list[str], max_results: int, score_threshold: float
    ) -> Sequence[Hit]:
        """The best chunks for the queries over all the stores, best first."""


class FileSearch:
    kind = "file_search"
    function = FUNCTION

    def __init__(self, searcher: Searcher) -> None:
        self._searcher = searcher

    def offer(self, tools: RunTools) -> dict[str, Any] | None:
        """The search function, if the run has a store to search. Before the run's first model
        call, the thread's store may take up to WAIT_SECONDS to finish its files (the
        assistant's is searched as it is); a store past its expiry fails the run."""
        run_stores = stores(tools)
        found = self._searcher.as_of_now(run_stores)
        expired = [store_id for store_id, store in found.items() if store.status == "expired"]
        if expired:
            raise ToolFailure(f"Vector store '{expired[0]}' has expired: it can no longer be searched.")
        thread = tools.thread_resources.file_search if tools.thread_resources else None
        ingesting = [s for s in (thread.vector_store_ids or []) if s in found] if thread else []
        if tools.first_call and any(found[s].file_counts.in_progress for s in ingesting):
            deadline = time.monotonic() + WAIT_SECONDS
            for store_id in ingesting:
                while not self._searcher.wait_for_files(store_id, 1.0) and time.monotonic() < deadline:
                    tools.check()  # a cancel or the deadline ends the wait; the lease is renewed
            found = self._searcher.as_of_now(run_stores)
        searchable = any(s.status != "expired" and s.file_counts.completed > 0 for s in found.values())
        return DEFINITION if searchable else None

    def header(self, index: int, call_id: str, name: str) -> CallDelta:
        return FileSearchCallDelta(index=index, id=call_id)

    def arguments(self, index: int, fragment: str, so_far: str) -> list[CallDelta]:
        return []  # a search shows nothing but its header until its step completes

    def call(self, call_id: str, name: str, arguments: str | None) -> StepToolCall:
        turn = None if arguments is None else ModelTurn(name=name, arguments=arguments, output="")
        return FileSearchToolCall(id=call_id, model_turn=turn)

    def execute(
        self, tools: RunTools, call: BuiltinToolCall, index: int
    ) -> Iterator[CallDelta | BuiltinToolCall]:
        assert call.model_turn is not None
        tools.check()
        count, ranking = options(tools.run)
        queries = _queries(call.model_turn.arguments)
        if queries:
            try:
                hits = self._searcher.search_for_run(stores(tools), queries, count, ranking.score_threshold)
            except ToolFailure:
                raise
            except Exception as exc:
                raise ToolFailure(f"The file search failed: {exc}") from exc
            output = _for_model(tools.step, hits)
        else:
            hits, output = [], 'Invalid arguments: give {"queries": ["..."]} with one to five queries.'
        results = [
            FileSearchResult(
                file_id=h.file_id,
                file_name=h.filename,
                score=h.score,
                content=[FileSearchResultContent(text=h.text)],
            )
            for h in hits
        ]
        turn = call.model_turn.model_copy(update={"output": output})
        details = FileSearchDetails(ranking_options=ranking, results=results)
        yield FileSearchToolCall(id=call.id, file_search=details, model_turn=turn)


def stores(tools: RunTools) -> list[str]:
    """The run's stores: the assistant's (or the run's own tool_resources) and the thread's."""
    found: list[str] = []
    for resources in (tools.run.tool_resources, tools.thread_resources):
        if resources is not None and resources.file_search is not None:
            found += [s for s in resources.file_search.vector_store_ids or [] if s not in found]
    return found


def options(run: Run) -> tuple[int, FileSearchRanking]:
    """How many results a search keeps, and its ranking options, resolved as OpenAI returns them."""
    tool = next((t for t in run.tools if isinstance(t, FileSearchTool)), None)
    settings = tool.file_search if tool is not None else None
    count = SMALL_MODEL_RESULTS if run.model.startswith("gpt-3.5") else DEFAULT_RESULTS
    if settings is not None and settings.max_num_results is not None:
        count = settings.max_num_results
    threshold = 0.0
    if settings is not None and settings.ranking_options is not None:
        threshold = settings.ranking_options.score_threshold
    return count, FileSearchRanking(ranker=RANKER, score_threshold=threshold)


def _queries(arguments: str) -> list[str]:
    try:
        given = json.loads(arguments)
    except ValueError:
        return []
    queries = given.get("queries") if isinstance(given, dict) else None
    if isinstance(queries, str):
        queries = [queries]
    if not isinstance(queries, list):
        return []
    return [q.strip() for q in queries if isinstance(q, str) and q.strip()][:MAX_QUERIES]


def _for_model(step: int, hits: Sequence[Hit]) -> str:
    if not hits:
        return "No results were found in the files."
    return "\n\n".join(f"【{step}:{i}†{hit.filename}】\n{hit.text}" for i, hit in enumerate(hits))


# --- citations -------------------------------------------------------------------------------


def cited(calls: Iterable[StepToolCall]) -> dict[tuple[int, int], str]:
    """What the run's earlier searches gave the model to cite: (step, result) -> file id."""
    found: dict[tuple[int, int], str] = {}
    for call in calls:
        if isinstance(call, FileSearchToolCall) and call.model_turn is not None:
            markers = _MARKER.findall(call.model_turn.output)
            for (step, i, _), result in zip(markers, call.file_search.results or [], strict=False):
                found[int(step), int(i)] = result.file_id
    return found

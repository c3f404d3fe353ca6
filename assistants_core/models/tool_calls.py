"""The calls of built-in tools in a `tool_calls` step (file_search, code_interpreter), and their
deltas; function calls stay in run.py beside the step.

A built-in call also keeps, in storage only, what the model saw of it (`model_turn`: the function
it called, its arguments, the output it was given), so that the run's later model calls replay it;
clients never see it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, Tag, model_serializer

from .base import TAG, SparseModel, WireModel, by_type_among

# The serialization context under which a built-in call's `model_turn` is written (storage).
STORED = {"stored": True}


class ModelTurn(WireModel):
    name: str
    arguments: str
    output: str
    files: dict[str, str] = Field(default_factory=dict)  # what the output names: name -> file id


class _BuiltinCall(WireModel):
    id: str
    model_turn: ModelTurn | None = Field(default=None, exclude=True)

    @model_serializer(mode="wrap")
    def _with_turn(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if info.context and info.context.get("stored") and self.model_turn is not None:
            data["model_turn"] = self.model_turn.model_dump()
        return data


class FileSearchRanking(WireModel):
    ranker: Literal["auto", "default_2024_08_21"]
    score_threshold: float


class FileSearchResultContent(WireModel):
    type: Literal["text"] = "text"
    text: str


class FileSearchResult(SparseModel):
    file_id: str
    file_name: str
    score: float
    content: list[FileSearchResultContent] | None = None  # stored always; shown when asked for


class FileSearchDetails(SparseModel):
    ranking_options: FileSearchRanking | None = None
    results: list[FileSearchResult] | None = None


class FileSearchToolCall(_BuiltinCall):
    type: Literal["file_search"] = "file_search"
    file_search: FileSearchDetails = Field(default_factory=FileSearchDetails)

    def without_content(self) -> FileSearchToolCall:
        results = self.file_search.results
        if not results:
            return self
        bare = [r.model_copy(update={"content": None}) for r in results]
        return self.model_copy(update={"file_search": self.file_search.model_copy(update={"results": bare})})


class CodeInterpreterLogs(WireModel):
    type: Literal["logs"] = "logs"
    logs: str


class ImageFileId(WireModel):
    file_id: str


class CodeInterpreterImage(WireModel):
    type: Literal["image"] = "image"
    image: ImageFileId


CodeInterpreterOutput = Annotated[
    Annotated[CodeInterpreterLogs, Tag(TAG + "logs")] | Annotated[CodeInterpreterImage, Tag(TAG + "image")],
    by_type_among("code interpreter output", "logs", "image"),
]


class CodeInterpreterDetails(WireModel):
    input: str = ""
    outputs: list[CodeInterpreterOutput] = Field(default_factory=list)


class CodeInterpreterToolCall(_BuiltinCall):
    type: Literal["code_interpreter"] = "code_interpreter"
    code_interpreter: CodeInterpreterDetails = Field(default_factory=CodeInterpreterDetails)

    def images(self) -> list[str]:
        """The files of the images the code displayed."""
        outputs = self.code_interpreter.outputs
        return [o.image.file_id for o in outputs if isinstance(o, CodeInterpreterImage)]


BuiltinToolCall = FileSearchToolCall | CodeInterpreterToolCall


# --- deltas ----------------------------------------------------------------------------------


class FileSearchCallDelta(WireModel):
    """A file search call's one delta: "for now, this is always going to be an empty object"."""

    index: int
    id: str
    type: Literal["file_search"] = "file_search"
    file_search: dict[str, Any] = Field(default_factory=dict)


class CodeInterpreterLogsDelta(WireModel):
    index: int
    type: Literal["logs"] = "logs"
    logs: str


class CodeInterpreterImageDelta(WireModel):
    index: int
    type: Literal["image"] = "image"
    image: ImageFileId


class CodeInterpreterDelta(SparseModel):
    input: str | None = None
    outputs: list[CodeInterpreterLogsDelta | CodeInterpreterImageDelta] | None = None


class CodeInterpreterCallDelta(SparseModel):
    index: int
    id: str | None = None
    type: Literal["code_interpreter"] = "code_interpreter"
    code_interpreter: CodeInterpreterDelta

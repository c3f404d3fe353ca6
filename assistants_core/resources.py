"""What `tool_resources` and message attachments make of vector stores: a `vector_stores` helper
becomes a new store's id, `vector_store_ids` must name stores that exist, and a file attached to a
message for file_search goes into its thread's store, made for it if the thread has none (the
thread then lists it, as OpenAI's does)."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidRequest
from .models.message import Attachment
from .models.tools import FileSearchResources, ToolResources
from .vector_stores import VectorStores

THREAD_STORE_DAYS = 7  # thread helpers' and attachments' stores expire this long after last use


class Resources:
    def __init__(self, vector_stores: VectorStores) -> None:
        self._stores = vector_stores

    def resolve(self, resources: ToolResources | None, param: str, helper_days: int | None) -> None:
        """`resources` as they are stored: a helper's store created (expiring `helper_days` after
        its last use, if given), the ids checked. `param` is where they sit in the request."""
        search = resources.file_search if resources is not None else None
        if search is None:
            return
        if search.vector_stores:
            if search.vector_store_ids:
                raise InvalidRequest(
                    "Give either 'vector_store_ids' or 'vector_stores' in 'file_search', not both.",
                    param=f"{param}.file_search.vector_stores",
                    code="invalid_value",
                )
            helper = search.vector_stores[0]
            search.vector_store_ids = [
                self._stores.create_for_thread(
                    helper.file_ids, helper.chunking_strategy, helper.metadata, helper_days
                )
            ]
            search.vector_stores = None
        for n, store_id in enumerate(search.vector_store_ids or []):
            if not self._stores.exists(store_id):
                raise InvalidRequest(
                    f"Invalid '{param}.file_search.vector_store_ids[{n}]': no vector store with id "
                    f"'{store_id[:64]}' exists.",
                    param=f"{param}.file_search.vector_store_ids[{n}]",
                    code="invalid_value",
                )

    @staticmethod
    def refuse_helper(resources: ToolResources | None, param: str) -> None:
        """A modify request names stores by id only."""
        if (
            resources is not None
            and resources.file_search is not None
            and resources.file_search.vector_stores
        ):
            raise InvalidRequest(
                "'vector_stores' creates stores only when an object is created; pass 'vector_store_ids'.",
                param=f"{param}.file_search.vector_stores",
                code="unsupported_parameter",
            )

    def attach(self, resources: ToolResources, attachments: Iterable[Attachment]) -> bool:
        """The files attached for file_search, in the thread's store (made if it has none);
        whether `resources` changed (a store was made)."""
        file_ids = [a.file_id for a in attachments if any(t.type == "file_search" for t in a.tools)]
        if not file_ids:
            return False
        search = resources.file_search or FileSearchResources()
        if search.vector_store_ids:
            for file_id in file_ids:
                self._stores.attach(search.vector_store_ids[0], file_id)
            return False
        search.vector_store_ids = [
            self._stores.create_for_thread(file_ids, expires_after_days=THREAD_STORE_DAYS)
        ]
        resources.file_search = search
        return True

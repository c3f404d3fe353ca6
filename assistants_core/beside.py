"""Work that need not wait for the caller's: storage reads made side by side, so that a request
waits for the slowest of them, not for their sum."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Threads are made only when used; each waits on storage, so there can be many per core.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="beside")


def beside(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Start `function` on another thread, in the caller's context (its spans nest under the
    caller's); `.result()` waits for it."""
    context = contextvars.copy_context()
    return _POOL.submit(functools.partial(context.run, function, *args, **kwargs))

"""Object ids: `<prefix>_` + 24 characters of `[0-9A-Za-z]` that sort in creation order.

The first characters are a number in a base-62 alphabet whose character order matches its digit
order, so ids compare (as strings, the way Table Storage compares keys) in number order. The
rest is random, so ids never collide. The number is either a per-process strictly increasing
microsecond clock (`new_id`: assistants, threads; ordered as this process created them, also
within one millisecond) or a sequence number the caller allocates (`sequential_id`: a thread's
messages, numbered by the thread itself whatever the clocks say).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LENGTH = 24
_CLOCK_DIGITS = 10  # 62**10 microseconds is about 26,000 years
_INVERTED = str.maketrans(ALPHABET, ALPHABET[::-1])
_BODY = re.compile(rf"[0-9A-Za-z]{{{BODY_LENGTH}}}")

ASSISTANT = "asst"
THREAD = "thread"
MESSAGE = "msg"
RUN = "run"
STEP = "step"
CALL = "call"
FILE = "file"  # OpenAI's file ids read `file-...`, and clients match on that prefix
UPLOAD = "upload"
PART = "part"
VECTOR_STORE = "vs"
FILE_BATCH = "vsfb"
_DASHED = frozenset({FILE})
_HEAD = re.compile(r"[a-z]+[_-]")
_SEQUENCE_DIGITS = 8  # 62**8 messages in one thread


class _MonotonicClock:
    """Wall-clock microseconds, never repeating or going backwards within this process."""

    def __init__(self, now: Callable[[], int] = time.time_ns) -> None:
        self.now = now
        self._last = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            self._last = max(self.now() // 1000, self._last + 1)
            return self._last


clock = _MonotonicClock()  # the process's one id clock


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def unix_seconds() -> int:
    """Now, by the clock ids are made with."""
    return clock.now() // 1_000_000_000


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _joined(prefix: str, body: str) -> str:
    return f"{prefix}{'-' if prefix in _DASHED else '_'}{body}"


def _split(value: str) -> tuple[str, str]:
    """(the prefix with its separator, the body)."""
    head = _HEAD.match(value)
    return (head.group(), value[head.end() :]) if head else ("", value)


def random_id(prefix: str) -> str:
    """An id with no order to it (a tool call the model gave no id)."""
    return _joined(prefix, _random(BODY_LENGTH))


def new_id(prefix: str) -> tuple[str, int]:
    """A fresh id and its creation time in Unix seconds."""
    micros = clock.tick()
    return (
        _joined(prefix, _base62(micros, _CLOCK_DIGITS) + _random(BODY_LENGTH - _CLOCK_DIGITS)),
        micros // 1_000_000,
    )


def sequential_id(prefix: str, number: int) -> str:
    """An id that sorts by `number` among ids made this way (a thread's messages)."""
    return _joined(prefix, _base62(number, _SEQUENCE_DIGITS) + _random(BODY_LENGTH - _SEQUENCE_DIGITS))


def is_valid(prefix: str, value: str) -> bool:
    """Whether `value` has the exact shape of an id with this prefix (checked before any storage use)."""
    head, body = _split(value)
    return head == _joined(prefix, "") and _BODY.fullmatch(body) is not None


_ANY_BODY = re.compile(r"[0-9A-Za-z]{1,64}")


def is_well_formed(prefix: str, value: str) -> bool:
    """Whether `value` looks like an id of this kind from any Assistants API (`run_abc123`), so
    that a filter by it answers a list, empty for an id this service never made."""
    head, body = _split(value)
    return head == _joined(prefix, "") and _ANY_BODY.fullmatch(body) is not None


def sort_key(value: str) -> str:
    """The part of a valid id that orders it."""
    return _split(value)[1]


def inverted(key: str) -> str:
    """A key that sorts in exactly the opposite order of `key` among keys of the same length."""
    return key.translate(_INVERTED)

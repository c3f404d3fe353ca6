"""Object ids: `<prefix>_` + 24 characters of `[0-9A-Za-z]` that sort in creation order.

The first characters encode a per-process strictly increasing microsecond clock in a base-62
alphabet whose character order matches its digit order, so ids compare (as strings, the way
Table Storage compares keys) in the order this process created them, also within one
millisecond. The rest is random, so ids from different instances never collide.
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
_RANDOM_DIGITS = BODY_LENGTH - _CLOCK_DIGITS
_INVERTED = str.maketrans(ALPHABET, ALPHABET[::-1])
_BODY = re.compile(rf"[0-9A-Za-z]{{{BODY_LENGTH}}}")

ASSISTANT = "asst"


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


def new_id(prefix: str) -> tuple[str, int]:
    """A fresh id and its creation time in Unix seconds."""
    micros = clock.tick()
    body = _base62(micros, _CLOCK_DIGITS) + "".join(secrets.choice(ALPHABET) for _ in range(_RANDOM_DIGITS))
    return f"{prefix}_{body}", micros // 1_000_000


def is_valid(prefix: str, value: str) -> bool:
    """Whether `value` has the exact shape of an id with this prefix (checked before any storage use)."""
    head, _, body = value.partition("_")
    return head == prefix and _BODY.fullmatch(body) is not None


def sort_key(value: str) -> str:
    """The part of a valid id that orders it."""
    return value.partition("_")[2]


def inverted(key: str) -> str:
    """A key that sorts in exactly the opposite order of `key` among keys of the same length."""
    return key.translate(_INVERTED)

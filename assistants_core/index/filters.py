"""OpenAI's attribute filters (`ComparisonFilter`, `CompoundFilter`), evaluated on a file's
attributes. One evaluator for every engine that filters in process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")


def matches(filters: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    kind = filters.get("type")
    if kind in COMPOUNDS:
        results = (matches(f, attributes) for f in filters.get("filters", ()))
        return all(results) if kind == "and" else any(results)
    key, expected = filters.get("key"), filters.get("value")
    if not isinstance(key, str):
        return False
    if key not in attributes:  # a file without the attribute is unequal to anything
        return kind in ("ne", "nin")
    actual = attributes[key]
    if kind == "eq":
        return _same(actual, expected)
    if kind == "ne":
        return not _same(actual, expected)
    if kind in ("in", "nin"):
        found = isinstance(expected, list) and any(_same(actual, item) for item in expected)
        return found if kind == "in" else not found
    if not _comparable(actual, expected):
        return False
    if kind == "gt":
        return bool(actual > expected)
    if kind == "gte":
        return bool(actual >= expected)
    if kind == "lt":
        return bool(actual < expected)
    if kind == "lte":
        return bool(actual <= expected)
    return False


def _same(a: Any, b: Any) -> bool:
    # JSON's true is not 1: booleans equal only booleans.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (isinstance(a, str) and isinstance(b, str))

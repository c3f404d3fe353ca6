"""List parameters and the list envelope: the one pager contract every list endpoint uses."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from . import ids
from .errors import InvalidRequest
from .models.base import ApiObject, WireModel

Order = Literal["asc", "desc"]
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_DIGITS = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class ListQuery:
    """A validated page request. `before` asks for the page just ahead of that id in `order`."""

    limit: int = DEFAULT_LIMIT
    order: Order = "desc"
    after: str | None = None
    before: str | None = None

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, str],
        id_prefix: str,
        default: int = DEFAULT_LIMIT,
        maximum: int = MAX_LIMIT,
    ) -> ListQuery:
        """`default` and `maximum` bound `limit` where the spec gives a list other bounds."""
        return cls(
            limit=_limit(params.get("limit"), default, maximum),
            order=_order(params.get("order")),
            after=id_param(params, "after", id_prefix),
            before=id_param(params, "before", id_prefix),
        )


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw):
        raise InvalidRequest(
            f"Invalid 'limit': expected an integer between 1 and {maximum}.",
            param="limit",
            code="invalid_type",
        )
    value = int(raw)
    if not 1 <= value <= maximum:
        raise InvalidRequest(
            f"Invalid 'limit': expected an integer between 1 and {maximum}, but got {value} instead.",
            param="limit",
            code="integer_below_min_value" if value < 1 else "integer_above_max_value",
        )
    return value


def _order(raw: str | None) -> Order:
    if raw is None:
        return "desc"
    if raw in ("asc", "desc"):
        return "asc" if raw == "asc" else "desc"
    raise InvalidRequest(
        "Invalid value for 'order': supported values are 'asc' and 'desc'.",
        param="order",
        code="invalid_value",
    )


def id_param(params: Mapping[str, str], name: str, id_prefix: str, foreign: bool = False) -> str | None:
    """An optional query parameter that must be an id of one kind (a cursor, a filter); a
    `foreign` one may also be any well-formed id of that kind, this service's or not."""
    raw = params.get(name)
    if raw is None:
        return None
    if not (ids.is_well_formed(id_prefix, raw) if foreign else ids.is_valid(id_prefix, raw)):
        raise InvalidRequest(
            f"Invalid '{name}': expected an id of the form '{id_prefix}_...' as returned by this API.",
            param=name,
            code="invalid_value",
        )
    return raw


Item = TypeVar("Item", bound=ApiObject)


class ListPage(WireModel, Generic[Item]):
    object: Literal["list"] = "list"
    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def of(cls, items: Sequence[Item], has_more: bool) -> ListPage[Item]:
        return cls(
            data=list(items),
            first_id=items[0].id if items else None,
            last_id=items[-1].id if items else None,
            has_more=has_more,
        )

"""What every wire model shares: strict request parsing, OpenAI-style validation errors, metadata."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from ..errors import InvalidRequest

# Tags of `type`-discriminated unions carry this mark so that error locations can drop them:
# pydantic puts the tag in the location, OpenAI's `param` does not.
TAG = "type="

METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512


def by_type(value: Any) -> str | None:
    """The tag of a `type`-discriminated union member, for `Discriminator`."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return TAG + kind if isinstance(kind, str) else None


def by_type_among(kind: str, *types: str, tag: Callable[[Any], str | None] = by_type) -> Discriminator:
    """Picks a union member by `type` (or by `tag`, for a union with members beyond those
    `types`); any other `type` is a 400 naming the supported ones."""
    supported = ", ".join(f"'{t}'" for t in types[:-1]) + f" and '{types[-1]}'"
    return Discriminator(
        tag,
        custom_error_type="invalid_union_member",
        custom_error_message=f"Invalid {kind} type. Supported values are: {supported}.",
    )


class WireModel(BaseModel):
    """An object as the API returns it."""

    # defer_build: a model's validators are built on its first use, not at import, so a cold
    # start pays only for the models its first requests need.
    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)


class ApiObject(WireModel):
    """A top-level object with an id: what lists hold and what storage keeps."""

    id: str

    def with_changes(self, changes: dict[str, Any]) -> Self:
        """A copy with `changes` applied; an explicit null puts the field back to its default."""
        fields = type(self).model_fields
        return self.model_copy(
            update={
                name: fields[name].get_default(call_default_factory=True) if value is None else value
                for name, value in changes.items()
            }
        )


class SparseModel(WireModel):
    """A nested object whose absent optional fields are left out of the JSON, not sent as null."""

    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class RequestModel(WireModel):
    """A request body: strict types, unknown fields refused."""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Self:
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise invalid_request(exc) from None

    def given(self) -> dict[str, Any]:
        """The fields the body named, with their values (null included): absent fields are
        told from explicit nulls by `model_fields_set`."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def check_pairs(value: Mapping[str, object], field: str) -> None:
    """The spec's bounds on a map of at most 16 pairs (`metadata`, a vector-store file's
    `attributes`): keys up to 64 characters, string values up to 512."""
    if len(value) > METADATA_MAX_PAIRS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "Invalid '" + field + "': too many properties. Expected an object with at most {limit} "
            "properties, but got an object with {count} properties instead.",
            {"limit": METADATA_MAX_PAIRS, "count": len(value)},
        )
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid '" + field + "': keys can be at most {limit} characters long, but a key is "
                "{length} characters long.",
                {"limit": METADATA_MAX_KEY, "length": len(key)},
            )
        if isinstance(item, str) and len(item) > METADATA_MAX_VALUE:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid '" + field + "': values can be at most {limit} characters long, but the value "
                "of {key!r} is {length} characters long.",
                {"limit": METADATA_MAX_VALUE, "key": key[:METADATA_MAX_KEY], "length": len(item)},
            )


def check_metadata(value: dict[str, str]) -> dict[str, str]:
    check_pairs(value, "metadata")
    return value


# The one metadata validator, shared by every object that carries metadata.
Metadata = Annotated[dict[str, str], AfterValidator(check_metadata)]


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", "null is not allowed")
    return value


# For a field that may be left out of a body but may not be null: defaults are not validated,
# so only an explicit null reaches this.
NotNull = AfterValidator(_refuse_null)


# --- pydantic errors in OpenAI's words -------------------------------------------------------

_EXPECTED = {
    "string_type": "a string",
    "float_type": "a number",
    "int_type": "an integer",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
    "none_required": "null",
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def param_of(location: tuple[int | str, ...]) -> str:
    """`('tools', 3, 'type=function', 'function', 'name')` -> `tools[3].function.name`."""
    param = ""
    for part in location:
        if isinstance(part, int):
            param += f"[{part}]"
        elif not part.startswith(TAG):
            param += f".{part}" if param else part
    return param


def _describe(error: ErrorDetails, param: str) -> tuple[str, str]:
    kind, ctx, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "extra_forbidden":
        return "unknown_parameter", f"Unknown parameter: '{param}'."
    if kind == "missing":
        return "missing_required_parameter", f"Missing required parameter: '{param}'."
    if kind == "string_too_long":
        return "string_above_max_length", (
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{ctx['max_length']}, but got a string with length {len(given)} instead."
        )
    if kind == "string_too_short":
        return "string_below_min_length", (
            f"Invalid '{param}': string too short. Expected a string with minimum length "
            f"{ctx['min_length']}, but got a string with length {len(given)} instead."
        )
    if kind == "too_long":
        return "array_above_max_length", (
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{ctx['max_length']}, but got an array with length {ctx['actual_length']} instead."
        )
    if kind == "too_short":
        return "array_below_min_length", (
            f"Invalid '{param}': array too short. Expected an array with minimum length "
            f"{ctx['min_length']}, but got an array with length {ctx['actual_length']} instead."
        )
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return "decimal_above_max_value", (
            f"Invalid '{param}': number above maximum value. Expected a value <= {bound}, "
            f"but got {_short(given)} instead."
        )
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return "decimal_below_min_value", (
            f"Invalid '{param}': number below minimum value. Expected a value >= {bound}, "
            f"but got {_short(given)} instead."
        )
    if kind in _EXPECTED:
        return "invalid_type", (
            f"Invalid type for '{param}': expected {_EXPECTED[kind]}, but got {_json_kind(given)} instead."
        )
    if kind == "literal_error":
        return "invalid_value", (
            f"Invalid value for '{param}': {_short(given)}. Supported values are: {ctx['expected']}."
        )
    if kind == "string_pattern_mismatch":
        return "invalid_value", (
            f"Invalid '{param}': string does not match pattern. Expected a string that matches "
            f"the pattern '{ctx['pattern']}'."
        )
    if kind == "null_not_allowed":
        return "invalid_type", f"Invalid type for '{param}': null is not allowed here."
    if kind == "invalid_union_member":
        return "invalid_value", error["msg"]
    # Our own PydanticCustomErrors carry an OpenAI code as their type and a finished message.
    return kind, error["msg"]


def invalid_request(exc: ValidationError) -> InvalidRequest:
    """The first validation error, as OpenAI reports it: one message, one `param`."""
    error = exc.errors(include_url=False)[0]
    location = tuple(error["loc"])
    if error["type"] == "invalid_union_member" and isinstance(error.get("input"), dict):
        location += ("type",)
    param = param_of(location)
    code, message = _describe(error, param)
    return InvalidRequest(message, param=param or None, code=code)

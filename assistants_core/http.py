"""The HTTP edge: auth, api-version, body parsing, the one error renderer, request ids and logs."""

from __future__ import annotations

import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import BaseModel

from . import routing, telemetry
from .errors import (
    ApiError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedApiVersion,
)
from .service import Service
from .settings import Settings
from .storage import StorageUnavailable, Store

log = logging.getLogger(telemetry.LOGGER)

# Every version here speaks the Assistants v2 shapes; a request without one gets the latest.
API_VERSIONS = frozenset(
    {
        "2024-05-01-preview",
        "2024-07-01-preview",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2025-01-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_JSON_DEPTH = 64


class Call:
    """One request as an endpoint sees it."""

    def __init__(self, request: func.HttpRequest, service: Service) -> None:
        self.request = request
        self.service = service

    @property
    def params(self) -> Mapping[str, str]:
        return cast(Mapping[str, str], self.request.params)

    def path(self, name: str) -> str:
        return str(self.request.route_params[name])

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; an empty body is an empty object."""
        raw = self.request.get_body() or b""
        if not raw.strip():
            return {}
        try:
            value = json.loads(
                raw.decode("utf-8"),
                object_pairs_hook=_object_without_duplicates,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
            )
        except UnicodeDecodeError:
            raise InvalidRequest("The request body is not valid UTF-8.", code="invalid_encoding") from None
        except _DuplicateKey as exc:
            raise InvalidRequest(
                f"The JSON body names '{exc.key}' more than once.", param=exc.key, code="duplicate_parameter"
            ) from None
        except (ValueError, RecursionError):
            raise InvalidRequest(
                "We could not parse the JSON body of your request. The API expects a JSON object.",
                code="invalid_json",
            ) from None
        if not isinstance(value, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
        _check_json_values(value)
        return value


Endpoint = Callable[[Call], BaseModel]


class Api:
    """What every HTTP function goes through, around its endpoint."""

    def __init__(self, settings: Settings) -> None:
        self._keys = settings.api_keys
        self._service = Service(Store(settings))

    @classmethod
    def from_environment(cls) -> Api:
        """Raises ConfigurationError, so that the app refuses to start, when settings are missing;
        starts telemetry when it is configured."""
        api = cls(Settings.from_environ())
        telemetry.configure()
        return api

    def handle(self, request: func.HttpRequest, endpoint: Endpoint) -> func.HttpResponse:
        request_id = "req_" + secrets.token_hex(16)
        telemetry.tag_request(request_id)
        started = time.perf_counter()
        try:
            self._admit(request)
            response = _json_response(200, endpoint(Call(request, self._service)).model_dump_json().encode())
        except ApiError as error:
            response = _error_response(error)
        except StorageUnavailable:
            log.warning("storage unavailable request_id=%s", request_id, exc_info=True)
            response = _error_response(ServiceUnavailable())
        except Exception:
            log.exception("unhandled error request_id=%s", request_id)
            response = _error_response(InternalError())
        response.headers["x-request-id"] = request_id
        log.info(
            "%s %s -> %d in %.1f ms request_id=%s",
            request.method,
            urlsplit(request.url).path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return response

    def handle_unmatched(self, request: func.HttpRequest, app: routing.FunctionApp) -> func.HttpResponse:
        """For the catch-all route: a JSON 405 where the path exists with other methods, else 404."""
        routes = [r for r in app.http_routes if not r.is_catch_all]
        path = request.route_params.get("path", "")
        allowed = sorted({m for route, _ in routing.matching(routes, path) for m in route.methods})

        def unmatched(call: Call) -> BaseModel:
            where = f"({request.method} {urlsplit(request.url).path})"
            if allowed:
                raise MethodNotAllowed(f"Method not allowed {where}.", allowed=allowed)
            raise NotFound(f"Invalid URL {where}.")

        return self.handle(request, unmatched)

    def _admit(self, request: func.HttpRequest) -> None:
        if not (self._is_key(request.headers.get("api-key")) or self._is_key(_bearer(request))):
            raise Unauthorized()
        version = request.params.get("api-version")
        if version is not None and version not in API_VERSIONS:
            raise UnsupportedApiVersion()
        if len(request.get_body() or b"") > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"The request body is larger than this service's limit of {MAX_BODY_BYTES:,} bytes."
            )

    def _is_key(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        given = candidate.encode("utf-8", "replace")
        # Compare with every key, always, so timing reveals neither a key nor which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        return matched


def _bearer(request: func.HttpRequest) -> str | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _json_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        body=body,
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _error_response(error: ApiError) -> func.HttpResponse:
    """The one place an error becomes a response."""
    return _json_response(error.status, json.dumps(error.body()).encode(), error.headers())


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _check_json_values(body: dict[str, Any]) -> None:
    """Refuses strings that are not valid Unicode (lone surrogates) and nesting beyond reason:
    neither can be stored or returned faithfully."""
    stack: list[tuple[str, Any, int]] = [("", body, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(
                f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.",
                param=path or None,
                code="invalid_value",
            )
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)  # a key that is not text cannot be named in `param` either
                stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, param: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"Invalid '{param or 'body'}': a string contains an unpaired UTF-16 surrogate.",
            param=param or None,
            code="invalid_value",
        ) from None

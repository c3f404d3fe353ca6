"""Typed API errors. Each knows its status, body and headers; `http.py` renders them all."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error in OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404

    @classmethod
    def object(cls, kind: str, object_id: str) -> NotFound:
        return cls(f"No {kind} found with id '{object_id}'.")


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class PayloadTooLarge(ApiError):
    status = 413
    code = "request_too_large"


class Unauthorized(ApiError):
    """Azure's own 401 body, which Azure OpenAI clients already know how to report."""

    status = 401
    MESSAGE = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource."
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": "401", "message": self.message}}


class UnsupportedApiVersion(ApiError):
    """Azure's own body for an `api-version` it does not serve."""

    status = 400

    def __init__(self) -> None:
        super().__init__("API version not supported")

    def body(self) -> dict[str, Any]:
        return {"error": {"code": "BadRequest", "message": self.message}}


class ServiceUnavailable(ApiError):
    status = 503
    type = "server_error"
    code = "service_unavailable"
    RETRY_AFTER_SECONDS = 5

    def __init__(self) -> None:
        super().__init__("The service's storage is unavailable right now. Please retry shortly.")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.RETRY_AFTER_SECONDS)}


class InternalError(ApiError):
    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("The server had an error while processing your request.")

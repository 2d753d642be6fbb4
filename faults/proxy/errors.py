"""Admin API errors, one class per HTTP outcome, so one table maps them to status codes."""

from __future__ import annotations


class ApiError(Exception):
    """An admin request that cannot be served; the message goes to the client as is."""


class BadRequest(ApiError):
    """Malformed JSON, a missing field or an attribute of the wrong type or range."""


class Forbidden(ApiError):
    """A browser, a cross-origin request or a foreign Host header (DNS rebinding)."""


class NotFound(ApiError):
    """No such proxy, toxic or path."""


class MethodNotAllowed(ApiError):
    """The path exists but not with this method."""

    def __init__(self, message: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(ApiError):
    """The name already exists, or the listen address is taken by another socket."""


class PayloadTooLarge(ApiError):
    """The request body is larger than the admin API accepts."""


STATUS: dict[type[ApiError], int] = {
    BadRequest: 400,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    Conflict: 409,
    PayloadTooLarge: 413,
}


def http_status(err: ApiError) -> int:
    """The one place errors become status codes (most specific class wins)."""
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400

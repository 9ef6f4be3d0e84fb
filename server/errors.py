"""Domain errors raised by services and stores.

Services never raise ``tornado.web.HTTPError``; the API base handler maps these
to HTTP statuses and the one JSON error shape.
"""

from __future__ import annotations

from typing import Any


class BIError(Exception):
    """Base class: ``message`` is shown to the user, ``details`` is optional structured context, and
    ``code`` (the class's unless given) names the problem for programs and the UI's translations."""

    code = "error"

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code


def quoted(value: str, limit: int = 40) -> str:
    """``value`` as a message quotes what the caller sent: its ``repr``, cut past ``limit`` characters."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "…"


class InvalidRequestError(BIError):
    """The request is malformed (bad JSON, missing field, bad parameter)."""

    code = "bad_request"


class InvalidJSONError(InvalidRequestError):
    """The body or frame is not JSON within the limits (``details.reason``, ``details.pointer``)."""

    code = "invalid_json"


class AuthenticationError(BIError):
    """No credentials, or bad, expired or tampered ones."""

    code = "unauthorized"


class PermissionDeniedError(BIError):
    """The caller may see the resource but not do this to it."""

    code = "forbidden"


class DatasetNotReadableError(PermissionDeniedError):
    """A card version names a dataset that its author (who saved it) may not read: it cannot run."""

    code = "dataset_not_readable"


class AccessRevokedError(PermissionDeniedError):
    """A session's user lost the rights it was opened on (a share revoked): the session has ended."""

    code = "access_revoked"

class PasswordChangeRequiredError(PermissionDeniedError):
    """The user's password is a one-time one an admin set: only choosing a new one is allowed. At
    sign-in, ``details`` carry an access token that may do just that (``POST /api/me/password``)."""

    code = "password_change_required"


class NotFoundError(BIError):
    """Unknown, or not visible to the caller."""

    code = "not_found"


class ConflictError(BIError):
    """A version check failed or a unique name is taken."""

    code = "conflict"


class PreconditionRequiredError(BIError):
    """A change must name the version it was made from (``If-Match``), and did not."""

    code = "precondition_required"


class PayloadTooLargeError(BIError):
    """The request body is over the configured limit."""

    code = "payload_too_large"


class StorageQuotaError(PayloadTooLargeError):
    """An upload would take the owner's datasets past their storage quota."""

    code = "storage_quota_exceeded"


class UnsupportedMediaTypeError(BIError):
    """The body is of a type the route does not read: a JSON body must say ``Content-Type: application/json``."""

    code = "unsupported_media_type"


class UnprocessableError(BIError):
    """Well-formed request, but the data in it cannot be used (unparseable CSV, invalid spec)."""

    code = "unprocessable"


class RateLimitedError(BIError):
    """Too many attempts; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int, details: dict[str, Any] | None = None, *,
                 code: str | None = None):
        super().__init__(message, details, code=code)
        self.retry_after = retry_after


class ExecutionTimeoutError(BIError):
    """Card code ran past its wall-clock limit; ``details`` hold what it printed before."""

    code = "timeout"


class KernelLostError(BIError):
    """The session's kernel is gone (its executor agent stopped) and no new one could be started."""

    code = "kernel_lost"


class OutputTooLargeError(BIError):
    """Card code sent one message larger than any output may be; ``details`` hold what came before it."""

    code = "output_too_large"


class ServiceUnavailableError(BIError):
    """A part the request needs (an executor agent) cannot serve it now; try again later."""

    code = "unavailable"


class StorageUnavailableError(BIError):
    """The store did not answer after its retries (throttling, 5xx, a lost connection, a timeout).

    The outcome of a write that fails so is unknown (``maybe_done``) unless the store refused every attempt
    (throttled it, or no connection was made): it may have been saved, or be saved later by an attempt still on
    its way. Services undo nothing it could point to then (``services/store_writes.py``)."""

    code = "storage_unavailable"

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, maybe_done: bool = True):
        super().__init__(message, details)
        self.maybe_done = maybe_done


class StoreClosedError(BIError):
    """The store was closed; the server is shutting down."""

    code = "unavailable"


class TableTooLargeError(BIError):
    """A DataFrame output's table would take more than the server keeps (rows, bytes, values)."""

    code = "table_too_large"


class OutputTooComplexError(BIError):
    """An SVG or Bokeh output holds more elements or models than the server cleans (``limits.SVG_TAGS``,
    ``limits.BOKEH_MODELS``): it becomes an error output of this code."""

    code = "output_too_complex"


class InvalidTableError(BIError):
    """A DataFrame output's table is not a well-formed Arrow stream."""

    code = "invalid_table"


class LeaseLostError(Exception):
    """The lease a write was made under expired or passed to another holder: the write did not happen.
    Never reaches a user: the work under the lease stops quietly (``lease_lost`` in the log)."""

"""Typed errors. Lower layers raise these; the CLI maps them to exit codes in one place."""

from __future__ import annotations


class ExportError(Exception):
    """Base class: `str(error)` is a one-line message a user can act on."""


class ConfigError(ExportError):
    """Bad usage or configuration, detected before any request to Port (exit 2)."""


class AuthError(ExportError):
    """Opsgenie or Port refused the credentials or their rights (exit 3). Never retried."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiError(ExportError):
    """An HTTP call failed for good (after retries where they apply)."""

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class PortStateError(ExportError):
    """Port's current entities could not be read: nothing can be compared, so the run stops."""


class PlanRestrictedError(ApiError):
    """The account's plan or the key's rights exclude an endpoint (Opsgenie 402/403 on a list)."""


class WaitBudgetExceeded(ApiError):
    """Retries and rate-limit waits used up the run's total wait budget."""


class Interrupted(ExportError):
    """SIGINT or SIGTERM arrived; `signal_number` tells which."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"interrupted by signal {signal_number}")
        self.signal_number = signal_number


class InternalError(ExportError):
    """An exception the code did not anticipate (a bug): reported as one line, exit 1, with the
    same summary, records and annotations as any other outcome; the traceback only with --debug."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"internal error: {type(cause).__name__}: {cause}")
        self.cause = cause

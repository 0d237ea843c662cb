"""The exit codes: a small, documented, stable set (README "Exit codes")."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # everything fetched and written; reconciliation ran or was turned off
    PARTIAL = 1  # some kinds or entities failed, a kind was truncated, or a deletion was skipped
    CONFIG = 2  # usage or configuration error, detected before any request to Port
    AUTH = 3  # Opsgenie or Port refused the credentials (401/403); never retried
    INTERRUPTED = 130  # SIGINT
    TERMINATED = 143  # SIGTERM

"""Selector filters → one Opsgenie search query (docs/ocean-compatibility.md §2.3).

Port's integration emits snake_case field names (`created_at:`), Python booleans (`True`) and raw
comma lists for `teams`, none of which Opsgenie's search understands. We accept both spellings of
every field and emit Opsgenie's camelCase syntax: booleans as `true`/`false`, quoted values where
needed, `teams` as an OR of names, and time fields as `>=` epoch-millisecond bounds (a value may
carry its own operator: `createdAt: "<2024-01-31T00:00:00Z"`). `selector.opsgenieQuery` is a raw
query string ANDed with the rest.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from opsgenie_export.errors import ConfigError

# Port's field name or alias -> Opsgenie search field.
FIELD_NAMES = {
    "createdAt": "createdAt",
    "created_at": "createdAt",
    "lastOccurredAt": "lastOccurredAt",
    "last_occurred_at": "lastOccurredAt",
    "snoozedUntil": "snoozedUntil",
    "snoozed_until": "snoozedUntil",
    "message": "message",
    "status": "status",
    "isSeen": "isSeen",
    "is_seen": "isSeen",
    "acknowledged": "acknowledged",
    "snoozed": "snoozed",
    "priority": "priority",
    "owner": "owner",
    "teams": "teams",
    "acknowledgedBy": "acknowledgedBy",
    "acknowledged_by": "acknowledgedBy",
    "closedBy": "closedBy",
    "closed_by": "closedBy",
}
TIME_FIELDS = {"createdAt", "lastOccurredAt", "snoozedUntil"}
NOT_QUERY_KEYS = {"expand"}  # schedule's apiQueryParams.expand is a request parameter
_OPERATOR = re.compile(r"^\s*(>=|<=|>|<)\s*(.+)$")
_BARE = re.compile(r"^[A-Za-z0-9@._\-]+$")


def build_query(api_query_params: dict[str, Any] | None, opsgenie_query: str | None, where: str) -> str:
    """The Opsgenie `query` for a selector; `where` names the resource for error messages."""
    terms = []
    for key, value in (api_query_params or {}).items():
        if key in NOT_QUERY_KEYS or value is None:
            continue
        field = FIELD_NAMES.get(key)
        if field is None:
            known = ", ".join(sorted({k for k in FIELD_NAMES if not k.count("_")}))
            raise ConfigError(f"{where}: selector.apiQueryParams.{key}: unknown filter; expected one of {known}")
        terms.append(_term(field, value, where))
    if opsgenie_query and opsgenie_query.strip():
        terms.append(f"({opsgenie_query.strip()})" if terms else opsgenie_query.strip())
    return " AND ".join(terms)


def _term(field: str, value: Any, where: str) -> str:
    if field == "teams":
        names = value if isinstance(value, list) else str(value).split(",")
        names = [str(n).strip() for n in names if str(n).strip()]
        parts = [f"teams:{_quote(n)}" for n in names]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    if field in TIME_FIELDS:
        return _time_term(field, value, where)
    if isinstance(value, bool):
        return f"{field}:{'true' if value else 'false'}"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return f"{field}:{value.strip().lower()}"
    return f"{field}:{_quote(str(value))}"


def _time_term(field: str, value: Any, where: str) -> str:
    text = str(value)
    match = _OPERATOR.match(text)
    operator, moment = (match.group(1), match.group(2)) if match else (">=", text)
    return f"{field}{operator}{to_epoch_ms(moment, f'{where}: selector.apiQueryParams.{field}')}"


def to_epoch_ms(moment: Any, where: str) -> int:
    """Epoch milliseconds from a number or an ISO-8601 date-time."""
    if isinstance(moment, int | float) and not isinstance(moment, bool):
        return int(moment)
    text = str(moment).strip()
    if text.isdigit():
        return int(text)
    try:
        return iso_to_ms(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a date-time; use ISO-8601 such as 2024-01-31T12:00:00Z") from None


def _quote(value: str) -> str:
    if _BARE.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def iso_to_ms(text: str) -> int:
    """ISO-8601 → epoch ms; a date-time without a zone is taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)

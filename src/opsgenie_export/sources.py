"""The source seam: where items come from, for everything downstream that must not care.

A `Source` lists a kind as pages of items in the Opsgenie v2 shape of that kind, and answers the
few remote lookups enrichment needs (a team with its members, the current on-calls of every
schedule, an incident's alert ids). Enrichment, the incident link cache, mapping, the Port sink,
reconciliation and reporting only ever see a Source: `opsgenie/` is one, `jsm/` (Jira Service
Management Operations) the other. Normalisation to the Opsgenie shape happens once, inside the
source; nothing downstream branches on which source it serves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

from opsgenie_export.opsgenie.links import LinkCache

SOURCE_NAMES = ("opsgenie", "jsm")


class Pages(Protocol):
    """Pages of one kind. Iterate once; afterwards `truncated` says whether the API stopped short."""

    truncated: bool
    truncation_reason: str

    def __iter__(self) -> Iterator[list[dict[str, Any]]]: ...


class Source(Protocol):
    name: str  # "opsgenie" or "jsm": the key of its request counts in the summary
    title: str  # how messages name it: "Opsgenie", "JSM Operations"

    def listing(self, kind: str, query: str = "", pool: Executor | None = None, parallel: int = 1) -> Pages:
        """Every item of a kind (Opsgenie v2 shape), filtered by an Opsgenie search query."""
        ...

    def team(self, team_id: str) -> dict[str, Any]:
        """The team `{id, name, description, members: [{user: {id, username}, role}], …}`; `{}`
        when it is gone. Raises ApiError when it cannot be read."""
        ...

    def oncalls(self, schedules: Sequence[dict[str, Any]] = ()) -> dict[str, dict[str, Any]]:
        """Schedule id → `{_parent: {id, name, enabled}, onCallRecipients: [...]}` for every
        listed schedule (`schedules`: the schedule listing). Raises ApiError."""
        ...

    def incident_alert_ids(self, incident_id: str) -> list[str]:
        """The ids of the alerts linked to an incident; `[]` when the incident is gone."""
        ...

    def learn_rate_limits(self) -> dict[str, Any]:
        """Pace requests by what the API tells about its limits; the first request of a run, so
        refused credentials (AuthError) stop the run here."""
        ...

    def link_cache(self, cache_dir: Path) -> LinkCache:
        """The incident link cache of this source and account."""
        ...

    def request_counts(self) -> dict[str, Any]:
        """`{name: {domain: requests}, nameThrottled: {domain: 429s}, "retries": n}`."""
        ...

    def close(self) -> None: ...

"""Alert→incident links (`__relatedIncident`) and the cache that spares unchanged incidents a call.

Opsgenie's only exact link is `GET /v1/incidents/{id}/associated-alert-ids`: one call per
incident (docs/opsgenie-api.md §6.2). An account with 10,000 incidents pays 10,000 calls on
every run, though almost all of them are resolved or closed and have not changed.

So each run keeps, per incident, the alert ids it got together with the incident's `updatedAt`
and `status`, in a small file under the cache directory. The next run reuses an entry only when
all of these hold:

- the incident's `updatedAt` and `status` are the ones the entry was fetched with;
- the incident is not open (new alerts are associated with open incidents, so those are always
  asked again);
- the entry is younger than `max_age`, spread per incident between half and all of it, so that
  re-checks fall on many runs instead of all on one.

An alert whose alias names a listed incident (`<incidentId>_…`, how incidents name the alerts
they create) but is missing from that incident's reused entry makes the run ask that incident
again. What stays unverified is whether associating an alert with an incident that is not open
changes the incident's `updatedAt`; if it does not, `max_age` bounds how long such a link can
be missing. `--no-cache` asks every incident on every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_FORMAT = 1
DEFAULT_MAX_AGE = 24 * 3600.0
ALWAYS_ASKED_STATUSES = frozenset({"open"})


@dataclass(slots=True)
class LinkEntry:
    """What one `associated-alert-ids` pass returned for an incident, and when."""

    updated_at: str | None
    status: str | None
    fetched_at: float
    alert_ids: list[str]

    def to_json(self) -> list[Any]:
        return [self.updated_at, self.status, round(self.fetched_at, 3), self.alert_ids]

    @classmethod
    def from_json(cls, raw: Any) -> LinkEntry:
        updated_at, status, fetched_at, alert_ids = raw
        if not isinstance(alert_ids, list) or not all(isinstance(a, str) for a in alert_ids):
            raise ValueError("alert ids must be a list of strings")
        return cls(updated_at, status, float(fetched_at), alert_ids)


def reusable(entry: LinkEntry | None, incident: dict[str, Any], now: float, max_age: float) -> bool:
    """Whether a cached entry still answers for this incident (the module docstring's rules)."""
    if entry is None or incident.get("status") in ALWAYS_ASKED_STATUSES:
        return False
    if entry.updated_at != incident.get("updatedAt") or entry.status != incident.get("status"):
        return False
    age = now - entry.fetched_at  # negative when the clock went back: not trusted either
    return 0 <= age < max_age * (0.5 + 0.5 * _spread(str(incident.get("id"))))


def _spread(incident_id: str) -> float:
    """A stable number in [0, 1) per incident."""
    return (zlib.crc32(incident_id.encode()) & 0xFFFF) / 0x10000


class LinkCache:
    """The links file of one Opsgenie account. Never fails a run: an unreadable or unwritable file
    is reported in `problem` and the run asks every incident. Without a path the entries live in
    memory, for a long-running `serve` that builds its lookups anew every few seconds."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.problem = ""
        self._memory: dict[str, LinkEntry] = {}

    @classmethod
    def for_account(cls, cache_dir: Path, api_url: str, token: str) -> LinkCache:
        """One file per account, named by a digest of URL and key (neither appears in the name)."""
        digest = hashlib.sha256(f"{api_url}\n{token}".encode()).hexdigest()[:16]
        return cls(cache_dir / f"incident-links-{digest}.json")

    def load(self) -> dict[str, LinkEntry]:
        if self.path is None:
            return dict(self._memory)
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self.problem = f"ignored unreadable link cache {self.path}: {exc}"
            return {}
        known = isinstance(document, dict) and document.get("format") == CACHE_FORMAT
        incidents = document.get("incidents") if known else None
        if not isinstance(incidents, dict):
            self.problem = f"ignored link cache {self.path}: unknown format"
            return {}
        try:
            return {key: LinkEntry.from_json(raw) for key, raw in incidents.items()}
        except (TypeError, ValueError) as exc:
            self.problem = f"ignored damaged link cache {self.path}: {exc}"
            return {}

    def save(self, entries: dict[str, LinkEntry]) -> None:
        """Replace the file atomically (a run killed mid-write leaves the previous one)."""
        if self.path is None:
            self._memory = dict(entries)
            return
        document = {"format": CACHE_FORMAT, "incidents": {key: e.to_json() for key, e in entries.items()}}
        temp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".incident-links-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, separators=(",", ":"))
            os.replace(temp, self.path)
        except OSError as exc:
            self.problem = f"could not write link cache {self.path}: {exc}"
            if temp:
                with contextlib.suppress(OSError):
                    os.unlink(temp)


@dataclass
class LinkStats:
    asked: int = 0  # incidents whose associated alerts were fetched in this run
    reused: int = 0  # incidents answered from the cache
    rechecked: int = 0  # reused entries asked again because an alert's alias named the incident

    def to_dict(self) -> dict[str, int]:
        return {"asked": self.asked, "reused": self.reused, "rechecked": self.rechecked}


@dataclass
class IncidentLinks:
    """alert id → incident, from the associated alerts of every listed incident.

    Holds positions in the incident listing, not the incidents: the listing is kept compact and
    each lookup decodes its own copy."""

    fetch_alert_ids: Callable[[str], list[str]]  # one incident's associated alert ids (may raise)
    pool: Executor
    in_flight: int = 8  # link calls queued in the shared pool at once, so other work interleaves
    cache: LinkCache | None = None
    max_age: float = DEFAULT_MAX_AGE
    clock: Callable[[], float] = time.time
    stats: LinkStats = field(default_factory=LinkStats)
    _listing: Sequence[dict[str, Any]] = ()
    _positions: dict[str, int] = field(default_factory=dict)  # incident id → position in the listing
    _by_alert: dict[str, int] = field(default_factory=dict)  # alert id → incident position
    _entries: dict[str, LinkEntry] = field(default_factory=dict)
    _from_cache: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _built: bool = False

    def build(self, incidents: Sequence[dict[str, Any]]) -> None:
        """Ask every incident the cache cannot answer for, `in_flight` at a time (thousands of
        calls queued at once would hold every other task of the pool behind them, and a future
        each costs memory); raises the first failure."""
        previous = self.cache.load() if self.cache else {}
        now = self.clock()
        self._listing = incidents
        pending: deque[tuple[str, LinkEntry, Future[list[str]]]] = deque()
        for position, incident in enumerate(incidents):
            incident_id = incident["id"]
            self._positions[incident_id] = position
            entry = previous.get(incident_id)
            if reusable(entry, incident, now, self.max_age):
                self._entries[incident_id] = entry  # type: ignore[assignment]
                self._from_cache.add(incident_id)
                self.stats.reused += 1
                continue
            if len(pending) >= self.in_flight:
                self._collect(*pending.popleft())
            fresh = LinkEntry(incident.get("updatedAt"), incident.get("status"), now, [])
            pending.append((incident_id, fresh, self.pool.submit(self.fetch_alert_ids, incident_id)))
        while pending:
            self._collect(*pending.popleft())
        for incident_id, position in self._positions.items():  # listing order: the first incident wins
            for alert_id in self._entries[incident_id].alert_ids:
                self._by_alert.setdefault(alert_id, position)
        self._built = True

    def _collect(self, incident_id: str, entry: LinkEntry, future: Future[list[str]]) -> None:
        entry.alert_ids = future.result()
        self._entries[incident_id] = entry
        self.stats.asked += 1

    def incident_for(self, alert: dict[str, Any]) -> dict[str, Any] | None:
        """The alert's incident; a reused entry that misses an alert named after it is asked again."""
        alert_id = alert.get("id")
        position = self._by_alert.get(alert_id)  # type: ignore[arg-type]
        if position is None:
            named = _incident_named_by(alert.get("alias"))
            if named in self._from_cache:
                self._recheck(named)  # type: ignore[arg-type]
                position = self._by_alert.get(alert_id)  # type: ignore[arg-type]
        return None if position is None else self._listing[position]

    def _recheck(self, incident_id: str) -> None:
        with self._lock:
            if incident_id not in self._from_cache:
                return  # another thread already asked it
            position = self._positions[incident_id]
            incident = self._listing[position]
            alert_ids = self.fetch_alert_ids(incident_id)
            self._entries[incident_id] = LinkEntry(
                incident.get("updatedAt"), incident.get("status"), self.clock(), alert_ids
            )
            self._from_cache.discard(incident_id)
            self.stats.rechecked += 1
            for alert_id in alert_ids:
                self._by_alert.setdefault(alert_id, position)

    def save(self) -> None:
        """Write the entries of this run (only incidents listed in it) for the next one; nothing
        when the links were never completely built (a failed or interrupted run keeps the old file)."""
        if self.cache is not None and self._built:
            self.cache.save(self._entries)


def _incident_named_by(alias: Any) -> str | None:
    if isinstance(alias, str) and "_" in alias:
        return alias.split("_", 1)[0]
    return None

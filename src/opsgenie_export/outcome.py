"""The run's accounting as values, and the one function that turns it into an exit code.

Every fetched item ends in exactly one bucket of its resource: upserted, unchanged, filtered
(by the selector), failed (with a reason), skipped (its identifier or blueprint maps to null:
"skipped by the mapping") or merged (its entity was merged into another item's, same identifier).
Skipped and merged items are warnings, not failures: exit 0, unless `--strict`.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from opsgenie_export.errors import AuthError, ConfigError, ExportError, Interrupted
from opsgenie_export.exit_codes import ExitCode

MAX_SAMPLES = 20  # failure messages kept per resource/blueprint; counts are always complete

# Every bucket a fetched item can end in: `fetched` is their sum, per resource. A new bucket is one
# more name here; `exit_code_for` checks the sum on every run.
RESOURCE_BUCKETS = ("filtered", "upserted", "unchanged", "failed", "skipped", "merged")
# Every outcome of an entity handed to Port (or found unchanged there): a blueprint's `entities`
# is their sum. Deletions are counted apart (deleted, delete_failed).
BLUEPRINT_BUCKETS = ("upserted", "unchanged", "failed")
WARNING_SAMPLES = 5  # item ids / identifiers named in one warning line


class _Tally:
    """Thread-safe counters with a capped sample of error messages."""

    errors: list[str]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, bucket: str, count: int = 1, error: str | None = None) -> None:
        with self._lock:
            setattr(self, bucket, getattr(self, bucket) + count)
            if error and len(self.errors) < MAX_SAMPLES:
                self.errors.append(error)


@dataclass
class ResourceStats(_Tally):
    index: int
    kind: str
    blueprints: list[str] = field(default_factory=list)
    status: str = "pending"  # ok | failed | truncated
    reason: str = ""
    fetched: int = 0
    filtered: int = 0
    upserted: int = 0
    unchanged: int = 0
    failed: int = 0
    entities: int = 0  # entities produced by mapping (itemsToParse may make several per item)
    unprocessed: int = 0  # of `failed`: items that failed before writing (mapping, enrichment, identifier)
    skipped: int = 0  # items whose identifier or blueprint mapped to null (warning)
    merged: int = 0  # items whose entity was merged into another item's (warning)
    total: int | None = None  # items the listing holds, when known before mapping (progress)
    merged_items: int = 0  # items that shared an identifier with another item of this resource
    merged_entities: int = 0  # the entities those items were merged into
    merged_rows: int = 0  # itemsToParse rows of one item that shared an identifier (warning)
    merged_row_entities: int = 0  # the entities those rows were merged into
    errors: list[str] = field(default_factory=list)
    skipped_samples: list[str] = field(default_factory=list)  # "item id (field)"
    merged_samples: list[str] = field(default_factory=list)  # merged identifiers
    merged_row_samples: list[str] = field(default_factory=list)  # identifiers of merged rows

    @property
    def label(self) -> str:
        return f"resources[{self.index}] {self.kind}"

    @property
    def settled(self) -> int:
        return sum(getattr(self, bucket) for bucket in RESOURCE_BUCKETS)

    def sample(self, bucket: str, text: str) -> None:
        """Remember one item id or identifier for the warning of `bucket` (skipped or merged)."""
        samples: list[str] = getattr(self, f"{bucket}_samples")
        with self._lock:
            if len(samples) < WARNING_SAMPLES and text not in samples:
                samples.append(text)

    @property
    def warnings(self) -> list[str]:
        """What the mapping itself caused: not failures, but worth a look (exit 1 with --strict)."""
        found = []
        if self.skipped:
            found.append(
                f"{_items(self.skipped)} skipped by the mapping (identifier or blueprint is null, so Port's "
                f"integration would drop them too): {_shown(self.skipped_samples, self.skipped)}"
            )
        if self.merged_items:
            entities = "entity" if self.merged_entities == 1 else "entities"
            found.append(
                f"{_items(self.merged_items)} merged into {self.merged_entities} {entities} (same identifier, "
                f"enableMergeEntity; later items in listing order win, as in Port): "
                f"{_shown(self.merged_samples, self.merged_entities)}"
            )
        if self.merged_rows:
            entities = "entity" if self.merged_row_entities == 1 else "entities"
            found.append(
                f"{self.merged_rows} itemsToParse rows merged into {self.merged_row_entities} {entities} (same "
                f"identifier within one item; later rows win, as in Port): "
                f"{_shown(self.merged_row_samples, self.merged_row_entities)}"
            )
        return found


@dataclass
class BlueprintStats(_Tally):
    blueprint: str
    upserted: int = 0
    unchanged: int = 0
    failed: int = 0  # writes
    entities: int = 0  # entities handed to the writer (or found unchanged): the sum of BLUEPRINT_BUCKETS
    existing: int = 0
    stale: int = 0
    deleted: int = 0
    delete_failed: int = 0
    deletion: str = "not run"  # done | skipped: <reason> | off | dry-run | not run
    errors: list[str] = field(default_factory=list)

    @property
    def deletion_skipped(self) -> bool:
        return self.deletion.startswith("skipped")


@dataclass
class RunOutcome:
    resources: list[ResourceStats] = field(default_factory=list)
    blueprints: dict[str, BlueprintStats] = field(default_factory=dict)
    fatal: ExportError | None = None
    no_delete: bool = False
    dry_run: bool = False
    seconds: float = 0.0
    requests: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    links: dict[str, Any] = field(default_factory=dict)  # alert→incident link calls and cache use
    blueprints_to_create: list[str] = field(default_factory=list)  # --dry-run --initialize-port-resources
    strict: bool = False  # --strict: the mapping's warnings (skipped or merged items) exit 1
    notes: list[str] = field(default_factory=list)  # run-level warnings (e.g. an unusable link cache)
    source: str = "Opsgenie"  # the source's title: Opsgenie or JSM Operations

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def blueprint(self, name: str) -> BlueprintStats:
        """The stats of a blueprint, created once even when several threads ask at once."""
        found = self.blueprints.get(name)
        if found is None:
            with self._lock:
                found = self.blueprints.setdefault(name, BlueprintStats(name))
        return found

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(self)

    @property
    def warnings(self) -> list[str]:
        """Every warning of the run: per resource (labelled), then run-level notes."""
        found = [f"{stats.label}: {warning}" for stats in self.resources for warning in stats.warnings]
        return found + list(self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exitCode": int(self.exit_code),
            "result": result_word(self),
            "fatal": str(self.fatal) if self.fatal else None,
            "seconds": round(self.seconds, 3),
            "dryRun": self.dry_run,
            "strict": self.strict,
            "warnings": self.warnings,
            "source": self.source,
            "resources": [
                _public(asdict(r))
                | {"label": r.label, "warnings": r.warnings, "errorsNotListed": max(0, r.failed - len(r.errors))}
                for r in self.resources
            ],
            "blueprints": [_public(asdict(b)) for b in self.blueprints.values()],
            "requests": self.requests,
            **({"incidentLinks": self.links} if self.links else {}),
            **({"plan": self.plan} if self.plan else {}),
            **({"blueprintsToCreate": self.blueprints_to_create} if self.dry_run else {}),
            **({"unaccounted": unaccounted} if (unaccounted := unaccounted_items(self)) else {}),
        }


def _public(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.startswith("_")}


def unaccounted_items(outcome: RunOutcome) -> list[str]:
    """Where the accounting does not add up — a bug, never a normal outcome: every fetched item
    must sit in exactly one of RESOURCE_BUCKETS, every entity handed to Port in one of
    BLUEPRINT_BUCKETS. The exit-code function checks it on every run as a safety net."""
    problems = []
    for stats in outcome.resources:
        if stats.settled != stats.fetched:
            held = ", ".join(f"{bucket} {getattr(stats, bucket)}" for bucket in RESOURCE_BUCKETS)
            problems.append(
                f"{stats.label}: fetched {stats.fetched} items but the buckets hold {stats.settled} ({held}); "
                f"{stats.fetched - stats.settled} unaccounted"
            )
    for blueprint in outcome.blueprints.values():
        settled = sum(getattr(blueprint, bucket) for bucket in BLUEPRINT_BUCKETS)
        if settled != blueprint.entities:
            held = ", ".join(f"{bucket} {getattr(blueprint, bucket)}" for bucket in BLUEPRINT_BUCKETS)
            problems.append(
                f"{blueprint.blueprint}: {blueprint.entities} entities handed to Port but the buckets hold "
                f"{settled} ({held}); {blueprint.entities - settled} unaccounted"
            )
    return problems


def exit_code_for(outcome: RunOutcome) -> ExitCode:
    """The single place that decides the exit code (README "Exit codes")."""
    fatal = outcome.fatal
    if isinstance(fatal, Interrupted):
        return ExitCode.TERMINATED if fatal.signal_number == 15 else ExitCode.INTERRUPTED
    if isinstance(fatal, ConfigError):
        return ExitCode.CONFIG
    if isinstance(fatal, AuthError):
        return ExitCode.AUTH
    if fatal is not None or unaccounted_items(outcome):
        return ExitCode.PARTIAL
    if any(r.status != "ok" or r.failed for r in outcome.resources):
        return ExitCode.PARTIAL
    if any(b.failed or b.delete_failed for b in outcome.blueprints.values()):
        return ExitCode.PARTIAL
    if not outcome.no_delete and any(b.deletion_skipped for b in outcome.blueprints.values()):
        return ExitCode.PARTIAL
    if outcome.strict and any(r.warnings for r in outcome.resources):  # not run notes: a cache problem never fails
        return ExitCode.PARTIAL
    return ExitCode.OK


def result_word(outcome: RunOutcome) -> str:
    code = outcome.exit_code
    return {ExitCode.OK: "success", ExitCode.PARTIAL: "partial"}.get(code, "failed")


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _shown(samples: list[str], total: int) -> str:
    more = total - len(samples)
    return ", ".join(samples) + (f" and {more} more" if more > 0 else "")

"""Stale-entity deletion with guards, per blueprint (docs/lessons.md §1.1).

For each blueprint the mapping writes: stale = existing in Port, not produced by this run. Deletion
is skipped, with the reason, when anything that feeds the blueprint was incomplete (a failed or
truncated kind, items that failed mapping or enrichment, a failed lookup it depends on), or when
the stale share of ALL existing entities passes `entityDeletionThreshold`. A stale entity that a
kept entity still points at is kept while `createMissingRelatedEntities` is on (Port would
re-create it as an empty stub). Blueprints are reconciled independently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opsgenie_export.errors import ApiError
from opsgenie_export.outcome import BlueprintStats
from opsgenie_export.port.client import MAX_DELETE_BATCH, PortClient
from opsgenie_export.transport import StopSignal


@dataclass
class DeletionPlan:
    blueprint: str
    existing: int
    stale: list[str] = field(default_factory=list)
    kept_as_targets: int = 0
    skip_reason: str | None = None


def plan_deletion(
    blueprint: str,
    existing: int,
    unseen: Iterable[str],
    referenced: set[str],
    *,
    blockers: list[str],
    threshold: float,
    keep_targets: bool,
    threshold_hint: str = "",
) -> DeletionPlan:
    plan = DeletionPlan(blueprint, existing)
    stale = list(unseen)
    if keep_targets:
        kept = [identifier for identifier in stale if identifier in referenced]
        plan.kept_as_targets = len(kept)
        stale = [identifier for identifier in stale if identifier not in referenced]
    plan.stale = sorted(stale)
    if blockers:
        plan.skip_reason = "; ".join(blockers)
    elif plan.existing and len(stale) / plan.existing > threshold:
        plan.skip_reason = (
            f"{len(stale)} of {plan.existing} entities ({len(stale) / plan.existing:.0%}) would be deleted, "
            f"above entityDeletionThreshold {threshold:g}{threshold_hint}"
        )
    return plan


def execute_deletion(
    client: PortClient, plan: DeletionPlan, stats: BlueprintStats, *, delete_dependents: bool, stop: StopSignal
) -> None:
    """Delete the plan's stale entities in batches of 100; a failed batch is retried one by one."""
    for start in range(0, len(plan.stale), MAX_DELETE_BATCH):
        stop.check()
        batch = plan.stale[start : start + MAX_DELETE_BATCH]
        try:
            confirmed = client.bulk_delete(plan.blueprint, batch, delete_dependents=delete_dependents)
        except ApiError as exc:
            if exc.status is None:
                raise
            _delete_one_by_one(client, plan.blueprint, batch, stats, delete_dependents, stop)
            continue
        _count_confirmed(plan.blueprint, batch, confirmed, stats)


def _count_confirmed(blueprint: str, sent: list[str], confirmed: list[str], stats: BlueprintStats) -> None:
    """Count what Port confirmed it deleted; a sent identifier it did not confirm is a failure."""
    done = set(confirmed)
    stats.add("deleted", sum(1 for identifier in sent if identifier in done))
    for identifier in sent:
        if identifier not in done:
            stats.add("delete_failed", error=f"{blueprint} {identifier}: delete not confirmed by Port")


def _delete_one_by_one(
    client: PortClient,
    blueprint: str,
    identifiers: list[str],
    stats: BlueprintStats,
    delete_dependents: bool,
    stop: StopSignal,
) -> None:
    for identifier in identifiers:
        stop.check()
        try:
            confirmed = client.bulk_delete(blueprint, [identifier], delete_dependents=delete_dependents)
        except ApiError as exc:
            if exc.status is None:
                raise
            if exc.status == 404:  # already gone (a retried delete whose first answer was lost)
                stats.add("deleted")
                continue
            stats.add("delete_failed", error=f"{blueprint} {identifier}: delete failed: {exc}")
            continue
        _count_confirmed(blueprint, [identifier], confirmed, stats)

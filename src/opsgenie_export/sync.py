"""One run: for each resource of the mapping, stream pages → enrich → map → write, then report.

Order of failure detection: the mapping and settings were validated before this module runs
(exit 2 before any request); the Port token comes next (bad credentials stop the run before any
Opsgenie work); then resources run in file order, each failing on its own without stopping the
others. Every outcome lands in a RunOutcome; the CLI turns it into the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsgenie_export.errors import ApiError, AuthError, ExportError, Interrupted
from opsgenie_export.mapping import CompiledResource, MappingConfig, ResourceConfig
from opsgenie_export.opsgenie.client import OpsgenieClient
from opsgenie_export.opsgenie.enrichment import Lookups, enrich_page, keys_for
from opsgenie_export.opsgenie.query import build_query
from opsgenie_export.opsgenie.source import PAGE_SIZE, listing
from opsgenie_export.outcome import ResourceStats, RunOutcome
from opsgenie_export.port.blueprints import initialize_blueprints
from opsgenie_export.port.client import PortClient
from opsgenie_export.port.identifiers import identifier_problem
from opsgenie_export.port.sink import EntitySink, ItemTicket
from opsgenie_export.settings import Settings
from opsgenie_export.transport import StopSignal, WaitBudget

# Kinds small enough to list once and share with enrichments; alerts and users are streamed.
SHARED_KINDS = frozenset({"incident", "service", "team", "schedule", "schedule-oncall", "escalation"})
QUERY_KINDS = frozenset({"alert", "incident"})


class Events:
    """Progress callbacks; the report layer subclasses this. Default: silent."""

    def resource_started(self, stats: ResourceStats) -> None: ...

    def page_done(self, stats: ResourceStats) -> None: ...

    def resource_done(self, stats: ResourceStats) -> None: ...

    def message(self, level: str, event: str, text: str, **fields: Any) -> None: ...


@dataclass
class RunOptions:
    workers: int = 4
    max_wait: float = 600.0
    timeout: float = 30.0
    max_retries: int = 5
    blueprints: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_sync(
    settings: Settings,
    config: MappingConfig,
    compiled: list[CompiledResource],
    options: RunOptions,
    *,
    events: Events | None = None,
    stop: StopSignal | None = None,
) -> RunOutcome:
    events = events or Events()
    started = time.monotonic()
    outcome = RunOutcome()
    budget = WaitBudget(options.max_wait, stop or StopSignal())
    ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None
    port = PortClient(
        settings.port_url,
        settings.port_client_id,
        settings.port_client_secret,
        budget=budget,
        timeout=options.timeout,
        max_retries=options.max_retries,
        ca_bundle=ca_bundle,
    )
    opsgenie = OpsgenieClient(
        settings.opsgenie_url,
        settings.opsgenie_token,
        budget=budget,
        timeout=options.timeout,
        max_retries=options.max_retries,
        ca_bundle=ca_bundle,
    )
    pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="opsgenie")
    run = _Run(config, compiled, outcome, events, port, Lookups(opsgenie, pool), budget.stop)
    try:
        port.authenticate()
        if settings.initialize_port_resources:
            created = initialize_blueprints(port, options.blueprints)
            events.message("info", "blueprints", f"created blueprints: {', '.join(created) or 'none missing'}")
        run.sink = EntitySink(
            port,
            outcome.blueprint,
            merge=config.enable_merge_entity,
            create_missing=config.create_missing_related_entities,
            workers=options.workers,
        )
        run.all_resources()
        run.sink.close()
    except ExportError as exc:
        outcome.fatal = exc
        if run.sink:
            run.sink.abort()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        outcome.seconds = time.monotonic() - started
        outcome.requests = _request_counts(opsgenie, port, budget)
        port.close()
        opsgenie.close()
    return outcome


@dataclass
class _Run:
    config: MappingConfig
    compiled: list[CompiledResource]
    outcome: RunOutcome
    events: Events
    port: PortClient
    lookups: Lookups
    stop: StopSignal
    sink: EntitySink | None = None
    produced: dict[str, set[str]] = field(default_factory=dict)  # blueprint → identifiers
    produced_by: dict[tuple[int, str], set[str]] = field(default_factory=dict)  # per resource

    def all_resources(self) -> None:
        pairs = list(zip(self.config.resources, self.compiled, strict=True))
        self.outcome.resources = [ResourceStats(r.index, r.kind, sorted(c.blueprints_static())) for r, c in pairs]
        for (resource, compiled), stats in zip(pairs, self.outcome.resources, strict=True):
            self.stop.check()
            self.events.resource_started(stats)
            try:
                self.one_resource(resource, compiled, stats)
            except (AuthError, Interrupted):
                stats.status, stats.reason = "failed", "run stopped"
                raise
            except ApiError as exc:
                stats.status, stats.reason = "failed", f"fetch failed: {exc}"
                self.sink.raise_if_fatal()  # type: ignore[union-attr]
            self.events.resource_done(stats)

    def one_resource(self, resource: ResourceConfig, compiled: CompiledResource, stats: ResourceStats) -> None:
        where = f"resources[{resource.index}] (kind {resource.kind})"
        query = ""
        if resource.kind in QUERY_KINDS:
            query = build_query(resource.selector.api_query_params, resource.selector.opsgenie_query, where)
        keys = keys_for(resource.kind, compiled.referenced_keys(), resource.selector.include_members)
        pages, truncation = self._pages(resource.kind, query)
        for page in pages:
            self.stop.check()
            stats.add("fetched", len(page))
            problems = enrich_page(self.lookups, keys, page) if keys else [None] * len(page)
            for item, problem in zip(page, problems, strict=True):
                if problem:
                    stats.add("failed", error=f"{resource.kind} {_item_id(item)}: {problem}")
                    continue
                self.map_and_write(compiled, item, stats)
            self.events.page_done(stats)
        reason = truncation()
        stats.status, stats.reason = ("truncated", reason) if reason else ("ok", "")

    def _pages(self, kind: str, query: str) -> tuple[Iterable[list[dict[str, Any]]], Any]:
        """Pages of a kind, and a callable telling (after iteration) why it is incomplete, if it is."""
        if kind in SHARED_KINDS:
            shared = self.lookups.shared_listing(kind, query)
            pages = [shared.items[i : i + PAGE_SIZE] for i in range(0, len(shared.items), PAGE_SIZE)]
            return pages, lambda: shared.reason if shared.truncated else ""
        stream = listing(self.lookups.client, kind, query)
        return stream, lambda: stream.truncation_reason if stream.truncated else ""

    def map_and_write(self, compiled: CompiledResource, item: dict[str, Any], stats: ResourceStats) -> None:
        result = compiled.map_item(item)
        if result.errors:
            stats.add("failed", error=str(result.errors[0]))
            return
        if result.filtered or not result.entities:
            stats.add("filtered")
            return
        stats.add("entities", len(result.entities))
        ticket = ItemTicket(stats, len(result.entities))
        for entity in result.entities:
            problem = identifier_problem(entity.identifier)
            if problem:
                ticket.settle(f"{stats.kind} {_item_id(item)}: {entity.blueprint}: {problem}")
                self.outcome.blueprint(entity.blueprint).add("failed")
                continue
            if isinstance(entity.identifier, str):
                seen = self.produced_by.setdefault((stats.index, entity.blueprint), set())
                if entity.identifier in seen:
                    ticket.settle(
                        f"{stats.kind} {_item_id(item)}: {entity.blueprint} identifier {entity.identifier!r} "
                        "was already produced by another item of this resource (identifier collision)"
                    )
                    self.outcome.blueprint(entity.blueprint).add("failed")
                    continue
                seen.add(entity.identifier)
                self.produced.setdefault(entity.blueprint, set()).add(entity.identifier)
            self.sink.add(entity.blueprint, entity.to_port(), ticket)  # type: ignore[union-attr]


def _item_id(item: dict[str, Any]) -> str:
    return str(item.get("id") or item.get("tinyId") or item.get("name") or "?")


def _request_counts(opsgenie: OpsgenieClient, port: PortClient, budget: WaitBudget) -> dict[str, Any]:
    return {
        "opsgenie": dict(opsgenie.stats.requests),
        "opsgenieThrottled": dict(opsgenie.stats.throttled),
        "port": dict(port.stats.requests),
        "portThrottled": port.stats.throttled,
        "retries": opsgenie.stats.retries + port.stats.retries,
        "waitSeconds": round(budget.spent, 3),
    }

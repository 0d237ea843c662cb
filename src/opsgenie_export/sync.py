"""One run: read Port's state (in the background) while each resource streams pages → enrich →
map → write only what changed → reconcile stale entities → report.

Several items of one resource that map to one identifier are merged, with enableMergeEntity,
as Port merges successive upserts (later items in listing order win, properties and relations key
by key) and written once; kinds listed whole (SHARED_KINDS) hold their entities until the resource
ends, streamed kinds (alerts, users) hold only the repeats and write them once more after every
other write, so Port ends up holding the same. Items whose identifier or blueprint maps to null
are "skipped by the mapping". Both are warnings, not failures.

Order of failure detection: the mapping and settings were validated before this module runs
(exit 2 before any request); the Port token comes next (bad credentials stop the run before any
Opsgenie work); then resources run in file order, each failing on its own without stopping the
others. Every outcome lands in a RunOutcome; the CLI turns it into the exit code.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsgenie_export.errors import (
    ApiError,
    AuthError,
    ConfigError,
    ExportError,
    InternalError,
    Interrupted,
    PlanRestrictedError,
    PortStateError,
    WaitBudgetExceeded,
)
from opsgenie_export.jsm.client import JsmClient
from opsgenie_export.jsm.query import incident_filter
from opsgenie_export.jsm.source import JsmSource
from opsgenie_export.mapped_items import FILTERED, MappedItems
from opsgenie_export.mapping import CompiledResource, MappingConfig, ResourceConfig, check_mapping
from opsgenie_export.opsgenie.client import OpsgenieClient
from opsgenie_export.opsgenie.enrichment import KEY_SOURCES, Lookups, enrich_page, keys_for
from opsgenie_export.opsgenie.links import LinkCache
from opsgenie_export.opsgenie.query import build_query
from opsgenie_export.opsgenie.source import PAGE_SIZE, OpsgenieSource
from opsgenie_export.outcome import ResourceStats, RunOutcome
from opsgenie_export.port.blueprints import dependency_order, initialize_blueprints, relation_order
from opsgenie_export.port.client import PortClient
from opsgenie_export.port.identifiers import SeenIdentifiers, identifier_problem
from opsgenie_export.port.reconcile import execute_deletion, plan_deletion
from opsgenie_export.port.sink import EntitySink, ItemTicket
from opsgenie_export.port.state import BlueprintState, FieldSet
from opsgenie_export.settings import Settings
from opsgenie_export.sources import Source
from opsgenie_export.transport import StopSignal, WaitBudget, prefetched

PORT_STATE_READERS = 3  # blueprints whose entities are searched at once
# Kinds small enough to list once and share with enrichments; alerts and users are streamed.
SHARED_KINDS = frozenset({"incident", "service", "team", "schedule", "schedule-oncall", "escalation"})
QUERY_KINDS = frozenset({"alert", "incident"})
PLAN_LIMIT = 10_000  # identifiers listed per blueprint and verdict in a dry-run plan
MIGRATION_HINT = (
    ". If the identifiers changed when the site moved from Opsgenie to JSM Operations, see the README section "
    '"Moving from Opsgenie to JSM Operations" (#moving-from-opsgenie-to-jsm-operations) for the one-time step'
)


class Events:
    """Progress callbacks; the report layer subclasses this. Default: silent."""

    def resource_started(self, stats: ResourceStats) -> None: ...

    def page_done(self, stats: ResourceStats) -> None: ...

    def resource_done(self, stats: ResourceStats) -> None: ...

    def message(self, level: str, event: str, text: str, **fields: Any) -> None: ...


@dataclass
class RunOptions:
    workers: int = 16  # the most requests in flight per API; the adaptive limit works below it
    max_wait: float = 600.0
    timeout: float = 30.0
    max_retries: int = 5
    dry_run: bool = False
    no_delete: bool = False
    strict: bool = False  # warnings (skipped or merged items) exit 1
    blueprints: dict[str, dict[str, Any]] = field(default_factory=dict)  # local definitions


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
    outcome = RunOutcome(no_delete=options.no_delete, dry_run=options.dry_run, strict=options.strict)
    budget = WaitBudget(options.max_wait, stop or StopSignal(), ends_run=True)
    port, source = _clients(settings, options, budget)
    outcome.source = source.title
    pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="source")
    port_reader = ThreadPoolExecutor(max_workers=PORT_STATE_READERS, thread_name_prefix="port-state")
    link_cache = source.link_cache(settings.cache_dir) if settings.cache_dir else None
    lookups = Lookups(source, pool, parallel=options.workers, link_cache=link_cache)
    run = _Run(config, compiled, options, outcome, events, port, lookups, budget.stop)
    run.mapped = _mapped_items(settings, source, config)
    try:
        port.authenticate()
        in_port = port.list_blueprints()  # one request serves the initialisation and the preflight
        if settings.initialize_port_resources and not options.dry_run:
            created = initialize_blueprints(port, options.blueprints, in_port)
            in_port = {**{name: options.blueprints[name] for name in created}, **in_port}
            events.message("info", "blueprints", f"created blueprints: {', '.join(created) or 'none missing'}")
        run.prepare_states()
        run.preflight(settings, in_port)  # exit 2 on a blueprint or field Port lacks, before any source request
        run.prepare_chosen_states()  # blueprints chosen by JQ: reconciled and skip-unchanged like literal ones
        learned = source.learn_rate_limits()
        if learned:
            events.message("debug", "rate_limits", f"pacing {source.title} domains {', '.join(sorted(learned))}")
        if run.needs_key("__relatedIncident"):  # thousands of calls: start them while Port is read
            threading.Thread(target=lookups.prefetch_incident_links, name="incident-links", daemon=True).start()
        run.port_state = {bp: port_reader.submit(run.load_blueprint_state, bp) for bp in run.states}
        run.sink = EntitySink(
            port,
            outcome.blueprint,
            merge=config.enable_merge_entity,
            create_missing=config.create_missing_related_entities,
            workers=options.workers,
        )
        run.all_resources()
        run.port_state_ready()  # relation targets and existing entities, for the retries and reconcile
        run.sink.close(relation_order(run.relation_targets))
        run.write_repeats()
        run.reconcile()
    except Exception as exc:  # every failure ends in the outcome, so every exit path reports
        outcome.fatal = exc if isinstance(exc, ExportError) else InternalError(exc)
        run.abandon_held(outcome.fatal)
        _after_fatal(run, outcome.fatal)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        port_reader.shutdown(wait=False, cancel_futures=True)
        _finish_links(lookups, link_cache, outcome, events)
        _finish_mapped(run.mapped, outcome, events)
        outcome.seconds = time.monotonic() - started
        outcome.requests = _request_counts(source, port, budget)
        port.close()
        source.close()
    return outcome


def _after_fatal(run: _Run, fatal: ExportError) -> None:
    """A run stopped mid-way: entities already mapped are still written while Port answers (a
    failure on the Opsgenie side does not throw away good work), nothing is deleted, and every
    fetched item that never reached a bucket counts as failed with the reason."""
    sink = run.sink
    if sink is not None:
        # Port refusing a write or unreachable, a signal, an unreadable state or a spent budget:
        # nothing more is sent. Anything else (Opsgenie refusing its key mid-run, a bug): flush.
        writable = not sink.port_failed and not isinstance(fatal, Interrupted | PortStateError | WaitBudgetExceeded)
        try:
            if writable:
                sink.close(relation_order(run.relation_targets))
            else:
                sink.abort(f"the run stopped: {fatal}")
        except Exception as exc:  # the sink's own failure is reported once, not raised over `fatal`
            sink.abort(f"the run stopped: {fatal}; then {exc}")
    for stats in run.outcome.resources:
        missing = stats.fetched - stats.settled
        if missing > 0:
            stats.add("failed", missing, error=f"{missing} fetched items not processed: the run stopped ({fatal})")
            stats.add("unprocessed", missing)
    for blueprint in run.outcome.blueprints.values():
        if blueprint.deletion == "not run":
            blueprint.deletion = "not run: the run stopped before reconciling"


def _runs_jq(compiled: CompiledResource) -> bool:
    """Whether mapping an item runs jq (anything but plain paths and constants): only then is
    skipping it worth a digest of the item."""
    return any(expression.needs_jq for expression in compiled.expressions())


def _mapped_items(settings: Settings, source: Source, config: MappingConfig) -> MappedItems | None:
    if settings.cache_dir is None:
        return None
    links = source.link_cache(settings.cache_dir)  # named by source and account: so is this file
    account = links.path.stem.rsplit("-", 1)[-1] if links.path else source.name
    mapped = MappedItems.for_account(settings.cache_dir, f"{source.name}-{account}", repr(config.resources))
    mapped.load()
    return mapped


def _finish_mapped(mapped: MappedItems | None, outcome: RunOutcome, events: Events) -> None:
    """Keep what every item mapped to for the next run (only a run that was not stopped)."""
    if mapped is None:
        return
    mapped.finish(complete=outcome.fatal is None)
    if mapped.problem:
        outcome.notes.append(mapped.problem)
        events.message("warning", "mapped_items_cache", mapped.problem)
    if mapped.reused:
        events.message("info", "mapped_items", f"{mapped.reused} unchanged items not mapped again")


def _finish_links(lookups: Lookups, cache: LinkCache | None, outcome: RunOutcome, events: Events) -> None:
    """Keep this run's alert→incident links for the next run, and say what they cost."""
    links = lookups.links
    if not (links.stats.asked or links.stats.reused):
        return
    links.save()
    outcome.links = links.stats.to_dict() | {"cache": str(cache.path) if cache else "off"}
    if cache and cache.problem:
        outcome.notes.append(cache.problem)
        events.message("warning", "link_cache", cache.problem)
    events.message(
        "info",
        "incident_links",
        f"alert→incident links: asked {links.stats.asked} incidents, reused {links.stats.reused} from the cache"
        + (f", re-asked {links.stats.rechecked}" if links.stats.rechecked else ""),
    )


def _clients(settings: Settings, options: RunOptions, budget: WaitBudget) -> tuple[PortClient, Source]:
    ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None
    common: dict[str, Any] = {
        "budget": budget,
        "timeout": options.timeout,
        "max_retries": options.max_retries,
        "ca_bundle": ca_bundle,
        "pool_size": options.workers,  # connections, and the upper bound of the adaptive limit
    }
    port = PortClient(settings.port_url, settings.port_client_id, settings.port_client_secret, **common)
    _, port.credentials_origin = settings.credential_origins()
    return port, open_source(settings, common)


def open_source(settings: Settings, common: dict[str, Any]) -> Source:
    """The configured source (--source), its client sharing the run's wait budget."""
    if settings.source == "jsm":
        client = JsmClient(settings.atlassian_email, settings.atlassian_api_token, **common)
        return JsmSource(
            client,
            site_url=settings.jsm_site_url,
            api_url=settings.jsm_api_url,
            cloud_id=settings.jsm_cloud_id,
            org_id=settings.jsm_org_id,
            incident_jql=settings.jsm_incident_jql,
            email=settings.atlassian_email,
        )
    opsgenie = OpsgenieClient(settings.opsgenie_url, settings.opsgenie_token, **common)
    opsgenie.key_origin, _ = settings.credential_origins()
    return OpsgenieSource(opsgenie, settings.opsgenie_token)


def _merged_within_item(bodies: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """One body per (blueprint, identifier) of one item, merged in order (itemsToParse rows)."""
    merged: dict[Any, tuple[str, dict[str, Any]]] = {}
    for position, (blueprint, body) in enumerate(bodies):
        identifier = body.get("identifier")
        key = (blueprint, identifier) if isinstance(identifier, str) else position
        earlier = merged.get(key)
        merged[key] = (blueprint, merge_bodies(earlier[1], body) if earlier else body)
    return list(merged.values())


def _count_merged_rows(stats: ResourceStats, entities: list[Any]) -> None:
    """Rows of one item (itemsToParse) that share an identifier: merged, and said (a warning)."""
    rows = Counter((entity.blueprint, entity.identifier) for entity in entities if isinstance(entity.identifier, str))
    for (_, identifier), count in rows.items():
        if count > 1:
            stats.add("merged_rows", count)
            stats.add("merged_row_entities")
            stats.sample("merged_row", identifier)


def merge_bodies(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """What Port holds after upserting `earlier` then `later` with merge=true (port-api.md §4.1:
    only the fields supplied are updated): properties and relations key by key, other fields
    replaced."""
    merged = dict(earlier)
    for key, value in later.items():
        if key in ("properties", "relations") and isinstance(value, dict):
            merged[key] = {**(earlier.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


class _Held:
    """An entity waiting to be written once, with every later item of its identifier merged in.

    Kept as compact JSON: a resource listed whole holds all its entities until it ends (10,000
    incidents are ~25 MB as dicts, ~5 MB as bytes), and only merges decode them before the write."""

    __slots__ = ("_data", "blueprint", "identifier", "items", "resource_index", "ticket")

    def __init__(
        self, resource_index: int, blueprint: str, body: dict[str, Any], ticket: ItemTicket, items: int = 1
    ) -> None:
        self.resource_index = resource_index
        self.blueprint = blueprint
        self.identifier = str(body.get("identifier"))
        self.ticket = ticket  # the item that carries the write
        self.items = items  # items merged into it
        self._data = _compact(body)

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self._data)

    def absorb(self, body: dict[str, Any]) -> None:
        self._data = _compact(merge_bodies(self.body, body))
        self.items += 1


def _compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@dataclass
class _Run:
    config: MappingConfig
    compiled: list[CompiledResource]
    options: RunOptions
    outcome: RunOutcome
    events: Events
    port: PortClient
    lookups: Lookups
    stop: StopSignal
    sink: EntitySink | None = None
    states: dict[str, BlueprintState] = field(default_factory=dict)
    fieldset_index: dict[tuple[int, str], int] = field(default_factory=dict)
    # the identifiers each (resource, blueprint) produced, as 64-bit hashes: collisions
    produced_by: dict[tuple[int, str], SeenIdentifiers] = field(default_factory=dict)
    referenced: dict[str, set[str]] = field(default_factory=dict)  # target blueprint → identifiers
    relation_targets: dict[str, dict[str, str]] = field(default_factory=dict)  # bp → relation → target bp
    keys_by_resource: dict[int, tuple[str, ...]] = field(default_factory=dict)
    plan: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    port_state: dict[str, Future[None]] | None = None  # the background reads of Port's state
    in_port: dict[str, dict[str, Any]] = field(default_factory=dict)  # Port's blueprint definitions
    mapped: MappedItems | None = None  # what each item mapped to last run (skips unchanged ones)
    chosen: dict[int, set[str]] = field(default_factory=dict)  # resource whose blueprint is JQ → its blueprints
    # enableMergeEntity: (resource, blueprint, identifier) → the entity written once at the end
    held: dict[tuple[int, str, str], _Held] = field(default_factory=dict)  # of a resource listed whole
    repeats: dict[tuple[int, str, str], _Held] = field(default_factory=dict)  # of streamed resources

    # -- before: what Port holds ----------------------------------------------------------------
    def __post_init__(self) -> None:
        for resource, compiled in zip(self.config.resources, self.compiled, strict=True):
            keys = keys_for(resource.kind, compiled.referenced_keys(), resource.selector.include_members)
            self.keys_by_resource[resource.index] = keys

    def needs_key(self, key: str) -> bool:
        return any(key in keys for keys in self.keys_by_resource.values())

    def prepare_states(self) -> None:
        """One state per blueprint the mapping writes, with the fields each resource writes."""
        for resource, compiled in zip(self.config.resources, self.compiled, strict=True):
            for blueprint in sorted(compiled.blueprints_static()):
                state = self.states.setdefault(blueprint, BlueprintState(blueprint, []))
                self.fieldset_index[(resource.index, blueprint)] = len(state.fieldsets)
                state.fieldsets.append(FieldSet.for_mapping(resource.port.entity))
        for blueprint in self.states:
            self.outcome.blueprint(blueprint)  # created here: the reader thread only fills them in

    def preflight(self, settings: Settings, in_port: dict[str, dict[str, Any]]) -> None:
        """Every blueprint the mapping writes exists in Port (or, with --dry-run
        --initialize-port-resources, would be created from the blueprints folder), and has every
        property and relation the mapping writes: otherwise every write would fail (404, 422).
        `in_port`: the blueprints Port holds (listed once per run), and those just created."""
        self.in_port = in_port
        missing = [name for name in sorted(self.states) if name not in in_port]
        creatable = [name for name in missing if name in self.options.blueprints]
        if missing and not (settings.initialize_port_resources and self.options.dry_run and creatable == missing):
            raise ConfigError(_missing_blueprints_message(missing, creatable, settings))
        order = dependency_order(self.options.blueprints)
        self.outcome.blueprints_to_create = [name for name in order if name in missing]
        known = {**{name: self.options.blueprints[name] for name in missing}, **in_port}
        problems = check_mapping(self.config, known)
        if problems:
            listed = "; ".join(problem.for_file(self.config.source) for problem in problems[:10])
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise ConfigError(
                f"the mapping writes fields Port's blueprints lack, so those writes would fail: {listed}{more}. "
                "Add them to the blueprints in Port, or fix the mapping (`opsgenie-export validate --from-port` "
                "lists them all)"
            )

    def prepare_chosen_states(self) -> None:
        """A resource whose blueprint is a JQ expression writes the blueprints its string literals
        name (`if .priority == "P1" then "opsGenieCriticalAlert" else "opsGenieAlert" end`) that
        exist in Port: each gets its state now, so it is read, compared (skip-unchanged) and
        reconciled like a literal one — even when no item chooses it any more. A blueprint an
        item chooses beyond those is read when it first appears (`_discover`)."""
        known = set(self.in_port) | set(self.outcome.blueprints_to_create)
        for resource, compiled in zip(self.config.resources, self.compiled, strict=True):
            if compiled.blueprints_static() or "blueprint" not in compiled.fields:
                continue
            self.chosen[resource.index] = set()
            for blueprint in sorted(compiled.blueprint_literals() & known):
                self._add_fieldset(resource, blueprint)

    def _add_fieldset(self, resource: ResourceConfig, blueprint: str) -> BlueprintState:
        state = self.states.setdefault(blueprint, BlueprintState(blueprint, []))
        if (resource.index, blueprint) not in self.fieldset_index:
            self.fieldset_index[(resource.index, blueprint)] = len(state.fieldsets)
            state.fieldsets.append(FieldSet.for_mapping(resource.port.entity))
        self.chosen.setdefault(resource.index, set()).add(blueprint)
        self.outcome.blueprint(blueprint)
        return state

    def _discover(self, resource_index: int, blueprint: str) -> None:
        """An item chose a blueprint no literal named: read its state now (once), before writing."""
        resource = next(r for r in self.config.resources if r.index == resource_index)
        self._add_fieldset(resource, blueprint)
        self.load_blueprint_state(blueprint)
        stats = next((r for r in self.outcome.resources if r.index == resource_index), None)
        if stats is not None and blueprint not in stats.blueprints:
            stats.blueprints = sorted({*stats.blueprints, blueprint})

    def load_blueprint_state(self, blueprint: str) -> None:
        """One blueprint's paged search, and its relation targets from definitions. Runs in the
        background, several blueprints at once, while the source is read; `port_state_ready` waits."""
        self.stop.check()
        state = self.states[blueprint]
        state.load(self.port)
        self.outcome.blueprint(blueprint).existing = len(state.fingerprints)
        self.relation_targets[blueprint] = self._relation_targets(blueprint, state.found)

    def port_state_ready(self) -> None:
        """Wait for Port's state of every blueprint (read several at once), raising what stopped
        its reading; instant once read. Nothing is written before all of it is known: a failing
        read stops the run with nothing written."""
        if self.port_state is None:
            return
        for future in self.port_state.values():
            if future.done() and future.exception() is None:
                continue
            try:
                future.result()
            except ApiError as exc:
                raise PortStateError(f"could not read the entities Port holds: {exc}") from exc

    def _relation_targets(self, blueprint: str, found: bool) -> dict[str, str]:
        definition = self.options.blueprints.get(blueprint) or self.in_port.get(blueprint)
        if definition is None and found and not self.options.dry_run:
            definition = self.port.get_blueprint(blueprint)
        relations = (definition or {}).get("relations") or {}
        return {name: spec.get("target") for name, spec in relations.items() if spec.get("target")}

    # -- during: every resource ----------------------------------------------------------------
    def all_resources(self) -> None:
        pairs = list(zip(self.config.resources, self.compiled, strict=True))
        self.outcome.resources = [
            ResourceStats(r.index, r.kind, sorted(c.blueprints_static() | self.chosen.get(r.index, set())))
            for r, c in pairs
        ]
        for (resource, compiled), stats in zip(pairs, self.outcome.resources, strict=True):
            self.stop.check()
            self.events.resource_started(stats)
            try:
                self.one_resource(resource, compiled, stats)
            except (AuthError, Interrupted, PortStateError, WaitBudgetExceeded):
                stats.status, stats.reason = "failed", "run stopped"
                raise
            except ApiError as exc:
                stats.status, stats.reason = "failed", _fetch_failure(resource, exc, self.lookups.source)
                self.sink.raise_if_fatal()  # type: ignore[union-attr]
            for warning in stats.warnings:
                self.events.message("warning", "mapping_warning", f"{stats.label}: {warning}", kind=stats.kind)
            self.events.resource_done(stats)

    def one_resource(self, resource: ResourceConfig, compiled: CompiledResource, stats: ResourceStats) -> None:
        query = resource_query(resource)
        keys = self.keys_by_resource[resource.index]
        pages, incomplete = self._pages(resource.kind, query, stats)
        try:
            for page in pages:
                self.stop.check()
                self.port_state_ready()  # verdicts need it; a page it stops is not counted as fetched
                stats.add("fetched", len(page))
                for item, problem in enrich_page(self.lookups, keys, page, resource.kind):
                    if problem:
                        _fail_unprocessed(stats, f"{resource.kind} {_item_id(item)}: {problem}")
                        continue
                    self.map_and_write(compiled, item, stats)
                self.events.page_done(stats)
        except ApiError:  # the resource failed: what it mapped is still written, as when streaming
            self.write_held(stats)
            raise
        self.write_held(stats)
        reason = incomplete()
        stats.status, stats.reason = ("truncated", reason) if reason else ("ok", "")

    def _pages(
        self, kind: str, query: str, stats: ResourceStats
    ) -> tuple[Iterable[list[dict[str, Any]]], Callable[[], str]]:
        """Pages of a kind, and a callable telling (after iteration) why it is incomplete, if it is."""
        if kind in SHARED_KINDS:
            shared = self.lookups.shared_listing(kind, query)
            stats.total = len(shared.items)  # listed whole: the progress display knows the total
            pages = (shared.items[i : i + PAGE_SIZE] for i in range(0, len(shared.items), PAGE_SIZE))  # decoded lazily
            return pages, lambda: shared.reason if shared.truncated else ""
        stream = self.lookups.source.listing(kind, query, self.lookups.pool, self.lookups.parallel)
        return prefetched(stream, self.stop), lambda: stream.truncation_reason if stream.truncated else ""

    def map_and_write(self, compiled: CompiledResource, item: dict[str, Any], stats: ResourceStats) -> None:
        # Only streamed kinds whose mapping runs jq skip it: a kind listed whole holds its entities
        # for merging, and plain-path mappings cost less than the digest
        reusable = self.mapped is not None and stats.kind not in SHARED_KINDS and _runs_jq(compiled)
        digest = self.mapped.digest(stats.index, item) if reusable else None  # type: ignore[union-attr]
        if digest is not None and self._unchanged_since_last_run(digest, stats):
            return
        result = compiled.map_item(item)
        if result.errors:
            _fail_unprocessed(stats, str(result.errors[0]))
            return
        for skip in result.skipped:
            stats.sample("skipped", f"{skip.item_id} ({skip.field} null)")
        if not result.entities:
            stats.add("skipped" if result.skipped else "filtered")
            if digest is not None and not result.skipped:
                self.mapped.record(digest, FILTERED)  # type: ignore[union-attr]
            return
        problem = self._identifier_problem(stats, item, result.entities)
        if problem:
            _fail_unprocessed(stats, problem)
            return
        stats.add("entities", len(result.entities))
        bodies = _merged_within_item([(entity.blueprint, entity.to_port()) for entity in result.entities])
        if len(bodies) < len(result.entities):
            _count_merged_rows(stats, result.entities)
        carried = [(blueprint, body) for blueprint, body in bodies if not self._absorbed(stats, blueprint, body)]
        if not carried:  # every entity of this item went into an earlier item's
            stats.add("merged")
            return
        ticket = ItemTicket(stats, len(carried))
        # what to keep for the next run: only an item whose every entity was judged on its own
        kept: list[Any] | None = [] if digest is not None and len(carried) == len(result.entities) else None
        for blueprint, body in carried:
            if self._held_back(stats, blueprint, body, ticket):
                kept = None
                continue
            fingerprint = self._write(stats.index, blueprint, body, ticket)
            if kept is not None and fingerprint is not None and not result.skipped:
                kept.append((blueprint, body["identifier"], fingerprint, body.get("relations")))
            else:
                kept = None
        if kept is not None:
            self.mapped.record(digest, kept)  # type: ignore[union-attr, arg-type]

    def _unchanged_since_last_run(self, digest: int, stats: ResourceStats) -> bool:
        """The item mapped to these entities last run, Port holds each of them exactly so, and
        no earlier item of this run produced their identifiers: account for it as mapped and
        unchanged without mapping it (mapped_items.py). Anything else takes the usual path."""
        entries = self.mapped.lookup(digest)  # type: ignore[union-attr]
        if entries is None:
            return False
        if entries == FILTERED:
            stats.add("filtered")
            self.mapped.keep(digest)  # type: ignore[union-attr]
            return True
        for blueprint, identifier, fingerprint, _ in entries:
            key = (stats.index, blueprint)
            state = self.states.get(blueprint)
            if state is None or key not in self.fieldset_index:
                return False
            if state.verdict_of(identifier, fingerprint, self.fieldset_index[key]) != "unchanged":
                return False
            if identifier in self.produced_by.get(key, ()) or (stats.index, blueprint, identifier) in self.repeats:
                return False  # a repeat or a collision: the usual path merges or reports it
        for blueprint, identifier, _, relations in entries:
            self._seen(stats, blueprint, identifier)
            self._remember(stats.index, blueprint, {"identifier": identifier, "relations": relations})
            self.outcome.blueprint(blueprint).add("entities")
            self.outcome.blueprint(blueprint).add("unchanged")
            self._record_plan(blueprint, "unchanged", {"identifier": identifier})
        stats.add("entities", len(entries))
        stats.add("unchanged")
        self.mapped.keep(digest)  # type: ignore[union-attr]
        return True

    def _write(
        self, resource_index: int, blueprint: str, body: dict[str, Any], ticket: ItemTicket, *, repeat: bool = False
    ) -> int | None:
        """Write one entity unless Port already holds it; a repeat (its identifier was written
        earlier in this run) is always written. Returns the fingerprint it was judged by."""
        sink = self.sink
        if blueprint not in self.states and resource_index in self.chosen:
            self._discover(resource_index, blueprint)
        self.outcome.blueprint(blueprint).add("entities")
        self._remember(resource_index, blueprint, body)
        verdict, fingerprint = ("update", None) if repeat else self._verdict(resource_index, blueprint, body)
        self._record_plan(blueprint, verdict, body)
        if verdict == "unchanged":
            self.outcome.blueprint(blueprint).add("unchanged")
            ticket.settle(written=False)
        elif self.options.dry_run:
            self.outcome.blueprint(blueprint).add("upserted")
            ticket.settle()
        else:
            sink.add(blueprint, body, ticket)  # type: ignore[union-attr]
        return fingerprint

    # -- enableMergeEntity: several items, one identifier ----------------------------------------
    def _merge_key(self, stats: ResourceStats, blueprint: str, body: dict[str, Any]) -> tuple[int, str, str] | None:
        identifier = body.get("identifier")
        if not self.config.enable_merge_entity or not isinstance(identifier, str):
            return None
        return (stats.index, blueprint, identifier)

    def _absorbed(self, stats: ResourceStats, blueprint: str, body: dict[str, Any]) -> bool:
        """Merge into the held entity of the same identifier, if there is one."""
        key = self._merge_key(stats, blueprint, body)
        held = (self.held.get(key) or self.repeats.get(key)) if key else None
        if held is None:
            return False
        held.absorb(body)
        return True

    def _held_back(self, stats: ResourceStats, blueprint: str, body: dict[str, Any], ticket: ItemTicket) -> bool:
        """Hold the entity to write once later: every entity of a resource listed whole; of a
        streamed one, only an identifier written before (its repeats are written after the rest)."""
        key = self._merge_key(stats, blueprint, body)
        if key is None:
            return False
        if stats.kind in SHARED_KINDS:
            self.held[key] = _Held(stats.index, blueprint, body, ticket)
            return True
        if self._seen(stats, blueprint, key[2]):
            self.repeats[key] = _Held(stats.index, blueprint, body, ticket, items=2)  # the first was written
            return True
        return False

    def _seen(self, stats: ResourceStats, blueprint: str, identifier: str) -> bool:
        seen = self.produced_by.get((stats.index, blueprint))
        if seen is None:
            seen = self.produced_by[(stats.index, blueprint)] = SeenIdentifiers()
        return not seen.add(identifier)

    def write_held(self, stats: ResourceStats) -> None:
        """End of a resource: write its held entities (first-seen order) and count its merges."""
        held = [entry for key, entry in self.held.items() if key[0] == stats.index]
        self.held = {key: entry for key, entry in self.held.items() if key[0] != stats.index}
        repeats = [entry for key, entry in self.repeats.items() if key[0] == stats.index]
        for entry in held + repeats:
            if entry.items > 1:
                stats.add("merged_items", entry.items)
                stats.add("merged_entities")
                stats.sample("merged", entry.identifier)
        for entry in held:
            self._write(entry.resource_index, entry.blueprint, entry.body, entry.ticket)

    def write_repeats(self) -> None:
        """After every other write: the merged repeats of streamed resources, so each lands on
        top of its identifier's first write, as Port's successive merges would."""
        if not self.repeats:
            return
        first_writes = self.sink
        self.sink = EntitySink(
            self.port,
            self.outcome.blueprint,
            merge=True,
            create_missing=self.config.create_missing_related_entities,
            workers=self.options.workers,
        )
        for entry in self.repeats.values():
            self._write(entry.resource_index, entry.blueprint, entry.body, entry.ticket, repeat=True)
        self.repeats.clear()
        try:
            self.sink.close(relation_order(self.relation_targets))
        finally:
            self.sink = first_writes

    def abandon_held(self, cause: ExportError) -> None:
        """The run stopped: held entities are not written, and their items count as failed."""
        for entry in [*self.held.values(), *self.repeats.values()]:
            message = f"{entry.blueprint} {entry.identifier}: not written: the run stopped ({cause})"
            self.outcome.blueprint(entry.blueprint).add("entities")
            self.outcome.blueprint(entry.blueprint).add("failed", error=message)
            entry.ticket.settle(message)
        self.held.clear()
        self.repeats.clear()

    def _identifier_problem(self, stats: ResourceStats, item: dict[str, Any], entities: list[Any]) -> str | None:
        """Invalid identifiers fail the whole item before anything is written; so do colliding
        ones when enableMergeEntity is false."""
        for entity in entities:
            problem = identifier_problem(entity.identifier)
            if problem:
                return f"{stats.kind} {_item_id(item)}: {entity.blueprint}: {problem}"
            if (
                isinstance(entity.identifier, str)
                and not self.config.enable_merge_entity
                and self._seen(stats, entity.blueprint, entity.identifier)
            ):
                return (
                    f"{stats.kind} {_item_id(item)}: {entity.blueprint} identifier {entity.identifier!r} was "
                    "already produced by another item of this resource (identifier collision)"
                )
        return None

    def _remember(self, resource_index: int, blueprint: str, body: dict[str, Any]) -> None:
        identifier = body.get("identifier")
        state = self.states.get(blueprint)
        if state is not None and isinstance(identifier, str):
            state.produced(identifier)
        for relation, value in (body.get("relations") or {}).items():
            target = self.relation_targets.get(blueprint, {}).get(relation)
            if target:
                targets = self.referenced.setdefault(target, set())
                targets.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))

    def _verdict(self, resource_index: int, blueprint: str, body: dict[str, Any]) -> tuple[str, int | None]:
        """The verdict, and the fingerprint it was judged by (None: no state for the blueprint)."""
        state = self.states.get(blueprint)
        identifier = body.get("identifier")
        index = self.fieldset_index.get((resource_index, blueprint))
        if state is None or index is None or not isinstance(identifier, str):
            return "create", None
        if self.mapped is None and identifier not in state.fingerprints:
            return "create", None  # no fingerprint needed: nothing to compare, nothing to keep
        fingerprint = state.fieldsets[index].fingerprint(body)
        return state.verdict_of(identifier, fingerprint, index), fingerprint

    def _record_plan(self, blueprint: str, verdict: str, body: dict[str, Any]) -> None:
        if not self.options.dry_run:
            return
        entries = self.plan.setdefault(blueprint, {"create": [], "update": [], "unchanged": [], "delete": []})
        if len(entries[verdict]) < PLAN_LIMIT:
            entries[verdict].append(str(body.get("identifier")))

    # -- after: reconciliation -------------------------------------------------------------------
    def reconcile(self) -> None:
        for blueprint, state in list(self.states.items()):
            self.stop.check()
            stats = self.outcome.blueprint(blueprint)
            if not state.found and blueprint in self.outcome.blueprints_to_create:
                stats.deletion = "none: blueprint to be created"  # --dry-run: it would hold nothing yet
                continue
            if not state.found:
                off = self.options.no_delete
                stats.deletion = "off (--no-delete)" if off else "skipped: blueprint not found in Port"
                continue
            plan = plan_deletion(
                blueprint,
                len(state.fingerprints),
                state.unseen,
                self.referenced.get(blueprint, set()),
                blockers=self._deletion_blockers(blueprint),
                threshold=self.config.entity_deletion_threshold,
                keep_targets=self.config.create_missing_related_entities,
                threshold_hint=MIGRATION_HINT if self.lookups.source.name == "jsm" else "",
            )
            stats.stale = len(plan.stale)
            if self.options.no_delete:  # counted all the same: the summary says what is stale
                stats.deletion = "off (--no-delete)"
                continue
            if plan.skip_reason:
                stats.deletion = f"skipped: {plan.skip_reason}"
                if self.options.dry_run:  # what a run without the guard would delete
                    self.plan.setdefault(blueprint, {"create": [], "update": [], "unchanged": [], "delete": []})
                    self.plan[blueprint]["stale"] = plan.stale[:PLAN_LIMIT]
            elif self.options.dry_run:
                stats.deletion = "dry-run"
                self.plan.setdefault(blueprint, {"create": [], "update": [], "unchanged": [], "delete": []})
                self.plan[blueprint]["delete"] = plan.stale[:PLAN_LIMIT]
            else:
                execute_deletion(
                    self.port, plan, stats, delete_dependents=self.config.delete_dependent_entities, stop=self.stop
                )
                stats.deletion = "done"
        for stats in self.outcome.blueprints.values():  # never a silent "not run" on a finished run
            if stats.deletion == "not run":
                stats.deletion = "skipped: not reconciled: Port's entities of this blueprint were not read in this run"
        if self.options.dry_run:
            self.outcome.plan = self.plan

    def _deletion_blockers(self, blueprint: str) -> list[str]:
        """Why this blueprint's stale entities cannot be trusted to be gone upstream."""
        blockers = []
        failed_writes = self.outcome.blueprint(blueprint).failed
        if failed_writes:
            blockers.append(f"{failed_writes} writes to {blueprint} failed in this run")
        feeding = [r for r in self.outcome.resources if blueprint in r.blueprints]
        for stats in feeding:
            if stats.status != "ok":
                blockers.append(f"{stats.label} {stats.status}")
            elif stats.unprocessed:
                blockers.append(f"{stats.label} had {stats.unprocessed} items fail mapping or enrichment")
            for key in self.keys_by_resource.get(stats.index, ()):
                for kind in KEY_SOURCES.get(key, ()):
                    if self._kind_incomplete(kind):
                        blockers.append(f"{stats.label} uses {key}, and the {kind} listing was incomplete")
        return sorted(set(blockers))

    def _kind_incomplete(self, kind: str) -> bool:
        if any(r.kind == kind and r.status != "ok" for r in self.outcome.resources):
            return True
        return self.lookups.listing_failed(kind)


def _missing_blueprints_message(missing: list[str], creatable: list[str], settings: Settings) -> str:
    names = ", ".join(missing)
    message = f"blueprint(s) {names} not found in Port ({settings.port_url}); nothing was fetched or written. "
    absent = [name for name in missing if name not in creatable]
    if absent:
        return message + (
            f"{', '.join(absent)} is not in the blueprints folder ({settings.blueprints_dir}) either: add its "
            "JSON file there and run with --initialize-port-resources, or create it in Port"
        )
    return message + f"Run with --initialize-port-resources to create them from {settings.blueprints_dir}"


def resource_query(resource: ResourceConfig, source: str = "opsgenie") -> str:
    """The Opsgenie search query of a resource's selector; ConfigError names a bad filter, or
    (with `source` jsm) a filter JSM incidents cannot answer."""
    if resource.kind not in QUERY_KINDS:
        return ""
    where = f"resources[{resource.index}] (kind {resource.kind})"
    query = build_query(resource.selector.api_query_params, resource.selector.opsgenie_query, where)
    if source == "jsm" and resource.kind == "incident":
        try:
            incident_filter(query)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return query


def _fail_unprocessed(stats: ResourceStats, message: str) -> None:
    stats.add("failed", error=message)
    stats.add("unprocessed")


def _fetch_failure(resource: ResourceConfig, exc: ApiError, source: Source) -> str:
    if isinstance(exc, PlanRestrictedError):
        keys = sorted(key for key, kinds in KEY_SOURCES.items() if resource.kind in kinds)
        incident_plan = resource.kind == "incident" and source.name == "opsgenie"
        plan = " (the Incident API needs a Standard or Enterprise plan)" if incident_plan else ""
        needing = f" and the enrichment keys that need it ({', '.join(keys)})" if keys else ""
        return (
            f"{source.title} refused the {resource.kind} API for this account or key ({exc}){plan}; "
            f"remove this resource{needing} from the mapping"
        )
    return f"fetch failed: {exc}"


def _item_id(item: dict[str, Any]) -> str:
    return str(item.get("id") or item.get("tinyId") or item.get("name") or "?")


def _request_counts(source: Source, port: PortClient, budget: WaitBudget) -> dict[str, Any]:
    counts = source.request_counts()
    return {
        **counts,
        "port": dict(port.stats.requests),
        "portThrottled": port.stats.throttled,
        "retries": counts.pop("retries", 0) + port.stats.retries,
        "waitSeconds": round(budget.spent, 3),
        "inFlight": {**_in_flight(source), "port": port.in_flight.to_dict()},
    }


def _in_flight(source: Source) -> dict[str, Any]:
    """The adaptive concurrency the source's client reached (sources without one: nothing)."""
    limit = getattr(getattr(source, "client", None), "in_flight", None)
    return {source.name: limit.to_dict()} if limit is not None else {}

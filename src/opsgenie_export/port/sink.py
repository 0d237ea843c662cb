"""Batches entities per blueprint (≤20 entities, ≤1 MiB per request) and writes them on a bounded
pool of workers. Each entity carries a ticket that settles its source item's bucket once every
entity of that item has been written or has failed.

Memory stays flat: at most `max_in_flight` batches wait for a worker; `add` blocks beyond that.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsgenie_export.errors import ApiError, AuthError, ExportError, InternalError
from opsgenie_export.outcome import BlueprintStats, ResourceStats
from opsgenie_export.port.client import MAX_BODY_BYTES, MAX_BULK_ENTITIES, EntityError, PortClient

BODY_OVERHEAD = 64  # bytes of '{"entities":[...]}' around the entities


class ItemTicket:
    """One source item: settles as failed if any entity failed, else upserted if any entity was
    written, else unchanged."""

    __slots__ = ("_lock", "errors", "pending", "resource", "written")

    def __init__(self, resource: ResourceStats, pending: int) -> None:
        self.resource = resource
        self.pending = pending
        self.written = False
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def settle(self, error: str | None = None, *, written: bool = True) -> None:
        with self._lock:
            if error:
                self.errors.append(error)
            self.written = self.written or written
            self.pending -= 1
            done = self.pending == 0
        if not done:
            return
        if self.errors:
            self.resource.add("failed", error=self.errors[0])
        else:
            self.resource.add("upserted" if self.written else "unchanged")


@dataclass
class _Pending:
    entity: dict[str, Any]
    size: int
    ticket: ItemTicket
    settled: bool = False  # each entity settles its ticket exactly once


@dataclass
class _Batch:
    blueprint: str
    items: list[_Pending] = field(default_factory=list)
    size: int = BODY_OVERHEAD


class EntitySink:
    def __init__(
        self,
        client: PortClient,
        stats_for: Callable[[str], BlueprintStats],
        *,
        merge: bool,
        create_missing: bool,
        workers: int = 4,
    ) -> None:
        self.client = client
        self.stats_for = stats_for
        self.merge = merge
        self.create_missing = create_missing
        self._retry: list[tuple[str, _Pending]] = []  # per-entity failures, retried once at the end
        self._retry_lock = threading.Lock()
        self._retrying = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="port-write")
        self._slots = threading.BoundedSemaphore(workers * 2)
        self._open: dict[str, _Batch] = {}
        self._futures: list[Future[None]] = []
        self._fatal: ExportError | None = None
        self._stopped: str | None = None  # why nothing more is sent (abort)

    def add(self, blueprint: str, entity: dict[str, Any], ticket: ItemTicket) -> None:
        self.raise_if_fatal()
        size = len(json.dumps(entity, separators=(",", ":")).encode("utf-8")) + 1
        if size + BODY_OVERHEAD > MAX_BODY_BYTES:
            self._fail_entity(blueprint, ticket, entity, "entity is larger than Port's 1 MiB request limit")
            return
        batch = self._open.setdefault(blueprint, _Batch(blueprint))
        if len(batch.items) >= MAX_BULK_ENTITIES or batch.size + size > MAX_BODY_BYTES:
            self._submit(batch)
            batch = self._open[blueprint] = _Batch(blueprint)
        batch.items.append(_Pending(entity, size, ticket))
        batch.size += size

    def close(self, blueprint_order: list[str] | None = None) -> None:
        """Write what is left, wait for every worker, retry per-entity failures once in blueprint
        order (relation targets first), and re-raise a fatal error."""
        for batch in list(self._open.values()):
            if batch.items:
                self._submit(batch)
        self._open.clear()
        self._pool.shutdown(wait=True)
        self._collect(self._futures)
        self._futures.clear()
        self.raise_if_fatal()
        self._retry_failed(blueprint_order or [])
        self.raise_if_fatal()

    def _retry_failed(self, blueprint_order: list[str]) -> None:
        self._retrying = True
        rank = {name: i for i, name in enumerate(blueprint_order)}
        failed = sorted(self._retry, key=lambda entry: rank.get(entry[0], len(rank)))
        self._retry = []
        for blueprint in dict.fromkeys(name for name, _ in failed):
            pendings = [p for name, p in failed if name == blueprint]
            for start in range(0, len(pendings), MAX_BULK_ENTITIES):
                self._write_batch(_Batch(blueprint, pendings[start : start + MAX_BULK_ENTITIES]))

    def abort(self, reason: str) -> None:
        """Send nothing more: every entity not yet written (open batches, queued batches) counts
        as failed with `reason`; batches in flight finish or fail on their own."""
        self._stopped = reason
        for batch in list(self._open.values()):
            self._fail_all(batch, f"not written: {reason}")
        self._open.clear()
        self._pool.shutdown(wait=True)
        self._collect(self._futures)
        self._futures.clear()

    def raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    @property
    def port_failed(self) -> bool:
        """Port refused the credentials or stayed unreachable: writing more is pointless."""
        return self._fatal is not None

    # -- workers -----------------------------------------------------------------------------
    def _submit(self, batch: _Batch) -> None:
        self._slots.acquire()
        future = self._pool.submit(self._guarded_write, batch)
        future.add_done_callback(lambda _: self._slots.release())
        done = [f for f in self._futures if f.done()]
        self._futures = [f for f in self._futures if not f.done()]
        self._collect(done)
        self._futures.append(future)

    def _collect(self, futures: list[Future[None]]) -> None:
        """Wait for futures and look at each one's exception: none is ever dropped unseen."""
        for future in futures:
            exc = future.exception()
            if exc is not None:
                self._set_fatal(exc if isinstance(exc, ExportError) else InternalError(exc))

    def _guarded_write(self, batch: _Batch) -> None:
        """A bug while writing a batch fails that batch's unsettled entities (counted, with the
        reason) and stops the run as an internal error — it never vanishes in a worker thread."""
        try:
            self._write_batch(batch)
        except Exception as exc:
            error = InternalError(exc)
            self._set_fatal(error)
            for pending in batch.items:
                if not pending.settled:
                    self._fail(batch.blueprint, pending, str(error))
            raise

    def _write_batch(self, batch: _Batch) -> None:
        if self._stopped is not None or self._fatal is not None:
            self._fail_all(batch, f"not written: {self._stopped or 'the run stopped on an earlier fatal error'}")
            return
        entities = [p.entity for p in batch.items]
        try:
            result = self.client.bulk_upsert(
                batch.blueprint, entities, merge=self.merge, create_missing=self.create_missing
            )
        except ApiError as exc:
            if exc.status == 413:
                self._write_one_by_one(batch)
                return
            self._remember_fatal(exc)
            self._fail_all(batch, f"bulk upsert failed: {exc}")
            return
        except ExportError as exc:  # interrupted: nothing more is written
            self._set_fatal(exc)
            self._fail_all(batch, f"not written: {exc}")
            return
        for index, pending in enumerate(batch.items):
            error = result.failed.get(index)
            if error is not None and not self._retrying:
                with self._retry_lock:
                    self._retry.append((batch.blueprint, pending))
                continue
            self._settle(batch.blueprint, pending, error)

    def _write_one_by_one(self, batch: _Batch) -> None:
        for pending in batch.items:
            try:
                self.client.upsert(
                    batch.blueprint, pending.entity, merge=self.merge, create_missing=self.create_missing
                )
            except ApiError as exc:
                self._remember_fatal(exc)
                identifier = str(pending.entity.get("identifier"))
                self._settle(batch.blueprint, pending, EntityError(identifier, exc.status, "upsert_failed", str(exc)))
            else:
                self._settle(batch.blueprint, pending, None)

    def _settle(self, blueprint: str, pending: _Pending, error: EntityError | None) -> None:
        if error is None:
            pending.settled = True
            self.stats_for(blueprint).add("upserted")
            pending.ticket.settle()
            return
        self._fail(blueprint, pending, f"{blueprint} {error}")

    def _fail_entity(self, blueprint: str, ticket: ItemTicket, entity: dict[str, Any], reason: str) -> None:
        message = f"{blueprint} {entity.get('identifier')}: {reason}"
        self.stats_for(blueprint).add("failed", error=message)
        ticket.settle(message)

    def _fail(self, blueprint: str, pending: _Pending, message: str) -> None:
        if pending.settled:
            return
        pending.settled = True
        self.stats_for(blueprint).add("failed", error=message)
        pending.ticket.settle(message)

    def _fail_all(self, batch: _Batch, reason: str) -> None:
        for pending in batch.items:
            self._fail(batch.blueprint, pending, f"{batch.blueprint} {pending.entity.get('identifier')}: {reason}")

    def _remember_fatal(self, exc: ApiError) -> None:
        """Bad credentials, or Port unreachable after retries, stop the run (quickly)."""
        if isinstance(exc, AuthError) or exc.status is None:
            self._set_fatal(exc)

    def _set_fatal(self, exc: ExportError) -> None:
        """The first fatal error wins, whichever worker thread sees it."""
        with self._retry_lock:
            if self._fatal is None:
                self._fatal = exc

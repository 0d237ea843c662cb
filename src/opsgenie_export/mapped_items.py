"""What each item mapped to on the last run, so an unchanged re-run skips mapping it.

Mapping is most of an unchanged re-run's CPU (JQ per field, then a fingerprint per entity), yet
its result is fully decided by the item as listed and enriched and by the mapping. So each run
keeps, per item, a digest of (package version, resource, mapping, item with its `__*` keys) and
what came out: per entity its blueprint, identifier, fingerprint of the mapped fields and
relations. The next run reuses an entry only when all of these hold:

- the digest matches: the same item, enrichment, mapping and version;
- Port holds every one of its entities with exactly that fingerprint (read this run), so the
  write would be skipped anyway — anything else is mapped and written as usual;
- the identifiers do not collide with ones produced earlier in this run;
- the entry is younger than `max_age`, spread per entry between half and all of it, as the
  incident link cache (a run re-maps a slice of unchanged items instead of all on one day).

The file lives beside the incident link cache, one per account and mapping; it is written as the
run goes (one line per item, never held in memory) and replaces the previous one only when the
run listed everything. A damaged or unknown file is ignored with a warning; `--no-cache` turns it
off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from opsgenie_export import __version__

FORMAT = 1
DEFAULT_MAX_AGE = 24 * 3600.0
FILTERED = "filtered"  # the item matched no entity (selector query false)

# (blueprint, identifier, fingerprint, relations) per entity, or FILTERED
Entries = list[tuple[str, str, int, dict[str, Any] | None]] | str


def stable_hash(data: bytes) -> int:
    """A 64-bit digest that is the same in every process (Python's hash() of a str is not)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class MappedItems:
    def __init__(
        self, path: Path, namespace: str, *, max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.namespace = namespace
        self.max_age = max_age
        self.problem = ""
        self.reused = 0
        self.recorded = 0
        self._clock = clock
        self._previous: dict[int, str] = {}  # digest → "mapped_at json-entries", decoded on use
        self._prefixes: dict[int, bytes] = {}
        self._out: IO[str] | None = None
        self._temp: str | None = None

    @classmethod
    def for_account(cls, cache_dir: Path, account: str, mapping_text: str) -> MappedItems:
        """One file per account (a digest, as the link cache names it) and mapping (a digest)."""
        namespace = hashlib.sha256(f"{__version__}\n{mapping_text}".encode()).hexdigest()[:16]
        return cls(cache_dir / f"mapped-items-{account}-{namespace}.txt", namespace)

    # -- reading the previous run ---------------------------------------------------------------
    def load(self) -> None:
        try:
            handle = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            self.problem = f"ignored unreadable mapped-items cache {self.path}: {exc}"
            return
        with handle:
            try:
                header = json.loads(handle.readline() or "null")
                if not (isinstance(header, dict) and header.get("format") == FORMAT):
                    self.problem = f"ignored mapped-items cache {self.path}: unknown format"
                    return
                if header.get("namespace") != self.namespace:
                    return  # another mapping or version: nothing to reuse
                previous = {}
                for line in handle:
                    digest, _, rest = line.rstrip("\n").partition(" ")
                    previous[int(digest, 16)] = rest
            except (OSError, ValueError) as exc:
                self.problem = f"ignored damaged mapped-items cache {self.path}: {exc}"
                return
        self._previous = previous

    def digest(self, resource_index: int, item: dict[str, Any]) -> int:
        prefix = self._prefixes.get(resource_index)
        if prefix is None:
            prefix = self._prefixes[resource_index] = f"{self.namespace}/{resource_index}/".encode()
        return stable_hash(prefix + json.dumps(item, separators=(",", ":"), default=str).encode())

    def lookup(self, digest: int) -> Entries | None:
        """The entities this item mapped to last time, if the entry may still be trusted."""
        raw = self._previous.get(digest)
        if raw is None:
            return None
        try:
            mapped_at_text, _, entries_text = raw.partition(" ")
            mapped_at = float(mapped_at_text)
            age = self._clock() - mapped_at  # negative when the clock went back: not trusted
            if not 0 <= age < self.max_age * (0.5 + 0.5 * (zlib.crc32(digest.to_bytes(8, "big")) & 0xFFFF) / 0x10000):
                return None
            entries = json.loads(entries_text)
            if entries == FILTERED:
                return FILTERED
            return [(str(bp), str(identifier), int(fp), rel) for bp, identifier, fp, rel in entries]
        except (ValueError, TypeError):
            return None  # a damaged entry: map the item as usual

    # -- writing this run -------------------------------------------------------------------------
    def keep(self, digest: int) -> None:
        """Carry a reused entry over unchanged (its original age keeps counting)."""
        raw = self._previous.get(digest)
        if raw is not None:
            self.reused += 1
            self._write(f"{digest:016x} {raw}\n")

    def record(self, digest: int, entries: Entries) -> None:
        body = json.dumps(entries, separators=(",", ":"))
        self.recorded += 1
        self._write(f"{digest:016x} {int(self._clock())} {body}\n")

    def _write(self, line: str) -> None:
        if self._out is None:
            if self._temp is not None:  # opening failed before: the run goes on without
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, self._temp = tempfile.mkstemp(prefix=".mapped-items-", dir=self.path.parent)
                self._out = os.fdopen(fd, "w", encoding="utf-8")
                self._out.write(json.dumps({"format": FORMAT, "namespace": self.namespace}) + "\n")
            except OSError as exc:
                self.problem = f"could not write mapped-items cache {self.path}: {exc}"
                self._temp = self._temp or ""
                return
        try:
            self._out.write(line)
        except OSError as exc:
            self.problem = f"could not write mapped-items cache {self.path}: {exc}"
            self._discard()
            self._temp = ""

    def finish(self, complete: bool) -> None:
        """Replace the previous file with this run's when every item was seen; else keep it."""
        self._previous = {}
        if self._out is None:
            return
        if not complete:
            self._discard()
            return
        try:
            self._out.close()
            os.replace(self._temp or "", self.path)
        except OSError as exc:
            self.problem = f"could not write mapped-items cache {self.path}: {exc}"
            self._discard()
        self._out = None

    def _discard(self) -> None:
        if self._out is not None:
            with contextlib.suppress(OSError):
                self._out.close()
            self._out = None
        if self._temp:
            with contextlib.suppress(OSError):
                os.unlink(self._temp)

"""What Port already holds for a blueprint, read once per run with the paged search.

Only a fingerprint per entity is kept — a hash of the fields the mapping writes — so memory holds
a set of identifiers per blueprint, not the entities. The same listing serves skip-unchanged
(write only what is new or differs) and reconciliation (what exists but was not produced).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opsgenie_export.errors import ApiError
from opsgenie_export.mapped_items import stable_hash
from opsgenie_export.port.client import PortClient

META_FIELDS = ("title", "icon", "team")


@dataclass(frozen=True)
class FieldSet:
    """The entity fields one resource writes: meta fields, properties.x, relations.y."""

    paths: tuple[str, ...]

    @classmethod
    def for_mapping(cls, entity_mapping: Any) -> FieldSet:
        paths = [name for name in META_FIELDS if getattr(entity_mapping, name, None) is not None]
        paths += [f"properties.{key}" for key in entity_mapping.properties]
        paths += [f"relations.{key}" for key in entity_mapping.relations]
        return cls(tuple(paths))

    def fingerprint(self, entity: dict[str, Any]) -> int:
        """A 64-bit digest of the fields, the same in every process (kept between runs)."""
        values = [_normalise(path, _get(entity, path)) for path in self.paths]
        return stable_hash(json.dumps(values, sort_keys=True, separators=(",", ":"), default=str).encode())


def _get(entity: dict[str, Any], path: str) -> Any:
    head, _, tail = path.partition(".")
    value = entity.get(head)
    if tail:
        return (value or {}).get(tail) if isinstance(value, dict) else None
    return value


def _normalise(path: str, value: Any) -> Any:
    if path == "team" and isinstance(value, str):
        return [value]
    if path == "team" and value == []:
        return None
    return value


@dataclass
class BlueprintState:
    blueprint: str
    fieldsets: list[FieldSet]
    found: bool = True
    # identifier → fingerprint (an int; a tuple when several resources write this blueprint)
    fingerprints: dict[str, int | tuple[int, ...]] = field(default_factory=dict)
    unseen: set[str] = field(default_factory=set)  # existing identifiers this run has not produced

    @property
    def include(self) -> list[str]:
        paths = {"identifier"}
        for fieldset in self.fieldsets:
            paths.update(fieldset.paths)
        return sorted(paths)

    def load(self, client: PortClient) -> None:
        try:
            for entity in client.search(self.blueprint, self.include):
                identifier = str(entity.get("identifier"))
                prints = tuple(fs.fingerprint(entity) for fs in self.fieldsets)
                self.fingerprints[identifier] = prints[0] if len(prints) == 1 else prints
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.found = False
        self.unseen = set(self.fingerprints)

    def produced(self, identifier: str) -> None:
        """This run produced the identifier: it is not stale, whether or not its write succeeds."""
        self.unseen.discard(identifier)

    def verdict(self, identifier: str, body: dict[str, Any], fieldset_index: int) -> str:
        """'create', 'update' or 'unchanged' for an entity about to be written."""
        if identifier not in self.fingerprints:
            return "create"
        return self.verdict_of(identifier, self.fieldsets[fieldset_index].fingerprint(body), fieldset_index)

    def verdict_of(self, identifier: str, fingerprint: int, fieldset_index: int) -> str:
        """The same verdict from the entity's fingerprint (computed now, or on an earlier run)."""
        existing = self.fingerprints.get(identifier)
        if existing is None:
            return "create"
        if isinstance(existing, tuple):
            existing = existing[fieldset_index]
        return "unchanged" if existing == fingerprint else "update"

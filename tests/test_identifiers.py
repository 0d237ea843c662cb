"""The compact set of produced identifiers behind the collision check."""

from __future__ import annotations

from opsgenie_export.port.identifiers import SeenIdentifiers


def test_every_identifier_once_through_many_growths() -> None:
    seen = SeenIdentifiers(capacity=8)
    identifiers = [f"alert-{n}" for n in range(50_000)]
    assert all(seen.add(identifier) for identifier in identifiers)
    assert len(seen) == 50_000
    assert not any(seen.add(identifier) for identifier in identifiers[::97])  # still found after growing
    assert len(seen) == 50_000
    assert seen.add("alert-50000")


def test_empty_string_and_lookalikes_are_distinct() -> None:
    seen = SeenIdentifiers()
    assert seen.add("")
    assert seen.add("a") and seen.add("A") and seen.add("a ")
    assert not seen.add("")
    assert len(seen) == 4

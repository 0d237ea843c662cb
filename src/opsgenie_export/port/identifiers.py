"""Port's identifier rules (docs/port-api.md §9), checked before anything is sent."""

from __future__ import annotations

from array import array

MAX_IDENTIFIER = 1000
_MASK64 = (1 << 64) - 1
_ALLOWED_SYMBOLS = frozenset("@_.+:\\/=-")


def identifier_problem(identifier: object) -> str | None:
    """Why Port would refuse this entity identifier, or None when it is valid."""
    if isinstance(identifier, dict):
        return None  # a search-query identifier; Port resolves it
    if not isinstance(identifier, str) or not identifier:
        return "identifier is empty or not a string"
    if len(identifier) > MAX_IDENTIFIER:
        return f"identifier is {len(identifier)} characters; Port allows at most {MAX_IDENTIFIER}"
    if identifier in (".", ".."):
        return f"identifier {identifier!r} is reserved"
    bad = sorted({c for c in identifier if not (c.isalpha() or c.isdigit() or c in _ALLOWED_SYMBOLS)})
    if bad:
        shown = "".join(bad)[:10]
        return (
            f"identifier {identifier[:80]!r} contains characters Port refuses ({shown!r}); "
            'sanitise it in the mapping, e.g. | gsub("[^a-zA-Z0-9@_.:/=-]"; "-")'
        )
    return None


class SeenIdentifiers:
    """The identifiers a resource has produced, for collision checks, as 64-bit hashes in a flat
    open-addressing table (unsigned 64-bit slots, at most half full): ~16 bytes an identifier
    where a Python set of hashes takes ~70, which matters at hundreds of thousands of alerts.

    Two different identifiers with the same 64-bit hash would be reported as a collision; for
    100,000 identifiers the odds are about 3 in 10¹⁰."""

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self, capacity: int = 1024) -> None:
        self._slots = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1  # capacity is a power of two
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, identifier: str) -> bool:
        key = (hash(identifier) & _MASK64) or 1
        slots, mask = self._slots, self._mask
        index = key & mask
        while slots[index]:
            if slots[index] == key:
                return True
            index = (index + 1) & mask
        return False

    def add(self, identifier: str) -> bool:
        """Record the identifier; False if it (or one with the same 64-bit hash) was already there."""
        key = (hash(identifier) & _MASK64) or 1  # 0 marks an empty slot
        if not self._place(key):
            return False
        self._count += 1
        if 2 * self._count > len(self._slots):
            self._grow()
        return True

    def _place(self, key: int) -> bool:
        slots, mask = self._slots, self._mask
        index = key & mask
        while slots[index]:
            if slots[index] == key:
                return False
            index = (index + 1) & mask
        slots[index] = key
        return True

    def _grow(self) -> None:
        keys = [key for key in self._slots if key]
        self._slots = array("Q", bytes(16 * (self._mask + 1)))
        self._mask = len(self._slots) - 1
        for key in keys:
            self._place(key)

"""Port's identifier rules (docs/port-api.md §9), checked before anything is sent."""

from __future__ import annotations

MAX_IDENTIFIER = 1000
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

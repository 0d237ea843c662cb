"""Enrichment keys (`__team`, `__relatedIncident`, …): the one table of which key each kind
provides, and the check that a mapping only reads keys its kind provides.

A misspelled or misplaced key is not a runtime `null`: JQ reads a missing key as null, so a typo
would overwrite good data in Port with nulls. `validate`, `sync` and `serve` therefore reject it
before any request (exit 2), naming the resource, the field and the nearest valid key. Sources
(Opsgenie today, JSM Operations next) read the same table to decide what to compute.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from opsgenie_export.mapping.model import Problem, ResourceConfig

# Enrichment keys per kind (docs/ocean-compatibility.md §6). `__members` on teams is also added by
# `selector.includeMembers: true`; `__oncalls` means something else on services and teams.
KEYS_BY_KIND: dict[str, frozenset[str]] = {
    "service": frozenset({"__team", "__incidents", "__oncalls"}),
    "incident": frozenset({"__impactedServices"}),
    "alert": frozenset({"__relatedIncident"}),
    "team": frozenset({"__members", "__oncalls"}),
    "schedule": frozenset({"__currentOncalls"}),
    "schedule-oncall": frozenset({"__currentOncalls"}),
}
ALL_KEYS: frozenset[str] = frozenset().union(*KEYS_BY_KIND.values())

# `__name` as a path component or string: not inside a longer name (`foo__bar`), not jq's `$__loc__`.
KEY_PATTERN = re.compile(r"(?<![A-Za-z0-9_$])__[A-Za-z]+")


def keys_in(expression: str | dict[str, Any] | list[Any] | Any) -> list[str]:
    """Every `__key` a JQ string (or a search-query object's leaves) mentions, in order."""
    if isinstance(expression, str):
        return KEY_PATTERN.findall(expression)
    if isinstance(expression, dict):
        return [key for value in expression.values() for key in keys_in(value)]
    if isinstance(expression, list):
        return [key for value in expression for key in keys_in(value)]
    return []


def key_problems(resource: ResourceConfig, fields: Iterator[tuple[str, Any]]) -> list[Problem]:
    """A problem for each (field, key) whose key the resource's kind does not provide."""
    provided = KEYS_BY_KIND.get(resource.kind, frozenset())
    problems: list[Problem] = []
    for field_name, expression in fields:
        for key in dict.fromkeys(keys_in(expression)):
            if key not in provided:
                location = f"{resource.label} field '{field_name}'"
                problems.append(Problem(location, _message(key, resource.kind, provided)))
    return problems


def _message(key: str, kind: str, provided: frozenset[str]) -> str:
    owners = sorted(k for k, keys in KEYS_BY_KIND.items() if key in keys)
    if owners:
        what = f"enrichment key {key!r} is not provided for kind {kind} (only for {', '.join(owners)})"
    else:
        what = f"unknown enrichment key {key!r}"
    if not provided:
        return f"{what}; kind {kind} has no enrichment keys, so it would read null"
    nearest = difflib.get_close_matches(key, sorted(provided), n=1, cutoff=0.0)[0]
    others = f" (kind {kind} provides {', '.join(sorted(provided))})" if len(provided) > 1 else ""
    return f"{what}; did you mean {nearest!r}?{others} It would read null and overwrite good data"

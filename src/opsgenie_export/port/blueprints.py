"""`--initialize-port-resources`: create the blueprints of `blueprints/` that Port lacks.

Existing blueprints are never overwritten. Missing ones are created in relation-dependency order
(targets first): each is POSTed without relations and derived properties, then PATCHed with its
relations and derived properties once every blueprint exists, so cycles work too.
"""

from __future__ import annotations

from typing import Any

from opsgenie_export.errors import ApiError, ConfigError
from opsgenie_export.port.client import PortClient

DERIVED_KEYS = ("relations", "mirrorProperties", "calculationProperties", "aggregationProperties")


def dependency_order(blueprints: dict[str, dict[str, Any]]) -> list[str]:
    """Blueprint identifiers with relation targets before the blueprints that point at them."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return  # done, or a cycle: the two-step creation handles it
        visiting.add(name)
        for relation in (blueprints[name].get("relations") or {}).values():
            target = relation.get("target")
            if target in blueprints:
                visit(target)
        visiting.discard(name)
        order.append(name)

    for name in sorted(blueprints):
        visit(name)
    return order


def relation_order(relation_targets: dict[str, dict[str, str]]) -> list[str]:
    """Blueprints ordered targets-first, from blueprint → relation → target blueprint."""
    as_definitions = {
        name: {"relations": {rel: {"target": target} for rel, target in relations.items()}}
        for name, relations in relation_targets.items()
    }
    return dependency_order(as_definitions)


def initialize_blueprints(
    client: PortClient, blueprints: dict[str, dict[str, Any]], in_port: dict[str, dict[str, Any]] | None = None
) -> list[str]:
    """Create the missing blueprints; return the identifiers created. `in_port`: the blueprints
    Port holds, when already listed (one request for all instead of one per blueprint)."""
    in_port = client.list_blueprints() if in_port is None else in_port
    order = dependency_order(blueprints)
    missing = [name for name in order if name not in in_port]
    for name in missing:
        for relation_id, relation in (blueprints[name].get("relations") or {}).items():
            target = relation.get("target")
            if target not in blueprints and target not in in_port:
                raise ConfigError(
                    f"blueprint {name}: relation {relation_id} targets {target!r}, which is neither in the "
                    "blueprints folder nor in Port; add its JSON file or create it in Port"
                )
    for name in missing:
        bare = {k: v for k, v in blueprints[name].items() if k not in DERIVED_KEYS}
        try:
            client.create_blueprint(bare)
        except ApiError as exc:
            if exc.status != 409:  # 409: a retried create whose first answer was lost
                raise
    for name in missing:
        derived = {k: blueprints[name][k] for k in DERIVED_KEYS if blueprints[name].get(k)}
        if derived:
            client.patch_blueprint(name, derived)
    return missing

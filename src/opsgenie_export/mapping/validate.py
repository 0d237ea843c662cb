"""Static checks of a mapping against blueprints, before anything reaches Port."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from opsgenie_export.errors import ConfigError
from opsgenie_export.mapping.jq_engine import compile_problems, literal_value
from opsgenie_export.mapping.model import MappingConfig, Problem, ResourceConfig, collect_mapping, read_mapping_text

__all__ = ["Problem", "check_mapping", "load_blueprints", "static_blueprint", "validate_mapping_file"]


def load_blueprints(directory: Path) -> dict[str, dict[str, Any]]:
    """One JSON file per blueprint (`*.json`), keyed by its `identifier`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: blueprint directory not found")
    blueprints: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        blueprint = _read_blueprint(path)
        blueprints[blueprint["identifier"]] = blueprint
    return blueprints


def _read_blueprint(path: Path) -> dict[str, Any]:
    try:
        blueprint = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the blueprint: {error.strerror or error}") from error
    except ValueError as error:
        raise ConfigError(f"{path}: invalid JSON: {error}") from error
    if not isinstance(blueprint, dict) or not isinstance(blueprint.get("identifier"), str):
        raise ConfigError(f"{path}: not a blueprint: expected a JSON object with a string 'identifier'")
    return blueprint


def static_blueprint(resource: ResourceConfig) -> str | None:
    """The resource's blueprint when its expression is a string literal such as `'"opsGenieAlert"'`."""
    literal = literal_value(resource.port.entity.blueprint)
    return literal[0] if literal is not None and isinstance(literal[0], str) else None


def check_mapping(config: MappingConfig, blueprints: dict[str, dict[str, Any]]) -> list[Problem]:
    """Blueprint, property, relation and relation-target names against `blueprints`."""
    problems: list[Problem] = []
    for resource in config.resources:
        problems.extend(_check_resource(resource, blueprints))
    return problems


def _check_resource(resource: ResourceConfig, blueprints: dict[str, dict[str, Any]]) -> list[Problem]:
    name = static_blueprint(resource)
    if name is None:
        return []
    blueprint = blueprints.get(name)
    if blueprint is None:
        message = f"blueprint {name!r} is not among the blueprints{_suggest(name, blueprints)}"
        return [Problem(f"{resource.label} blueprint", message)]
    problems: list[Problem] = []
    known_properties = (blueprint.get("schema") or {}).get("properties") or {}
    for prop in resource.port.entity.properties:
        if prop not in known_properties:
            message = f"property {prop!r} is not in blueprint {name!r}{_suggest(prop, known_properties)}"
            problems.append(Problem(f"{resource.label} properties.{prop}", message))
    known_relations = blueprint.get("relations") or {}
    for relation in resource.port.entity.relations:
        location = f"{resource.label} relations.{relation}"
        if relation not in known_relations:
            message = f"relation {relation!r} is not in blueprint {name!r}{_suggest(relation, known_relations)}"
            problems.append(Problem(location, message))
            continue
        target = (known_relations[relation] or {}).get("target")
        if target not in blueprints:
            message = f"relation target blueprint {target!r} (of {name}.{relation}) is not among the blueprints"
            problems.append(Problem(location, message))
    return problems


def _suggest(name: str, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(sorted(known))}" if known else " (it defines none)"


def validate_mapping_file(path: Path, blueprints: dict[str, dict[str, Any]]) -> list[Problem]:
    """Every problem of a mapping file: YAML, structure and kinds, JQ compile errors, blueprints."""
    config, problems = collect_mapping(read_mapping_text(path), str(path))
    if config is None:
        return problems
    for resource in config.resources:
        problems.extend(compile_problems(resource))
    problems.extend(check_mapping(config, blueprints))
    return problems

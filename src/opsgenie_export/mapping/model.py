"""Load and validate a mapping file in the format of Port's Ocean "port-app-config".

The parser collects every problem it finds (`collect_mapping`), so the `validate` command can
show them all; `parse_mapping` / `load_mapping` raise a one-line `ConfigError` for the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opsgenie_export.errors import ConfigError

KNOWN_KINDS = ("alert", "incident", "service", "team", "schedule", "schedule-oncall", "user", "escalation")
KIND_ALIASES = {"schedule-on-call": "schedule-oncall"}

TOP_LEVEL_KEYS = (
    "createMissingRelatedEntities",
    "deleteDependentEntities",
    "enableMergeEntity",
    "entityDeletionThreshold",
    "resources",
)
RESOURCE_KEYS = ("kind", "selector", "port")
PORT_KEYS = ("entity", "itemsToParse", "itemsToParseName", "itemsToParseTopLevelTransform")
MAPPING_KEYS = ("identifier", "title", "icon", "blueprint", "team", "properties", "relations")
SEARCH_QUERY_KEYS = ("combinator", "rules")
RULE_KEYS = ("property", "operator", "value")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping file; `location` is e.g. `resources[1] (kind incident) title`."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def for_file(self, source: str) -> str:
        """The one-line form naming the file, e.g. `mapping.yaml: resources[0] …: …`."""
        if not self.location:
            return f"{source}: {self.message}"
        separator = " " if self.location.startswith("line ") else ": "
        return f"{source}{separator}{self}"


@dataclass(frozen=True)
class Selector:
    query: str = "true"
    api_query_params: dict[str, Any] | None = None
    include_members: bool = False
    opsgenie_query: str | None = None


@dataclass(frozen=True)
class EntityMapping:
    identifier: str | dict[str, Any]
    blueprint: str
    title: str | None = None
    icon: str | None = None
    team: str | dict[str, Any] | None = None
    properties: dict[str, str] = field(default_factory=dict)
    relations: dict[str, str | dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PortMapping:
    entity: EntityMapping
    items_to_parse: str | None = None
    items_to_parse_name: str = "item"
    items_to_parse_top_level_transform: bool = True


@dataclass(frozen=True)
class ResourceConfig:
    index: int
    kind: str
    selector: Selector
    port: PortMapping

    @property
    def label(self) -> str:
        """`resources[2] (kind alert)`: how messages name this resource."""
        return f"resources[{self.index}] (kind {self.kind})"


@dataclass(frozen=True)
class MappingConfig:
    resources: tuple[ResourceConfig, ...]
    source: str
    create_missing_related_entities: bool = True
    delete_dependent_entities: bool = True
    enable_merge_entity: bool = True
    entity_deletion_threshold: float = 0.9


# --------------------------------------------------------------------------- public entry points


def load_mapping(path: Path) -> MappingConfig:
    """Read and validate a mapping file; raise `ConfigError` (one line) on the first problem."""
    return parse_mapping(read_mapping_text(path), str(path))


def parse_mapping(text: str, source: str) -> MappingConfig:
    """Validate mapping text (YAML or JSON); raise `ConfigError` (one line) on the first problem."""
    config, problems = collect_mapping(text, source)
    if problems:
        raise ConfigError(_first_problem_message(problems, source))
    assert config is not None
    return config


def read_mapping_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the mapping file: {error.strerror or error}") from error


def collect_mapping(text: str, source: str) -> tuple[MappingConfig | None, list[Problem]]:
    """Parse and validate, collecting every problem. The config holds only the valid resources
    and is None when the file as a whole is unusable (bad YAML, not a mapping, no resources)."""
    problems: list[Problem] = []
    document = _parse_document(text, problems)
    if problems:
        return None, problems
    if not isinstance(document, Mapping):
        what = "empty" if document is None else _type_name(document)
        return None, [Problem("", f"the mapping file is {what}; expected an object with a 'resources' list")]
    config = _build_config(document, source, problems)
    return config, problems


def _first_problem_message(problems: list[Problem], source: str) -> str:
    message = problems[0].for_file(source)
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s); the 'validate' command lists them all)"
    return message


# --------------------------------------------------------------------------- document level


def _parse_document(text: str, problems: list[Problem]) -> Any:
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not strict JSON: YAML (a superset) may still read it, and reports a line
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader (C or Python)
    except yaml.YAMLError as error:
        problems.append(_yaml_problem(error, text))
        return None


def _yaml_problem(error: yaml.YAMLError, source_text: str = "") -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    location = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    text = f"{context}: {detail}" if context else str(detail)
    lines = source_text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    indent = line[: len(line) - len(line.lstrip())]
    if mark is not None and "\t" in line and ("'\\t'" in text or "\t" in indent):  # a tab YAML refused
        tab = line.index("\t")
        return Problem(
            f"line {mark.line + 1}, column {tab + 1}",
            "invalid YAML: a tab character; YAML indents with spaces only, so replace the tab with spaces",
        )
    return Problem(location, "invalid YAML: " + " ".join(text.replace("'\\t'", "a tab").split()))


def _build_config(document: Mapping[str, Any], source: str, problems: list[Problem]) -> MappingConfig | None:
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.append(Problem("", f"unknown top-level key {key!r}; expected one of {_join(TOP_LEVEL_KEYS)}"))
    flags = {
        name: _bool(document, name, default=True, location="", problems=problems)
        for name in ("createMissingRelatedEntities", "deleteDependentEntities", "enableMergeEntity")
    }
    threshold = _threshold(document.get("entityDeletionThreshold", 0.9), problems)
    resources = _resources(document.get("resources"), problems)
    if resources is None:
        return None
    return MappingConfig(
        resources=tuple(resources),
        source=source,
        create_missing_related_entities=flags["createMissingRelatedEntities"],
        delete_dependent_entities=flags["deleteDependentEntities"],
        enable_merge_entity=flags["enableMergeEntity"],
        entity_deletion_threshold=threshold,
    )


def _threshold(value: Any, problems: list[Problem]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        problems.append(Problem("entityDeletionThreshold", f"must be a number from 0 to 1 (e.g. 0.9), got {value!r}"))
        return 0.9
    return float(value)


def _resources(value: Any, problems: list[Problem]) -> list[ResourceConfig] | None:
    if value is None or value == []:
        problems.append(Problem("resources", "no resources: the mapping must list at least one kind to export"))
        return None
    if not isinstance(value, list):
        problems.append(Problem("resources", f"must be a list of resources, got {_type_name(value)}"))
        return None
    built = [_resource(index, entry, problems) for index, entry in enumerate(value)]
    return [resource for resource in built if resource is not None]


# --------------------------------------------------------------------------- one resource


def _resource(index: int, entry: Any, problems: list[Problem]) -> ResourceConfig | None:
    if not isinstance(entry, Mapping):
        problems.append(Problem(f"resources[{index}]", f"must be an object, got {_type_name(entry)}"))
        return None
    before = len(problems)
    kind = _kind(index, entry.get("kind"), problems)
    label = f"resources[{index}] (kind {kind or repr(entry.get('kind'))})"
    _unknown_keys(entry, RESOURCE_KEYS, label, problems)
    selector = _selector(entry.get("selector"), label, problems)
    port = _port(entry.get("port"), label, problems)
    if len(problems) > before or kind is None or port is None:
        return None
    return ResourceConfig(index=index, kind=kind, selector=selector, port=port)


def _kind(index: int, kind: Any, problems: list[Problem]) -> str | None:
    if isinstance(kind, str):
        kind = KIND_ALIASES.get(kind, kind)
        if kind in KNOWN_KINDS:
            return kind
    what = "missing kind" if kind is None else "unknown kind"
    problems.append(Problem(f"resources[{index}] (kind {kind!r})", f"{what}; expected one of {_join(KNOWN_KINDS)}"))
    return None


def _selector(value: Any, label: str, problems: list[Problem]) -> Selector:
    if value is None:
        return Selector()
    location = f"{label} selector"
    if not isinstance(value, Mapping):
        problems.append(Problem(location, f"must be an object, got {_type_name(value)}"))
        return Selector()
    # Unknown selector keys are tolerated, as Ocean does (e.g. exportEnvVariables).
    query = _jq(value, "query", f"{label} selector.query", problems, default="true")
    params = value.get("apiQueryParams")
    if params is not None and not isinstance(params, Mapping):
        problems.append(Problem(f"{location}.apiQueryParams", f"must be an object, got {_type_name(params)}"))
        params = None
    opsgenie_query = value.get("opsgenieQuery")
    if opsgenie_query is not None and not isinstance(opsgenie_query, str):
        problems.append(Problem(f"{location}.opsgenieQuery", "must be a string (an Opsgenie search query)"))
        opsgenie_query = None
    return Selector(
        query=query or "true",
        api_query_params=dict(params) if params is not None else None,
        include_members=_bool(value, "includeMembers", default=False, location=location, problems=problems),
        opsgenie_query=opsgenie_query,
    )


def _port(value: Any, label: str, problems: list[Problem]) -> PortMapping | None:
    location = f"{label} port"
    if not isinstance(value, Mapping):
        problems.append(Problem(location, "missing or not an object; expected port.entity.mappings"))
        return None
    _unknown_keys(value, PORT_KEYS, location, problems)
    entity = value.get("entity")
    if not isinstance(entity, Mapping) or not isinstance(entity.get("mappings"), Mapping):
        problems.append(Problem(f"{location}.entity.mappings", "missing or not an object"))
        return None
    _unknown_keys(entity, ("mappings",), f"{location}.entity", problems)
    mapping = _entity_mapping(entity["mappings"], label, problems)
    items_to_parse = _jq(value, "itemsToParse", f"{label} itemsToParse", problems, default=None)
    name = value.get("itemsToParseName", "item")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{location}.itemsToParseName", "must be a non-empty string"))
        name = "item"
    transform = _bool(value, "itemsToParseTopLevelTransform", default=True, location=location, problems=problems)
    if mapping is None:
        return None
    return PortMapping(mapping, items_to_parse, name, transform)


def _entity_mapping(value: Mapping[str, Any], label: str, problems: list[Problem]) -> EntityMapping | None:
    _unknown_keys(value, MAPPING_KEYS, f"{label} mappings", problems)
    before = len(problems)
    identifier = _jq_or_search(value, "identifier", label, problems, required=True)
    blueprint = _jq(value, "blueprint", f"{label} blueprint", problems, default=None, required=True)
    title = _jq(value, "title", f"{label} title", problems, default=None)
    icon = _jq(value, "icon", f"{label} icon", problems, default=None)
    team = _jq_or_search(value, "team", label, problems, required=False)
    properties = _field_dict(value, "properties", label, problems, allow_search=False)
    relations = _field_dict(value, "relations", label, problems, allow_search=True)
    if len(problems) > before or identifier is None or blueprint is None:
        return None
    return EntityMapping(identifier, blueprint, title, icon, team, properties, relations)


def _field_dict(
    value: Mapping[str, Any], key: str, label: str, problems: list[Problem], *, allow_search: bool
) -> dict[str, Any]:
    fields = value.get(key)
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        problems.append(Problem(f"{label} {key}", f"must be an object of name: JQ, got {_type_name(fields)}"))
        return {}
    result: dict[str, Any] = {}
    for name, expression in fields.items():
        location = f"{label} {key}.{name}"
        if allow_search and isinstance(expression, Mapping):
            if _check_search_query(expression, location, problems):
                result[str(name)] = dict(expression)
        elif _is_jq(expression, location, problems, allow_search=allow_search):
            result[str(name)] = expression
    return result


# --------------------------------------------------------------------------- values


def _jq(
    value: Mapping[str, Any],
    key: str,
    location: str,
    problems: list[Problem],
    *,
    default: str | None,
    required: bool = False,
) -> str | None:
    expression = value.get(key)
    if expression is None:
        if required:
            problems.append(Problem(location, "missing; it is required (a JQ expression)"))
        return default
    return expression if _is_jq(expression, location, problems, allow_search=False) else default


def _jq_or_search(
    value: Mapping[str, Any], key: str, label: str, problems: list[Problem], *, required: bool
) -> str | dict[str, Any] | None:
    expression = value.get(key)
    location = f"{label} {key}"
    if isinstance(expression, Mapping):
        return dict(expression) if _check_search_query(expression, location, problems) else None
    return _jq(value, key, location, problems, default=None, required=required)


def _is_jq(expression: Any, location: str, problems: list[Problem], *, allow_search: bool) -> bool:
    if isinstance(expression, str) and expression.strip():
        return True
    if isinstance(expression, str):
        problems.append(Problem(location, "empty JQ expression; write null or remove the field"))
        return False
    alternatives = " or a search-query object {combinator, rules}" if allow_search else ""
    hint = ""
    if isinstance(expression, bool | int | float):
        literal = json.dumps(expression)
        hint = f" (quote it: '{literal}')"
    problems.append(
        Problem(
            location, f"must be a JQ expression written as a string{alternatives}, got {_type_name(expression)}{hint}"
        )
    )
    return False


def _check_search_query(query: Mapping[str, Any], location: str, problems: list[Problem]) -> bool:
    """Check a `{combinator, rules}` object: every leaf must be a JQ string."""
    before = len(problems)
    _unknown_keys(query, SEARCH_QUERY_KEYS, location, problems)
    _is_jq(query.get("combinator"), f"{location}.combinator", problems, allow_search=False)
    rules = query.get("rules")
    if not isinstance(rules, list) or not rules:
        problems.append(Problem(f"{location}.rules", "must be a non-empty list of rules"))
        return False
    for position, rule in enumerate(rules):
        _check_rule(rule, f"{location}.rules[{position}]", problems)
    return len(problems) == before


def _check_rule(rule: Any, location: str, problems: list[Problem]) -> None:
    if isinstance(rule, Mapping) and "combinator" in rule:
        _check_search_query(rule, location, problems)
        return
    if not isinstance(rule, Mapping):
        problems.append(Problem(location, "must be an object {property, operator, value}"))
        return
    _unknown_keys(rule, RULE_KEYS, location, problems)
    for key in RULE_KEYS:
        _is_jq(rule.get(key), f"{location}.{key}", problems, allow_search=False)


def _bool(value: Mapping[str, Any], key: str, *, default: bool, location: str, problems: list[Problem]) -> bool:
    flag = value.get(key, default)
    if isinstance(flag, bool):
        return flag
    where = f"{location}.{key}" if location else key
    problems.append(Problem(where, f"must be true or false, got {flag!r}"))
    return default


def _unknown_keys(value: Mapping[str, Any], known: tuple[str, ...], location: str, problems: list[Problem]) -> None:
    for key in value:
        if key not in known:
            problems.append(Problem(location, f"unknown key {key!r}; expected one of {_join(known)}"))


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _join(names: tuple[str, ...]) -> str:
    return ", ".join(names)

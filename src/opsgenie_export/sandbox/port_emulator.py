"""An emulator of Port's REST API (the parts a catalogue writer uses), over real HTTP.

Built against docs/port-api.md: client-credential tokens (3 h, reused until expiry), blueprints
with validation, single and bulk entity upserts with per-entity validation against the blueprint
(207 on partial success), deletes with dependents, paged per-blueprint search and unpaged
cross-blueprint search, a 1 MiB body limit, `X-Trace-Id` on every response and an optional
fixed-window rate limit with `x-ratelimit-*` headers and `Retry-After`.

Where Port's behaviour is unverified the emulator is strict, so that a client that works here
does not rely on leniency the real API may not have.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import math
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from opsgenie_export.sandbox.server import EmulatorServer, FaultPlan, Request, Response

MAX_BODY = 1_048_576
TOKEN_PATH = "/v1/auth/access_token"
BULK_MAX = 20
DELETE_MAX = 100
SEARCH_DEFAULT_LIMIT = 200
SEARCH_MAX_LIMIT = 1000
ENTITY_ID_MAX = 1000
BLUEPRINT_ID_MAX = 100
PROPERTY_ID_MAX = 100

PROPERTY_TYPES = frozenset({"string", "number", "boolean", "array", "object"})
ENTITY_KEYS = frozenset({"identifier", "title", "icon", "team", "properties", "relations"})
BLUEPRINT_KEYS = frozenset(
    {
        "identifier",
        "title",
        "description",
        "icon",
        "schema",
        "calculationProperties",
        "mirrorProperties",
        "aggregationProperties",
        "relations",
        "ownership",
        "teamInheritance",
        "changelogDestination",
    }
)
BLUEPRINT_META = frozenset({"createdAt", "createdBy", "updatedAt", "updatedBy"})
SEARCH_KEYS = frozenset({"query", "include", "exclude", "limit", "from"})
PROJECTION_ROOTS = frozenset(
    {
        "identifier",
        "title",
        "icon",
        "team",
        "blueprint",
        "properties",
        "relations",
        "createdAt",
        "updatedAt",
        "createdBy",
        "updatedBy",
    }
)
META_FIELDS = {
    "$identifier": "identifier",
    "$title": "title",
    "$blueprint": "blueprint",
    "$team": "team",
    "$icon": "icon",
    "$createdAt": "createdAt",
    "$updatedAt": "updatedAt",
}
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "identifier_taken",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limit_exceeded",
}
SILENT_STATUSES = frozenset({401, 413, 429})  # Port's error body has no `message` on these

Entity = dict[str, Any]
Predicate = Callable[[Entity], bool]
Target = tuple[str, str]  # (blueprint, identifier)


class ApiError(Exception):
    """A Port error answer: status, `error` code and message."""

    def __init__(self, status: int, code: str | None = None, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code or ERROR_CODES.get(status, "internal_error")
        self.message = message


def _invalid(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(422, code, message)


def _require(condition: bool, message: str, code: str = "invalid_request") -> None:
    if not condition:
        raise _invalid(message, code)


# -- identifiers and formats -------------------------------------------------------------------
_ENTITY_ASCII = re.compile(r"[A-Za-z0-9@_.+:\\/=-]+")
_BLUEPRINT_ASCII = re.compile(r"[A-Za-z0-9@_.+:\\/-]+")
_PROPERTY_ID = re.compile(r"[A-Za-z0-9@_=\-]+")
_ENTITY_EXTRA = frozenset("0123456789@_.+:\\/=-")
_BLUEPRINT_EXTRA = _ENTITY_EXTRA - {"="}


def _js_length(text: str) -> int:
    """Length as JavaScript (and so Port's validator) counts it: UTF-16 code units."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _identifier_ok(value: Any, ascii_pattern: re.Pattern[str], extra: frozenset[str], limit: int) -> bool:
    if not isinstance(value, str) or not value or value in (".", ".."):
        return False
    if _js_length(value) > limit:
        return False
    if ascii_pattern.fullmatch(value):
        return True
    return all(char.isalpha() or char in extra for char in value)  # \p{L} == str.isalpha()


def is_entity_identifier(value: Any) -> bool:
    """`^(?!\\.{1,2}$)[\\p{L}0-9@_.+:\\\\/=-]+$`, at most 1000 characters."""
    return _identifier_ok(value, _ENTITY_ASCII, _ENTITY_EXTRA, ENTITY_ID_MAX)


def is_blueprint_identifier(value: Any) -> bool:
    """The entity pattern without `=`, at most 100 characters."""
    return _identifier_ok(value, _BLUEPRINT_ASCII, _BLUEPRINT_EXTRA, BLUEPRINT_ID_MAX)


def is_property_identifier(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= PROPERTY_ID_MAX and _PROPERTY_ID.fullmatch(value) is not None


_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)")
_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:z|[+-](\d\d)(?::?(\d\d))?)", re.IGNORECASE)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def is_date_time(text: str) -> bool:
    """RFC 3339 date-time (what JSON Schema's `date-time` format means): a time zone is required."""
    parts = re.split(r"[Tt ]", text, maxsplit=1)
    if len(parts) != 2:
        return False
    day, moment = _DATE.fullmatch(parts[0]), _TIME.fullmatch(parts[1])
    if not day or not moment:
        return False
    try:
        date(*(int(group) for group in day.groups()))
    except ValueError:
        return False
    hour, minute, second, zone_hour, zone_minute = (int(group or 0) for group in moment.groups())
    return hour <= 23 and minute <= 59 and second <= 60 and zone_hour <= 23 and zone_minute <= 59


def is_url(text: str) -> bool:
    if not text or any(char.isspace() for char in text):
        return False
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": is_date_time,
    "url": is_url,
    "email": lambda text: _EMAIL.fullmatch(text) is not None,
}


def _type_ok(kind: Any, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


def value_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """Why `value` does not satisfy a property schema, or None when it does."""
    kind = schema.get("type")
    if not _type_ok(kind, value):
        return f"must be of type {kind}, got {type(value).__name__}"
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(value == option and type(value) is type(option) for option in enum):
        return f"must be one of {enum}, got {value!r}"
    check = _FORMATS.get(schema.get("format", ""))
    if check is not None and isinstance(value, str) and not check(value):
        return f"must match format {schema['format']!r}, got {value!r}"
    items = schema.get("items")
    if kind == "array" and isinstance(items, Mapping) and "type" in items:
        for position, item in enumerate(value):
            problem = value_problem(items, item)
            if problem:
                return f"item {position} {problem}"
    return None


# -- blueprint validation ----------------------------------------------------------------------
def validate_blueprint(blueprint: Any, known: Mapping[str, Any]) -> None:
    """Raise a 422 ApiError unless `blueprint` is a valid blueprint body; `known` are existing ids."""
    _require(isinstance(blueprint, dict), "blueprint must be an object")
    unknown = sorted(set(blueprint) - BLUEPRINT_KEYS - BLUEPRINT_META)
    _require(not unknown, f"blueprint has unknown fields: {unknown}")
    identifier = blueprint.get("identifier")
    _require(is_blueprint_identifier(identifier), f"invalid blueprint identifier {identifier!r}")
    title = blueprint.get("title")
    _require(isinstance(title, str) and 1 <= len(title) <= 100, "title is required (1-100 characters)")
    description = blueprint.get("description", "")
    _require(isinstance(description, str) and len(description) <= 200, "description must be at most 200 characters")
    _require(isinstance(blueprint.get("icon", ""), str), "icon must be a string")
    _validate_schema(blueprint.get("schema"))
    _validate_relations(blueprint.get("relations", {}), identifier, known)
    for key in ("calculationProperties", "mirrorProperties", "aggregationProperties"):
        _validate_named_objects(blueprint.get(key, {}), key)
    _validate_ownership(blueprint.get("ownership"))


def _validate_schema(schema: Any) -> None:
    _require(isinstance(schema, dict), "schema is required and must be an object")
    properties = schema.get("properties")
    _require(isinstance(properties, dict), "schema.properties is required and must be an object")
    for name, definition in properties.items():
        _require(is_property_identifier(name), f"invalid property identifier {name!r}")
        _require(isinstance(definition, dict), f"property {name!r} must be an object")
        _require(definition.get("type") in PROPERTY_TYPES, f"property {name!r} has an invalid type")
        enum = definition.get("enum")
        _require(enum is None or isinstance(enum, list), f"property {name!r}: enum must be an array")
    required = schema.get("required", [])
    _require(isinstance(required, list), "schema.required must be an array")
    for name in required:
        _require(name in properties, f"required property {name!r} is not defined in schema.properties")


def _validate_relations(relations: Any, identifier: str, known: Mapping[str, Any]) -> None:
    _require(isinstance(relations, dict), "relations must be an object")
    for name, relation in relations.items():
        _require(is_property_identifier(name), f"invalid relation identifier {name!r}")
        _require(isinstance(relation, dict), f"relation {name!r} must be an object")
        target = relation.get("target")
        _require(isinstance(target, str), f"relation {name!r} needs a target blueprint")
        _require(
            target == identifier or target in known,
            f"relation {name!r} targets blueprint {target!r}, which does not exist",
        )
        for flag in ("many", "required"):
            _require(isinstance(relation.get(flag, False), bool), f"relation {name!r}: {flag} must be a boolean")
        _require(isinstance(relation.get("title", ""), str), f"relation {name!r}: title must be a string")


def _validate_named_objects(value: Any, key: str) -> None:
    _require(isinstance(value, dict), f"{key} must be an object")
    for name, definition in value.items():
        _require(is_property_identifier(name), f"invalid {key} identifier {name!r}")
        _require(isinstance(definition, dict), f"{key}.{name} must be an object")


def _validate_ownership(ownership: Any) -> None:
    if ownership is None:
        return
    _require(isinstance(ownership, dict), "ownership must be an object")
    kind = ownership.get("type")
    _require(kind in ("Direct", "Inherited"), "ownership.type must be Direct or Inherited")
    if kind == "Inherited":
        _require(isinstance(ownership.get("path"), str), "Inherited ownership needs a path")


# -- entity validation -------------------------------------------------------------------------
@dataclass
class UpsertFlags:
    upsert: bool
    merge: bool
    create_missing: bool
    validation_only: bool

    @classmethod
    def parse(cls, request: Request) -> UpsertFlags:
        return cls(
            upsert=_bool_arg(request, "upsert", required=True),
            merge=_bool_arg(request, "merge"),
            create_missing=_bool_arg(request, "create_missing_related_entities"),
            validation_only=_bool_arg(request, "validation_only"),
        )


@dataclass
class Candidate:
    """A validated entity body: its identifier, the supplied fields and its relation targets."""

    identifier: str
    fields: dict[str, Any]
    targets: list[tuple[str, str, str]]  # (relation, target blueprint, target identifier)


def _entity_invalid(message: str) -> ApiError:
    return _invalid(message, "invalid_entity")


def parse_entity(raw: Any, blueprint: Mapping[str, Any]) -> Candidate:
    if not isinstance(raw, dict):
        raise _entity_invalid("entity must be an object")
    unknown = sorted(set(raw) - ENTITY_KEYS)
    if unknown:
        raise _entity_invalid(f"entity has unknown fields: {unknown}")
    identifier = raw.get("identifier")
    if not isinstance(identifier, str):
        raise _entity_invalid("identifier is required and must be a string")
    if not is_entity_identifier(identifier):
        raise _entity_invalid(f"identifier {identifier[:100]!r} does not match the identifier pattern")
    fields: dict[str, Any] = {}
    for key in ("title", "icon"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise _entity_invalid(f"{key} must be a string")
            fields[key] = raw[key]
    if "team" in raw:
        fields["team"] = _parse_team(raw["team"])
    if "properties" in raw:
        fields["properties"] = _parse_properties(raw["properties"], blueprint)
    targets: list[tuple[str, str, str]] = []
    if "relations" in raw:
        fields["relations"], targets = _parse_relations(raw["relations"], blueprint)
    return Candidate(identifier, fields, targets)


def _parse_team(team: Any) -> list[str]:
    if team is None:
        return []
    if isinstance(team, str):
        return [team]
    if isinstance(team, list) and all(isinstance(name, str) for name in team):
        return list(team)
    raise _entity_invalid("team must be a string or an array of strings")


def _parse_properties(values: Any, blueprint: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise _entity_invalid("properties must be an object")
    schema = blueprint["schema"]["properties"]
    for name, value in values.items():
        definition = schema.get(name)
        if definition is None:
            raise _entity_invalid(f"property {name!r} is not defined in blueprint {blueprint['identifier']!r}")
        problem = None if value is None else value_problem(definition, value)
        if problem:
            raise _entity_invalid(f"property {name!r} {problem}")
    return dict(values)


def _parse_relations(values: Any, blueprint: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    if not isinstance(values, dict):
        raise _entity_invalid("relations must be an object")
    definitions = blueprint.get("relations") or {}
    targets: list[tuple[str, str, str]] = []
    for name, value in values.items():
        definition = definitions.get(name)
        if definition is None:
            raise _entity_invalid(f"relation {name!r} is not defined in blueprint {blueprint['identifier']!r}")
        if value is None:
            continue
        if isinstance(value, dict):
            raise _entity_invalid(f"relation {name!r}: search-query values are not supported by the emulator")
        many = bool(definition.get("many"))
        if many and not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise _entity_invalid(f"relation {name!r} is many: its value must be an array of identifiers")
        if not many and not isinstance(value, str):
            raise _entity_invalid(f"relation {name!r} is not many: its value must be one identifier")
        for target in value if many else [value]:
            if not is_entity_identifier(target):
                raise _entity_invalid(f"relation {name!r}: {target[:100]!r} is not a valid identifier")
            targets.append((name, definition["target"], target))
    return dict(values), targets


def _empty_fields() -> dict[str, Any]:
    return {"title": None, "icon": None, "team": [], "properties": {}, "relations": {}}


def combine(existing: Entity | None, fields: Mapping[str, Any], merge: bool) -> dict[str, Any]:
    """The new title/icon/team/properties/relations: replaced wholesale, or merged key by key."""
    if existing is None or not merge:
        return {**_empty_fields(), **fields}
    combined = {key: existing.get(key, default) for key, default in _empty_fields().items()}
    for key, value in fields.items():
        combined[key] = {**(combined[key] or {}), **value} if key in ("properties", "relations") else value
    return combined


def check_required(blueprint: Mapping[str, Any], entity: Mapping[str, Any]) -> None:
    for name in blueprint["schema"].get("required", []):
        if entity["properties"].get(name) is None:
            raise _entity_invalid(f"required property {name!r} is missing")
    for name, relation in (blueprint.get("relations") or {}).items():
        if relation.get("required") and entity["relations"].get(name) in (None, []):
            raise _entity_invalid(f"required relation {name!r} is missing")


# -- query parameters and bodies ---------------------------------------------------------------
def _bool_arg(request: Request, name: str, *, required: bool = False) -> bool:
    raw = request.arg(name)
    if raw is None:
        if required:
            raise _invalid(f"querystring must have required property '{name}'")
        return False
    if raw not in ("true", "false"):
        raise _invalid(f"querystring/{name} must be boolean ('true' or 'false'), got {raw!r}")
    return raw == "true"


def _json_body(request: Request) -> Any:
    if not request.body:
        return None
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", f"Malformed JSON body: {exc}") from None


def _json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = _json_body(request)
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object")
    return body


def _reject_unknown(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    _require(not unknown, f"body has unknown fields: {unknown}")


# -- search: rules -----------------------------------------------------------------------------
@dataclass
class Query:
    match: Predicate
    identifiers: set[str] | None = None  # narrowing from a top-level `and`, for speed only
    blueprints: set[str] | None = None


def _always(entity: Entity) -> bool:
    return True


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _equals(field: Any, value: Any) -> bool:
    if isinstance(field, list) and not isinstance(value, list):
        return value in field
    return bool(field == value)


def _pool(values: list[Any]) -> Any:
    try:
        return set(values)
    except TypeError:
        return values


def _among(field: Any, pool: Any) -> bool:
    if isinstance(field, list):
        return any(_hashable_in(item, pool) for item in field)
    return _hashable_in(field, pool)


def _hashable_in(item: Any, pool: Any) -> bool:
    try:
        return item in pool
    except TypeError:
        return False


def _contains(field: Any, value: Any) -> bool:
    if isinstance(field, str) and isinstance(value, str):
        return value in field
    return isinstance(field, list) and value in field


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    compare: dict[str, Callable[[Any, Any], bool]] = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }

    def check(field: Any, value: Any) -> bool:
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (field, value))
        strings = isinstance(field, str) and isinstance(value, str)
        return (numbers or strings) and compare[op](field, value)

    return check


def _text(test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    return lambda field, value: isinstance(field, str) and test(field, value)


# operator -> (kind of value required, test(field, value))
_OPERATORS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "=": ("any", _equals),
    "!=": ("any", lambda field, value: not _equals(field, value)),
    "in": ("list", _among),
    "notIn": ("list", lambda field, pool: not _among(field, pool)),
    "contains": ("any", _contains),
    "doesNotContains": ("any", lambda field, value: not _contains(field, value)),
    "containsAny": ("list", lambda field, pool: any(_contains(field, item) for item in pool)),
    "beginsWith": ("string", _text(str.startswith)),
    "doesNotBeginsWith": ("string", lambda field, value: not _text(str.startswith)(field, value)),
    "endsWith": ("string", _text(str.endswith)),
    "doesNotEndsWith": ("string", lambda field, value: not _text(str.endswith)(field, value)),
    "isEmpty": ("none", lambda field, _value: _is_empty(field)),
    "isNotEmpty": ("none", lambda field, _value: not _is_empty(field)),
    **{op: ("scalar", _ordered(op)) for op in (">", ">=", "<", "<=")},
}
_UNSUPPORTED_OPERATORS = frozenset(
    {"between", "notBetween", "isExpired", "isNotExpired", "matchAny", "relatedTo", "propertySchema"}
)


def compile_query(node: Any, known: set[str] | None) -> Query:
    """Compile a `{combinator, rules}` query; `known` = property ids allowed (None: any)."""
    if node is None:
        return Query(_always)
    _require(isinstance(node, dict) and "combinator" in node, "query must be {combinator, rules}")
    identifiers, blueprints = _narrowing(node)
    return Query(_compile_group(node, known), identifiers, blueprints)


def _compile_node(node: Any, known: set[str] | None) -> Predicate:
    _require(isinstance(node, dict), "every rule must be an object")
    if "combinator" in node or "rules" in node:
        return _compile_group(node, known)
    return _compile_rule(node, known)


def _compile_group(node: Mapping[str, Any], known: set[str] | None) -> Predicate:
    combinator, rules = node.get("combinator"), node.get("rules")
    _require(combinator in ("and", "or"), f"combinator must be 'and' or 'or', got {combinator!r}")
    _require(isinstance(rules, list), "rules must be an array")
    predicates = [_compile_node(rule, known) for rule in rules]
    if not predicates:
        return _always
    if combinator == "and":
        return lambda entity: all(predicate(entity) for predicate in predicates)
    return lambda entity: any(predicate(entity) for predicate in predicates)


def _compile_rule(rule: Mapping[str, Any], known: set[str] | None) -> Predicate:
    operator = rule.get("operator")
    if operator in _UNSUPPORTED_OPERATORS:
        raise _invalid(f"operator {operator!r} is not supported by the emulator")
    _require(isinstance(operator, str) and operator in _OPERATORS, f"unknown operator {operator!r}")
    kind, test = _OPERATORS[operator]
    getter = _getter(rule.get("property"), known)
    value = _rule_value(rule, kind, operator)
    return lambda entity: test(getter(entity), value)


def _rule_value(rule: Mapping[str, Any], kind: str, operator: str) -> Any:
    if kind == "none":
        return None
    _require("value" in rule, f"operator {operator!r} needs a value")
    value = rule["value"]
    if kind == "list":
        _require(isinstance(value, list), f"operator {operator!r} needs an array value")
        return _pool(value) if operator in ("in", "notIn") else value
    if kind == "string":
        _require(isinstance(value, str), f"operator {operator!r} needs a string value")
    if kind == "scalar":
        _require(isinstance(value, str | int | float) and not isinstance(value, bool), f"{operator!r} needs a value")
    return value


def _getter(name: Any, known: set[str] | None) -> Callable[[Entity], Any]:
    _require(isinstance(name, str), "every rule needs a property")
    if name.startswith("$"):
        key = META_FIELDS.get(name)
        _require(key is not None, f"unknown meta-property {name!r}")
        return lambda entity: entity.get(key)  # type: ignore[arg-type]
    _require(known is None or name in known, f"property {name!r} is not defined in the blueprint")

    def get(entity: Entity) -> Any:
        properties = entity.get("properties") or {}
        if name in properties:
            return properties[name]
        return (entity.get("relations") or {}).get(name)

    return get


def _exact_values(rule: Any) -> set[str] | None:
    if not isinstance(rule, dict):
        return None
    value, operator = rule.get("value"), rule.get("operator")
    if operator == "=" and isinstance(value, str):
        return {value}
    if operator == "in" and isinstance(value, list) and all(isinstance(item, str) for item in value):
        return set(value)
    return None


def _narrowing(node: Mapping[str, Any]) -> tuple[set[str] | None, set[str] | None]:
    """Identifier/blueprint sets implied by a top-level `and` of `=`/`in` rules."""
    found: dict[str, set[str] | None] = {"$identifier": None, "$blueprint": None}
    rules = node.get("rules")
    if node.get("combinator") != "and" or not isinstance(rules, list):
        return None, None
    for rule in rules:
        values = _exact_values(rule)
        name = rule.get("property") if isinstance(rule, dict) else None
        if values is not None and name in found:
            previous = found[name]
            found[name] = values if previous is None else previous & values
    return found["$identifier"], found["$blueprint"]


# -- search: projection and cursors ------------------------------------------------------------
def parse_paths(value: Any, name: str) -> list[list[str]]:
    if value is None:
        return []
    _require(isinstance(value, list) and all(isinstance(path, str) for path in value), f"{name} must be strings")
    paths = [path.split(".") for path in value]
    for parts in paths:
        _require(parts[0] in PROJECTION_ROOTS and all(parts), f"{name}: unknown path {'.'.join(parts)!r}")
    return paths


def _copy_path(source: Mapping[str, Any], target: dict[str, Any], parts: list[str]) -> None:
    value: Any = source
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            value = _MISSING
            break
        value = value[part]
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, dict) else {}  # never alias stored dicts
        node = child
    if value is not _MISSING:
        node[parts[-1]] = value


def _drop_path(target: dict[str, Any], parts: list[str]) -> None:
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            return
        node[part] = child = dict(child)
        node = child
    node.pop(parts[-1], None)


_MISSING = object()


def project(entity: Entity, include: list[list[str]], exclude: list[list[str]]) -> Entity:
    """The entity restricted to `include` paths (identifier always kept) minus `exclude` paths."""
    if include:
        out: Entity = {"identifier": entity["identifier"]}
        for parts in include:
            _copy_path(entity, out, parts)
    else:
        out = dict(entity)
    for parts in exclude:
        if parts != ["identifier"]:
            _drop_path(out, parts)
    return out


def encode_cursor(blueprint: str, after: str) -> str:
    raw = json.dumps([blueprint, after], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: Any, blueprint: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        owner, after = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (TypeError, ValueError, AttributeError):
        raise _invalid("from is not a valid search cursor") from None
    _require(owner == blueprint and isinstance(after, str), "from is a cursor of another search")
    return after


# -- rate limit --------------------------------------------------------------------------------
class RateWindow:
    """A fixed window: `limit` requests per `period` seconds, starting at the first request."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.start: float | None = None
        self.used = 0

    def _current(self, now: float) -> bool:
        return self.start is not None and now < self.start + self.period

    def take(self, now: float) -> bool:
        if not self._current(now):
            self.start, self.used = now, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def reset_at(self, now: float) -> float:
        return self.start + self.period if self._current(now) and self.start is not None else now + self.period

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.reset_at(now) - now))

    def headers(self, now: float) -> dict[str, str]:
        remaining = self.limit - self.used if self._current(now) else self.limit
        period = int(self.period) if float(self.period).is_integer() else self.period
        return {
            "x-ratelimit-period": str(period),
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": str(math.ceil(self.reset_at(now))),
        }


def _b64_json(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


# -- the emulator ------------------------------------------------------------------------------
class PortEmulator(EmulatorServer):
    name = "port-emulator"

    def __init__(
        self,
        *,
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",
        token_ttl: int = 10800,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        rate_limit: tuple[int, float] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(latency=latency, faults=faults)
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.rate_limit = rate_limit
        self.now = now
        self.blueprints: dict[str, dict[str, Any]] = {}
        self.entities: dict[str, dict[str, Entity]] = {}
        self.throttled = 0
        self._writes = 0
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}  # token -> expiry (epoch seconds by `now`)
        self._current_token: str | None = None
        self._window = RateWindow(*rate_limit) if rate_limit else None
        self._sorted: dict[str, list[str]] = {}
        self._referrers: dict[Target, set[Target]] = {}
        self._register_routes()

    def start(self, tls: ssl.SSLContext | None = None) -> PortEmulator:
        super().start(tls)
        return self

    def __enter__(self) -> PortEmulator:
        return self.start()

    def _register_routes(self) -> None:
        bp = r"/v1/blueprints/(?P<blueprint>[^/]+)"
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("POST", TOKEN_PATH, self._access_token),
            ("GET", r"/v1/blueprints", self._list_blueprints),
            ("POST", r"/v1/blueprints", self._create_blueprint),
            ("POST", r"/v1/entities/search", self._search_all),
            ("POST", rf"{bp}/entities/bulk", self._upsert_bulk),
            ("POST", rf"{bp}/entities/search", self._search_blueprint),
            ("POST", rf"{bp}/bulk/entities/delete", self._delete_bulk),
            ("GET", rf"{bp}/entities-count", self._count_entities),
            ("POST", rf"{bp}/entities", self._upsert_one),
            ("GET", rf"{bp}/entities", self._list_entities),
            ("GET", rf"{bp}/entities/(?P<identifier>[^/]+)", self._get_entity),
            ("DELETE", rf"{bp}/entities/(?P<identifier>[^/]+)", self._delete_one),
            ("GET", bp, self._get_blueprint),
            ("PATCH", bp, self._patch_blueprint),
            ("PUT", bp, self._put_blueprint),
            ("DELETE", bp, self._delete_blueprint),
        ]
        for method, pattern, handler in routes:
            self.add_route(method, pattern, handler)

    # -- public helpers ------------------------------------------------------------------------
    def add_blueprint(self, blueprint: Mapping[str, Any]) -> dict[str, Any]:
        """Seed a blueprint without HTTP (validated as POST would; raises ValueError)."""
        body = copy.deepcopy(dict(blueprint))
        with self._lock:
            try:
                validate_blueprint(body, self.blueprints)
            except ApiError as exc:
                raise ValueError(exc.message) from None
            stored = self._stamp_blueprint(body, None, "sandbox-seed")
            self.blueprints[stored["identifier"]] = stored
            self.entities.setdefault(stored["identifier"], {})
            self._reindex()
            return copy.deepcopy(stored)

    def put_entity(self, blueprint: str, entity: Mapping[str, Any]) -> Entity:
        """Seed an entity without HTTP or validation (the blueprint must exist)."""
        with self._lock:
            if blueprint not in self.blueprints:
                raise KeyError(f"unknown blueprint {blueprint!r}")
            stamp = self._timestamp()
            stored = {**_empty_fields(), "createdAt": stamp, "updatedAt": stamp, **copy.deepcopy(dict(entity))}
            stored["blueprint"] = blueprint
            self._store(blueprint, stored)
            return copy.deepcopy(stored)

    def entity(self, blueprint: str, identifier: str) -> Entity | None:
        with self._lock:
            found = self.entities.get(blueprint, {}).get(identifier)
            return copy.deepcopy(found) if found is not None else None

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._current_token = None

    def writes(self) -> int:
        """Entity-writing requests handled (bulk/single upserts, deletes), including failed ones."""
        with self._lock:
            return self._writes

    # -- hooks ---------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except ApiError as error:
            return self._error(error.status, error.code, error.message)

    def error_response(self, status: int, message: str) -> Response:
        return self._error(status, ERROR_CODES.get(status, "internal_error"), message)

    @staticmethod
    def _error(status: int, code: str, message: str = "") -> Response:
        body: dict[str, Any] = {"ok": False, "error": code}
        if message and status not in SILENT_STATUSES:
            body["message"] = message
        return Response(status, body)

    def before_dispatch(self, request: Request) -> Response | None:
        if len(request.body) > MAX_BODY:
            return self._error(413, "payload_too_large")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.body and content_type != "application/json":
            return self._error(415, "unsupported_media_type", f"Unsupported Content-Type {content_type!r}")
        if request.path == TOKEN_PATH:
            return None
        with self._lock:
            if not self._authorised(request.headers.get("authorization", "")):
                return self._error(401, "unauthorized")
            return self._throttle()

    def _authorised(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        expiry = self._tokens.get(token) if scheme == "Bearer" else None
        return expiry is not None and self.now() < expiry

    def _throttle(self) -> Response | None:
        if self._window is None:
            return None
        now = self.now()
        if self._window.take(now):
            return None
        self.throttled += 1
        headers = {"Retry-After": str(self._window.retry_after(now))}
        return Response(429, {"ok": False, "error": "rate_limit_exceeded"}, headers)

    def decorate(self, request: Request, response: Response) -> None:
        response.headers.setdefault("X-Trace-Id", uuid.uuid4().hex)
        if response.body is None and response.status >= 400:  # a fault plan's forced status
            response.body = self._error(
                response.status, ERROR_CODES.get(response.status, "internal_error"), _phrase(response.status)
            ).body
        if self._window is not None:
            with self._lock:
                for name, value in self._window.headers(self.now()).items():
                    response.headers.setdefault(name, value)

    # -- state internals -----------------------------------------------------------------------
    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self.now(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _blueprint(self, identifier: str) -> dict[str, Any]:
        found = self.blueprints.get(unquote(identifier))
        if found is None:
            raise ApiError(404, "not_found", f"Blueprint {unquote(identifier)!r} was not found")
        return found

    def _stamp_blueprint(self, body: dict[str, Any], previous: Mapping[str, Any] | None, agent: str) -> dict[str, Any]:
        stored = {key: value for key, value in body.items() if key not in BLUEPRINT_META}
        stored.setdefault("relations", {})
        for key in ("calculationProperties", "mirrorProperties", "aggregationProperties"):
            stored.setdefault(key, {})
        stored["schema"] = {"required": [], **stored["schema"]}
        stamp = self._timestamp()
        stored["createdAt"] = previous["createdAt"] if previous else stamp
        stored["createdBy"] = previous["createdBy"] if previous else agent
        stored["updatedAt"], stored["updatedBy"] = stamp, agent
        return stored

    def _outgoing(self, blueprint: str, entity: Mapping[str, Any]) -> Iterator[Target]:
        definitions = (self.blueprints.get(blueprint) or {}).get("relations") or {}
        for name, value in (entity.get("relations") or {}).items():
            definition = definitions.get(name)
            if definition is None or value is None:
                continue
            for target in value if isinstance(value, list) else [value]:
                if isinstance(target, str):
                    yield definition["target"], target

    def _index(self, blueprint: str, entity: Mapping[str, Any]) -> None:
        source = (blueprint, entity["identifier"])
        for target in self._outgoing(blueprint, entity):
            self._referrers.setdefault(target, set()).add(source)

    def _unindex(self, blueprint: str, entity: Mapping[str, Any]) -> None:
        source = (blueprint, entity["identifier"])
        for target in self._outgoing(blueprint, entity):
            self._referrers.get(target, set()).discard(source)

    def _reindex(self) -> None:
        self._referrers = {}
        for blueprint, store in self.entities.items():
            for entity in store.values():
                self._index(blueprint, entity)

    def _sorted_ids(self, blueprint: str) -> list[str]:
        store = self.entities.get(blueprint, {})
        ids = self._sorted.get(blueprint)
        if ids is None or len(ids) != len(store):  # also heals after direct edits of `entities`
            ids = self._sorted[blueprint] = sorted(store)
        return ids

    def _store(self, blueprint: str, entity: Entity) -> None:
        """Write one entity (copy-on-write: stored dicts are never mutated afterwards)."""
        store = self.entities.setdefault(blueprint, {})
        old = store.get(entity["identifier"])
        if old is not None:
            self._unindex(blueprint, old)
        elif (ids := self._sorted.get(blueprint)) is not None:
            bisect.insort(ids, entity["identifier"])
        store[entity["identifier"]] = entity
        self._index(blueprint, entity)

    def _remove(self, blueprint: str, identifier: str) -> None:
        entity = self.entities[blueprint].pop(identifier)
        self._unindex(blueprint, entity)
        ids = self._sorted.get(blueprint)
        if ids is not None:
            position = bisect.bisect_left(ids, identifier)
            if position < len(ids) and ids[position] == identifier:
                del ids[position]

    # -- auth ----------------------------------------------------------------------------------
    def _access_token(self, request: Request) -> Response:
        body = _json_object(request)
        client_id, client_secret = body.get("clientId"), body.get("clientSecret")
        _require(isinstance(client_id, str), "body must have required property 'clientId' (a string)")
        _require(isinstance(client_secret, str), "body must have required property 'clientSecret' (a string)")
        valid_id = secrets.compare_digest(client_id.encode(), self.client_id.encode())
        if not (valid_id and secrets.compare_digest(client_secret.encode(), self.client_secret.encode())):
            return self._error(401, "unauthorized")
        with self._lock:
            token, expiry = self._issue()
            remaining = round(expiry - self.now())
        body = {"ok": True, "accessToken": token, "expiresIn": remaining, "tokenType": "Bearer"}
        return Response(200, body)

    def _issue(self) -> tuple[str, float]:
        now = self.now()
        current = self._current_token
        if current is not None and now < self._tokens.get(current, 0.0):
            return current, self._tokens[current]
        expiry = now + self.token_ttl
        header = _b64_json({"alg": "HS256", "typ": "JWT"})
        claims = _b64_json({"isMachine": True, "iat": int(now), "exp": int(expiry), "jti": secrets.token_hex(8)})
        token = f"{header}.{claims}.{secrets.token_urlsafe(32)}"
        self._tokens[token] = expiry
        self._current_token = token
        return token, expiry

    # -- blueprints ----------------------------------------------------------------------------
    def _list_blueprints(self, request: Request) -> Response:
        with self._lock:
            return Response(200, {"ok": True, "blueprints": list(self.blueprints.values())})

    def _get_blueprint(self, request: Request, blueprint: str) -> Response:
        with self._lock:
            return Response(200, {"ok": True, "blueprint": self._blueprint(blueprint)})

    def _create_blueprint(self, request: Request) -> Response:
        body = _json_object(request)
        with self._lock:
            validate_blueprint(body, self.blueprints)
            if body["identifier"] in self.blueprints:
                raise ApiError(409, "identifier_taken", f"A blueprint {body['identifier']!r} already exists")
            stored = self._stamp_blueprint(body, None, _agent(request))
            self.blueprints[stored["identifier"]] = stored
            self.entities.setdefault(stored["identifier"], {})
        return Response(201, {"ok": True, "blueprint": stored})

    def _patch_blueprint(self, request: Request, blueprint: str) -> Response:
        body = _json_object(request)
        with self._lock:
            previous = self._blueprint(blueprint)
            merged = {key: value for key, value in previous.items() if key not in BLUEPRINT_META}
            return self._replace_blueprint(request, previous, {**merged, **body})

    def _put_blueprint(self, request: Request, blueprint: str) -> Response:
        body = _json_object(request)
        with self._lock:
            previous = self._blueprint(blueprint)
            return self._replace_blueprint(request, previous, {"identifier": previous["identifier"], **body})

    def _replace_blueprint(self, request: Request, previous: Mapping[str, Any], body: dict[str, Any]) -> Response:
        _require(body.get("identifier") == previous["identifier"], "the blueprint identifier cannot be changed")
        validate_blueprint(body, self.blueprints)
        stored = self._stamp_blueprint(body, previous, _agent(request))
        self.blueprints[stored["identifier"]] = stored
        self._reindex()  # relation targets may have changed
        return Response(200, {"ok": True, "blueprint": stored})

    def _delete_blueprint(self, request: Request, blueprint: str) -> Response:
        with self._lock:
            identifier = self._blueprint(blueprint)["identifier"]
            if self.entities.get(identifier):
                raise _invalid(f"Blueprint {identifier!r} still has entities", "has_dependents")
            for other in self.blueprints.values():
                targets = {relation.get("target") for relation in (other.get("relations") or {}).values()}
                if other["identifier"] != identifier and identifier in targets:
                    raise _invalid(
                        f"Blueprint {other['identifier']!r} has relations to {identifier!r}", "has_dependents"
                    )
            del self.blueprints[identifier]
            self.entities.pop(identifier, None)
            self._sorted.pop(identifier, None)
        return Response(200, {"ok": True})

    # -- entity writes -------------------------------------------------------------------------
    def _upsert_one(self, request: Request, blueprint: str) -> Response:
        body = _json_body(request)
        flags = UpsertFlags.parse(request)
        with self._lock:
            self._writes += 1
            definition = self._blueprint(blueprint)
            entity, _created = self._upsert(definition, body, flags, _agent(request))
        return Response(201, {"ok": True, "entity": entity})

    def _upsert_bulk(self, request: Request, blueprint: str) -> Response:
        body = _json_object(request)
        flags = UpsertFlags.parse(request)
        _reject_unknown(body, ["entities"])
        items = body.get("entities")
        _require(isinstance(items, list), "body must have required property 'entities' (an array)")
        _require(1 <= len(items) <= BULK_MAX, f"entities must hold 1 to {BULK_MAX} items, got {len(items)}")
        agent = _agent(request)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self._lock:
            self._writes += 1
            definition = self._blueprint(blueprint)
            for index, raw in enumerate(items):
                try:
                    entity, created = self._upsert(definition, raw, flags, agent)
                except ApiError as error:
                    errors.append(_bulk_error(raw, index, error))
                    continue
                results.append(
                    {"created": created, "identifier": entity["identifier"], "index": index, "additionalData": {}}
                )
        return Response(207 if errors else 200, {"ok": True, "entities": results, "errors": errors})

    def _upsert(self, blueprint: Mapping[str, Any], raw: Any, flags: UpsertFlags, agent: str) -> tuple[Entity, bool]:
        candidate = parse_entity(raw, blueprint)
        name = blueprint["identifier"]
        existing = self.entities.setdefault(name, {}).get(candidate.identifier)
        if existing is not None and not flags.upsert:
            raise ApiError(409, "identifier_taken", f"Entity {candidate.identifier!r} already exists in {name!r}")
        fields = combine(existing, candidate.fields, flags.merge)
        check_required(blueprint, fields)
        missing = self._missing_targets(candidate.targets)
        if missing and not flags.create_missing:
            relation, target_bp, target = missing[0]
            raise ApiError(
                404,
                "not_found",
                f"Related entity {target!r} of blueprint {target_bp!r} (relation {relation!r}) was not found",
            )
        stamp = self._timestamp()
        entity: Entity = {"identifier": candidate.identifier, **fields, "blueprint": name}
        entity["createdAt"] = existing["createdAt"] if existing and "createdAt" in existing else stamp
        if existing is None or "createdBy" in existing:
            entity["createdBy"] = existing["createdBy"] if existing else agent
        entity["updatedAt"], entity["updatedBy"] = stamp, agent
        if not flags.validation_only:
            for _relation, target_bp, target in missing:
                self._create_stub(target_bp, target, stamp, agent)
            self._store(name, entity)
        return entity, existing is None

    def _missing_targets(self, targets: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        missing: dict[Target, tuple[str, str, str]] = {}
        for relation, target_bp, target in targets:
            if target not in self.entities.get(target_bp, {}):
                missing.setdefault((target_bp, target), (relation, target_bp, target))
        return list(missing.values())

    def _create_stub(self, blueprint: str, identifier: str, stamp: str, agent: str) -> None:
        if identifier in self.entities.get(blueprint, {}):
            return
        stub = {"identifier": identifier, **_empty_fields(), "blueprint": blueprint}
        stub.update(createdAt=stamp, updatedAt=stamp, createdBy=agent, updatedBy=agent)
        self._store(blueprint, stub)

    # -- entity deletes ------------------------------------------------------------------------
    def _delete_one(self, request: Request, blueprint: str, identifier: str) -> Response:
        cascade = _bool_arg(request, "delete_dependents", required=True)
        with self._lock:
            self._writes += 1
            name = self._blueprint(blueprint)["identifier"]
            target = unquote(identifier)
            if target not in self.entities.get(name, {}):
                raise ApiError(404, "not_found", f"Entity {target!r} of blueprint {name!r} was not found")
            self._delete({(name, target)}, cascade)
        return Response(200, {"ok": True})

    def _delete_bulk(self, request: Request, blueprint: str) -> Response:
        body = _json_object(request)
        cascade = _bool_arg(request, "delete_dependents", required=True)
        _reject_unknown(body, ["entities"])
        ids = body.get("entities")
        _require(
            isinstance(ids, list) and all(isinstance(item, str) for item in ids),
            "body must have required property 'entities' (an array of identifiers)",
        )
        _require(1 <= len(ids) <= DELETE_MAX, f"entities must hold 1 to {DELETE_MAX} identifiers, got {len(ids)}")
        with self._lock:
            self._writes += 1
            name = self._blueprint(blueprint)["identifier"]
            unknown = [item for item in ids if item not in self.entities.get(name, {})]
            if unknown:
                raise ApiError(404, "not_found", f"Entities of blueprint {name!r} not found: {unknown[:10]}")
            self._delete({(name, item) for item in ids}, cascade)
        return Response(200, {"ok": True, "deletedEntities": list(dict.fromkeys(ids))})

    def _delete(self, targets: set[Target], cascade: bool) -> None:
        """Delete `targets`, plus (recursively) their dependents when `cascade`; else fail on any."""
        doomed = set(targets)
        frontier = list(targets)
        while frontier:
            node = frontier.pop()
            for referrer in sorted(self._referrers.get(node, ())):
                if referrer in doomed:
                    continue
                if not cascade:
                    raise _invalid(
                        f"Entity {node[1]!r} of blueprint {node[0]!r} has dependents (e.g. {referrer[1]!r} of "
                        f"blueprint {referrer[0]!r}); use delete_dependents=true",
                        "has_dependents",
                    )
                doomed.add(referrer)
                frontier.append(referrer)
        for blueprint, identifier in doomed:
            if identifier in self.entities.get(blueprint, {}):
                self._remove(blueprint, identifier)

    # -- entity reads --------------------------------------------------------------------------
    def _get_entity(self, request: Request, blueprint: str, identifier: str) -> Response:
        with self._lock:
            name = self._blueprint(blueprint)["identifier"]
            found = self.entities.get(name, {}).get(unquote(identifier))
            if found is None:
                raise ApiError(404, "not_found", f"Entity {unquote(identifier)!r} of blueprint {name!r} was not found")
            return Response(200, {"ok": True, "entity": dict(found)})

    def _list_entities(self, request: Request, blueprint: str) -> Response:
        include = parse_paths(request.query.get("include"), "include")
        exclude = parse_paths(request.query.get("exclude"), "exclude")
        with self._lock:
            name = self._blueprint(blueprint)["identifier"]
            store = self.entities.get(name, {})
            entities = [project(store[ident], include, exclude) for ident in self._sorted_ids(name)]
        return Response(200, {"ok": True, "entities": entities})

    def _count_entities(self, request: Request, blueprint: str) -> Response:
        with self._lock:
            name = self._blueprint(blueprint)["identifier"]
            return Response(200, {"ok": True, "count": len(self.entities.get(name, {}))})

    def _search_blueprint(self, request: Request, blueprint: str) -> Response:
        body = _json_object(request, required=False)
        _reject_unknown(body, SEARCH_KEYS)
        limit = body.get("limit", SEARCH_DEFAULT_LIMIT)
        _require(
            isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= SEARCH_MAX_LIMIT,
            f"limit must be an integer from 1 to {SEARCH_MAX_LIMIT}",
        )
        include = parse_paths(body.get("include"), "include")
        exclude = parse_paths(body.get("exclude"), "exclude")
        with self._lock:
            definition = self._blueprint(blueprint)
            name = definition["identifier"]
            known = set(definition["schema"]["properties"]) | set(definition.get("relations") or {})
            known |= set(definition.get("calculationProperties") or {})
            query = compile_query(body.get("query"), known)
            after = decode_cursor(body["from"], name) if body.get("from") is not None else None
            page, more = self._page(name, query, after, limit)
            entities = [project(entity, include, exclude) for entity in page]
        result: dict[str, Any] = {"ok": True, "entities": entities}
        if more:
            result["next"] = encode_cursor(name, page[-1]["identifier"])
        return Response(200, result)

    def _candidates(self, blueprint: str, query: Query) -> list[str]:
        if query.identifiers is None:
            return self._sorted_ids(blueprint)
        store = self.entities.get(blueprint, {})
        return sorted(ident for ident in query.identifiers if ident in store)

    def _page(self, blueprint: str, query: Query, after: str | None, limit: int) -> tuple[list[Entity], bool]:
        if query.blueprints is not None and blueprint not in query.blueprints:
            return [], False
        ids = self._candidates(blueprint, query)
        store = self.entities.get(blueprint, {})
        start = bisect.bisect_right(ids, after) if after is not None else 0
        page: list[Entity] = []
        for position in range(start, len(ids)):
            entity = store.get(ids[position])
            if entity is None or not query.match(entity):
                continue
            if len(page) == limit:
                return page, True
            page.append(entity)
        return page, False

    def _search_all(self, request: Request) -> Response:
        body = _json_object(request)
        include = parse_paths(request.query.get("include"), "include")
        exclude = parse_paths(request.query.get("exclude"), "exclude")
        _reject_unknown(body, ["combinator", "rules"])
        query = compile_query(body, None)
        entities: list[Entity] = []
        with self._lock:
            names = sorted(name for name in self.blueprints if query.blueprints is None or name in query.blueprints)
            for name in names:
                store = self.entities.get(name, {})
                for ident in self._candidates(name, query):
                    entity = store[ident]
                    if query.match(entity):
                        entities.append(project(entity, include, exclude))
        return Response(200, {"ok": True, "entities": entities, "matchingBlueprints": names})


def _agent(request: Request) -> str:
    return request.headers.get("user-agent", "")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _bulk_error(raw: Any, index: int, error: ApiError) -> dict[str, Any]:
    identifier = raw.get("identifier") if isinstance(raw, dict) else None
    return {
        "identifier": identifier if isinstance(identifier, str) else "unknown",
        "index": index,
        "statusCode": error.status,
        "error": error.code,
        "message": error.message,
    }

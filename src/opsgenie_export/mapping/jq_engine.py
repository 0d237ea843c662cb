"""Compile a mapping's JQ once and evaluate raw items into Port entities.

Semantics follow Ocean (first output only; no output is null; single-quote rewrite; search-query
objects; itemsToParse), with two deliberate differences: environment access is removed, and a JQ
runtime error is reported as a `MappingError` that withholds the entity instead of writing null.
As in Ocean, a row whose identifier or blueprint is null yields no entity; it is reported in
`ItemResult.skipped` ("skipped by the mapping"), not as an error.

Speed: expressions that are plain paths (`.a.b`) run in Python and literals are computed once at
compile time; the remaining string fields of a resource run as ONE combined JQ program per item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import jq

from opsgenie_export.errors import ConfigError
from opsgenie_export.mapping.keys import KEY_PATTERN, key_problems
from opsgenie_export.mapping.model import MappingConfig, Problem, ResourceConfig

ENV_GUARD = "def env: {}; {} as $ENV | "
_QUOTES = re.compile(r"""(^|\s)'(?!\s|")|(?<!\s|")'(\s|$)""")
_PATH = re.compile(r"\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?")
_LITERAL = re.compile(r'true|false|null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|"(?:[^"\\]|\\[^(])*"')
_JQ_KEYWORDS = frozenset(
    [
        "if",
        "then",
        "elif",
        "else",
        "end",
        "as",
        "def",
        "reduce",
        "foreach",
        "try",
        "catch",
        "label",
        "import",
        "include",
        "and",
        "or",
        "not",
        "__loc__",
    ]
)
_SEARCH_ONLY = ("identifier", "team")  # fields (besides relations.*) that may be search-query objects


class JqRuntimeError(Exception):
    """A JQ program raised while evaluating one item; `str()` is jq's message."""


class _NoFastPath(Exception):
    """The Python path walk met a value jq would refuse to index; let jq produce the error."""


def rewrite_single_quotes(expr: str) -> str:
    """Ocean's rewrite of single-quoted JQ strings to double quotes (`.a == 'x'` -> `.a == "x"`)."""
    return _QUOTES.sub(r'\1"\2', expr)


def jq_compile_message(error: Exception) -> str:
    """jq's multi-line compile error as one line, e.g. `syntax error, unexpected '|' at line 1, column 5`."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else "compile error"
    first = first.removeprefix("jq: error: ").replace("at <top-level>, ", "at ").rstrip(":")
    return first


# --------------------------------------------------------------------------- one expression


_STRING_LITERAL = re.compile(r'"([A-Za-z0-9_@.\-]+)"')


@dataclass(frozen=True)
class Expression:
    """One compiled JQ expression. `path` is set for plain paths, `constant` for literals.

    Plain paths and literals are evaluated without jq, so their program is compiled only when a
    path meets a non-object (jq's own error then) — a jq compile costs about a millisecond, and
    a mapping has dozens of such fields."""

    field: str
    text: str
    compiled: Any = None
    path: tuple[str, ...] | None = None
    constant: tuple[Any] | None = None

    @cached_property
    def program(self) -> Any:
        return self.compiled if self.compiled is not None else _compile_guarded(self.text)

    @property
    def needs_jq(self) -> bool:
        return self.path is None and self.constant is None

    def evaluate(self, data: Any) -> Any:
        """First output, None when there is none; raises JqRuntimeError."""
        if self.constant is not None:
            return self.constant[0]
        if self.path is not None:
            try:
                return _walk(data, self.path)
            except _NoFastPath:
                pass
        return run_program(self.program, data)


def compile_expression(field_name: str, expr: str) -> Expression:
    """Rewrite quotes, guard env, compile; raise ValueError with a one-line jq message."""
    text = rewrite_single_quotes(expr).strip()
    if _PATH.fullmatch(text):
        keys = tuple(text[1:].split(".")) if text != "." else ()
        if not _JQ_KEYWORDS.intersection(keys):  # `.if` and the like: let jq judge them now
            return Expression(field_name, text, path=keys)
        return Expression(field_name, text, _compile_guarded(text), path=keys)
    if _LITERAL.fullmatch(text):
        if text.startswith('"') or text in ("true", "false", "null"):  # numbers: jq's own rounding
            try:
                return Expression(field_name, text, constant=(json.loads(text),))
            except ValueError:  # an escape JSON lacks: jq decides
                pass
        program = _compile_guarded(text)
        return Expression(field_name, text, program, constant=(run_program(program, None),))
    return Expression(field_name, text, _compile_guarded(text))


def _compile_guarded(text: str) -> Any:
    try:
        return jq.compile(ENV_GUARD + text)
    except ValueError as guarded_error:
        try:
            jq.compile(text)
        except ValueError as plain_error:  # report columns of the user's own text
            raise ValueError(jq_compile_message(plain_error)) from None
        raise ValueError(jq_compile_message(guarded_error)) from None


def run_program(program: Any, data: Any) -> Any:
    try:
        return program.input_text(_dumps(data)).first()
    except StopIteration:
        return None
    except ValueError as error:
        raise JqRuntimeError(str(error)) from None


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str, ensure_ascii=False)


def _walk(data: Any, keys: tuple[str, ...]) -> Any:
    value = data
    for key in keys:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _NoFastPath
        value = value.get(key)
    return value


@lru_cache(maxsize=256)
def _cached_expression(expr: str) -> Expression:
    return compile_expression("expression", expr)


def evaluate_expression(expr: str, data: Any) -> Any:
    """Evaluate one JQ expression (quote rewrite, no env access) and return its first output or None.
    Raises ValueError when it does not compile, JqRuntimeError when it fails on `data`."""
    return _cached_expression(expr).evaluate(data)


def literal_value(expr: str) -> tuple[Any] | None:
    """`(value,)` when `expr` is a JQ literal such as `'"opsGenieAlert"'`, else None."""
    text = rewrite_single_quotes(expr).strip()
    if not _LITERAL.fullmatch(text):
        return None
    try:
        return (evaluate_expression(text, None),)
    except (ValueError, JqRuntimeError):
        return None


# --------------------------------------------------------------------------- results


@dataclass
class Entity:
    """One Port entity. `defined` names the optional fields (title, icon, team) the mapping sets."""

    blueprint: str
    identifier: str | dict[str, Any]
    title: Any = None
    icon: Any = None
    team: Any = None
    properties: dict[str, Any] = field(default_factory=dict)
    relations: dict[str, Any] = field(default_factory=dict)
    defined: frozenset[str] = frozenset(("title", "icon", "team"))

    def to_port(self) -> dict[str, Any]:
        """The body Port's entity API expects (the blueprint goes in the URL)."""
        body: dict[str, Any] = {"identifier": self.identifier}
        for name in ("title", "icon", "team"):
            if name in self.defined:
                body[name] = getattr(self, name)
        body["properties"] = dict(self.properties)
        body["relations"] = dict(self.relations)
        return body


@dataclass(frozen=True)
class MappingError:
    kind: str
    resource_index: int
    item_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.item_id}: {self.field}: {self.message}"


@dataclass
class ItemResult:
    filtered: bool = False
    entities: list[Entity] = field(default_factory=list)
    errors: list[MappingError] = field(default_factory=list)
    skipped: list[MappingError] = field(default_factory=list)  # rows whose identifier or blueprint is null


def item_id_of(item: Any) -> str:
    if isinstance(item, dict):
        for key in ("id", "tinyId", "name"):
            value = item.get(key)
            if value is not None and value != "":
                return str(value)
    return "?"


# --------------------------------------------------------------------------- a compiled resource

SearchTree = Expression | dict[str, Any] | list[Any]


@dataclass
class CompiledResource:
    resource: ResourceConfig
    source: str
    selector: Expression
    items_to_parse: Expression | None
    fields: dict[str, Expression]  # plain JQ string fields, by name
    searches: dict[str, SearchTree]  # search-query objects, by field name
    combined: Any = None  # one program for every field that needs jq
    combined_names: tuple[str, ...] = ()
    _delete_path: tuple[str, ...] | None = None
    _defined: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def index(self) -> int:
        return self.resource.index

    def expressions(self) -> Iterator[Expression]:
        yield self.selector
        if self.items_to_parse is not None:
            yield self.items_to_parse
        yield from self.fields.values()
        for tree in self.searches.values():
            yield from _tree_leaves(tree)

    def referenced_keys(self) -> frozenset[str]:
        """Enrichment keys (`__team`, `__relatedIncident`, …) any expression mentions."""
        return frozenset(key for expr in self.expressions() for key in KEY_PATTERN.findall(expr.text))

    def blueprint_literals(self) -> set[str]:
        """The string literals of a JQ blueprint expression (`if … then "a" else "b" end`): the
        blueprints it can choose, once checked against those that exist. Empty for a literal."""
        blueprint = self.fields.get("blueprint")
        if blueprint is None or blueprint.constant is not None:
            return set()
        return {match.group(1) for match in _STRING_LITERAL.finditer(blueprint.text.replace("'", '"'))}

    def blueprints_static(self) -> set[str]:
        blueprint = self.fields.get("blueprint")
        if blueprint is not None and blueprint.constant is not None and isinstance(blueprint.constant[0], str):
            return {blueprint.constant[0]}
        return set()

    def map_item(self, item: dict[str, Any]) -> ItemResult:
        """Selector, itemsToParse fan-out, then every field. Selector runs per fanned-out row,
        as in Ocean (where the fan-out happens during extraction)."""
        parent_id = item_id_of(item)
        result = ItemResult()
        rows = self._rows(item, parent_id, result)
        if rows is None:
            return result
        passed = 0
        for row_id, row in rows:
            verdict = self._select(row, row_id, result)
            if verdict:
                passed += 1
                self._build(row, row_id, result)
        result.filtered = bool(rows) and passed == 0 and not result.errors
        return result

    # ----------------------------------------------------------------- steps

    def _error(self, item_id: str, field_name: str, message: str) -> MappingError:
        return MappingError(self.kind, self.index, item_id, field_name, message)

    def _rows(self, item: dict[str, Any], parent_id: str, result: ItemResult) -> list[tuple[str, Any]] | None:
        if self.items_to_parse is None:
            return [(parent_id, item)]
        try:
            elements = self.items_to_parse.evaluate(item)
        except JqRuntimeError as error:
            result.errors.append(self._error(parent_id, "itemsToParse", str(error)))
            return None
        if not isinstance(elements, list):
            message = f"expected a list, got {_jq_type(elements)}; the item yields no entity"
            result.errors.append(self._error(parent_id, "itemsToParse", message))
            return None
        parent = _without_path(item, self._delete_path) if self._delete_path else item
        name = self.resource.port.items_to_parse_name
        return [(f"{parent_id}[{position}]", {**parent, name: element}) for position, element in enumerate(elements)]

    def _select(self, row: Any, row_id: str, result: ItemResult) -> bool:
        try:
            verdict = self.selector.evaluate(row)
        except JqRuntimeError as error:
            result.errors.append(self._error(row_id, "selector.query", str(error)))
            return False
        if isinstance(verdict, bool):
            return verdict
        message = f"must yield a boolean, got {_jq_type(verdict)}"
        result.errors.append(self._error(row_id, "selector.query", message))
        return False

    def _build(self, row: Any, row_id: str, result: ItemResult) -> None:
        values, errors = self._evaluate_fields(row, row_id)
        skipped = self._null_key(values, row_id)
        if skipped is None:
            errors.extend(self._check_values(values, row_id))
        if errors:  # a JQ runtime error stays an error, whatever the identifier
            result.errors.extend(errors)
        elif skipped is not None:
            result.skipped.append(skipped)
        else:
            result.entities.append(self._entity(values))

    def _null_key(self, values: dict[str, Any], row_id: str) -> MappingError | None:
        """A null identifier or blueprint: the mapping says "no entity" (Port's integration drops
        such rows). An identifier of another wrong type or an empty string stays an error."""
        if values.get("identifier") is None and not isinstance(self.searches.get("identifier"), dict):
            return self._error(row_id, "identifier", "is null")
        if values.get("blueprint") is None:
            return self._error(row_id, "blueprint", "is null")
        return None

    def _evaluate_fields(self, row: Any, row_id: str) -> tuple[dict[str, Any], list[MappingError]]:
        values: dict[str, Any] = {}
        errors: list[MappingError] = []
        combined = self._run_combined(row)
        for name, expr in self.fields.items():
            try:
                if combined is not None and expr.needs_jq:
                    outputs = combined[name]
                    values[name] = outputs[0] if outputs else None
                else:
                    values[name] = expr.evaluate(row)
            except JqRuntimeError as error:
                errors.append(self._error(row_id, name, str(error)))
        for name, tree in self.searches.items():
            values[name] = _evaluate_tree(tree, row, lambda f, m: errors.append(self._error(row_id, f, m)))
        return values, errors

    def _run_combined(self, row: Any) -> dict[str, list[Any]] | None:
        """All jq-only fields in one program; None (evaluate one by one) when it raises."""
        if self.combined is None:
            return None
        try:
            return self.combined.input_text(_dumps(row)).first()
        except ValueError:
            return None

    def _check_values(self, values: dict[str, Any], row_id: str) -> list[MappingError]:
        errors: list[MappingError] = []
        identifier = values.get("identifier")
        if not (isinstance(identifier, str) and identifier) and not isinstance(self.searches.get("identifier"), dict):
            errors.append(self._error(row_id, "identifier", f"must be a non-empty string, got {_shown(identifier)}"))
        blueprint = values.get("blueprint")
        if not (isinstance(blueprint, str) and blueprint):
            errors.append(self._error(row_id, "blueprint", f"must be a non-empty string, got {_shown(blueprint)}"))
        for name in ("title", "icon"):
            value = values.get(name)
            if value is not None and not isinstance(value, str):
                errors.append(self._error(row_id, name, f"must be a string or null, got {_shown(value)}"))
        return errors

    def _entity(self, values: dict[str, Any]) -> Entity:
        mapping = self.resource.port.entity
        properties = {name: values[f"properties.{name}"] for name in mapping.properties}
        relations = {name: values[f"relations.{name}"] for name in mapping.relations}
        return Entity(
            blueprint=values["blueprint"],
            identifier=values["identifier"],
            title=values.get("title"),
            icon=values.get("icon"),
            team=values.get("team"),
            properties=properties,
            relations=relations,
            defined=self._defined,
        )


# --------------------------------------------------------------------------- compiling


def resource_expressions(resource: ResourceConfig) -> Iterator[tuple[str, str | dict[str, Any]]]:
    """(field name, JQ string or search-query object) for every expression of a resource."""
    yield "selector.query", resource.selector.query
    if resource.port.items_to_parse is not None:
        yield "itemsToParse", resource.port.items_to_parse
    mapping = resource.port.entity
    for name in ("identifier", "blueprint", "title", "icon", "team"):
        value = getattr(mapping, name)
        if value is not None:
            yield name, value
    for name, value in mapping.properties.items():
        yield f"properties.{name}", value
    for name, value in mapping.relations.items():
        yield f"relations.{name}", value


def compile_problems(resource: ResourceConfig) -> list[Problem]:
    """Every JQ compile error of a resource (the `validate` command wants them all), and every
    enrichment key its kind does not provide (it would read null over good data)."""
    return _compile_all(resource)[1]


def _compile_all(resource: ResourceConfig) -> tuple[dict[str, Any], list[Problem]]:
    """Each expression compiled once, with every problem found on the way."""
    problems: list[Problem] = []
    compiled: dict[str, Any] = {}
    for name, value in resource_expressions(resource):
        compiled[name] = _compile_tree(name, value, lambda f, m: problems.append(_compile_problem(resource, f, m)))
    return compiled, problems + key_problems(resource, resource_expressions(resource))


def compile_resource(resource: ResourceConfig, source: str) -> CompiledResource:
    """Compile every expression once; ConfigError naming the field on the first compile error."""
    compiled, problems = _compile_all(resource)
    if problems:
        raise ConfigError(problems[0].for_file(source))
    selector = compiled.pop("selector.query")
    items_to_parse = compiled.pop("itemsToParse", None)
    fields = {name: expr for name, expr in compiled.items() if isinstance(expr, Expression)}
    searches = {name: tree for name, tree in compiled.items() if not isinstance(tree, Expression)}
    combined, names = _combine(fields)
    return CompiledResource(
        resource=resource,
        source=source,
        selector=selector,
        items_to_parse=items_to_parse,
        fields=fields,
        searches=searches,
        combined=combined,
        combined_names=names,
        _delete_path=_deletion_path(resource, items_to_parse),
        _defined=frozenset(name for name in ("title", "icon", "team") if name in fields or name in searches),
    )


def compile_mapping(config: MappingConfig) -> list[CompiledResource]:
    return [compile_resource(resource, config.source) for resource in config.resources]


def _compile_problem(resource: ResourceConfig, field_name: str, message: str) -> Problem:
    return Problem(f"{resource.label} field '{field_name}'", f"JQ does not compile: {message}")


def _compile_tree(name: str, value: Any, report: Callable[[str, str], None]) -> SearchTree | None:
    if isinstance(value, str):
        try:
            return compile_expression(name, value)
        except ValueError as error:
            report(name, str(error))
            return None
    if isinstance(value, dict):
        return {key: _compile_tree(f"{name}.{key}", item, report) for key, item in value.items()}
    if isinstance(value, list):
        return [_compile_tree(f"{name}[{position}]", item, report) for position, item in enumerate(value)]
    return None


def _tree_leaves(tree: Any) -> Iterator[Expression]:
    if isinstance(tree, Expression):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tree_leaves(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _tree_leaves(value)


def _evaluate_tree(tree: Any, row: Any, report: Callable[[str, str], None]) -> Any:
    """Ocean evaluates every string leaf of a search-query object as JQ."""
    if isinstance(tree, Expression):
        try:
            return tree.evaluate(row)
        except JqRuntimeError as error:
            report(tree.field, str(error))
            return None
    if isinstance(tree, dict):
        return {key: _evaluate_tree(value, row, report) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_evaluate_tree(value, row, report) for value in tree]
    return tree


def _combine(fields: dict[str, Expression]) -> tuple[Any, tuple[str, ...]]:
    """`{"f": [limit(1; (E))], …}` for every field that needs jq; (None, ()) if there is none."""
    names = tuple(name for name, expr in fields.items() if expr.needs_jq)
    if not names:
        return None, ()
    parts = [f"{json.dumps(name)}: [limit(1; (\n{fields[name].text}\n))]" for name in names]
    try:
        return jq.compile(ENV_GUARD + "{" + ", ".join(parts) + "}"), names
    except ValueError:  # e.g. a comment ending in a backslash: evaluate field by field instead
        return None, ()


def _deletion_path(resource: ResourceConfig, items_to_parse: Expression | None) -> tuple[str, ...] | None:
    """Ocean's `del(<path>)` of the fanned-out array, applied only to plain paths."""
    if items_to_parse is None or not resource.port.items_to_parse_top_level_transform:
        return None
    return items_to_parse.path or None


def _without_path(item: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of `item` without `path`, copying only the dicts along the path."""
    top = dict(item)
    node = top
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            return top
        node[key] = node = dict(child)
    node.pop(path[-1], None)
    return top


def _jq_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."

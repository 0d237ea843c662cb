"""Static checks of mappings against blueprints, and the all-problems `validate` path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsgenie_export.errors import ConfigError
from opsgenie_export.mapping import (
    Problem,
    check_mapping,
    load_blueprints,
    load_mapping,
    parse_mapping,
    static_blueprint,
    validate_mapping_file,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def blueprints() -> dict[str, dict[str, Any]]:
    return load_blueprints(ROOT / "blueprints")


def config_with(mappings: dict[str, Any], kind: str = "incident"):
    entity = {"identifier": ".id", **mappings}
    document = {
        "resources": [
            {"kind": "service", "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"x"'}}}},
            {"kind": kind, "port": {"entity": {"mappings": entity}}},
        ]
    }
    return parse_mapping(json.dumps(document), "m.yaml")


def test_load_blueprints(blueprints: dict[str, dict[str, Any]]) -> None:
    assert set(blueprints) == {"opsGenieAlert", "opsGenieIncident", "opsGenieService"}
    assert "status" in blueprints["opsGenieAlert"]["schema"]["properties"]


def test_load_blueprints_bad_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"identifier": "good"}), encoding="utf-8")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_blueprints(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'broken.json'}: invalid JSON")


def test_load_blueprints_needs_an_identifier(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a blueprint"):
        load_blueprints(tmp_path)


def test_load_blueprints_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_blueprints(tmp_path / "nope")


def test_default_mapping_matches_default_blueprints(blueprints: dict[str, dict[str, Any]]) -> None:
    assert check_mapping(load_mapping(ROOT / "mapping.yaml"), blueprints) == []
    assert validate_mapping_file(ROOT / "mapping.yaml", blueprints) == []


def test_unknown_property_and_relation(blueprints: dict[str, dict[str, Any]]) -> None:
    config = config_with(
        {
            "blueprint": "'opsGenieIncident'",
            "properties": {"status": ".status", "statuss": ".s"},
            "relations": {"services": ".x", "owner": ".o"},
        }
    )
    problems = check_mapping(config, blueprints)
    assert [str(problem) for problem in problems[1:]] == [
        "resources[1] (kind incident) properties.statuss: property 'statuss' is not in blueprint "
        "'opsGenieIncident'; did you mean 'status'?",
        "resources[1] (kind incident) relations.owner: relation 'owner' is not in blueprint 'opsGenieIncident'; "
        "known: services",
    ]
    assert problems[0].location == "resources[0] (kind service) blueprint"


def test_unknown_blueprint(blueprints: dict[str, dict[str, Any]]) -> None:
    problems = check_mapping(config_with({"blueprint": '"opsGenieIncidnet"', "properties": {"zzz": ".z"}}), blueprints)
    assert problems[1] == Problem(
        "resources[1] (kind incident) blueprint",
        "blueprint 'opsGenieIncidnet' is not among the blueprints; did you mean 'opsGenieIncident'?",
    )
    assert len(problems) == 2  # properties are not checked against a blueprint that does not exist


def test_relation_target_must_exist(blueprints: dict[str, dict[str, Any]]) -> None:
    config = config_with({"blueprint": '"opsGenieAlert"', "relations": {"relatedIncident": ".i"}}, kind="alert")
    only_alert = {"opsGenieAlert": blueprints["opsGenieAlert"], "x": {"identifier": "x"}}
    problems = check_mapping(config, only_alert)
    assert problems == [
        Problem(
            "resources[1] (kind alert) relations.relatedIncident",
            "relation target blueprint 'opsGenieIncident' (of opsGenieAlert.relatedIncident) "
            "is not among the blueprints",
        )
    ]


def test_dynamic_blueprint_is_not_checked(blueprints: dict[str, dict[str, Any]]) -> None:
    config = config_with({"blueprint": '.kind + "Blueprint"', "properties": {"anything": ".a"}})
    assert static_blueprint(config.resources[1]) is None
    assert static_blueprint(config.resources[0]) == "x"
    assert [problem.location for problem in check_mapping(config, blueprints)] == [
        "resources[0] (kind service) blueprint"
    ]


def test_validate_collects_every_problem(tmp_path: Path, blueprints: dict[str, dict[str, Any]]) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(
        """\
resources:
  - kind: alrt
    port: {entity: {mappings: {identifier: .id, blueprint: '"opsGenieAlert"'}}}
  - kind: alert
    selector: {query: '.a =='}
    port:
      entity:
        mappings:
          identifier: .id
          blueprint: '"opsGenieAlert"'
          properties: {status: .status, bogus: .b, broken: '[.x'}
  - kind: incident
    port: {entity: {mappings: {identifier: .id, blueprint: '"nope"'}}}
""",
        encoding="utf-8",
    )
    problems = validate_mapping_file(path, blueprints)
    assert [problem.location for problem in problems] == [
        "resources[0] (kind 'alrt')",
        "resources[1] (kind alert) field 'selector.query'",
        "resources[1] (kind alert) field 'properties.broken'",
        "resources[1] (kind alert) properties.bogus",
        "resources[1] (kind alert) properties.broken",
        "resources[2] (kind incident) blueprint",
    ]
    assert problems[1].message.startswith("JQ does not compile: syntax error")


def test_validate_reports_bad_yaml_with_its_line(tmp_path: Path, blueprints: dict[str, dict[str, Any]]) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("resources:\n  - kind: alert\n    port: {entity: [\n", encoding="utf-8")
    problems = validate_mapping_file(path, blueprints)
    assert len(problems) == 1 and problems[0].location.startswith("line ")
    assert problems[0].for_file("mapping.yaml").startswith("mapping.yaml line ")
    assert "invalid YAML" in problems[0].message

"""Loading and validating mapping files (Ocean's port-app-config format)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from opsgenie_export.errors import ConfigError
from opsgenie_export.mapping import KNOWN_KINDS, collect_mapping, load_mapping, parse_mapping

ROOT = Path(__file__).resolve().parents[1]


def minimal(kind: str = "alert", **mappings: object) -> dict:
    entity = {"identifier": ".id", "blueprint": '"opsGenieAlert"', **mappings}
    return {"resources": [{"kind": kind, "selector": {"query": "true"}, "port": {"entity": {"mappings": entity}}}]}


def parse_dict(document: dict, source: str = "mapping.yaml"):
    return parse_mapping(json.dumps(document), source)


def error_of(text: str, source: str = "mapping.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_mapping(text, source)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_default_mapping_loads() -> None:
    config = load_mapping(ROOT / "mapping.yaml")
    assert [resource.kind for resource in config.resources] == ["service", "incident", "alert"]
    assert [resource.index for resource in config.resources] == [0, 1, 2]
    assert config.create_missing_related_entities and config.delete_dependent_entities
    assert config.enable_merge_entity and config.entity_deletion_threshold == 0.9
    alert = config.resources[2]
    assert alert.selector.query == "true"
    assert alert.port.entity.blueprint == '"opsGenieAlert"'
    assert alert.port.entity.properties["integration"] == ".integration.name"
    assert alert.port.entity.relations == {"relatedIncident": ".__relatedIncident.id"}
    assert alert.port.entity.icon is None and alert.port.entity.team is None
    assert config.source.endswith("mapping.yaml")


def test_packaged_default_is_the_same_file() -> None:
    packaged = ROOT / "src" / "opsgenie_export" / "defaults" / "mapping.yaml"
    assert load_mapping(packaged).resources == load_mapping(ROOT / "mapping.yaml").resources


def test_json_text_is_accepted() -> None:
    document = minimal()
    document["entityDeletionThreshold"] = 0.5
    document["enableMergeEntity"] = False
    config = parse_mapping(json.dumps(document, indent="\t"), "mapping.json")
    assert config.entity_deletion_threshold == 0.5 and config.enable_merge_entity is False
    assert config.resources[0].port.entity.identifier == ".id"


def test_full_resource_fields() -> None:
    text = textwrap.dedent(
        """\
        entityDeletionThreshold: 1
        resources:
          - kind: schedule-on-call
            selector:
              query: .enabled
              includeMembers: true
              apiQueryParams: {expand: rotation}
              opsgenieQuery: 'status: open'
              exportEnvVariables: [A]
            port:
              itemsToParse: .rotations
              itemsToParseName: rotation
              itemsToParseTopLevelTransform: false
              entity:
                mappings:
                  identifier: .id
                  title: .name
                  icon: '"OpsGenie"'
                  team: .ownerTeam.name
                  blueprint: '"opsGenieSchedule"'
                  properties: {tz: .timezone}
                  relations: {ownerTeam: .ownerTeam.id}
        """
    )
    resource = parse_mapping(text, "m.yaml").resources[0]
    assert resource.kind == "schedule-oncall"  # the spelling of the integration's spec.yaml, normalised
    assert resource.selector.include_members is True
    assert resource.selector.api_query_params == {"expand": "rotation"}
    assert resource.selector.opsgenie_query == "status: open"
    assert resource.port.items_to_parse == ".rotations"
    assert resource.port.items_to_parse_name == "rotation"
    assert resource.port.items_to_parse_top_level_transform is False
    assert resource.port.entity.team == ".ownerTeam.name"
    assert resource.port.entity.icon == '"OpsGenie"'


def test_selector_defaults() -> None:
    document = minimal()
    del document["resources"][0]["selector"]
    selector = parse_dict(document).resources[0].selector
    assert selector.query == "true" and selector.api_query_params is None
    assert selector.include_members is False and selector.opsgenie_query is None


def test_every_known_kind_is_accepted() -> None:
    for kind in KNOWN_KINDS:
        assert parse_dict(minimal(kind)).resources[0].kind == kind


def test_unknown_kind_message() -> None:
    document = minimal()
    document["resources"] = document["resources"] * 2 + [{**document["resources"][0], "kind": "alrt"}]
    message = error_of(json.dumps(document))
    assert message == (
        "mapping.yaml: resources[2] (kind 'alrt'): unknown kind; expected one of alert, incident, service, "
        "team, schedule, schedule-oncall, user, escalation"
    )


def test_bad_yaml_names_the_line() -> None:
    text = "resources:\n  - kind: alert\n    selector:\n      query: 'true\n    port: {}\n"
    message = error_of(text)
    assert message.startswith("mapping.yaml line ") and "invalid YAML" in message


def test_bad_yaml_indentation_line_number() -> None:
    text = "resources:\n  - kind: alert\n   selector: x\n"
    assert error_of(text).startswith("mapping.yaml line 3, column 4: invalid YAML:")


@pytest.mark.parametrize("text", ["", "resources: []", "resources:", "createMissingRelatedEntities: true"])
def test_empty_mapping_is_an_error(text: str) -> None:
    message = error_of(text)
    assert message.startswith("mapping.yaml: ")
    assert "resources" in message or "empty" in message


def test_document_must_be_an_object() -> None:
    assert "expected an object" in error_of("- kind: alert")


def test_unknown_top_level_key() -> None:
    document = minimal()
    document["create_missing_related_entities"] = False  # snake_case is not Ocean's spelling
    message = error_of(json.dumps(document))
    assert "unknown top-level key 'create_missing_related_entities'" in message
    assert "createMissingRelatedEntities" in message


def test_unknown_selector_keys_are_tolerated_but_api_query_params_must_be_a_mapping() -> None:
    document = minimal()
    document["resources"][0]["selector"]["somethingElse"] = [1, 2]
    parse_dict(document)
    document["resources"][0]["selector"]["apiQueryParams"] = "status:open"
    message = error_of(json.dumps(document))
    assert "resources[0] (kind alert) selector.apiQueryParams: must be an object" in message


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5", True, None])
def test_threshold_must_be_a_number_from_0_to_1(value: object) -> None:
    document = minimal()
    document["entityDeletionThreshold"] = value
    assert "entityDeletionThreshold: must be a number from 0 to 1" in error_of(json.dumps(document))


def test_flags_must_be_booleans() -> None:
    document = minimal()
    document["deleteDependentEntities"] = "yes"
    assert "deleteDependentEntities: must be true or false" in error_of(json.dumps(document))


def test_property_must_be_a_jq_string() -> None:
    message = error_of(json.dumps(minimal(properties={"count": 1})))
    assert message.startswith("mapping.yaml: resources[0] (kind alert) properties.count: must be a JQ expression")
    assert "quote it: '1'" in message


def test_unquoted_yaml_boolean_selector_gets_a_hint() -> None:
    document = minimal()
    document["resources"][0]["selector"]["query"] = True
    message = error_of(json.dumps(document))
    assert "selector.query" in message and "quote it: 'true'" in message


def test_properties_cannot_be_search_queries() -> None:
    query = {"combinator": '"and"', "rules": [{"property": '"a"', "operator": '"="', "value": ".x"}]}
    assert "properties.p: must be a JQ expression" in error_of(json.dumps(minimal(properties={"p": query})))


def test_search_query_objects_are_accepted_for_identifier_team_and_relations() -> None:
    query = {
        "combinator": '"and"',
        "rules": [
            {"property": '"email"', "operator": '"="', "value": ".username"},
            {"combinator": '"or"', "rules": [{"property": '"a"', "operator": '"="', "value": ".b"}]},
        ],
    }
    document = minimal(team=query, relations={"owner": query, "plain": ".x"})
    document["resources"][0]["port"]["entity"]["mappings"]["identifier"] = query
    mapping = parse_dict(document).resources[0].port.entity
    assert mapping.identifier == query and mapping.team == query
    assert mapping.relations == {"owner": query, "plain": ".x"}


def test_search_query_leaves_must_be_strings() -> None:
    query = {"combinator": '"and"', "rules": [{"property": '"a"', "operator": '"="', "value": 3}]}
    message = error_of(json.dumps(minimal(relations={"r": query})))
    assert "relations.r.rules[0].value: must be a JQ expression" in message


def test_search_query_needs_rules() -> None:
    message = error_of(json.dumps(minimal(relations={"r": {"combinator": '"and"'}})))
    assert "relations.r.rules: must be a non-empty list" in message


def test_missing_identifier_and_blueprint() -> None:
    document = minimal()
    del document["resources"][0]["port"]["entity"]["mappings"]["identifier"]
    assert "resources[0] (kind alert) identifier: missing" in error_of(json.dumps(document))
    document = minimal()
    del document["resources"][0]["port"]["entity"]["mappings"]["blueprint"]
    assert "resources[0] (kind alert) blueprint: missing" in error_of(json.dumps(document))


def test_unknown_mapping_key_is_an_error() -> None:
    message = error_of(json.dumps(minimal(propertis={"a": ".a"})))
    assert "unknown key 'propertis'" in message


def test_missing_port_section() -> None:
    message = error_of(json.dumps({"resources": [{"kind": "alert"}]}))
    assert "resources[0] (kind alert) port" in message


def test_collect_mapping_reports_every_problem_and_keeps_valid_resources() -> None:
    document = minimal()
    good = document["resources"][0]
    bad_kind = {**good, "kind": "nope"}
    bad_prop = json.loads(json.dumps(good))
    bad_prop["port"]["entity"]["mappings"]["properties"] = {"x": ["a"]}
    document["resources"] = [good, bad_kind, bad_prop]
    document["entityDeletionThreshold"] = 3
    config, problems = collect_mapping(json.dumps(document), "m.yaml")
    assert config is not None and [resource.index for resource in config.resources] == [0]
    locations = [problem.location for problem in problems]
    assert locations == [
        "entityDeletionThreshold",
        "resources[1] (kind 'nope')",
        "resources[2] (kind alert) properties.x",
    ]
    message = error_of(json.dumps(document))
    assert "(and 2 more problem(s)" in message


def test_load_mapping_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the mapping file"):
        load_mapping(tmp_path / "absent.yaml")


def test_load_mapping_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text("resources: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"{path}: resources: ")

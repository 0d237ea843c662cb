"""Port's default Opsgenie mapping, verbatim (tests/fixtures/ocean/port-default-mapping.yaml)."""

from __future__ import annotations

import copy

import yaml

from conftest import REPO, run_cli

PORT_DEFAULT_MAPPING = REPO / "tests" / "fixtures" / "ocean" / "port-default-mapping.yaml"
EXAMPLE_MAPPING = REPO / "examples" / "ocean" / "mapping.yaml"
ALIAS_PREFIX_INCIDENT = 'if (.alias | contains("_")) then (.alias | split("_")[0]) else null end'
SCHEDULE_ONCALL_RESOURCE = {
    "kind": "schedule-oncall",
    "selector": {"query": "true"},
    "port": {
        "entity": {
            "mappings": {
                "identifier": ".ownerTeam.id",
                "title": ".ownerTeam.name",
                "blueprint": '"opsGenieTeam"',
                "properties": {"oncallUsers": ".__currentOncalls.onCallRecipients"},
            }
        }
    },
}


def _resource(mapping: dict, kind: str) -> dict:
    (found,) = [resource for resource in mapping["resources"] if resource["kind"] == kind]
    return found


def test_verbatim_mapping_is_the_example_with_its_two_changes_undone() -> None:
    example = yaml.safe_load(EXAMPLE_MAPPING.read_text())
    verbatim = yaml.safe_load(PORT_DEFAULT_MAPPING.read_text())

    undone = copy.deepcopy(example)
    team = _resource(undone, "team")["port"]["entity"]["mappings"]
    assert team["properties"].pop("oncallUsers") == ".__oncalls.onCallRecipients"
    alert = _resource(undone, "alert")["port"]["entity"]["mappings"]
    assert alert["relations"]["relatedIncident"] == ".__relatedIncident.id"
    alert["relations"]["relatedIncident"] = ALIAS_PREFIX_INCIDENT
    undone["resources"].append(SCHEDULE_ONCALL_RESOURCE)

    assert verbatim == undone
    assert len(verbatim["resources"]) == 7


def test_verbatim_mapping_validates_against_the_six_example_blueprints() -> None:
    result = run_cli(
        ["validate", "--mapping", str(PORT_DEFAULT_MAPPING), "--blueprints", str(REPO / "examples/ocean/blueprints")]
    )
    assert result.exit_code == 0, result.output
    assert "valid against 6 blueprints" in result.output

"""A newcomer's first hour (issue #16): mistakes caught before anything is written, errors that
say where and why, reports that tell the truth — each case through the real CLI and emulators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import OPSGENIE_KEY, PORT_SECRET, REPO, Sandbox, default_mapping_with, run_cli, sync_args

BLUEPRINTS = REPO / "blueprints"


def _assert_no_secret(output: str) -> None:
    assert OPSGENIE_KEY not in output and PORT_SECRET not in output


def _create_blueprints(sandbox: Sandbox, *names: str) -> None:
    for name in names:
        sandbox.port.add_blueprint(json.loads((BLUEPRINTS / f"{name}.json").read_text()))


# -- case 1: enrichment keys are checked ------------------------------------------------------

MISTAKEN_KEYS = {
    # an alert key on an incident: it would write null over every incident's services
    "misplaced": (
        ("services: '[.__impactedServices[] |", "services: '[.__relatedIncident[] |"),
        "resources[1] (kind incident) field 'relations.services'",
        "'__relatedIncident' is not provided for kind incident (only for alert); did you mean '__impactedServices'?",
    ),
    # a typo: it would write null over every alert's relatedIncident
    "misspelled": (
        ("relatedIncident: .__relatedIncident.id", "relatedIncident: .__relatedIncidnet.id"),
        "resources[2] (kind alert) field 'relations.relatedIncident'",
        "unknown enrichment key '__relatedIncidnet'; did you mean '__relatedIncident'?",
    ),
}


@pytest.mark.parametrize("case", sorted(MISTAKEN_KEYS))
def test_validate_rejects_a_misspelled_or_misplaced_enrichment_key(tmp_path: Path, case: str) -> None:
    replacement, where, message = MISTAKEN_KEYS[case]
    mapping = default_mapping_with(tmp_path / "mapping.yaml", replacement)
    result = run_cli(["validate", "--mapping", str(mapping), "--blueprints", str(BLUEPRINTS)])
    assert result.exit_code == 2, result.output
    assert where in result.stderr and message in result.stderr
    assert "valid against" not in result.output


@pytest.mark.parametrize("case", sorted(MISTAKEN_KEYS))
def test_sync_rejects_a_mistaken_enrichment_key_before_any_request(
    seed_sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    replacement, where, message = MISTAKEN_KEYS[case]
    args = sync_args()
    args[2] = str(default_mapping_with(tmp_path / "mapping.yaml", replacement))
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert where in result.stderr and message in result.stderr
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0
    _assert_no_secret(result.output)


def test_serve_rejects_a_mistaken_enrichment_key_at_start(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    mapping = default_mapping_with(tmp_path / "mapping.yaml", MISTAKEN_KEYS["misspelled"][0])
    env = {**seed_sandbox.env, "OPSGENIE_WEBHOOK_SECRET": "a-long-webhook-secret-0123456789"}
    result = run_cli(["serve", "--port", "0", "--mapping", str(mapping)], env)
    assert result.exit_code == 2, result.output
    assert "did you mean '__relatedIncident'?" in result.output
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0


def test_a_key_of_the_right_kind_and_a_name_merely_containing_underscores_pass(tmp_path: Path) -> None:
    mapping = default_mapping_with(
        tmp_path / "mapping.yaml", ("title: .message", 'title: .message + "a__b" + ($__loc__ | tostring)')
    )
    result = run_cli(["validate", "--mapping", str(mapping), "--blueprints", str(BLUEPRINTS)])
    assert result.exit_code == 0, result.output


# -- case 3: preflight against Port ----------------------------------------------------------


def test_sync_against_a_port_without_the_blueprints_exits_2_before_any_opsgenie_request(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    args = [a for a in sync_args("--summary-json", str(summary)) if a != "--initialize-port-resources"]
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert "opsGenieAlert, opsGenieIncident, opsGenieService not found in Port" in result.stderr
    assert "--initialize-port-resources" in result.stderr
    assert seed_sandbox.opsgenie.count() == 0
    assert seed_sandbox.port.count("POST", r".*/entities.*") == 0
    assert json.loads(summary.read_text())["exitCode"] == 2
    _assert_no_secret(result.output)


def test_sync_with_a_property_the_blueprint_lacks_exits_2_before_any_opsgenie_request(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    _create_blueprints(seed_sandbox, "opsGenieService", "opsGenieIncident", "opsGenieAlert")
    args = [a for a in sync_args() if a != "--initialize-port-resources"]
    args[2] = str(default_mapping_with(tmp_path / "mapping.yaml", ("priority: .priority", "priorty: .priority")))
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert "property 'priorty' is not in blueprint 'opsGenieIncident'; did you mean 'priority'?" in result.stderr
    assert "validate --from-port" in result.stderr
    assert seed_sandbox.opsgenie.count() == 0
    assert not any(seed_sandbox.port.entities.values())


def test_dry_run_with_initialize_plans_the_blueprints_and_judges_deletion_as_the_real_run(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run_cli(sync_args("--dry-run", "--output", "json"), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["blueprintsToCreate"] == ["opsGenieService", "opsGenieIncident", "opsGenieAlert"]
    assert {b["blueprint"]: b["deletion"] for b in plan["blueprints"]} == dict.fromkeys(
        ["opsGenieService", "opsGenieIncident", "opsGenieAlert"], "none: blueprint to be created"
    )
    assert plan["plan"]["opsGenieAlert"]["create"]
    assert seed_sandbox.port.blueprints == {}  # nothing created
    text = run_cli(sync_args("--dry-run"), seed_sandbox.env)
    assert text.exit_code == 0, text.output
    assert "create blueprints: opsGenieService, opsGenieIncident, opsGenieAlert" in text.stdout
    # the real run then does what the plan said
    real = run_cli(sync_args(), seed_sandbox.env)
    assert real.exit_code == 0, real.output
    assert sorted(seed_sandbox.port.blueprints) == ["opsGenieAlert", "opsGenieIncident", "opsGenieService"]

"""Stale-entity deletion and its guards, dry-run plans, through the real CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from opsgenie_export.sandbox.server import FaultRule

from conftest import Sandbox, default_mapping_with, run_cli, sync_args

ALERT_BP, INCIDENT_BP, SERVICE_BP = "opsGenieAlert", "opsGenieIncident", "opsGenieService"
FAST = ("--retries", "1", "--max-wait", "5")


def _stale_alert(n: int) -> dict[str, Any]:
    return {
        "identifier": f"gone-alert-{n:03d}",
        "title": f"Alert that no longer exists {n}",
        "properties": {"status": "open", "count": n},
        "relations": {},
    }


def _snapshot(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return copy.deepcopy({bp: dict(entities) for bp, entities in sandbox.port.entities.items()})


def _bulk_identifiers(sandbox: Sandbox, route: str) -> set[str]:
    identifiers: set[str] = set()
    for entry in sandbox.port.requests("POST", route):
        if entry.status in (200, 207):
            body = json.loads(entry.body)
            identifiers.update(e if isinstance(e, str) else e["identifier"] for e in body["entities"])
    return identifiers


def test_deletes_exactly_the_stale_entities(generated_sandbox: Sandbox) -> None:
    assert run_cli(sync_args(), generated_sandbox.env).exit_code == 0
    before = _snapshot(generated_sandbox)
    for n in range(50):
        generated_sandbox.port.put_entity(ALERT_BP, _stale_alert(n))

    result = run_cli(sync_args(), generated_sandbox.env)

    assert result.exit_code == 0, result.output
    after = _snapshot(generated_sandbox)
    assert set(after[ALERT_BP]) == set(before[ALERT_BP])  # exactly the 50 are gone
    assert {bp: set(v) for bp, v in after.items()} == {bp: set(v) for bp, v in before.items()}
    deleted = _bulk_identifiers(generated_sandbox, r"/bulk/entities/delete$")
    assert deleted == {f"gone-alert-{n:03d}" for n in range(50)}
    # Nothing changed upstream, so the second run wrote nothing (skip unchanged).
    assert generated_sandbox.port.count("POST", r"/entities/bulk$") == _first_run_bulk_count(generated_sandbox)


def _first_run_bulk_count(sandbox: Sandbox) -> int:
    """Bulk upserts happened only in the first run: all of them precede the first bulk delete."""
    log = sandbox.port.requests("POST")
    first_delete = next(i for i, e in enumerate(log) if e.path.endswith("/bulk/entities/delete"))
    return sum(1 for e in log[:first_delete] if e.path.endswith("/entities/bulk"))


def test_no_deletion_and_no_blanking_when_incidents_fail(generated_sandbox: Sandbox, tmp_path: Path) -> None:
    assert run_cli(sync_args(), generated_sandbox.env).exit_code == 0
    for n in range(50):
        generated_sandbox.port.put_entity(ALERT_BP, _stale_alert(n))
    before = _snapshot(generated_sandbox)
    generated_sandbox.opsgenie.faults.add(FaultRule(path=r"^/v1/incidents", status=500))
    summary = tmp_path / "summary.json"

    result = run_cli(sync_args(*FAST, "--summary-json", str(summary)), generated_sandbox.env)

    assert result.exit_code == 1, result.output
    assert _snapshot(generated_sandbox) == before  # nothing deleted, nothing blanked
    assert generated_sandbox.port.count("POST", r"/bulk/entities/delete$") == 0
    data = json.loads(summary.read_text())
    deletion = {b["blueprint"]: b["deletion"] for b in data["blueprints"]}
    assert all(deletion[bp].startswith("skipped") for bp in (ALERT_BP, INCIDENT_BP, SERVICE_BP)), deletion
    for resource in data["resources"]:
        assert (
            resource["fetched"]
            == resource["filtered"] + resource["upserted"] + resource["unchanged"] + resource["failed"]
        ), resource


def test_threshold_counts_all_existing_entities(seed_sandbox: Sandbox) -> None:
    assert run_cli(sync_args(), seed_sandbox.env).exit_code == 0
    for n in range(50):  # 50 stale of 51 alerts: 98% > 0.9
        seed_sandbox.port.put_entity(ALERT_BP, _stale_alert(n))
    result = run_cli(sync_args(), seed_sandbox.env)
    assert result.exit_code == 1, result.output
    assert "entityDeletionThreshold" in result.stderr
    assert len(seed_sandbox.port.entities[ALERT_BP]) == 51


def test_no_delete_keeps_stale_entities_and_exits_0(seed_sandbox: Sandbox) -> None:
    assert run_cli(sync_args(), seed_sandbox.env).exit_code == 0
    seed_sandbox.port.put_entity(ALERT_BP, _stale_alert(1))
    result = run_cli(sync_args("--no-delete"), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    assert "gone-alert-001" in seed_sandbox.port.entities[ALERT_BP]


def test_stale_stub_still_referenced_by_a_kept_entity_is_kept(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    # Port's alias heuristic points the seed alert at a non-existent incident (its alias prefix),
    # which Port creates as a stub (createMissingRelatedEntities). The stub is not produced by the
    # incident resource, but deleting it would only make Port re-create it: it is kept.
    path = default_mapping_with(
        tmp_path / "heuristic.yaml",
        ("relatedIncident: .__relatedIncident.id", "relatedIncident: '.alias | split(\"_\")[0]'"),
    )
    stub = "355f1681-f6e3-4355-a927-897cd8edaf8f"
    assert run_cli(sync_args("--mapping", str(path)), seed_sandbox.env).exit_code == 0
    assert stub in seed_sandbox.port.entities[INCIDENT_BP]
    seed_sandbox.account.remove_incident("652f14b3-019a-4d4c-8b83-e4da527a416c")

    result = run_cli(sync_args("--mapping", str(path)), seed_sandbox.env)

    assert result.exit_code == 0, result.output
    incidents = seed_sandbox.port.entities[INCIDENT_BP]
    assert "652f14b3-019a-4d4c-8b83-e4da527a416c" not in incidents  # gone upstream: deleted
    assert stub in incidents and "4a0c5e6d-b239-4cd9-a7e8-a5f880e99473" in incidents


def test_dry_run_plan_matches_the_real_run(generated_sandbox: Sandbox) -> None:
    assert run_cli(sync_args(), generated_sandbox.env).exit_code == 0
    account = generated_sandbox.account
    changed = [a["id"] for a in account.alerts[:7]]
    for alert_id in changed:
        account.update_alert(alert_id, message="changed upstream")
    removed = [a["id"] for a in account.alerts[-5:]]
    for alert_id in removed:
        account.remove_alert(alert_id)
    new_alert = copy.deepcopy(account.alerts[10])
    new_alert.update(id="brand-new-alert-1", tinyId="99999", alias="brand-new")
    account.add_alert(new_alert)
    generated_sandbox.port.reset_log()

    dry = run_cli(sync_args("--dry-run", "--output", "json"), generated_sandbox.env)
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)["plan"][ALERT_BP]
    assert sorted(plan["update"]) == sorted(changed)
    assert plan["create"] == ["brand-new-alert-1"]
    assert sorted(plan["delete"]) == sorted(removed)
    # Port received only the token request, the blueprint listing (preflight) and searches.
    requests = generated_sandbox.port.requests()
    assert {e.path.rsplit("/", 1)[-1] for e in requests} <= {"access_token", "search", "blueprints"}
    assert all(e.method == "GET" for e in requests if e.path.endswith("/blueprints"))

    generated_sandbox.port.reset_log()
    real = run_cli(sync_args(), generated_sandbox.env)
    assert real.exit_code == 0, real.output
    written = _bulk_identifiers(generated_sandbox, r"/opsGenieAlert/entities/bulk$")
    assert written == set(plan["create"]) | set(plan["update"])
    assert _bulk_identifiers(generated_sandbox, r"/opsGenieAlert/bulk/entities/delete$") == set(plan["delete"])

"""End to end through the real CLI and real HTTP against both emulators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jq
import requests
import yaml

from conftest import OPSGENIE_KEY, REPO, Sandbox, default_mapping_with, run_cli, sync_args
from golden import EXPECTED_ALERT, EXPECTED_INCIDENT, EXPECTED_SERVICE

SERVICE_BP, INCIDENT_BP, ALERT_BP = "opsGenieService", "opsGenieIncident", "opsGenieAlert"
TEAM_ID = "63374eee-0b03-42d4-bb8c-50d1fa64827c"


def test_seed_account_syncs_to_the_seed_entities(seed_sandbox: Sandbox) -> None:
    result = run_cli(sync_args(), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    port = seed_sandbox.port

    # The seed's golden entities, as Port stores them (Port adds its own metadata fields).
    for blueprint, expected in (
        (SERVICE_BP, EXPECTED_SERVICE),
        (INCIDENT_BP, EXPECTED_INCIDENT),
        (ALERT_BP, EXPECTED_ALERT),
    ):
        stored = port.entities[blueprint][expected["identifier"]]
        assert {key: stored[key] for key in expected} == expected, blueprint
    assert sorted(port.entities[SERVICE_BP]) == ["My-Test-Service", "Port-Outbound-Service"]
    assert len(port.entities[INCIDENT_BP]) == 2


def test_generated_account_matches_jq_and_stays_within_request_bound(generated_sandbox: Sandbox) -> None:
    result = run_cli(sync_args(), generated_sandbox.env)
    assert result.exit_code == 0, result.output

    payloads = _enriched_payloads(generated_sandbox)
    mapping = yaml.safe_load((REPO / "mapping.yaml").read_text())
    expected_total = 0
    for resource in mapping["resources"]:
        fields = resource["port"]["entity"]["mappings"]
        blueprint = _jq(fields["blueprint"], {})
        stored = generated_sandbox.port.entities[blueprint]
        for payload in payloads[resource["kind"]]:
            expected = _expected_entity(fields, payload)
            actual = stored[expected["identifier"]]
            assert actual["title"] == expected["title"], expected["identifier"]
            assert actual["properties"] == expected["properties"], expected["identifier"]
            assert actual["relations"] == expected["relations"], expected["identifier"]
            expected_total += 1
    assert sum(len(v) for v in generated_sandbox.port.entities.values()) == expected_total

    opsgenie = generated_sandbox.opsgenie
    list_pages = sum(opsgenie.count("GET", p + "$") for p in ("/v2/alerts", "/v1/incidents/?", "/v1/services"))
    teams = {s["teamId"] for s in generated_sandbox.account.services}
    incidents = len(generated_sandbox.account.incidents)
    assert opsgenie.count() <= list_pages + 2 * len(teams) + incidents + 3
    # No per-item calls: one team detail per distinct team, one on-call call, no alert gets.
    assert opsgenie.count("GET", r"^/v2/teams/") == len(teams)
    assert opsgenie.count("GET", r"on-calls") == 1
    assert opsgenie.count("GET", r"^/v2/alerts/[^/]+$") == 0
    assert opsgenie.count("GET", r"associated-alert-ids") == incidents


# -- independent computation of what Port should hold -------------------------------------
def _list_all(sandbox: Sandbox, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"GenieKey {OPSGENIE_KEY}"}
    items, offset = [], 0
    while True:
        page = requests.get(
            sandbox.opsgenie.url + path, params={**params, "offset": offset, "limit": 100}, headers=headers, timeout=10
        ).json()
        items.extend(page["data"])
        if not page.get("paging", {}).get("next"):
            return items
        offset += 100


def _enriched_payloads(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    account = sandbox.account
    services = _list_all(sandbox, "/v1/services", {})
    incidents = _list_all(sandbox, "/v1/incidents", {"query": "createdAt>=0", "sort": "createdAt", "order": "asc"})
    alerts = _list_all(sandbox, "/v2/alerts", {"sort": "createdAt", "order": "asc"})
    teams = {team["id"]: team for team in account.teams}
    services_by_id = {s["id"]: dict(s) for s in services}  # raw copies: enrichment adds keys
    raw_incidents = [dict(i) for i in incidents]
    for service in services:
        service["__team"] = teams[service["teamId"]]
        service["__incidents"] = [i for i in raw_incidents if service["id"] in (i.get("impactedServices") or [])]
        owned = [s for s in account.schedules if (s.get("ownerTeam") or {}).get("id") == service["teamId"]]
        if owned:
            parent = {k: owned[0][k] for k in ("id", "name", "enabled")}
            service["__oncalls"] = {"_parent": parent, "onCallRecipients": account.oncalls.get(owned[0]["id"], [])}
    for incident in incidents:
        ids = incident.get("impactedServices") or []
        incident["__impactedServices"] = [services_by_id[i] for i in ids if i in services_by_id]
    for alert in alerts:
        for incident in raw_incidents:
            if alert["id"] in account.associated_alerts.get(incident["id"], []):
                alert["__relatedIncident"] = incident
                break
    return {"service": services, "incident": incidents, "alert": alerts}


def _jq(expression: str, payload: Any) -> Any:
    return jq.compile(expression).input_value(payload).first()


def _expected_entity(fields: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "identifier": _jq(fields["identifier"], payload),
        "title": _jq(fields["title"], payload),
        "properties": {k: _jq(v, payload) for k, v in fields.get("properties", {}).items()},
        "relations": {k: _jq(v, payload) for k, v in fields.get("relations", {}).items()},
    }


def load_summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


ALERTS_BY_PRIORITY = (
    "identifier: .id\n          title: .message\n          blueprint: '\"opsGenieAlert\"'",
    "identifier: .priority\n          title: .message\n          blueprint: '\"opsGenieAlert\"'",
)


def test_colliding_identifiers_fail_the_later_items_and_block_deletion(
    generated_sandbox: Sandbox, tmp_path: Path
) -> None:
    """With enableMergeEntity: false, an alert identifier mapped from a non-unique field: the
    first alert of each value is written, every later one fails naming the collision, and the
    run exits 1 without deleting."""
    path = default_mapping_with(
        tmp_path / "mapping.yaml", ALERTS_BY_PRIORITY, ("resources:", "enableMergeEntity: false\nresources:")
    )
    summary = tmp_path / "summary.json"
    result = run_cli(sync_args("--mapping", str(path), "--summary-json", str(summary)), generated_sandbox.env)
    assert result.exit_code == 1, result.output
    alerts = generated_sandbox.account.alerts
    priorities = {a["priority"] for a in alerts}
    assert set(generated_sandbox.port.entities["opsGenieAlert"]) == priorities
    [alert_stats] = [r for r in load_summary(summary)["resources"] if r["kind"] == "alert"]
    assert alert_stats["failed"] == len(alerts) - len(priorities)
    assert alert_stats["merged"] == 0 and alert_stats["warnings"] == []
    assert "identifier collision" in result.output
    [bp] = [b for b in load_summary(summary)["blueprints"] if b["blueprint"] == "opsGenieAlert"]
    assert bp["deletion"].startswith("skipped") and bp["deleted"] == 0


def test_streamed_items_with_one_identifier_merge_as_port_would(generated_sandbox: Sandbox, tmp_path: Path) -> None:
    """enableMergeEntity (the default): alerts (a streamed kind) keyed on their priority. The first
    alert of each priority is written as it streams; the later ones are merged and written once
    more after every other write, so Port holds what successive merged upserts leave: the last
    alert of each priority in listing order (oldest first). Exit 0, with a warning; deletion runs."""
    path = default_mapping_with(tmp_path / "mapping.yaml", ALERTS_BY_PRIORITY)
    summary_path = tmp_path / "summary.json"
    result = run_cli(sync_args("--mapping", str(path), "--summary-json", str(summary_path)), generated_sandbox.env)
    assert result.exit_code == 0, result.output
    summary = load_summary(summary_path)
    alerts = sorted(generated_sandbox.account.alerts, key=lambda a: (a["createdAt"], a["id"]))
    last = {a["priority"]: a for a in alerts}
    stored = generated_sandbox.port.entities["opsGenieAlert"]
    assert set(stored) == set(last)
    for priority, alert in last.items():
        assert stored[priority]["title"] == alert["message"], priority
        assert stored[priority]["properties"]["count"] == alert["count"], priority
    [stats] = [r for r in summary["resources"] if r["kind"] == "alert"]
    assert (stats["failed"], stats["merged_items"], stats["merged_entities"]) == (0, len(alerts), len(last))
    assert stats["upserted"] == 2 * len(last) and stats["merged"] == len(alerts) - 2 * len(last)
    assert stats["fetched"] == stats["upserted"] + stats["merged"]
    assert f"{len(alerts)} items merged into {len(last)} entities" in stats["warnings"][0]
    assert summary["warnings"] == [f"resources[2] alert: {stats['warnings'][0]}"]
    [bp] = [b for b in summary["blueprints"] if b["blueprint"] == "opsGenieAlert"]
    assert bp["deletion"] == "done" and bp["upserted"] == 2 * len(last)

"""Past Opsgenie's 20,000 offset ceiling: alerts arrive completely and exactly once (also with
alerts created during the run); kinds without a time filter are reported truncated, never cut
silently."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

from opsgenie_export.sandbox.accounts import generate_account

from conftest import Sandbox, run_cli, start_sandbox

ALERTS_ONLY = """
resources:
  - kind: alert
    selector:
      query: 'true'
    port:
      entity:
        mappings:
          identifier: .id
          title: .message
          blueprint: '"opsGenieAlert"'
          properties:
            status: .status
            priority: .priority
"""

SERVICES_ONLY = """
resources:
  - kind: service
    selector:
      query: 'true'
    port:
      entity:
        mappings:
          identifier: .id
          title: .name
          blueprint: '"opsGenieService"'
          properties:
            tags: .tags
"""


def _run(box: Sandbox, tmp_path: Path, mapping: str) -> tuple[int, dict[str, Any], str]:
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping)
    summary = tmp_path / "summary.json"
    args = ["sync", "--mapping", str(path), "--initialize-port-resources", "--summary-json", str(summary)]
    args += ["--workers", "8"]
    result = run_cli(args, box.env)
    return result.exit_code, json.loads(summary.read_text()), result.output


def _upserted_identifiers(box: Sandbox, blueprint: str) -> Counter[str]:
    sent: Counter[str] = Counter()
    for entry in box.port.requests("POST", rf"/{blueprint}/entities/bulk$"):
        sent.update(e["identifier"] for e in json.loads(entry.body)["entities"])
    return sent


def test_alerts_past_the_ceiling_arrive_exactly_once_even_when_created_during_the_run(tmp_path: Path) -> None:
    account = generate_account(alerts=20_450, incidents=5, services=3, teams=2, seed=21)
    box = start_sandbox(account)
    template = copy.deepcopy(account.alerts[0])
    created: list[str] = []

    def create_alerts_while_listing(request: Any) -> None:
        if request.path == "/v2/alerts" and len(created) < 30:
            alert = copy.deepcopy(template)
            alert.update(
                id=f"during-run-{len(created)}", tinyId=str(900_000 + len(created)), alias=f"new-{len(created)}"
            )
            alert["createdAt"] = alert["updatedAt"] = "2030-01-01T00:00:00.000Z"
            account.add_alert(alert)
            created.append(alert["id"])

    box.opsgenie.on_request = create_alerts_while_listing
    try:
        code, summary, output = _run(box, tmp_path, ALERTS_ONLY)
        assert code == 0, output
        expected = {a["id"] for a in account.alerts}
        assert len(expected) == 20_450 + 30
        assert set(box.port.entities["opsGenieAlert"]) == expected
        sent = _upserted_identifiers(box, "opsGenieAlert")
        assert set(sent) == expected and max(sent.values()) == 1  # exactly once
        alerts = summary["resources"][0]
        assert alerts["fetched"] == alerts["upserted"] == len(expected)
        # No request ever crossed the ceiling.
        assert all(e.status != 422 for e in box.opsgenie.requests("GET", r"^/v2/alerts$"))
    finally:
        box.opsgenie.stop()
        box.port.stop()


def test_services_past_the_ceiling_are_reported_truncated(tmp_path: Path) -> None:
    account = generate_account(alerts=0, incidents=0, services=20_030, teams=3, seed=22)
    box = start_sandbox(account)
    try:
        code, summary, output = _run(box, tmp_path, SERVICES_ONLY)
        assert code == 1, output
        services = summary["resources"][0]
        assert services["status"] == "truncated"
        assert "20000" in services["reason"]
        assert services["fetched"] == services["upserted"] == 20_000
        deletion = summary["blueprints"][0]["deletion"]
        assert deletion.startswith("skipped") and "truncated" in deletion
        assert "truncated" in output
    finally:
        box.opsgenie.stop()
        box.port.stop()

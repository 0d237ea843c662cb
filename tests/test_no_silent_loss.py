"""No silent loss (issue 11): blueprints chosen by JQ are reconciled, write failures guard
deletion, the accounting checks itself, and an unanticipated failure still reports — each
through the real CLI against the emulators."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsgenie_export.sandbox.accounts import generate_account
from opsgenie_export.sandbox.server import FaultRule

from conftest import (
    REPO,
    CliResult,
    Sandbox,
    default_mapping_with,
    run_cli,
    running_sandbox,
    start_sandbox,
    sync_args,
)

ALERT_BP, CRITICAL_BP = "opsGenieAlert", "opsGenieCriticalAlert"
CHOSEN_BY_JQ = '\'if .priority == "P1" then "opsGenieCriticalAlert" else "opsGenieAlert" end\''


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(generate_account(alerts=120, incidents=12, services=8, teams=3, seed=21)) as box:
        yield box


def _sync(box: Sandbox, tmp_path: Path, *extra: str) -> tuple[CliResult, dict[str, Any]]:
    summary = tmp_path / "summary.json"
    summary.unlink(missing_ok=True)
    result = run_cli(sync_args("--retries", "2", "--summary-json", str(summary), *extra), box.env)
    return result, json.loads(summary.read_text())


def _critical_setup(tmp_path: Path) -> tuple[Path, Path]:
    """The repository's blueprints plus opsGenieCriticalAlert (a copy of opsGenieAlert), and the
    mapping whose alert blueprint is chosen by JQ from the priority."""
    folder = tmp_path / "blueprints"
    shutil.copytree(REPO / "blueprints", folder)
    critical = json.loads((folder / f"{ALERT_BP}.json").read_text())
    critical["identifier"], critical["title"] = CRITICAL_BP, "Critical Opsgenie Alert"
    (folder / f"{CRITICAL_BP}.json").write_text(json.dumps(critical))
    mapping = default_mapping_with(
        tmp_path / "mapping.yaml", ("blueprint: '\"opsGenieAlert\"'", f"blueprint: {CHOSEN_BY_JQ}")
    )
    return folder, mapping


def test_blueprints_chosen_by_jq_are_reconciled_and_unchanged_entities_skipped(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    folder, mapping = _critical_setup(tmp_path)
    args = ("--mapping", str(mapping), "--blueprints", str(folder))
    critical = {a["id"] for a in sandbox.account.alerts if a["priority"] == "P1"}
    assert critical and len(critical) < len(sandbox.account.alerts)

    first, data = _sync(sandbox, tmp_path, *args)
    assert first.exit_code == 0, first.output
    assert set(sandbox.port.entities[CRITICAL_BP]) == critical
    assert set(sandbox.port.entities[ALERT_BP]) == {a["id"] for a in sandbox.account.alerts} - critical
    alerts = next(r for r in data["resources"] if r["kind"] == "alert")
    assert alerts["blueprints"] == [ALERT_BP, CRITICAL_BP]

    for blueprint in (ALERT_BP, CRITICAL_BP):
        sandbox.port.put_entity(blueprint, {"identifier": f"stale-{blueprint}", "title": "gone", "properties": {}})
    writes = sandbox.port.count("POST", r"/entities/bulk$")
    second, data = _sync(sandbox, tmp_path, *args)
    assert second.exit_code == 0, second.output
    assert sandbox.port.count("POST", r"/entities/bulk$") == writes  # every entity unchanged: nothing written
    deletion = {b["blueprint"]: (b["deletion"], b["deleted"]) for b in data["blueprints"]}
    assert deletion[ALERT_BP] == ("done", 1) and deletion[CRITICAL_BP] == ("done", 1)
    assert f"stale-{ALERT_BP}" not in sandbox.port.entities[ALERT_BP]
    assert f"stale-{CRITICAL_BP}" not in sandbox.port.entities[CRITICAL_BP]
    assert set(sandbox.port.entities[CRITICAL_BP]) == critical


def test_a_chosen_blueprint_no_item_picks_any_more_is_still_reconciled(sandbox: Sandbox, tmp_path: Path) -> None:
    """Every P1 alert gone: the critical blueprint's entities are all stale, and deleted (with
    entityDeletionThreshold 1, which allows deleting all of them)."""
    folder, mapping = _critical_setup(tmp_path)
    assert _sync(sandbox, tmp_path, "--mapping", str(mapping), "--blueprints", str(folder))[0].exit_code == 0
    assert sandbox.port.entities[CRITICAL_BP]
    nobody = '\'if .priority == "P0" then "opsGenieCriticalAlert" else "opsGenieAlert" end\''
    mapping = default_mapping_with(
        tmp_path / "nobody.yaml",
        ("resources:\n", "entityDeletionThreshold: 1\nresources:\n"),
        ("blueprint: '\"opsGenieAlert\"'", f"blueprint: {nobody}"),
    )
    result, data = _sync(sandbox, tmp_path, "--mapping", str(mapping), "--blueprints", str(folder))
    assert result.exit_code == 0, result.output
    assert not sandbox.port.entities[CRITICAL_BP]
    assert set(sandbox.port.entities[ALERT_BP]) == {a["id"] for a in sandbox.account.alerts}
    assert next(b for b in data["blueprints"] if b["blueprint"] == CRITICAL_BP)["deletion"] == "done"


def test_failed_writes_guard_deletion(sandbox: Sandbox, tmp_path: Path) -> None:
    """Issue 16 case 2: a blueprint with failed writes in this run is not reconciled."""
    assert _sync(sandbox, tmp_path)[0].exit_code == 0
    sandbox.port.put_entity(ALERT_BP, {"identifier": "stale-alert", "title": "gone", "properties": {}})
    # Every alert changes, and Port refuses some of the writes (a 422 inside a 207).
    for alert in sandbox.account.alerts:
        alert["message"] += " (edited)"
    sandbox.port.faults.add(FaultRule(path=r"/opsGenieAlert/entities/bulk$", status=422, times=3))
    result, data = _sync(sandbox, tmp_path, "--retries", "0")
    assert result.exit_code == 1, result.output
    alert = next(b for b in data["blueprints"] if b["blueprint"] == ALERT_BP)
    assert alert["failed"] > 0
    assert alert["deletion"].startswith("skipped") and "writes to opsGenieAlert failed" in alert["deletion"]
    assert "stale-alert" in sandbox.port.entities[ALERT_BP]
    assert "writes to opsGenieAlert failed" in result.stderr


def test_accounting_that_does_not_add_up_exits_1_naming_it(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: a (simulated) bug loses one alert without counting it; the exit-code
    function notices, exits 1 and names the unaccounted item."""
    from opsgenie_export import sync

    original = sync._Run.map_and_write
    lost = {"done": False}

    def losing_one(self: Any, compiled: Any, item: dict[str, Any], stats: Any) -> None:
        if stats.kind == "alert" and not lost["done"]:
            lost["done"] = True
            return  # dropped on the floor: no bucket
        original(self, compiled, item, stats)

    monkeypatch.setattr(sync._Run, "map_and_write", losing_one)
    result, data = _sync(sandbox, tmp_path, "--output", "json")
    assert lost["done"]
    assert result.exit_code == 1, result.output
    assert data["exitCode"] == 1 and data["result"] == "partial"
    assert any("resources[2] alert" in line and "1 unaccounted" in line for line in data["unaccounted"])
    assert "accounting does not add up" in result.stderr and "1 unaccounted" in result.stderr
    assert json.loads(result.stdout)["unaccounted"] == data["unaccounted"]


def test_deletion_counts_only_what_port_confirmed(sandbox: Sandbox, tmp_path: Path) -> None:
    assert _sync(sandbox, tmp_path)[0].exit_code == 0
    for n in range(3):
        sandbox.port.put_entity(ALERT_BP, {"identifier": f"stale-{n}", "title": "gone", "properties": {}})
    confirmed_one = {"ok": True, "deletedEntities": ["stale-0"]}
    sandbox.port.faults.add(FaultRule(path=r"/bulk/entities/delete$", status=200, body=confirmed_one, times=1))
    result, data = _sync(sandbox, tmp_path)
    alert = next(b for b in data["blueprints"] if b["blueprint"] == ALERT_BP)
    assert result.exit_code == 1, result.output
    assert (alert["deleted"], alert["delete_failed"]) == (1, 2)
    assert any("delete not confirmed by Port" in error for error in alert["errors"])


def test_pacing_waits_are_charged_to_the_wait_budget(tmp_path: Path) -> None:
    """Port's rate-limit window nearly spent, its reset two minutes away: waiting for it would pass
    --max-wait 5, so the run ends at once saying so (instead of sleeping uncounted)."""
    box = start_sandbox(generate_account(alerts=60, incidents=6, services=4, seed=3), port_rate_limit=(6, 120.0))
    try:
        started = time.monotonic()
        result, data = _sync(box, tmp_path, "--max-wait", "5")
        assert result.exit_code == 1, result.output
        assert time.monotonic() - started < 60
        assert "wait budget" in data["fatal"] and "rate limit window" in data["fatal"]
        assert box.port.count("POST", r"/bulk/entities/delete$") == 0
    finally:
        box.opsgenie.stop()
        box.port.stop()


def test_counters_and_blueprint_stats_are_thread_safe() -> None:
    from opsgenie_export.opsgenie.client import OpsgenieStats
    from opsgenie_export.outcome import RunOutcome
    from opsgenie_export.port.client import PortStats

    port, opsgenie, outcome = PortStats(), OpsgenieStats(), RunOutcome()
    seen: list[Any] = []

    def hammer() -> None:
        for _ in range(5000):
            port.add("retries")
            port.add("requests", "bulk_upsert")
            opsgenie.retried()
            seen.append(outcome.blueprint("bp"))
            outcome.blueprint("bp").add("upserted")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert port.retries == port.requests["bulk_upsert"] == opsgenie.retries == 40_000
    assert len({id(stats) for stats in seen}) == 1 and outcome.blueprints["bp"].upserted == 40_000

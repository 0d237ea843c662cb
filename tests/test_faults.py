"""The fault suite: every cell runs the real CLI against faulty emulators and checks the exit code,
that every fetched item lands in exactly one bucket, that nothing was wrongly deleted, and that no
secret appears in any output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
    assert_no_secret_leak,
    default_mapping_with,
    run_cli,
    running_sandbox,
    start_sandbox,
    sync_args,
)

ALERT_BP, INCIDENT_BP, SERVICE_BP = "opsGenieAlert", "opsGenieIncident", "opsGenieService"
FAST = ("--retries", "2", "--max-wait", "30")


def _account() -> Any:
    return generate_account(alerts=150, incidents=15, services=10, teams=4, seed=5)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(_account()) as box:
        yield box


def _sync(box: Sandbox, tmp_path: Path, *extra: str) -> tuple[CliResult, dict[str, Any]]:
    summary = tmp_path / "summary.json"
    result = run_cli(sync_args(*FAST, "--summary-json", str(summary), *extra), box.env)
    data = json.loads(summary.read_text()) if summary.exists() else {}
    _assert_no_secret(result.output + (summary.read_text() if summary.exists() else ""))
    for resource in data.get("resources", []):
        settled = resource["filtered"] + resource["upserted"] + resource["unchanged"] + resource["failed"]
        assert settled == resource["fetched"], resource
    return result, data


def _assert_no_secret(text: str) -> None:
    assert_no_secret_leak(text)  # the suite's one leak check: every form of every secret


def _assert_complete(box: Sandbox) -> None:
    """Every Opsgenie item arrived in Port."""
    account = box.account
    assert set(box.port.entities[ALERT_BP]) == {a["id"] for a in account.alerts}
    assert set(box.port.entities[INCIDENT_BP]) >= {i["id"] for i in account.incidents}
    assert len(box.port.entities[SERVICE_BP]) == len(account.services)


def _stale(box: Sandbox, count: int = 5) -> set[str]:
    for name in ("opsGenieService", "opsGenieIncident", "opsGenieAlert"):  # targets first
        if name not in box.port.blueprints:
            box.port.add_blueprint(json.loads((REPO / "blueprints" / f"{name}.json").read_text()))
    identifiers = {f"stale-alert-{n}" for n in range(count)}
    for identifier in identifiers:
        box.port.put_entity(ALERT_BP, {"identifier": identifier, "title": "gone", "properties": {}, "relations": {}})
    return identifiers


@pytest.mark.parametrize("limits_known", [True, False], ids=["limits-learned", "team-key-no-limits"])
def test_429_storm_on_both_apis(tmp_path: Path, limits_known: bool) -> None:
    limits = {"search": (2, 60), "incident": (4, 240), "configuration": (3, 120), "schedule-oncalls": (1, 30)}
    box = start_sandbox(_account(), rate_limits=limits, port_rate_limit=(4, 1.0))
    # Explicit 429s too, so the Retry-After path runs even when proactive pacing avoids real ones.
    box.port.faults.add(FaultRule(path=r"/entities/bulk$", status=429, headers={"Retry-After": "1"}, times=3))
    if not limits_known:  # a team key cannot read /v2/request-limits/: pacing must adapt to 429s
        box.opsgenie.faults.add(FaultRule(path=r"request-limits", status=403))
    try:
        result, _data = _sync(box, tmp_path, "--max-wait", "120")
        assert result.exit_code == 0, result.output
        _assert_complete(box)
        assert box.port.throttled <= 0.02 * box.port.count() + 1  # paced from x-ratelimit-remaining
        assert box.port.count("POST", r"/entities/bulk$") > len(box.account.alerts) // 20  # the 429s were retried
        throttled = sum(box.opsgenie.throttled.values())
        if limits_known:
            assert throttled <= 0.02 * box.opsgenie.count()
        else:
            assert throttled > 0
    finally:
        box.opsgenie.stop()
        box.port.stop()


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule(error_rate=0.15),
        FaultRule(drop_rate=0.1),
        FaultRule(truncate_rate=0.1),
    ],
    ids=["5xx-bursts", "dropped-connections", "truncated-json"],
)
def test_transient_faults_on_both_apis_lose_nothing(sandbox: Sandbox, tmp_path: Path, rule: FaultRule) -> None:
    sandbox.opsgenie.faults.add(rule)
    sandbox.port.faults.add(
        FaultRule(error_rate=rule.error_rate, drop_rate=rule.drop_rate, truncate_rate=rule.truncate_rate)
    )
    result, data = _sync(sandbox, tmp_path, "--retries", "6")
    assert result.exit_code == 0, result.output
    _assert_complete(sandbox)
    assert data["requests"]["retries"] > 0


REALISTIC_FAULTS = ("truncate", "cut_before", "garble", "html", "null_data", "non_utf8")


@pytest.mark.parametrize("api", ["opsgenie", "port"])
@pytest.mark.parametrize("fault", REALISTIC_FAULTS)
def test_each_realistic_fault_on_each_api_is_retried(sandbox: Sandbox, tmp_path: Path, api: str, fault: str) -> None:
    """A cut at the socket (before or after the write was applied), a garbled body, an HTML page
    with 200, `{"data": null}` and bytes that are not UTF-8: each one retried, nothing lost."""
    server = sandbox.opsgenie if api == "opsgenie" else sandbox.port
    server.faults.add(FaultRule(**{f"{fault}_rate": 0.12}))
    result, data = _sync(sandbox, tmp_path, "--retries", "6")
    assert result.exit_code == 0, result.output
    _assert_complete(sandbox)
    assert data["requests"]["retries"] > 0
    assert "Traceback" not in result.output


def test_cut_bodies_and_dropped_connections_on_both_apis_lose_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    """Done when: 10% of Port responses (bulk writes included) and 5% of Opsgenie responses cut
    mid-body, plus 2% dropped connections: exit 0, every entity arrives, the buckets add up."""
    sandbox.port.faults.add(FaultRule(truncate_rate=0.10, drop_rate=0.02))
    sandbox.opsgenie.faults.add(FaultRule(truncate_rate=0.05, drop_rate=0.02))
    result, data = _sync(sandbox, tmp_path, "--retries", "6")
    assert result.exit_code == 0, result.output
    _assert_complete(sandbox)
    cut_writes = [e for e in sandbox.port.requests("POST", r"/entities/bulk$") if e.status == 200]
    assert len(cut_writes) > len(sandbox.account.alerts) // 20  # some bulk writes were retried
    assert all(r["fetched"] > 0 for r in data["resources"])


def test_bulk_writes_cut_before_they_apply_arrive_or_count_as_failed(sandbox: Sandbox, tmp_path: Path) -> None:
    """Done when: bulk-write responses cut before the write is applied — every entity arrives
    after retries, or the run exits 1 and counts the missing ones; never exit 0 with one missing."""
    sandbox.port.faults.add(FaultRule(path=r"/entities/bulk$", cut_before_rate=0.3))
    result, data = _sync(sandbox, tmp_path, "--retries", "6")
    assert result.exit_code == 0, result.output
    _assert_complete(sandbox)
    # With no retries left, the cut writes are failures — counted, and the run is partial.
    with running_sandbox(_account()) as box:
        box.port.faults.add(FaultRule(path=r"/entities/bulk$", cut_before_rate=0.3))
        result, data = _sync(box, tmp_path, "--retries", "0")
        missing = {a["id"] for a in box.account.alerts} - set(box.port.entities.get(ALERT_BP, {}))
        alerts = next(r for r in data["resources"] if r["kind"] == "alert")
        assert missing and result.exit_code == 1, result.output
        # Every fetched alert that is not in Port is counted as failed; the rest were never fetched
        # because the run stopped (Port unreachable after its retries), which the summary says.
        arrived = len(box.account.alerts) - len(missing)
        assert alerts["upserted"] == arrived
        assert alerts["failed"] == alerts["fetched"] - arrived - alerts["filtered"]
        assert alerts["fetched"] == len(box.account.alerts) or data["fatal"]
        errors = [error for r in data["resources"] for error in r["errors"]]
        assert any("response cut short" in error for error in errors), errors
        assert box.port.count("POST", r"/bulk/entities/delete$") == 0


def test_port_token_expiring_mid_run(sandbox: Sandbox, tmp_path: Path) -> None:
    seen = {"n": 0}

    def expire_after_some_requests(request: Any) -> None:
        seen["n"] += 1
        if seen["n"] == 12:  # mid-run: this account takes about 25 Opsgenie requests
            sandbox.port.expire_tokens()

    sandbox.opsgenie.on_request = expire_after_some_requests
    result, _ = _sync(sandbox, tmp_path)
    assert result.exit_code == 0, result.output
    _assert_complete(sandbox)
    assert sandbox.port.count("POST", r"/auth/access_token$") == 2


def test_413_falls_back_to_single_upserts(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.port.faults.add(FaultRule(path=r"/opsGenieAlert/entities/bulk$", status=413, times=2))
    result, _ = _sync(sandbox, tmp_path)
    assert result.exit_code == 0, result.output
    _assert_complete(sandbox)
    assert sandbox.port.count("POST", r"/opsGenieAlert/entities$") == 40  # two batches of 20, one by one


def test_207_partial_failures_are_retried_once_then_reported(sandbox: Sandbox, tmp_path: Path) -> None:
    # Port refuses a string in the number property `count`: a per-entity 422 inside a 207.
    path = default_mapping_with(
        tmp_path / "mapping.yaml", ("count: .count", "count: 'if .count > 5 then \"many\" else .count end'")
    )
    bad = {a["id"] for a in sandbox.account.alerts if a["count"] > 5}
    assert bad
    result, data = _sync(sandbox, tmp_path, "--mapping", str(path))
    assert result.exit_code == 1, result.output
    alerts = next(r for r in data["resources"] if r["kind"] == "alert")
    assert alerts["failed"] == len(bad)
    assert alerts["upserted"] == len(sandbox.account.alerts) - len(bad)
    assert any(next(iter(bad)) in e or "count" in e for e in alerts["errors"])
    blueprint = next(b for b in data["blueprints"] if b["blueprint"] == ALERT_BP)
    assert blueprint["failed"] == len(bad)
    # Each failed entity was sent twice: in its first batch and in the end-of-run retry.
    sent = [
        e["identifier"]
        for entry in sandbox.port.requests("POST", r"/opsGenieAlert/entities/bulk$")
        for e in json.loads(entry.body)["entities"]
    ]
    assert all(sent.count(identifier) == 2 for identifier in bad)
    assert set(sandbox.port.entities[ALERT_BP]) == {a["id"] for a in sandbox.account.alerts} - bad


def test_one_failing_kind_blocks_only_what_depends_on_it(sandbox: Sandbox, tmp_path: Path) -> None:
    assert _sync(sandbox, tmp_path)[0].exit_code == 0
    stale = _stale(sandbox)
    services_before = json.dumps(sandbox.port.entities[SERVICE_BP], sort_keys=True)
    sandbox.opsgenie.faults.add(FaultRule(path=r"^/v1/services", status=500))

    result, data = _sync(sandbox, tmp_path)

    assert result.exit_code == 1, result.output
    kinds = {r["kind"]: r for r in data["resources"]}
    assert kinds["service"]["status"] == "failed"
    # Incidents that name impacted services cannot be enriched; the others need no service.
    needing = sum(1 for i in sandbox.account.incidents if i.get("impactedServices"))
    assert 0 < kinds["incident"]["failed"] == needing
    deletion = {b["blueprint"]: b["deletion"] for b in data["blueprints"]}
    assert deletion[SERVICE_BP].startswith("skipped") and deletion[INCIDENT_BP].startswith("skipped")
    # Alerts depend on incidents only: synced and reconciled on their own.
    assert deletion[ALERT_BP] == "done"
    assert not stale & set(sandbox.port.entities[ALERT_BP])
    assert json.dumps(sandbox.port.entities[SERVICE_BP], sort_keys=True) == services_before


def test_incident_api_missing_from_the_plan(tmp_path: Path) -> None:
    box = start_sandbox(_account(), incident_api=False)
    try:
        result, data = _sync(box, tmp_path)
        assert result.exit_code == 1, result.output
        incident = next(r for r in data["resources"] if r["kind"] == "incident")
        assert "Standard or Enterprise" in incident["reason"] and "__relatedIncident" in incident["reason"]
        assert box.port.count("POST", r"/bulk/entities/delete$") == 0
    finally:
        box.opsgenie.stop()
        box.port.stop()


def test_port_unreachable_exits_1_quickly_and_touches_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.port.stop()
    started = time.monotonic()
    result, _ = _sync(sandbox, tmp_path)
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 20
    assert "connection failed" in result.stderr
    assert sandbox.opsgenie.count() == 0


def test_port_search_failing_stops_the_run_with_nothing_written_or_deleted(sandbox: Sandbox, tmp_path: Path) -> None:
    """Port's state is read in the background while Opsgenie is listed: when that read fails for
    good, no entity is written (nothing can be compared) and nothing is deleted."""
    stale = _stale(sandbox, 3)
    sandbox.port.faults.add(FaultRule(path=r"/blueprints/opsGenieAlert/entities/search$", status=500))
    result, data = _sync(sandbox, tmp_path)
    assert result.exit_code == 1, result.output
    assert "could not read the entities Port holds" in result.stderr
    assert "opsGenieAlert" in result.stderr
    assert data["fatal"].startswith("could not read the entities Port holds")
    assert set(sandbox.port.entities[ALERT_BP]) == stale  # still there, and nothing new
    assert not sandbox.port.entities.get(SERVICE_BP) and not sandbox.port.entities.get(INCIDENT_BP)
    assert not [
        e
        for e in sandbox.port.requests()
        if e.method in ("POST", "DELETE") and "/entities" in e.path and "search" not in e.path
    ]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_run_before_any_deletion(tmp_path: Path, signum: int, code: int) -> None:
    box = start_sandbox(_account(), latency=0.05)
    try:
        _stale(box, 3)
        env = {**os.environ, **box.env, "PYTHONUNBUFFERED": "1"}
        summary = tmp_path / "summary.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "opsgenie_export", *sync_args("--summary-json", str(summary))],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while box.opsgenie.count() < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == code, stderr
        assert box.port.count("POST", r"/bulk/entities/delete$") == 0
        assert len(box.port.entities[ALERT_BP]) >= 3
        _assert_no_secret(stdout + stderr)
        assert json.loads(summary.read_text())["exitCode"] == code
    finally:
        box.opsgenie.stop()
        box.port.stop()


def test_port_throttling_forever_ends_the_run_within_the_wait_budget(sandbox: Sandbox, tmp_path: Path) -> None:
    """Done when: Port answering 429 with Retry-After: 3600 forever, --max-wait 20: exit 1 within
    20 s plus one request timeout, nothing deleted, and the error says why."""
    stale = _stale(sandbox, 3)
    sandbox.port.faults.add(FaultRule(path=r"/entities/bulk$", status=429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    result, data = _sync(sandbox, tmp_path, "--max-wait", "20", "--timeout", "5")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert elapsed < 20 + 5 + 10  # the budget, one request timeout, and slack for a loaded machine
    assert "wait budget" in data["fatal"] and "--max-wait" in data["fatal"]
    assert stale <= set(sandbox.port.entities[ALERT_BP])
    assert sandbox.port.count("POST", r"/bulk/entities/delete$") == 0
    assert all(b["deletion"] != "done" for b in data["blueprints"])

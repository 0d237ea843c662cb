"""`__relatedIncident` across runs: the link cache spares unchanged incidents their
`associated-alert-ids` call, and every way a reused link could be wrong is re-asked.

All through the real CLI against the emulators; calls are counted at the Opsgenie emulator and
relations are read from the Port emulator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsgenie_export.opsgenie.links import DEFAULT_MAX_AGE, LinkCache
from opsgenie_export.sandbox.accounts import generate_account

from conftest import OPSGENIE_KEY, PORT_SECRET, Sandbox, run_cli, running_sandbox, sync_args

ALERT_BP = "opsGenieAlert"
ASSOCIATED = r"associated-alert-ids"


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with running_sandbox(generate_account(alerts=200, incidents=40, services=10, teams=4, seed=23)) as sandbox:
        yield sandbox


def _sync(box: Sandbox, cache: Path | None, *extra: str) -> tuple[int, dict[str, Any], str]:
    """One run; returns (exit code, summary, stderr) and checks no secret leaked anywhere."""
    summary = Path(os.getcwd()) / "summary.json"
    cache_args = ("--cache-dir", str(cache)) if cache else ("--no-cache",)
    result = run_cli(sync_args(*cache_args, "--summary-json", str(summary), *extra), box.env)
    text = result.output + summary.read_text()
    if cache and cache.exists():
        text += "".join(p.name + p.read_text() for p in cache.iterdir())
    for secret in (OPSGENIE_KEY, PORT_SECRET):
        assert secret not in text
    return result.exit_code, json.loads(summary.read_text()), result.stderr


def _asked(box: Sandbox) -> set[str]:
    """Incidents whose associated alerts were requested since the log was last reset."""
    return {r.path.split("/")[3] for r in box.opsgenie.requests("GET", ASSOCIATED)}


def _relations(box: Sandbox) -> dict[str, Any]:
    return {key: e["relations"].get("relatedIncident") for key, e in box.port.entities[ALERT_BP].items()}


def _expected_relations(box: Sandbox) -> dict[str, Any]:
    """From the account itself: the first incident (in listing order) that lists each alert."""
    account = box.account
    by_alert: dict[str, str] = {}
    for incident in sorted(account.incidents, key=lambda i: (i["createdAt"], i["id"])):
        for alert_id in account.associated_alerts.get(incident["id"], []):
            by_alert.setdefault(alert_id, incident["id"])
    return {alert["id"]: by_alert.get(alert["id"]) for alert in account.alerts}


def _open(box: Sandbox) -> set[str]:
    return {i["id"] for i in box.account.incidents if i["status"] == "open"}


def test_second_run_asks_only_open_incidents_and_writes_nothing(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code, first, _ = _sync(box, cache)
    assert code == 0
    assert _asked(box) == {i["id"] for i in box.account.incidents}
    assert first["incidentLinks"] == {
        "asked": 40,
        "reused": 0,
        "rechecked": 0,
        "cache": first["incidentLinks"]["cache"],
    }
    assert _relations(box) == _expected_relations(box)
    [cache_file] = cache.glob("incident-links-*")
    assert OPSGENIE_KEY not in cache_file.name and cache_file.name.startswith("incident-links-")

    box.opsgenie.reset_log()
    box.port.reset_log()
    code, second, stderr = _sync(box, cache)
    assert code == 0
    assert 0 < len(_open(box)) < 40
    assert _asked(box) == _open(box)
    assert second["incidentLinks"]["reused"] == 40 - len(_open(box))
    assert sum(b["upserted"] for b in second["blueprints"]) == 0
    assert _relations(box) == _expected_relations(box)
    assert f"reused {40 - len(_open(box))} from the cache" in stderr


def test_no_cache_asks_every_incident_and_writes_no_file(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache)[0] == 0
    box.opsgenie.reset_log()
    code, summary, _ = _sync(box, None)
    assert code == 0
    assert _asked(box) == {i["id"] for i in box.account.incidents}
    assert summary["incidentLinks"]["cache"] == "off"
    assert len(list(cache.iterdir())) == 1  # the first run's links; --no-cache wrote no file


def test_changed_incident_is_asked_again_and_its_new_alert_linked(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache)[0] == 0
    resolved = next(i for i in box.account.incidents if i["status"] == "resolved")
    alert = next(a for a in box.account.alerts if _expected_relations(box)[a["id"]] is None)
    box.account.associate(resolved["id"], alert["id"])
    box.account.update_incident(resolved["id"], updatedAt="2099-01-01T00:00:00.000Z")

    box.opsgenie.reset_log()
    assert _sync(box, cache)[0] == 0
    assert _asked(box) == _open(box) | {resolved["id"]}
    assert _relations(box)[alert["id"]] == resolved["id"]


def test_status_change_alone_is_enough_to_ask_again(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache)[0] == 0
    closed = next(i for i in box.account.incidents if i["status"] == "resolved")
    box.account.update_incident(closed["id"], status="closed")
    box.opsgenie.reset_log()
    assert _sync(box, cache)[0] == 0
    assert closed["id"] in _asked(box)


def test_alert_named_after_a_reused_incident_rechecks_it(box: Sandbox, tmp_path: Path) -> None:
    """An alert that an incident created (alias `<incidentId>_…`) but that the reused entry lacks:
    the incident is asked again, even though its updatedAt did not move."""
    cache = tmp_path / "cache"
    assert _sync(box, cache)[0] == 0
    incident = next(i for i in box.account.incidents if i["status"] == "closed")
    template = box.account.alerts[-1]
    alert = {**template, "id": "new-alert-of-closed-incident", "tinyId": "99999", "alias": f"{incident['id']}_late"}
    box.account.add_alert(alert)
    box.account.associate(incident["id"], alert["id"])

    box.opsgenie.reset_log()
    code, summary, _ = _sync(box, cache)
    assert code == 0
    assert _asked(box) == _open(box) | {incident["id"]}
    assert summary["incidentLinks"]["rechecked"] == 1
    assert _relations(box)["new-alert-of-closed-incident"] == incident["id"]


def test_entries_older_than_the_max_age_are_asked_again(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache)[0] == 0
    [path] = cache.glob("incident-links-*")
    document = json.loads(path.read_text())
    aged = sorted(document["incidents"])[:5]
    for incident_id in aged:
        document["incidents"][incident_id][2] -= DEFAULT_MAX_AGE  # fetched a max age earlier
    path.write_text(json.dumps(document))

    box.opsgenie.reset_log()
    assert _sync(box, cache)[0] == 0
    assert _asked(box) == _open(box) | set(aged)


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"format": 99}', '{"format": 1, "incidents": [1]}', '{"format": 1, "incidents": {"x": [1]}}'],
)
def test_damaged_cache_is_ignored_with_a_warning(box: Sandbox, tmp_path: Path, content: str) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache)[0] == 0
    [path] = cache.glob("incident-links-*")
    path.write_text(content)
    box.opsgenie.reset_log()
    code, _, stderr = _sync(box, cache)
    assert code == 0
    assert "link cache" in stderr and str(path) in stderr
    assert _asked(box) == {i["id"] for i in box.account.incidents}
    assert json.loads(path.read_text())["format"] == 1  # rewritten whole
    assert _relations(box) == _expected_relations(box)


def test_unwritable_cache_warns_and_the_run_succeeds(box: Sandbox, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    code, summary, stderr = _sync(box, blocker / "cache")
    assert code == 0
    assert "could not write link cache" in stderr
    assert summary["incidentLinks"]["asked"] == 40


def test_failed_link_pass_keeps_the_previous_cache(box: Sandbox, tmp_path: Path) -> None:
    from opsgenie_export.sandbox.server import FaultRule

    cache = tmp_path / "cache"
    assert _sync(box, cache)[0] == 0
    [path] = cache.glob("incident-links-*")
    before = path.read_text()
    some_open = sorted(_open(box))[0]
    box.opsgenie.faults.add(FaultRule(path=rf"{some_open}/associated-alert-ids", status=500))
    code, _, stderr = _sync(box, cache, "--retries", "0")
    assert code == 1
    assert some_open in stderr
    assert path.read_text() == before


def test_incident_deleted_mid_run_links_nothing_and_fails_nothing(box: Sandbox, tmp_path: Path) -> None:
    from opsgenie_export.sandbox.server import FaultRule

    gone = sorted(_open(box))[0]
    box.opsgenie.faults.add(FaultRule(path=rf"{gone}/associated-alert-ids", status=404))
    assert _sync(box, tmp_path / "cache")[0] == 0
    expected = {k: (None if v == gone else v) for k, v in _expected_relations(box).items()}
    assert _relations(box) == expected


def test_cache_file_is_per_account() -> None:
    one = LinkCache.for_account(Path("/c"), "https://api.opsgenie.com", "key-one")
    two = LinkCache.for_account(Path("/c"), "https://api.opsgenie.com", "key-two")
    eu = LinkCache.for_account(Path("/c"), "https://api.eu.opsgenie.com", "key-one")
    assert len({one.path, two.path, eu.path}) == 3
    assert "key-one" not in str(one.path)


def test_reuse_rules_one_by_one() -> None:
    from opsgenie_export.opsgenie.links import LinkEntry, reusable

    incident = {"id": "i-1", "status": "resolved", "updatedAt": "2026-01-01T00:00:00Z"}
    entry = LinkEntry("2026-01-01T00:00:00Z", "resolved", 1_000_000.0, ["a-1"])
    assert reusable(entry, incident, 1_000_000.0 + 60, DEFAULT_MAX_AGE)
    assert not reusable(None, incident, 1_000_060.0, DEFAULT_MAX_AGE)
    assert not reusable(entry, {**incident, "status": "open"}, 1_000_060.0, DEFAULT_MAX_AGE)
    assert not reusable(entry, {**incident, "status": "closed"}, 1_000_060.0, DEFAULT_MAX_AGE)
    assert not reusable(entry, {**incident, "updatedAt": "2026-01-02T00:00:00Z"}, 1_000_060.0, DEFAULT_MAX_AGE)
    assert not reusable(entry, incident, 1_000_000.0 + DEFAULT_MAX_AGE, DEFAULT_MAX_AGE)
    assert not reusable(entry, incident, 1_000_000.0 - 60, DEFAULT_MAX_AGE)  # clock went back
    assert reusable(entry, incident, 1_000_000.0 + DEFAULT_MAX_AGE * 0.49, DEFAULT_MAX_AGE)  # spread starts at half

"""The account model, the seed account and the generator."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from opsgenie_export.sandbox.accounts import (
    Account,
    base_alert,
    generate_account,
    iso_to_ms,
    ms_to_iso,
    seed_account,
)

SEED_FILE = Path("/work/shared/seed/000_698766d8b64f9280.txt")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def _seed_payloads() -> dict[str, dict]:
    """The three sample payloads of the seed document, keyed by their summary."""
    text = SEED_FILE.read_text(encoding="utf-8")
    blocks = re.findall(r"<summary> (\w+) response data</summary>\s*```json[^\n]*\n(.*?)```", text, re.S)
    return {name: json.loads(body) for name, body in blocks}


def _strip_private(item: dict) -> dict:
    return {k: v for k, v in item.items() if not k.startswith("__")}


# -- timestamps --------------------------------------------------------------------------------
def test_timestamps_round_trip_in_the_api_format():
    assert ms_to_iso(iso_to_ms("2023-09-26T17:49:10.17Z")) == "2023-09-26T17:49:10.17Z"
    assert ms_to_iso(iso_to_ms("2024-01-01T00:00:00Z")) == "2024-01-01T00:00:00Z"
    assert iso_to_ms("2023-09-16T12:23:22.321Z") == 1694867002321
    assert iso_to_ms("2024-01-01T02:00:00+02:00") == iso_to_ms("2024-01-01T00:00:00Z")


# -- seed account ------------------------------------------------------------------------------
def test_seed_account_ids_and_values():
    account = seed_account()
    team = account.find_team("63374eee-0b03-42d4-bb8c-50d1fa64827c")
    assert team["name"] == "Data Science Team"
    assert [(m["user"]["username"], m["role"]) for m in team["members"]] == [
        ("testuser@gmail.com", "admin"),
        ("devtester@gmail.com", "user"),
    ]
    assert account.find_user("ce544b61-7b35-43ea-89ee-a8750638d3a4")["username"] == "testuser@gmail.com"
    assert account.find_user("devtester@gmail.com")["id"] == "9ea8f86a-6648-46d6-a2fc-1a6eb5f739c8"
    port = account.find_service("daa0d66f-ad35-4396-b30d-70f0314c697a")
    assert port["name"] == "Port Outbound Service" and port["tags"] == ["communication", "channel"]
    assert account.find_service("59591948-d418-4bb9-af16-170d6b232b7d")["name"] == "My Test Service"
    alert = account.find_alert("580e9625-ecc7-42b0-8836-3d3637438bc4-169486700232")
    assert alert["integration"]["name"] == "Default API" and alert["integration"]["type"] == "API"
    assert account.associated_alerts == {"4a0c5e6d-b239-4cd9-a7e8-a5f880e99473": [alert["id"]]}
    schedule = account.find_schedule("Data Science Team_schedule", "name")
    assert schedule["id"] == "d55e148e-d320-4766-9dcf-4fc2ce9daef1" and schedule["enabled"] is True
    assert schedule["ownerTeam"] == {"id": team["id"], "name": "Data Science Team"}
    assert len(schedule["rotations"]) == 1
    assert account.oncalls == {schedule["id"]: ["testuser@gmail.com"]}


@pytest.mark.skipif(not SEED_FILE.exists(), reason="seed document not available")
def test_seed_account_matches_the_seed_payloads_verbatim():
    payloads = _seed_payloads()
    account = seed_account()
    service = _strip_private(payloads["Service"])
    assert account.find_service(service["id"]) == service
    team = payloads["Service"]["__team"]
    assert account.find_team(team["id"]) == team
    for incident in [*payloads["Service"]["__incidents"], _strip_private(payloads["Incident"])]:
        assert account.find_incident(incident["id"]) == incident
    test_service = payloads["Incident"]["__impactedServices"][0]
    assert account.find_service(test_service["id"]) == test_service
    alert = _strip_private(payloads["Alert"])
    ours = base_alert(account.find_alert(alert["id"]))
    assert ours["integration"]["name"] == alert.pop("integration")
    assert {k: v for k, v in ours.items() if k != "integration"} == alert
    oncall = payloads["Service"]["__oncalls"]
    assert account.oncalls[oncall["_parent"]["id"]] == oncall["onCallRecipients"]


# -- mutation and indexes ----------------------------------------------------------------------
def _alert(alert_id: str, created: str, tiny: str, alias: str = "") -> dict:
    return {"id": alert_id, "tinyId": tiny, "alias": alias or alert_id, "createdAt": created, "status": "open"}


def test_alerts_stay_sorted_by_created_at_then_id():
    account = Account(alerts=[_alert("b", "2024-01-02T00:00:00Z", "1"), _alert("a", "2024-01-03T00:00:00Z", "2")])
    account.add_alert(_alert("c", "2024-01-02T00:00:00Z", "3", alias="x_1"))
    account.add_alert(_alert("0", "2024-01-01T00:00:00.5Z", "4"))
    assert [a["id"] for a in account.alerts] == ["0", "b", "c", "a"]
    assert account.find_alert("x_1", "alias")["id"] == "c"
    assert account.find_alert("3", "tiny")["id"] == "c"
    start, stop = account.alert_range(iso_to_ms("2024-01-02T00:00:00Z"), iso_to_ms("2024-01-03T00:00:00Z"))
    assert [a["id"] for a in account.alerts[start:stop]] == ["b", "c"]
    before = account.versions["alerts"]
    assert account.remove_alert("b")["id"] == "b"
    assert account.find_alert("b") is None and account.versions["alerts"] > before
    moved = account.update_alert("0", createdAt="2024-02-01T00:00:00Z")
    assert account.alerts[-1] is moved and account.find_alert("0") is moved
    with pytest.raises(ValueError):
        account.add_alert(_alert("a", "2024-01-01T00:00:00Z", "9"))


def test_direct_edits_are_picked_up_by_reindex():
    account = Account()
    account.alerts.append(_alert("z", "2024-01-01T00:00:00Z", "1"))
    account.version("alerts")  # notices the list changed size and reindexes
    assert account.find_alert("z") is not None


# -- generator ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated() -> Account:
    return generate_account()


def test_generate_is_deterministic():
    assert generate_account(seed=3, alerts=200) == generate_account(seed=3, alerts=200)
    assert generate_account(seed=3, alerts=200).alerts != generate_account(seed=4, alerts=200).alerts


def test_generated_sizes(generated):
    assert (len(generated.alerts), len(generated.incidents), len(generated.services), len(generated.teams)) == (
        300,
        60,
        25,
        10,
    )


def test_generated_referential_integrity(generated):
    team_ids = {t["id"] for t in generated.teams}
    service_ids = {s["id"] for s in generated.services}
    user_ids = {u["id"] for u in generated.users}
    alert_ids = {a["id"] for a in generated.alerts}
    incident_ids = {i["id"] for i in generated.incidents}
    assert all(s["teamId"] in team_ids for s in generated.services)
    for incident in generated.incidents:
        assert 0 <= len(incident["impactedServices"]) <= 3
        assert set(incident["impactedServices"]) <= service_ids
    for team in generated.teams:
        assert {m["user"]["id"] for m in team["members"]} <= user_ids
    for incident_id, ids in generated.associated_alerts.items():
        assert incident_id in incident_ids and set(ids) <= alert_ids and len(ids) <= 25
    for alert in generated.alerts:
        assert {t["id"] for t in alert["teams"]} <= team_ids
    for schedule in generated.schedules:
        assert schedule.get("ownerTeam") is None or schedule["ownerTeam"]["id"] in team_ids
        assert set(generated.oncalls[schedule["id"]]) <= {u["username"] for u in generated.users}
    for escalation in generated.escalations:
        assert escalation["ownerTeam"]["id"] in team_ids


def test_generated_realism(generated):
    alerts = generated.alerts
    incident_ids = {i["id"] for i in generated.incidents}
    for alert in alerts:
        match = re.fullmatch(rf"({UUID})-(\d{{13}})", alert["id"])
        assert match and int(match.group(2)) == iso_to_ms(alert["createdAt"])
    created = [iso_to_ms(a["createdAt"]) for a in alerts]
    assert created == sorted(created)
    assert len(set(created)) < len(created), "some alerts share a millisecond"
    assert created[-1] - created[0] > 60 * 86_400_000, "spread over months"
    prefixed = [a for a in alerts if a["alias"].split("_")[0] in incident_ids]
    assert prefixed and all(a["id"] in generated.associated_alerts[a["alias"].split("_")[0]] for a in prefixed)
    decoys = [a for a in alerts if "_" in a["alias"] and a["alias"].split("_")[0] not in incident_ids]
    assert any(a["alias"].startswith("host_cpu_high_") or "_" in a["alias"] for a in decoys)
    assert any("_" not in a["alias"] for a in alerts)
    assert set(Counter(a["status"] for a in alerts)) == {"open", "closed"}
    assert {i["status"] for i in generated.incidents} == {"open", "resolved", "closed"}
    names = [s["name"] for s in generated.services]
    assert len(set(names)) == len(names)
    assert any("&" in n for n in names) and any(" " in n for n in names) and any(not n.isascii() for n in names)
    assert any("ownerTeam" not in s for s in generated.schedules)
    owned = Counter(s["ownerTeam"]["id"] for s in generated.schedules if "ownerTeam" in s)
    assert all(1 <= owned[t["id"]] <= 2 for t in generated.teams)
    for alert in alerts:
        assert set(alert["integration"]) == {"id", "name", "type"}
        assert {"description", "details", "entity", "actions"} <= set(alert)


def test_generated_shapes_follow_the_seed():
    seed, generated = seed_account(), generate_account(alerts=50, incidents=10)
    seed_alert_fields = set(seed.alerts[0]) - {"snoozedUntil"}
    assert all(seed_alert_fields <= set(a) for a in generated.alerts)
    seed_incident_fields = set(seed.incidents[0]) - {"impactEndDate"}
    assert all(seed_incident_fields <= set(i) for i in generated.incidents)
    assert all(set(seed.services[0]) == set(s) for s in generated.services)
    assert all(set(seed.teams[0]) == set(t) for t in generated.teams)


def test_generate_many_alerts_quickly():
    import time

    started = time.perf_counter()
    account = generate_account(alerts=20_000, incidents=200)
    assert len(account.alerts) == 20_000
    assert time.perf_counter() - started < 5

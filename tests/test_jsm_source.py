"""`--source jsm` end to end, through the CLI, against the JSM emulator serving the same account
as the Opsgenie emulator (issue 14's "Done when" lines)."""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsgenie_export.sandbox.accounts import Account, generate_account
from opsgenie_export.sandbox.demo import serve_sandbox
from opsgenie_export.sandbox.port_emulator import PortEmulator
from opsgenie_export.sandbox.server import FaultPlan, FaultRule

from conftest import (
    ATLASSIAN_EMAIL,
    ATLASSIAN_TOKEN,
    OPSGENIE_KEY,
    PORT_ID,
    PORT_SECRET,
    REPO,
    CliResult,
    Sandbox,
    run_cli,
    running_sandbox,
)

ORG_ID = "5a1b2c3d-org-0000-0000-000000000001"
MIGRATION_ANCHOR = "moving-from-opsgenie-to-jsm-operations"
DEFAULT = (REPO / "mapping.yaml", REPO / "blueprints")
OCEAN = (REPO / "examples/ocean/mapping.yaml", REPO / "examples/ocean/blueprints")

# Port properties that differ between the two sources, per blueprint, and the Opsgenie field
# behind each: every one of those fields is in the README's table of JSM differences.
DIFFERING = {
    "opsGenieService": {"url": "links.web", "tags": "tags"},
    "opsGenieIncident": {"url": "links.web"},
    "opsGenieAlert": {"createdBy": "owner", "description": "description"},
    "opsGenieTeam": {"url": "links.web", "description": "description"},
    "opsGenieUser": {"role": "role", "isVerified": "verified", "address": "userAddress", "createdAt": "createdAt"},
    "opsGenieSchedule": {},
}


def everyone_on_a_team(account: Account) -> Account:
    """JSM has no user listing of its own: the exported users are those teams, schedules and
    escalations name (README). Here every user is on a team, as Operations users are."""
    members = {m["user"]["id"] for team in account.teams for m in team["members"]}
    for n, user in enumerate(u for u in account.users if u["id"] not in members):
        team = account.teams[n % len(account.teams)]
        team["members"].append({"user": {"id": user["id"], "username": user["username"]}, "role": "user"})
    account.reindex()
    return account


def small_account() -> Account:
    return everyone_on_a_team(generate_account(alerts=300, incidents=40, services=15, seed=5))


@pytest.fixture
def both() -> Iterator[Sandbox]:
    with running_sandbox(small_account(), jsm=True, jsm_options={"org_id": ORG_ID}) as sandbox:
        yield sandbox


def jsm_env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return sandbox.jsm_env | {"JSM_ORG_ID": ORG_ID} | extra


def sync(env: dict[str, str], mapping: tuple[Path, Path], tmp_path: Path, *extra: str) -> tuple[CliResult, dict]:
    summary = tmp_path / f"summary-{len(list(tmp_path.glob('summary-*')))}.json"
    args = ["sync", "--mapping", str(mapping[0]), "--blueprints", str(mapping[1]), "--initialize-port-resources"]
    result = run_cli([*args, "--summary-json", str(summary), *extra], env)
    assert_no_credentials(result.output + (summary.read_text() if summary.exists() else ""))
    return result, json.loads(summary.read_text()) if summary.exists() else {}


def assert_no_credentials(text: str) -> None:
    basic = base64.b64encode(f"{ATLASSIAN_EMAIL}:{ATLASSIAN_TOKEN}".encode()).decode()
    for secret in (ATLASSIAN_TOKEN, basic, basic.rstrip("="), OPSGENIE_KEY, PORT_SECRET):
        assert secret not in text


def content(entity: dict[str, Any]) -> dict[str, Any]:
    return {"title": entity.get("title"), **(entity.get("properties") or {}), **(entity.get("relations") or {})}


def differences(left: dict[str, dict], right: dict[str, dict]) -> dict[str, set[str]]:
    """identifier → the fields that differ, for identifiers both hold."""
    out = {}
    for identifier in left.keys() & right.keys():
        a, b = content(left[identifier]), content(right[identifier])
        changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        if changed:
            out[identifier] = changed
    return out


def readme_jsm_fields() -> set[str]:
    """The Opsgenie fields the README's JSM table lists as derived differently or unavailable."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Fields that differ from Opsgenie", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\|([^|]*)\|", section, re.M)
    return {name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)}


# -- same account, same catalogue ----------------------------------------------------------------
@pytest.mark.parametrize("mapping", [DEFAULT, OCEAN], ids=["mapping.yaml", "examples-ocean"])
def test_same_account_gives_the_same_catalogue_from_either_source(
    both: Sandbox, tmp_path: Path, mapping: tuple[Path, Path]
) -> None:
    with PortEmulator(client_id=PORT_ID, client_secret=PORT_SECRET) as second_port:
        from_opsgenie, _ = sync(both.env, mapping, tmp_path)
        from_jsm, summary = sync(jsm_env(both, PORT_BASE_URL=second_port.url), mapping, tmp_path)
        assert from_opsgenie.exit_code == 0, from_opsgenie.output
        assert from_jsm.exit_code == 0, from_jsm.output
        assert summary["source"] == "JSM Operations"
        assert set(both.port.entities) == set(second_port.entities)
        listed = readme_jsm_fields()
        for blueprint, entities in both.port.entities.items():
            other = second_port.entities[blueprint]
            assert set(entities) == set(other), blueprint
            assert entities, blueprint
            allowed = DIFFERING[blueprint]
            for identifier, fields in differences(entities, other).items():
                assert fields <= set(allowed), (blueprint, identifier, fields)
            assert set(allowed.values()) <= listed, f"README table misses {set(allowed.values()) - listed}"


def test_switching_source_with_ids_preserved_deletes_nothing_and_writes_only_differing(
    both: Sandbox, tmp_path: Path
) -> None:
    first, _ = sync(both.env, DEFAULT, tmp_path)
    assert first.exit_code == 0, first.output
    before = {bp: {i: dict(e) for i, e in entities.items()} for bp, entities in both.port.entities.items()}
    switched, summary = sync(jsm_env(both), DEFAULT, tmp_path)
    assert switched.exit_code == 0, switched.output
    after = both.port.entities
    for stats in summary["blueprints"]:
        blueprint = stats["blueprint"]
        assert stats["deleted"] == 0 and stats["stale"] == 0, stats
        assert set(after[blueprint]) == set(before[blueprint])
        changed = differences(before[blueprint], after[blueprint])
        assert all(fields <= set(DIFFERING[blueprint]) for fields in changed.values()), changed
        # writes only for entities whose mapped fields differ (none for identical ones)
        assert stats["upserted"] == len(changed), (blueprint, stats, len(changed))
        assert stats["unchanged"] == len(before[blueprint]) - len(changed)
    # the second JSM run writes nothing at all
    again, summary = sync(jsm_env(both), DEFAULT, tmp_path)
    assert again.exit_code == 0
    assert all(stats["upserted"] == 0 and stats["deleted"] == 0 for stats in summary["blueprints"])


def test_ids_changed_by_the_migration_stop_at_the_threshold_and_dry_run_shows_the_replacement(
    tmp_path: Path,
) -> None:
    options = {"org_id": ORG_ID, "ids_changed": True}
    with running_sandbox(small_account(), jsm=True, jsm_options=options) as sandbox:
        first, _ = sync(sandbox.env, DEFAULT, tmp_path)
        assert first.exit_code == 0
        old = {bp: set(entities) for bp, entities in sandbox.port.entities.items()}

        plan_run = run_cli(
            ["sync", "--mapping", str(DEFAULT[0]), "--blueprints", str(DEFAULT[1]), "--dry-run", "--output", "json"],
            jsm_env(sandbox),
        )
        assert_no_credentials(plan_run.output)
        plan = json.loads(plan_run.stdout)["plan"]
        for blueprint in ("opsGenieAlert", "opsGenieIncident"):
            new_ids = {sandbox.jsm.jsm_id(blueprint[8:].lower(), i) for i in old[blueprint]}  # type: ignore[union-attr]
            assert set(plan[blueprint]["create"]) == new_ids
            assert set(plan[blueprint]["stale"]) == old[blueprint]
        text_plan = run_cli(
            ["sync", "--mapping", str(DEFAULT[0]), "--blueprints", str(DEFAULT[1]), "--dry-run"], jsm_env(sandbox)
        )
        assert re.search(r"opsGenieAlert:\n  create 300: ", text_plan.stdout)
        assert "stale, not deleted (deletion skipped) 300: " in text_plan.stdout

        switched, summary = sync(jsm_env(sandbox), DEFAULT, tmp_path)
        assert switched.exit_code == 1
        assert MIGRATION_ANCHOR in switched.output
        assert "## Moving from Opsgenie to JSM Operations" in (REPO / "README.md").read_text()
        for blueprint in ("opsGenieAlert", "opsGenieIncident"):
            stats = next(s for s in summary["blueprints"] if s["blueprint"] == blueprint)
            assert stats["deleted"] == 0 and MIGRATION_ANCHOR in stats["deletion"]
            assert old[blueprint] <= set(sandbox.port.entities[blueprint]), "nothing was deleted"


# -- credentials and configuration ---------------------------------------------------------------
@pytest.mark.parametrize("wrong", ["ATLASSIAN_API_TOKEN", "ATLASSIAN_EMAIL"])
def test_wrong_email_or_token_exits_3_after_one_request(both: Sandbox, tmp_path: Path, wrong: str) -> None:
    value = "wrong-token-0123456789" if wrong == "ATLASSIAN_API_TOKEN" else "someone@example.com"
    env = jsm_env(both, **{wrong: value})
    result, summary = sync(env, DEFAULT, tmp_path)
    assert result.exit_code == 3, result.output
    assert "ATLASSIAN_EMAIL and ATLASSIAN_API_TOKEN" in result.output
    assert both.jsm.count() == 1  # type: ignore[union-attr]
    sent = base64.b64encode(f"{env['ATLASSIAN_EMAIL']}:{env['ATLASSIAN_API_TOKEN']}".encode()).decode()
    everything = result.output + json.dumps(summary)
    for form in (env["ATLASSIAN_API_TOKEN"], sent, sent.rstrip("=")):
        assert form not in everything


@pytest.mark.parametrize(
    "missing",
    [("JSM_SITE_URL",), ("JSM_SITE_URL", "JSM_CLOUD_ID"), ("ATLASSIAN_API_TOKEN",), ("ATLASSIAN_EMAIL",)],
)
def test_missing_site_or_credentials_exit_2_before_any_request(both: Sandbox, missing: tuple[str, ...]) -> None:
    env = {k: v for k, v in jsm_env(both).items() if k not in missing}
    result = run_cli(["sync", "--mapping", str(DEFAULT[0]), "--blueprints", str(DEFAULT[1])], env)
    assert result.exit_code == 2, result.output
    assert missing[0] in result.output
    assert both.jsm.count() == 0 and both.port.count() == 0  # type: ignore[union-attr]
    assert_no_credentials(result.output)


def test_cloud_id_is_read_from_the_site_when_not_given(both: Sandbox, tmp_path: Path) -> None:
    env = {k: v for k, v in jsm_env(both).items() if k != "JSM_CLOUD_ID"}
    result, _ = sync(env, DEFAULT, tmp_path)
    assert result.exit_code == 0, result.output
    assert both.jsm.count("GET", r"/_edge/tenant_info") == 1  # type: ignore[union-attr]


def test_options_name_the_source_and_site(both: Sandbox, tmp_path: Path) -> None:
    env = {k: v for k, v in jsm_env(both).items() if not k.startswith(("JSM_", "OPSGENIE_EXPORT"))}
    face = both.jsm
    assert face is not None
    extra = ["--source", "jsm", "--jsm-site", face.site_url, "--jsm-api-url", face.api_url]
    extra += ["--jsm-cloud-id", face.cloud_id, "--jsm-org-id", ORG_ID]
    result, _ = sync(env, DEFAULT, tmp_path, *extra)
    assert result.exit_code == 0, result.output


def test_refused_scope_is_named_and_exits_3(tmp_path: Path) -> None:
    scope = "read:ops-alert:jira-service-management"
    options = {"org_id": ORG_ID, "refused_scopes": {scope}}
    with running_sandbox(small_account(), jsm=True, jsm_options=options) as sandbox:
        result, _ = sync(jsm_env(sandbox), DEFAULT, tmp_path)
    assert result.exit_code == 3, result.output
    assert scope in result.output


def test_a_site_without_the_services_api_fails_that_kind_and_the_run_goes_on(tmp_path: Path) -> None:
    options = {"org_id": ORG_ID, "services_api": False}
    with running_sandbox(small_account(), jsm=True, jsm_options=options) as sandbox:
        result, summary = sync(jsm_env(sandbox), DEFAULT, tmp_path)
        assert result.exit_code == 1
        by_kind = {r["kind"]: r for r in summary["resources"]}
        assert by_kind["service"]["status"] == "failed"
        assert "does not offer the JSM services API" in by_kind["service"]["reason"]
        assert by_kind["alert"]["status"] == "ok" and by_kind["alert"]["failed"] == 0
        assert len(sandbox.port.entities["opsGenieAlert"]) == 300


def test_rate_limits_are_waited_out(tmp_path: Path) -> None:
    options = {"org_id": ORG_ID, "api_rate_limit": (20, 1.0), "site_rate_limit": (10, 1.0)}
    with running_sandbox(small_account(), jsm=True, jsm_options=options) as sandbox:
        result, summary = sync(jsm_env(sandbox), DEFAULT, tmp_path, "--no-cache", "--workers", "8")
        assert result.exit_code == 0, result.output
        assert len(sandbox.port.entities["opsGenieAlert"]) == 300
        assert sandbox.jsm.throttled > 0  # type: ignore[union-attr]
    assert sum(summary["requests"]["jsmThrottled"].values()) > 0  # 429s were waited out, not failures


def test_incident_selector_filters_apply_to_jsm_incidents(both: Sandbox, tmp_path: Path) -> None:
    """examples/ocean selects open incidents with apiQueryParams; JSM lists with JQL, so the
    filter applies to the shaped incidents: the same open incidents arrive."""
    open_ids = {i["id"] for i in both.account.incidents if i["status"] == "open"}
    result, summary = sync(jsm_env(both), OCEAN, tmp_path)
    assert result.exit_code == 0, result.output
    incidents = next(r for r in summary["resources"] if r["kind"] == "incident")
    assert incidents["fetched"] == len(open_ids) > 0


# -- validate and demo ---------------------------------------------------------------------------
def test_validate_accepts_source_jsm_and_refuses_what_jsm_incidents_cannot_filter(tmp_path: Path) -> None:
    ok = run_cli(["validate", "--source", "jsm", "--mapping", str(OCEAN[0]), "--blueprints", str(OCEAN[1])])
    assert ok.exit_code == 0, ok.output
    mapping = tmp_path / "mapping.yaml"
    text = (
        DEFAULT[0]
        .read_text()
        .replace(
            '  - kind: incident\n    selector:\n      query: "true"',
            "  - kind: incident\n    selector:\n      query: \"true\"\n      opsgenieQuery: 'impactStartDate>1'",
        )
    )
    assert "opsgenieQuery" in text
    mapping.write_text(text)
    refused = run_cli(["validate", "--source", "jsm", "--mapping", str(mapping), "--blueprints", str(DEFAULT[1])])
    assert refused.exit_code == 2
    assert "--jsm-incident-jql" in refused.output
    assert run_cli(["validate", "--mapping", str(mapping), "--blueprints", str(DEFAULT[1])]).exit_code == 0


def test_demo_runs_from_jsm() -> None:
    result = run_cli(["demo", "--source", "jsm", "--alerts", "50", "--incidents", "5", "--services", "3"])
    assert result.exit_code == 0, result.output
    assert "JSM Operations → Port" in result.output


# -- 25,000 alerts -------------------------------------------------------------------------------
EVERY_KIND = """
resources:
  - kind: alert
    selector: {query: 'true'}
    port:
      entity:
        mappings:
          identifier: .id
          title: .message
          blueprint: '"opsGenieAlert"'
          properties: {status: .status, priority: .priority}
          relations: {relatedIncident: .__relatedIncident.id}
  - kind: incident
    selector: {query: 'true'}
    port:
      entity:
        mappings: {identifier: .id, title: .message, blueprint: '"opsGenieIncident"', properties: {status: .status}}
  - kind: service
    selector: {query: 'true'}
    port:
      entity:
        mappings:
          identifier: .id
          title: .name
          blueprint: '"opsGenieService"'
          properties: {oncallTeam: .__team.name, oncallUsers: .__oncalls.onCallRecipients}
  - kind: team
    selector: {query: 'true', includeMembers: true}
    port:
      entity:
        mappings:
          identifier: .id
          title: .name
          blueprint: '"opsGenieTeam"'
          properties: {oncallUsers: .__oncalls.onCallRecipients}
          relations: {members: '[.__members[].user.id]'}
  - kind: schedule
    selector: {query: 'true'}
    port:
      entity:
        mappings: {identifier: .id, title: .name, blueprint: '"opsGenieSchedule"', properties: {timezone: .timezone}}
  - kind: user
    selector: {query: 'true'}
    port:
      entity:
        mappings: {identifier: .id, title: .fullName, blueprint: '"opsGenieUser"', properties: {email: .username}}
  - kind: escalation
    selector: {query: 'true'}
    port:
      entity:
        mappings: {identifier: .id, title: .name, blueprint: '"opsGenieEscalation"'}
"""


def test_25000_alerts_all_arrive_with_the_floor_of_requests(tmp_path: Path) -> None:
    account = everyone_on_a_team(generate_account(alerts=25_000, incidents=150, services=30, teams=12, seed=3))
    mapping = tmp_path / "every-kind.yaml"
    mapping.write_text(EVERY_KIND)
    blueprints = tmp_path / "blueprints"
    blueprints.mkdir()
    for path in OCEAN[1].glob("*.json"):
        (blueprints / path.name).write_text(path.read_text())
    (blueprints / "opsGenieService.json").write_text((DEFAULT[1] / "opsGenieService.json").read_text())
    escalation = {"identifier": "opsGenieEscalation", "title": "Escalation", "schema": {"properties": {}}}
    (blueprints / "opsGenieEscalation.json").write_text(json.dumps(escalation))
    with running_sandbox(account, jsm=True, jsm_options={"org_id": ORG_ID}) as sandbox:
        face = sandbox.jsm
        assert face is not None
        result, summary = sync(jsm_env(sandbox), (mapping, blueprints), tmp_path, "--workers", "8")
        assert result.exit_code == 0, result.output
        assert set(sandbox.port.entities["opsGenieAlert"]) == {a["id"] for a in account.alerts}
        routes = face.counts_by_route()

        def calls(pattern: str, method: str = "GET") -> int:
            return face.count(method, pattern)

        teams, schedules = len(account.teams), len(account.schedules)
        incidents = len(account.incidents)
        windows = 2  # 25,000 alerts: one window up to the ceiling, one after it
        assert math.ceil(25_000 / 100) <= calls(r"/v1/alerts/?$") <= math.ceil(25_000 / 100) + windows, routes
        assert calls(r"/v1/teams/?$") == 1
        assert calls(r"/v1/schedules/?$") == math.ceil(schedules / 50)
        assert calls(r"/v1/teams/[^/]+/escalations/?$") == teams
        assert calls(r"/members$", "POST") == teams
        assert calls(r"/v1/schedules/[^/]+/on-calls/?$") == schedules
        assert calls(r"/v1/incident/[^/]+/alert$") == incidents
        assert calls(r"/rest/api/3/search/jql$") == math.ceil(incidents / 100)
        assert calls(r"/rest/api/3/field$") == 1
        assert calls(r"/rest/api/3/user/bulk$") == math.ceil(len(account.users) / 100)
        assert calls(r"/v1/services/?$") == math.ceil(len(account.services) / 50)
        assert calls(r"/v1/alerts/[^/]+$") == 0 and calls(r"/v1/schedules/[^/]+$") == 0  # no per-item GETs
        assert summary["requests"]["jsm"]

        face.reset_log()
        again, _ = sync(jsm_env(sandbox), (mapping, blueprints), tmp_path, "--workers", "8")
        assert again.exit_code == 0
        open_incidents = sum(1 for i in account.incidents if i["status"] == "open")
        assert calls(r"/v1/incident/[^/]+/alert$") == open_incidents  # the link cache answers for the rest


RATES = {"error_rate": 0.05, "drop_rate": 0.03, "truncate_rate": 0.03, "garble_rate": 0.03, "html_rate": 0.03}
RATES |= {"null_data_rate": 0.03, "non_utf8_rate": 0.03}


def test_faults_on_every_jsm_endpoint_are_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    faults = FaultPlan([FaultRule(path=r"/(jsm|rest|public)/", **RATES)])
    with running_sandbox(small_account(), jsm=True, jsm_options={"org_id": ORG_ID, "faults": faults}) as sandbox:
        result, summary = sync(jsm_env(sandbox), DEFAULT, tmp_path, "--no-cache")
        assert result.exit_code == 0, result.output
        assert summary["requests"]["retries"] > 0
        assert set(sandbox.port.entities["opsGenieAlert"]) == {a["id"] for a in sandbox.account.alerts}
        assert len(sandbox.port.entities["opsGenieIncident"]) == len(sandbox.account.incidents)


def test_a_token_with_a_line_break_inside_is_refused_before_any_request(both: Sandbox) -> None:
    env = jsm_env(both, ATLASSIAN_API_TOKEN=f"{ATLASSIAN_TOKEN[:10]}\n{ATLASSIAN_TOKEN[10:]}")
    result = run_cli(["sync", "--mapping", str(DEFAULT[0]), "--blueprints", str(DEFAULT[1])], env)
    assert result.exit_code == 2, result.output
    assert "Atlassian API token" in result.output
    assert both.jsm.count() == 0 and both.port.count() == 0  # type: ignore[union-attr]
    assert ATLASSIAN_TOKEN[:10] not in result.output and ATLASSIAN_TOKEN[10:] not in result.output


def test_the_sandbox_command_serves_the_same_account_as_jsm(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    stop = threading.Event()
    said: list[str] = []
    server = threading.Thread(
        target=serve_sandbox,
        args=(env_file,),
        kwargs={"alerts": 20, "incidents": 3, "services": 2, "stop": stop, "say": said.append},
        daemon=True,
    )
    server.start()
    try:
        for _ in range(200):
            if any("serving until" in line for line in said):
                break
            time.sleep(0.05)
        assert any("--source jsm" in line for line in said)
        result = run_cli(["sync", "--env-file", str(env_file), "--source", "jsm", "--initialize-port-resources"])
        assert result.exit_code == 0, result.output
        assert "JSM Operations → Port" in result.output
    finally:
        stop.set()
        server.join(10)


def test_without_the_org_id_items_that_need_team_members_fail_with_the_fix(both: Sandbox, tmp_path: Path) -> None:
    env = {k: v for k, v in jsm_env(both).items() if k != "JSM_ORG_ID"}
    result, summary = sync(env, DEFAULT, tmp_path)
    assert result.exit_code == 1
    services = next(r for r in summary["resources"] if r["kind"] == "service")
    assert services["failed"] == len(both.account.services)
    assert "JSM_ORG_ID" in services["errors"][0]
    # nothing written with blank members (Port holds only the stubs incidents' relations create)
    assert all(not e.get("properties") for e in both.port.entities.get("opsGenieService", {}).values())
    alerts = next(r for r in summary["resources"] if r["kind"] == "alert")
    assert alerts["status"] == "ok" and alerts["failed"] == 0

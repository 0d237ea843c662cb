"""Port's default Opsgenie mapping, verbatim (tests/fixtures/ocean/port-default-mapping.yaml)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jq
import pytest
import requests
import yaml

from opsgenie_export.sandbox.accounts import Account, generate_account

from conftest import OPSGENIE_KEY, REPO, Sandbox, run_cli, running_sandbox

PORT_DEFAULT_MAPPING = REPO / "tests" / "fixtures" / "ocean" / "port-default-mapping.yaml"
EXAMPLE_MAPPING = REPO / "examples" / "ocean" / "mapping.yaml"
SIX = ("opsGenieUser", "opsGenieTeam", "opsGenieSchedule", "opsGenieService", "opsGenieIncident", "opsGenieAlert")
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


# -- end to end: the verbatim mapping through the CLI against both emulators ------------------------
# What Port's integration would hold is computed here independently: every resource in file order,
# every item in API listing order, mapped with the jq library, null identifiers dropped, each entity
# upserted with merge (properties and relations key by key) and relation targets created as stubs.
BLUEPRINTS = REPO / "examples" / "ocean" / "blueprints"
BLUEPRINT_ORDER = ("opsGenieUser", "opsGenieTeam", "opsGenieSchedule", "opsGenieService", "opsGenieIncident")
STALE_TEAM = "stale-team-0001"
LISTINGS = {
    "user": ("/v2/users", {}),
    "team": ("/v2/teams", {}),
    "schedule": ("/v2/schedules", {"expand": "rotation"}),
    "service": ("/v1/services", {}),
    "alert": ("/v2/alerts", {"query": "status:open"}),
    "incident": ("/v1/incidents", {"query": "status:open"}),
    "schedule-oncall": ("/v2/schedules", {}),
}


def _account() -> Account:
    """Three teams; the first owns two schedules whose on-call users differ; one schedule has no owner."""
    account = generate_account(alerts=40, incidents=10, services=6, teams=3, schedules=5, seed=3)
    owners = [(s.get("ownerTeam") or {}).get("id") for s in account.schedules]
    assert owners.count(account.teams[0]["id"]) == 2 and owners.count(None) == 1
    assert account.oncalls[account.schedules[0]["id"]] != account.oncalls[account.schedules[3]["id"]]
    return account


def _get(sandbox: Sandbox, path: str, params: dict[str, Any]) -> Any:
    headers = {"Authorization": f"GenieKey {OPSGENIE_KEY}"}
    response = requests.get(sandbox.opsgenie.url + path, params=params, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _listing(sandbox: Sandbox, kind: str) -> list[dict[str, Any]]:
    path, params = LISTINGS[kind]
    items: list[dict[str, Any]] = []
    while True:
        page = _get(sandbox, path, {**params, "offset": len(items), "limit": 100})
        items.extend(page["data"])
        if not (page.get("paging") or {}).get("next") or not page["data"]:
            return items


def _raw_items(sandbox: Sandbox, kind: str) -> list[dict[str, Any]]:
    """The items Port's integration hands to JQ, enrichment keys included (ocean-compatibility §6.1)."""
    items = _listing(sandbox, kind)
    for item in items:
        if kind == "team":
            item["__members"] = _get(sandbox, f"/v2/teams/{item['id']}", {})["data"].get("members") or []
        if kind == "schedule-oncall":
            item["__currentOncalls"] = _get(sandbox, f"/v2/schedules/{item['id']}/on-calls", {"flat": "true"})["data"]
    return items


def _first(expression: str, data: Any) -> Any:
    return next(iter(jq.compile(expression).input_value(data).all()), None)


def _rows(resource: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    parse = resource["port"].get("itemsToParse")
    if not parse:
        return [item]
    parent = {key: value for key, value in item.items() if key != parse.lstrip(".")}
    return [{**parent, "item": element} for element in _first(parse, item)]


def what_ocean_would_hold(sandbox: Sandbox, mapping: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    targets = {
        name: {
            rel: spec["target"]
            for rel, spec in json.loads((BLUEPRINTS / f"{name}.json").read_text())["relations"].items()
        }
        for name in SIX
    }
    port: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SIX}
    for resource in mapping["resources"]:
        fields = resource["port"]["entity"]["mappings"]
        for item in _raw_items(sandbox, resource["kind"]):
            for row in _rows(resource, item):
                identifier, blueprint = _first(fields["identifier"], row), _first(fields["blueprint"], row)
                if not identifier or not blueprint:
                    continue  # Ocean drops the row
                entity = port[blueprint].setdefault(identifier, {"title": None, "properties": {}, "relations": {}})
                if "title" in fields:
                    entity["title"] = _first(fields["title"], row)
                entity["properties"].update({k: _first(v, row) for k, v in fields.get("properties", {}).items()})
                relations = {k: _first(v, row) for k, v in fields.get("relations", {}).items()}
                entity["relations"].update(relations)
                for name, value in relations.items():
                    for target in value if isinstance(value, list) else [value]:
                        if target is not None:
                            port[targets[blueprint][name]].setdefault(
                                target, {"title": None, "properties": {}, "relations": {}}
                            )
    return port


def _held_by_port(sandbox: Sandbox) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        name: {
            identifier: {key: entity[key] for key in ("title", "properties", "relations")}
            for identifier, entity in sandbox.port.entities.get(name, {}).items()
        }
        for name in SIX
    }


def _seed_port(sandbox: Sandbox) -> None:
    for name in (*BLUEPRINT_ORDER, "opsGenieAlert"):
        sandbox.port.add_blueprint(json.loads((BLUEPRINTS / f"{name}.json").read_text()))


def _sync(sandbox: Sandbox, summary: Path, *extra: str, mapping: Path = PORT_DEFAULT_MAPPING) -> tuple[Any, dict]:
    args = ["sync", "--mapping", str(mapping), "--blueprints", str(BLUEPRINTS), "--summary-json", str(summary)]
    result = run_cli([*args, *extra], sandbox.env)
    return result, json.loads(summary.read_text())


def _buckets_add_up(summary: dict[str, Any]) -> None:
    for resource in summary["resources"]:
        buckets = ("filtered", "upserted", "unchanged", "failed", "skipped", "merged")
        assert resource["fetched"] == sum(resource[bucket] for bucket in buckets), resource


def _by_kind(summary: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [resource for resource in summary["resources"] if resource["kind"] == kind]
    return found


def _deletion(summary: dict[str, Any], blueprint: str) -> str:
    (found,) = [b["deletion"] for b in summary["blueprints"] if b["blueprint"] == blueprint]
    return found


@pytest.fixture
def verbatim_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """The account synced once with the verbatim mapping, then a stale team entity in Port."""
    with running_sandbox(_account()) as sandbox:
        _seed_port(sandbox)
        first, summary = _sync(sandbox, tmp_path / "first.json")
        assert first.exit_code == 0, first.output
        _buckets_add_up(summary)
        sandbox.port.put_entity("opsGenieTeam", {"identifier": STALE_TEAM, "title": "Disbanded"})
        yield sandbox


def test_port_default_mapping_verbatim_runs_green(verbatim_sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox = verbatim_sandbox
    account = sandbox.account
    owner = account.teams[0]["id"]
    unowned = next(s["id"] for s in account.schedules if not s.get("ownerTeam"))

    result, summary = _sync(sandbox, tmp_path / "summary.json")

    assert result.exit_code == 0, result.output
    assert summary["result"] == "success" and summary["fatal"] is None
    assert all(resource["failed"] == 0 and resource["status"] == "ok" for resource in summary["resources"])
    _buckets_add_up(summary)
    oncall = _by_kind(summary, "schedule-oncall")
    assert (oncall["skipped"], oncall["merged"], oncall["merged_items"], oncall["merged_entities"]) == (1, 1, 2, 1)
    [skipped, merged] = oncall["warnings"]
    assert unowned in skipped and "skipped by the mapping" in skipped
    assert owner in merged and "2 items merged into 1 entity" in merged
    assert summary["warnings"] == [f"resources[6] schedule-oncall: {w}" for w in oncall["warnings"]]
    assert unowned in result.stderr and owner in result.stderr and "warning:" in result.stderr
    assert {b["blueprint"]: b["deletion"] for b in summary["blueprints"]} == dict.fromkeys(SIX, "done")
    assert STALE_TEAM not in sandbox.port.entities["opsGenieTeam"]  # reconciled: the stale team is gone

    expected = what_ocean_would_hold(sandbox, yaml.safe_load(PORT_DEFAULT_MAPPING.read_text()))
    assert _held_by_port(sandbox) == expected
    last_schedule = account.schedules[3]["id"]  # the later of the owner's two schedules, in listing order
    team = expected["opsGenieTeam"][owner]
    assert team["properties"]["oncallUsers"] == account.oncalls[last_schedule]
    assert team["properties"]["url"] and team["relations"]["members"]  # the team resource's fields survive


def test_strict_exits_1_on_the_same_warnings_with_the_same_entities(verbatim_sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox = verbatim_sandbox

    result, summary = _sync(sandbox, tmp_path / "summary.json", "--strict", "--log-format", "json")

    assert result.exit_code == 1, result.output
    assert summary["result"] == "partial" and len(summary["warnings"]) == 2
    records = [json.loads(line) for line in result.stderr.splitlines()]
    warnings = [r for r in records if r["event"] == "mapping_warning"]
    assert [(r["level"], r["kind"]) for r in warnings] == [("warning", "schedule-oncall")] * 2
    assert [r["message"] for r in warnings] == summary["warnings"]
    done = records[-1]
    assert (done["event"], done["level"], done["exitCode"]) == ("run_done", "warning", 1)
    assert done["warnings"] == summary["warnings"] and done["counts"]["skipped"] == done["counts"]["merged"] == 1
    assert all(resource["failed"] == 0 for resource in summary["resources"])
    _buckets_add_up(summary)
    assert STALE_TEAM not in sandbox.port.entities["opsGenieTeam"]
    assert _held_by_port(sandbox) == what_ocean_would_hold(sandbox, yaml.safe_load(PORT_DEFAULT_MAPPING.read_text()))


def test_a_jq_runtime_error_still_fails_its_item_and_skips_deletion(verbatim_sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox = verbatim_sandbox
    broken = sandbox.account.teams[1]
    broken["links"] = "not an object"  # `.links.web` raises: Cannot index string with "web"
    sandbox.account.reindex()

    result, summary = _sync(sandbox, tmp_path / "summary.json")

    assert result.exit_code == 1, result.output
    team = _by_kind(summary, "team")
    assert team["failed"] == 1 and team["unprocessed"] == 1
    assert any(broken["id"] in error and "properties.url" in error for error in team["errors"])
    _buckets_add_up(summary)
    assert _deletion(summary, "opsGenieTeam").startswith("skipped")
    assert STALE_TEAM in sandbox.port.entities["opsGenieTeam"]  # not deleted while a team item failed
    assert _deletion(summary, "opsGenieUser") == "done"  # other blueprints are reconciled
    assert len(summary["warnings"]) == 2  # the mapping's warnings are still reported

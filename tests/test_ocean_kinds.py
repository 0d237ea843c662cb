"""Port's Ocean kinds and its default mapping as a drop-in (examples/ocean).

Golden tests map realistic payloads of every kind (as the pipeline hands them to JQ, enrichment
keys included) through `examples/ocean/mapping.yaml`; end-to-end tests sync it against both
emulators, count the Opsgenie requests of a mapping that uses every kind and enrichment key, and
read the search query that `apiQueryParams` / `opsgenieQuery` put on the wire.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from opsgenie_export.mapping import (
    CompiledResource,
    compile_mapping,
    evaluate_expression,
    load_blueprints,
    load_mapping,
    parse_mapping,
    validate_mapping_file,
)
from opsgenie_export.sandbox.accounts import Account, generate_account, iso_to_ms
from opsgenie_export.sandbox.port_emulator import parse_entity
from opsgenie_export.sandbox.server import FaultRule

from conftest import REPO, Sandbox, run_cli, running_sandbox, start_sandbox

OCEAN = REPO / "examples" / "ocean"
OCEAN_MAPPING = OCEAN / "mapping.yaml"
OCEAN_BLUEPRINTS = OCEAN / "blueprints"
FIXTURES = REPO / "tests" / "fixtures" / "ocean"
ESCALATION_MAPPING = FIXTURES / "escalation-mapping.yaml"
SCHEDULE_ONCALL_MAPPING = FIXTURES / "schedule-oncall-mapping.yaml"  # Port's original seventh resource
SIX = ("opsGenieUser", "opsGenieTeam", "opsGenieSchedule", "opsGenieService", "opsGenieIncident", "opsGenieAlert")
PORT_ALIAS_HEURISTIC = 'if (.alias | contains("_")) then (.alias | split("_")[0]) else null end'

SEED_TEAM = "63374eee-0b03-42d4-bb8c-50d1fa64827c"


# -- helpers -------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _resource(mapping: Path, kind: str) -> CompiledResource:
    return next(r for r in compile_mapping(load_mapping(mapping)) if r.kind == kind)


def _mapped(resource: CompiledResource, payload: dict[str, Any]) -> dict[str, Any]:
    result = resource.map_item(copy.deepcopy(payload))
    assert not result.errors, [str(e) for e in result.errors]
    entities = [{"blueprint": e.blueprint, **e.to_port()} for e in result.entities]
    return {"filtered": result.filtered, "entities": entities}


def _blueprints() -> dict[str, dict[str, Any]]:
    return load_blueprints(OCEAN_BLUEPRINTS) | load_blueprints(FIXTURES / "blueprints")


def _ocean_args(mapping: Path = OCEAN_MAPPING, blueprints: Path = OCEAN_BLUEPRINTS, *extra: str) -> list[str]:
    return ["sync", "--mapping", str(mapping), "--blueprints", str(blueprints), "--initialize-port-resources", *extra]


@pytest.fixture
def ocean_sandbox() -> Iterator[Sandbox]:
    """A generated account where some teams own two schedules and one schedule has no owner."""
    with running_sandbox(generate_account(alerts=300, incidents=60, services=25, teams=10, seed=11)) as sandbox:
        yield sandbox


# -- golden: payload → entities --------------------------------------------------------------------
GOLDEN = [
    (OCEAN_MAPPING, "user"),
    (OCEAN_MAPPING, "team"),
    (OCEAN_MAPPING, "schedule"),
    (SCHEDULE_ONCALL_MAPPING, "schedule-oncall"),
    (OCEAN_MAPPING, "service"),
    (OCEAN_MAPPING, "alert"),
    (OCEAN_MAPPING, "incident"),
    (ESCALATION_MAPPING, "escalation"),
]


@pytest.mark.parametrize(("mapping", "kind"), GOLDEN, ids=[kind for _, kind in GOLDEN])
def test_golden_entities(mapping: Path, kind: str) -> None:
    resource = _resource(mapping, kind)
    payloads = _read_json(FIXTURES / "payloads" / f"{kind}.json")
    expected = _read_json(FIXTURES / "expected" / f"{kind}.json")
    assert len(payloads) == len(expected)
    for payload, want in zip(payloads, expected, strict=True):
        assert _mapped(resource, payload) == want, payload["id"]


@pytest.mark.parametrize("kind", [kind for _, kind in GOLDEN])
def test_golden_entities_are_valid_for_their_blueprints(kind: str) -> None:
    """Every expected entity passes the Port emulator's entity validation (types, formats, enums)."""
    blueprints = _blueprints()
    for want in _read_json(FIXTURES / "expected" / f"{kind}.json"):
        for entity in want["entities"]:
            body = {k: v for k, v in entity.items() if k != "blueprint"}
            parse_entity(body, blueprints[entity["blueprint"]])


def test_related_incident_comes_from_the_lookup_not_the_alias() -> None:
    alerts = _read_json(FIXTURES / "payloads" / "alert.json")
    heuristic = [evaluate_expression(PORT_ALIAS_HEURISTIC, alert) for alert in alerts]
    # Port's expression invents incident "host" from `host_cpu_high_web-07`; ours leaves it null.
    assert heuristic == ["652f14b3-019a-4d4c-8b83-e4da527a416c", "host", None]
    resource = _resource(OCEAN_MAPPING, "alert")
    ours = [_mapped(resource, alert)["entities"][0]["relations"]["relatedIncident"] for alert in alerts]
    assert ours == ["652f14b3-019a-4d4c-8b83-e4da527a416c", None, None]


def test_items_to_parse_name_and_top_level_transform() -> None:
    text = """
resources:
  - kind: schedule
    port:
      itemsToParse: .rotations
      itemsToParseName: rotation
      itemsToParseTopLevelTransform: false
      entity:
        mappings:
          identifier: .id + "/" + .rotation.name
          blueprint: '"opsGenieSchedule"'
          properties:
            rotationType: .rotation.type
            siblings: '[.rotations[].name]'
            item: .item
"""
    resource = compile_mapping(parse_mapping(text, "inline.yaml"))[0]
    schedule = _read_json(FIXTURES / "payloads" / "schedule.json")[0]
    entities = _mapped(resource, schedule)["entities"]
    assert [e["identifier"] for e in entities] == [
        "d875e654-9b4e-4219-a803-0c26813be1b3/Rot1",
        "d875e654-9b4e-4219-a803-0c26813be1b3/Escalation backup",
        "d875e654-9b4e-4219-a803-0c26813be1b3/Launch week",
    ]
    assert entities[0]["properties"] == {
        "rotationType": "weekly",
        "siblings": ["Rot1", "Escalation backup", "Launch week"],  # parent kept whole (transform off)
        "item": None,  # the element is under `rotation`, not the default `item`
    }


def test_default_transform_removes_the_parsed_array_from_the_parent() -> None:
    text = """
resources:
  - kind: schedule
    port:
      itemsToParse: .rotations
      entity:
        mappings:
          identifier: .id + "_" + .item.id
          blueprint: '"opsGenieSchedule"'
          properties: {parentRotations: .rotations, rotationName: .item.name, scheduleName: .name}
"""
    resource = compile_mapping(parse_mapping(text, "inline.yaml"))[0]
    schedule = _read_json(FIXTURES / "payloads" / "schedule.json")[1]
    [entity] = _mapped(resource, schedule)["entities"]
    assert entity["properties"] == {
        "parentRotations": None,
        "rotationName": "Rota1",
        "scheduleName": "Unowned rotation",
    }


def test_schedule_on_call_spelling_is_the_same_kind() -> None:
    text = SCHEDULE_ONCALL_MAPPING.read_text().replace("kind: schedule-oncall", "kind: schedule-on-call")
    assert "schedule-on-call" in text
    assert [r.kind for r in parse_mapping(text, "x.yaml").resources] == ["schedule-oncall"]


# -- the drop-in files -----------------------------------------------------------------------------
def test_six_blueprints_as_port_defines_them() -> None:
    blueprints = load_blueprints(OCEAN_BLUEPRINTS)
    assert sorted(blueprints) == sorted(SIX)
    assert {b["icon"] for b in blueprints.values()} == {"OpsGenie"}
    relations = {
        (name, rel, spec["target"], spec["many"])
        for name, b in blueprints.items()
        for rel, spec in b["relations"].items()
    }
    assert relations == {
        ("opsGenieTeam", "members", "opsGenieUser", True),
        ("opsGenieSchedule", "ownerTeam", "opsGenieTeam", False),
        ("opsGenieService", "ownerTeam", "opsGenieTeam", False),
        ("opsGenieIncident", "services", "opsGenieService", True),
        ("opsGenieIncident", "respondingTeam", "opsGenieTeam", True),
        ("opsGenieAlert", "relatedIncident", "opsGenieIncident", False),
        ("opsGenieAlert", "respondingTeam", "opsGenieTeam", True),
    }
    service = blueprints["opsGenieService"]
    assert service["mirrorProperties"] == {"oncallUsers": {"title": "Current Oncalls", "path": "ownerTeam.oncallUsers"}}
    aggregation = service["aggregationProperties"]["numberOfOpenIncidents"]
    assert aggregation["target"] == "opsGenieIncident"
    assert aggregation["query"]["rules"] == [{"property": "status", "operator": "=", "value": "open"}]
    assert blueprints["opsGenieUser"]["schema"]["properties"]["address"]["type"] == "object"
    assert blueprints["opsGenieIncident"]["schema"]["properties"]["status"]["enum"] == ["closed", "open", "resolved"]


def test_drop_in_mapping_validates_against_its_blueprints() -> None:
    assert validate_mapping_file(OCEAN_MAPPING, load_blueprints(OCEAN_BLUEPRINTS)) == []
    assert validate_mapping_file(ESCALATION_MAPPING, _blueprints()) == []


# -- end to end: the drop-in against the emulators -------------------------------------------------
def test_drop_in_sync_fills_the_six_blueprints(seed_sandbox: Sandbox) -> None:
    result = run_cli(_ocean_args(), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    port = seed_sandbox.port
    assert {bp: len(port.entities.get(bp, {})) for bp in SIX} == {
        "opsGenieUser": 2,
        "opsGenieTeam": 1,
        "opsGenieSchedule": 1,
        "opsGenieService": 2,
        "opsGenieIncident": 2,
        "opsGenieAlert": 1,
    }
    team = port.entities["opsGenieTeam"][SEED_TEAM]  # oncallUsers from the team's own __oncalls
    assert team["title"] == "Data Science Team"
    assert team["properties"] == {
        "description": "",
        "url": f"https://app.opsgenie.com/teams/dashboard/{SEED_TEAM}/main",
        "oncallUsers": ["testuser@gmail.com"],
    }
    assert sorted(team["relations"]["members"]) == sorted(port.entities["opsGenieUser"])
    alert = port.entities["opsGenieAlert"]["580e9625-ecc7-42b0-8836-3d3637438bc4-169486700232"]
    assert alert["relations"] == {"relatedIncident": "4a0c5e6d-b239-4cd9-a7e8-a5f880e99473", "respondingTeam": []}
    service = port.entities["opsGenieService"]["daa0d66f-ad35-4396-b30d-70f0314c697a"]
    assert service["relations"] == {"ownerTeam": SEED_TEAM}
    stored = port.blueprints["opsGenieService"]  # mirror and aggregation properties accepted as defined
    defined = _read_json(OCEAN_BLUEPRINTS / "opsGenieService.json")
    for key in ("mirrorProperties", "aggregationProperties", "relations"):
        assert stored[key] == defined[key], key


def test_drop_in_sync_exact_schedule_and_user(seed_sandbox: Sandbox) -> None:
    assert run_cli(_ocean_args(), seed_sandbox.env).exit_code == 0
    port = seed_sandbox.port
    [(identifier, schedule)] = port.entities["opsGenieSchedule"].items()
    schedule_id = seed_sandbox.account.schedules[0]["id"]
    assert identifier == f"{schedule_id}_0c9f4b1e-3a0d-4d8e-9f6b-5e2a7c1d8b40"
    assert schedule["title"] == "Data Science Team_schedule_Rota1"
    assert schedule["properties"] == {
        "timezone": "Etc/UTC",
        "description": "",
        "startDate": "2023-04-20T09:00:00Z",
        "endDate": None,
        "rotationType": "weekly",
        "users": ["testuser@gmail.com"],
    }
    assert schedule["relations"] == {"ownerTeam": SEED_TEAM}
    user = next(u for u in port.entities["opsGenieUser"].values() if u["title"] == "Dev Tester")
    assert user["properties"]["email"] == "devtester@gmail.com"
    assert user["properties"]["address"] == {"country": "", "state": "", "city": "", "line": "", "zipCode": ""}
    assert user["properties"]["isVerified"] is True


def test_drop_in_sync_generated_account(ocean_sandbox: Sandbox, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    result = run_cli(_ocean_args(OCEAN_MAPPING, OCEAN_BLUEPRINTS, "--summary-json", str(summary)), ocean_sandbox.env)
    assert result.exit_code == 0, result.output
    account, port = ocean_sandbox.account, ocean_sandbox.port
    assert set(port.entities["opsGenieUser"]) == {u["id"] for u in account.users}
    assert set(port.entities["opsGenieTeam"]) == {t["id"] for t in account.teams}
    rotations = {f"{s['id']}_{r['id']}" for s in account.schedules for r in s["rotations"]}
    assert set(port.entities["opsGenieSchedule"]) == rotations
    assert set(port.entities["opsGenieService"]) == {s["id"] for s in account.services}
    assert set(port.entities["opsGenieAlert"]) == {a["id"] for a in account.alerts if a["status"] == "open"}
    incidents = set(port.entities["opsGenieIncident"])
    assert {i["id"] for i in account.incidents if i["status"] == "open"} <= incidents
    assert incidents <= {i["id"] for i in account.incidents}  # stubs only for real incidents
    owners = [s["ownerTeam"]["id"] for s in account.schedules if s.get("ownerTeam")]
    assert any(owners.count(team_id) > 1 for team_id in owners)  # the case Port's mapping collides on
    assert any(not s.get("ownerTeam") for s in account.schedules)
    for team in account.teams:  # on-call users of every schedule the team owns, in listing order
        union: list[str] = []
        for schedule in account.schedules:
            if (schedule.get("ownerTeam") or {}).get("id") == team["id"]:
                union += [u for u in account.oncalls.get(schedule["id"], []) if u not in union]
        assert port.entities["opsGenieTeam"][team["id"]]["properties"]["oncallUsers"] == union, team["id"]


def test_port_alias_heuristic_would_invent_incidents(ocean_sandbox: Sandbox) -> None:
    """The premise of the relatedIncident change, on the generated account's open alerts."""
    account = ocean_sandbox.account
    invented = {evaluate_expression(PORT_ALIAS_HEURISTIC, a) for a in account.alerts if a["status"] == "open"}
    bogus = invented - {i["id"] for i in account.incidents} - {None}
    assert {"host", "db", "disk", "k8s"} & bogus  # first words of plain aliases such as host_cpu_high_7


# -- request counting: every kind, every enrichment key, both eras ---------------------------------
BOTH_ERAS = """
resources:
  - kind: user
    port:
      entity:
        mappings: {identifier: .id, title: .fullName, blueprint: '"opsGenieUser"', properties: {email: .username}}
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
    port:
      itemsToParse: .rotations
      entity:
        mappings:
          identifier: .id + "_" + .item.id
          blueprint: '"opsGenieSchedule"'
          relations: {ownerTeam: .ownerTeam.id}
  - kind: schedule-on-call
    port:
      entity:
        mappings:
          identifier: .id + "_oncall"
          blueprint: '"opsGenieSchedule"'
          properties: {users: .__currentOncalls.onCallRecipients}
  - kind: service
    port:
      entity:
        mappings:
          identifier: .id
          title: .name
          blueprint: '"opsGenieService"'
          properties:
            oncallTeam: .__team.name
            teamMembers: '[.__team.members[].user.username]'
            currentOncalls: .__oncalls.onCallRecipients
            numOpenIncidents: '[.__incidents[] | select(.status == "open")] | length'
          relations: {ownerTeam: .teamId}
  - kind: incident
    port:
      entity:
        mappings:
          identifier: .id
          blueprint: '"opsGenieIncident"'
          properties: {serviceNames: '[.__impactedServices[].name]'}
          relations: {services: '[.__impactedServices[].id]'}
  - kind: alert
    port:
      entity:
        mappings:
          identifier: .id
          blueprint: '"opsGenieAlert"'
          relations: {relatedIncident: .__relatedIncident.id}
"""
EXTRA_PROPERTIES = {
    "opsGenieService": {
        "oncallTeam": {"type": "string", "title": "OnCall Team"},
        "teamMembers": {"type": "array", "title": "Team Members", "items": {"type": "string", "format": "user"}},
        "currentOncalls": {"type": "array", "title": "Oncall Users", "items": {"type": "string", "format": "user"}},
        "numOpenIncidents": {"type": "number", "title": "Number of Open Incidents"},
    },
    "opsGenieIncident": {"serviceNames": {"type": "array", "title": "Services", "items": {"type": "string"}}},
}


def _both_eras_files(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "blueprints"
    shutil.copytree(OCEAN_BLUEPRINTS, folder)
    shutil.copy(FIXTURES / "blueprints" / "opsGenieEscalation.json", folder)
    for name, extra in EXTRA_PROPERTIES.items():
        path = folder / f"{name}.json"
        blueprint = _read_json(path)
        blueprint["schema"]["properties"].update(extra)
        path.write_text(json.dumps(blueprint))
    escalation = ESCALATION_MAPPING.read_text().split("resources:", 1)[1]
    mapping = tmp_path / "both-eras.yaml"
    mapping.write_text(BOTH_ERAS + escalation)
    return mapping, folder


def _list_requests(sandbox: Sandbox, path: str) -> list[tuple[str, str]]:
    """(query, offset) of each list request to `path` (a regex), all of which must have succeeded."""
    found = sandbox.opsgenie.requests("GET", path)
    assert all(r.status == 200 for r in found), [(r.url, r.status) for r in found]
    params = [parse_qs(urlsplit(r.url).query) for r in found]
    return [(p.get("query", [""])[0], p.get("offset", ["0"])[0]) for p in params]


def _one_pass(requests: list[tuple[str, str]]) -> None:
    assert len(set(requests)) == len(requests), "a page was fetched twice"
    assert [offset for _, offset in requests].count("0") == 1, "the listing was started more than once"


def test_every_kind_and_key_costs_one_list_pass_and_one_detail_per_team(ocean_sandbox: Sandbox, tmp_path: Path) -> None:
    mapping, blueprints = _both_eras_files(tmp_path)
    result = run_cli(_ocean_args(mapping, blueprints), ocean_sandbox.env)
    assert result.exit_code == 0, result.output
    opsgenie, account = ocean_sandbox.opsgenie, ocean_sandbox.account
    for path in (r"^/v2/users/?$", r"^/v1/services/?$", r"^/v1/incidents/?$", r"^/v2/alerts$"):
        _one_pass(_list_requests(ocean_sandbox, path))
    for path in (r"^/v2/teams/?$", r"^/v2/escalations/?$", r"^/v2/schedules/?$", r"^/v2/schedules/on-calls$"):
        assert opsgenie.count("GET", path) == 1, path
    [schedules] = opsgenie.requests("GET", r"^/v2/schedules/?$")
    assert parse_qs(urlsplit(schedules.url).query) == {"expand": ["rotation"]}  # one listing, expanded
    team_details = sorted(r.path.rsplit("/", 1)[1] for r in opsgenie.requests("GET", r"^/v2/teams/[^/]+$"))
    assert team_details == sorted(t["id"] for t in account.teams)  # __members and __team share them
    first_pages = [r for r in opsgenie.requests("GET", "associated-alert-ids") if "offset=0&" in r.url]
    assert len(first_pages) == len({r.path for r in first_pages}) == len(account.incidents)
    details = r"^/v2/(alerts|users|escalations)/[^/]+$|^/v1/(services|incidents)/[^/]+$|^/v2/schedules/[^/]+/"
    assert [r.path for r in opsgenie.requests("GET", details)] == []  # no per-item gets, no per-schedule on-calls
    assert opsgenie.count("GET", r"^/v2/schedules/(?!on-calls$)[^/]+$") == 0
    service = next(s for s in account.services)
    entity = ocean_sandbox.port.entities["opsGenieService"][service["id"]]
    team = account.find_team(service["teamId"])
    assert team is not None
    assert entity["properties"]["oncallTeam"] == team["name"]
    assert entity["properties"]["teamMembers"] == [m["user"]["username"] for m in team["members"]]


# -- filters: the query Opsgenie receives ------------------------------------------------------------
Expected = Callable[[Account, dict[str, Any]], bool]  # account, item → should be synced
SINCE = "2024-01-31T12:00:00Z"
SINCE_MS = 1706702400000


def _team_ids(account: Account, *names: str) -> set[str]:
    return {t["id"] for t in account.teams if t["name"] in names}


def _filter_mapping(kind: str, selector: str) -> str:
    blueprint = "opsGenieAlert" if kind == "alert" else "opsGenieIncident"
    return f"""
resources:
  - kind: {kind}
    selector:
{selector}
    port:
      entity:
        mappings: {{identifier: .id, title: .message, blueprint: '"{blueprint}"', properties: {{status: .status}}}}
"""


FILTER_CASES: list[tuple[str, str, str, Expected]] = [
    (
        "alert",
        f"      apiQueryParams: {{status: open, createdAt: '{SINCE}'}}",
        f"(status:open AND createdAt>={SINCE_MS}) AND createdAt>=0",
        lambda _, a: a["status"] == "open" and iso_to_ms(a["createdAt"]) >= SINCE_MS,
    ),
    (
        "alert",
        f"      apiQueryParams:\n        created_at: '{SINCE}'\n        is_seen: true\n"
        "        teams: 'Platform Team, SRE & Ops Team'\n        acknowledged: false",
        f'(createdAt>={SINCE_MS} AND isSeen:true AND (teams:"Platform Team" OR teams:"SRE & Ops Team") '
        "AND acknowledged:false) AND createdAt>=0",
        lambda acc, a: (
            iso_to_ms(a["createdAt"]) >= SINCE_MS
            and a["isSeen"] is True
            and a["acknowledged"] is False
            and bool({t["id"] for t in a["teams"]} & _team_ids(acc, "Platform Team", "SRE & Ops Team"))
        ),
    ),
    (
        "alert",
        "      apiQueryParams: {status: open}\n      opsgenieQuery: 'priority:P1 OR priority:P2'",
        "(status:open AND (priority:P1 OR priority:P2)) AND createdAt>=0",
        lambda _, a: a["status"] == "open" and a["priority"] in ("P1", "P2"),
    ),
    (
        "incident",
        f"      apiQueryParams: {{status: open, created_at: '{SINCE}'}}",
        f"(status:open AND createdAt>={SINCE_MS}) AND createdAt>=0",
        lambda _, i: i["status"] == "open" and iso_to_ms(i["createdAt"]) >= SINCE_MS,
    ),
    (
        "incident",
        "      opsgenieQuery: 'status:resolved OR priority:P1'",
        "(status:resolved OR priority:P1) AND createdAt>=0",
        lambda _, i: i["status"] == "resolved" or i["priority"] == "P1",
    ),
]


@pytest.mark.parametrize(("kind", "selector", "wire", "expected"), FILTER_CASES)
def test_filters_reach_opsgenie_as_search_syntax(
    generated_sandbox: Sandbox,
    tmp_path: Path,
    kind: str,
    selector: str,
    wire: str,
    expected: Expected,
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(_filter_mapping(kind, selector))
    result = run_cli(_ocean_args(mapping, OCEAN_BLUEPRINTS), generated_sandbox.env)
    assert result.exit_code == 0, result.output
    path = r"^/v2/alerts$" if kind == "alert" else r"^/v1/incidents/?$"
    requests = generated_sandbox.opsgenie.requests("GET", path)
    assert {r.status for r in requests} == {200}  # the emulator's strict parser accepted it (no 422)
    assert parse_qs(urlsplit(requests[0].url).query)["query"] == [wire]
    account = generated_sandbox.account
    items = account.alerts if kind == "alert" else account.incidents
    wanted = {item["id"] for item in items if expected(account, item)}
    blueprint = "opsGenieAlert" if kind == "alert" else "opsGenieIncident"
    assert wanted, "the case should select something"
    assert set(generated_sandbox.port.entities[blueprint]) == wanted


def test_team_details_survive_configuration_throttling() -> None:
    """A team key (no /v2/request-limits/) on a tight Configuration bucket: the per-team detail
    calls behind __members get 429s, are retried, and every team still gets its members."""
    account = generate_account(alerts=20, incidents=5, services=5, teams=10, schedules=6, seed=3)
    sandbox = start_sandbox(account, rate_limits={"configuration": (4, None)})
    sandbox.opsgenie.faults.add(FaultRule(path=r"request-limits", status=403))
    try:
        result = run_cli(_ocean_args(), sandbox.env)
        assert result.exit_code == 0, result.output
        assert sandbox.opsgenie.throttled["configuration"] > 0
        answered = [r.path for r in sandbox.opsgenie.requests("GET", r"^/v2/teams/[^/]+$") if r.status == 200]
        assert sorted(answered) == sorted(
            f"/v2/teams/{t['id']}" for t in account.teams
        )  # each once, once it got through
        members = {t["id"]: sorted(m["user"]["id"] for m in t["members"]) for t in account.teams}
        stored = sandbox.port.entities["opsGenieTeam"]
        assert {i: sorted(e["relations"]["members"]) for i, e in stored.items()} == members
    finally:
        sandbox.opsgenie.stop()
        sandbox.port.stop()

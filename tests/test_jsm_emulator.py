"""The JSM Operations / Jira emulator over real HTTP: shapes, paging and its limits, auth, scopes,
rate limits, faults, and the ids-changed / no-services modes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from opsgenie_export.sandbox.accounts import ALERT_ID, Account, generate_account, iso_to_ms, seed_account
from opsgenie_export.sandbox.demo import DEMO_ATLASSIAN_EMAIL, DEMO_ATLASSIAN_TOKEN, demo_account, start_jsm_face
from opsgenie_export.sandbox.jsm_emulator import SCOPE_CONFIG, JsmFace, running_jsm
from opsgenie_export.sandbox.server import FaultPlan, FaultRule
from tests.conftest import running_sandbox

EMAIL = "jsm-tester@example.com"
TOKEN = "jsm-test-token-0a1b2c3d4e"


@pytest.fixture(scope="module")
def account() -> Account:
    return generate_account(alerts=450, incidents=40, services=12, teams=5, seed=5)


@pytest.fixture
def face(account: Account) -> Iterator[JsmFace]:
    with running_jsm(account, email=EMAIL, api_token=TOKEN) as started:
        yield started


@pytest.fixture
def changed(account: Account) -> Iterator[JsmFace]:
    with running_jsm(account, email=EMAIL, api_token=TOKEN, ids_changed=True) as started:
        yield started


def session() -> requests.Session:
    s = requests.Session()
    s.auth = (EMAIL, TOKEN)
    return s


def ops(face: JsmFace) -> str:
    return f"{face.api_url}/jsm/ops/api/{face.cloud_id}"


def walk(face: JsmFace, first: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every value of an Ops list, following `links.next` (relative to the Ops API root)."""
    s, values, url, pages = session(), [], f"{ops(face)}{first}", 0
    response = s.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        values += body["values"]
        pages += 1
        assert pages < 1000
        following = body["links"].get("next")
        if not following:
            return values
        assert following.startswith("/v1/")
        response = s.get(f"{ops(face)}{following}")


def search(face: JsmFace, body: dict[str, Any]) -> list[dict[str, Any]]:
    s, issues, token = session(), [], None
    while True:
        payload = dict(body, **({"nextPageToken": token} if token else {}))
        response = s.post(f"{face.site_url}/rest/api/3/search/jql", json=payload)
        assert response.status_code == 200, response.text
        page = response.json()
        issues += page["issues"]
        token = page.get("nextPageToken")
        if page["isLast"]:
            assert token is None
            return issues
        assert token


# -- auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", [None, ("jsm-tester@example.com", "wrong"), ("other@example.com", TOKEN)])
def test_wrong_credentials_are_401_on_both_faces_and_echo_nothing(face: JsmFace, auth: Any) -> None:
    on_ops = requests.get(f"{ops(face)}/v1/alerts", auth=auth)
    on_site = requests.post(f"{face.site_url}/rest/api/3/search/jql", json={"jql": "project = OPS"}, auth=auth)
    assert on_ops.status_code == 401 and on_ops.json() == {
        "code": 401,
        "message": "Client must be authenticated to access this resource.",
    }
    assert on_site.status_code == 401 and on_site.json()["errorMessages"]
    assert TOKEN not in on_ops.text + on_site.text and "wrong" not in on_ops.text + on_site.text


def test_bearer_or_garbled_basic_is_401(face: JsmFace) -> None:
    for header in (f"Bearer {TOKEN}", "Basic !!!not-base64", "Basic " + "ZW1haWxvbmx5"):  # last: "emailonly"
        response = requests.get(f"{ops(face)}/v1/teams", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_tenant_info_needs_no_credentials(face: JsmFace) -> None:
    response = requests.get(f"{face.site_url}/_edge/tenant_info")
    assert response.status_code == 200 and response.json() == {"cloudId": face.cloud_id}


def test_a_refused_scope_is_403_naming_the_scope_and_only_for_its_endpoints(account: Account) -> None:
    with running_jsm(account, email=EMAIL, api_token=TOKEN, refused_scopes={SCOPE_CONFIG}) as face:
        refused = session().get(f"{ops(face)}/v1/schedules")
        allowed = session().get(f"{ops(face)}/v1/alerts")
    assert refused.status_code == 403
    assert SCOPE_CONFIG in refused.json()["errors"][0]["title"]
    assert allowed.status_code == 200


def test_scope_refusal_status_can_be_401(account: Account) -> None:
    options = {"refused_scopes": {"read:jira-work"}, "scope_status": 401}
    with running_jsm(account, email=EMAIL, api_token=TOKEN, **options) as face:
        response = session().post(f"{face.site_url}/rest/api/3/search/jql", json={"jql": "project = OPS"})
    assert response.status_code == 401 and "read:jira-work" in response.json()["errorMessages"][0]


def test_wrong_cloud_id_is_404(face: JsmFace) -> None:
    response = session().get(f"{face.api_url}/jsm/ops/api/not-my-cloud/v1/alerts")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "NOT_FOUND"


def test_the_two_faces_are_different_hosts(face: JsmFace) -> None:
    assert face.api_url != face.site_url
    assert session().get(f"{face.api_url}/rest/api/3/myself").status_code == 404
    assert session().get(f"{face.site_url}/jsm/ops/api/{face.cloud_id}/v1/alerts").status_code == 404


# -- alerts --------------------------------------------------------------------------------------
def test_alert_list_walks_every_alert_once_with_count(face: JsmFace, account: Account) -> None:
    values = walk(face, "/v1/alerts", {"size": 100, "sort": "createdAt", "order": "asc"})
    assert [v["id"] for v in values] == [a["id"] for a in account.alerts]
    first = session().get(f"{ops(face)}/v1/alerts", params={"size": 7}).json()
    assert first["count"] == len(account.alerts) and len(first["values"]) == 7
    assert first["links"]["next"] == "/v1/alerts?offset=7&size=7"


def test_alert_list_defaults_to_20_newest_first(face: JsmFace, account: Account) -> None:
    body = session().get(f"{ops(face)}/v1/alerts").json()
    assert len(body["values"]) == 20
    created = [iso_to_ms(v["createdAt"].replace("Z", "+00:00")) for v in body["values"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"offset": 19_900, "size": 100}, 422),  # "Sum of offset and size should be lower than 20K"
        ({"offset": 19_901, "size": 99}, 422),
        ({"offset": 19_899, "size": 100}, 200),
        ({"size": 101}, 422),
        ({"size": 0}, 422),
        ({"offset": -1}, 422),
        ({"size": "ten"}, 422),
        ({"sort": "updatedAt"}, 422),
        ({"order": "up"}, 422),
        ({"query": "createdAt >"}, 422),
        ({"query": "nosuchfield: 1"}, 422),
    ],
)
def test_alert_list_limits(face: JsmFace, params: dict[str, Any], status: int) -> None:
    response = session().get(f"{ops(face)}/v1/alerts", params=params)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["errors"][0]["title"]


def test_alert_created_at_windows_partition_the_account(face: JsmFace, account: Account) -> None:
    times = [iso_to_ms(a["createdAt"].replace("Z", "+00:00")) for a in account.alerts]
    middle = times[len(times) // 2]
    query = f"createdAt >= {middle} AND createdAt < {times[-1] + 1}"
    later = walk(face, "/v1/alerts", {"size": 100, "query": query, "sort": "createdAt", "order": "asc"})
    earlier = walk(face, "/v1/alerts", {"size": 100, "query": f"createdAt < {middle}", "order": "asc"})
    assert len(later) + len(earlier) == len(account.alerts)
    assert {v["id"] for v in later}.isdisjoint(v["id"] for v in earlier)
    assert all(iso_to_ms(v["createdAt"].replace("Z", "+00:00")) >= middle for v in later)


def test_alert_shape_is_the_specs_alert_response() -> None:
    with running_jsm(seed_account(), email=EMAIL, api_token=TOKEN) as face:
        alert = session().get(f"{ops(face)}/v1/alerts/{ALERT_ID}").json()
        listed = session().get(f"{ops(face)}/v1/alerts").json()["values"][0]
    assert listed == alert  # the list gives the whole AlertResponse
    assert alert["id"] == ALERT_ID and alert["seen"] is True and alert["status"] == "open"
    assert alert["integrationName"] == "Default API" and alert["integrationType"] == "API"
    assert alert["createdAt"] == "2023-04-21T08:36:18.460Z"  # three fraction digits, always
    assert alert["lastOccuredAt"] == "2023-04-21T08:36:18.460Z"  # (sic) one "r"
    assert alert["ackTime"] == "2023-06-16T12:38:11.123Z"  # createdAt + report.ackTime
    assert alert["owner"] == "Test User"  # a display name
    assert alert["extraProperties"] == {}
    for opsgenie_only in ("isSeen", "integration", "report", "details", "teams", "lastOccurredAt", "ownerTeamId"):
        assert opsgenie_only not in alert


def test_alert_statuses_use_jsm_values(face: JsmFace, account: Account) -> None:
    values = walk(face, "/v1/alerts", {"size": 100})
    statuses = {v["status"] for v in values}
    assert statuses == {"open", "acked", "snoozed", "closed", "resolved"}
    by_id = {a["id"]: a for a in account.alerts}
    for value in values:
        source = by_id[value["id"]]
        if value["status"] == "acked":
            assert source["status"] == "open" and source["acknowledged"]
        if value["status"] in ("closed", "resolved"):
            assert source["status"] == "closed"


def test_get_alert_unknown_and_tiny_id_are_404(face: JsmFace, account: Account) -> None:
    assert session().get(f"{ops(face)}/v1/alerts/nope").status_code == 404
    tiny = account.alerts[0]["tinyId"]
    response = session().get(f"{ops(face)}/v1/alerts/{tiny}")
    assert response.status_code == 404 and response.json()["errors"][0]["title"] == "Alert does not exist"


# -- configuration -------------------------------------------------------------------------------
def test_teams_escalations_and_members(face: JsmFace, account: Account) -> None:
    teams = session().get(f"{ops(face)}/v1/teams").json()
    assert set(teams) == {"platformTeams"}
    assert [(t["teamId"], t["teamName"]) for t in teams["platformTeams"]] == [
        (t["id"], t["name"]) for t in account.teams
    ]
    for team in account.teams:
        owned = [e["id"] for e in account.escalations if e["ownerTeam"]["id"] == team["id"]]
        assert [e["id"] for e in walk(face, f"/v1/teams/{team['id']}/escalations", {"size": 1})] == owned
        members = session().post(
            f"{face.api_url}/public/teams/v1/org/{face.org_id}/teams/{team['id']}/members", json={"first": 50}
        )
        assert [m["accountId"] for m in members.json()["results"]] == [m["user"]["id"] for m in team["members"]]
    assert session().get(f"{ops(face)}/v1/teams/nope/escalations").status_code == 404
    escalation = walk(face, f"/v1/teams/{account.teams[0]['id']}/escalations", {})[0]
    assert isinstance(escalation["rules"][0]["delay"], int) and set(escalation["rules"][0]["recipient"]) == {
        "id",
        "type",
    }


def test_team_members_page_with_cursors(account: Account) -> None:
    team = max(account.teams, key=lambda t: len(t["members"]))
    assert len(team["members"]) >= 2
    with running_jsm(account, email=EMAIL, api_token=TOKEN) as face:
        url = f"{face.site_url}/gateway/api/public/teams/v1/org/{face.org_id}/teams/{team['id']}/members"
        seen, after = [], None
        while True:
            page = session().post(url, json={"first": 1, **({"after": after} if after else {})}).json()
            seen += [m["accountId"] for m in page["results"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == [m["user"]["id"] for m in team["members"]]
        assert session().post(url, json={"first": 51}).status_code == 400
        wrong_org = url.replace(face.org_id, "other-org")
        assert session().post(wrong_org, json={}).status_code == 404


def test_schedules_page_by_at_most_50_with_team_ids_and_rotations(face: JsmFace, account: Account) -> None:
    assert session().get(f"{ops(face)}/v1/schedules", params={"size": 51}).status_code == 422
    assert session().get(f"{ops(face)}/v1/schedules", params={"expand": "timeline"}).status_code == 422
    plain = session().get(f"{ops(face)}/v1/schedules").json()
    assert plain["_expands"] == ["rotation"] and "rotations" not in plain["values"][0]
    values = walk(face, "/v1/schedules", {"size": 3, "expand": "rotation"})
    assert [v["id"] for v in values] == [s["id"] for s in account.schedules]
    for value, source in zip(values, account.schedules, strict=True):
        assert "ownerTeam" not in value
        assert value.get("teamId") == (source.get("ownerTeam") or {}).get("id")
        for rotation in value["rotations"]:
            assert all(set(p) == {"id", "type"} for p in rotation["participants"])


def test_oncalls_flat_and_tree(face: JsmFace, account: Account) -> None:
    schedule = next(s for s in account.schedules if account.oncalls.get(s["id"]))
    expected = [account.find_user(name)["id"] for name in account.oncalls[schedule["id"]]]
    url = f"{ops(face)}/v1/schedules/{schedule['id']}/on-calls"
    assert session().get(url, params={"flat": "true"}).json() == {"onCallUsers": expected}
    tree = session().get(url).json()
    assert tree == {"onCallParticipants": [{"id": a, "type": "user"} for a in expected]}
    assert session().get(url, params={"date": "yesterday"}).status_code == 422
    assert session().get(f"{ops(face)}/v1/schedules/nope/on-calls").status_code == 404


def test_hidden_teams_are_not_listed_and_have_no_escalations(account: Account) -> None:
    visible = {account.teams[0]["id"]}
    with running_jsm(account, email=EMAIL, api_token=TOKEN, visible_team_ids=visible) as face:
        teams = session().get(f"{ops(face)}/v1/teams").json()["platformTeams"]
        hidden = account.teams[1]["id"]
        escalations = session().get(f"{ops(face)}/v1/teams/{hidden}/escalations").json()
    assert [t["teamId"] for t in teams] == [account.teams[0]["id"]]
    assert escalations == {"values": [], "links": {}}


# -- incidents (Jira) ----------------------------------------------------------------------------
INCIDENTS = 'issuetype = "[System] Incident" ORDER BY created ASC'


def test_search_returns_only_ids_unless_fields_are_asked(face: JsmFace, account: Account) -> None:
    bare = search(face, {"jql": INCIDENTS})
    assert bare and all(set(issue) == {"id"} for issue in bare)
    full = search(face, {"jql": INCIDENTS, "fields": ["*all"], "maxResults": 7})
    assert [i["id"] for i in full] == [i["id"] for i in account.incidents]
    assert [i["id"] for i in bare] == [i["id"] for i in full]
    some = search(face, {"jql": INCIDENTS, "fields": ["summary", "created"]})
    assert set(some[0]["fields"]) == {"summary", "created"} and some[0]["key"].startswith("OPS-")


def test_search_get_and_post_agree_and_max_results_is_clamped(face: JsmFace) -> None:
    params = {"jql": INCIDENTS, "fields": "summary,status", "maxResults": 500}
    got = session().get(f"{face.site_url}/rest/api/3/search/jql", params=params).json()
    posted = session().post(f"{face.site_url}/rest/api/3/search/jql", json=dict(params, fields=["summary", "status"]))
    assert got == posted.json()
    assert len(got["issues"]) == 40 and got["isLast"] is True  # 40 incidents fit the clamped page of 100


def test_incident_issue_shape(account: Account) -> None:
    with running_jsm(seed_account(), email=EMAIL, api_token=TOKEN) as face:
        issues = search(face, {"jql": 'issuetype = "[System] Incident"', "fields": ["*all"]})
    mine = next(i for i in issues if i["fields"]["summary"] == "My Incident")
    fields = mine["fields"]
    assert fields["created"] == "2023-09-20T13:33:00.941+0000"
    assert fields["issuetype"]["name"] == "[System] Incident" and fields["status"]["name"] == "Open"
    assert fields["priority"]["name"] == "Medium" and fields["labels"] == ["hello"]
    assert fields["description"]["type"] == "doc"
    assert {s["id"] for s in fields["customfield_10041"]} == {
        "59591948-d418-4bb9-af16-170d6b232b7d",
        "daa0d66f-ad35-4396-b30d-70f0314c697a",
    }


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("issuetype = Incident", "The value 'Incident' does not exist for the field 'issuetype'."),
        ("order by created DESC", "Unbounded JQL queries are not allowed here."),
        ("", "Unbounded JQL queries are not allowed here."),
        ("flavour = sweet", "Field 'flavour' does not exist"),
        ('created >= "yesterday"', "Date value 'yesterday' for field 'created' is invalid."),
        ("project = OPS AND", "Error in the JQL Query"),
        ("summary = outage", "The operator '=' is not supported by the 'summary' field."),
    ],
)
def test_bad_jql_is_400_with_jiras_message(face: JsmFace, jql: str, message: str) -> None:
    response = session().post(f"{face.site_url}/rest/api/3/search/jql", json={"jql": jql})
    assert response.status_code == 400
    assert message in response.json()["errorMessages"][0]


def test_jql_selects_by_type_project_date_and_boolean_logic(face: JsmFace, account: Account) -> None:
    everything = search(face, {"jql": "project in (OPS, SUP)"})
    assert len(everything) > len(account.incidents)  # service requests live on the site too
    cut = account.incidents[len(account.incidents) // 2]["createdAt"][:16].replace("T", " ")
    newer = search(face, {"jql": f'type = "[System] Incident" AND created >= "{cut}"'})
    older = search(face, {"jql": f'type = "[System] Incident" AND NOT created >= "{cut}"'})
    assert len(newer) + len(older) == len(account.incidents) and newer and older
    either = search(face, {"jql": "status = Open OR status = Closed OR status = Resolved"})
    assert len(either) == len(account.incidents)


def test_page_tokens_are_bound_to_their_query(face: JsmFace) -> None:
    first = session().post(f"{face.site_url}/rest/api/3/search/jql", json={"jql": INCIDENTS, "maxResults": 5}).json()
    assert first["isLast"] is False and first["nextPageToken"]
    other = {"jql": "project = OPS", "maxResults": 5, "nextPageToken": first["nextPageToken"]}
    assert session().post(f"{face.site_url}/rest/api/3/search/jql", json=other).status_code == 400
    junk = {"jql": INCIDENTS, "nextPageToken": "not-a-token"}
    assert session().post(f"{face.site_url}/rest/api/3/search/jql", json=junk).status_code == 400


def test_the_removed_search_endpoint_is_gone(face: JsmFace) -> None:
    response = session().get(f"{face.site_url}/rest/api/3/search", params={"jql": INCIDENTS})
    assert response.status_code == 410 and "/rest/api/3/search/jql" in response.json()["errorMessages"][0]


def test_linked_alerts_match_associated_alerts_and_page(face: JsmFace, account: Account) -> None:
    busy = max(account.incidents, key=lambda i: len(account.associated_alerts.get(i["id"], [])))
    expected = account.associated_alerts[busy["id"]]
    assert len(expected) >= 2
    url = f"{face.api_url}/jsm/incidents/cloudId/{face.cloud_id}/v1/incident/{busy['id']}/alert"
    whole = session().get(url).json()
    assert whole == {"values": {"alertIds": expected}, "startKey": None}
    seen, start = [], None
    while True:
        page = session().get(url, params={"limit": 1, **({"startKey": start} if start else {})}).json()
        seen += page["values"]["alertIds"]
        start = page["startKey"]
        if start is None:
            break
    assert seen == expected
    unknown = url.replace(busy["id"], "OPS-999999")
    assert session().get(unknown).status_code == 404


# -- services and users --------------------------------------------------------------------------
def test_services_page_and_the_no_services_mode(face: JsmFace, account: Account) -> None:
    url = f"{face.api_url}/jsm/api/{face.cloud_id}/v1/services/"
    first = session().get(url, params={"size": 5}).json()
    assert first["pagination"] == {"totalCount": len(account.services), "hasNext": True}
    service = first["services"][0]
    assert service["id"] == account.services[0]["id"] and service["name"] == account.services[0]["name"]
    assert service["responders"]["teams"] == [account.services[0]["teamId"]]
    assert session().get(url, params={"size": 51}).status_code == 422
    with running_jsm(account, email=EMAIL, api_token=TOKEN, services_api=False) as bare:
        missing = session().get(f"{bare.api_url}/jsm/api/{bare.cloud_id}/v1/services/")
        assert missing.status_code == 404
        assert session().get(f"{ops(bare)}/v1/alerts").status_code == 200


def test_user_bulk_pages_by_10_and_omits_unknown_accounts(face: JsmFace, account: Account) -> None:
    wanted = [u["id"] for u in account.users[:13]] + ["712020:nobody"]
    url = f"{face.site_url}/rest/api/3/user/bulk"
    first = session().get(url, params={"accountId": wanted}).json()
    assert first["maxResults"] == 10 and first["total"] == 13 and first["isLast"] is False
    second = session().get(first["nextPage"]).json()
    assert [u["accountId"] for u in first["values"] + second["values"]] == wanted[:13]
    assert second["isLast"] is True
    assert first["values"][0]["emailAddress"] == account.users[0]["username"]
    assert session().get(url).status_code == 400


def test_hidden_emails(account: Account) -> None:
    with running_jsm(account, email=EMAIL, api_token=TOKEN, hide_emails=True) as face:
        users = session().get(f"{face.site_url}/rest/api/3/users/search").json()
    assert users and all("emailAddress" not in u for u in users)


# -- migration changed the ids -------------------------------------------------------------------
def test_ids_changed_mode_changes_every_id_and_keeps_references_consistent(changed: JsmFace, account: Account) -> None:
    s = session()
    alerts = walk(changed, "/v1/alerts", {"size": 100})
    assert len(alerts) == len(account.alerts)
    assert not {a["id"] for a in alerts} & {a["id"] for a in account.alerts}
    assert s.get(f"{ops(changed)}/v1/alerts/{alerts[0]['id']}").json() == alerts[0]
    assert s.get(f"{ops(changed)}/v1/alerts/{account.alerts[0]['id']}").status_code == 404

    teams = s.get(f"{ops(changed)}/v1/teams").json()["platformTeams"]
    team_ids = {t["teamId"] for t in teams}
    assert not team_ids & {t["id"] for t in account.teams}
    schedules = walk(changed, "/v1/schedules", {"expand": "rotation", "size": 50})
    assert {s_["teamId"] for s_ in schedules if "teamId" in s_} <= team_ids
    users = set()
    for schedule in schedules:
        oncall_url = f"{ops(changed)}/v1/schedules/{schedule['id']}/on-calls"
        users |= set(s.get(oncall_url, params={"flat": "true"}).json()["onCallUsers"])
    assert users and all(u.startswith("712020:") for u in users)
    found = s.get(f"{changed.site_url}/rest/api/3/user/bulk", params={"accountId": sorted(users), "maxResults": 100})
    assert {u["accountId"] for u in found.json()["values"]} == users

    issues = search(changed, {"jql": INCIDENTS, "fields": ["summary"]})
    assert all(i["id"].isdigit() for i in issues)
    busy = max(account.incidents, key=lambda i: len(account.associated_alerts.get(i["id"], [])))
    issue_id = changed.jsm_id("incident", busy["id"])
    linked_url = f"{changed.api_url}/jsm/incidents/cloudId/{changed.cloud_id}/v1/incident/{issue_id}/alert"
    linked = s.get(linked_url).json()["values"]["alertIds"]
    assert linked == [changed.jsm_id("alert", a) for a in account.associated_alerts[busy["id"]]]
    assert all(s.get(f"{ops(changed)}/v1/alerts/{a}").status_code == 200 for a in linked)
    services = s.get(f"{changed.api_url}/jsm/api/{changed.cloud_id}/v1/services/").json()["services"]
    assert all(service["id"].startswith("b:") for service in services)


def test_issue_keys_are_the_same_in_both_modes(face: JsmFace, changed: JsmFace) -> None:
    plain = search(face, {"jql": INCIDENTS, "fields": ["summary"]})
    moved = search(changed, {"jql": INCIDENTS, "fields": ["summary"]})
    assert [i["key"] for i in plain] == [i["key"] for i in moved]
    assert [i["id"] for i in plain] != [i["id"] for i in moved]


# -- rate limits and faults ----------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_limits_answer_429_with_retry_after_and_ratelimit_headers(account: Account) -> None:
    clock = Clock()
    options = {"api_rate_limit": (2, 10.0), "site_rate_limit": (2, 10.0), "now": clock}
    with running_jsm(account, email=EMAIL, api_token=TOKEN, **options) as face:
        s = session()
        assert [s.get(f"{ops(face)}/v1/teams").status_code for _ in range(2)] == [200, 200]
        limited = s.get(f"{ops(face)}/v1/teams")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "10"
        assert limited.headers["X-RateLimit-Limit"] == "2" and limited.headers["X-RateLimit-Remaining"] == "0"
        assert limited.headers["X-RateLimit-Reset"].endswith("Z")
        assert limited.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"
        clock.t += 10.5
        assert s.get(f"{ops(face)}/v1/teams").status_code == 200
        site = f"{face.site_url}/rest/api/3/myself"
        statuses = [s.get(site).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        last = s.get(site)
        assert last.headers["RateLimit-Reason"] == "jira-burst-based"
        assert face.throttled == 3
        # a refused login is not counted against the limit, and the unauthenticated tenant_info is never limited
        assert requests.get(f"{face.site_url}/_edge/tenant_info").status_code == 200


def test_forced_statuses_drops_and_truncation_from_the_fault_plan(account: Account) -> None:
    plan = FaultPlan()
    plan.add(FaultRule(path=r"/v1/alerts$", status=503, times=1))
    plan.add(FaultRule(path=r"/search/jql$", drop_rate=1.0))
    plan.add(FaultRule(path=r"/v1/teams$", truncate_rate=1.0))
    with running_jsm(account, email=EMAIL, api_token=TOKEN, faults=plan) as face:
        s = session()
        assert s.get(f"{ops(face)}/v1/alerts").status_code == 503
        assert s.get(f"{ops(face)}/v1/alerts").status_code == 200
        with pytest.raises(requests.ConnectionError):
            s.post(f"{face.site_url}/rest/api/3/search/jql", json={"jql": INCIDENTS})
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # cut at the socket
            s.get(f"{ops(face)}/v1/teams")
        assert face.count(path=r"/search/jql$") == 1


# -- the shared sandbox --------------------------------------------------------------------------
def test_running_sandbox_serves_one_account_on_both_sources() -> None:
    account = generate_account(alerts=120, incidents=10, services=4, seed=3)
    with running_sandbox(account, jsm=True, jsm_options={"ids_changed": True}) as sandbox:
        assert sandbox.jsm is not None and sandbox.jsm.ids_changed
        env = sandbox.jsm_env
        assert env["OPSGENIE_EXPORT_SOURCE"] == "jsm" and env["JSM_SITE_URL"] == sandbox.jsm.site_url
        og = requests.get(
            f"{sandbox.opsgenie.url}/v2/alerts/count", headers={"Authorization": "GenieKey og-secret-key-1f2e3d4c5b6a"}
        ).json()["data"]["count"]
        jsm = requests.get(
            f"{env['JSM_API_URL']}/jsm/ops/api/{env['JSM_CLOUD_ID']}/v1/alerts",
            auth=(env["ATLASSIAN_EMAIL"], env["ATLASSIAN_API_TOKEN"]),
        ).json()["count"]
        assert og == jsm == 120
        account.add_alert(dict(account.alerts[0], id="fresh-alert-1", tinyId="9999"))
        again = requests.get(
            f"{env['JSM_API_URL']}/jsm/ops/api/{env['JSM_CLOUD_ID']}/v1/alerts",
            auth=(env["ATLASSIAN_EMAIL"], env["ATLASSIAN_API_TOKEN"]),
        ).json()["count"]
        assert again == 121  # one account, changes show on both faces


def test_alert_by_alias_and_the_on_request_hook(account: Account) -> None:
    seen: list[str] = []
    alert = next(a for a in account.alerts if a.get("alias"))
    with running_jsm(account, email=EMAIL, api_token=TOKEN) as face:
        face.on_request = lambda request: seen.append(request.path)
        found = session().get(f"{ops(face)}/v1/alerts/alias", params={"alias": alert["alias"]})
        missing = session().get(f"{ops(face)}/v1/alerts/alias", params={"alias": "no-such-alias"})
        requests.get(f"{ops(face)}/v1/alerts/alias", params={"alias": alert["alias"]}, auth=("x", "y"))
    assert found.status_code == 200 and found.json()["id"] == alert["id"]
    assert missing.status_code == 404
    assert seen == [f"/jsm/ops/api/{face.cloud_id}/v1/alerts/alias"] * 2  # refused logins never reach it


def test_incidents_added_to_the_account_show_in_the_next_search() -> None:
    account = generate_account(alerts=30, incidents=6, services=3, seed=9)
    with running_jsm(account, email=EMAIL, api_token=TOKEN) as face:
        before = search(face, {"jql": INCIDENTS})
        fresh = dict(account.incidents[-1], id="fresh-incident-1", tinyId="77", message="Fresh outage")
        account.add_incident(fresh, alert_ids=[account.alerts[0]["id"]])
        after = search(face, {"jql": INCIDENTS, "fields": ["summary"]})
        linked = (
            session()
            .get(f"{face.api_url}/jsm/incidents/cloudId/{face.cloud_id}/v1/incident/fresh-incident-1/alert")
            .json()
        )
    assert len(after) == len(before) + 1
    assert any(i["id"] == "fresh-incident-1" and i["fields"]["summary"] == "Fresh outage" for i in after)
    assert linked["values"]["alertIds"] == [account.alerts[0]["id"]]


def test_standalone_serves_the_jsm_face_and_reports_it() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsgenie_export.sandbox.standalone",
            "--alerts",
            "40",
            "--incidents",
            "5",
            "--jsm",
            "--jsm-ids-changed",
            "--jsm-no-services",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        ready = json.loads(process.stdout.readline())
        jsm = ready["jsm"]
        assert set(jsm["env"]) == {
            "JSM_SITE_URL",
            "JSM_API_URL",
            "JSM_CLOUD_ID",
            "JSM_ORG_ID",
            "ATLASSIAN_EMAIL",
            "ATLASSIAN_API_TOKEN",
        }
        auth = (jsm["email"], jsm["api_token"])
        listed = requests.get(f"{jsm['api']}/jsm/ops/api/{jsm['cloud_id']}/v1/alerts", auth=auth).json()
        assert listed["count"] == 40
        services = requests.get(f"{jsm['api']}/jsm/api/{jsm['cloud_id']}/v1/services/", auth=auth)
        assert services.status_code == 404
        process.stdin.close()
        exit_report = json.loads(process.stdout.readline())
    finally:
        process.wait(timeout=30)
    assert exit_report["event"] == "exit"
    assert exit_report["jsm"]["requests"] == 2 and exit_report["jsm"]["byStatus"] == {"200": 1, "404": 1}


def test_following_next_links_into_the_ceiling_is_refused() -> None:
    """A client that only follows `links.next` on a 20,000+ account hits 422: it must window by createdAt."""
    big = generate_account(alerts=20_050, incidents=0, services=1, teams=1, seed=4)
    with running_jsm(big, email=EMAIL, api_token=TOKEN) as face:
        page = session().get(f"{ops(face)}/v1/alerts", params={"offset": 19_800, "size": 100}).json()
        assert page["count"] == 20_050 and len(page["values"]) == 100
        assert page["links"]["next"] == "/v1/alerts?offset=19900&size=100"
        beyond = session().get(f"{ops(face)}/v1/alerts", params={"offset": 19_900, "size": 100})
    assert beyond.status_code == 422 and "20000" in beyond.json()["errors"][0]["title"]


@pytest.mark.parametrize("ids_changed", [False, True], ids=["ids-preserved", "ids-changed"])
def test_every_endpoint_answers_for_every_item_of_the_demo_account(ids_changed: bool) -> None:
    account = demo_account(alerts=150, incidents=20, services=6)
    face = start_jsm_face(account, ids_changed=ids_changed)
    try:
        s = requests.Session()
        s.auth = (DEMO_ATLASSIAN_EMAIL, DEMO_ATLASSIAN_TOKEN)
        root = f"{face.api_url}/jsm/ops/api/{face.cloud_id}"
        statuses = []
        alerts = s.get(f"{root}/v1/alerts", params={"size": 100, "offset": 100}).json()["values"]
        statuses += [s.get(f"{root}/v1/alerts/{a['id']}").status_code for a in alerts]
        for team in s.get(f"{root}/v1/teams").json()["platformTeams"]:
            statuses.append(s.get(f"{root}/v1/teams/{team['teamId']}/escalations").status_code)
            members = f"{face.api_url}/public/teams/v1/org/{face.org_id}/teams/{team['teamId']}/members"
            statuses.append(s.post(members, json={}).status_code)
        for schedule in s.get(f"{root}/v1/schedules", params={"size": 50, "expand": "rotation"}).json()["values"]:
            statuses.append(s.get(f"{root}/v1/schedules/{schedule['id']}").status_code)
            statuses.append(s.get(f"{root}/v1/schedules/{schedule['id']}/on-calls").status_code)
        issues = s.post(
            f"{face.site_url}/rest/api/3/search/jql",
            json={"jql": "project = OPS", "fields": ["*all"], "maxResults": 100},
        ).json()["issues"]
        assert len(issues) == len(account.incidents)
        linked = f"{face.api_url}/jsm/incidents/cloudId/{face.cloud_id}/v1/incident"
        statuses += [s.get(f"{linked}/{issue['id']}/alert").status_code for issue in issues]
        statuses.append(s.get(f"{face.api_url}/jsm/api/{face.cloud_id}/v1/services/", params={"size": 50}).status_code)
        everyone = [face.jsm_id("user", u["id"]) for u in account.users]
        users = s.get(f"{face.site_url}/rest/api/3/user/bulk", params={"accountId": everyone, "maxResults": 100})
        assert len(users.json()["values"]) == len(account.users)
        statuses.append(s.get(f"{face.site_url}/rest/api/3/myself").status_code)
    finally:
        face.stop()
    assert statuses and set(statuses) == {200}
    assert all(entry.status < 500 for entry in face.requests())


def test_a_started_face_used_as_a_context_manager_is_not_started_twice() -> None:
    account = seed_account()
    face = start_jsm_face(account)
    urls = (face.api_url, face.site_url)
    with face as entered:
        assert entered is face and (face.api_url, face.site_url) == urls
        assert requests.get(f"{face.site_url}/_edge/tenant_info").status_code == 200
    with pytest.raises(RuntimeError):
        face.api_url  # noqa: B018 - stopped for good: no second server was left behind
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{urls[1]}/_edge/tenant_info", timeout=5)

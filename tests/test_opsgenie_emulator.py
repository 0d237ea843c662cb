"""The Opsgenie emulator over real HTTP: auth, envelope, paging, ceiling, search, limits, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from opsgenie_export.sandbox.accounts import (
    Account,
    generate_account,
    iso_to_ms,
    ms_to_iso,
    seed_account,
)
from opsgenie_export.sandbox.opsgenie_emulator import OpsgenieEmulator, QueryError, domain_of, parse_query
from opsgenie_export.sandbox.server import FaultPlan, FaultRule

KEY = "test-genie-key"
AUTH = {"Authorization": f"GenieKey {KEY}"}


class FakeClock:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def _session() -> requests.Session:
    session = requests.Session()
    session.headers.update(AUTH)
    return session


@pytest.fixture(scope="module")
def account() -> Account:
    return generate_account(alerts=300, incidents=60, services=25, teams=10, seed=5)


@pytest.fixture(scope="module")
def og(account: Account) -> Iterator[OpsgenieEmulator]:
    with OpsgenieEmulator(account, api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = _session()
    yield session
    session.close()


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[OpsgenieEmulator, Account]]:
    big_account = generate_account(alerts=20_100, incidents=20, services=5, teams=3, seed=2)
    with OpsgenieEmulator(big_account, api_key=KEY) as emulator:
        yield emulator, big_account


def _follow(http: requests.Session, url: str, params: dict | None = None) -> list[dict]:
    """Every page of a list, following `paging.next` verbatim."""
    items: list[dict] = []
    response = http.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["data"])
        next_url = body["paging"].get("next")
        assert response.headers.get("X-Paging-Next") == next_url
        if not next_url:
            return items
        response = http.get(next_url)


# -- auth and envelope -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "GenieKey wrong"}, {"Authorization": f"Bearer {KEY}"}, {"Authorization": KEY}],
)
def test_unauthenticated_requests_get_401(og, headers):
    response = requests.get(f"{og.url}/v2/alerts", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["message"] == "Could not authenticate"
    assert body["requestId"] == response.headers["X-Request-ID"] and "took" in body
    assert response.headers["X-RateLimit-State"] == "OK"
    assert "X-Response-Time" in response.headers


def test_api_key_in_query_string_is_not_accepted(og):
    assert requests.get(f"{og.url}/v2/teams", params={"apiKey": KEY}).status_code == 401


def test_envelope_and_absolute_paging_followed_to_the_end(og, http, account):
    response = http.get(f"{og.url}/v2/alerts", params={"query": "status:open", "limit": 7})
    body = response.json()
    assert set(body) == {"data", "paging", "took", "requestId"}
    assert body["requestId"] == response.headers["X-Request-ID"]
    paging = body["paging"]
    assert "prev" not in paging and paging["first"].startswith(og.url + "/v2/alerts?")
    assert parse_qs(urlsplit(paging["next"]).query) == {"query": ["status:open"], "offset": ["7"], "limit": ["7"]}
    assert response.headers["X-Paging-First"] == paging["first"]
    items = _follow(http, f"{og.url}/v2/alerts", {"query": "status:open", "limit": 7, "sort": "tinyId"})
    expected = [a for a in account.alerts if a["status"] == "open"]
    assert len(items) == len(expected) == len({a["id"] for a in items})
    assert [int(a["tinyId"]) for a in items] == sorted((int(a["tinyId"]) for a in expected), reverse=True)


def test_paging_links_carry_sort_and_order_and_prev(og, http):
    params = {"offset": 10, "limit": 10, "sort": "createdAt", "order": "asc"}
    paging = http.get(f"{og.url}/v2/alerts", params=params).json()["paging"]
    assert parse_qs(urlsplit(paging["next"]).query) == {
        "offset": ["20"],
        "limit": ["10"],
        "sort": ["createdAt"],
        "order": ["asc"],
    }
    assert parse_qs(urlsplit(paging["prev"]).query)["offset"] == ["0"]
    assert parse_qs(urlsplit(paging["last"]).query)["offset"] == ["290"]


def test_list_items_are_base_alerts_and_get_is_full(og, http, account):
    listed = http.get(f"{og.url}/v2/alerts", params={"limit": 100}).json()["data"]
    assert all(not {"description", "details", "entity", "actions"} & set(a) for a in listed)
    assert {"teams", "ownerTeamId", "seen", "integration", "report"} <= set(listed[0])
    target = account.alerts[17]
    for identifier, kind in ((target["id"], "id"), (target["alias"], "alias"), (target["tinyId"], "tiny")):
        response = http.get(f"{og.url}/v2/alerts/{requests.utils.quote(identifier)}", params={"identifierType": kind})
        assert response.status_code == 200 and response.json()["data"] == target
    assert http.get(f"{og.url}/v2/alerts/nope").status_code == 404
    assert http.get(f"{og.url}/v2/alerts/{target['id']}", params={"identifierType": "name"}).status_code == 422


def test_default_order_is_newest_first_with_id_tie_break(og, http, account):
    data = http.get(f"{og.url}/v2/alerts", params={"limit": 100}).json()["data"]
    keys = [(iso_to_ms(a["createdAt"]), a["id"]) for a in data]
    assert keys == sorted(keys, reverse=True)
    newest = sorted(((iso_to_ms(a["createdAt"]), a["id"]) for a in account.alerts), reverse=True)[:100]
    assert keys == newest


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"limit": 101},
        {"limit": 0},
        {"limit": "ten"},
        {"offset": -1},
        {"sort": "created_at"},
        {"order": "ascending"},
    ],
)
def test_bad_paging_parameters_are_422(og, http, params):
    response = http.get(f"{og.url}/v2/alerts", params=params)
    assert response.status_code == 422
    assert set(response.json()) >= {"message", "took", "requestId"}


def test_offset_ceiling(big, http):
    emulator, big_account = big
    url = f"{emulator.url}/v2/alerts"
    ok = http.get(url, params={"offset": 19_900, "limit": 100, "sort": "createdAt", "order": "asc"})
    assert ok.status_code == 200 and len(ok.json()["data"]) == 100
    assert ok.json()["data"][-1]["id"] == big_account.alerts[19_999]["id"]
    assert ok.json()["paging"]["next"]  # more items exist: the link leads past the ceiling
    assert parse_qs(urlsplit(ok.json()["paging"]["last"]).query)["offset"] == ["19900"]
    refused = http.get(url, params={"offset": 19_901, "limit": 100})
    assert refused.status_code == 422
    assert refused.json()["message"] == "Offset + limit must be lower than or equal to 20000"
    assert http.get(ok.json()["paging"]["next"]).status_code == 422
    assert http.get(url, params={"offset": 20_000, "limit": 1}).status_code == 422
    assert (
        http.get(f"{emulator.url}/v1/incidents", params={"query": "status:open", "offset": 19_950}).status_code == 200
    )
    assert (
        http.get(f"{emulator.url}/v1/incidents", params={"query": "status:open", "offset": 19_990}).status_code == 422
    )
    assert http.get(f"{emulator.url}/v1/services", params={"offset": 19_901, "limit": 100}).status_code == 422


def test_created_at_window_slicing_reaches_everything(big, http):
    emulator, big_account = big
    url = f"{emulator.url}/v2/alerts"
    middle = iso_to_ms(big_account.alerts[10_050]["createdAt"])
    seen: list[str] = []
    for window in (f"createdAt<{middle}", f"createdAt>={middle}"):
        count = http.get(f"{url}/count", params={"query": window}).json()["data"]["count"]
        assert count < 20_000
        items = _follow(http, url, {"query": window, "limit": 100, "sort": "createdAt", "order": "asc"})
        assert len(items) == count
        seen.extend(a["id"] for a in items)
    assert seen == [a["id"] for a in big_account.alerts]


# -- search ------------------------------------------------------------------------------------
def test_created_at_range_with_epoch_ms_and_iso(og, http, account):
    low, high = account.alerts[50]["createdAt"], account.alerts[120]["createdAt"]
    expected = [a["id"] for a in account.alerts if iso_to_ms(low) <= iso_to_ms(a["createdAt"]) < iso_to_ms(high)]
    for query in (
        f"createdAt>={iso_to_ms(low)} AND createdAt<{iso_to_ms(high)}",
        f"createdAt >= {low} and createdAt < {high}",
        f'createdAt>="{low}" AND createdAt<"{high}"',
    ):
        params = {"query": query, "limit": 100, "sort": "createdAt", "order": "asc"}
        assert [a["id"] for a in _follow(http, f"{og.url}/v2/alerts", params)] == expected
        count = http.get(f"{og.url}/v2/alerts/count", params={"query": query}).json()["data"]["count"]
        assert count == len(expected)


def test_general_queries_filter(og, http, account):
    team = account.teams[0]
    cases = {
        "status:open AND priority:P1": lambda a: a["status"] == "open" and a["priority"] == "P1",
        "acknowledged:false OR priority<=P2": lambda a: not a["acknowledged"] or a["priority"] in ("P1", "P2"),
        "NOT status:closed": lambda a: a["status"] != "closed",
        "status!=closed AND tag:db": lambda a: a["status"] != "closed" and "db" in a["tags"],
        f'teams:"{team["name"]}"': lambda a: team["id"] in {t["id"] for t in a["teams"]},
        "message:REPLICA": lambda a: "replica" in a["message"].lower(),
        "count>1 AND isSeen:TRUE": lambda a: a["count"] > 1 and a["isSeen"],
        "integration.type:Datadog": lambda a: a["integration"]["type"] == "Datadog",
    }
    for query, wanted in cases.items():
        got = _follow(http, f"{og.url}/v2/alerts", {"query": query, "limit": 100})
        assert {a["id"] for a in got} == {a["id"] for a in account.alerts if wanted(a)}, query


@pytest.mark.parametrize(
    "query",
    [
        "created_at>=1",
        "is_seen:true",
        "status:open AND createdat>1",
        "foo:bar",
        "status:",
        "(status:open",
        "status open",
    ],
)
def test_invalid_queries_are_422(og, http, query):
    response = http.get(f"{og.url}/v2/alerts", params={"query": query})
    assert response.status_code == 422
    assert response.json()["message"].startswith("Invalid query")


def test_unknown_field_message_names_the_field(og, http):
    response = http.get(f"{og.url}/v2/alerts/count", params={"query": "created_at>=1700000000000"})
    assert response.status_code == 422
    assert response.json()["message"] == "Invalid query: unknown field 'created_at'"
    response = http.get(f"{og.url}/v1/incidents", params={"query": "is_seen:true"})
    assert response.json()["message"] == "Invalid query: unknown field 'is_seen'"


def test_parse_query_precedence_and_values():
    item = {"status": "open", "priority": "P1", "tags": ["db"], "createdAt": "2024-01-01T00:00:00Z"}
    assert parse_query("status:closed AND priority:P1 OR tag:DB")(item)  # AND binds tighter
    assert not parse_query("status:closed AND (priority:P1 OR tag:db)")(item)
    assert parse_query("not status:closed and createdAt=2024-01-01T00:00:00Z")(item)
    assert parse_query(f"createdAt:{iso_to_ms('2024-01-01T00:00:00Z')}")(item)
    assert parse_query("").bounds == (None, None) and parse_query("")(item)
    query = parse_query("createdAt>=10 AND createdAt<=20 AND status:open")
    assert query.bounds == (10, 21) and not query.pure_range
    assert parse_query("createdAt>10 AND createdAt<20").pure_range
    assert not parse_query("createdAt>10 OR status:open").pure_range
    with pytest.raises(QueryError):
        parse_query("createdAt>yesterday")
    with pytest.raises(QueryError):
        parse_query("status>open")
    with pytest.raises(QueryError):
        parse_query("description:x", "incident")


# -- incidents ---------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"query": ""}, {"query": "   "}, {"limit": 10}])
def test_incident_list_requires_a_query(og, http, params):
    response = http.get(f"{og.url}/v1/incidents", params=params)
    assert response.status_code == 422
    assert response.json()["message"] == "query is required"


def test_incident_list_and_get(og, http, account):
    for path in ("/v1/incidents", "/v1/incidents/"):
        items = _follow(http, f"{og.url}{path}", {"query": "status:open", "limit": 5, "order": "asc"})
        assert [i["id"] for i in items] == [i["id"] for i in account.incidents if i["status"] == "open"]
    incident = account.incidents[3]
    assert http.get(f"{og.url}/v1/incidents/{incident['id']}").json()["data"] == incident
    by_tiny = http.get(f"{og.url}/v1/incidents/{incident['tinyId']}", params={"identifierType": "tiny"})
    assert by_tiny.json()["data"]["id"] == incident["id"]
    assert http.get(f"{og.url}/v1/incidents/unknown").status_code == 404
    assert http.get(f"{og.url}/v1/incidents", params={"query": "status:open", "sort": "updatedAt"}).status_code == 422


def test_incident_api_missing_from_the_plan_is_402(account, http):
    with OpsgenieEmulator(account, api_key=KEY, incident_api=False) as emulator:
        incident_id = account.incidents[0]["id"]
        for path in ("/v1/incidents?query=status:open", f"/v1/incidents/{incident_id}",
                     f"/v1/incidents/{incident_id}/associated-alert-ids"):  # fmt: skip
            response = http.get(emulator.url + path)
            assert response.status_code == 402
            assert response.json()["message"] == "Your plan does not include the Incident API"
        assert http.get(f"{emulator.url}/v2/alerts").status_code == 200


def test_associated_alert_ids_paging(http):
    account = seed_account()
    incident_id = "4a0c5e6d-b239-4cd9-a7e8-a5f880e99473"
    for n in range(40):
        created = ms_to_iso(iso_to_ms("2023-09-20T13:33:00.941Z") + n)
        alert = {**account.alerts[0], "id": f"extra-{n:02d}-alert", "tinyId": str(100 + n), "alias": f"a{n}"}
        account.add_alert({**alert, "createdAt": created})
        account.associate(incident_id, alert["id"])
    with OpsgenieEmulator(account, api_key=KEY) as emulator:
        url = f"{emulator.url}/v1/incidents/{incident_id}/associated-alert-ids"
        first = http.get(url).json()
        assert len(first["data"]) == 20 and first["paging"]["next"]
        assert http.get(url, params={"limit": 26}).status_code == 422
        ids = _follow(http, url, {"limit": 25})
        assert ids == account.associated_alerts[incident_id] and len(ids) == 41
        assert http.get(f"{emulator.url}/v1/incidents/nope/associated-alert-ids").status_code == 404


# -- configuration -----------------------------------------------------------------------------
def test_services_list_query_and_get(og, http, account):
    items = _follow(http, f"{og.url}/v1/services", {"limit": 10})
    assert [s["id"] for s in items] == [s["id"] for s in account.services]
    assert len(http.get(f"{og.url}/v1/services").json()["data"]) == 20
    assert http.get(f"{og.url}/v1/services", params={"limit": 101}).status_code == 422
    named = http.get(f"{og.url}/v1/services", params={"query": 'name:"Auth & Identity"'}).json()["data"]
    assert [s["name"] for s in named] == ["Auth & Identity", "Auth & Identity 2"]  # substring match
    assert http.get(f"{og.url}/v1/services", params={"query": "teamId:x"}).status_code == 422
    service = account.services[4]
    assert http.get(f"{og.url}/v1/services/{service['id']}").json()["data"] == service
    assert http.get(f"{og.url}/v1/services/nope").status_code == 404


def test_teams_list_without_members_get_with_members(og, http, account):
    body = http.get(f"{og.url}/v2/teams").json()
    assert "paging" not in body and len(body["data"]) == len(account.teams)
    assert all("members" not in t and set(t) == {"id", "name", "description", "links"} for t in body["data"])
    team = account.teams[2]
    got = http.get(f"{og.url}/v2/teams/{team['id']}").json()["data"]
    assert got["members"] == team["members"] and got["members"]
    by_name = http.get(f"{og.url}/v2/teams/{requests.utils.quote(team['name'])}", params={"identifierType": "name"})
    assert by_name.json()["data"]["id"] == team["id"]
    assert http.get(f"{og.url}/v2/teams/nope").status_code == 404


def test_schedules_expand_rotation(og, http, account):
    plain = http.get(f"{og.url}/v2/schedules").json()["data"]
    assert len(plain) == len(account.schedules) and all("rotations" not in s for s in plain)
    assert any("ownerTeam" not in s for s in plain)
    expanded = http.get(f"{og.url}/v2/schedules", params={"expand": "rotation"}).json()["data"]
    assert expanded == account.schedules
    assert http.get(f"{og.url}/v2/schedules", params={"expand": "rotations"}).status_code == 422
    schedule = account.schedules[1]
    by_name = http.get(f"{og.url}/v2/schedules/{requests.utils.quote(schedule['name'])}?identifierType=name")
    assert by_name.json()["data"] == schedule


def test_on_calls_flat_nested_and_all_at_once(og, http, account):
    before = og.domain_counts.copy()
    everything = http.get(f"{og.url}/v2/schedules/on-calls", params={"flat": "true"}).json()["data"]
    assert [o["_parent"]["id"] for o in everything] == [s["id"] for s in account.schedules]
    assert {o["_parent"]["id"]: o["onCallRecipients"] for o in everything} == account.oncalls
    nested = http.get(f"{og.url}/v2/schedules/on-calls").json()["data"]
    schedule = next(s for s in account.schedules if account.oncalls[s["id"]])
    entry = next(o for o in nested if o["_parent"]["id"] == schedule["id"])
    user = account.find_user(account.oncalls[schedule["id"]][0])
    assert entry["onCallParticipants"][0] == {"id": user["id"], "name": user["username"], "type": "user"}
    assert entry["_parent"] == {"id": schedule["id"], "name": schedule["name"], "enabled": schedule["enabled"]}
    one = http.get(
        f"{og.url}/v2/schedules/{requests.utils.quote(schedule['name'])}/on-calls",
        params={"scheduleIdentifierType": "name", "flat": "true", "date": "2024-03-01T00:00:00Z"},
    ).json()["data"]
    assert one["onCallRecipients"] == account.oncalls[schedule["id"]]
    assert http.get(f"{og.url}/v2/schedules/on-calls", params={"flat": "yes"}).status_code == 422
    assert http.get(f"{og.url}/v2/schedules/on-calls", params={"date": "tomorrow"}).status_code == 422
    counted = og.domain_counts - before
    assert counted["schedule-oncalls"] == 5 and counted["configuration"] == 0


def test_users_total_count_and_paging(og, http, account):
    before = og.domain_counts.copy()
    body = http.get(f"{og.url}/v2/users", params={"limit": 7}).json()
    assert body["totalCount"] == len(account.users) and len(body["data"]) == 7
    users = _follow(http, f"{og.url}/v2/users", {"limit": 7, "sortField": "fullName", "order": "desc"})
    assert len(users) == len(account.users)
    assert [u["fullName"] for u in users] == sorted((u["fullName"] for u in account.users), reverse=True)
    default = http.get(f"{og.url}/v2/users").json()["data"]
    assert [u["username"] for u in default] == sorted(u["username"] for u in account.users)
    assert http.get(f"{og.url}/v2/users", params={"sort": "username"}).status_code == 200  # unknown, ignored
    assert http.get(f"{og.url}/v2/users", params={"sortField": "email"}).status_code == 422
    user = account.users[3]
    assert http.get(f"{og.url}/v2/users/{user['username']}").json()["data"] == user
    counted = og.domain_counts - before
    assert counted["search"] == 9 and counted["configuration"] == 1


def test_escalations(og, http, account):
    assert http.get(f"{og.url}/v2/escalations").json()["data"] == account.escalations
    escalation = account.escalations[0]
    assert http.get(f"{og.url}/v2/escalations/{escalation['id']}").json()["data"] == escalation


def test_on_calls_path_is_not_a_schedule_id():
    assert domain_of("/v2/schedules/on-calls") == "schedule-oncalls"
    assert domain_of("/v2/schedules/abc/on-calls") == "schedule-oncalls"
    assert domain_of("/v2/schedules/abc") == "configuration"
    assert domain_of("/v2/alerts") == domain_of("/v2/alerts/count") == domain_of("/v2/users") == "search"
    assert domain_of("/v2/alerts/abc") == "alert" and domain_of("/v1/incidents/") == "incident"


# -- rate limits, hooks, faults ----------------------------------------------------------------
def test_rate_limits_per_second_and_per_minute(account, http):
    clock = FakeClock()
    limits = {"search": (2, 5), "configuration": (10, 100)}
    with OpsgenieEmulator(account, api_key=KEY, rate_limits=limits, now=clock) as emulator:
        url = f"{emulator.url}/v2/alerts"
        assert [http.get(url).status_code for _ in range(3)] == [200, 200, 429]
        throttled = http.get(url)
        assert throttled.status_code == 429 and throttled.json()["message"] == "TooManyRequests"
        assert throttled.headers["X-RateLimit-State"] == "THROTTLED"
        assert throttled.headers["X-RateLimit-Reason"] == "ACCOUNT"
        assert throttled.headers["X-RateLimit-Period-In-Sec"] == "1"
        assert "Retry-After" not in throttled.headers
        assert http.get(f"{emulator.url}/v2/teams").status_code == 200  # another domain's bucket
        clock.value += 1.5
        assert [http.get(url).status_code for _ in range(2)] == [200, 200]
        clock.value += 1.5
        assert http.get(url).status_code == 200
        minute = http.get(url)
        assert minute.status_code == 429 and minute.headers["X-RateLimit-Period-In-Sec"] == "60"
        assert requests.get(url).status_code == 401  # auth is checked first and not counted
        clock.value += 61
        assert http.get(url).status_code == 200
        assert emulator.throttled == {"search": 3}
        assert emulator.domain_counts["search"] == 9 and emulator.domain_counts["configuration"] == 1
        limits_body = http.get(f"{emulator.url}/v2/request-limits/").json()["data"]["rateLimits"]
        assert {"domain": "search", "limits": [{"limit": 2, "periodInSeconds": 1},
                                                {"limit": 5, "periodInSeconds": 60}]} in limits_body  # fmt: skip


def test_on_request_hook_adds_alerts_during_a_run(http):
    account = seed_account()
    with OpsgenieEmulator(account, api_key=KEY) as emulator:
        url = f"{emulator.url}/v2/alerts"
        assert http.get(f"{url}/count").json()["data"]["count"] == 1
        created: list[str] = []

        def add_alert(request):
            if request.path == "/v2/alerts":
                n = len(created)
                alert = {**account.alerts[0], "id": f"new-{n}", "tinyId": str(50 + n), "alias": f"new-{n}",
                         "createdAt": ms_to_iso(1_800_000_000_000 + n)}  # fmt: skip
                created.append(account.add_alert(alert)["id"])

        emulator.on_request = add_alert
        first = http.get(url, params={"query": "status:open", "sort": "createdAt", "order": "asc"}).json()["data"]
        second = http.get(url, params={"query": "status:open", "sort": "createdAt", "order": "asc"}).json()["data"]
        assert [a["id"] for a in first][-1] == "new-0"
        assert [a["id"] for a in second][-2:] == ["new-0", "new-1"]  # the cache saw the change


def test_fault_plan_statuses_and_drops_are_visible(account, http):
    faults = FaultPlan()
    faults.add(FaultRule(path=r"^/v2/alerts$", status=500, times=1))
    faults.add(FaultRule(path=r"^/v2/teams$", drop_rate=1.0))
    with OpsgenieEmulator(account, api_key=KEY, faults=faults) as emulator:
        failed = http.get(f"{emulator.url}/v2/alerts")
        assert failed.status_code == 500 and failed.json()["requestId"] == failed.headers["X-Request-ID"]
        assert http.get(f"{emulator.url}/v2/alerts").status_code == 200
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{emulator.url}/v2/teams", headers=AUTH)
        assert emulator.count("GET", r"^/v2/teams$") == 1
        assert [e.status for e in emulator.requests(path=r"^/v2/alerts$")] == [500, 200]


def test_unknown_routes_and_methods(og, http):
    assert http.get(f"{og.url}/v2/nothing").status_code == 404
    response = http.post(f"{og.url}/v2/alerts", json={})
    assert response.status_code == 405 and "requestId" in response.json()


# -- seed payloads through the API -------------------------------------------------------------
def test_seed_account_served_as_in_the_payloads(http):
    with OpsgenieEmulator(seed_account(), api_key=KEY) as emulator:
        alert = http.get(f"{emulator.url}/v2/alerts").json()["data"][0]
        assert alert["id"] == "580e9625-ecc7-42b0-8836-3d3637438bc4-169486700232"
        assert alert["createdAt"] == "2023-04-21T08:36:18.46Z" and alert["report"] == {"ackTime": 4852912663}
        incidents = http.get(f"{emulator.url}/v1/incidents", params={"query": "status:open"}).json()["data"]
        assert [i["tinyId"] for i in incidents] == ["3", "2"]
        assert incidents[1]["updatedAt"] == "2023-09-26T17:48:54.48Z" and "impactEndDate" not in incidents[1]
        ids = http.get(f"{emulator.url}/v1/incidents/{incidents[1]['id']}/associated-alert-ids").json()["data"]
        assert ids == [alert["id"]]
        flat = http.get(f"{emulator.url}/v2/schedules/on-calls?flat=true").json()["data"]
        assert flat == [
            {
                "_parent": {"id": "d55e148e-d320-4766-9dcf-4fc2ce9daef1", "name": "Data Science Team_schedule",
                            "enabled": True},
                "onCallRecipients": ["testuser@gmail.com"],
            }
        ]  # fmt: skip


# -- performance -------------------------------------------------------------------------------
def test_a_100k_alert_account_pages_fast():
    account = generate_account(alerts=100_000, incidents=100, services=10, teams=5, seed=9)
    with OpsgenieEmulator(account, api_key=KEY) as emulator:
        start = iso_to_ms(account.alerts[40_000]["createdAt"])
        window = (emulator._page, parse_query(f"createdAt>={start}"), "createdAt", "asc")
        page, query, sort, order = window
        timings = []
        for offset in range(0, 10_000, 100):
            began = time.perf_counter()
            items, total = page("alert", query, sort, order, (offset, 100))
            timings.append(time.perf_counter() - began)
            assert items[0] is account.alerts[40_000 + offset]
        assert total == 60_000
        assert sorted(timings)[len(timings) // 2] < 0.005
        session = _session()
        began = time.perf_counter()
        for offset in range(0, 2_000, 100):
            params = {
                "query": f"createdAt>={start}",
                "offset": offset,
                "limit": 100,
                "sort": "createdAt",
                "order": "asc",
            }
            assert len(session.get(f"{emulator.url}/v2/alerts", params=params).json()["data"]) == 100
        assert (time.perf_counter() - began) / 20 < 0.05

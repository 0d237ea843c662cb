"""The Port emulator over real HTTP: tokens, blueprints, bulk upserts, search, deletes, limits, faults."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from opsgenie_export.sandbox.port_emulator import (
    PortEmulator,
    is_blueprint_identifier,
    is_date_time,
    is_entity_identifier,
    is_url,
)
from opsgenie_export.sandbox.server import FaultPlan, FaultRule

REPO = Path(__file__).resolve().parent.parent
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
CREDENTIALS = {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
AGENT = "opsgenie-export/test (owner=unit)"
ORDER = ["opsGenieService", "opsGenieIncident", "opsGenieAlert"]
UPSERT = {"upsert": "true", "merge": "false", "create_missing_related_entities": "false"}


class FakeClock:
    def __init__(self, value: float = 1_700_000_000.0) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


def _blueprint(name: str) -> dict[str, Any]:
    return json.loads((REPO / "blueprints" / f"{name}.json").read_text())


def _token(port: PortEmulator) -> requests.Response:
    return requests.post(f"{port.url}/v1/auth/access_token", json=CREDENTIALS)


def _session(port: PortEmulator) -> requests.Session:
    token = _token(port).json()["accessToken"]
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": AGENT})
    return session


def _seed_blueprints(port: PortEmulator) -> None:
    for name in ORDER:
        port.add_blueprint(_blueprint(name))


def _alert(identifier: str, **properties: Any) -> dict[str, Any]:
    return {"identifier": identifier, "title": f"Alert {identifier}", "properties": properties}


@pytest.fixture
def port() -> Iterator[PortEmulator]:
    with PortEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emulator:
        yield emulator


@pytest.fixture
def seeded(port: PortEmulator) -> PortEmulator:
    _seed_blueprints(port)
    return port


@pytest.fixture
def http(port: PortEmulator) -> Iterator[requests.Session]:
    session = _session(port)
    yield session
    session.close()


def _bulk(http: requests.Session, port: PortEmulator, blueprint: str, entities: list[Any], **params: str):
    url = f"{port.url}/v1/blueprints/{blueprint}/entities/bulk"
    return http.post(url, params={**UPSERT, **params}, json={"entities": entities})


# -- identifiers and formats -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0f5c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b-1700000000000", True),
        ("a@b_c.d+e:f\\g/h=i-j", True),
        ("Zürich-日本", True),
        ("...", True),
        (".", False),
        ("..", False),
        ("", False),
        ("has space", False),
        ("semi;colon", False),
        ("x" * 1000, True),
        ("x" * 1001, False),
        ("٣", False),  # a non-ASCII digit is not \p{L} nor 0-9
        (42, False),
    ],
)
def test_entity_identifier_pattern(value: Any, ok: bool) -> None:
    assert is_entity_identifier(value) is ok


def test_blueprint_identifier_excludes_equals_and_is_short() -> None:
    assert is_blueprint_identifier("opsGenieAlert")
    assert not is_blueprint_identifier("a=b")
    assert not is_blueprint_identifier("x" * 101)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-02-29T10:11:12.123Z", True),
        ("2024-02-29T10:11:12+02:00", True),
        ("2023-02-29T10:11:12Z", False),
        ("2024-01-01", False),
        ("2024-01-01T10:11:12", False),
        ("yesterday", False),
    ],
)
def test_date_time_format(value: str, ok: bool) -> None:
    assert is_date_time(value) is ok


def test_url_format() -> None:
    assert is_url("https://acme.app.opsgenie.com/incident/detail/1")
    assert not is_url("ftp://acme/x")
    assert not is_url("acme.app.opsgenie.com")
    assert not is_url("https://acme .com")


# -- auth --------------------------------------------------------------------------------------
def test_token_is_reused_until_it_expires() -> None:
    clock = FakeClock()
    with PortEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_ttl=100, now=clock) as port:
        first = _token(port).json()
        assert first["ok"] is True and first["tokenType"] == "Bearer" and first["expiresIn"] == 100
        assert len(first["accessToken"]) > 40
        clock.value += 30
        again = _token(port).json()
        assert again["accessToken"] == first["accessToken"] and again["expiresIn"] == 70
        headers = {"Authorization": f"Bearer {first['accessToken']}"}
        assert requests.get(f"{port.url}/v1/blueprints", headers=headers).status_code == 200
        clock.value += 71
        expired = requests.get(f"{port.url}/v1/blueprints", headers=headers)
        assert expired.status_code == 401 and expired.json() == {"ok": False, "error": "unauthorized"}
        fresh = _token(port).json()
        assert fresh["accessToken"] != first["accessToken"] and fresh["expiresIn"] == 100


def test_expire_tokens_invalidates_every_token(port: PortEmulator, http: requests.Session) -> None:
    old = http.headers["Authorization"]
    assert http.get(f"{port.url}/v1/blueprints").status_code == 200
    port.expire_tokens()
    assert http.get(f"{port.url}/v1/blueprints").status_code == 401
    http.headers["Authorization"] = f"Bearer {_token(port).json()['accessToken']}"
    assert http.headers["Authorization"] != old
    assert http.get(f"{port.url}/v1/blueprints").status_code == 200


def test_bad_credentials_and_missing_auth(port: PortEmulator) -> None:
    token_url = f"{port.url}/v1/auth/access_token"
    wrong = requests.post(token_url, json={"clientId": CLIENT_ID, "clientSecret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    missing = requests.post(token_url, json={"clientId": CLIENT_ID})
    assert missing.status_code == 422 and missing.json()["ok"] is False
    assert requests.get(f"{port.url}/v1/blueprints").status_code == 401
    bogus = requests.get(f"{port.url}/v1/blueprints", headers={"Authorization": "Bearer made-up"})
    assert bogus.status_code == 401
    assert bogus.headers["X-Trace-Id"] and wrong.headers["X-Trace-Id"] != bogus.headers["X-Trace-Id"]


def test_malformed_json_and_content_type(port: PortEmulator, http: requests.Session) -> None:
    url = f"{port.url}/v1/blueprints"
    broken = http.post(url, data=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_request"
    plain = http.post(url, data=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415


# -- blueprints --------------------------------------------------------------------------------
def test_blueprint_create_in_dependency_order(port: PortEmulator, http: requests.Session) -> None:
    url = f"{port.url}/v1/blueprints"
    alert_first = http.post(url, json=_blueprint("opsGenieAlert"))
    assert alert_first.status_code == 422 and "opsGenieIncident" in alert_first.json()["message"]
    for name in ORDER:
        created = http.post(url, json=_blueprint(name))
        assert created.status_code == 201, created.text
        body = created.json()["blueprint"]
        assert body["identifier"] == name and body["createdAt"] and body["createdBy"] == AGENT
    again = http.post(url, json=_blueprint("opsGenieService"))
    assert again.status_code == 409 and again.json()["error"] == "identifier_taken"
    assert http.get(f"{url}/opsGenieAlert").json()["blueprint"]["relations"]["relatedIncident"]["many"] is False
    assert [b["identifier"] for b in http.get(url).json()["blueprints"]] == ORDER
    missing = http.get(f"{url}/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "change",
    [
        {"identifier": "has=equals"},
        {"identifier": "x" * 101},
        {"title": ""},
        {"title": None},
        {"description": "d" * 201},
        {"schema": {}},
        {"schema": {"properties": {"bad name": {"type": "string"}}}},
        {"schema": {"properties": {"p": {"type": "integer"}}}},
        {"relations": {"r": {"title": "R", "target": "ghost", "many": False, "required": False}}},
        {"unexpected": True},
    ],
)
def test_blueprint_validation(port: PortEmulator, http: requests.Session, change: dict[str, Any]) -> None:
    body = {**_blueprint("opsGenieService"), **change}
    response = http.post(f"{port.url}/v1/blueprints", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["ok"] is False and response.json()["message"]


def test_blueprint_patch_put_delete(seeded: PortEmulator, http: requests.Session) -> None:
    url = f"{seeded.url}/v1/blueprints"
    patched = http.patch(f"{url}/opsGenieService", json={"title": "Services"})
    assert patched.status_code == 200
    assert patched.json()["blueprint"]["title"] == "Services"
    assert "oncallTeam" in patched.json()["blueprint"]["schema"]["properties"]
    assert http.patch(f"{url}/opsGenieService", json={"title": ""}).status_code == 422
    assert http.patch(f"{url}/opsGenieService", json={"identifier": "other"}).status_code == 422
    put = http.put(f"{url}/opsGenieService", json={"title": "S", "schema": {"properties": {}}})
    assert put.status_code == 200 and put.json()["blueprint"]["schema"]["properties"] == {}
    targeted = http.delete(f"{url}/opsGenieIncident")
    assert targeted.status_code == 422
    seeded.put_entity("opsGenieAlert", {"identifier": "a1"})
    assert http.delete(f"{url}/opsGenieAlert").status_code == 422
    seeded.entities["opsGenieAlert"].clear()
    assert http.delete(f"{url}/opsGenieAlert").status_code == 200
    assert "opsGenieAlert" not in seeded.blueprints


# -- upserts -----------------------------------------------------------------------------------
def test_bulk_upsert_creates_then_updates(seeded: PortEmulator, http: requests.Session) -> None:
    entities = [_alert(f"a{i}", status="open", count=i, tags=["x"]) for i in range(20)]
    first = _bulk(http, seeded, "opsGenieAlert", entities)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["ok"] is True and body["errors"] == []
    assert body["entities"][3] == {"created": True, "identifier": "a3", "index": 3, "additionalData": {}}
    second = _bulk(http, seeded, "opsGenieAlert", entities[:2]).json()
    assert [e["created"] for e in second["entities"]] == [False, False]
    stored = seeded.entity("opsGenieAlert", "a5")
    assert stored is not None and stored["properties"]["count"] == 5 and stored["blueprint"] == "opsGenieAlert"
    assert stored["createdBy"] == AGENT and stored["updatedBy"] == AGENT
    assert seeded.writes() == 2


def test_bulk_upsert_partial_failure_reports_per_index(seeded: PortEmulator, http: requests.Session) -> None:
    entities: list[Any] = [
        _alert("good", status="open"),
        _alert(".."),
        _alert("unknown-prop", severity="high"),
        _alert("wrong-type", count="3"),
        _alert("bad-enum", status="snoozed"),
        _alert("bad-date", createdAt="2024-13-01T00:00:00Z"),
        _alert("bad-bool", acknowledged=1),
        _alert("bad-items", tags=[1, 2]),
        "not an object",
        {"identifier": "x", "title": None},
        _alert("null-ok", status=None),
    ]
    response = _bulk(http, seeded, "opsGenieAlert", entities)
    assert response.status_code == 207
    body = response.json()
    assert [e["index"] for e in body["entities"]] == [0, 10]
    errors = {error["index"]: error for error in body["errors"]}
    assert sorted(errors) == list(range(1, 10))
    assert all(error["statusCode"] == 422 for error in errors.values())
    assert errors[1]["identifier"] == ".."
    assert "severity" in errors[2]["message"] and errors[2]["error"] == "invalid_entity"
    assert errors[8]["identifier"] == "unknown"
    assert seeded.entity("opsGenieAlert", "good") is not None
    assert seeded.entity("opsGenieAlert", "wrong-type") is None


def test_bulk_upsert_all_failed_is_207(seeded: PortEmulator, http: requests.Session) -> None:
    response = _bulk(http, seeded, "opsGenieAlert", [_alert("..")])
    assert response.status_code == 207 and response.json()["entities"] == []


def test_bulk_upsert_whole_request_errors(seeded: PortEmulator, http: requests.Session) -> None:
    too_many = _bulk(http, seeded, "opsGenieAlert", [_alert(f"a{i}") for i in range(21)])
    assert too_many.status_code == 422
    assert _bulk(http, seeded, "opsGenieAlert", []).status_code == 422
    assert _bulk(http, seeded, "ghost", [_alert("a")]).status_code == 404
    huge = [_alert(f"h{i}", description="x" * 60_000) for i in range(18)]
    too_big = _bulk(http, seeded, "opsGenieAlert", huge)
    assert too_big.status_code == 413 and too_big.json()["ok"] is False
    url = f"{seeded.url}/v1/blueprints/opsGenieAlert/entities/bulk"
    no_upsert = http.post(url, params={"merge": "false"}, json={"entities": [_alert("a")]})
    assert no_upsert.status_code == 422
    capital = http.post(url, params={"upsert": "True"}, json={"entities": [_alert("a")]})
    assert capital.status_code == 422
    assert seeded.entities["opsGenieAlert"] == {}


def test_upsert_false_conflicts(seeded: PortEmulator, http: requests.Session) -> None:
    seeded.put_entity("opsGenieAlert", {"identifier": "a1"})
    response = _bulk(http, seeded, "opsGenieAlert", [_alert("a1"), _alert("a2")], upsert="false")
    assert response.status_code == 207
    assert response.json()["errors"][0]["statusCode"] == 409


def test_merge_versus_replace(seeded: PortEmulator, http: requests.Session) -> None:
    clock_before = seeded.entity
    first = _alert("m1", status="open", priority="P1", tags=["a"])
    first["team"] = "platform"
    _bulk(http, seeded, "opsGenieAlert", [first])
    created = clock_before("opsGenieAlert", "m1")
    assert created is not None and created["team"] == ["platform"]
    time.sleep(0.002)
    merged = {"identifier": "m1", "properties": {"status": "closed"}}
    assert _bulk(http, seeded, "opsGenieAlert", [merged], merge="true").status_code == 200
    after_merge = seeded.entity("opsGenieAlert", "m1")
    assert after_merge is not None
    assert after_merge["properties"] == {"status": "closed", "priority": "P1", "tags": ["a"]}
    assert after_merge["title"] == "Alert m1" and after_merge["team"] == ["platform"]
    assert after_merge["createdAt"] == created["createdAt"] and after_merge["updatedAt"] > created["updatedAt"]
    assert _bulk(http, seeded, "opsGenieAlert", [merged], merge="false").status_code == 200
    replaced = seeded.entity("opsGenieAlert", "m1")
    assert replaced is not None
    assert replaced["properties"] == {"status": "closed"} and replaced["title"] is None and replaced["team"] == []
    assert replaced["createdAt"] == created["createdAt"]


def test_create_missing_related_entities(seeded: PortEmulator, http: requests.Session) -> None:
    alert = {**_alert("r1"), "relations": {"relatedIncident": "inc-1"}}
    refused = _bulk(http, seeded, "opsGenieAlert", [alert])
    assert refused.status_code == 207
    assert refused.json()["errors"][0]["statusCode"] == 404 and refused.json()["errors"][0]["error"] == "not_found"
    single = http.post(f"{seeded.url}/v1/blueprints/opsGenieAlert/entities", params=UPSERT, json=alert)
    assert single.status_code == 404
    wrong_shape = {**_alert("r2"), "relations": {"relatedIncident": ["inc-1"]}}
    assert _bulk(http, seeded, "opsGenieAlert", [wrong_shape]).json()["errors"][0]["statusCode"] == 422
    unknown = {**_alert("r3"), "relations": {"nope": "inc-1"}}
    assert _bulk(http, seeded, "opsGenieAlert", [unknown]).json()["errors"][0]["statusCode"] == 422
    accepted = _bulk(http, seeded, "opsGenieAlert", [alert], create_missing_related_entities="true")
    assert accepted.status_code == 200
    stub = seeded.entity("opsGenieIncident", "inc-1")
    assert stub is not None and stub["properties"] == {} and stub["title"] is None
    incident = {"identifier": "inc-2", "relations": {"services": ["svc-1", "svc-2"]}}
    assert _bulk(http, seeded, "opsGenieIncident", [incident], create_missing_related_entities="true").ok
    assert sorted(seeded.entities["opsGenieService"]) == ["svc-1", "svc-2"]


def test_single_upsert_and_get(seeded: PortEmulator, http: requests.Session) -> None:
    url = f"{seeded.url}/v1/blueprints/opsGenieIncident/entities"
    body = {"identifier": "a/b", "title": "I", "properties": {"url": "https://x.app.opsgenie.com/i/1"}}
    created = http.post(url, params=UPSERT, json=body)
    assert created.status_code == 201 and created.json()["entity"]["identifier"] == "a/b"
    fetched = http.get(f"{url}/{quote('a/b', safe='')}")
    assert fetched.status_code == 200 and fetched.json()["entity"]["title"] == "I"
    assert http.get(f"{url}/nope").status_code == 404
    bad_url = {"identifier": "x", "properties": {"url": "not a url"}}
    assert http.post(url, params=UPSERT, json=bad_url).status_code == 422
    assert http.post(f"{seeded.url}/v1/blueprints/ghost/entities", params=UPSERT, json=body).status_code == 404


# -- search ------------------------------------------------------------------------------------
def _seed_alerts(port: PortEmulator, count: int) -> None:
    for i in range(count):
        status = "open" if i % 2 else "closed"
        port.put_entity(
            "opsGenieAlert", {"identifier": f"al-{i:05d}", "title": f"t{i}", "properties": {"status": status}}
        )


def _search(http: requests.Session, port: PortEmulator, blueprint: str, body: dict[str, Any]) -> requests.Response:
    return http.post(f"{port.url}/v1/blueprints/{blueprint}/entities/search", json=body)


def test_paged_search_with_include_and_from(seeded: PortEmulator, http: requests.Session) -> None:
    _seed_alerts(seeded, 2500)
    seen: list[str] = []
    body: dict[str, Any] = {"include": ["identifier", "properties.status"], "limit": 1000}
    pages = 0
    while True:
        response = _search(http, seeded, "opsGenieAlert", body)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen.extend(entity["identifier"] for entity in page["entities"])
        assert set(page["entities"][0]) == {"identifier", "properties"}
        if "next" not in page:
            break
        body = {**body, "from": page["next"]}
    assert pages == 3 and seen == sorted(seen) and len(seen) == 2500
    default = _search(http, seeded, "opsGenieAlert", {}).json()
    assert len(default["entities"]) == 200 and "title" in default["entities"][0]
    query = {"combinator": "and", "rules": [{"property": "status", "operator": "=", "value": "open"}]}
    open_only = _search(http, seeded, "opsGenieAlert", {"query": query, "limit": 1000}).json()
    assert len(open_only["entities"]) == 1000 and all(
        e["properties"]["status"] == "open" for e in open_only["entities"]
    )
    follow = _search(http, seeded, "opsGenieAlert", {"query": query, "limit": 1000, "from": open_only["next"]}).json()
    assert len(follow["entities"]) == 250 and "next" not in follow


def test_paged_search_cursor_survives_deletes(seeded: PortEmulator, http: requests.Session) -> None:
    _seed_alerts(seeded, 10)
    first = _search(http, seeded, "opsGenieAlert", {"limit": 4}).json()
    url = f"{seeded.url}/v1/blueprints/opsGenieAlert/bulk/entities/delete"
    http.post(url, params={"delete_dependents": "false"}, json={"entities": ["al-00000", "al-00001"]})
    second = _search(http, seeded, "opsGenieAlert", {"limit": 4, "from": first["next"]}).json()
    assert [e["identifier"] for e in second["entities"]] == ["al-00004", "al-00005", "al-00006", "al-00007"]


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "10"},
        {"query": {"combinator": "and", "rules": [{"property": "status", "operator": "like", "value": "x"}]}},
        {"query": {"combinator": "xor", "rules": []}},
        {"query": {"combinator": "and", "rules": [{"property": "nope", "operator": "=", "value": "x"}]}},
        {"query": {"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": "x"}]}},
        {"include": ["bogus"]},
        {"from": "not-a-cursor"},
        {"unknown": 1},
    ],
)
def test_search_validation(seeded: PortEmulator, http: requests.Session, body: dict[str, Any]) -> None:
    assert _search(http, seeded, "opsGenieAlert", body).status_code == 422


def test_search_operators(seeded: PortEmulator, http: requests.Session) -> None:
    seeded.put_entity(
        "opsGenieAlert",
        {"identifier": "x-1", "title": "Disk full", "team": ["ops"], "properties": {"tags": ["db"], "count": 3}},
    )
    seeded.put_entity("opsGenieAlert", {"identifier": "x-2", "title": "CPU", "properties": {"count": 7}})
    seeded.put_entity("opsGenieAlert", {"identifier": "y-1", "title": "", "properties": {}})

    def ids(*rules: dict[str, Any], combinator: str = "and") -> list[str]:
        body = {"query": {"combinator": combinator, "rules": list(rules)}}
        response = _search(http, seeded, "opsGenieAlert", body)
        assert response.status_code == 200, response.text
        return [e["identifier"] for e in response.json()["entities"]]

    assert ids() == ["x-1", "x-2", "y-1"]
    assert ids({"property": "$identifier", "operator": "beginsWith", "value": "x-"}) == ["x-1", "x-2"]
    assert ids({"property": "$identifier", "operator": "in", "value": ["y-1", "zz"]}) == ["y-1"]
    assert ids({"property": "$identifier", "operator": "notIn", "value": ["y-1"]}) == ["x-1", "x-2"]
    assert ids({"property": "$title", "operator": "contains", "value": "Disk"}) == ["x-1"]
    assert ids({"property": "$title", "operator": "isEmpty"}) == ["y-1"]
    assert ids({"property": "$team", "operator": "=", "value": "ops"}) == ["x-1"]
    assert ids({"property": "tags", "operator": "isNotEmpty"}) == ["x-1"]
    assert ids({"property": "count", "operator": ">", "value": 5}) == ["x-2"]
    assert ids({"property": "$blueprint", "operator": "!=", "value": "opsGenieAlert"}) == []
    nested = {"combinator": "or", "rules": [{"property": "$identifier", "operator": "=", "value": "x-2"}]}
    assert ids({"property": "$title", "operator": "=", "value": "Disk full"}, nested, combinator="or") == ["x-1", "x-2"]


def test_cross_blueprint_search(seeded: PortEmulator, http: requests.Session) -> None:
    seeded.put_entity("opsGenieAlert", {"identifier": "a1", "title": "A", "properties": {"status": "open"}})
    seeded.put_entity("opsGenieIncident", {"identifier": "a1", "title": "I"})
    seeded.put_entity("opsGenieIncident", {"identifier": "i2", "title": "I2"})
    url = f"{seeded.url}/v1/entities/search"
    every = http.post(url, json={"combinator": "and", "rules": []}).json()["entities"]
    assert [(e["blueprint"], e["identifier"]) for e in every] == [
        ("opsGenieAlert", "a1"),
        ("opsGenieIncident", "a1"),
        ("opsGenieIncident", "i2"),
    ]
    query = {
        "combinator": "and",
        "rules": [
            {"property": "$blueprint", "operator": "=", "value": "opsGenieIncident"},
            {"property": "$identifier", "operator": "in", "value": ["a1", "zz"]},
        ],
    }
    narrowed = http.post(url, params=[("include", "identifier"), ("include", "title")], json=query)
    assert narrowed.json()["entities"] == [{"identifier": "a1", "title": "I"}]
    assert http.post(url, json={"rules": []}).status_code == 422


# -- deletes -----------------------------------------------------------------------------------
def test_bulk_delete_with_and_without_dependents(seeded: PortEmulator, http: requests.Session) -> None:
    seeded.put_entity("opsGenieService", {"identifier": "svc"})
    seeded.put_entity("opsGenieIncident", {"identifier": "inc", "relations": {"services": ["svc"]}})
    seeded.put_entity("opsGenieIncident", {"identifier": "lone"})
    seeded.put_entity("opsGenieAlert", {"identifier": "al", "relations": {"relatedIncident": "inc"}})
    url = f"{seeded.url}/v1/blueprints/opsGenieService/bulk/entities/delete"
    refused = http.post(url, params={"delete_dependents": "false"}, json={"entities": ["svc"]})
    assert refused.status_code == 422 and refused.json()["error"] == "has_dependents"
    assert seeded.entity("opsGenieService", "svc") is not None
    incidents = f"{seeded.url}/v1/blueprints/opsGenieIncident/bulk/entities/delete"
    unknown = http.post(incidents, params={"delete_dependents": "true"}, json={"entities": ["lone", "ghost"]})
    assert unknown.status_code == 404 and seeded.entity("opsGenieIncident", "lone") is not None
    assert http.post(incidents, json={"entities": ["lone"]}).status_code == 422
    too_many = http.post(incidents, params={"delete_dependents": "true"}, json={"entities": ["x"] * 101})
    assert too_many.status_code == 422
    assert http.post(incidents, params={"delete_dependents": "true"}, json={"entities": []}).status_code == 422
    cascade = http.post(url, params={"delete_dependents": "true"}, json={"entities": ["svc"]})
    assert cascade.status_code == 200 and cascade.json() == {"ok": True, "deletedEntities": ["svc"]}
    assert seeded.entities["opsGenieService"] == {} and seeded.entities["opsGenieAlert"] == {}
    assert list(seeded.entities["opsGenieIncident"]) == ["lone"]


def test_bulk_delete_of_a_whole_dependency_chain_needs_no_cascade(seeded: PortEmulator, http: requests.Session):
    seeded.put_entity("opsGenieIncident", {"identifier": "i1", "relations": {"services": []}})
    seeded.put_entity("opsGenieAlert", {"identifier": "a1", "relations": {"relatedIncident": "i1"}})
    seeded.put_entity("opsGenieAlert", {"identifier": "a2", "relations": {"relatedIncident": "a1"}})  # odd but fine
    url = f"{seeded.url}/v1/blueprints/opsGenieAlert/bulk/entities/delete"
    response = http.post(url, params={"delete_dependents": "false"}, json={"entities": ["a1", "a2"]})
    assert response.status_code == 200


def test_single_delete(seeded: PortEmulator, http: requests.Session) -> None:
    seeded.put_entity("opsGenieIncident", {"identifier": "inc"})
    seeded.put_entity("opsGenieAlert", {"identifier": "al", "relations": {"relatedIncident": "inc"}})
    url = f"{seeded.url}/v1/blueprints/opsGenieIncident/entities/inc"
    assert http.delete(url).status_code == 422
    assert http.delete(url, params={"delete_dependents": "false"}).status_code == 422
    assert http.delete(url, params={"delete_dependents": "true"}).json() == {"ok": True}
    assert seeded.entity("opsGenieAlert", "al") is None
    assert http.delete(url, params={"delete_dependents": "true"}).status_code == 404
    assert seeded.writes() == 3  # the request without delete_dependents never reached a write


# -- rate limit and faults ---------------------------------------------------------------------
def test_rate_limit_429_with_retry_after_and_reset() -> None:
    clock = FakeClock()
    with PortEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, rate_limit=(3, 60), now=clock) as port:
        http = _session(port)
        statuses = []
        for _ in range(3):
            response = http.get(f"{port.url}/v1/blueprints")
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200]
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert response.headers["x-ratelimit-limit"] == "3" and response.headers["x-ratelimit-period"] == "60"
        clock.value += 20
        throttled = http.get(f"{port.url}/v1/blueprints")
        assert throttled.status_code == 429
        assert throttled.json() == {"ok": False, "error": "rate_limit_exceeded"}
        assert throttled.headers["Retry-After"] == "40"
        assert int(throttled.headers["x-ratelimit-reset"]) == 1_700_000_000 + 60
        assert port.throttled == 1
        assert _token(port).status_code == 200  # the token route is outside the budget
        clock.value += 41
        assert http.get(f"{port.url}/v1/blueprints").status_code == 200


def test_fault_plan_drop_and_truncate(seeded: PortEmulator, http: requests.Session) -> None:
    seeded.faults.add(FaultRule(path="/entities/search$", drop_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        _search(http, seeded, "opsGenieAlert", {})
    seeded.faults.clear()
    seeded.faults.add(FaultRule(path="/v1/blueprints$", garble_rate=1.0))
    garbled = http.get(f"{seeded.url}/v1/blueprints")
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()
    seeded.faults.clear()
    seeded.faults.add(FaultRule(path="/v1/blueprints$", truncate_rate=1.0))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # cut at the socket
        http.get(f"{seeded.url}/v1/blueprints")
    seeded.faults.clear()
    seeded.faults.add(FaultRule(path="/entities/bulk$", status=503, times=1))
    forced = _bulk(http, seeded, "opsGenieAlert", [_alert("f1")])
    assert forced.status_code == 503 and forced.json()["ok"] is False and forced.headers["X-Trace-Id"]
    assert _bulk(http, seeded, "opsGenieAlert", [_alert("f1")]).status_code == 200


def test_faults_from_constructor() -> None:
    plan = FaultPlan([FaultRule(path="/v1/blueprints$", method="GET", status=500, times=1)])
    with PortEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, faults=plan) as port:
        http = _session(port)
        assert http.get(f"{port.url}/v1/blueprints").status_code == 500
        assert http.get(f"{port.url}/v1/blueprints").status_code == 200
        assert port.count("GET", "/v1/blueprints$") == 2


def test_bulk_throughput_with_large_store(seeded: PortEmulator, http: requests.Session) -> None:
    _seed_alerts(seeded, 20_000)
    started = time.perf_counter()
    for batch in range(50):
        entities = [_alert(f"al-{batch * 20 + i:05d}", status="open") for i in range(20)]
        assert _bulk(http, seeded, "opsGenieAlert", entities, merge="true").status_code == 200
    cursor: dict[str, Any] = {"limit": 1000, "include": ["identifier"]}
    for _ in range(20):
        page = _search(http, seeded, "opsGenieAlert", cursor).json()
        cursor["from"] = page.get("next")
    assert time.perf_counter() - started < 10

"""`serve`: Opsgenie webhooks over real HTTP into the emulated Port, against the emulated Opsgenie."""

from __future__ import annotations

import base64
import copy
import json
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from opsgenie_export import serve as serve_module
from opsgenie_export.mapping import compile_mapping, load_mapping
from opsgenie_export.sandbox.accounts import ALERT_ID, generate_account
from opsgenie_export.sandbox.server import FaultRule
from opsgenie_export.serve import MAX_BODY, ServeConfig, WebhookService, build_service
from opsgenie_export.settings import Options, resolve
from opsgenie_export.webhook import EventQueue, RetryPolicy, WebhookEvent, epoch_ms

from conftest import REPO, Sandbox, assert_no_secret_leak, default_mapping_with, running_sandbox

SECRET = "whsec-7f3a9c1e5b2d4f6a8c0e"
ALERT_BP = "opsGenieAlert"
ALERT_GETS = r"^/v2/alerts/[^/]+$"
EXAMPLE = REPO / "examples" / "webhook"
SEED_PAYLOAD: dict[str, Any] = {
    "source": {"name": "web", "type": "API"},
    "alert": {
        "tags": ["tag1", "tag2"],
        "teams": ["team1", "team2"],
        "responders": ["recipient1", "recipient2"],
        "message": "test alert",
        "username": "username",
        "alertId": "052652ac-5d1c-464a-812a-7dd18bbfba8c",
        "source": "user@domain.com",
        "alias": "aliastest",
        "tinyId": "10",
        "entity": "An example entity",
        "createdAt": 1686916265415,
        "updatedAt": 1686916266116,
        "userId": "daed1180-0ce8-438b-8f8e-57e1a5920a2d",
        "description": "Testing opsgenie alerts",
        "priority": "P1",
    },
    "action": "Create",
    "integrationId": "37c8f316-17c6-49d7-899b-9c7e540c048d",
    "integrationName": "Port-Integration",
}
SEED_ENTITY: dict[str, Any] = {
    "identifier": "052652ac-5d1c-464a-812a-7dd18bbfba8c",
    "title": "10 - test alert",
    "blueprint": "opsGenieAlert",
    "properties": {
        "description": "Testing opsgenie alerts",
        "lastChangeType": "Create",
        "priority": "P1",
        "sourceName": "web",
        "sourceType": "API",
        "tags": ["tag1", "tag2"],
        "responders": ["recipient1", "recipient2"],
        "teams": ["team1", "team2"],
    },
    "relations": {},
}


# --------------------------------------------------------------------------- helpers


class Logs:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


def add_blueprints(sandbox: Sandbox, folder: Path = REPO / "blueprints") -> None:
    for name in ("opsGenieService", "opsGenieIncident", "opsGenieAlert"):
        path = folder / f"{name}.json"
        if path.is_file():
            sandbox.port.add_blueprint(json.loads(path.read_text()))


def start_service(
    sandbox: Sandbox, *, mapping: Path = REPO / "mapping.yaml", logs: Logs | None = None, **overrides: Any
) -> WebhookService:
    settings = resolve(Options(mapping=mapping, no_env_file=True), sandbox.env)
    options: dict[str, Any] = {"settle": 0.05, "max_retries": 0, "retry": RetryPolicy(max_attempts=50, base=0.05)}
    config = ServeConfig(secret=SECRET, **{**options, **overrides})
    return build_service(settings, mapping, config, logs or Logs()).start()


@pytest.fixture
def service(seed_sandbox: Sandbox) -> Iterator[WebhookService]:
    add_blueprints(seed_sandbox)
    running = start_service(seed_sandbox)
    yield running
    running.stop(5.0)


def post(service: WebhookService, payload: Any, *, headers: dict[str, str] | None = None) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = {"X-Webhook-Secret": SECRET, "Content-Type": "application/json"} if headers is None else headers
    return requests.post(f"{service.url}/integration/webhook", data=body, headers=sent, timeout=10)


def event(alert: dict[str, Any], action: str, **extra: Any) -> dict[str, Any]:
    """A webhook body as Opsgenie sends it: a partial alert keyed by alertId."""
    partial = {k: alert.get(k) for k in ("tinyId", "alias", "message", "tags", "priority", "source")}
    partial.update(alertId=alert["id"], updatedAt=int(time.time() * 1000), **extra)
    return {"action": action, "alert": partial, "source": {"name": "web", "type": "API"}}


def new_alert(sandbox: Sandbox, **changes: Any) -> dict[str, Any]:
    template = copy.deepcopy(sandbox.account.find_alert(ALERT_ID))
    assert template is not None
    tiny = str(1000 + len(sandbox.account.alerts))
    alert = {**template, "id": str(uuid.uuid4()), "tinyId": tiny, "alias": f"alias-{tiny}", **changes}
    return sandbox.account.add_alert(alert)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
    return time.monotonic() - started


def entity(sandbox: Sandbox, identifier: str) -> dict[str, Any] | None:
    return sandbox.port.entity(ALERT_BP, identifier)


def nothing_happened(sandbox: Sandbox) -> bool:
    return sandbox.opsgenie.count(path=r"^/v2/alerts") == 0 and sandbox.port.writes() == 0


# --------------------------------------------------------------------------- actions (refetch mode)


def test_create_makes_the_entity_appear_within_a_second(service: WebhookService, seed_sandbox: Sandbox) -> None:
    alert = new_alert(seed_sandbox, message="Disk full on db-1")
    response = post(service, event(alert, "Create"))
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "alertId": alert["id"], "action": "Create"}
    assert wait_for(lambda: entity(seed_sandbox, alert["id"]), timeout=1.0) < 1.0
    stored = entity(seed_sandbox, alert["id"])
    assert stored is not None
    assert stored["title"] == "Disk full on db-1"
    assert stored["properties"]["status"] == "open"
    assert stored["properties"]["description"] == alert["description"]  # from GET, not the partial payload
    assert seed_sandbox.opsgenie.count("GET", ALERT_GETS) == 1


def test_close_updates_the_status(service: WebhookService, seed_sandbox: Sandbox) -> None:
    post(service, event(seed_sandbox.account.find_alert(ALERT_ID), "Create"))  # type: ignore[arg-type]
    wait_for(lambda: entity(seed_sandbox, ALERT_ID))
    closed = seed_sandbox.account.update_alert(ALERT_ID, status="closed")
    assert post(service, event(closed, "Close")).status_code == 202
    wait_for(lambda: (entity(seed_sandbox, ALERT_ID) or {}).get("properties", {}).get("status") == "closed")


def test_delete_removes_the_entity(service: WebhookService, seed_sandbox: Sandbox) -> None:
    alert = new_alert(seed_sandbox)
    post(service, event(alert, "Create"))
    wait_for(lambda: entity(seed_sandbox, alert["id"]))
    gets = seed_sandbox.opsgenie.count("GET", ALERT_GETS)
    seed_sandbox.account.remove_alert(alert["id"])
    assert post(service, event(alert, "Delete")).status_code == 202
    wait_for(lambda: entity(seed_sandbox, alert["id"]) is None)
    assert seed_sandbox.opsgenie.count("GET", ALERT_GETS) == gets  # a Delete needs no fetch


def test_delete_of_an_entity_port_never_had_is_fine(service: WebhookService, seed_sandbox: Sandbox) -> None:
    logs = Logs()
    service.worker.log = logs
    post(service, event({"id": "never-seen-alert"}, "Delete"))
    wait_for(lambda: logs.lines)
    assert "absent opsGenieAlert/never-seen-alert" in logs.text()
    assert "FAILED" not in logs.text()


@pytest.mark.parametrize(
    ("action", "changes"),
    [
        ("AddTags", {"tags": ["auth", "login", "sev1"]}),
        ("Acknowledge", {"acknowledged": True}),
        ("AssignOwnership", {"owner": "devtester@gmail.com"}),
        ("SomeFutureAction", {"priority": "P1"}),  # unknown actions re-fetch too
    ],
)
def test_other_actions_refetch_the_alert(
    service: WebhookService, seed_sandbox: Sandbox, action: str, changes: dict[str, Any]
) -> None:
    post(service, event(seed_sandbox.account.find_alert(ALERT_ID), "Create"))  # type: ignore[arg-type]
    wait_for(lambda: entity(seed_sandbox, ALERT_ID))
    updated = seed_sandbox.account.update_alert(ALERT_ID, **changes)
    assert post(service, event(updated, action)).status_code == 202
    names = {"tags": "tags", "acknowledged": "acknowledged", "owner": "createdBy", "priority": "priority"}
    name, value = next((names[k], v) for k, v in changes.items())
    wait_for(lambda: (entity(seed_sandbox, ALERT_ID) or {}).get("properties", {}).get(name) == value)


def test_an_alert_gone_from_opsgenie_is_deleted_whatever_the_action(
    service: WebhookService, seed_sandbox: Sandbox
) -> None:
    alert = new_alert(seed_sandbox)
    post(service, event(alert, "Create"))
    wait_for(lambda: entity(seed_sandbox, alert["id"]))
    seed_sandbox.account.remove_alert(alert["id"])
    post(service, event(alert, "AddNote"))  # 404 from the API: treated as deleted
    wait_for(lambda: entity(seed_sandbox, alert["id"]) is None)


@pytest.mark.parametrize(
    "selector",
    [
        '    selector:\n      query: .status == "open"',
        '    selector:\n      query: "true"\n      apiQueryParams:\n        status: open',  # filtered by the API
    ],
    ids=["jq-selector", "api-query-params"],
)
def test_an_alert_that_no_longer_passes_the_selector_is_deleted(
    seed_sandbox: Sandbox, tmp_path: Path, selector: str
) -> None:
    default = '  - kind: alert\n    selector:\n      query: "true"'
    mapping = default_mapping_with(tmp_path / "mapping.yaml", (default, f"  - kind: alert\n{selector}"))
    add_blueprints(seed_sandbox)
    running = start_service(seed_sandbox, mapping=mapping)
    try:
        alert = new_alert(seed_sandbox)
        post(running, event(alert, "Create"))
        wait_for(lambda: entity(seed_sandbox, alert["id"]))
        post(running, event(seed_sandbox.account.update_alert(alert["id"], status="closed"), "Close"))
        wait_for(lambda: entity(seed_sandbox, alert["id"]) is None)
    finally:
        running.stop(5.0)


# --------------------------------------------------------------------------- authentication and bad input


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Webhook-Secret": "wrong"},
        {"X-Webhook-Secret": "x" * len(SECRET)},  # same length, wrong value
        {"X-Webhook-Secret": ""},
        {"Authorization": basic("opsgenie", "x" * len(SECRET))},
        {"Authorization": basic(SECRET, "")},  # the secret as the user name is not the password
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Bearer {SECRET}"},
    ],
    ids=["missing", "wrong", "wrong-same-length", "empty", "basic-wrong", "secret-as-user", "garbage", "bearer"],
)
def test_requests_without_the_secret_get_401_and_change_nothing(
    service: WebhookService, seed_sandbox: Sandbox, headers: dict[str, str]
) -> None:
    response = post(service, event(seed_sandbox.account.find_alert(ALERT_ID), "Delete"), headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 401
    assert "Basic" in response.headers["WWW-Authenticate"]
    time.sleep(0.15)
    assert len(service.queue) == 0 and service.worker.processed == 0
    assert nothing_happened(seed_sandbox)


@pytest.mark.parametrize(
    "headers",
    [{"X-Webhook-Secret": SECRET}, {"Authorization": basic("any-user", SECRET)}, {"Authorization": basic("", SECRET)}],
    ids=["header", "basic-auth", "basic-auth-no-user"],
)
def test_the_secret_is_accepted_as_header_or_basic_auth_password(
    service: WebhookService, seed_sandbox: Sandbox, headers: dict[str, str]
) -> None:
    alert = new_alert(seed_sandbox)
    assert post(service, event(alert, "Create"), headers=headers).status_code == 202
    wait_for(lambda: entity(seed_sandbox, alert["id"]))


def test_the_secret_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = serve_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(serve_module.hmac, "compare_digest", spy)
    secret = SECRET.encode()
    assert not serve_module.authorised({"X-Webhook-Secret": "x" * len(SECRET)}, secret)
    assert not serve_module.authorised({"Authorization": basic("u", "y" * len(SECRET))}, secret)
    assert serve_module.authorised({"Authorization": basic("u", SECRET)}, secret)
    assert len(calls) == 3


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"action": "Create"}',
        b'{"action": "Create", "alert": {}}',
        b'{"action": "Create", "alert": {"alertId": ""}}',
        b'{"action": "Create", "alert": {"alertId": 42}}',
        b'{"action": "Create", "alert": "x"}',
    ],
)
def test_malformed_bodies_get_400_and_change_nothing(
    service: WebhookService, seed_sandbox: Sandbox, body: bytes
) -> None:
    response = post(service, body)
    assert response.status_code == 400
    assert response.json()["error"]
    time.sleep(0.1)
    assert nothing_happened(seed_sandbox)


def test_oversized_bodies_get_413_without_being_read(service: WebhookService, seed_sandbox: Sandbox) -> None:
    payload = event(seed_sandbox.account.find_alert(ALERT_ID), "Create")  # type: ignore[arg-type]
    payload["padding"] = "x" * MAX_BODY
    response = post(service, payload)
    assert response.status_code == 413
    time.sleep(0.1)
    assert nothing_happened(seed_sandbox)
    exactly = json.dumps({**payload, "padding": ""}).encode()
    exactly += b" " * (MAX_BODY - len(exactly))  # 1 MiB exactly is accepted
    assert post(service, exactly).status_code == 202


def test_health_and_unknown_paths(service: WebhookService) -> None:
    health = requests.get(f"{service.url}/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {"status": "ok", "consecutiveFailures": 0, "queued": 0}
    assert requests.get(f"{service.url}/integration/webhook", timeout=5).status_code == 404
    other = requests.post(f"{service.url}/other", data=b"{}", headers={"X-Webhook-Secret": SECRET}, timeout=5)
    assert other.status_code == 404


def test_a_full_queue_answers_503_with_retry_after(seed_sandbox: Sandbox) -> None:
    add_blueprints(seed_sandbox)
    running = start_service(seed_sandbox, queue_size=1, settle=0.5)
    try:
        first, second = new_alert(seed_sandbox), new_alert(seed_sandbox)
        assert post(running, event(first, "Create")).status_code == 202
        refused = post(running, event(second, "Create"))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert post(running, event(first, "AddTags")).status_code == 202  # coalesces: no new slot needed
        wait_for(lambda: entity(seed_sandbox, first["id"]))
        assert post(running, event(second, "Create")).status_code == 202  # Opsgenie's retry
        wait_for(lambda: entity(seed_sandbox, second["id"]))
    finally:
        running.stop(5.0)


def test_connections_beyond_the_cap_get_503_without_holding_a_thread(seed_sandbox: Sandbox) -> None:
    """Idle connections (a slow or hostile client) fill the cap; the next one is refused at once
    with 503 + Retry-After, and service resumes when they go."""
    add_blueprints(seed_sandbox)
    running = start_service(seed_sandbox, max_connections=2)
    host, port = urlsplit(running.url).hostname, urlsplit(running.url).port
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # both are accepted and each holds its thread, waiting for a request line
        threads = threading.active_count()
        with socket.create_connection((host, port), timeout=5) as third:
            reply = third.recv(4096)
        assert reply.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in reply
        assert threading.active_count() == threads  # refused without a thread
    finally:
        for connection in idle:
            connection.close()
    try:
        alert = new_alert(seed_sandbox)
        wait_for(lambda: post(running, event(alert, "Create")).status_code == 202)
        wait_for(lambda: entity(seed_sandbox, alert["id"]))
    finally:
        running.stop(5.0)


# --------------------------------------------------------------------------- coalescing, bursts, failures


def queued(alert_id: str, action: str, updated: int | None = None) -> WebhookEvent:
    return WebhookEvent(alert_id, action, {"alert": {"alertId": alert_id}}, updated)


def test_the_queue_keeps_the_latest_event_per_alert() -> None:
    events = EventQueue(capacity=2)
    for action in ("Create", "AddTags", "Delete"):
        assert events.offer(queued("a", action))
    assert events.offer(queued("b", "Create"))
    assert not events.offer(queued("c", "Create"))  # full: 503
    assert events.offer(queued("b", "Close"))  # an alert already waiting always fits
    first, second = events.take(), events.take()
    assert (first.alert_id, first.action, first.coalesced) == ("a", "Delete", 2)  # type: ignore[union-attr]
    assert (second.alert_id, second.action) == ("b", "Close")  # type: ignore[union-attr]
    events.offer(queued("a", "Delete"))
    events.offer(queued("a", "Create"))  # a later Create after Delete: fetched again
    assert events.take().action == "Create"  # type: ignore[union-attr]
    events.offer(queued("a", "Close", updated=2_000))
    events.offer(queued("a", "AddTags", updated=1_000))  # delivered late: the older change
    assert events.take().action == "Close"  # type: ignore[union-attr]


def test_timestamps_are_normalised_by_magnitude() -> None:
    ms = 1686916266116
    assert epoch_ms(ms) == ms
    assert epoch_ms(ms * 1_000_000 + 123456) == ms  # 19-digit nanoseconds
    assert epoch_ms(str(ms)) == ms
    assert epoch_ms(1686916266) == 1686916266000  # seconds
    assert epoch_ms(None) is None and epoch_ms("soon") is None and epoch_ms(True) is None


def burst(sandbox: Sandbox, service: WebhookService, alerts: list[dict[str, Any]], events: int, seed: int) -> None:
    """`events` webhooks over `alerts`, each preceded by the change it reports; posted from 10
    threads, each owning some alerts (so each alert's events arrive in order, as from Opsgenie)."""
    rng = random.Random(seed)
    plan = [rng.choice(alerts)["id"] for _ in range(events)]
    lanes: dict[int, list[str]] = {}
    owners = {a["id"]: i % 10 for i, a in enumerate(alerts)}
    for alert_id in plan:
        lanes.setdefault(owners[alert_id], []).append(alert_id)
    errors: list[str] = []

    def lane(ids: list[str], lane_rng: random.Random) -> None:
        for alert_id in ids:
            payload = change(sandbox, alerts, alert_id, lane_rng)
            status = post(service, payload).status_code
            if status != 202:
                errors.append(f"{alert_id}: {status}")

    threads = [threading.Thread(target=lane, args=(ids, random.Random(seed + n))) for n, ids in lanes.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def change(sandbox: Sandbox, alerts: list[dict[str, Any]], alert_id: str, rng: random.Random) -> dict[str, Any]:
    account = sandbox.account
    current = account.find_alert(alert_id)
    action = rng.choice(["Create", "Close", "Acknowledge", "UnAcknowledge", "AddTags", "RemoveTags", "Delete"])
    if current is None:  # deleted: Opsgenie can only tell about it again with a Create
        original = next(a for a in alerts if a["id"] == alert_id)
        current, action = account.add_alert(copy.deepcopy(original)), "Create"
    elif action == "Delete":
        account.remove_alert(alert_id)
    elif action != "Create":
        changes = {
            "Close": {"status": "closed"},
            "Acknowledge": {"acknowledged": True},
            "UnAcknowledge": {"acknowledged": False},
            "AddTags": {"tags": [*current["tags"], f"t{rng.randrange(1000)}"]},
            "RemoveTags": {"tags": current["tags"][1:]},
        }[action]
        current = account.update_alert(alert_id, **changes)
    payload = event(current, action)
    if rng.random() < 0.5:
        payload["alert"]["updatedAt"] = time.time_ns()  # some payloads carry nanoseconds
    return payload


def assert_port_matches_opsgenie(sandbox: Sandbox, alerts: list[dict[str, Any]]) -> None:
    for original in alerts:
        expected = sandbox.account.find_alert(original["id"])
        stored = entity(sandbox, original["id"])
        if expected is None:
            assert stored is None, original["id"]
            continue
        assert stored is not None, original["id"]
        properties = stored["properties"]
        assert stored["title"] == expected["message"]
        assert properties["status"] == expected["status"]
        assert properties["acknowledged"] == expected["acknowledged"]
        assert properties["tags"] == expected["tags"]
        assert properties["priority"] == expected["priority"]


def test_a_burst_of_500_events_for_50_alerts_with_a_port_outage_ends_in_sync(seed_sandbox: Sandbox) -> None:
    add_blueprints(seed_sandbox)
    alerts = [new_alert(seed_sandbox, tags=["base"]) for _ in range(50)]
    outage = seed_sandbox.port.faults.add(FaultRule(path=r"/entities", status=503, skip=15, times=30))
    logs = Logs()
    running = start_service(seed_sandbox, settle=0.25, logs=logs)
    try:
        burst(seed_sandbox, running, alerts, events=500, seed=3)
        assert running.queue.wait_idle(30.0)
    finally:
        running.stop(5.0)
    assert outage._fired == 30  # the outage happened during the burst
    assert "retrying" in logs.text() and "FAILED" not in logs.text()
    assert_port_matches_opsgenie(seed_sandbox, alerts)
    fetched = seed_sandbox.opsgenie.count("GET", ALERT_GETS)
    assert fetched < 250, f"{fetched} alert GETs for 500 events: bursts were not coalesced"
    assert running.queue.coalesced > 250
    assert running.queue.accepted == 500


def test_port_failing_for_a_while_then_recovering(seed_sandbox: Sandbox) -> None:
    add_blueprints(seed_sandbox)
    seed_sandbox.port.faults.add(FaultRule(path=r"/entities", status=503, times=8))
    logs = Logs()
    running = start_service(seed_sandbox, logs=logs, max_retries=1)
    try:
        alerts = [new_alert(seed_sandbox) for _ in range(3)]
        for alert in alerts:
            assert post(running, event(alert, "Create")).status_code == 202
        wait_for(lambda: all(entity(seed_sandbox, a["id"]) for a in alerts), timeout=20.0)
    finally:
        running.stop(5.0)
    assert "retrying in" in logs.text()
    assert all("webhook alert=" in line and SECRET not in line for line in logs.lines)


def test_lookups_are_reused_across_a_burst(seed_sandbox: Sandbox) -> None:
    """`__relatedIncident` needs the incident listing: fetched once per TTL, not once per event."""
    add_blueprints(seed_sandbox)
    running = start_service(seed_sandbox)
    incidents = r"^/v1/incidents"
    try:
        post(running, event(new_alert(seed_sandbox), "Create"))
        assert running.queue.wait_idle(10.0)
        after_first = seed_sandbox.opsgenie.count("GET", incidents)
        for alert in [new_alert(seed_sandbox) for _ in range(4)]:
            post(running, event(alert, "Create"))
        assert running.queue.wait_idle(10.0)
    finally:
        running.stop(5.0)
    assert after_first > 0
    assert seed_sandbox.opsgenie.count("GET", incidents) == after_first
    assert seed_sandbox.opsgenie.count("GET", ALERT_GETS) == 5


def test_links_of_unchanged_incidents_are_reused_across_lookup_windows() -> None:
    """Each lookup window would ask every incident for its alerts; the links of incidents that are
    not open and did not change carry over to the next window (in memory)."""
    associated = r"associated-alert-ids"
    with running_sandbox(generate_account(alerts=60, incidents=12, services=4, teams=2, seed=7)) as box:
        add_blueprints(box)
        running = start_service(box, lookup_ttl=0.0)  # every event opens a new window
        try:
            first, second = box.account.alerts[:2]
            assert post(running, event(first, "AddNote")).status_code == 202
            assert running.queue.wait_idle(10.0)
            asked_first = box.opsgenie.count("GET", associated)
            assert post(running, event(second, "AddNote")).status_code == 202
            assert running.queue.wait_idle(10.0)
            asked_second = box.opsgenie.count("GET", associated) - asked_first
        finally:
            running.stop(5.0)
        incidents = box.account.incidents
        opened = [i for i in incidents if i["status"] == "open"]
        assert 0 < len(opened) < len(incidents)
        assert asked_first == len(incidents)
        assert asked_second == len(opened)
        assert entity(box, second["id"]) is not None


# --------------------------------------------------------------------------- payload mode


def test_payload_mapping_turns_the_seed_payload_into_the_seed_entity() -> None:
    [resource] = compile_mapping(load_mapping(EXAMPLE / "mapping.yaml"))
    [mapped] = resource.map_item(SEED_PAYLOAD).entities
    assert {**mapped.to_port(), "blueprint": mapped.blueprint} == SEED_ENTITY


def test_payload_mode_end_to_end(seed_sandbox: Sandbox) -> None:
    add_blueprints(seed_sandbox, EXAMPLE)
    running = start_service(seed_sandbox, mapping=EXAMPLE / "mapping.yaml", mode="payload")
    try:
        assert post(running, SEED_PAYLOAD).status_code == 202
        wait_for(lambda: entity(seed_sandbox, SEED_ENTITY["identifier"]))
        stored = entity(seed_sandbox, SEED_ENTITY["identifier"])
        assert {key: stored[key] for key in SEED_ENTITY} == SEED_ENTITY  # type: ignore[index]
        deleted = {**SEED_PAYLOAD, "action": "Delete"}
        assert post(running, deleted).status_code == 202
        wait_for(lambda: entity(seed_sandbox, SEED_ENTITY["identifier"]) is None)
    finally:
        running.stop(5.0)
    assert seed_sandbox.opsgenie.count() == 0  # no Opsgenie API call in payload mode


# --------------------------------------------------------------------------- the command


def spawn(sandbox: Sandbox, tmp_path: Path, *args: str, secret: str | None = SECRET) -> subprocess.Popen[str]:
    env = {**sandbox.env, "PATH": "/usr/bin:/bin"}
    if secret is not None:
        env["OPSGENIE_WEBHOOK_SECRET"] = secret
    command = [sys.executable, "-m", "opsgenie_export", "serve", "--host", "127.0.0.1", "--port", "0", *args]
    return subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)


def stderr_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def next_line(lines: queue.Queue[str], containing: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        assert_no_secret_leak(line, env={"OPSGENIE_WEBHOOK_SECRET": SECRET})
        if containing in line:
            return line
    raise AssertionError(f"no line with {containing!r}; got {seen}")


def test_sigterm_closes_the_listener_drains_the_queue_and_exits_0(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    add_blueprints(seed_sandbox)
    seed_sandbox.port.latency = 0.03  # slow writes, so events are still queued at SIGTERM
    process = spawn(seed_sandbox, tmp_path, "--mapping", str(REPO / "mapping.yaml"))
    lines = stderr_lines(process)
    try:
        url = next_line(lines, "listening on").split("listening on ")[1].split(" ")[0]
        alerts = [new_alert(seed_sandbox) for _ in range(20)]
        for alert in alerts:
            body = json.dumps(event(alert, "Create")).encode()
            response = requests.post(url, data=body, headers={"X-Webhook-Secret": SECRET}, timeout=5)
            assert response.status_code == 202
        process.send_signal(signal.SIGTERM)
        assert "draining" in next_line(lines, "listener closed")
        with pytest.raises(requests.ConnectionError):
            requests.post(url, data=b"{}", headers={"X-Webhook-Secret": SECRET}, timeout=2)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert all(entity(seed_sandbox, a["id"]) for a in alerts)


def test_the_command_refuses_to_start_without_a_secret(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    process = spawn(seed_sandbox, tmp_path, "--no-env-file", secret=None)
    _, stderr = process.communicate(timeout=30)
    assert_no_secret_leak(stderr)
    assert process.returncode == 2
    assert "OPSGENIE_WEBHOOK_SECRET" in stderr
    assert seed_sandbox.port.count() == 0 and seed_sandbox.opsgenie.count() == 0


def test_healthz_turns_unhealthy_while_every_write_fails_and_recovers(seed_sandbox: Sandbox) -> None:
    """Case 11 of issue #16: /healthz said ok while every Port write failed."""
    add_blueprints(seed_sandbox)
    outage = seed_sandbox.port.faults.add(FaultRule(path=r"/entities", status=503, times=1000))
    running = start_service(seed_sandbox, retry=RetryPolicy(max_attempts=1000, base=0.05, cap=0.2))
    health = f"{running.url}/healthz"
    try:
        alert = new_alert(seed_sandbox)
        assert post(running, event(alert, "Create")).status_code == 202
        wait_for(lambda: requests.get(health, timeout=5).status_code == 503, timeout=20.0)
        body = requests.get(health, timeout=5).json()
        assert body["status"].startswith("failing: the last ") and "503" in body["error"]
        assert SECRET not in json.dumps(body)
        outage.times = outage._fired  # Port recovers
        wait_for(lambda: entity(seed_sandbox, alert["id"]), timeout=20.0)
        assert requests.get(health, timeout=5).json()["status"] == "ok"
    finally:
        running.stop(5.0)


def test_healthz_is_unhealthy_after_a_refused_credential(seed_sandbox: Sandbox) -> None:
    add_blueprints(seed_sandbox)
    running = start_service(seed_sandbox, retry=RetryPolicy(max_attempts=2, base=0.05))
    try:
        seed_sandbox.port.faults.add(FaultRule(path=r"/entities", status=403, times=1000))
        assert post(running, event(new_alert(seed_sandbox), "Create")).status_code == 202
        health = f"{running.url}/healthz"
        wait_for(lambda: requests.get(health, timeout=5).status_code == 503, timeout=20.0)
        assert requests.get(health, timeout=5).json()["status"] == "credentials refused"
    finally:
        running.stop(5.0)


def test_a_refused_credential_is_not_retried_and_health_recovers_with_the_next_success(seed_sandbox: Sandbox) -> None:
    """Issue 11: serve retried an authentication failure up to 8 times. Now the event is dropped
    and logged once, /healthz is unhealthy, and the next event that succeeds makes it healthy."""
    add_blueprints(seed_sandbox)
    logs = Logs()
    running = start_service(seed_sandbox, logs=logs)  # up to 50 attempts for a retryable failure
    health = f"{running.url}/healthz"
    try:
        refused = seed_sandbox.port.faults.add(FaultRule(path=r"/entities", status=403, times=1000))
        assert post(running, event(new_alert(seed_sandbox), "Create")).status_code == 202
        wait_for(lambda: "FAILED for good" in logs.text(), timeout=20.0)
        time.sleep(0.3)  # a retry, if there were one, would come within this
        assert refused._fired == 1
        assert "retrying" not in logs.text() and logs.text().count("FAILED for good") == 1
        assert requests.get(health, timeout=5).json()["status"] == "credentials refused"
        refused.times = refused._fired  # the credential works again
        alert = new_alert(seed_sandbox)
        assert post(running, event(alert, "Create")).status_code == 202
        wait_for(lambda: entity(seed_sandbox, alert["id"]), timeout=20.0)
        wait_for(lambda: requests.get(health, timeout=5).status_code == 200, timeout=5.0)
    finally:
        running.stop(5.0)

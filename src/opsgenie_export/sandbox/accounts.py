"""An Opsgenie account as plain JSON-like dicts, shaped exactly as the API returns them.

`Account` holds the data the Opsgenie emulator serves, with the indexes that keep it fast on a
100,000-alert account: alerts and incidents stay sorted by (createdAt, id) next to a parallel
list of epoch milliseconds, so a createdAt range is two bisections. Mutate through the methods
(`add_alert`, `remove_alert`, `update_alert`, …); after editing the lists directly, call
`reindex()`. Every mutation bumps `versions[<collection>]`, which the emulator keys its caches on.

`seed_account()` is the sample account of the seed payloads; `generate_account()` builds a large,
deterministic, realistic one.
"""

from __future__ import annotations

import bisect
import functools
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

Item = dict[str, Any]
T = TypeVar("T")

ALERT_FULL_ONLY_FIELDS = ("description", "details", "entity", "actions")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
WEB_BASE = "https://mytestaccount.app.opsgenie.com"
API_BASE = "https://api.opsgenie.com"


# -- timestamps --------------------------------------------------------------------------------
def iso_to_ms(text: str) -> int:
    """ISO-8601 date-time → epoch milliseconds (exact; a value without zone is UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    t = time.gmtime(days * 86_400)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"


def ms_to_iso(ms: int) -> str:
    """Epoch ms → the API's format: `2023-09-26T17:49:10.17Z` (trailing zeros of the fraction dropped)."""
    seconds, millis = divmod(ms, 1000)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{_day(days)}{hours:02d}:{minutes:02d}:{seconds:02d}"
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z"


def item_ms(item: Item, name: str = "createdAt") -> int | None:
    value = item.get(name)
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int | float):
        return int(value)
    return iso_to_ms(str(value))


def base_alert(alert: Item) -> Item:
    """The list endpoint's BaseAlert: the alert without description, details, entity, actions."""
    return {k: v for k, v in alert.items() if k not in ALERT_FULL_ONLY_FIELDS}


# -- sorted collections ------------------------------------------------------------------------
class _Timeline:
    """A list of items kept sorted by (createdAt ms, id), with id / tinyId / alias indexes.

    `items` is the Account's own list object (sorted in place); `ms` runs parallel to it.
    """

    def __init__(self, items: list[Item], *, with_alias: bool) -> None:
        self.items = items
        self.with_alias = with_alias
        self.ms: list[int] = []
        self.keys: list[tuple[int, str]] = []
        self.by_id: dict[str, Item] = {}
        self.by_tiny: dict[str, Item] = {}
        self.by_alias: dict[str, Item] = {}
        self.rebuild()

    def rebuild(self) -> None:
        keyed = sorted(((item_ms(i) or 0, i["id"]), i) for i in self.items)  # ids are unique
        self.items[:] = [item for _, item in keyed]
        self.keys = [key for key, _ in keyed]
        self.ms = [key[0] for key in self.keys]
        self.by_id = {i["id"]: i for i in self.items}
        self.by_tiny = {str(i.get("tinyId")): i for i in self.items}
        self.by_alias = {i["alias"]: i for i in self.items if self.with_alias and i.get("alias")}

    def stale(self) -> bool:
        return len(self.items) != len(self.ms)

    def add(self, item: Item) -> None:
        if item["id"] in self.by_id:
            raise ValueError(f"duplicate id {item['id']}")
        key = (item_ms(item) or 0, item["id"])
        pos = bisect.bisect_left(self.keys, key)
        self.items.insert(pos, item)
        self.keys.insert(pos, key)
        self.ms.insert(pos, key[0])
        self._index(item)

    def _index(self, item: Item) -> None:
        self.by_id[item["id"]] = item
        self.by_tiny[str(item.get("tinyId"))] = item
        if self.with_alias and item.get("alias"):
            self.by_alias[item["alias"]] = item

    def remove(self, item_id: str) -> Item | None:
        item = self.by_id.pop(item_id, None)
        if item is None:
            return None
        pos = bisect.bisect_left(self.keys, (item_ms(item) or 0, item_id))
        del self.items[pos], self.keys[pos], self.ms[pos]
        if self.by_tiny.get(str(item.get("tinyId"))) is item:
            del self.by_tiny[str(item.get("tinyId"))]
        if self.by_alias.get(item.get("alias") or "") is item:
            del self.by_alias[item["alias"]]
        return item

    def range(self, lo_ms: int | None, hi_ms: int | None) -> tuple[int, int]:
        """Index bounds [start, stop) of items with lo_ms <= createdAt < hi_ms (None = open)."""
        start = 0 if lo_ms is None else bisect.bisect_left(self.ms, lo_ms)
        stop = len(self.ms) if hi_ms is None else bisect.bisect_left(self.ms, hi_ms)
        return start, max(start, stop)


# -- the account -------------------------------------------------------------------------------
@dataclass(repr=False)
class Account:
    teams: list[Item] = field(default_factory=list)
    users: list[Item] = field(default_factory=list)
    services: list[Item] = field(default_factory=list)
    incidents: list[Item] = field(default_factory=list)
    alerts: list[Item] = field(default_factory=list)
    schedules: list[Item] = field(default_factory=list)
    oncalls: dict[str, list[str]] = field(default_factory=dict)
    escalations: list[Item] = field(default_factory=list)
    associated_alerts: dict[str, list[str]] = field(default_factory=dict)
    versions: Counter[str] = field(default_factory=Counter, init=False, compare=False)
    lock: threading.RLock = field(default_factory=threading.RLock, init=False, compare=False)

    def __post_init__(self) -> None:
        self._alerts = _Timeline(self.alerts, with_alias=True)
        self._incidents = _Timeline(self.incidents, with_alias=False)
        self._index_config()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(getattr(self, name))}" for name in _COLLECTIONS)
        return f"Account({sizes})"

    def _index_config(self) -> None:
        self._teams = {t["id"]: t for t in self.teams}
        self._users = {u["id"]: u for u in self.users}
        self._usernames = {u["username"]: u for u in self.users}
        self._services = {s["id"]: s for s in self.services}
        self._schedules = {s["id"]: s for s in self.schedules}
        self._escalations = {e["id"]: e for e in self.escalations}

    def reindex(self) -> None:
        """Rebuild every index after the lists were edited directly; bumps every version."""
        with self.lock:
            self._alerts.rebuild()
            self._incidents.rebuild()
            self._index_config()
            for name in _COLLECTIONS:
                self.versions[name] += 1

    def version(self, *names: str) -> tuple[int, ...]:
        with self.lock:
            if self._alerts.stale() or self._incidents.stale():
                self.reindex()
            return tuple(self.versions[name] for name in names)

    # -- alerts ------------------------------------------------------------------------------
    def add_alert(self, alert: Item) -> Item:
        with self.lock:
            self._alerts.add(alert)
            self.versions["alerts"] += 1
        return alert

    def remove_alert(self, alert_id: str) -> Item | None:
        with self.lock:
            removed = self._alerts.remove(alert_id)
            if removed is not None:
                self.versions["alerts"] += 1
            return removed

    def update_alert(self, alert_id: str, **changes: Any) -> Item:
        """Replace an alert by a copy with `changes` applied (re-sorted if createdAt changed)."""
        return self._replace(self._alerts, "alerts", alert_id, changes)

    def _replace(self, timeline: _Timeline, version: str, item_id: str, changes: dict[str, Any]) -> Item:
        with self.lock:
            current = timeline.by_id.get(item_id)
            if current is None:
                raise KeyError(item_id)
            timeline.remove(item_id)
            updated = {**current, **changes}
            timeline.add(updated)
            self.versions[version] += 1
            return updated

    def find_alert(self, identifier: str, identifier_type: str = "id") -> Item | None:
        with self.lock:
            index = {"id": self._alerts.by_id, "alias": self._alerts.by_alias, "tiny": self._alerts.by_tiny}
            return index[identifier_type].get(identifier)

    def alert_range(self, lo_ms: int | None, hi_ms: int | None) -> tuple[int, int]:
        """Index bounds in `alerts` of lo_ms <= createdAt < hi_ms (either bound None = open)."""
        return self._alerts.range(lo_ms, hi_ms)

    # -- incidents ---------------------------------------------------------------------------
    def add_incident(self, incident: Item, alert_ids: Iterable[str] = ()) -> Item:
        with self.lock:
            self._incidents.add(incident)
            if alert_ids:
                self.associated_alerts.setdefault(incident["id"], []).extend(alert_ids)
            self.versions["incidents"] += 1
        return incident

    def remove_incident(self, incident_id: str) -> Item | None:
        with self.lock:
            removed = self._incidents.remove(incident_id)
            if removed is not None:
                self.associated_alerts.pop(incident_id, None)
                self.versions["incidents"] += 1
            return removed

    def update_incident(self, incident_id: str, **changes: Any) -> Item:
        """Replace an incident by a copy with `changes` applied; its associated alerts stay."""
        return self._replace(self._incidents, "incidents", incident_id, changes)

    def find_incident(self, identifier: str, identifier_type: str = "id") -> Item | None:
        with self.lock:
            index = {"id": self._incidents.by_id, "tiny": self._incidents.by_tiny}
            return index[identifier_type].get(identifier)

    def incident_range(self, lo_ms: int | None, hi_ms: int | None) -> tuple[int, int]:
        return self._incidents.range(lo_ms, hi_ms)

    def associate(self, incident_id: str, alert_id: str) -> None:
        """Link an alert to an incident. The incident's `updatedAt` is left alone: whether Opsgenie
        moves it is unverified, and the stricter assumption is that it does not."""
        with self.lock:
            self.associated_alerts.setdefault(incident_id, []).append(alert_id)
            self.versions["incidents"] += 1

    # -- configuration -----------------------------------------------------------------------
    def find_team(self, identifier: str, identifier_type: str = "id") -> Item | None:
        if identifier_type == "name":
            return next((t for t in self.teams if t["name"] == identifier), None)
        return self._teams.get(identifier)

    def team_ids_named(self, name: str) -> set[str]:
        """Ids of the teams called `name` (case-insensitive), for the `teams:` search field."""
        folded = name.casefold()
        return {t["id"] for t in self.teams if t["name"].casefold() == folded}

    def find_user(self, identifier: str) -> Item | None:
        """By id or username."""
        return self._users.get(identifier) or self._usernames.get(identifier)

    def find_service(self, service_id: str) -> Item | None:
        return self._services.get(service_id)

    def find_schedule(self, identifier: str, identifier_type: str = "id") -> Item | None:
        if identifier_type == "name":
            return next((s for s in self.schedules if s["name"] == identifier), None)
        return self._schedules.get(identifier)

    def find_escalation(self, identifier: str, identifier_type: str = "id") -> Item | None:
        if identifier_type == "name":
            return next((e for e in self.escalations if e["name"] == identifier), None)
        return self._escalations.get(identifier)

    def add_team(self, team: Item) -> Item:
        return self._add_config("teams", team)

    def add_user(self, user: Item) -> Item:
        return self._add_config("users", user)

    def add_service(self, service: Item) -> Item:
        return self._add_config("services", service)

    def add_schedule(self, schedule: Item, oncall: list[str] | None = None) -> Item:
        if oncall is not None:
            self.oncalls[schedule["id"]] = list(oncall)
        return self._add_config("schedules", schedule)

    def add_escalation(self, escalation: Item) -> Item:
        return self._add_config("escalations", escalation)

    def _add_config(self, collection: str, item: Item) -> Item:
        with self.lock:
            getattr(self, collection).append(item)
            self._index_config()
            self.versions[collection] += 1
        return item


_COLLECTIONS = ("teams", "users", "services", "incidents", "alerts", "schedules", "escalations")


# -- the seed account --------------------------------------------------------------------------
TEAM_ID = "63374eee-0b03-42d4-bb8c-50d1fa64827c"
TESTUSER_ID = "ce544b61-7b35-43ea-89ee-a8750638d3a4"
DEVTESTER_ID = "9ea8f86a-6648-46d6-a2fc-1a6eb5f739c8"
SERVICE_PORT_ID = "daa0d66f-ad35-4396-b30d-70f0314c697a"
SERVICE_TEST_ID = "59591948-d418-4bb9-af16-170d6b232b7d"
INCIDENT_OPENAI_ID = "652f14b3-019a-4d4c-8b83-e4da527a416c"
INCIDENT_MINE_ID = "4a0c5e6d-b239-4cd9-a7e8-a5f880e99473"
ALERT_ID = "580e9625-ecc7-42b0-8836-3d3637438bc4-169486700232"
SCHEDULE_ID = "d55e148e-d320-4766-9dcf-4fc2ce9daef1"
# Not in the seed: the id of the "Default API" integration and the user/schedule details below.
DEFAULT_API_INTEGRATION_ID = "b7d2f0a4-6c1e-4f3b-9a85-2e4d6c8f0a13"


def _links(kind: str, item_id: str) -> dict[str, str]:
    web = {
        "team": f"https://app.opsgenie.com/teams/dashboard/{item_id}/main",
        "service": f"{WEB_BASE}/service/{item_id}/status",
        "incident": f"{WEB_BASE}/incident/detail/{item_id}",
    }[kind]
    api = {"team": "v2/teams", "service": "v1/services", "incident": "v1/incidents"}[kind]
    return {"web": web, "api": f"{API_BASE}/{api}/{item_id}"}


def _seed_team() -> Item:
    return {
        "id": TEAM_ID,
        "name": "Data Science Team",
        "description": "",
        "members": [
            {"user": {"id": TESTUSER_ID, "username": "testuser@gmail.com"}, "role": "admin"},
            {"user": {"id": DEVTESTER_ID, "username": "devtester@gmail.com"}, "role": "user"},
        ],
        "links": _links("team", TEAM_ID),
    }


def _seed_user(user_id: str, username: str, full_name: str, role: str) -> Item:
    # Only id and username come from the seed; the rest is the API's user shape with plain values.
    return {
        "id": user_id,
        "username": username,
        "fullName": full_name,
        "role": {"id": role, "name": role},
        "timeZone": "Etc/UTC",
        "locale": "en_US",
        "userAddress": {"country": "", "state": "", "city": "", "line": "", "zipCode": ""},
        "tags": [],
        "details": {},
        "blocked": False,
        "verified": True,
        "createdAt": "2023-04-20T09:12:44.407Z",
    }


def _seed_services() -> list[Item]:
    return [
        {
            "id": SERVICE_PORT_ID,
            "name": "Port Outbound Service",
            "description": "For outbound communications and integrations",
            "teamId": TEAM_ID,
            "tags": ["communication", "channel"],
            "links": _links("service", SERVICE_PORT_ID),
            "isExternal": False,
        },
        {
            "id": SERVICE_TEST_ID,
            "name": "My Test Service",
            "description": "This is for Opsgenie testing",
            "teamId": TEAM_ID,
            "tags": ["port", "devops", "ai"],
            "links": _links("service", SERVICE_TEST_ID),
            "isExternal": False,
        },
    ]


def _seed_incidents() -> list[Item]:
    openai: Item = {
        "id": INCIDENT_OPENAI_ID,
        "description": "summary",
        "impactedServices": [SERVICE_PORT_ID],
        "tinyId": "3",
        "message": "OpenAI Incident",
        "status": "open",
        "tags": ["tags"],
        "createdAt": "2023-09-26T17:06:16.824Z",
        "updatedAt": "2023-09-26T17:49:10.17Z",
        "priority": "P3",
        "ownerTeam": "",
        "responders": [{"type": "team", "id": TEAM_ID}, {"type": "user", "id": TESTUSER_ID}],
        "extraProperties": {},
        "links": _links("incident", INCIDENT_OPENAI_ID),
        "impactStartDate": "2023-09-26T17:06:16.824Z",
        "impactEndDate": "2023-09-26T17:45:25.719Z",
        "actions": [],
    }
    mine: Item = {
        "id": INCIDENT_MINE_ID,
        "description": "descirption",
        "impactedServices": [SERVICE_TEST_ID, SERVICE_PORT_ID],
        "tinyId": "2",
        "message": "My Incident",
        "status": "open",
        "tags": ["hello"],
        "createdAt": "2023-09-20T13:33:00.941Z",
        "updatedAt": "2023-09-26T17:48:54.48Z",
        "priority": "P3",
        "ownerTeam": "",
        "responders": [
            {"type": "team", "id": TEAM_ID},
            {"type": "user", "id": TESTUSER_ID},
            {"type": "user", "id": DEVTESTER_ID},
        ],
        "extraProperties": {},
        "links": _links("incident", INCIDENT_MINE_ID),
        "impactStartDate": "2023-09-20T13:33:00.941Z",
        "actions": [],
    }
    return [openai, mine]


def _seed_alert() -> Item:
    return {
        "seen": True,
        "id": ALERT_ID,
        "tinyId": "2",
        "alias": "355f1681-f6e3-4355-a927-897cd8edaf8f_4d37bc8a-030b-4e8f-a230-aa429947253c",
        "message": "Login Auth not working",
        "status": "open",
        # The seed payload shows `"integration": "Default API"`, a bare string; the real API and the
        # spec's BaseAlert give an object {id, name, type}, which is what we serve.
        "integration": {"id": DEFAULT_API_INTEGRATION_ID, "name": "Default API", "type": "API"},
        "acknowledged": False,
        "isSeen": True,
        "tags": ["auth", "login"],
        "snoozed": False,
        "count": 1,
        "lastOccurredAt": "2023-04-21T08:36:18.46Z",
        "createdAt": "2023-04-21T08:36:18.46Z",
        "updatedAt": "2023-08-11T10:41:16.533Z",
        "source": "testuser@gmail.com",
        "owner": "testuser@gmail.com",
        "priority": "P3",
        "teams": [],
        "responders": [{"type": "user", "id": TESTUSER_ID}],
        "report": {"ackTime": 4852912663},
        "ownerTeamId": "",
        # Only the single GET returns these (not in the seed, which shows a list item).
        "description": "",
        "details": {},
        "entity": "",
        "actions": [],
    }


def _seed_schedule() -> Item:
    return {
        "id": SCHEDULE_ID,
        "name": "Data Science Team_schedule",
        "description": "",
        "timezone": "Etc/UTC",
        "enabled": True,
        "ownerTeam": {"id": TEAM_ID, "name": "Data Science Team"},
        "rotations": [
            {
                "id": "0c9f4b1e-3a0d-4d8e-9f6b-5e2a7c1d8b40",
                "name": "Rota1",
                "startDate": "2023-04-20T09:00:00Z",
                "type": "weekly",
                "length": 1,
                "participants": [{"type": "user", "id": TESTUSER_ID, "username": "testuser@gmail.com"}],
            }
        ],
    }


def seed_account() -> Account:
    """The account of the seed payloads (docs' sample Service / Incident / Alert response data)."""
    return Account(
        teams=[_seed_team()],
        users=[
            _seed_user(TESTUSER_ID, "testuser@gmail.com", "Test User", "Admin"),
            _seed_user(DEVTESTER_ID, "devtester@gmail.com", "Dev Tester", "User"),
        ],
        services=_seed_services(),
        incidents=_seed_incidents(),
        alerts=[_seed_alert()],
        schedules=[_seed_schedule()],
        oncalls={SCHEDULE_ID: ["testuser@gmail.com"]},
        escalations=[],
        associated_alerts={INCIDENT_MINE_ID: [ALERT_ID]},
    )


# -- generated accounts ------------------------------------------------------------------------
_TEAM_NAMES = [
    "Platform", "Data Science", "SRE & Ops", "Payments", "Mobile", "Frontend", "Identity", "Search",
    "Équipe Paris", "Infra Core", "Growth", "Security", "Billing", "Observability", "Edge", "Support",
]  # fmt: skip
_SERVICE_WORDS = [
    "Checkout", "Auth & Identity", "Search API (v2)", "Café Menu", "Zürich Gateway", "billing-worker",
    "Notifications", "Inventory", "Port Outbound", "Ledger", "Media Upload", "東京 Edge", "Reports",
    "User Profile", "Recommendations", "Fraud/Risk", "Email Relay", "Status Page", "Order Sync",
]  # fmt: skip
_FIRST = ["ada", "alan", "grace", "linus", "margaret", "dennis", "barbara", "ken", "frances", "john", "zoe"]
_LAST = ["lovelace", "turing", "hopper", "torvalds", "hamilton", "ritchie", "liskov", "thompson", "allen"]
_MESSAGES = [
    "CPU usage above 90% on {host}", "Disk almost full on {host}", "Login Auth not working",
    "5xx rate above threshold on {svc}", "Replica lag > 30s on {host}", "Certificate expires soon for {svc}",
    "Heartbeat expired: {host}", "Queue depth critical on {svc}", "Memory leak suspected in {svc}",
]  # fmt: skip
_PLAIN_ALIAS = ["host_cpu_high_{n}", "db_replica_lag_{n}", "disk_full_{n}", "k8s_pod_crashloop_{n}"]
_INTEGRATION_KINDS = [("Default API", "API"), ("Datadog", "Datadog"), ("Prometheus", "Prometheus"),
                      ("Email", "Email"), ("CloudWatch", "CloudWatch")]  # fmt: skip
_ALERT_TAGS = ["prod", "db", "network", "auth", "k8s", "cpu"]
_PRIORITIES = ("P1", "P2", "P3", "P3", "P3", "P4", "P5")
_INCIDENT_WORDS = ["Outage", "Degraded", "Elevated errors"]
_DAY_MS = 86_400_000


class _Gen:
    """State shared by the generator steps (one `random.Random`, so the output is deterministic)."""

    def __init__(self, seed: int, start: str) -> None:
        self.rng = random.Random(seed)
        self.start_ms = iso_to_ms(start.replace("Z", "+00:00"))

    def uuid(self) -> str:
        """A random (version 4 shaped) UUID string, drawn from the seeded generator."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def below(self, n: int) -> int:
        return int(self.rng.random() * n)

    def between(self, low: int, high: int) -> int:
        """An int in [low, high)."""
        return low + int(self.rng.random() * (high - low))

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.rng.random() * len(seq))]

    def few(self, seq: Sequence[T], k: int) -> list[T]:
        """k distinct items (a rotated run of `seq`): much cheaper than `random.sample`."""
        size = len(seq)
        first = self.below(size) if size else 0
        return [seq[(first + j) % size] for j in range(min(k, size))]

    def iso(self, ms: int) -> str:
        return ms_to_iso(ms)


def _gen_users(g: _Gen, count: int) -> list[Item]:
    users = []
    for n in range(count):
        first, last = g.rng.choice(_FIRST), g.rng.choice(_LAST)
        role = "Owner" if n == 0 else g.rng.choice(["Admin", "User", "User", "User"])
        users.append(
            {
                "id": g.uuid(),
                "username": f"{first}.{last}{n}@example.com",
                "fullName": f"{first.title()} {last.title()}",
                "role": {"id": role, "name": role},
                "timeZone": g.rng.choice(["Europe/London", "America/New_York", "Asia/Tokyo", "Etc/UTC"]),
                "locale": g.rng.choice(["en_US", "en_GB", "fr_FR"]),
                "userAddress": {"country": "", "state": "", "city": "", "line": "", "zipCode": ""},
                "tags": [],
                "details": {},
                "blocked": g.rng.random() < 0.05,
                "verified": g.rng.random() < 0.9,
                "createdAt": g.iso(g.start_ms - g.rng.randrange(400 * _DAY_MS)),
            }
        )
    return users


def _unique_name(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base} {n}", n + 1
    taken.add(name)
    return name


def _gen_teams(g: _Gen, count: int, users: list[Item]) -> list[Item]:
    teams, taken = [], set[str]()
    for n in range(count):
        team_id = g.uuid()
        name = _unique_name(f"{_TEAM_NAMES[n % len(_TEAM_NAMES)]} Team", taken)
        members = g.rng.sample(users, min(len(users), g.rng.randint(1, 5)))
        teams.append(
            {
                "id": team_id,
                "name": name,
                "description": g.rng.choice(["", f"The {name}"]),
                "members": [
                    {"user": {"id": u["id"], "username": u["username"]}, "role": "user" if i else "admin"}
                    for i, u in enumerate(members)
                ],
                "links": _links("team", team_id),
            }
        )
    return teams


def _gen_services(g: _Gen, count: int, teams: list[Item]) -> list[Item]:
    services, taken = [], set[str]()
    for n in range(count):
        service_id = g.uuid()
        word = _SERVICE_WORDS[n % len(_SERVICE_WORDS)]
        rounds = n // len(_SERVICE_WORDS)
        name = _unique_name(f"{word} {rounds + 1}" if rounds else word, taken)
        services.append(
            {
                "id": service_id,
                "name": name,
                "description": g.rng.choice(["", f"{name} service"]),
                "teamId": g.rng.choice(teams)["id"],
                "tags": g.rng.sample(["prod", "tier1", "tier2", "eu", "us", "pci"], g.rng.randint(0, 3)),
                "links": _links("service", service_id),
                "isExternal": g.rng.random() < 0.1,
            }
        )
    return services


def _rotation(g: _Gen, name: str, users: list[Item]) -> Item:
    participants = g.rng.sample(users, min(len(users), g.rng.randint(1, 3)))
    rotation: Item = {
        "id": g.uuid(),
        "name": name,
        "startDate": g.iso(g.start_ms - 30 * _DAY_MS),
        "type": g.rng.choice(["daily", "weekly", "hourly"]),
        "length": g.rng.randint(1, 2),
        "participants": [{"type": "user", "id": u["id"], "username": u["username"]} for u in participants],
    }
    if g.rng.random() < 0.3:
        rotation["endDate"] = g.iso(g.start_ms + 365 * _DAY_MS)
    if g.rng.random() < 0.3:
        rotation["timeRestriction"] = {
            "type": "time-of-day",
            "restriction": {"startHour": 9, "startMin": 0, "endHour": 18, "endMin": 0},
        }
    return rotation


def _schedule_owners(g: _Gen, teams: list[Item], count: int | None) -> list[Item | None]:
    if count is None:
        owned: list[Item | None] = [t for t in teams for _ in range(g.rng.choice([1, 1, 2]))]
        return owned + [None] * max(1, len(teams) // 5)
    unowned = max(1, count // 6) if count > 1 else 0
    return [teams[i % len(teams)] if teams and i < count - unowned else None for i in range(count)]


def _gen_schedules(g: _Gen, teams: list[Item], users: list[Item], count: int | None) -> list[Item]:
    schedules, taken = [], set[str]()
    for owner in _schedule_owners(g, teams, count):
        base = f"{owner['name']}_schedule" if owner else "Unowned rotation"
        schedule: Item = {
            "id": g.uuid(),
            "name": _unique_name(base, taken),
            "description": "",
            "timezone": g.rng.choice(["Europe/London", "America/New_York", "Etc/UTC"]),
            "enabled": g.rng.random() < 0.9,
        }
        if owner:
            schedule["ownerTeam"] = {"id": owner["id"], "name": owner["name"]}
        pool = [u for u in users if owner and u["id"] in {m["user"]["id"] for m in owner["members"]}] or users
        schedule["rotations"] = [_rotation(g, f"Rota{i + 1}", pool) for i in range(g.rng.randint(1, 2))]
        schedules.append(schedule)
    return schedules


def _gen_oncalls(g: _Gen, schedules: list[Item]) -> dict[str, list[str]]:
    oncalls = {}
    for schedule in schedules:
        names = [p["username"] for r in schedule["rotations"] for p in r["participants"]]
        picked = sorted(set(g.rng.sample(names, min(len(names), g.rng.randint(1, 2)))))
        oncalls[schedule["id"]] = picked if schedule["enabled"] else []
    return oncalls


def _gen_escalations(g: _Gen, teams: list[Item], schedules: list[Item], count: int | None) -> list[Item]:
    owners = teams if count is None else [teams[i % len(teams)] for i in range(count)] if teams else []
    escalations, taken = [], set[str]()
    for team in owners:
        own = [s for s in schedules if (s.get("ownerTeam") or {}).get("id") == team["id"]] or schedules
        target = g.rng.choice(own) if own else None
        recipient = {"type": "schedule", "id": target["id"], "name": target["name"]} if target else {
            "type": "team", "id": team["id"], "name": team["name"]}  # fmt: skip
        escalations.append(
            {
                "id": g.uuid(),
                "name": _unique_name(f"{team['name']}_escalation", taken),
                "description": "",
                "ownerTeam": {"id": team["id"], "name": team["name"]},
                "rules": [
                    {
                        "condition": "if-not-acked",
                        "notifyType": "default",
                        "delay": {"timeAmount": delay, "timeUnit": "minutes"},
                        "recipient": recipient,
                    }
                    for delay in (0, g.rng.choice([5, 10, 15]))
                ],
                "repeat": {
                    "waitInterval": g.rng.choice([0, 10]),
                    "count": 1,
                    "resetRecipientStates": False,
                    "closeAlertAfterAll": False,
                },
            }
        )
    return escalations


def _some(g: _Gen, items: list[Item], low: int, high: int) -> list[Item]:
    return g.rng.sample(items, min(len(items), g.rng.randint(low, high)))


def _incident_times(g: _Gen, count: int, span_ms: int) -> list[int]:
    return sorted(g.start_ms + g.rng.randrange(span_ms) for _ in range(count))


def _gen_incidents(g: _Gen, count: int, span_ms: int, ctx: _Context) -> list[Item]:
    incidents = []
    for n, created in enumerate(_incident_times(g, count, span_ms)):
        incident_id = g.uuid()
        status = g.rng.choice(["open", "resolved", "resolved", "closed"])
        if ctx.open_share is not None:
            status = "open" if _nth_of_share(n, ctx.open_share) else g.rng.choice(["resolved", "closed"])
        updated = created + g.rng.randrange(1, 3 * _DAY_MS)
        team = g.rng.choice(ctx.teams)
        user = g.rng.choice(ctx.users)
        incident: Item = {
            "id": incident_id,
            "description": g.rng.choice(["", "Customer-facing degradation", "summary"]),
            "impactedServices": [s["id"] for s in _some(g, ctx.services, 0, 3)],
            "tinyId": str(n + 1),
            "message": f"{g.rng.choice(_INCIDENT_WORDS)} in {_service_name(g, ctx)}",
            "status": status,
            "isSeen": g.rng.random() < 0.7,
            "tags": g.rng.sample(["customer", "sev", "db", "network"], g.rng.randint(0, 2)),
            "createdAt": g.iso(created),
            "updatedAt": g.iso(updated),
            "source": user["username"],
            "owner": user["id"],
            "priority": g.rng.choice(["P1", "P2", "P3", "P3", "P4", "P5"]),
            "ownerTeam": g.rng.choice(["", team["id"]]),
            "responders": [{"type": "team", "id": team["id"]}, {"type": "user", "id": user["id"]}],
            "extraProperties": {},
            "links": _links("incident", incident_id),
            "impactStartDate": g.iso(created),
            "actions": [],
        }
        if status != "open":
            incident["impactEndDate"] = g.iso(updated)
        incidents.append(incident)
    return incidents


@dataclass
class _Context:
    teams: list[Item]
    users: list[Item]
    services: list[Item]
    integrations: list[Item] = field(default_factory=list)
    open_share: float | None = None  # exact share of open alerts and incidents; None: the defaults


def _nth_of_share(n: int, share: float) -> bool:
    """Whether item n is one of an evenly spread `share` of all items (exactly round(N*share))."""
    return int((n + 1) * share + 1e-9) > int(n * share + 1e-9)


def _service_name(g: _Gen, ctx: _Context) -> str:
    return g.rng.choice(ctx.services)["name"] if ctx.services else "core"


def _alert_times(g: _Gen, count: int, span_ms: int) -> list[int]:
    """Ascending createdAt values over `span_ms`, with ~3% repeating the previous millisecond."""
    times = sorted(g.below(span_ms) for _ in range(count))
    for i in range(1, count):
        if g.rng.random() < 0.03:
            times[i] = times[i - 1]
    return [g.start_ms + t for t in times]


def _plan_incident_alerts(g: _Gen, incidents: list[Item], total: int) -> list[tuple[Item, bool]]:
    """(incident, alias-prefixed?) for each incident-created alert: 0-4 per incident, a few linked by hand."""
    budget = total // 2
    plan: list[tuple[Item, bool]] = []
    for incident in incidents:
        for _ in range(g.rng.choice([0, 1, 1, 2, 3, 4])):
            if len(plan) < budget:
                plan.append((incident, g.rng.random() < 0.9))
    return plan


def _alias(g: _Gen, n: int, incident: Item | None, prefixed: bool) -> str:
    if incident is not None and prefixed:
        return f"{incident['id']}_{g.uuid()}"
    roll = g.rng.random()
    if roll < 0.35:
        return g.pick(_PLAIN_ALIAS).format(n=n)
    if roll < 0.45:  # looks like an incident-created alias, but no incident has that id
        return f"{g.uuid()}_{g.uuid()}"
    if roll < 0.75:
        return g.uuid()
    return f"disk-full-web-{n}"


def _report(g: _Gen, created: int, status: str, acked: bool, user: str) -> tuple[Item, int]:
    report: Item = {}
    last = created
    if acked:
        ack = g.between(10_000, 3_600_000)
        report.update(ackTime=ack, acknowledgedBy=user)
        last = created + ack
    if status == "closed":
        close = g.between(60_000, 2 * _DAY_MS)
        report.update(closeTime=close, closedBy=user if g.rng.random() < 0.5 else "System")
        last = max(last, created + close)
    return report, last


def _gen_alert(g: _Gen, n: int, created: int, ctx: _Context, incident: Item | None, prefixed: bool) -> Item:
    chance = g.rng.random
    host = f"web-{g.between(1, 40):02d}"
    service = g.pick(ctx.services)["name"] if ctx.services else "core"
    status = "closed" if chance() < 0.6 else "open"
    if ctx.open_share is not None:
        status = "open" if _nth_of_share(n, ctx.open_share) else "closed"
    acked = status == "closed" or chance() < 0.3
    person = g.pick(ctx.users)
    user_id, user = person["id"], person["username"]
    report, last_change = _report(g, created, status, acked and chance() < 0.9, user)
    teams = g.few(ctx.teams, g.pick((0, 1, 1, 1, 2)))
    count = 1 if chance() < 0.7 else g.between(2, 51)
    last_occurred = created + (0 if count == 1 else g.between(60_000, _DAY_MS))
    snoozed = status == "open" and chance() < 0.05
    seen = acked or chance() < 0.5
    alert: Item = {
        "seen": seen,
        "id": f"{g.uuid()}-{created}",
        "tinyId": str(n + 1),
        "alias": _alias(g, n, incident, prefixed),
        "message": incident["message"] if incident else g.pick(_MESSAGES).format(host=host, svc=service),
        "status": status,
        "acknowledged": acked,
        "isSeen": seen,
        "tags": g.few(_ALERT_TAGS, g.below(4)),
        "snoozed": snoozed,
        "count": count,
        "lastOccurredAt": ms_to_iso(last_occurred),
        "createdAt": ms_to_iso(created),
        "updatedAt": ms_to_iso(max(last_change, last_occurred) + g.below(60_000)),
        "source": g.pick((user, "Datadog", "prometheus", host)),
        "owner": user if acked else "",
        "priority": g.pick(_PRIORITIES),
        "teams": [{"id": t["id"]} for t in teams],
        "responders": [{"type": "team", "id": t["id"]} for t in teams] or [{"type": "user", "id": user_id}],
        "integration": dict(g.pick(ctx.integrations)),
        "report": report,
        "ownerTeamId": teams[0]["id"] if teams else "",
        "description": f"{service} on {host} needs attention." if chance() < 0.5 else "",
        "details": {"host": host, "service": service} if chance() < 0.5 else {},
        "entity": host if chance() < 0.5 else "",
        "actions": ["Restart", "Page DBA"] if chance() < 0.3 else [],
    }
    if snoozed:
        alert["snoozedUntil"] = ms_to_iso(created + g.between(_DAY_MS, 30 * _DAY_MS))
    return alert


def _gen_alerts(
    g: _Gen, count: int, span_ms: int, ctx: _Context, incidents: list[Item]
) -> tuple[list[Item], dict[str, list[str]]]:
    plan = _plan_incident_alerts(g, incidents, count)
    times = _alert_times(g, count - len(plan), span_ms)
    slots: list[tuple[int, Item | None, bool]] = [(t, None, False) for t in times]
    for incident, prefixed in plan:
        created = iso_to_ms(incident["createdAt"]) + (g.between(1, 600_000) if g.rng.random() < 0.3 else 0)
        slots.append((created, incident, prefixed))
    slots.sort(key=lambda slot: slot[0])
    alerts, associated = [], dict[str, list[str]]()
    for n, (created, incident, prefixed) in enumerate(slots):
        alert = _gen_alert(g, n, created, ctx, incident, prefixed)
        alerts.append(alert)
        if incident is not None:
            associated.setdefault(incident["id"], []).append(alert["id"])
    return alerts, associated


def generate_account(
    *,
    alerts: int = 300,
    incidents: int = 60,
    services: int = 25,
    teams: int = 10,
    users: int | None = None,
    schedules: int | None = None,
    escalations: int | None = None,
    seed: int = 1,
    start: str = "2024-01-01T00:00:00Z",
    open_share: float | None = None,
) -> Account:
    """A deterministic, realistic account (same arguments → equal data). See the module docstring."""
    g = _Gen(seed, start)
    user_list = _gen_users(g, users if users is not None else max(5, teams * 3))
    team_list = _gen_teams(g, max(1, teams), user_list)
    service_list = _gen_services(g, services, team_list)
    schedule_list = _gen_schedules(g, team_list, user_list, schedules)
    integrations = [{"id": g.uuid(), "name": name, "type": kind} for name, kind in _INTEGRATION_KINDS]
    ctx = _Context(team_list, user_list, service_list, integrations, open_share)
    span_ms = 180 * _DAY_MS
    incident_list = _gen_incidents(g, incidents, span_ms, ctx)
    alert_list, associated = _gen_alerts(g, alerts, span_ms, ctx, incident_list)
    return Account(
        teams=team_list,
        users=user_list,
        services=service_list,
        incidents=incident_list,
        alerts=alert_list,
        schedules=schedule_list,
        oncalls=_gen_oncalls(g, schedule_list),
        escalations=_gen_escalations(g, team_list, schedule_list, escalations),
        associated_alerts=associated,
    )

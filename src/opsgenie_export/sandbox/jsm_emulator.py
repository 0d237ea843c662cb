"""Emulated Jira Service Management (JSM) Operations, Jira, Teams, Incidents and Services APIs.

One `JsmFace` serves the SAME `Account` the Opsgenie emulator serves, as a migrated site would
show it, on two real HTTP servers on 127.0.0.1 (ephemeral ports):

- `face.api_url` plays `https://api.atlassian.com` (the client's `--jsm-api-url`):
    GET  /jsm/ops/api/{cloudId}/v1/alerts                 ?query&offset&size&sort&order&from&to
    GET  /jsm/ops/api/{cloudId}/v1/alerts/{id}            (the full id; a tinyId is 404)
    GET  /jsm/ops/api/{cloudId}/v1/alerts/alias           ?alias
    GET  /jsm/ops/api/{cloudId}/v1/teams                  -> {platformTeams: [{teamId, teamName}]}
    GET  /jsm/ops/api/{cloudId}/v1/teams/{teamId}/escalations   ?offset&size
    GET  /jsm/ops/api/{cloudId}/v1/schedules              ?query&offset&size&expand=rotation
    GET  /jsm/ops/api/{cloudId}/v1/schedules/{id}
    GET  /jsm/ops/api/{cloudId}/v1/schedules/{id}/on-calls      ?flat&date
    GET  /jsm/incidents/cloudId/{cloudId}/v1/incident/{issueId}/alert   ?startKey&limit
    GET  /jsm/api/{cloudId}/v1/services/                  ?offset&size  (404 in `services_api=False`)
    POST /public/teams/v1/org/{orgId}/teams/{teamId}/members     {first, after}
- `face.site_url` plays `https://<site>.atlassian.net` (the client's `JSM_SITE_URL`):
    GET  /_edge/tenant_info                               -> {cloudId}   (no authentication)
    GET|POST /rest/api/3/search/jql                       jql, nextPageToken, maxResults, fields
    GET  /rest/api/3/field                                (names the "Affected services" field)
    GET  /rest/api/3/user/bulk                            ?accountId=…&startAt&maxResults
    GET  /rest/api/3/users/search                         ?startAt&maxResults
    GET  /rest/api/3/myself
    POST /gateway/api/public/teams/v1/org/{orgId}/teams/{teamId}/members   (same as above)

Authentication everywhere except tenant_info: HTTP Basic `email:api_token`; anything else is 401
(`{code, message}` on the Ops APIs, Jira's `{errorMessages, errors}` on the site). A scope in
`refused_scopes` answers 403 (or `scope_status`) with a message naming the scope.

Shapes follow the official OpenAPI (developer.atlassian.com/cloud/jira/service-desk-ops/swagger.v3.json,
public copy: rrvrs/jira-alerts-mcp spec/jsm-ops.v3.json): list bodies `{values, links: {next}}`
(alerts add `count`), single objects bare, errors `{errors: [{title, code}]}`, alert fields
`seen`, `integrationName`/`integrationType`, top-level `ackTime`/`closeTime`, `extraProperties`,
`lastOccuredAt` (sic), statuses open/acked/snoozed/resolved/closed; schedules `teamId` and
`size` 1-50 (default 25); escalations and alerts `size` 1-100 (default 20); the alert list
refuses offset + size >= 20,000 (the spec: "Sum of offset and size should be lower than 20K").
Jira: issues from `search/jql` carry only `id` unless `fields` asks for more, `nextPageToken`
paging (no `total`), timestamps like `2023-09-26T17:06:16.824+0000`, unbounded JQL refused.

Modes: `ids_changed=True` — "the migration changed the ids": every JSM id differs from the
Opsgenie id (deterministic, see `JsmFace.jsm_id`); `services_api=False` — the site has no
services API (404). `rate_limit`s give 429 with `Retry-After` and Jira's `X-RateLimit-*`.
`faults` is the same `FaultPlan` the Opsgenie emulator takes (one plan for both servers).

Unverified choices (not confirmed by an official source; change them here if reality differs):
- Ops timestamps are `…:47.958Z` with always three fraction digits (the spec's examples);
  Jira timestamps `…:47.958+0000`.
- Status: closed alerts are "closed" except every ~10th (by id hash) "resolved"; open alerts are
  "snoozed" when snoozed, "acked" when acknowledged, else "open". `owner` is the owner's display
  name. `ackTime`/`closeTime` are createdAt + Opsgenie's report durations.
- `links.next` is a path relative to the API root (`/v1/alerts?offset=…&size=…`), as in the
  spec's examples; absent on the last page. `count` is the total matching the query. Near the
  ceiling `next` is still given even when following it would pass 20,000 (and get 422).
- `from`/`to` on the alert list are epoch milliseconds bounding createdAt ([from, to)).
- Alert search `query` uses Opsgenie's syntax and field names, evaluated on the account.
- Ids with `ids_changed=False` ("ids preserved") equal Opsgenie's for every kind — including
  users (accountId = Opsgenie user id) and incidents (Jira issue id = Opsgenie incident id),
  which real Atlassian ids never would; with `ids_changed=True`: alerts `<uuid>-<createdAt ms>`,
  teams/schedules/escalations/rotations UUIDs, users `712020:<uuid>`, services `b:<base64 ARI>`,
  incidents numeric Jira issue ids. Issue keys are `<project>-<n>` in creation order either way.
- Incidents are Jira issues of type `incident_issue_type` (default "[System] Incident", the
  JSM ITSM work type) in project `OPS`; a few "[System] Service request" issues in project `SUP`
  exist too, so a JQL that does not select the type gets them. Status names Open / Resolved /
  Closed; priorities Highest/High/Medium/Low/Lowest for P1-P5; `description` in ADF; affected
  services in `customfield_10041` ("Affected services", `[{id}]`); responders in
  `customfield_10042` ("Responders", `[{id, type}]`).
- search/jql: `maxResults` default 50, at most 100 when fields beyond id/key are asked (5000
  otherwise), silently clamped; default order `created DESC`; `nextPageToken` is opaque and bound
  to the query (another jql with it → 400). JQL dates are UTC.
- Linked alerts: `{values: {alertIds: […]}, startKey}` pages of `limit` (default 50, max 100);
  `startKey` is null on the last page; unknown issue → 404.
- Team members: the Teams public API `{results: [{accountId}], pageInfo: {endCursor,
  hasNextPage}}`, `first` 1-50 (default 50); the orgId has no discovery from Basic auth, so the
  face publishes `org_id`.
- Services: `{services: [{id, name, description, tier, type, owner, responders: {users, teams},
  projects}], pagination: {totalCount, hasNext}}`, `size` 1-50 (default 20); tags not available.
- Users: `user/bulk` `maxResults` default 10, clamped to 100; unknown accountIds are left out;
  `emailAddress` present (a site's privacy settings may hide it: `hide_emails=True`).
- Schedules: a schedule without an owner team has no `teamId`; rotation participants carry
  `{type, id}` only; on-calls have no `_parent`.
- Scopes (OAuth names, enforced per endpoint when refused): alerts and linked alerts
  `read:ops-alert:jira-service-management`; teams, schedules, on-calls, escalations
  `read:ops-config:jira-service-management`; services `read:service-management:jira-service-management`
  (name unverified); search `read:jira-work`; users, myself `read:jira-user`; team members
  `read:team:atlassian`(unverified). The refusal body/status (403 naming the scope) is the brief's
  choice; one third-party client reports 401 "scope does not match" — set `scope_status=401`.
- 429 bodies: Ops `{errors: [{title: "Too many requests", code: "TOO_MANY_REQUESTS"}]}`, Jira
  `{errorMessages: ["Rate limit exceeded."]}`; `RateLimit-Reason: jira-burst-based` on the site.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

from opsgenie_export.sandbox.accounts import Account, Item, item_ms
from opsgenie_export.sandbox.jql import Field, JqlError, parse_jql, sort_rows
from opsgenie_export.sandbox.opsgenie_emulator import QueryError, parse_query
from opsgenie_export.sandbox.server import EmulatorServer, FaultPlan, LoggedRequest, Request, Response

DEFAULT_CLOUD_ID = "0f4c8a52-6d1e-4b7a-9c3d-2e5f7a9b1c04"
DEFAULT_ORG_ID = "c8d1e2f3-a4b5-4c6d-8e7f-90a1b2c3d4e5"
DEFAULT_EMAIL = "ops-admin@example.com"
DEFAULT_API_TOKEN = "sandbox-atlassian-api-token"
ALERT_CEILING = 20_000
UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
INCIDENT_TYPE = "[System] Incident"
SERVICE_REQUEST_TYPE = "[System] Service request"
AFFECTED_SERVICES_FIELD = "customfield_10041"
RESPONDERS_FIELD = "customfield_10042"

SCOPE_ALERT = "read:ops-alert:jira-service-management"
SCOPE_CONFIG = "read:ops-config:jira-service-management"
SCOPE_SERVICE = "read:service-management:jira-service-management"
SCOPE_JIRA_WORK = "read:jira-work"
SCOPE_JIRA_USER = "read:jira-user"
SCOPE_TEAMS = "read:team:atlassian"

ALERT_SORTS = ("createdAt", "insertedAt", "lastOccurredAt", "priority")
_PRIORITY_NAMES = {"P1": "Highest", "P2": "High", "P3": "Medium", "P4": "Low", "P5": "Lowest"}
_PRIORITY_IDS = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
_ID_NAMESPACE = uuid.UUID("6f1d3c2a-9b8e-4f7a-a6c5-d4e3f2a1b0c9")


# -- timestamps --------------------------------------------------------------------------------
def ms_to_ops(ms: int) -> str:
    """Epoch ms → `2024-01-05T07:06:47.958Z` (three fraction digits, always)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ms_to_jira(ms: int) -> str:
    """Epoch ms → Jira's `2023-09-26T17:06:16.824+0000`."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


def _ops_time(item: Item, name: str) -> str | None:
    ms = item_ms(item, name)
    return None if ms is None else ms_to_ops(ms)


def _hash_int(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


# -- errors ------------------------------------------------------------------------------------
class Problem(Exception):
    """Raised by a handler: the face turns it into its API's error body."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def _int_arg(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(422, f"Invalid value for {name}: {raw!r} is not an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise Problem(422, f"{name} must be {bound}")
    return value


# -- the face ----------------------------------------------------------------------------------
@dataclass
class _Limiter:
    """At most `limit` requests in any sliding `window` seconds."""

    limit: int
    window: float
    now: Callable[[], float]

    def __post_init__(self) -> None:
        self._times: list[float] = []
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, int, float]:
        """(admitted, remaining, seconds until a slot frees)."""
        with self._lock:
            now = self.now()
            self._times = [t for t in self._times if t > now - self.window]
            if len(self._times) >= self.limit:
                return False, 0, max(0.0, self._times[0] + self.window - now)
            self._times.append(now)
            wait = self._times[0] + self.window - now
            return True, self.limit - len(self._times), wait


class JsmFace:
    """The JSM/Jira side of a sandbox: two servers over one `Account`. See the module docstring."""

    def __init__(
        self,
        account: Account,
        *,
        email: str = DEFAULT_EMAIL,
        api_token: str = DEFAULT_API_TOKEN,
        cloud_id: str = DEFAULT_CLOUD_ID,
        org_id: str = DEFAULT_ORG_ID,
        ids_changed: bool = False,
        services_api: bool = True,
        incident_issue_type: str = INCIDENT_TYPE,
        project_key: str = "OPS",
        refused_scopes: Iterable[str] = (),
        scope_status: int = 403,
        api_rate_limit: tuple[int, float] | None = None,
        site_rate_limit: tuple[int, float] | None = None,
        hide_emails: bool = False,
        visible_team_ids: Iterable[str] | None = None,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        now: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.account = account
        self.email = email
        self.api_token = api_token
        self.cloud_id = cloud_id
        self.org_id = org_id
        self.ids_changed = ids_changed
        self.services_api = services_api
        self.incident_issue_type = incident_issue_type
        self.project_key = project_key
        self.refused_scopes = set(refused_scopes)
        self.scope_status = scope_status
        self.hide_emails = hide_emails
        self.visible_team_ids = set(visible_team_ids) if visible_team_ids is not None else None
        self.now = now or time.monotonic
        self.wall_clock = wall_clock or time.time
        self.faults = faults or FaultPlan()
        self.on_request: Callable[[Request], None] | None = None  # called for each authenticated request
        self.ids = IdMap(self)
        self.api = JsmApiEmulator(self, latency=latency, rate_limit=api_rate_limit)
        self.site = JiraSiteEmulator(self, latency=latency, rate_limit=site_rate_limit)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, tls: ssl.SSLContext | None = None) -> JsmFace:
        """Start both servers; a face already running is left as it is (so `with start_jsm_face(…)`
        does not start a second pair of servers)."""
        for server in (self.api, self.site):
            if server._httpd is None:
                server.start(tls)
        return self

    def stop(self) -> None:
        self.api.stop()
        self.site.stop()

    def __enter__(self) -> JsmFace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        return self.api.url

    @property
    def site_url(self) -> str:
        return self.site.url

    def env(self, *, with_cloud_id: bool = True) -> dict[str, str]:
        """The environment a `--source jsm` run needs against this face."""
        env = {
            "JSM_SITE_URL": self.site_url,
            "JSM_API_URL": self.api_url,
            "ATLASSIAN_EMAIL": self.email,
            "ATLASSIAN_API_TOKEN": self.api_token,
            "JSM_ORG_ID": self.org_id,
        }
        if with_cloud_id:
            env["JSM_CLOUD_ID"] = self.cloud_id
        return env

    # -- request log across both servers -----------------------------------------------------
    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        return self.api.requests(method, path) + self.site.requests(method, path)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.requests(method, path))

    def counts_by_route(self) -> Counter[str]:
        return self.api.counts_by_route() + self.site.counts_by_route()

    def reset_log(self) -> None:
        self.api.reset_log()
        self.site.reset_log()

    @property
    def throttled(self) -> int:
        return self.api.throttled + self.site.throttled

    # -- ids for tests -----------------------------------------------------------------------
    def jsm_id(self, kind: str, opsgenie_id: str) -> str:
        """The JSM id of an Opsgenie object: kind is alert, incident, team, schedule, escalation,
        rotation, user or service."""
        return self.ids.out(kind, opsgenie_id)

    def issue_key(self, incident_id: str) -> str:
        return self.ids.issue_key(incident_id)


class IdMap:
    """Opsgenie id ↔ JSM id per kind; identity unless the face's `ids_changed`."""

    def __init__(self, face: JsmFace) -> None:
        self.face = face
        self._back: dict[str, tuple[tuple[int, ...], dict[str, str]]] = {}
        self._keys: dict[str, int] = {}
        self._lock = threading.Lock()

    def out(self, kind: str, og_id: str) -> str:
        if not og_id or not self.face.ids_changed:
            return og_id
        derived = uuid.uuid5(_ID_NAMESPACE, f"{kind}:{og_id}")
        if kind == "alert":
            suffix = og_id.rsplit("-", 1)[-1] if og_id.count("-") >= 5 else str(_hash_int(og_id) % 10**13)
            return f"{derived}-{suffix}"
        if kind == "user":
            return f"712020:{derived}"
        if kind == "service":
            ari = f"ari:cloud:graph::service/{self.face.cloud_id}/{derived}"
            return "b:" + base64.b64encode(ari.encode()).decode()
        if kind == "incident":
            return str(10_000 + _hash_int(f"incident:{og_id}") % 10**11)
        return str(derived)

    def back(self, kind: str, jsm_id: str) -> str | None:
        """The Opsgenie id behind a JSM id (None when none has it)."""
        if not self.face.ids_changed:
            return jsm_id
        collection = _COLLECTION_OF[kind]
        account = self.face.account
        version = account.version(collection)
        with self._lock:
            cached = self._back.get(kind)
            if cached is None or cached[0] != version:
                items = getattr(account, collection)
                cached = (version, {self.out(kind, item["id"]): item["id"] for item in items})
                self._back[kind] = cached
        return cached[1].get(jsm_id)

    def issue_key(self, incident_id: str) -> str:
        """`OPS-<n>`: n numbers incidents in creation order, stable once given."""
        with self._lock:
            if incident_id not in self._keys:
                for incident in self.face.account.incidents:  # (createdAt, id) order
                    self._keys.setdefault(incident["id"], len(self._keys) + 1)
                self._keys.setdefault(incident_id, len(self._keys) + 1)
            return f"{self.face.project_key}-{self._keys[incident_id]}"


_COLLECTION_OF = {
    "alert": "alerts",
    "incident": "incidents",
    "team": "teams",
    "schedule": "schedules",
    "escalation": "escalations",
    "user": "users",
    "service": "services",
}


# -- common server behaviour -------------------------------------------------------------------
class _AtlassianServer(EmulatorServer):
    """Basic auth, scope refusal, rate limiting and error bodies shared by both faces."""

    def __init__(self, face: JsmFace, *, latency: float, rate_limit: tuple[int, float] | None) -> None:
        super().__init__(latency=latency, faults=face.faults)
        self.face = face
        self.limiter = _Limiter(rate_limit[0], rate_limit[1], face.now) if rate_limit else None
        self.throttled = 0
        self._scopes: list[tuple[re.Pattern[str], str]] = []
        self._open: list[re.Pattern[str]] = []
        self._register()

    def _register(self) -> None:
        raise NotImplementedError

    def route(self, method: str, pattern: str, handler: Callable[..., Response], scope: str | None) -> None:
        self.add_route(method, pattern, handler)
        compiled = re.compile(f"^{pattern}$")
        if scope is None:
            self._open.append(compiled)
        else:
            self._scopes.append((compiled, scope))

    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except Problem as problem:
            response = self.problem(problem.status, problem.message, problem.code)
            response.headers.update(problem.headers)
            return response

    def error_response(self, status: int, message: str) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 400: "BAD_REQUEST"}.get(status, "INTERNAL_SERVER_ERROR")
        return self.problem(status, message, code)

    def problem(self, status: int, message: str, code: str) -> Response:
        raise NotImplementedError

    def unauthorized(self) -> Response:
        raise NotImplementedError

    def before_dispatch(self, request: Request) -> Response | None:
        if any(pattern.match(request.path) for pattern in self._open):
            return None
        if not self._authenticated(request):
            return self.unauthorized()
        if self.face.on_request is not None:
            self.face.on_request(request)
        throttled = self._throttle(request)
        if throttled is not None:
            return throttled
        scope = next((s for pattern, s in self._scopes if pattern.match(request.path)), None)
        if scope is not None and scope in self.face.refused_scopes:
            message = f"The access token is not granted the scope {scope}, which {request.path} requires."
            return self.problem(self.face.scope_status, message, "FORBIDDEN")
        return None

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        email, sep, token = decoded.partition(":")
        return bool(sep) and email == self.face.email and token == self.face.api_token

    def _throttle(self, request: Request) -> Response | None:
        if self.limiter is None:
            return None
        admitted, remaining, wait = self.limiter.take()
        reset = datetime.fromtimestamp(self.face.wall_clock() + wait, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        if admitted:
            request.remaining = remaining  # type: ignore[attr-defined]
            return None
        with self._log_lock:
            self.throttled += 1
        response = self.too_many()
        response.headers.update(
            {
                "Retry-After": str(max(1, math.ceil(wait))),
                "X-RateLimit-Limit": str(self.limiter.limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset + "Z",
            }
        )
        return response

    def too_many(self) -> Response:
        raise NotImplementedError

    def paged_values(self, request: Request, values: list[Any], window: tuple[int, int], total: int) -> Response:
        """`{values, links: {next}}` with a `next` relative to the API root (absent on the last page)."""
        offset, size = window
        body: dict[str, Any] = {"values": values, "links": {}}
        if offset + size < total:
            params = [(k, v[-1]) for k, v in request.query.items() if k not in ("offset", "size")]
            params += [("offset", str(offset + size)), ("size", str(size))]
            body["links"]["next"] = f"{_api_relative(request.path)}?{urlencode(params)}"
        return Response(200, body)


def _api_relative(path: str) -> str:
    """`/jsm/ops/api/{cloudId}/v1/alerts` → `/v1/alerts` (links are relative to the API root)."""
    match = re.match(r"^/jsm/ops/api/[^/]+(/.*)$", path)
    return match.group(1) if match else path


# -- api.atlassian.com ---------------------------------------------------------------------------
class JsmApiEmulator(_AtlassianServer):
    name = "jsm-api-emulator"

    def _register(self) -> None:
        ops = r"/jsm/ops/api/(?P<cloud>[^/]+)/v1"
        ident = r"(?P<identifier>[^/]+)"
        self.route("GET", rf"{ops}/alerts/?", self._list_alerts, SCOPE_ALERT)
        self.route("GET", rf"{ops}/alerts/alias", self._get_alert_by_alias, SCOPE_ALERT)
        self.route("GET", rf"{ops}/alerts/{ident}", self._get_alert, SCOPE_ALERT)
        self.route("GET", rf"{ops}/teams/?", self._list_teams, SCOPE_CONFIG)
        self.route("GET", rf"{ops}/teams/{ident}/escalations/?", self._list_escalations, SCOPE_CONFIG)
        self.route("GET", rf"{ops}/schedules/?", self._list_schedules, SCOPE_CONFIG)
        self.route("GET", rf"{ops}/schedules/{ident}/on-calls/?", self._oncalls, SCOPE_CONFIG)
        self.route("GET", rf"{ops}/schedules/{ident}", self._get_schedule, SCOPE_CONFIG)
        incidents = r"/jsm/incidents/cloudId/(?P<cloud>[^/]+)/v1/incident/(?P<identifier>[^/]+)/alert"
        self.route("GET", incidents, self._linked_alerts, SCOPE_ALERT)
        self.route("GET", r"/jsm/api/(?P<cloud>[^/]+)/v1/services/?", self._list_services, SCOPE_SERVICE)
        members = r"/public/teams/v1/org/(?P<org>[^/]+)/teams/(?P<identifier>[^/]+)/members"
        self.route("POST", members, self._team_members, SCOPE_TEAMS)

    def problem(self, status: int, message: str, code: str) -> Response:
        return Response(status, {"errors": [{"title": message, "code": code}]})

    def unauthorized(self) -> Response:
        return Response(401, {"code": 401, "message": "Client must be authenticated to access this resource."})

    def too_many(self) -> Response:
        return self.problem(429, "Too many requests", "TOO_MANY_REQUESTS")

    def _cloud(self, cloud: str) -> None:
        if cloud != self.face.cloud_id:
            raise Problem(404, f"No site with cloud id {cloud!r}", "NOT_FOUND")

    # -- alerts --------------------------------------------------------------------------------
    def _list_alerts(self, request: Request, cloud: str) -> Response:
        self._cloud(cloud)
        offset = _int_arg(request, "offset", 0, 0, None)
        size = _int_arg(request, "size", 20, 1, 100)
        if offset + size >= ALERT_CEILING:
            raise Problem(
                422,
                f"More than {ALERT_CEILING} alerts cannot be retrieved: offset + size must be "
                f"lower than {ALERT_CEILING} (got {offset} + {size})",
            )
        sort = request.arg("sort") or "insertedAt"
        if sort not in ALERT_SORTS:
            raise Problem(422, f"Invalid sort {sort!r}: must be one of {', '.join(ALERT_SORTS)}")
        order = request.arg("order") or "desc"
        if order not in ("asc", "desc"):
            raise Problem(422, f"Invalid order {order!r}: must be asc or desc")
        bounds = (self._epoch_arg(request, "from"), self._epoch_arg(request, "to"))
        try:
            query = parse_query(request.arg("query"), "alert", self.face.account)
        except QueryError as exc:
            raise Problem(422, str(exc)) from None
        items, total = self._alert_page(query, bounds, sort, order, (offset, size))
        page = self.paged_values(request, [self._alert(a) for a in items], (offset, size), total).body
        return Response(200, {"values": page["values"], "count": total, "links": page["links"]})

    @staticmethod
    def _epoch_arg(request: Request, name: str) -> int | None:
        raw = request.arg(name)
        if raw is None or raw == "":
            return None
        if not re.fullmatch(r"\d+", raw):
            raise Problem(422, f"Invalid value for {name}: {raw!r} is not an integer")
        return int(raw)

    def _alert_page(
        self, query: Any, bounds: tuple[int | None, int | None], sort: str, order: str, window: tuple[int, int]
    ) -> tuple[list[Item], int]:
        account = self.face.account
        lows = [x for x in (query.bounds[0], bounds[0]) if x is not None]
        highs = [x for x in (query.bounds[1], bounds[1]) if x is not None]
        lo, hi = (max(lows) if lows else None), (min(highs) if highs else None)
        offset, size = window
        with account.lock:
            account.version("alerts")
            start, stop = account.alert_range(lo, hi)
            if query.pure_range and sort in ("createdAt", "insertedAt"):
                total = stop - start
                if order == "asc":
                    return account.alerts[start + offset : min(stop, start + offset + size)], total
                top = stop - offset
                return account.alerts[max(start, top - size) : max(start, top)][::-1], total
            matching = [a for a in account.alerts[start:stop] if query(a)]
        ordered = _sort_alerts(matching, sort, order)
        return ordered[offset : offset + size], len(ordered)

    def _get_alert(self, request: Request, cloud: str, identifier: str) -> Response:
        self._cloud(cloud)
        og_id = self.face.ids.back("alert", unquote(identifier))
        alert = self.face.account.find_alert(og_id) if og_id else None
        if alert is None:
            raise Problem(404, "Alert does not exist", "NOT_FOUND")
        return Response(200, self._alert(alert))

    def _get_alert_by_alias(self, request: Request, cloud: str) -> Response:
        self._cloud(cloud)
        alias = request.arg("alias")
        if not alias:
            raise Problem(422, "alias is required")
        alert = self.face.account.find_alert(alias, "alias")
        if alert is None:
            raise Problem(404, "Alert does not exist", "NOT_FOUND")
        return Response(200, self._alert(alert))

    def _alert(self, alert: Item) -> Item:
        return jsm_alert(self.face, alert)

    # -- teams, escalations, schedules -----------------------------------------------------------
    def _visible(self, team_id: str) -> bool:
        return self.face.visible_team_ids is None or team_id in self.face.visible_team_ids

    def _list_teams(self, request: Request, cloud: str) -> Response:
        self._cloud(cloud)
        ids = self.face.ids
        teams = [
            {"teamId": ids.out("team", t["id"]), "teamName": t["name"]}
            for t in self.face.account.teams
            if self._visible(t["id"])
        ]
        return Response(200, {"platformTeams": teams})

    def _team(self, identifier: str) -> Item:
        og_id = self.face.ids.back("team", unquote(identifier))
        team = self.face.account.find_team(og_id) if og_id else None
        if team is None:
            raise Problem(404, f"Team with id [{unquote(identifier)}] not found", "NOT_FOUND")
        return team

    def _list_escalations(self, request: Request, cloud: str, identifier: str) -> Response:
        self._cloud(cloud)
        team = self._team(identifier)
        offset = _int_arg(request, "offset", 0, 0, None)
        size = _int_arg(request, "size", 20, 1, 100)
        owned = (
            []
            if not self._visible(team["id"])
            else [e for e in self.face.account.escalations if (e.get("ownerTeam") or {}).get("id") == team["id"]]
        )
        values = [jsm_escalation(self.face, e) for e in owned[offset : offset + size]]
        return self.paged_values(request, values, (offset, size), len(owned))

    def _list_schedules(self, request: Request, cloud: str) -> Response:
        self._cloud(cloud)
        offset = _int_arg(request, "offset", 0, 0, None)
        size = _int_arg(request, "size", 25, 1, 50)
        expand = {part for value in request.query.get("expand", []) for part in value.split(",") if part}
        if expand - {"rotation"}:
            raise Problem(422, f"Invalid expand value(s): {', '.join(sorted(expand - {'rotation'}))}")
        name = (request.arg("query") or "").casefold()
        schedules = [s for s in self.face.account.schedules if _name_matches(s["name"], name)]
        values = [jsm_schedule(self.face, s, "rotation" in expand) for s in schedules[offset : offset + size]]
        response = self.paged_values(request, values, (offset, size), len(schedules))
        response.body["_expands"] = ["rotation"]
        return response

    def _schedule(self, identifier: str) -> Item:
        og_id = self.face.ids.back("schedule", unquote(identifier))
        schedule = self.face.account.find_schedule(og_id) if og_id else None
        if schedule is None:
            raise Problem(404, f"Schedule with id [{unquote(identifier)}] not found", "NOT_FOUND")
        return schedule

    def _get_schedule(self, request: Request, cloud: str, identifier: str) -> Response:
        self._cloud(cloud)
        return Response(200, jsm_schedule(self.face, self._schedule(identifier), True))

    def _oncalls(self, request: Request, cloud: str, identifier: str) -> Response:
        self._cloud(cloud)
        schedule = self._schedule(identifier)
        flat = (request.arg("flat") or "false").lower()
        if flat not in ("true", "false"):
            raise Problem(422, f"Invalid value for flat: {request.arg('flat')!r}")
        date = request.arg("date")
        if date:
            try:
                datetime.fromisoformat(date.replace("Z", "+00:00"))
            except ValueError:
                raise Problem(422, f"Invalid value for date: {date!r} is not an ISO-8601 date-time") from None
        account_ids = []
        for username in self.face.account.oncalls.get(schedule["id"], []):
            user = self.face.account.find_user(username)
            if user is not None:
                account_ids.append(self.face.ids.out("user", user["id"]))
        if flat == "true":
            return Response(200, {"onCallUsers": account_ids})
        return Response(200, {"onCallParticipants": [{"id": a, "type": "user"} for a in account_ids]})

    # -- incidents (linked alerts), services, team members ----------------------------------------
    def _linked_alerts(self, request: Request, cloud: str, identifier: str) -> Response:
        self._cloud(cloud)
        og_id = self.face.ids.back("incident", unquote(identifier))
        if og_id is None or self.face.account.find_incident(og_id) is None:
            raise Problem(404, f"Incident {unquote(identifier)} not found", "NOT_FOUND")
        limit = _int_arg(request, "limit", 50, 1, 100)
        start = request.arg("startKey")
        with self.face.account.lock:
            alert_ids = [self.face.ids.out("alert", a) for a in self.face.account.associated_alerts.get(og_id, [])]
        position = 0
        if start:
            try:
                position = alert_ids.index(start)
            except ValueError:
                raise Problem(400, f"Invalid startKey {start!r}") from None
        page = alert_ids[position : position + limit]
        following = alert_ids[position + limit] if position + limit < len(alert_ids) else None
        return Response(200, {"values": {"alertIds": page}, "startKey": following})

    def _list_services(self, request: Request, cloud: str) -> Response:
        if not self.face.services_api:
            return Response(404, {"code": 404, "message": "Not Found"})
        self._cloud(cloud)
        offset = _int_arg(request, "offset", 0, 0, None)
        size = _int_arg(request, "size", 20, 1, 50)
        services = self.face.account.services
        values = [jsm_service(self.face, s) for s in services[offset : offset + size]]
        pagination = {"totalCount": len(services), "hasNext": offset + size < len(services)}
        return Response(200, {"services": values, "pagination": pagination})

    def _team_members(self, request: Request, org: str, identifier: str) -> Response:
        return team_members(self.face, request, org, identifier, self.problem)


def _name_matches(name: str, wanted: str) -> bool:
    if not wanted:
        return True
    if wanted.endswith("*"):
        return name.casefold().startswith(wanted[:-1])
    return name.casefold() == wanted


def _sort_alerts(items: list[Item], sort: str, order: str) -> list[Item]:
    def key(alert: Item) -> tuple[Any, str]:
        if sort == "priority":
            value: Any = alert.get("priority") or "P9"
        elif sort == "lastOccurredAt":
            value = item_ms(alert, "lastOccurredAt") or 0
        else:
            value = item_ms(alert) or 0
        return value, alert["id"]

    ordered = sorted(items, key=key)
    if order == "desc":
        ordered.reverse()
    return ordered


def team_members(
    face: JsmFace, request: Request, org: str, identifier: str, problem: Callable[[int, str, str], Response]
) -> Response:
    """POST …/teams/v1/org/{orgId}/teams/{teamId}/members: `{first, after}` → `{results, pageInfo}`."""
    if org != face.org_id:
        return problem(404, f"Organization {org!r} not found", "NOT_FOUND")
    og_id = face.ids.back("team", unquote(identifier))
    team = face.account.find_team(og_id) if og_id else None
    if team is None:
        return problem(404, f"Team {unquote(identifier)!r} not found", "NOT_FOUND")
    try:
        body = request.json() or {}
    except json.JSONDecodeError:
        return problem(400, "Malformed JSON body", "BAD_REQUEST")
    first = body.get("first", 50)
    if not isinstance(first, int) or not 1 <= first <= 50:
        return problem(400, "first must be an integer between 1 and 50", "BAD_REQUEST")
    members = [face.ids.out("user", m["user"]["id"]) for m in team.get("members", [])]
    after = body.get("after")
    position = 0
    if after:
        try:
            position = int(base64.b64decode(after).decode())
        except (ValueError, UnicodeDecodeError):
            return problem(400, "Invalid cursor", "BAD_REQUEST")
    page = members[position : position + first]
    end = position + len(page)
    cursor = base64.b64encode(str(end).encode()).decode() if page else None
    return Response(
        200,
        {
            "results": [{"accountId": a} for a in page],
            "pageInfo": {"endCursor": cursor, "hasNextPage": end < len(members)},
        },
    )


# -- the site: <site>.atlassian.net ------------------------------------------------------------
class JiraSiteEmulator(_AtlassianServer):
    name = "jira-site-emulator"

    def _register(self) -> None:
        self._issues_cache: tuple[tuple[int, ...], list[dict[str, Any]]] | None = None
        self._issues_lock = threading.Lock()
        self.route("GET", r"/_edge/tenant_info", self._tenant_info, None)
        self.route("GET", r"/rest/api/3/search/jql", self._search, SCOPE_JIRA_WORK)
        self.route("POST", r"/rest/api/3/search/jql", self._search, SCOPE_JIRA_WORK)
        self.route("GET", r"/rest/api/3/search", self._search_removed, SCOPE_JIRA_WORK)
        self.route("POST", r"/rest/api/3/search", self._search_removed, SCOPE_JIRA_WORK)
        self.route("GET", r"/rest/api/3/field", self._fields, SCOPE_JIRA_WORK)
        self.route("GET", r"/rest/api/3/user/bulk", self._user_bulk, SCOPE_JIRA_USER)
        self.route("GET", r"/rest/api/3/users/search", self._users_search, SCOPE_JIRA_USER)
        self.route("GET", r"/rest/api/3/myself", self._myself, SCOPE_JIRA_USER)
        members = r"/gateway/api/public/teams/v1/org/(?P<org>[^/]+)/teams/(?P<identifier>[^/]+)/members"
        self.route("POST", members, self._team_members, SCOPE_TEAMS)

    def problem(self, status: int, message: str, code: str) -> Response:
        return Response(status, {"errorMessages": [message], "errors": {}})

    def unauthorized(self) -> Response:
        return self.problem(401, "Client must be authenticated to access this resource.", "UNAUTHORIZED")

    def too_many(self) -> Response:
        response = self.problem(429, "Rate limit exceeded.", "TOO_MANY_REQUESTS")
        response.headers["RateLimit-Reason"] = "jira-burst-based"
        return response

    def decorate(self, request: Request, response: Response) -> None:
        remaining = getattr(request, "remaining", None)
        if remaining is not None and response.status < 400 and self.limiter is not None:
            response.headers.setdefault("X-RateLimit-Limit", str(self.limiter.limit))
            if remaining < self.limiter.limit // 5:
                response.headers.setdefault("X-RateLimit-NearLimit", "true")

    def _tenant_info(self, request: Request) -> Response:
        return Response(200, {"cloudId": self.face.cloud_id})

    def _search_removed(self, request: Request) -> Response:
        message = (
            "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
            "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
        )
        return self.problem(410, message, "GONE")

    # -- search --------------------------------------------------------------------------------
    def _search(self, request: Request) -> Response:
        params = self._search_params(request)
        jql_text = params.get("jql") or ""
        try:
            jql = parse_jql(jql_text, self._jql_fields(), int(self.face.wall_clock() * 1000))
        except JqlError as exc:
            raise Problem(400, str(exc)) from None
        if not jql.bounded:
            raise Problem(
                400, "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
            )
        fields = _field_list(params.get("fields"))
        rich = bool(fields - {"id", "key"})
        max_results = _positive(params.get("maxResults"), 50, "maxResults")
        max_results = min(max_results, 100 if rich else 5000)
        fingerprint = hashlib.sha256(f"{jql_text}\n{sorted(fields)}".encode()).hexdigest()[:16]
        offset = _decode_token(params.get("nextPageToken"), fingerprint)
        matching = [issue for issue in self._issues() if jql(issue["_row"])]
        ordered = sort_rows(matching, jql.order or [("created", True)], row_of=lambda issue: issue["_row"])
        page = ordered[offset : offset + max_results]
        body: dict[str, Any] = {"issues": [_project_issue(issue, fields) for issue in page]}
        if offset + max_results < len(ordered):
            body["nextPageToken"] = _encode_token(offset + max_results, fingerprint)
            body["isLast"] = False
        else:
            body["isLast"] = True
        return Response(200, body)

    @staticmethod
    def _search_params(request: Request) -> dict[str, Any]:
        if request.method == "POST":
            body = request.json()
            if not isinstance(body, dict):
                raise Problem(400, "The request body must be a JSON object.")
            return body
        params: dict[str, Any] = {name: values[-1] for name, values in request.query.items()}
        if "fields" in request.query:
            params["fields"] = [f for value in request.query["fields"] for f in value.split(",")]
        return params

    def _jql_fields(self) -> dict[str, Field]:
        types = frozenset(t.casefold() for t in (self.face.incident_issue_type, SERVICE_REQUEST_TYPE, "10004", "10010"))
        projects = frozenset(
            p.casefold() for p in (self.face.project_key, "SUP", "Operations", "Support", "10000", "10001")
        )
        statuses = frozenset(
            s.casefold() for s in ("Open", "Work in progress", "Resolved", "Closed", "Waiting for support")
        )
        priorities = frozenset(p.casefold() for p in _PRIORITY_IDS)
        fields = {
            "project": Field("project", "keyword", projects),
            "issuetype": Field("issuetype", "keyword", types),
            "type": Field("issuetype", "keyword", types),
            "status": Field("status", "keyword", statuses),
            "priority": Field("priority", "keyword", priorities),
            "created": Field("created", "date"),
            "createddate": Field("created", "date"),
            "updated": Field("updated", "date"),
            "updateddate": Field("updated", "date"),
            "resolutiondate": Field("resolutiondate", "date"),
            "resolved": Field("resolutiondate", "date"),
            "labels": Field("labels", "keyword"),
            "key": Field("key", "keyword"),
            "issuekey": Field("key", "keyword"),
            "id": Field("id", "keyword"),
            "summary": Field("summary", "text"),
            "text": Field("summary", "text"),
        }
        return fields

    def _issues(self) -> list[dict[str, Any]]:
        """Every work item of the site, rebuilt only when the account's incidents, users or services change."""
        face = self.face
        version = face.account.version("incidents", "users", "services")
        with self._issues_lock:
            if self._issues_cache is not None and self._issues_cache[0] == version:
                return self._issues_cache[1]
            issues = [jira_incident(face, incident, self.url) for incident in list(face.account.incidents)]
            issues += [_service_request(face, n, self.url) for n in range(_service_request_count(face.account))]
            self._issues_cache = (version, issues)
            return issues

    def _fields(self, request: Request) -> Response:
        return Response(
            200,
            [
                {"id": "summary", "key": "summary", "name": "Summary", "custom": False, "schema": {"type": "string"}},
                {"id": "created", "key": "created", "name": "Created", "custom": False, "schema": {"type": "datetime"}},
                {
                    "id": AFFECTED_SERVICES_FIELD,
                    "key": AFFECTED_SERVICES_FIELD,
                    "name": "Affected services",
                    "custom": True,
                    "schema": {
                        "type": "array",
                        "items": "service-entity-field",
                        "custom": "com.atlassian.jira.plugins.service-entity:service-entity-field-cftype",
                    },
                },
                {
                    "id": RESPONDERS_FIELD,
                    "key": RESPONDERS_FIELD,
                    "name": "Responders",
                    "custom": True,
                    "schema": {
                        "type": "array",
                        "items": "responder",
                        "custom": "com.atlassian.jira.plugins.jira-servicedesk:responders",
                    },
                },
            ],
        )

    # -- users ---------------------------------------------------------------------------------
    def _user_bulk(self, request: Request) -> Response:
        wanted = request.query.get("accountId", [])
        if not wanted:
            raise Problem(400, "The accountId parameter is required.")
        start = _int_arg_jira(request, "startAt", 0)
        max_results = min(_int_arg_jira(request, "maxResults", 10) or 10, 100)
        by_account = {self.face.ids.out("user", u["id"]): u for u in self.face.account.users}
        found = [by_account[a] for a in dict.fromkeys(wanted) if a in by_account]
        return self._user_page(request, found, start, max_results)

    def _users_search(self, request: Request) -> Response:
        start = _int_arg_jira(request, "startAt", 0)
        max_results = min(_int_arg_jira(request, "maxResults", 50) or 50, 1000)
        users = self.face.account.users[start : start + max_results]
        return Response(200, [jira_user(self.face, u, self.url) for u in users])

    def _user_page(self, request: Request, users: list[Item], start: int, max_results: int) -> Response:
        page = users[start : start + max_results]
        body: dict[str, Any] = {
            "self": f"{self.url}{request.url}",
            "maxResults": max_results,
            "startAt": start,
            "total": len(users),
            "isLast": start + max_results >= len(users),
            "values": [jira_user(self.face, u, self.url) for u in page],
        }
        if not body["isLast"]:
            params = [(k, v) for k, values in request.query.items() if k not in ("startAt",) for v in values]
            body["nextPage"] = f"{self.url}{request.path}?{urlencode([*params, ('startAt', str(start + max_results))])}"
        return Response(200, body)

    def _myself(self, request: Request) -> Response:
        user = next((u for u in self.face.account.users if u.get("username") == self.face.email), None)
        if user is None:
            return Response(
                200,
                {
                    "accountId": "712020:sandbox-admin",
                    "emailAddress": self.face.email,
                    "displayName": "Sandbox Admin",
                    "active": True,
                    "accountType": "atlassian",
                },
            )
        return Response(200, jira_user(self.face, user, self.url))

    def _team_members(self, request: Request, org: str, identifier: str) -> Response:
        return team_members(self.face, request, org, identifier, self.problem)


def _int_arg_jira(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d+", raw):
        raise Problem(400, f"The '{name}' parameter must be a non-negative integer.")
    return int(raw)


def _positive(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Problem(400, f"The '{name}' parameter must be an integer.") from None
    if number < 0:
        raise Problem(400, f"The '{name}' parameter must be a non-negative integer.")
    return number or default


def _field_list(value: Any) -> set[str]:
    if value is None:
        return {"id"}
    names = value if isinstance(value, list) else str(value).split(",")
    return {str(n).strip() for n in names if str(n).strip()} or {"id"}


def _encode_token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": fingerprint}).encode()).decode().rstrip("=")


def _decode_token(token: Any, fingerprint: str) -> int:
    if token in (None, ""):
        return 0
    try:
        text = str(token)
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if data["q"] != fingerprint:
            raise ValueError("token of another query")
        return int(data["o"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise Problem(400, "The provided nextPageToken is invalid or belongs to a different query.") from None


# -- views: the account as JSM shows it --------------------------------------------------------
def jsm_status(alert: Item) -> str:
    if alert.get("status") == "closed":
        return "resolved" if _hash_int(f"status:{alert['id']}") % 10 == 0 else "closed"
    if alert.get("snoozed"):
        return "snoozed"
    if alert.get("acknowledged"):
        return "acked"
    return "open"


def _display_name(face: JsmFace, username: str) -> str:
    if not username:
        return ""
    user = face.account.find_user(username)
    return user.get("fullName", username) if user else username


def _responders(face: JsmFace, responders: Iterable[Item]) -> list[Item]:
    out = []
    for responder in responders:
        kind = responder.get("type", "")
        mapped = face.ids.out(kind, responder.get("id", "")) if kind in _COLLECTION_OF else responder.get("id", "")
        out.append({"id": mapped, "type": kind})
    return out


def jsm_alert(face: JsmFace, alert: Item) -> Item:
    """AlertResponse of the spec for an Opsgenie alert."""
    created = item_ms(alert) or 0
    report = alert.get("report") or {}
    integration = alert.get("integration") or {}
    view: Item = {
        "id": face.ids.out("alert", alert["id"]),
        "tinyId": alert.get("tinyId", ""),
        "createdAt": ms_to_ops(created),
        "updatedAt": _ops_time(alert, "updatedAt"),
        "message": alert.get("message", ""),
        "entity": alert.get("entity", ""),
        "source": alert.get("source", ""),
        "status": jsm_status(alert),
        "alias": alert.get("alias", ""),
        "tags": list(alert.get("tags") or []),
        "extraProperties": {str(k): str(v) for k, v in (alert.get("details") or {}).items()},
        "description": alert.get("description", ""),
        "acknowledged": bool(alert.get("acknowledged")),
        "count": alert.get("count", 1),
        "owner": _display_name(face, alert.get("owner", "")),
        "snoozed": bool(alert.get("snoozed")),
        "lastOccuredAt": _ops_time(alert, "lastOccurredAt"),
        "integrationType": integration.get("type", ""),
        "integrationName": integration.get("name", ""),
        "priority": alert.get("priority", "P3"),
        "responders": _responders(face, alert.get("responders") or []),
        "actions": list(alert.get("actions") or []),
        "seen": bool(alert.get("isSeen", alert.get("seen"))),
    }
    if isinstance(report.get("ackTime"), int):
        view["ackTime"] = ms_to_ops(created + report["ackTime"])
    if isinstance(report.get("closeTime"), int):
        view["closeTime"] = ms_to_ops(created + report["closeTime"])
    if alert.get("snoozedUntil"):
        view["snoozedUntil"] = _ops_time(alert, "snoozedUntil")
    return view


def jsm_escalation(face: JsmFace, escalation: Item) -> Item:
    rules = []
    for rule in escalation.get("rules") or []:
        delay = rule.get("delay") or {}
        minutes = int(delay.get("timeAmount", 0)) * (60 if delay.get("timeUnit") == "hours" else 1)
        recipient = rule.get("recipient") or {}
        kind = recipient.get("type", "")
        rules.append(
            {
                "condition": rule.get("condition", "if-not-acked"),
                "notifyType": rule.get("notifyType", "default"),
                "delay": minutes,
                "recipient": {"id": face.ids.out(kind, recipient.get("id", "")), "type": kind},
            }
        )
    return {
        "id": face.ids.out("escalation", escalation["id"]),
        "name": escalation.get("name", ""),
        "description": escalation.get("description", ""),
        "rules": rules,
        "enabled": True,
        "repeat": dict(escalation.get("repeat") or {}),
    }


def jsm_schedule(face: JsmFace, schedule: Item, with_rotations: bool) -> Item:
    view: Item = {
        "id": face.ids.out("schedule", schedule["id"]),
        "name": schedule.get("name", ""),
        "description": schedule.get("description", ""),
        "timezone": schedule.get("timezone", "Etc/UTC"),
        "enabled": bool(schedule.get("enabled", True)),
    }
    owner = (schedule.get("ownerTeam") or {}).get("id")
    if owner:
        view["teamId"] = face.ids.out("team", owner)
    if with_rotations:
        view["rotations"] = [_rotation(face, r) for r in schedule.get("rotations") or []]
    return view


def _rotation(face: JsmFace, rotation: Item) -> Item:
    view = {k: v for k, v in rotation.items() if k not in ("participants", "id")}
    view["id"] = face.ids.out("rotation", rotation.get("id", ""))
    view["participants"] = _responders(face, rotation.get("participants") or [])
    return view


def jsm_service(face: JsmFace, service: Item) -> Item:
    team = service.get("teamId")
    team_id = face.ids.out("team", team) if team else None
    return {
        "id": face.ids.out("service", service["id"]),
        "name": service.get("name", ""),
        "description": service.get("description", ""),
        "tier": 1 + _hash_int(f"tier:{service['id']}") % 4,
        "type": {"key": "APPLICATIONS"},
        "owner": {"teamId": team_id} if team_id else None,
        "responders": {"users": [], "teams": [team_id] if team_id else []},
        "projects": [],
    }


def jira_user(face: JsmFace, user: Item, site: str) -> Item:
    account_id = face.ids.out("user", user["id"])
    view: Item = {
        "self": f"{site}/rest/api/3/user?accountId={account_id}",
        "accountId": account_id,
        "accountType": "atlassian",
        "avatarUrls": {"48x48": f"https://avatar.example.invalid/{account_id}.png"},
        "displayName": user.get("fullName", user.get("username", "")),
        "active": not user.get("blocked", False),
        "timeZone": user.get("timeZone", "Etc/UTC"),
        "locale": user.get("locale", "en_US"),
    }
    if not face.hide_emails:
        view["emailAddress"] = user.get("username", "")
    return view


_STATUS = {
    "open": ("Open", "new", "To Do"),
    "resolved": ("Resolved", "done", "Done"),
    "closed": ("Closed", "done", "Done"),
}


def _adf(text: str) -> Item | None:
    if not text:
        return None
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    return {"type": "doc", "version": 1, "content": [paragraph]}


def jira_incident(face: JsmFace, incident: Item, site: str) -> dict[str, Any]:
    """A Jira issue of the incident work type; `_row` holds the JQL-visible values."""
    issue_id = face.ids.out("incident", incident["id"])
    key = face.ids.issue_key(incident["id"])
    created = item_ms(incident) or 0
    updated = item_ms(incident, "updatedAt") or created
    status_name, category, category_name = _STATUS.get(incident.get("status", "open"), _STATUS["open"])
    resolved = item_ms(incident, "impactEndDate") if category == "done" else None
    priority = _PRIORITY_NAMES.get(incident.get("priority", "P3"), "Medium")
    owner = face.account.find_user(incident.get("owner", "")) if incident.get("owner") else None
    reporter = face.account.find_user(incident.get("source", "")) if incident.get("source") else None
    fields: Item = {
        "summary": incident.get("message", ""),
        "description": _adf(incident.get("description", "")),
        "issuetype": {"id": "10004", "name": face.incident_issue_type, "subtask": False, "hierarchyLevel": 0},
        "project": {"id": "10000", "key": face.project_key, "name": "Operations"},
        "status": {"name": status_name, "statusCategory": {"key": category, "name": category_name}},
        "priority": {"id": _PRIORITY_IDS[priority], "name": priority},
        "labels": list(incident.get("tags") or []),
        "created": ms_to_jira(created),
        "updated": ms_to_jira(updated),
        "resolutiondate": ms_to_jira(resolved) if resolved else None,
        "assignee": jira_user(face, owner, site) if owner else None,
        "reporter": jira_user(face, reporter, site) if reporter else None,
        AFFECTED_SERVICES_FIELD: [{"id": face.ids.out("service", s)} for s in incident.get("impactedServices") or []],
        RESPONDERS_FIELD: _responders(face, incident.get("responders") or []),
    }
    row = {
        "project": [face.project_key, "Operations", "10000"],
        "issuetype": [face.incident_issue_type, "10004"],
        "status": status_name,
        "priority": priority,
        "created": created,
        "updated": updated,
        "resolutiondate": resolved,
        "labels": fields["labels"],
        "key": key,
        "id": issue_id,
        "summary": fields["summary"],
    }
    return {"id": issue_id, "key": key, "self": f"{site}/rest/api/3/issue/{issue_id}", "fields": fields, "_row": row}


def _service_request_count(account: Account) -> int:
    return 2 + len(account.incidents) // 5 if account.incidents else 0


def _service_request(face: JsmFace, n: int, site: str) -> dict[str, Any]:
    """Non-incident work items on the same site: a JQL that does not select the type finds them."""
    created = (item_ms(face.account.incidents[n % len(face.account.incidents)]) or 0) + 1
    issue_id, key = str(90_000 + n), f"SUP-{n + 1}"
    fields = {
        "summary": f"Access request {n + 1}",
        "description": None,
        "issuetype": {"id": "10010", "name": SERVICE_REQUEST_TYPE, "subtask": False, "hierarchyLevel": 0},
        "project": {"id": "10001", "key": "SUP", "name": "Support"},
        "status": {"name": "Waiting for support", "statusCategory": {"key": "indeterminate", "name": "In Progress"}},
        "priority": {"id": "3", "name": "Medium"},
        "labels": [],
        "created": ms_to_jira(created),
        "updated": ms_to_jira(created),
        "resolutiondate": None,
        "assignee": None,
        "reporter": None,
        AFFECTED_SERVICES_FIELD: [],
        RESPONDERS_FIELD: [],
    }
    row = {
        "project": ["SUP", "Support", "10001"],
        "issuetype": [SERVICE_REQUEST_TYPE, "10010"],
        "status": "Waiting for support",
        "priority": "Medium",
        "created": created,
        "updated": created,
        "resolutiondate": None,
        "labels": [],
        "key": key,
        "id": issue_id,
        "summary": fields["summary"],
    }
    return {"id": issue_id, "key": key, "self": f"{site}/rest/api/3/issue/{issue_id}", "fields": fields, "_row": row}


def _project_issue(issue: dict[str, Any], fields: set[str]) -> Item:
    """The issue as search/jql returns it for `fields` (`id` alone by default)."""
    out: Item = {"id": issue["id"]}
    if fields - {"id"}:
        out["key"] = issue["key"]
        out["self"] = issue["self"]
    everything = "*all" in fields or "*navigable" in fields
    wanted = {f for f in fields if not f.startswith("-")} - {"id", "key", "*all", "*navigable"}
    excluded = {f[1:] for f in fields if f.startswith("-")}
    chosen = {
        name: value
        for name, value in issue["fields"].items()
        if (everything or name in wanted) and name not in excluded
    }
    if chosen or wanted:
        out["fields"] = chosen
    return out


@contextmanager
def running_jsm(account: Account, **options: Any) -> Iterator[JsmFace]:
    """A started `JsmFace` for the duration of the block."""
    face = JsmFace(account, **options).start()
    try:
        yield face
    finally:
        face.stop()


__all__ = [
    "ALERT_CEILING",
    "DEFAULT_API_TOKEN",
    "DEFAULT_CLOUD_ID",
    "DEFAULT_EMAIL",
    "DEFAULT_ORG_ID",
    "INCIDENT_TYPE",
    "JiraSiteEmulator",
    "JsmApiEmulator",
    "JsmFace",
    "jira_incident",
    "jsm_alert",
    "ms_to_jira",
    "ms_to_ops",
    "running_jsm",
]

"""Jira Service Management Operations behind the source seam (sources.py).

Where each kind comes from (docs/jsm-operations.md), every item shaped by shape.py:

| kind | requests |
|---|---|
| alert | `GET /jsm/ops/api/{cloudId}/v1/alerts` in ascending createdAt windows: the pager of |
|       | Opsgenie's alerts (`size`, `values`, `links.next`, offset + size < 20,000) |
| incident | Jira `GET /rest/api/3/search/jql` with the incident JQL, `nextPageToken` paging; the |
|          | selector's Opsgenie query is applied to the shaped incidents (jsm/query.py) |
| team | `GET …/v1/teams` (one response); members from the Teams API (needs the org id) |
| schedule, schedule-oncall | `GET …/v1/schedules?expand=rotation`, offset paging (size 50) |
| escalation | `GET …/v1/teams/{teamId}/escalations` for each team |
| service | `GET /jsm/api/{cloudId}/v1/services/` (where a site has no services API, the kind fails) |
| user | Jira `GET /rest/api/3/user/bulk` for the accountIds teams, schedules and escalations name |

Lookups: on-calls one `GET …/schedules/{id}/on-calls?flat=true` per schedule; an incident's
alerts from the Incidents API's linked alerts; user names and e-mails from `user/bulk`, 100
accountIds a call, each asked once per run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from opsgenie_export.errors import ApiError, ConfigError
from opsgenie_export.jsm import shape
from opsgenie_export.jsm.client import Expecting, JsmClient
from opsgenie_export.jsm.query import incident_filter
from opsgenie_export.opsgenie.links import LinkCache
from opsgenie_export.opsgenie.source import KindEndpoint, Listing, PageFormat

ALERT_CEILING = 20_000  # offset + size must stay under it
ALERT_PAGES = PageFormat("values", "size", 100, ALERT_CEILING - 1, "links")
SCHEDULE_PAGES = PageFormat("values", "size", 50, 10**9, "links")
ESCALATION_PAGES = PageFormat("values", "size", 100, 10**9, "links")
SEARCH_PAGE = 100
USERS_PER_CALL = 100
LINKED_ALERTS_PAGE = 100
MEMBERS_PAGE = 50
SERVICES_PAGE = 50
INCIDENT_FIELD_NAMES = {"services": "affected services", "responders": "responders"}
INCIDENT_FIELDS = "summary,description,status,priority,labels,created,updated,resolutiondate,issuetype,project"


class StaticPages:
    """Pages already fetched (or fetched on iteration by `produce`), as the seam's Pages."""

    def __init__(self, produce: Callable[[], Iterator[list[dict[str, Any]]]]) -> None:
        self._produce = produce
        self.truncated = False
        self.truncation_reason = ""

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        yield from self._produce()


class ShapedPages:
    """An offset or windowed listing whose pages are shaped on the way out."""

    def __init__(self, listing: Listing, shape_page: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        self._listing = listing
        self._shape_page = shape_page

    @property
    def truncated(self) -> bool:
        return self._listing.truncated

    @property
    def truncation_reason(self) -> str:
        return self._listing.truncation_reason

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        for page in self._listing:
            yield self._shape_page(page)


class _Users:
    """accountId → Jira user, fetched 100 at a time with `user/bulk`, each asked once per run."""

    def __init__(self, client: JsmClient, site_url: str) -> None:
        self._client = client
        self._url = f"{site_url}/rest/api/3/user/bulk"
        self._known: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def ensure(self, account_ids: Iterable[str]) -> None:
        with self._lock:
            missing = list(dict.fromkeys(a for a in account_ids if a and a not in self._known))
            for start in range(0, len(missing), USERS_PER_CALL):
                chunk = missing[start : start + USERS_PER_CALL]
                for found in self._fetch(chunk):
                    self._known[str(found.get("accountId"))] = found
                for account_id in chunk:
                    self._known.setdefault(account_id, None)  # unknown to the site: not asked again

    def _fetch(self, chunk: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        start_at = 0
        while True:
            params = [("accountId", a) for a in chunk] + [("startAt", start_at), ("maxResults", USERS_PER_CALL)]
            page = self._client.get(self._url, params, domain="users", expect="values")
            values = page.get("values") or []
            found.extend(values)
            if page.get("isLast", True) or not values:
                return found
            start_at += len(values)

    def get(self, account_id: str) -> dict[str, Any] | None:
        return self._known.get(account_id)


class JsmSource:
    name = "jsm"
    title = "JSM Operations"

    def __init__(
        self,
        client: JsmClient,
        *,
        site_url: str,
        api_url: str,
        cloud_id: str = "",
        org_id: str = "",
        incident_jql: str,
        email: str = "",
    ) -> None:
        self.client = client
        self.site_url = site_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.cloud_id = cloud_id
        self.org_id = org_id
        self.incident_jql = incident_jql
        self._email = email
        self.users = _Users(client, self.site_url)
        self._memo: dict[str, Any] = {}
        self._memo_lock = threading.RLock()

    # -- where things are ---------------------------------------------------------------------
    @property
    def ops(self) -> str:
        return f"{self.api_url}/jsm/ops/api/{quote(self.cloud_id, safe='')}/v1"

    def _once(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._memo_lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    # -- the seam ---------------------------------------------------------------------------
    def learn_rate_limits(self) -> dict[str, Any]:
        """The run's first requests: the cloud id (when not configured) and one authenticated
        call, so a wrong e-mail or token stops the run at once (exit 3)."""
        if not self.cloud_id:
            self.cloud_id = self._discover_cloud_id()
        self.client.get(f"{self.site_url}/rest/api/3/myself", None, domain="users", expect="accountId")
        return {}

    def _discover_cloud_id(self) -> str:
        url = f"{self.site_url}/_edge/tenant_info"
        try:
            info = self.client.get(url, None, domain="tenant", auth=False, expect="cloudId")
        except ApiError as exc:
            raise ConfigError(f"could not read the cloud id from {url} ({exc}): set JSM_CLOUD_ID") from exc
        cloud_id = info.get("cloudId") if isinstance(info, dict) else None
        if not isinstance(cloud_id, str) or not cloud_id:
            raise ConfigError(f"{url} did not name a cloudId: check JSM_SITE_URL, or set JSM_CLOUD_ID")
        return cloud_id

    def listing(self, kind: str, query: str = "", pool: Executor | None = None, parallel: int = 1) -> Any:
        kind = "schedule" if kind == "schedule-oncall" else kind
        if kind == "alert":
            endpoint = KindEndpoint(f"{self.ops}/alerts", "alerts", "windowed", pages=ALERT_PAGES)
            client = Expecting(self.client, "values")
            return ShapedPages(Listing(client, endpoint, query, pool=pool, parallel=parallel), _alerts)
        if kind == "incident":
            matches = incident_filter(query)
            return StaticPages(lambda: self._incident_pages(matches))
        if kind == "team":
            return StaticPages(lambda: iter([self.teams()]))
        if kind == "schedule":
            return StaticPages(lambda: iter([self.schedules()]))
        if kind == "escalation":
            return StaticPages(lambda: iter([self.escalations()]))
        if kind == "service":
            return StaticPages(self._service_pages)
        if kind == "user":
            return StaticPages(self._user_pages)
        raise ConfigError(f"kind {kind!r} cannot be read from JSM Operations")

    def team(self, team_id: str) -> dict[str, Any]:
        listed = next((t for t in self.teams() if t["id"] == team_id), None)
        if listed is None:
            return {}
        self.directory()
        return shape.team_details(listed, self.members(team_id), self.users.get)

    def oncalls(self, schedules: Sequence[dict[str, Any]] = ()) -> dict[str, dict[str, Any]]:
        """One on-call call per schedule; recipients named by e-mail where the site shows it."""
        answers = []
        for schedule in schedules or self.schedules():
            schedule_id = str(schedule.get("id"))
            url = f"{self.ops}/schedules/{quote(schedule_id, safe='')}/on-calls"
            try:
                answer = self.client.get(url, {"flat": "true"}, domain="config", expect="onCallUsers")
            except ApiError as exc:
                if exc.status == 404:
                    continue  # deleted since it was listed
                raise
            answers.append((schedule, [str(a) for a in answer.get("onCallUsers") or []]))
        self.users.ensure(a for _, ids in answers for a in ids)
        return {str(s.get("id")): shape.oncall(s, ids, self.users.get) for s, ids in answers}

    def incident_alert_ids(self, incident_id: str) -> list[str]:
        url = f"{self.api_url}/jsm/incidents/cloudId/{quote(self.cloud_id, safe='')}/v1/incident/"
        url += f"{quote(incident_id, safe='')}/alert"
        alert_ids: list[str] = []
        start_key: str | None = None
        while True:
            params: dict[str, Any] = {"limit": LINKED_ALERTS_PAGE}
            if start_key:
                params["startKey"] = start_key
            try:
                answer = self.client.get(url, params, domain="incidents", expect="values")
            except ApiError as exc:
                if exc.status == 404:
                    return []  # deleted since it was listed
                raise
            alert_ids.extend(str(a) for a in (answer.get("values") or {}).get("alertIds") or [])
            start_key = answer.get("startKey")
            if not start_key:
                return alert_ids

    def link_cache(self, cache_dir: Path) -> LinkCache:
        return LinkCache.for_account(cache_dir, f"jsm:{self.site_url}", self._email)

    def request_counts(self) -> dict[str, Any]:
        stats = self.client.stats
        return {"jsm": dict(stats.requests), "jsmThrottled": dict(stats.throttled), "retries": stats.retries}

    def close(self) -> None:
        self.client.close()

    # -- kinds listed once per run ------------------------------------------------------------
    def teams(self) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            answer = self.client.get(f"{self.ops}/teams", None, domain="config", expect="platformTeams")
            return [shape.team(t, self.site_url) for t in answer.get("platformTeams") or []]

        return self._once("teams", fetch)

    def team_names(self) -> dict[str, str]:
        return {t["id"]: t.get("name") or "" for t in self.teams()}

    def members(self, team_id: str) -> list[str]:
        """The accountIds of a team's members (Atlassian Teams API), once per team and run."""
        if not self.org_id:
            raise ApiError(
                "team members come from the Atlassian Teams API, which needs the organization id: set JSM_ORG_ID "
                "(or --jsm-org-id; admin.atlassian.com shows it in the address, /o/<orgId>/)"
            )

        def fetch() -> list[str]:
            url = f"{self.api_url}/public/teams/v1/org/{quote(self.org_id, safe='')}/teams/"
            url += f"{quote(team_id, safe='')}/members"
            account_ids: list[str] = []
            after: str | None = None
            while True:
                body: dict[str, Any] = {"first": MEMBERS_PAGE}
                if after:
                    body["after"] = after
                try:
                    answer = self.client.post(url, body, domain="teams", expect="results")
                except ApiError as exc:
                    if exc.status == 404:
                        return account_ids
                    raise
                account_ids.extend(str(m.get("accountId")) for m in answer.get("results") or [] if m.get("accountId"))
                info = answer.get("pageInfo") or {}
                after = info.get("endCursor")
                if not info.get("hasNextPage") or not after:
                    return account_ids

        return self._once(f"members:{team_id}", fetch)

    def raw_schedules(self) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            endpoint = KindEndpoint(
                f"{self.ops}/schedules", "config", "paged", (("expand", "rotation"),), pages=SCHEDULE_PAGES
            )
            return [item for page in Listing(Expecting(self.client, "values"), endpoint) for item in page]

        return self._once("raw_schedules", fetch)

    def schedules(self) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            raw = self.raw_schedules()
            self.directory()
            names = self.team_names() if any(s.get("teamId") for s in raw) else {}
            return [shape.schedule(s, names, self.users.get) for s in raw]

        return self._once("schedules", fetch)

    def directory(self) -> None:
        """Every user the teams (members, with the org id) and schedules (rotations) name, asked
        in one `user/bulk` pass (100 a call) instead of one per team or page."""

        def fetch() -> bool:
            referenced: list[str] = []
            if self.org_id:
                for team in self.teams():
                    referenced += self.members(team["id"])
            for schedule in self.raw_schedules():
                for rotation in schedule.get("rotations") or []:
                    participants = rotation.get("participants") or []
                    referenced += [str(p.get("id")) for p in participants if p.get("type") == "user" and p.get("id")]
            self.users.ensure(referenced)
            return True

        self._once("directory", fetch)

    def escalations(self) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            out = []
            for team in self.teams():
                url = f"{self.ops}/teams/{quote(team['id'], safe='')}/escalations"
                endpoint = KindEndpoint(url, "config", "paged", pages=ESCALATION_PAGES)
                try:
                    pages = Listing(Expecting(self.client, "values"), endpoint)
                    out += [shape.escalation(e, team) for page in pages for e in page]
                except ApiError as exc:
                    if exc.status != 404:  # a team deleted since it was listed has none
                        raise
            return out

        return self._once("escalations", fetch)

    # -- streamed kinds ------------------------------------------------------------------------
    def _incident_pages(self, matches: Callable[[dict[str, Any]], bool]) -> Iterator[list[dict[str, Any]]]:
        services_field, responders_field = self._incident_field_ids()
        fields = ",".join(f for f in (INCIDENT_FIELDS, services_field, responders_field) if f)
        url = f"{self.site_url}/rest/api/3/search/jql"
        token: str | None = None
        while True:
            params: dict[str, Any] = {"jql": self.incident_jql, "fields": fields, "maxResults": SEARCH_PAGE}
            if token:
                params["nextPageToken"] = token
            try:
                answer = self.client.get(url, params, domain="search", expect="issues")
            except ApiError as exc:
                if exc.status == 400:
                    raise ApiError(
                        f"Jira refused the incident JQL {self.incident_jql!r} ({exc}); fix JSM_INCIDENT_JQL"
                    ) from None
                raise
            issues = answer.get("issues") or []
            shaped = [shape.incident(i, self.site_url, services_field, responders_field) for i in issues]
            page = [item for item in shaped if matches(item)]
            if page:
                yield page
            token = answer.get("nextPageToken")
            if answer.get("isLast", not token) or not token or not issues:
                return

    def _incident_field_ids(self) -> tuple[str | None, str | None]:
        """The custom field ids of "Affected services" and "Responders" on this site (one call)."""

        def fetch() -> tuple[str | None, str | None]:
            known = self.client.get(f"{self.site_url}/rest/api/3/field", None, domain="search", expect=list)
            by_name = {str(f.get("name", "")).lower(): str(f.get("id")) for f in known if isinstance(f, dict)}
            return by_name.get(INCIDENT_FIELD_NAMES["services"]), by_name.get(INCIDENT_FIELD_NAMES["responders"])

        return self._once("incident_fields", fetch)

    def _service_pages(self) -> Iterator[list[dict[str, Any]]]:
        url = f"{self.api_url}/jsm/api/{quote(self.cloud_id, safe='')}/v1/services/"
        offset = 0
        while True:
            try:
                params = {"offset": offset, "size": SERVICES_PAGE}
                answer = self.client.get(url, params, domain="services", expect="services")
            except ApiError as exc:
                if exc.status == 404:
                    raise ApiError(
                        "this site does not offer the JSM services API (HTTP 404 at /jsm/api/…/v1/services/), so "
                        "services cannot be read from JSM; remove the service resource (and __impactedServices) "
                        "from the mapping for this site",
                        status=404,
                    ) from exc
                raise
            services = answer.get("services") or []
            if services:
                yield [shape.service(s, self.site_url) for s in services]
            if not (answer.get("pagination") or {}).get("hasNext") or not services:
                return
            offset += len(services)

    def _user_pages(self) -> Iterator[list[dict[str, Any]]]:
        """The Jira users that teams (members), schedules (rotations) and escalations name."""
        self.directory()
        referenced: list[str] = []
        if self.org_id:
            for team in self.teams():
                referenced += self.members(team["id"])
        for schedule in self.schedules():
            for rotation in schedule.get("rotations") or []:
                referenced += [str(p.get("id")) for p in rotation.get("participants") or [] if p.get("type") == "user"]
        for escalation in self.escalations():
            for rule in escalation.get("rules") or []:
                recipient = rule.get("recipient") or {}
                if recipient.get("type") == "user" and recipient.get("id"):
                    referenced.append(str(recipient["id"]))
        wanted = list(dict.fromkeys(referenced))
        self.users.ensure(wanted)
        found = [shape.user(u) for u in (self.users.get(a) for a in wanted) if u is not None]
        for start in range(0, len(found), 100):
            yield found[start : start + 100]


def _alerts(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [shape.alert(item) for item in page]

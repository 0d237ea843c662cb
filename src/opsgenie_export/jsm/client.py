"""The HTTP layer for Jira Service Management Operations and the Jira site: one pooled session,
Basic auth (Atlassian account e-mail + API token), pacing per host, retries.

Policy, as for Opsgenie (docs/jsm-operations.md): a 429 waits `Retry-After` (else until
`X-RateLimit-Reset`) with jitter and slows that host down, and a success that says the limit is
near (`X-RateLimit-NearLimit`, or `X-RateLimit-Remaining: 0`) slows it too; 5xx (not 501),
timeouts, dropped connections and truncated bodies are retried a bounded number of times with
backoff, inside the run's one wait budget; 401 means the e-mail or token is wrong and 403 a
refused scope or role — both stop the run without a retry (exit 3).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from opsgenie_export.errors import ApiError, AuthError
from opsgenie_export.transport import (
    REQUEST_FAILURES,
    RETRYABLE_STATUSES,
    Pacer,
    WaitBudget,
    backoff_delay,
    classify_exception,
    decode_json,
    jittered,
    pooled_session,
)

# The OAuth scope each kind of request needs (named when a request is refused).
SCOPES = {
    "alerts": "read:ops-alert:jira-service-management",
    "incidents": "read:ops-alert:jira-service-management",
    "config": "read:ops-config:jira-service-management",
    "services": "the JSM services API",
    "teams": "read:team:atlassian (Atlassian Teams API)",
    "search": "read:jira-work",
    "users": "read:jira-user",
}


@dataclass
class JsmStats:
    requests: Counter[str] = field(default_factory=Counter)  # per domain
    throttled: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def count(self, domain: str, status: int | None) -> None:
        with self._lock:
            self.requests[domain] += 1
            if status == 429:
                self.throttled[domain] += 1


class JsmClient:
    """Requests to absolute URLs on api.atlassian.com (or JSM_API_URL) and the Jira site."""

    def __init__(
        self,
        email: str,
        api_token: str,
        *,
        budget: WaitBudget,
        timeout: float = 30.0,
        max_retries: int = 5,
        pool_size: int = 16,
        ca_bundle: str | None = None,
    ) -> None:
        self.budget = budget
        self.timeout = timeout
        self.max_retries = max_retries
        self.stats = JsmStats()
        self._pacers: dict[str, Pacer] = {}
        self._lock = threading.Lock()
        self._session = pooled_session(pool_size, ca_bundle, {})
        self._session.auth = (email, api_token)  # Basic; never logged, masked by settings.secrets

    def close(self) -> None:
        self._session.close()

    def get(
        self, url: str, params: Any = None, *, domain: str, expect: str | type | None = None, auth: bool = True
    ) -> Any:
        return self.request("GET", url, params=params, domain=domain, expect=expect, auth=auth)

    def post(self, url: str, body: Any, *, domain: str, expect: str | type | None = None) -> Any:
        return self.request("POST", url, body=body, domain=domain, expect=expect)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        body: Any = None,
        domain: str,
        expect: str | type | None = None,
        auth: bool = True,
    ) -> Any:
        """The decoded JSON answer; a typed error when the request fails for good. `expect`
        names a key the answer must hold (not null), or is `list` for a JSON list: a 200 without it (`{"data": null}`, a
        proxy's JSON) is a failed attempt, retried — never read as an empty list."""
        pacer = self._pacer(url)
        attempt = 0
        where = f"{method} {_path(url)}"
        while True:
            self.budget.stop.check()
            pacer.acquire()
            outcome = self._attempt(method, url, (params, body, expect), domain, auth, pacer)
            if not isinstance(outcome, _Retry):
                return outcome.value
            if outcome.status == 429:
                pacer.throttled(outcome.wait or 1.0)
                delay = jittered(outcome.wait or 1.0)
            elif attempt < self.max_retries:
                delay = backoff_delay(attempt)
            else:
                raise ApiError(f"{where} failed after {attempt + 1} attempts: {outcome.detail}", status=outcome.status)
            attempt += 1
            with self._lock:
                self.stats.retries += 1
            self.budget.wait(delay, f"JSM {where} ({outcome.detail})")

    def _pacer(self, url: str) -> Pacer:
        host = urlsplit(url).netloc
        with self._lock:
            if host not in self._pacers:
                self._pacers[host] = Pacer(stop=self.budget.stop, budget=self.budget, name=f"JSM {host}")
            return self._pacers[host]

    def _attempt(
        self, method: str, url: str, payload: tuple[Any, Any, str | type | None], domain: str, auth: bool, pacer: Pacer
    ) -> _Answer | _Retry:
        params, body, expect = payload
        try:
            response = self._session.request(
                method, url, params=params, json=body, timeout=self.timeout, auth=None if auth else _NoAuth()
            )
        except REQUEST_FAILURES as exc:  # sorted in one place: transport.classify_exception
            self.stats.count(domain, None)
            failure = classify_exception(exc, url)
            if not failure.retryable:
                raise ApiError(f"JSM {method} {_path(url)}: {failure.detail}") from None
            return _Retry(None, failure.detail, None)
        self.stats.count(domain, response.status_code)
        if response.status_code in (200, 201):
            _slow_down_near_limit(response, pacer)
            answer, problem = decode_json(response, lambda value: _valid(value, expect))
            if problem is not None:
                return _Retry(None, f"HTTP {response.status_code} with {problem}", None)
            return _Answer(answer)
        if response.status_code in RETRYABLE_STATUSES and response.status_code != 501:
            return _Retry(response.status_code, describe(response), wait_hint(response))
        raise final_error(response, method, url, domain)


@dataclass
class _Answer:
    value: Any


@dataclass
class _Retry:
    status: int | None
    detail: str
    wait: float | None


class _NoAuth(requests.auth.AuthBase):
    """No Authorization header (the site's /_edge/tenant_info is public)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


def _valid(body: Any, expect: str | type | None) -> bool:
    if expect is None:
        return isinstance(body, dict | list)
    if isinstance(expect, type):
        return isinstance(body, expect)
    return isinstance(body, dict) and body.get(expect) is not None


class Expecting:
    """The client as the shared pager (opsgenie/source.py Listing) calls it, with the envelope's
    items key required in every page."""

    def __init__(self, client: JsmClient, key: str) -> None:
        self.client = client
        self.key = key

    def get(self, url: str, params: Any = None, *, domain: str) -> Any:
        return self.client.get(url, params, domain=domain, expect=self.key)


def _path(url: str) -> str:
    return urlsplit(url).path


def _slow_down_near_limit(response: requests.Response, pacer: Pacer) -> None:
    near = response.headers.get("X-RateLimit-NearLimit", "").lower() == "true"
    if near or response.headers.get("X-RateLimit-Remaining") == "0":
        pacer.throttled(1.0)


def wait_hint(response: requests.Response) -> float | None:
    """Seconds to wait: `Retry-After`, else until `X-RateLimit-Reset` (an ISO date-time)."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        pass
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            moment = datetime.fromisoformat(reset.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return max(0.0, (moment - datetime.now(UTC)).total_seconds())
        except ValueError:
            return None
    return None


def describe(response: requests.Response) -> str:
    """`HTTP 403, <the API's message>` from any of the Atlassian error bodies."""
    parts = [f"HTTP {response.status_code}"]
    message = _message(response)
    if message:
        parts.append(message[:300])
    return ", ".join(parts)


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    texts: list[str] = []
    for error in body.get("errors") if isinstance(body.get("errors"), list) else []:
        if isinstance(error, dict):
            texts.append(str(error.get("title") or error.get("detail") or error.get("code") or ""))
    texts += [str(m) for m in body.get("errorMessages") or [] if m]
    if isinstance(body.get("message"), str):
        texts.append(body["message"])
    return "; ".join(t for t in texts if t)


def final_error(response: requests.Response, method: str, url: str, domain: str) -> ApiError | AuthError:
    detail = describe(response)
    status = response.status_code
    host = urlsplit(url).netloc
    if status == 401:
        return AuthError(
            status=401,
            message=f"Atlassian refused the e-mail and API token ({detail}) at {host}: check ATLASSIAN_EMAIL and "
            "ATLASSIAN_API_TOKEN (an API token of that account, from id.atlassian.com)",
        )
    if status == 403:
        return AuthError(
            status=403,
            message=f"Atlassian denied {method} {_path(url)} ({detail}): the account needs an Operations role and "
            f"the scope {SCOPES.get(domain, domain)}",
        )
    return ApiError(f"{method} {_path(url)}: {detail}", status=status)

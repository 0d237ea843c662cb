"""The Opsgenie HTTP layer: one pooled session, GenieKey auth, per-domain pacing, retries.

Policy (docs/opsgenie-api.md §7-8): 429 waits `Retry-After` if present, else
`X-RateLimit-Period-In-Sec`, with jitter, and slows that domain down; 5xx (not 501), timeouts,
dropped connections and truncated bodies are retried a bounded number of times with backoff;
401 is an authentication failure and 402/403 a plan or rights refusal — never retried.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from opsgenie_export.concurrency import AdaptiveLimit, Slot
from opsgenie_export.errors import ApiError, AuthError, ExportError, PlanRestrictedError
from opsgenie_export.transport import (
    REQUEST_FAILURES,
    RETRYABLE_STATUSES,
    Failure,
    Pacer,
    Unreachable,
    WaitBudget,
    backoff_delay,
    classify_exception,
    decode_json,
    jittered,
    pace_for,
    pooled_session,
    timeouts,
)

DOMAINS = ("search", "alert", "incident", "configuration", "schedule-oncalls")


@dataclass
class OpsgenieStats:
    requests: Counter[str] = field(default_factory=Counter)  # per domain
    throttled: Counter[str] = field(default_factory=Counter)  # 429s per domain
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def count(self, domain: str, status: int | None) -> None:
        with self._lock:
            self.requests[domain] += 1
            if status == 429:
                self.throttled[domain] += 1


class OpsgenieClient:
    key_origin = "OPSGENIE_API_TOKEN"  # where the key came from, for the 401 message (Settings.origin)

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        budget: WaitBudget,
        timeout: float = 30.0,
        max_retries: int = 5,
        pool_size: int = 16,
        ca_bundle: str | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.in_flight = AdaptiveLimit("opsgenie", max_in_flight or pool_size, stop=budget.stop)
        self.budget = budget
        self.timeout = timeout
        self.max_retries = max_retries
        self.stats = OpsgenieStats()
        self.pacers = {domain: Pacer(stop=budget.stop, budget=budget, name=f"Opsgenie {domain}") for domain in DOMAINS}
        self._session = pooled_session(pool_size, ca_bundle, {"Authorization": f"GenieKey {token}"})
        self.unreachable = Unreachable()

    def close(self) -> None:
        self._session.close()

    def learn_rate_limits(self) -> dict[str, tuple[float, int]]:
        """Pace every domain just under the account's own limits, read once from the undocumented
        `GET /v2/request-limits/`. Team keys get 403 there and the route may change: then nothing
        is learned and pacing adapts to 429s instead."""
        try:
            envelope = self.get("/v2/request-limits/", None, domain="configuration")
        except AuthError as exc:
            if exc.status == 401:
                raise  # a bad key: stop here, never retried
            return {}
        except ExportError:
            return {}
        learned = {}
        for entry in (envelope.get("data") or {}).get("rateLimits") or []:
            domain = str(entry.get("domain", "")).lower()
            limits = [
                (int(x["limit"]), float(x["periodInSeconds"])) for x in entry.get("limits") or [] if x.get("limit")
            ]
            if domain in self.pacers and limits:
                learned[domain] = pace_for(limits)
                self.pacers[domain].set_rate(*learned[domain])
        return learned

    def get(self, path: str, params: dict[str, Any] | None = None, *, domain: str) -> dict[str, Any]:
        """GET a path and return the decoded envelope; raise a typed error when it fails for good."""
        url = f"{self.base_url}{path}"
        attempt, started = 0, time.monotonic()
        while True:
            self.budget.stop.check()
            self.unreachable.check()  # another request already found the host unreachable
            outcome = self._attempt(url, params, domain)
            if isinstance(outcome, dict):
                return outcome
            if isinstance(outcome, Failure):  # the host was never reached
                if Unreachable.give_up_now(outcome, attempt):
                    seconds = time.monotonic() - started
                    hint = "check the Opsgenie URL (--opsgenie-url or --region) and the network or proxy"
                    raise ApiError(self.unreachable.give_up("Opsgenie", attempt + 1, seconds, outcome.detail, hint))
                outcome = (None, outcome.detail, None)
            status, detail, wait_hint = outcome
            if status == 429:
                self.pacers[domain].throttled(wait_hint or 1.0)
                delay = jittered(wait_hint or 1.0)
            elif attempt < self.max_retries:
                delay = backoff_delay(attempt)
            else:
                raise ApiError(f"GET {path} failed after {attempt + 1} attempts: {detail}", status=status)
            attempt += 1
            self.stats.retried()
            self.budget.wait(delay, f"Opsgenie GET {path} ({detail})")

    def _attempt(
        self, url: str, params: dict[str, Any] | None, domain: str
    ) -> dict[str, Any] | tuple[int | None, str, float | None] | Failure:
        """One request: the envelope, (status, detail, wait hint) for a retryable failure, or the
        Failure of a host never reached. Every failure is sorted by `transport.classify_exception`;
        a permanent one raises."""
        path = url[len(self.base_url) :]
        try:
            with self.in_flight.slot() as slot:
                self.pacers[domain].acquire()  # paced once the slot is taken: sent when paced
                slot.sending()
                response = self._session.get(url, params=params, timeout=timeouts(self.timeout))
                self._judge(slot, response, domain)
        except REQUEST_FAILURES as exc:
            self.stats.count(domain, None)
            failure = classify_exception(exc, url)
            if not failure.retryable:
                raise ApiError(f"Opsgenie GET {path}: {failure.detail}") from None
            return failure if failure.unreachable else (None, failure.detail, None)
        self.stats.count(domain, response.status_code)
        if response.status_code == 200:
            envelope, problem = decode_json(response, _is_envelope)
            if problem is None:
                return envelope
            return None, f"HTTP 200 with {problem}", None
        if response.status_code in RETRYABLE_STATUSES and response.status_code != 501:
            return response.status_code, _describe(response), _wait_hint(response)
        raise _final_error(response, path, self.base_url, self.key_origin)

    def _judge(self, slot: Slot, response: requests.Response, domain: str) -> None:
        """Tell the concurrency limit how the request went, and whether the domain's pacing
        leaves room for more requests in flight (rate x round trip above the current limit)."""
        if response.status_code == 429:
            slot.throttled()
        elif response.status_code >= 500:
            slot.failed()
        rate = self.pacers[domain].rate
        if rate is not None:
            slot.room = rate * response.elapsed.total_seconds() > self.in_flight.current


def _is_envelope(body: Any) -> bool:
    """Every Opsgenie answer this tool reads is `{"data": <object or list>, ...}`."""
    return isinstance(body, dict) and isinstance(body.get("data"), dict | list)


def _wait_hint(response: requests.Response) -> float | None:
    for header in ("Retry-After", "X-RateLimit-Period-In-Sec"):
        try:
            return float(response.headers[header])
        except (KeyError, ValueError):
            continue
    return None


def _describe(response: requests.Response) -> str:
    message = ""
    try:
        body = response.json()
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
    except ValueError:
        pass
    request_id = response.headers.get("X-Request-ID")
    parts = [f"HTTP {response.status_code}"]
    if message:
        parts.append(message)
    if request_id:
        parts.append(f"requestId {request_id}")
    return ", ".join(parts)


def _final_error(response: requests.Response, path: str, base_url: str, key_origin: str) -> ExportError:
    detail = _describe(response)
    status = response.status_code
    request_id = response.headers.get("X-Request-ID")
    if status == 401:
        return AuthError(
            status=401,
            message=f"Opsgenie refused the API key ({detail}) at {base_url}: check the key from {key_origin}, and the "
            "region (EU accounts need --region eu or OPSGENIE_API_URL=https://api.eu.opsgenie.com)",
        )
    if status == 402 or (status == 403 and path.startswith("/v1/incidents")):
        return PlanRestrictedError(f"GET {path}: {detail}", status=status, request_id=request_id)
    if status == 403:
        return AuthError(
            status=403,
            message=f"Opsgenie denied GET {path} ({detail}): the API key needs Read and Configuration access "
            "rights, and an account-level (not team) key",
        )
    return ApiError(f"GET {path}: {detail}", status=status, request_id=request_id)

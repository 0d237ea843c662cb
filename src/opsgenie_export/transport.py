"""What both HTTP clients share: backoff with jitter, a run-wide wait budget, a pacer, and a
stop signal that interrupts every wait at once (SIGINT/SIGTERM).

Each API keeps its own retry policy in its own client; only these mechanics are common.
"""

from __future__ import annotations

import http.client
import json
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from opsgenie_export import __version__
from opsgenie_export.errors import ApiError, ExportError, Interrupted, WaitBudgetExceeded

USER_AGENT = f"opsgenie-export/{__version__}"

# Statuses and exceptions worth another try; everything else fails at once.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class _Session(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace a session's own `verify`
    (psf/requests#3829), which would silently ignore --ca-bundle on machines that set them: an
    explicit bundle wins here. Proxies and the rest still come from the environment."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings


_CERTIFICATE_FAILURES = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "doesn't match", "mismatch")


def certificate_problem(exc: Exception) -> str | None:
    """Why the server's certificate was refused — never worth a retry — or None for any other
    failure (a TLS handshake cut short is a dropped connection, retried as such)."""
    text = str(exc)
    if not isinstance(exc, requests.exceptions.SSLError) or not any(m in text for m in _CERTIFICATE_FAILURES):
        return None
    found = re.search(r"certificate verify failed: ([^(]+?)\s*\(", text)
    reason = found.group(1) if found else "certificate verification failed"
    return f"TLS certificate not trusted ({reason}); for a private certificate authority pass --ca-bundle PATH"


# Everything sending one request can raise besides a bug of ours: requests' own errors, urllib3 and
# http.client errors that escape its wrapping, socket errors (OSError), and a header value that
# cannot be encoded (UnicodeError). `classify_exception` sorts each into retryable or permanent.
REQUEST_FAILURES: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    UnicodeError,
)

# Transfers that broke off or a body that did not decode: the same request may well succeed.
_RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,  # refused, reset, dropped, DNS, proxy, TLS handshake cut short
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,  # the body ended before its Content-Length
    requests.exceptions.ContentDecodingError,  # gzip/deflate body that does not inflate
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.DecodeError,
    urllib3.exceptions.TimeoutError,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class Failure:
    """One failed attempt at a request, classified once for both clients."""

    retryable: bool
    detail: str  # one line, never a header value or a body; names the host for network failures
    status: int | None = None
    unreachable: bool = False  # the host was never reached (refused, DNS, no route, connect timeout)


# Why a TLS handshake failed for a reason another try cannot change: the port does not speak TLS
# (an http:// service behind https://), or the two sides share no protocol or cipher.
_GARBLED_TLS = (
    "wrong version number",
    "WRONG_VERSION_NUMBER",
    "unknown protocol",
    "record layer failure",
    "packet length too long",
    "http request",
    "handshake failure",
    "no protocols available",
    "unsupported protocol",
    "tlsv1 alert",
    "sslv3 alert",
)
# Connect-phase failures, as urllib3 words them: the host was never reached.
_UNREACHABLE = {
    "Connection refused": "connection refused",
    "Failed to resolve": "host name not found",
    "Name or service not known": "host name not found",
    "nodename nor servname": "host name not found",
    "Temporary failure in name resolution": "host name not found",
    "No route to host": "no route to host",
    "Network is unreachable": "network unreachable",
}


def host_of(url: str) -> str:
    """`host:port` of a URL (the port only when given), for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or url


def classify_exception(exc: BaseException, url: str = "") -> Failure:
    """Retryable (a cut or reset transfer, a timeout, a body that does not decode) or permanent
    (an untrusted certificate or a TLS handshake that cannot succeed, a header value requests
    refuses to send, a bad URL, anything else). The detail names the host of a network or TLS
    failure, and never echoes header values: an `InvalidHeader` message holds the header — a
    credential."""
    host = host_of(url) if url else "the server"
    problem = certificate_problem(exc) if isinstance(exc, Exception) else None
    if problem:
        return Failure(False, f"{host}: {problem}")
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError) and any(marker in text for marker in _GARBLED_TLS):
        reason = next(marker for marker in _GARBLED_TLS if marker in text).lower()
        return Failure(
            False,
            f"TLS handshake with {host} failed ({reason}): does that port speak https? Check the URL's scheme and "
            "port, or a proxy in between",
        )
    if isinstance(exc, requests.exceptions.InvalidHeader | UnicodeError):
        return Failure(False, f"the request could not be sent: a header value is not valid ({name}); check credentials")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | http.client.IncompleteRead):
        return Failure(True, f"response cut short ({name}) from {host}")
    if isinstance(exc, requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError):
        return Failure(True, f"response body did not decode ({name}) from {host}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Failure(True, f"connection failed: cannot connect to {host} (connect timed out)", unreachable=True)
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return Failure(True, f"timed out ({name}) waiting for {host}")
    if isinstance(exc, requests.ConnectionError):
        reason = next((why for marker, why in _UNREACHABLE.items() if marker in text), None)
        if reason:
            return Failure(True, f"connection failed: cannot connect to {host} ({reason})", unreachable=True)
    if isinstance(exc, _RETRYABLE_EXCEPTIONS):
        return Failure(True, f"connection failed ({name}) with {host}")
    if isinstance(exc, OSError) and "CA certificate bundle" in str(exc):
        return Failure(False, f"TLS CA bundle not usable: {str(exc).split(': ')[-1]}")
    return Failure(False, f"the request could not be sent ({name}) to {host}")


CONNECT_TIMEOUT = 10.0  # seconds to open a connection (the read timeout is --timeout)
UNREACHABLE_RETRIES = 2  # refused or unresolvable: retried twice, quickly; a connect timeout is not retried


class Unreachable:
    """Remembers that a host could not be connected to, so every later request of the run to it
    fails at once with the same message: an unreachable host costs one connect timeout (or a
    few quick refusals) plus the retries' backoff, not that much per request and per kind."""

    def __init__(self) -> None:
        self.message: str | None = None

    def check(self) -> None:
        if self.message is not None:
            raise ApiError(self.message)

    @staticmethod
    def give_up_now(failure: Failure, attempt: int) -> bool:
        """No further try: a connect timeout at once, a refusal or DNS failure after two retries."""
        return "connect timed out" in failure.detail or attempt >= UNREACHABLE_RETRIES

    def give_up(self, what: str, attempts: int, seconds: float, detail: str, hint: str) -> str:
        """The final message, with the time spent, remembered for the rest of the run."""
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        self.message = f"{what}: {detail}; gave up after {tries} in {seconds:.1f}s — {hint}"
        return self.message


def timeouts(read: float) -> tuple[float, float]:
    """(connect, read) timeouts for requests: connecting never waits longer than CONNECT_TIMEOUT."""
    return min(CONNECT_TIMEOUT, read), read


def decode_json(response: requests.Response, valid: Callable[[Any], bool] | None = None) -> tuple[Any, str | None]:
    """(body, None) for a UTF-8 JSON body of the promised shape, else (None, why not).

    Stricter than `response.json()`, which replaces bytes that are not UTF-8 and so could
    hand on corrupted text: here that, an HTML page from a proxy, a cut body or a JSON value of
    the wrong shape (`{"data": null}`) is a failed attempt, retried like a dropped connection.
    """
    content = response.content
    if not content:
        return None, "empty body where JSON was expected"
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None, "body is not UTF-8"
    try:
        body = json.loads(text)
    except ValueError:
        if "html" in response.headers.get("Content-Type", "").lower() or text.lstrip()[:1] == "<":
            return None, "an HTML page instead of JSON (a proxy or gateway answered?)"
        return None, "truncated or invalid JSON body"
    if valid is not None and not valid(body):
        return None, f"JSON of an unexpected shape ({_shape(body)})"
    return body, None


def _shape(body: Any) -> str:
    if isinstance(body, dict):
        nulls = [k for k, v in body.items() if v is None][:3]
        keys = ", ".join(list(body)[:5])
        return f"keys {keys or 'none'}" + (f"; null: {', '.join(nulls)}" if nulls else "")
    return type(body).__name__


_request_log: Callable[[str], None] | None = None  # --debug: one line per HTTP request


def log_requests(callback: Callable[[str], None] | None) -> None:
    """`--debug`: report every HTTP response of both clients as one line (method, URL without
    credentials, status, time) to `callback` — whose stream masks secrets — or stop with None."""
    global _request_log
    _request_log = callback


def _log_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    callback = _request_log
    if callback is None:
        return
    request = response.request
    parts = urlsplit(request.url or "")
    url = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
    query = f"?{parts.query}" if parts.query else ""
    took = response.elapsed.total_seconds() * 1000
    callback(f"{request.method} {url}{query} → {response.status_code} in {took:.0f} ms")


def pooled_session(pool_size: int, ca_bundle: str | None, headers: dict[str, str]) -> requests.Session:
    """A session with `pool_size` kept-alive connections, no urllib3 retries (ours are explicit),
    and TLS verification always on (a private CA bundle may be given, never turned off)."""
    session = _Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = ca_bundle or True
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **headers})
    session.hooks["response"].append(_log_response)
    return session


class StopSignal:
    """Set once by a signal handler (or by a run-ending failure such as an exhausted wait
    budget); every wait in the run wakes up and raises Interrupted (or that failure)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_number: int | None = None
        self.error: ExportError | None = None

    def set(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self._event.set()

    def fail(self, error: ExportError) -> None:
        """End the run with `error`: every thread raises it at its next wait or check."""
        if self.error is None:
            self.error = error
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self.signal_number is not None:
            raise Interrupted(self.signal_number)
        if self.error is not None:
            raise type(self.error)(str(self.error))  # a fresh instance per thread

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self._event.wait(seconds):
            self.check()
        self.check()


@dataclass
class WaitBudget:
    """The total seconds a run may spend waiting — pacing, rate-limit resets, Retry-After and
    backoff — across all threads. A CI job then ends with a clear error instead of hanging until
    the job's own timeout. With `ends_run`, the first wait that would overrun it stops the whole
    run at once (every thread's next wait or check raises); without it (serve, per event), only
    the waiting call fails.
    """

    seconds: float
    stop: StopSignal = field(default_factory=StopSignal)
    spent: float = 0.0
    waits: int = 0
    ends_run: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def wait(self, seconds: float, reason: str) -> None:
        self.stop.check()
        if seconds <= 0:
            return
        with self._lock:
            if self.spent + seconds > self.seconds:
                error = WaitBudgetExceeded(
                    f"{reason}: waiting {seconds:.1f}s more would pass the wait budget of "
                    f"{self.seconds:g}s (--max-wait; {self.spent:.1f}s already spent); the API is throttling "
                    "or failing for too long"
                )
                if self.ends_run:
                    self.stop.fail(error)
                raise error
            self.spent += seconds
            self.waits += 1
        self.stop.sleep(seconds)

    def reset(self) -> None:
        with self._lock:
            self.spent = 0.0


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    ceiling = min(cap, base * (2**attempt))
    return (rng or random).uniform(ceiling / 2, ceiling)


def jittered(seconds: float, spread: float = 0.2) -> float:
    return seconds * (1 + random.uniform(0, spread))


class Pacer:
    """Spaces requests of one rate-limit domain: at most `rate` per second, bursts of `burst`.

    `rate=None` means unpaced until the first 429; then the rate becomes 80% of what was
    actually sent in the window that tripped. Thread-safe: workers reserve their slot under a
    lock and sleep outside it.
    """

    HISTORY = 4096

    def __init__(
        self,
        rate: float | None = None,
        burst: int = 1,
        stop: StopSignal | None = None,
        budget: WaitBudget | None = None,
        name: str = "",
    ) -> None:
        self._lock = threading.Lock()
        self._budget = budget
        self._name = name
        self.rate = rate
        self.burst = max(1, burst)
        self._next_free = 0.0
        self._sent: deque[float] = deque(maxlen=self.HISTORY)
        self._stop = stop or StopSignal()

    def set_rate(self, rate: float | None, burst: int | None = None) -> None:
        with self._lock:
            self.rate = rate
            if burst is not None:
                self.burst = max(1, burst)

    def throttled(self, period: float, floor: float = 0.2) -> None:
        """After a 429 for a `period`-second bucket: pace at 80% of the rate that tripped it."""
        with self._lock:
            now = time.monotonic()
            recent = sum(1 for t in self._sent if now - t <= period)
            observed = max(1, recent) / max(period, 1.0)
            self.rate = max(floor, 0.8 * min(observed, self.rate or observed))
            self.burst = 1

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = 0.0
            if self.rate:
                interval = 1.0 / self.rate
                start = max(now - interval * (self.burst - 1), self._next_free)
                self._next_free = start + interval
                delay = start - now
            self._sent.append(now + max(0.0, delay))
        if delay > 0 and self._budget is not None:
            self._budget.wait(delay, f"pacing {self._name or 'requests'}")
        elif delay > 0:
            self._stop.sleep(delay)


def pace_for(limits: list[tuple[int, float]], margin: float = 0.85) -> tuple[float, int]:
    """(rate, burst) that stays under every (limit, period-seconds) rolling bucket.

    No bursts: a rolling window of P seconds then holds at most floor(rate * P) + 1 requests,
    which `margin` keeps under each bucket's limit (small buckets included: 0.85 * 2/s → 2 per s).
    """
    rate = min(limit / period for limit, period in limits) * margin
    return rate, 1


T = TypeVar("T")


def prefetched(source: Iterable[T], stop: StopSignal, depth: int = 2) -> Iterator[T]:
    """Iterate `source` on a background thread, `depth` items ahead, so fetching the next page
    overlaps the work on the current one. Exceptions are re-raised in the consumer."""
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    abandoned = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not abandoned.is_set():
                    try:
                        buffer.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if abandoned.is_set():
                    return
            buffer.put(("end", None))
        except BaseException as exc:  # handed to the consumer
            buffer.put(("error", exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
            stop.check()
    finally:
        abandoned.set()

"""What both HTTP clients share: backoff with jitter, a run-wide wait budget, a pacer, and a
stop signal that interrupts every wait at once (SIGINT/SIGTERM).

Each API keeps its own retry policy in its own client; only these mechanics are common.
"""

from __future__ import annotations

import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from opsgenie_export import __version__
from opsgenie_export.errors import Interrupted, WaitBudgetExceeded

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


def pooled_session(pool_size: int, ca_bundle: str | None, headers: dict[str, str]) -> requests.Session:
    """A session with `pool_size` kept-alive connections, no urllib3 retries (ours are explicit),
    and TLS verification always on (a private CA bundle may be given, never turned off)."""
    session = _Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = ca_bundle or True
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **headers})
    return session


class StopSignal:
    """Set once by a signal handler; every wait in the run wakes up and raises Interrupted."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_number: int | None = None

    def set(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self.signal_number is not None:
            raise Interrupted(self.signal_number)

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self._event.wait(seconds):
            self.check()
        self.check()


@dataclass
class WaitBudget:
    """The total seconds a run may spend waiting on retries and rate limits, across all threads.

    A CI job then ends with a clear error instead of hanging until the job's own timeout.
    """

    seconds: float
    stop: StopSignal = field(default_factory=StopSignal)
    spent: float = 0.0
    waits: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def wait(self, seconds: float, reason: str) -> None:
        with self._lock:
            if self.spent + seconds > self.seconds:
                raise WaitBudgetExceeded(
                    f"{reason}: waiting {seconds:.1f}s more would pass the wait budget of "
                    f"{self.seconds:.0f}s (--max-wait); the API is throttling or failing for too long"
                )
            self.spent += seconds
            self.waits += 1
        self.stop.sleep(seconds)


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

    def __init__(self, rate: float | None = None, burst: int = 1, stop: StopSignal | None = None) -> None:
        self._lock = threading.Lock()
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
        if delay > 0:
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

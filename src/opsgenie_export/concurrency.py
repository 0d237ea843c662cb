"""How many requests one API gets at once: adapted to what it answers, at most `--workers`.

A fixed number is either too few (a 20 ms round trip and 4 requests in flight cap Port writes
at 200/s while the API has room for more) or too many (a throttled API answers 429 to all of
them). `AdaptiveLimit` starts small and, like TCP's congestion control:

- grows while answers come back about as fast as the fastest seen (latency flat), the limit is actually
  used, and the rate-limit state leaves room — by one per answer at first (slow start, doubling
  per round trip), by one per round trip once it has backed off once;
- shrinks by half on a 429, by a fifth on a 5xx or a dropped connection (a sick server, not a
  full one: halving on every random fault would starve the run), and by a tenth when latency rises
  well above the floor (the server or the network is queueing). Failures of requests sent
  before the last decrease are old news, so one burst of failures is one decrease, not thirty.
  Latency is smoothed over recent answers: one slow answer (a busy CPU, a garbage collection)
  is noise, not congestion.

The clients only bracket each HTTP request with `slot()`; retry policy stays theirs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opsgenie_export.transport import StopSignal

RISING = 3.0  # smoothed latency above RISING x the floor (+ SLACK) counts as queueing
FLAT = 2.0  # up to FLAT x the floor (+ SLACK) latency is flat: room to grow
SLACK = 0.010  # seconds: scheduling noise on a busy machine is not congestion
CALM = 4  # round trips after a latency decrease before the next one (its effect takes time)
SMOOTHING = 0.1  # weight of the newest answer in the smoothed latency
FLOOR_WINDOW = 200  # answers after which the latency floor is re-learnt (a path may get slower)


@dataclass
class Slot:
    """One request's turn; the caller says how it ended (default: answered normally)."""

    outcome: str = "ok"  # "ok" | "throttled" (429) | "failed" (5xx, dropped, timed out)
    room: bool = True  # False: the rate-limit state says more in flight would not help
    ticket: int = 0  # from acquire: tells release whether the limit was reached meanwhile
    started: float | None = None  # when the request was sent (the limit's clock)
    clock: Callable[[], float] = time.monotonic

    def sending(self) -> None:
        """The request leaves now: a wait inside the slot (pacing) is not the API's latency."""
        self.started = self.clock()

    def throttled(self) -> None:
        self.outcome = "throttled"

    def failed(self) -> None:
        self.outcome = "failed"


class AdaptiveLimit:
    def __init__(
        self,
        name: str,
        maximum: int,
        *,
        initial: int = 4,
        stop: StopSignal | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.maximum = max(1, maximum)
        self.limit = float(min(self.maximum, max(1, initial)))
        self.in_flight = 0
        self.peak = 0  # the most requests that were in flight at once
        self.decreases = 0
        self._saturations = 0  # how often every slot was taken: growing the limit can help then
        self._slow_start = True
        self._floor: float | None = None  # the lowest latency seen in this window
        self._smoothed: float | None = None
        self._next_floor: float | None = None
        self._samples = 0
        self._last_decrease = float("-inf")
        self._stop = stop or StopSignal()
        self._clock = clock
        self._cond = threading.Condition()

    @property
    def current(self) -> int:
        return int(self.limit)

    @contextmanager
    def slot(self) -> Iterator[Slot]:
        """Wait for a free slot, time the request inside the block, learn from how it ended."""
        slot = Slot(ticket=self.acquire(), clock=self._clock)
        slot.sending()
        try:
            yield slot
        except BaseException:
            outcome = "failed" if slot.outcome == "ok" else slot.outcome
            self.release(None, outcome, room=slot.room, ticket=slot.ticket, started=slot.started)
            raise
        latency = self._clock() - (slot.started or 0.0)
        self.release(latency, slot.outcome, room=slot.room, ticket=slot.ticket, started=slot.started)

    def acquire(self) -> int:
        """Take a slot (waiting while all are taken); returns the ticket for `release`."""
        with self._cond:
            while self.in_flight >= int(self.limit):
                self._stop.check()
                self._cond.wait(0.2)
            ticket = self._saturations
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.in_flight >= int(self.limit):
                self._saturations += 1
            return ticket

    def release(
        self,
        latency: float | None,
        outcome: str = "ok",
        *,
        room: bool = True,
        ticket: int | None = None,
        started: float | None = None,
    ) -> None:
        with self._cond:
            # every slot was taken while this request was in flight: more slots could have helped
            busy = ticket is None or self._saturations > ticket
            self.in_flight -= 1
            if outcome in ("throttled", "failed"):
                if started is None or started >= self._last_decrease:  # sent before it: old news
                    self._decrease(0.5 if outcome == "throttled" else 0.8)
            elif latency is not None:
                self._learn(latency, busy and room)
            self._cond.notify_all()

    def _learn(self, latency: float, may_grow: bool) -> None:
        self._samples += 1
        self._next_floor = latency if self._next_floor is None else min(self._next_floor, latency)
        if self._floor is None or latency < self._floor:
            self._floor = latency
        if self._samples % FLOOR_WINDOW == 0:
            self._floor, self._next_floor = self._next_floor, None
        smoothed = self._smoothed = (
            latency if self._smoothed is None else (SMOOTHING * latency + (1 - SMOOTHING) * self._smoothed)
        )
        if smoothed > RISING * self._floor + SLACK:
            if self._clock() - self._last_decrease >= CALM * smoothed:
                self._decrease(0.9)
        elif may_grow and smoothed <= FLAT * self._floor + SLACK and self.limit < self.maximum:
            step = 1.0 if self._slow_start else 1.0 / self.limit
            self.limit = min(float(self.maximum), self.limit + step)

    def _decrease(self, factor: float) -> None:
        self._last_decrease = self._clock()
        self._slow_start = False
        self.limit = max(1.0, self.limit * factor)
        self.decreases += 1

    def to_dict(self) -> dict[str, int | float]:
        return {"limit": self.current, "peak": self.peak, "maximum": self.maximum, "decreases": self.decreases}

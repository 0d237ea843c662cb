"""The adaptive concurrency limit, driven by a fake clock (no timing in the assertions)."""

from __future__ import annotations

import threading
import time

import pytest

from opsgenie_export.concurrency import AdaptiveLimit
from opsgenie_export.errors import Interrupted
from opsgenie_export.port.client import RateWindow
from opsgenie_export.transport import StopSignal, WaitBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _round(limit: AdaptiveLimit, clock: FakeClock, latency: float, outcome: str = "ok", room: bool = True) -> None:
    """Fill every slot of the current limit, then answer them all after `latency` seconds."""
    started = clock.now
    tickets = [limit.acquire() for _ in range(limit.current)]
    clock.now += latency
    for ticket in tickets:
        limit.release(latency, outcome, room=room, ticket=ticket, started=started)


def test_grows_to_the_maximum_while_latency_stays_flat() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=4, clock=clock)
    seen = []
    for _ in range(4):
        _round(limit, clock, 0.020)
        seen.append(limit.current)
    assert seen[0] > 4  # slow start: more than one per round trip
    assert limit.current == 16
    assert limit.peak == 16
    for _ in range(5):
        _round(limit, clock, 0.020)
    assert limit.current == 16  # --workers is the upper bound


def test_does_not_grow_when_the_limit_is_not_used() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=4, clock=clock)
    for _ in range(50):  # one request at a time: more slots would not help
        ticket = limit.acquire()
        clock.now += 0.02
        limit.release(0.02, ticket=ticket)
    assert limit.current == 4


def test_does_not_grow_without_rate_limit_room() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=4, clock=clock)
    for _ in range(10):
        _round(limit, clock, 0.020, room=False)
    assert limit.current == 4


def test_halves_once_per_burst_of_429_or_5xx() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=16, clock=clock)
    _round(limit, clock, 0.020)
    _round(limit, clock, 0.020, outcome="throttled")  # 16 answers, one burst: one decrease
    assert limit.current == 8
    assert limit.decreases == 1
    _round(limit, clock, 0.020, outcome="failed")  # a 5xx burst a round trip later: by a fifth
    assert limit.current == 6
    assert limit.decreases == 2
    for _ in range(10):
        _round(limit, clock, 0.020, outcome="throttled")
    assert limit.current == 1  # never below one


def test_a_throttled_window_plus_requests_in_flight_is_spent() -> None:
    """Port's remaining count covers the answered requests only: those in flight spend it too."""
    stop = StopSignal()
    window = RateWindow(reserve=2, budget=WaitBudget(600, stop))
    reset = str(time.time() + 60)
    window.observe({"x-ratelimit-remaining": "10", "x-ratelimit-reset": reset}, in_flight=5)
    window.acquire()  # 10 - 5 = 5 left: goes at once
    assert window._blocked_until == 0.0
    window.observe({"x-ratelimit-remaining": "9", "x-ratelimit-reset": reset}, in_flight=7)
    stop.set(2)  # the next acquire waits for the reset (9 - 7 = 2, the reserve): interrupt that wait
    with pytest.raises(Interrupted):
        window.acquire()
    assert window._blocked_until > time.time() + 30


def test_after_a_decrease_growth_is_additive() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=8, clock=clock)
    _round(limit, clock, 0.020, outcome="throttled")
    assert limit.current == 4
    for _ in range(3):
        before = limit.current
        _round(limit, clock, 0.020)
        assert before <= limit.current <= before + 1  # at most one per round trip: no slow start
    assert limit.current >= 6


def test_shrinks_when_latency_keeps_rising() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=16, clock=clock)
    for _ in range(3):
        _round(limit, clock, 0.020)
    for _ in range(40):  # the server queues: answers take five times the floor
        _round(limit, clock, 0.100)
    assert limit.current < 16
    assert limit.decreases >= 1


def test_one_slow_answer_is_noise() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=16, clock=clock)
    for _ in range(3):
        _round(limit, clock, 0.020)
    ticket = limit.acquire()
    clock.now += 0.2
    limit.release(0.2, ticket=ticket)
    assert limit.current == 16
    assert limit.decreases == 0


def test_acquire_blocks_at_the_limit_and_wakes_on_release() -> None:
    limit = AdaptiveLimit("api", 2, initial=2)
    limit.acquire()
    limit.acquire()
    entered = threading.Event()

    def third() -> None:
        limit.acquire()
        entered.set()

    thread = threading.Thread(target=third, daemon=True)
    thread.start()
    assert not entered.wait(0.3)  # a third request waits for a free slot
    limit.release(0.02)
    assert entered.wait(10)
    thread.join(10)
    assert limit.peak == 2


def test_a_waiting_request_stops_on_interrupt() -> None:
    stop = StopSignal()
    limit = AdaptiveLimit("api", 1, initial=1, stop=stop)
    limit.acquire()
    stop.set(2)
    with pytest.raises(Interrupted):
        limit.acquire()


def test_slot_counts_an_exception_as_a_failure() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit("api", 16, initial=8, clock=clock)
    _round(limit, clock, 0.02)
    before = limit.current
    with pytest.raises(ConnectionError), limit.slot():
        clock.now += 1
        raise ConnectionError("dropped")
    assert limit.current == int(before * 0.8)  # a dropped connection: by a fifth
    assert limit.in_flight == 0

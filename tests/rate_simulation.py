"""A simulated relay and send loop on a simulated clock, to test the rate controller as pure logic.

The relay counts requests in a sliding one-second window at its limit (the limit may change
mid-run) and refuses over it with a 429 + Retry-After; it answers after a random latency, and
may fail requests at random: overload 429s, 5xx, dropped connections, timeouts. The send loop
is what `relay.Pacer` and `relay.Sender` do: a leaky bucket at the controller's rate, a cap in
flight, each failed request retried after its Retry-After or a jittered back-off, and a shared
pause when the controller asks for one. Thousands of simulated seconds take milliseconds, and
a seeded scenario always ends the same way.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from localize.sending.ratelimit import STEP_S, RateController, RelayLimits


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SimRelay:
    """What the relay does with each request that reaches it."""

    limit_rps: Callable[[float], float]  # the limit at a moment of the run
    latency_s: float = 0.08
    jitter_s: float = 0.04
    overload_share: float = 0.0  # 429 engine_overloaded_error at random, Retry-After: 1
    fault_share: float = 0.0  # first and second attempts: 5xx, dropped, timeout, a stray 429 at random
    timeout_s: float = 3.0
    retry_after_s: float = 1.0
    states_limits: bool = False  # sends x-ratelimit-* headers
    random_429_share: float = 0.0  # rate-limit 429s at random, whatever the rate (a gateway's bad day)...
    random_429_until_s: float = float("inf")  # ...until this moment of the run
    seed: int = 1
    window: collections.deque[float] = field(default_factory=collections.deque)
    requests: int = 0
    rejected_429: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def receive(self, now: float, attempt: int) -> tuple[str, float]:
        """(outcome, seconds until the sender knows it) for a request arriving now."""
        self.requests += 1
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        if len(self.window) >= self.limit_rps(now):
            self.rejected_429 += 1
            return "rate_limited", 0.002
        if self.random_429_share and now < self.random_429_until_s and self.rng.random() < self.random_429_share:
            self.rejected_429 += 1
            return "rate_limited", 0.002
        self.window.append(now)
        if self.overload_share and self.rng.random() < self.overload_share:
            return "overloaded", 0.002
        latency = max(0.005, self.rng.gauss(self.latency_s, self.jitter_s / 2))
        if attempt <= 2 and self.fault_share and self.rng.random() < self.fault_share:
            fault = self.rng.choice(["server_error", "dropped", "timeout", "rate_limited"])
            if fault == "rate_limited":  # a stray one, though the window has room
                self.rejected_429 += 1
                return fault, latency
            return fault, self.timeout_s if fault == "timeout" else latency
        return "ok", latency

    def limits(self, now: float) -> RelayLimits:
        limit = self.limit_rps(now)
        return RelayLimits(requests_per_minute=limit * 60, requests_remaining=max(0, limit - len(self.window)))


@dataclass
class SimResult:
    succeeded: int
    requests: int
    rejected_429: int
    first_sent: float
    last_done: float
    lowest_rps: float  # the lowest rate the controller set after its first slow-down
    controller: RateController

    @property
    def achieved_rps(self) -> float:
        return self.succeeded / (self.last_done - self.first_sent)

    @property
    def share_429(self) -> float:
        return self.rejected_429 / self.requests


def simulate(
    relay: SimRelay,
    *,
    jobs: int,
    rpm: float | None,
    concurrency: int = 64,
    start_rps: float | None = None,
    backoff_base_s: float = 1.0,
    max_retries: int = 8,
    seed: int = 2,
) -> SimResult:
    """Send `jobs` requests through a RateController (--rpm `rpm`, or auto when None)."""
    clock = SimClock()
    controller = RateController(ceiling_rps=rpm / 60 if rpm else None, start_rps=start_rps, clock=clock)
    rng = random.Random(seed)
    order = itertools.count()
    ready: collections.deque[tuple[int, int]] = collections.deque((job, 1) for job in range(jobs))
    waiting: list[tuple[float, int, int, int]] = []  # (ready at, order, job, attempt)
    in_flight: list[tuple[float, int, int, int, float, str]] = []  # (known at, order, job, attempt, sent, outcome)
    last_sent = float("-inf")
    paused_until = 0.0
    succeeded = 0
    first_sent = None
    last_done = 0.0
    lowest = float("inf")
    while ready or waiting or in_flight:
        can_send = ready and len(in_flight) < concurrency
        t_send = max(clock.now, last_sent + 1 / controller.rate_rps, paused_until) if can_send else float("inf")
        t_known = in_flight[0][0] if in_flight else float("inf")
        t_ready = waiting[0][0] if waiting else float("inf")
        # The pacer ticks the controller every step while a request waits for a ramping rate.
        t_tick = clock.now + STEP_S if can_send and controller.is_ramping else float("inf")
        clock.now = min(t_send, t_known, t_ready, t_tick)
        if clock.now == t_tick and t_tick < t_send:
            controller.tick()
        elif clock.now == t_known:
            _, _, job, attempt, sent_at, outcome = heapq.heappop(in_flight)
            last_done = clock.now
            if outcome == "ok":
                succeeded += 1
                controller.on_answered()
                if relay.states_limits:
                    paused_until = max(paused_until, clock.now + controller.on_headers(relay.limits(clock.now)))
                continue
            if outcome == "rate_limited":
                wait = relay.retry_after_s
                paused_until = max(paused_until, clock.now + controller.on_rate_limited(sent_at, wait))
                lowest = min(lowest, controller.rate_rps)
            else:
                controller.on_answered()
                controller.on_overloaded(sent_at)
                ceiling = min(30.0, backoff_base_s * 2 ** (attempt - 1))
                wait = relay.retry_after_s if outcome == "overloaded" else rng.uniform(0, ceiling)
                if controller.slowdowns or controller.overload_slowdowns:
                    lowest = min(lowest, controller.rate_rps)
            if attempt <= max_retries:
                heapq.heappush(waiting, (clock.now + wait, next(order), job, attempt + 1))
        elif clock.now == t_ready:
            _, _, job, attempt = heapq.heappop(waiting)
            ready.append((job, attempt))
        else:
            if controller.tick() and clock.now < last_sent + 1 / controller.rate_rps:
                continue  # slower now: the bucket lets the next one go later
            job, attempt = ready.popleft()
            last_sent = clock.now
            first_sent = clock.now if first_sent is None else first_sent
            controller.on_sent(clock.now)
            outcome, delay = relay.receive(clock.now, attempt)
            heapq.heappush(in_flight, (clock.now + delay, next(order), job, attempt, clock.now, outcome))
    return SimResult(
        succeeded=succeeded,
        requests=relay.requests,
        rejected_429=relay.rejected_429,
        first_sent=first_sent or 0.0,
        last_done=last_done,
        lowest_rps=lowest,
        controller=controller,
    )


def steady(limit: float) -> Callable[[float], float]:
    return lambda now: limit


def drops(first: float, then: float, *, at_s: float) -> Callable[[float], float]:
    return lambda now: first if now < at_s else then

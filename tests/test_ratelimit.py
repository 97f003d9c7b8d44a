"""The rate controller as pure logic: unit rules with a hand clock, and whole scenarios against a
simulated relay (tests/rate_simulation.py) on a simulated clock. A seeded scenario always ends the
same way, so asserting its outcome with a margin is not a timing assertion."""

from __future__ import annotations

import asyncio

import pytest
from rate_simulation import SimRelay, drops, simulate, steady

from localize.sending.ratelimit import FAIR_SHARE, AdjustableLimiter, RateController, RelayLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def send_for(controller: RateController, clock: Clock, seconds: float, rps: float) -> None:
    """Send at `rps` for a while, every request taken and answered at once."""
    step = 1 / rps
    end = clock.now + seconds
    while clock.now < end:
        controller.tick()
        controller.on_sent(clock.now)
        controller.on_answered()
        clock.now += step


# --- rules --------------------------------------------------------------------------------


def refuse(controller: RateController, clock: Clock, count: int, *, retry_after_s: float | None = None) -> float:
    """`count` requests sent now and refused for the rate, as a relay over its limit does;
    the longest shared pause the controller asked for."""
    pauses = []
    for _ in range(count):
        controller.on_sent(clock.now)
        pauses.append(controller.on_rate_limited(clock.now, retry_after_s))
        clock.now += 0.0005
    return max(pauses)


def test_a_relay_refusing_over_its_limit_slows_the_rate_to_just_under_what_it_took() -> None:
    clock = Clock()
    controller = RateController(ceiling_rps=500, clock=clock)
    send_for(controller, clock, 2.0, rps=400)
    refuse(controller, clock, 10)
    assert controller.rate_rps == pytest.approx(400 * 0.97, rel=0.02)  # textbook AIMD would say 250
    assert controller.report().limit_found_rps == pytest.approx(400, rel=0.02)
    assert controller.report().source == "found"


def test_a_stray_429_amid_requests_the_relay_takes_slows_nothing() -> None:
    """Gateways on a bad day send a 429 now and then: only its own request waits."""
    clock = Clock()
    controller = RateController(ceiling_rps=100, clock=clock)
    for n in range(1000):
        controller.tick()
        controller.on_sent(clock.now)
        if n % 20 == 7:  # 5% of requests, spread out
            assert controller.on_rate_limited(clock.now, 1.0) == 0.0
        else:
            controller.on_answered()
        clock.now += 0.01
    assert controller.rate_rps == 100
    assert (controller.slowdowns, controller.report().stray_429s) == (0, 50)


def test_requests_still_in_flight_count_as_taken() -> None:
    """Judged from answers received alone, a relay with slow answers looks like it took nothing."""
    clock = Clock()
    controller = RateController(ceiling_rps=500, clock=clock)
    for _ in range(200):  # 200/s for a second, none answered yet
        controller.tick()
        controller.on_sent(clock.now)
        clock.now += 0.005
    refuse(controller, clock, 10)
    assert controller.report().limit_found_rps == pytest.approx(200, rel=0.05)


def test_a_handful_of_requests_is_no_evidence_of_a_limit() -> None:
    clock = Clock()
    controller = RateController(ceiling_rps=10, clock=clock)
    send_for(controller, clock, 0.5, rps=10)  # five requests taken
    refuse(controller, clock, 8)
    assert controller.report().limit_found_rps is None
    assert controller.rate_rps == pytest.approx(5)  # halved, not set to "5 requests were taken"


def test_a_burst_of_429s_counts_once() -> None:
    clock = Clock()
    controller = RateController(ceiling_rps=500, clock=clock)
    send_for(controller, clock, 1.0, rps=400)
    refuse(controller, clock, 40)
    assert controller.slowdowns == 1
    assert controller.rate_limited == 40
    assert controller.report().stray_429s == 0  # its first refusals, held as possible strays, were the burst
    assert controller.shared_pauses <= 1  # one shared pause at most, not one per 429


def test_the_shared_pause_lasts_until_the_relays_window_has_room() -> None:
    """600/s into a 400-a-second window: the relay refuses until a second after the window's
    oldest request, so every sender waits that long, not Retry-After's full second."""
    clock = Clock()
    controller = RateController(ceiling_rps=600, clock=clock)
    start = clock.now
    send_for(controller, clock, 400 / 600, rps=600)
    pause = refuse(controller, clock, 10, retry_after_s=1.0)
    assert 0.2 < pause < 0.5  # the window frees at start + 1.0 s; now is start + 0.67 s
    assert clock.now + pause == pytest.approx(start + 1.0, abs=0.05)


def test_a_limit_that_falls_below_the_settled_rate_waits_the_whole_retry_after() -> None:
    clock = Clock()
    controller = RateController(ceiling_rps=500, clock=clock)
    send_for(controller, clock, 1.0, rps=400)
    refuse(controller, clock, 10)
    send_for(controller, clock, 3.0, rps=controller.rate_rps)  # settled and taken...
    assert refuse(controller, clock, 10, retry_after_s=2.0) == 2.0  # ...until the limit fell


def test_overload_never_compounds_into_a_collapse() -> None:
    """Every answer an overload for ten seconds: the rate slows at most once a window, and
    never below a fair share of what the relay had been sustaining."""
    clock = Clock()
    controller = RateController(ceiling_rps=100, clock=clock)
    send_for(controller, clock, 2.0, rps=100)
    for _ in range(1000):
        controller.tick()
        controller.on_sent(clock.now)
        controller.on_answered()
        controller.on_overloaded(clock.now)
        clock.now += 0.01
    assert controller.rate_rps >= FAIR_SHARE * 100
    assert controller.slowdowns == 0
    assert controller.overloaded == 1000


def test_sporadic_overload_does_not_slow_the_rate_at_all() -> None:
    clock = Clock()
    controller = RateController(ceiling_rps=100, clock=clock)
    for n in range(1000):
        controller.tick()
        controller.on_sent(clock.now)
        controller.on_answered()
        if n % 33 == 0:
            controller.on_overloaded(clock.now)
        clock.now += 0.01
    assert controller.rate_rps == 100
    assert controller.overload_slowdowns == 0


def test_after_a_slowdown_the_rate_is_back_to_the_sustained_rate_within_a_second() -> None:
    clock = Clock()
    controller = RateController(ceiling_rps=100, clock=clock)
    send_for(controller, clock, 3.0, rps=100)
    for _ in range(60):  # a burst of failures: the rate slows, within its bound
        controller.on_sent(clock.now)
        controller.on_answered()
        controller.on_overloaded(clock.now)
        clock.now += 0.01
    assert controller.rate_rps < 100
    send_for(controller, clock, 1.0, rps=controller.rate_rps)
    assert controller.rate_rps == 100


def test_relay_headers_give_the_limit_without_a_429() -> None:
    clock = Clock()
    controller = RateController(ceiling_rps=None, clock=clock)
    controller.tick()
    assert controller.on_headers(RelayLimits(requests_per_minute=5400, requests_remaining=5000)) == 0.0
    assert controller.rate_rps == pytest.approx(90 * 0.97)  # under it: the relay's window may be a second
    assert controller.report().source == "headers"
    assert (
        controller.on_headers(RelayLimits(requests_per_minute=5400, requests_remaining=0, requests_reset_s=0.4)) == 0.4
    )


def test_headers_never_raise_a_configured_ceiling() -> None:
    controller = RateController(ceiling_rps=10, clock=Clock())
    controller.on_headers(RelayLimits(requests_per_minute=6000))
    assert controller.rate_rps == 10


def test_auto_starts_from_a_previous_runs_rate() -> None:
    assert RateController(ceiling_rps=None, start_rps=42.0, clock=Clock()).rate_rps == 42.0


def test_auto_does_not_grow_a_rate_it_is_not_using() -> None:
    """Sixteen slots and slow answers cap the sends far below the rate: no reason to raise it."""
    clock = Clock()
    controller = RateController(ceiling_rps=None, start_rps=20, clock=clock)
    send_for(controller, clock, 10.0, rps=4)
    assert controller.rate_rps == 20


def test_tpm_limiter_gives_back_what_a_reservation_did_not_use() -> None:
    async def scenario() -> tuple[bool, bool]:
        limiter = AdjustableLimiter(1000, 60)
        await limiter.acquire(900)  # prompt + max_tokens, reserved before sending
        before = limiter.has_capacity(500)
        limiter.release(800)  # the answer used only 100 of them
        return before, limiter.has_capacity(500)

    assert asyncio.run(scenario()) == (False, True)


# --- scenarios against the simulated relay (the goals of bench/rate_limit.py) --------------


def test_a_known_limit_is_ridden_without_a_429() -> None:
    result = simulate(SimRelay(steady(440)), jobs=3000, rpm=400 * 60)  # told 400/s, window at 440
    assert result.achieved_rps >= 0.97 * 400
    assert result.rejected_429 == 0


def test_told_too_high_a_limit_it_settles_under_the_real_one_after_a_few_429s() -> None:
    result = simulate(SimRelay(steady(400)), jobs=3000, rpm=600 * 60)
    assert result.achieved_rps >= 0.93 * 400
    assert result.rejected_429 <= 10


@pytest.mark.parametrize("limit", [25, 90])
def test_auto_finds_an_unknown_limit_fast(limit: int) -> None:
    result = simulate(SimRelay(steady(limit)), jobs=1000, rpm=None)
    assert result.achieved_rps >= 0.85 * limit
    assert result.share_429 <= 0.05
    assert result.controller.report().limit_found_rps == pytest.approx(limit, rel=0.05)


@pytest.mark.parametrize("rpm", [100 * 60, None], ids=["known", "auto"])
def test_sporadic_overload_429s_cost_only_their_own_retries(rpm: int | None) -> None:
    """3% of requests answered `engine_overloaded_error` with Retry-After: 1, at random."""
    result = simulate(SimRelay(steady(100), overload_share=0.03), jobs=1000, rpm=rpm)
    assert result.succeeded == 1000
    assert result.achieved_rps >= 0.85 * 100
    assert result.controller.report().overloaded >= 20
    assert result.lowest_rps >= 0.9 * 100


def test_mixed_faults_finish_fast_and_never_collapse_the_rate() -> None:
    """45% of first and second attempts fail (5xx, dropped, 3 s timeouts), 16 in flight."""
    relay = SimRelay(steady(100), fault_share=0.45, timeout_s=3.0)
    result = simulate(relay, jobs=120, rpm=None, concurrency=16)
    assert result.succeeded == 120
    assert result.last_done - result.first_sent < 30
    assert result.lowest_rps >= 1.0


def test_a_limit_that_drops_mid_run_is_followed_down() -> None:
    result = simulate(SimRelay(drops(100, 50, at_s=5.0)), jobs=2000, rpm=None)
    assert result.succeeded == 2000
    assert result.controller.rate_rps == pytest.approx(50 * 0.97, rel=0.05)
    assert result.share_429 <= 0.02


def test_a_relay_that_states_its_limit_is_ridden_from_the_start() -> None:
    result = simulate(SimRelay(steady(90), states_limits=True), jobs=1000, rpm=None)
    assert result.achieved_rps >= 0.9 * 90
    assert result.share_429 <= 0.01
    assert result.controller.report().source == "headers"


def test_after_random_rate_limit_429s_stop_the_rate_recovers_to_the_configured_one() -> None:
    """A gateway refuses 45% of requests with rate-limit 429s, at random, for 20 s, whatever the
    rate: the controller slows (it cannot tell), and once the refusals stop it is back at the
    configured --rpm within seconds, not crawling back from the floor at +2% a second."""
    relay = SimRelay(steady(1000), random_429_share=0.45, random_429_until_s=20.0)
    result = simulate(relay, jobs=6000, rpm=6000)  # --rpm 6000: 100/s, far under the relay's limit
    assert result.succeeded == 6000
    assert result.lowest_rps < 50  # it did slow down while the 429s came
    assert result.controller.rate_rps == pytest.approx(100)
    # The spell costs its 20 s and the quiet QUIET_S after it; then 100/s (245 s in all before this was fixed).
    assert result.last_done < 20.0 + 5.0 + 6000 / 100 + 5.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_rate_limit_429s_that_never_stop_do_not_collapse_the_rate(seed: int) -> None:
    """A gateway refuses 45% of requests with rate-limit 429s, at random, for the whole run: a
    slow-down does not lower the share refused, so after one spell the controller goes back to
    --rpm and treats refusals at that share as strays (each waits its Retry-After). It settled
    at 0.05 requests a second of 10 before (31 jobs a minute instead of the 330 the refusals allow)."""
    relay = SimRelay(steady(1000), random_429_share=0.45, seed=seed)
    result = simulate(relay, jobs=600, rpm=600, max_retries=30)
    assert result.succeeded == 600
    assert result.controller.rate_rps == pytest.approx(10)
    assert result.achieved_rps >= 0.8 * 10 * (1 - 0.45)  # most of what the refusals leave

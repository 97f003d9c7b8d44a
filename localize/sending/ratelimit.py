"""How fast to send: an adjustable leaky bucket, and a controller that adapts the rate to
what the relay accepts.

The controller tells three signals apart:

- **A rate-limit 429** means "send slower". The rate drops to just under what the relay took
  in the window before the refused request (answers still in flight included), measured from
  enough requests to mean something; with too few, it halves. The refusals that follow from
  requests sent before the slow-down took hold are the same burst and count once. The refused
  request waits its Retry-After; every sender waits only until the relay's window has room for
  the new rate (worked out from our own send times), and the whole Retry-After only when the
  relay refuses a rate it took before. A 429 below a rate the relay has been taking, while
  few requests are refused, is a stray (gateways on a bad day send them): only its request
  waits; the rate stands, so strays cannot ratchet it down. A spell of refusals whose share
  stays the same however far the rate falls (a gateway refusing at random, not a limit) is
  recognised once the rate has halved: the rate goes back up, and refusals at that share are
  strays until a 429-free QUIET_S ends the spell.
- **Overload and other transient failures** (engine_overloaded_error, 5xx, timeouts) mean
  "retry that request later". They slow the shared rate only when they are a large share of
  recent answers, and never below half of the rate the relay has been sustaining, so repeated
  signals cannot compound into a collapse.
- **The relay's own numbers** (`x-ratelimit-*` headers), where it sends them, give the limit
  outright: no 429 needed.

After a slow-down the rate returns fast (x1.5 every eighth of a second) to the last rate the
relay sustained; once no 429 has come for QUIET_S, to the fastest rate it ever sustained in the
run (random 429s on a gateway's bad day look like a limit while they last, and must not leave
the rate at the floor they pushed it to once they stop). It probes above that gently (+2% a
second), and only once it has run quietly for a while just under a limit a 429 measured:
relays' limits rarely move, and each probe costs 429s. With `--rpm auto` it starts low and
triples every eighth of a second until the first 429 or header shows the limit.

Every method is pure logic over an injected clock, so tests drive it through thousands of
simulated seconds in milliseconds (tests/rate_simulation.py).
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

Clock = Callable[[], float]

WINDOW_S = 1.0  # relays count requests in about this window (the benchmark relay does)
UNDER_LIMIT = 0.97  # settle this far under a limit found by a 429
MIN_EVIDENCE = 10  # requests in the window before a 429 may say where the limit is
STRAY_REFUSALS = 3  # a 429 is a stray unless at least this many...
STRAY_SHARE = 0.15  # ...and this share of the last SHARE_SAMPLES requests were refused
SHARE_SAMPLES = 50
SHARE_FLOOR = 50  # (a share of fewer requests than this is luck, not a share)
STEP_S = 0.125  # how often the rate may grow
SLOW_START = 3.0  # --rpm auto before any limit is known: this much faster every STEP_S (1 → 100/s in half a second)
RECOVER = 1.5  # back toward the sustained rate after a slow-down: this much every STEP_S
PROBE_PER_S = 0.02  # above the sustained rate: this much faster each second without a 429
PROBE_AFTER_S = 10.0  # ...but only this long after a 429 measured the limit
OVERLOAD_SHARE = 0.25  # transient failures slow the rate only above this share of a window's answers
OVERLOAD_SLOWDOWN = 0.8  # ...by this factor, once a window at most
FAIR_SHARE = 0.5  # ...and never below this share of the rate the relay has been sustaining
AUTO_START_RPS = 1.0  # --rpm auto without a previous run's figure: the relay's standard tier
MIN_RPS = 0.05  # never slower than 3 requests per minute (Moonshot's Tier 0)
HORIZON_S = 30.0  # how much send history to keep
QUIET_S = 5.0  # this long without a 429, the fastest rate the relay sustained is trusted again
RANDOM_SLOWER = 0.5  # a spell of slow-downs that has left at most this share of the rate...
RANDOM_SAME_SHARE = 0.8  # ...while the relay refuses this much of the share it refused at first: not the rate


class AdjustableLimiter(AsyncLimiter):
    """aiolimiter's leaky bucket, whose rate can change while it runs, and which can take
    back capacity that a reservation did not use (--tpm reserves max_tokens up front)."""

    def set_rate(self, per_second: float, *, burst: float | None = None) -> None:
        """Leak at `per_second` from now on, letting up to `burst` through at once."""
        self._leak()
        if burst is not None:
            self.max_rate = burst
        self._rate_per_sec = per_second
        self.time_period = self.max_rate / per_second
        self._wake_next()

    def release(self, amount: float) -> None:
        self._leak()
        self._level = max(self._level - amount, 0.0)
        self._wake_next()


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """What a relay's `x-ratelimit-*` headers say, in OpenAI's convention: the limits per
    minute, what is left of them, and the seconds until they are whole again."""

    requests_per_minute: float | None = None
    requests_remaining: float | None = None
    requests_reset_s: float | None = None
    tokens_per_minute: float | None = None
    tokens_remaining: float | None = None
    tokens_reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class RateReport:
    """What the controller did, for the summary and for the next `--rpm auto`."""

    final_rps: float
    sustained_rps: float | None  # the fastest rate the relay took (and we used) without refusing
    limit_found_rps: float | None
    source: str  # "configured", "found" (from 429s), "headers", or "probing" (auto, no limit met)
    slowdowns: int  # rate-limit bursts that slowed the rate
    overload_slowdowns: int  # bounded slow-downs for transient failures
    rate_limited: int  # 429s for the rate
    stray_429s: int  # ...of which refused a rate the relay had been taking, now and then: ignored
    overloaded: int  # transient failures: overload, 5xx, timeouts, dropped connections


class _SendTimes:
    """Send times, sorted, for counting how many fall in a window; old ones are dropped."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._start = 0

    def add(self, at: float) -> None:
        if not self._times or at >= self._times[-1]:
            self._times.append(at)
        else:  # answers arrive out of order; their send times mostly near the end
            bisect.insort(self._times, at, lo=self._start)

    def count(self, after: float, until: float) -> int:
        """How many in (after, until]."""
        return bisect.bisect_right(self._times, until, lo=self._start) - bisect.bisect_right(
            self._times, after, lo=self._start
        )

    def count_from(self, at: float) -> int:
        """How many at or after `at`."""
        return len(self._times) - bisect.bisect_left(self._times, at, lo=self._start)

    def nth_latest(self, n: int) -> float | None:
        """The n-th most recent time kept (the oldest kept, if fewer); None when empty."""
        if len(self._times) == self._start:
            return None
        return self._times[max(self._start, len(self._times) - n)]

    def first_after(self, at: float) -> float | None:
        index = bisect.bisect_right(self._times, at, lo=self._start)
        return self._times[index] if index < len(self._times) else None

    def between(self, after: float, until: float) -> list[float]:
        """Those in (after, until], oldest first."""
        lo = bisect.bisect_right(self._times, after, lo=self._start)
        return self._times[lo : bisect.bisect_right(self._times, until, lo=lo)]

    def forget_before(self, at: float) -> None:
        self._start = bisect.bisect_left(self._times, at, lo=self._start)
        if self._start > 4096:  # compact now and then, not on every call
            del self._times[: self._start]
            self._start = 0


class RateController:
    """Decides the send rate from the relay's answers; pure, with an injected clock.

    The sender calls `on_sent` as each request leaves and one of `on_answered`,
    `on_rate_limited` or `on_unsent` when its outcome is known (`on_overloaded` comes on top
    of `on_answered`: the relay took the request, then failed it), and `on_headers` with
    whatever limits the answer stated."""

    def __init__(self, *, ceiling_rps: float | None, start_rps: float | None = None, clock: Clock) -> None:
        self.ceiling_rps = ceiling_rps  # the user's --rpm; None for auto
        self.rate_rps = ceiling_rps if ceiling_rps is not None else (start_rps or AUTO_START_RPS)
        self._clock = clock
        self._sent = _SendTimes()  # every request sent
        self._not_taken = _SendTimes()  # ...of which the relay refused for the rate, or never reached
        self._answers = _SendTimes()  # answer times, and of those the transient failures:
        self._failures = _SendTimes()
        self._last_step: float | None = None  # set by the first send
        self._last_probe = 0.0
        self._burst_until = float("-inf")  # refusals of requests sent before this are one burst
        self._last_overload_slowdown = float("-inf")
        self._found: float | None = None  # the limit a 429 showed, requests/s
        self._headers_rps: float | None = None  # the limit the relay's headers state
        self._sustained: float | None = None  # the fastest rate the relay took (and we used) without refusing
        # The fastest rate the relay has taken in this run, or was said to take (--rpm); a slow-down
        # lowers _sustained, not this: only a refusal on the way back up to it does.
        self._peak: float | None = ceiling_rps
        self._last_429 = float("-inf")
        self._quiet_recovery = False  # climbing back to _peak after QUIET_S without a 429
        self._settled: float | None = None  # where the last rate-limit slow-down put the rate
        self.slowdowns = 0
        self.overload_slowdowns = 0
        self.rate_limited = 0
        self._strays: list[float] = []  # when each stray 429 came
        self._spell: tuple[float, float] | None = None  # a spell of slow-downs: the rate and share at its first
        self._spell_seen = float("-inf")  # ...and its last slow-down
        self._random_share: float | None = None  # refusals that do not follow the rate: this share of requests
        self.overloaded = 0
        self.shared_pauses = 0

    # --- outcomes ---------------------------------------------------------------------------

    def on_sent(self, sent_at: float) -> None:
        self._sent.add(sent_at)

    def on_answered(self) -> None:
        """The relay took the request (answered it, failed it, or let it time out)."""
        self._answers.add(self._clock())

    def on_unsent(self, sent_at: float) -> None:
        """The request never reached the relay (connection refused)."""
        self._not_taken.add(sent_at)

    def on_rate_limited(self, sent_at: float, retry_after_s: float | None = None) -> float:
        """A 429 for the rate. Slows once per burst, and returns how long every sender should
        hold off: until the relay's window has room for the new rate, or the Retry-After in
        full when the relay now refuses a rate it took before (its limit fell); not at all
        for the rest of a burst, or for a stray 429."""
        now = self._clock()
        self.rate_limited += 1
        self._not_taken.add(sent_at)
        self._last_429 = now
        if sent_at < self._burst_until:
            return 0.0  # sent before the last slow-down took hold: the same burst
        if self._refusals_at_random(now):
            self._strays.append(now)  # refused at random, whatever the rate: only its request waits
            return 0.0
        known = self._settled if self._headers_rps is None else self._headers_rps  # where we meant to stay
        over_known_limit = known is not None and self.rate_rps > known * 1.001
        if not over_known_limit and not self._refusing_systematically():
            # A 429 now and then, amid requests the relay takes (gateways send strays on a bad
            # day): its request waits its Retry-After; nobody else slows down or waits.
            self._strays.append(now)
            return 0.0
        while self._strays and self._strays[-1] >= now - WINDOW_S:
            self._strays.pop()  # the first refusals of this burst, not strays after all
        taken_rps = self._taken_rps(sent_at)
        # With too few requests to say where the limit is, back off plainly.
        target = self.rate_rps / 2 if taken_rps is None else taken_rps * UNDER_LIMIT
        if self._headers_rps is not None:
            target = min(target, self._headers_rps)
        refused_settled_rate = self._settled is not None and self.rate_rps <= self._settled * 1.001
        if self._quiet_recovery:
            # Refused on the way back up after a quiet spell: a real limit, not a bad spell.
            self._peak = min(self._peak or target, target)
            self._quiet_recovery = False
        self._burst_until = now + WINDOW_S  # the relay's window still holds what was sent before
        if self._spell is None:  # the first slow-down of a spell of 429s: its rate, and the share refused
            self._spell = (self.rate_rps, self._refusal_share())
        self._spell_seen = now
        self._found = taken_rps if taken_rps is not None else self._found
        self.rate_rps = max(MIN_RPS, min(self.rate_rps, target))
        self._sustained = self._settled = self.rate_rps
        self._last_step = self._last_probe = now
        self.slowdowns += 1
        drained_in = self._until_window_takes(sent_at - WINDOW_S, sent_at, now)
        if refused_settled_rate:  # the relay's limit fell: trust its word
            pause = retry_after_s if retry_after_s is not None else max(drained_in, WINDOW_S)
        else:
            pause = drained_in if retry_after_s is None else min(drained_in, retry_after_s)
        if pause > 0:
            self.shared_pauses += 1
        return pause

    def on_overloaded(self, sent_at: float) -> None:
        """A transient failure (overload, 5xx, timeout, dropped connection): retried by its
        own request; slows the shared rate a little only when such failures are common."""
        now = self._clock()
        self.overloaded += 1
        self._failures.add(now)
        answers = self._answers.count(now - WINDOW_S, now)
        failures = self._failures.count(now - WINDOW_S, now)
        if answers < MIN_EVIDENCE or failures <= answers * OVERLOAD_SHARE:
            return
        if now - self._last_overload_slowdown < WINDOW_S:
            return  # once a window: repeated signals do not compound
        floor = FAIR_SHARE * max(self._sustained or 0.0, answers / WINDOW_S)
        slowed = max(floor, MIN_RPS, self.rate_rps * OVERLOAD_SLOWDOWN)
        if slowed < self.rate_rps:
            self.rate_rps = slowed
            self._last_overload_slowdown = self._last_step = now
            self.overload_slowdowns += 1

    def on_headers(self, limits: RelayLimits) -> float:
        """The relay stated its request limit: keep under it, no 429 needed. Returns how long
        every sender should wait when it says none are left (0 otherwise)."""
        if limits.requests_per_minute is None or limits.requests_per_minute <= 0:
            return 0.0
        stated = limits.requests_per_minute / 60 * UNDER_LIMIT  # its window may be stricter than a minute
        self._headers_rps = stated if self.ceiling_rps is None else min(stated, self.ceiling_rps)
        if self.rate_rps > self._headers_rps or self._found is None:
            self.rate_rps = self._headers_rps
        self._sustained = max(self._sustained or 0.0, self.rate_rps)
        if limits.requests_remaining == 0 and limits.requests_reset_s:
            return min(limits.requests_reset_s, HORIZON_S)
        return 0.0

    # --- growth -----------------------------------------------------------------------------

    def tick(self) -> bool:
        """Called before each send; returns whether the rate changed."""
        now = self._clock()
        if self._last_step is None:  # the first send starts the clock
            self._last_step = self._last_probe = now
            return False
        self._forget(now)
        elapsed = now - self._last_step
        if elapsed < STEP_S or now < self._burst_until:
            return False
        self._last_step = now
        self._measure_sustained(now)
        back_to = self._quiet_target()
        if back_to is not None and now - self._last_429 >= QUIET_S and (self._sustained or 0.0) < back_to:
            self._sustained = back_to  # quiet again: back to the fastest rate the relay took
            self._quiet_recovery = True
        # Between sends at a low rate several steps pass: they all count, if the rate was used.
        steps = min(int(elapsed / STEP_S), 8)
        used = self._sent.count(now - elapsed, now) >= self.rate_rps * elapsed / 2 - 1
        cap = self._cap()
        if self._sustained is not None and self.rate_rps < self._sustained:
            grown = min(self.rate_rps * RECOVER**steps, self._sustained)  # back to what the relay took
        elif not used:
            return False  # sending slower than allowed (few jobs, slow answers): no evidence to go faster
        elif self._found is None and self._headers_rps is None and self.ceiling_rps is None:
            grown = self.rate_rps * SLOW_START**steps  # auto: no limit met yet
        elif self._found is not None and now - self._burst_until < PROBE_AFTER_S:
            return False  # just under a limit a 429 measured: probing above it only costs 429s
        elif now - self._last_probe >= 1.0:
            self._last_probe = now
            grown = self.rate_rps * (1 + PROBE_PER_S)
        else:
            return False
        grown = min(grown, cap) if cap is not None else grown
        if grown <= self.rate_rps:
            return False
        self.rate_rps = grown
        return True

    @property
    def is_ramping(self) -> bool:
        """Whether the rate grows on a clock (auto before any limit, or recovering), so the
        sender should tick it while it waits, not only between sends."""
        if self._last_step is None:
            return False
        if self._sustained is not None and self.rate_rps < self._sustained:
            return True
        back_to = self._quiet_target()
        if back_to is not None and self.rate_rps < back_to and self._clock() - self._last_429 >= QUIET_S:
            return True  # the quiet recovery (tick) is due
        return self._found is None and self._headers_rps is None and self.ceiling_rps is None

    @property
    def source(self) -> str:
        """Where the rate's ceiling comes from (RateReport.source)."""
        if self._headers_rps is not None:
            return "headers"
        if self._found is not None:
            return "found"
        return "configured" if self.ceiling_rps is not None else "probing"

    def report(self) -> RateReport:
        return RateReport(
            final_rps=self.rate_rps,
            sustained_rps=self._sustained,
            limit_found_rps=self._found,
            source=self.source,
            slowdowns=self.slowdowns,
            overload_slowdowns=self.overload_slowdowns,
            rate_limited=self.rate_limited,
            stray_429s=len(self._strays),
            overloaded=self.overloaded,
        )

    def _measure_sustained(self, now: float) -> None:
        """The rate the relay took over a span whose answers are in (ending a window ago), if
        it refused none of it: evidence that it takes at least that much. The span holds about
        MIN_EVIDENCE requests at the current rate, so slow runs are measured too."""
        span = min(HORIZON_S / 2, max(WINDOW_S, MIN_EVIDENCE / self.rate_rps))
        since, until = now - WINDOW_S - span, now - WINDOW_S
        taken = self._sent.count(since, until)
        if taken >= 3 and self._not_taken.count(since, until) == 0:
            self._sustained = max(self._sustained or 0.0, taken / span)
            self._peak = max(self._peak or 0.0, self._sustained)

    def _quiet_target(self) -> float | None:
        """Where the rate goes back to once the 429s have stopped: the configured --rpm, or just
        under the fastest rate the relay was measured taking (riding exactly at a limit costs 429s)."""
        if self._peak is None or self._peak == self.ceiling_rps:
            return self._peak
        return self._peak * UNDER_LIMIT

    def _refusals_at_random(self, now: float) -> bool:
        """Whether the relay refuses a share of requests whatever the rate (a gateway's bad day),
        not a rate over its limit. Over a limit, a slow-down to what the relay took stops the
        refusals; at random, they go on at the same share however slow we go. So once the
        slow-downs of a spell have at least halved the rate (RANDOM_SLOWER) and the relay still
        refuses about the share it refused at the first (RANDOM_SAME_SHARE of it, or a little
        more, never much more: a limit that bites harder refuses more), slowing buys nothing:
        the rate goes back to the fastest the relay took, and refusals at that share are strays
        from then on. A share well above it (a real limit on top) slows again; QUIET_S without
        a 429 ends the spell."""
        share = self._refusal_share()
        if self._random_share is not None:
            if share < max(self._random_share * 1.5, self._random_share + STRAY_SHARE):
                return True
            self._random_share = None  # more than the noise: a limit after all
            return False
        if self._spell is None or now - self._spell_seen >= QUIET_S:
            self._spell = None
            return False
        rate, first_share = self._spell
        same = first_share * RANDOM_SAME_SHARE <= share <= first_share / RANDOM_SAME_SHARE + STRAY_SHARE / 3
        if self.rate_rps > rate * RANDOM_SLOWER or not same:
            return False  # (a share that grew as the rate fell: a limit that bites harder, not chance)
        self._random_share = share
        back_to = self._quiet_target()
        if back_to is not None and back_to > self.rate_rps:
            self.rate_rps = back_to
            self._sustained = self._settled = back_to
        self._spell = None
        return True

    def _refusal_share(self) -> float:
        """The share of the last SHARE_SAMPLES requests the relay refused."""
        first = self._sent.nth_latest(SHARE_SAMPLES)
        if first is None:
            return 0.0
        return self._not_taken.count_from(first) / max(self._sent.count_from(first), 1)

    def _refusing_systematically(self) -> bool:
        """Whether the relay refuses a real share of what it is sent: at least STRAY_REFUSALS
        of the last SHARE_SAMPLES requests, and at least STRAY_SHARE of them. Over a limit it
        refuses every request past it, so this holds within a few requests."""
        since = self._sent.nth_latest(SHARE_SAMPLES)
        if since is None:
            return False
        sent = self._sent.count_from(since)
        refused = self._not_taken.count_from(since)
        return refused >= STRAY_REFUSALS and refused >= STRAY_SHARE * max(sent, SHARE_FLOOR)

    def _taken_rps(self, sent_at: float) -> float | None:
        """The rate the relay took up to `sent_at`, requests still in flight included: over its
        window, or, at rates too low for a window to hold enough requests, over what history we
        keep. None when even that is a handful."""
        for span in (WINDOW_S, HORIZON_S):
            since = sent_at - span
            taken = self._sent.count(since, sent_at) - self._not_taken.count(since, sent_at)
            if taken >= MIN_EVIDENCE:
                first = self._sent.first_after(since)
                covered = max(WINDOW_S, sent_at - first) if first is not None else span
                return taken / covered
        return None

    def _until_window_takes(self, since: float, until: float, now: float) -> float:
        """How long to hold off so that sending at the new rate meets no refusal: the relay
        takes the k-th new request once the k-th oldest it holds has left its window."""
        refused = collections.Counter(self._not_taken.between(since, until))
        wait = 0.0
        k = 0
        for sent in self._sent.between(since, until):
            if refused[sent]:
                refused[sent] -= 1
                continue
            wait = max(wait, sent + WINDOW_S - k / self.rate_rps - now)
            k += 1
        return wait

    def _cap(self) -> float | None:
        caps = [cap for cap in (self.ceiling_rps, self._headers_rps) if cap is not None]
        return min(caps) if caps else None

    def _forget(self, now: float) -> None:
        for times in (self._sent, self._not_taken, self._answers, self._failures):
            times.forget_before(now - HORIZON_S)

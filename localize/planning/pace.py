"""How long an answer takes, and how many requests must be in flight to keep --rpm.

A relay's per-minute limit is only reached when enough requests are out at once: with packed
answers of thousands of tokens, each takes minutes, so in flight = rate x time an answer takes
(Little's law). Without --concurrency, a run keeps that many out (16 at least, AUTO_IN_FLIGHT_MAX
at most); the dry run says how long the run takes at the slower of the two limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..config import Settings

# The pace an answer is written at, tokens a second: an assumption (no public figure for the
# standard K2 model; the turbo model was sold at 60-100, Moonshot via cline's moonshot.ts).
ANSWER_TOKENS_PER_S = 40.0
# Before the first token: the prompt read, the queue at the relay.
FIRST_TOKEN_S = 2.0
# The most requests a run keeps in flight on its own (Moonshot allows 400 at tier 4, 1,000 at
# tier 5, KIMI.md §4); --concurrency sets any number up to 1,000, fewer for a relay that limits it.
AUTO_IN_FLIGHT_MAX = 512
# Room over Little's law, for answers slower than the pace above.
IN_FLIGHT_MARGIN = 1.25
# What --rpm auto is assumed to reach when sizing the requests in flight: the standard tier.
AUTO_RPM_ASSUMED = 60


def answer_seconds(tokens: float) -> float:
    """How long an answer of `tokens` takes to arrive, at the expected pace."""
    return FIRST_TOKEN_S + tokens / ANSWER_TOKENS_PER_S


def in_flight(settings: Settings, answer_tokens: Iterable[float]) -> int:
    """Requests to keep in flight: --concurrency when given; else what keeps --rpm going when
    each request's answer is as long as the longest of `answer_tokens` (expected tokens per
    request of each platform and locale), never fewer than the default 16."""
    if "concurrency" in settings.model_fields_set:
        return settings.concurrency
    rpm = settings.rpm if isinstance(settings.rpm, int) else AUTO_RPM_ASSUMED
    longest = max(answer_tokens, default=0.0)
    needed = math.ceil(rpm / 60 * answer_seconds(longest) * IN_FLIGHT_MARGIN)
    return max(settings.concurrency, min(AUTO_IN_FLIGHT_MAX, needed))


def minutes(requests: int, rpm: int | None, concurrency: int, seconds_per_request: float) -> float | None:
    """How long `requests` take: sent at --rpm (unless too few are in flight to keep that
    pace), and then the last one's answer written."""
    if rpm is None:
        return None
    if not requests:
        return 0.0
    by_rate = requests / rpm
    by_flight = requests * seconds_per_request / max(concurrency, 1) / 60
    return max(by_rate, by_flight) + seconds_per_request / 60

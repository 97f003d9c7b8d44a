"""The relay's error taxonomy, Retry-After parsing and the shared pause, as pure functions."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from localize.sending.relay import (
    Pacer,
    RelayFatal,
    RelayRejected,
    RelayRetryable,
    classify_error,
    parse_rate_headers,
    retry_after_seconds,
    usage_from,
)


def body(error_type: str, message: str = "") -> bytes:
    return json.dumps({"error": {"type": error_type, "message": message}}).encode()


@pytest.mark.parametrize(
    "status,payload,cls,kind",
    [
        (401, body("invalid_authentication_error", "Invalid Authentication"), RelayFatal, "auth"),
        (403, body("permission_denied_error"), RelayFatal, "auth"),
        (403, body("exceeded_current_quota_error", "is not active"), RelayFatal, "quota"),
        (429, body("exceeded_current_quota_error", "insufficient balance"), RelayFatal, "quota"),
        (404, body("resource_not_found_error"), RelayFatal, "not_found"),
        (429, body("rate_limit_reached_error", "max RPM"), RelayRetryable, "rate_limited"),
        (429, body("engine_overloaded_error"), RelayRetryable, "overloaded"),
        (500, body("server_error"), RelayRetryable, "server_error"),
        (502, b"<html>Bad Gateway</html>", RelayRetryable, "server_error"),
        (408, b"", RelayRetryable, "server_error"),
        (409, b"", RelayRetryable, "server_error"),
        (400, body("content_filter", "considered high risk"), RelayRejected, "content_filter"),
        (400, body("invalid_request_error", "bad temperature"), RelayRejected, "rejected"),
    ],
)
def test_errors_are_classified_by_type_then_status(status: int, payload: bytes, cls: type, kind: str) -> None:
    error = classify_error(status, payload, {}, model="kimi-k2")
    assert isinstance(error, cls) and error.kind == kind


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(datetime(2026, 11, 24, 12, 0, 7, tzinfo=timezone.utc), usegmt=True)
    assert retry_after_seconds({"Retry-After": later}, now=now.timestamp()) == 7.0
    assert retry_after_seconds({}, "max organization concurrency: 1, please try again after 2 seconds") == 2.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_429_retry_after_reaches_the_error() -> None:
    error = classify_error(429, body("rate_limit_reached_error"), {"Retry-After": "4"}, model="m")
    assert isinstance(error, RelayRetryable) and error.retry_after_s == 4.0


def test_cached_tokens_come_from_details_else_top_level() -> None:
    both = {
        "prompt_tokens": 1336,
        "completion_tokens": 31,
        "cached_tokens": 1280,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    assert usage_from(both).cached_tokens == 1024
    assert usage_from({"prompt_tokens": 19, "completion_tokens": 21, "cached_tokens": 10}).cached_tokens == 10
    assert usage_from({"prompt_tokens": 19, "completion_tokens": 21}).cached_tokens == 0


def test_a_pause_holds_every_sender_not_just_the_one_that_was_told() -> None:
    """A 429's Retry-After pauses all senders: each waits on the shared clock, none sends early."""
    now = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def scenario() -> list[float]:
        pacer = Pacer(rpm=600_000, concurrency=8, clock=lambda: now[0], sleep=fake_sleep)
        pacer.pause(2.0)

        async def send() -> float:
            async with pacer.slot(tokens=10):
                return now[0]

        return await asyncio.gather(*(send() for _ in range(5)))

    started_at = asyncio.run(scenario())
    assert all(moment >= 102.0 for moment in started_at)
    assert slept[0] == pytest.approx(2.0)


def test_a_shorter_pause_does_not_cut_a_longer_one() -> None:
    now = [0.0]
    pacer = Pacer(rpm=60, concurrency=1, clock=lambda: now[0])
    pacer.pause(5.0)
    pacer.pause(1.0)
    assert pacer.pauses_s == [5.0]


def test_rate_limit_headers_are_read_in_openais_convention() -> None:
    limits = parse_rate_headers(
        {
            "X-RateLimit-Limit-Requests": "5000",
            "x-ratelimit-remaining-requests": "4999",
            "x-ratelimit-reset-requests": "12ms",
            "x-ratelimit-limit-tokens": "2000000",
            "x-ratelimit-remaining-tokens": "1999000",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert limits is not None
    assert (limits.requests_per_minute, limits.requests_remaining, limits.requests_reset_s) == (5000, 4999, 0.012)
    assert (limits.tokens_per_minute, limits.tokens_reset_s) == (2_000_000, 360.0)


def test_unreadable_rate_limit_headers_are_ignored_not_trusted() -> None:
    limits = parse_rate_headers(
        {
            "x-ratelimit-limit-requests": "lots",
            "x-ratelimit-remaining-requests": "-3",
            "x-ratelimit-reset-requests": "soon",
        }
    )
    assert limits is not None and (limits.requests_per_minute, limits.requests_remaining, limits.requests_reset_s) == (
        None,
        None,
        None,
    )
    assert parse_rate_headers({"Retry-After": "1"}) is None


def test_a_429_carries_the_limits_its_headers_state() -> None:
    error = classify_error(
        429, body("rate_limit_reached_error"), {"x-ratelimit-limit-requests": "60", "Retry-After": "1"}, model="m"
    )
    assert error.limits is not None and error.limits.requests_per_minute == 60

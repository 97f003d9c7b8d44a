"""The OpenAI-compatible relay: one shared HTTP client, rate limits, retries, error taxonomy.

httpx errors and HTTP statuses are translated here, once, into RelayError subclasses:
RelayRetryable (429, 5xx, timeouts, dropped connections, garbage bodies), RelayRejected
(this request is refused; the run goes on) and RelayFatal (bad key, unknown model, no
balance, relay unreachable: stop sending at once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Annotated, Any, Protocol

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from ..config import API_KEY_VARIABLES, DEFAULT_MAX_TOKENS, Settings
from ..cost import Budget, Price, Usage, cost_usd
from ..errors import BudgetReached, LocalizeError
from ..output.audit import AuditRecord
from ..redact import Redactor
from .ratelimit import STEP_S, AdjustableLimiter, RateController, RelayLimits

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A relay that asks for a longer pause than this is out of quota for the day (KIMI.md §4 saw
# "retry-after: 1152" on a TPD limit): waiting would hold a CI job for hours, so stop instead.
MAX_PAUSE_S = 300.0
BACKOFF_MAX_S = 30.0
# A chat answer is a few kilobytes; a body past this is a broken relay, not a listing.
MAX_BODY_BYTES = 8_000_000
# The slowest a healthy relay writes an answer, tokens a second: an assumption, a quarter of
# what the K2 turbo model was sold at (60-100 a second, Moonshot via cline's moonshot.ts).
# A request asking more than DEFAULT_MAX_TOKENS (a pack) gets --timeout plus
# the time its extra tokens take at this pace: a big pack never times out on a healthy relay.
SLOWEST_TOKENS_PER_S = 15.0


class RelayError(LocalizeError):
    """Something the relay did; `kind` is the short name the audit log and failures use."""

    def __init__(self, kind: str, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.status = status
        self.attempt: int | None = None  # the attempt number that ended the job, set by Sender
        # Sent, but no answer came back (a timeout, a dropped connection): the relay may still
        # have generated and billed it, and its usage never reaches us.
        self.maybe_billed = False
        self.limits: RelayLimits | None = None  # what the answer's x-ratelimit-* headers said


class RelayRetryable(RelayError):
    """Worth another try: 408/409/429/5xx, timeouts, dropped connections, non-JSON bodies.
    `unsent`: it never reached the relay (cannot have been billed, says nothing of the rate)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        maybe_billed: bool = False,
        unsent: bool = False,
    ) -> None:
        super().__init__(kind, message, status=status)
        self.retry_after_s = retry_after_s
        self.maybe_billed = maybe_billed
        self.unsent = unsent


class Failure(Enum):
    """How an HTTP exchange failed, as a backend reports it."""

    UNSENT = "unsent"  # never reached the relay (connection refused, no route, pool full)
    TIMEOUT = "timeout"  # sent; no whole answer within --timeout
    DROPPED = "dropped"  # sent; the connection broke
    TOO_LARGE = "too_large"  # an answer past MAX_BODY_BYTES: not read


class RelayRejected(RelayError):
    """The relay refused this one request (400: invalid or filtered); other jobs may be fine."""


class RelayFatal(RelayError):
    """No request can succeed: bad key, unknown model or URL, no balance, relay unreachable."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One successful HTTP exchange, before its content is validated."""

    content: str
    finish_reason: str | None
    usage: Usage | None  # None: the relay reported none we can believe (counted offline instead)
    request_id: str | None
    relay_cost_usd: Decimal | None  # what the relay says it charged, when it says so
    status: int
    latency_ms: float
    limits: RelayLimits | None = None  # what the answer's x-ratelimit-* headers said
    batch_id: str | None = None  # answered in this batch (billed at the batch price)
    usage_adds_up: bool = True  # False: the usage's total or reasoning exceeded its completion (the larger billed)
    reasoning: str = ""  # the message's reasoning_content, where a relay returns it (a thinking model's)
    model: str | None = None  # the model the answer says answered (an alias the relay resolved)


def answered_record(
    base: Mapping[str, Any],
    completion: Completion,
    usage: Usage,
    cost: Decimal,
    *,
    unreported: bool,
    lead: bool,
    error: tuple[str, str] | None,
    **more: Any,
) -> AuditRecord:
    """The audit record of one job's share of an answered request (`usage` and `cost`: its
    share; `error`: why the answer was not used, as (kind, message)). An unreported bill keeps
    our offline counts apart from the billed totals; a pack's relay-stated charge is on its
    lead's record."""
    return AuditRecord(
        **base,
        status=completion.status,
        error=error[0] if error else None,
        message=error[1] if error else None,
        latency_ms=round(completion.latency_ms, 1),
        usage=None if unreported else usage.as_dict(),
        cost_usd=0.0 if unreported else float(cost),
        relay_cost_usd=float(completion.relay_cost_usd) if completion.relay_cost_usd is not None and lead else None,
        request_id=completion.request_id,
        batch=completion.batch_id or None,
        usage_unreported=unreported,
        usage_mismatch=not completion.usage_adds_up and lead,
        counted_output=usage.output_tokens if unreported else None,
        estimated_cost_usd=float(cost) if unreported else None,
        **more,
    )


def failed_record(
    base: Mapping[str, Any], failed: FailedAttempt, counted_input: int | None, **more: Any
) -> AuditRecord:
    """The audit record of one job's share of a request sent but not answered: the relay may
    still have billed it, and its usage never reaches us, so the report shows these apart
    (`maybe_billed`, with our offline count of the input) instead of guessing them into the totals."""
    billed = failed.error.maybe_billed
    return AuditRecord(
        **base,
        status=failed.error.status,
        error=failed.error.kind,
        message=failed.error.message,
        latency_ms=round(failed.latency_ms, 1),
        usage=None,
        cost_usd=0.0,
        batch=failed.batch_id or None,
        maybe_billed=billed,
        counted_input=counted_input if billed else None,
        **more,
    )


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """An HTTP attempt that produced no completion, for the audit log."""

    number: int
    error: RelayError
    latency_ms: float
    batch_id: str | None = None  # a batch line left unanswered (the batch API's, at its price)


# --- classification (pure) -----------------------------------------------------------------


def classify_error(status: int, body: bytes, headers: Mapping[str, str], *, model: str) -> RelayError:
    """The RelayError for a non-2xx response, by the body's error.type first, then the status."""
    error = _classify(status, body, headers, model=model)
    error.limits = parse_rate_headers(headers)
    return error


def _classify(status: int, body: bytes, headers: Mapping[str, str], *, model: str) -> RelayError:
    error_type, message = error_fields(body)
    said = f": {message}" if message else ""
    if error_type == "exceeded_current_quota_error":
        # Arrives as 429 (2026) or 403 (2025), but retrying cannot help (KIMI.md §4).
        return RelayFatal(
            "quota",
            f"the account has no balance left or is suspended (HTTP {status}){said}",
            status=status,
            hint="top up the account behind the key, then run again; finished work is kept",
        )
    if status in (401, 403):
        return RelayFatal(
            "auth",
            f"the relay rejected the API key (HTTP {status}){said}",
            status=status,
            hint=f"check {API_KEY_VARIABLES[0]} (or {API_KEY_VARIABLES[1]}) and that the key belongs to --base-url",
        )
    if status == 404:
        return RelayFatal(
            "not_found",
            f"the relay does not know model {model!r} or this URL (HTTP 404){said}",
            status=status,
            hint="check --model (`localize models` lists what the relay serves) and --base-url",
        )
    if status == 429 or status in (408, 409) or status >= 500:
        kind = "rate_limited" if status == 429 else "server_error"
        if error_type == "engine_overloaded_error":
            kind = "overloaded"
        return RelayRetryable(
            kind, f"HTTP {status}{said}", status=status, retry_after_s=retry_after_seconds(headers, message)
        )
    kind = "content_filter" if error_type == "content_filter" or "high risk" in message else "rejected"
    return RelayRejected(kind, f"the relay refused the request (HTTP {status}){said}", status=status)


def retry_wait_s(retry_after_s: float | None, retry: int, base_s: float, rng: random.Random) -> float:
    """How long to wait before the `retry`-th retry (from 1): what the relay asked for
    (Retry-After), else full jitter (AWS architecture blog) under a doubling ceiling, which
    spreads the retries of a bad moment apart. The live sender and the batch client both wait so."""
    if retry_after_s is not None:
        return retry_after_s
    return rng.uniform(0, min(BACKOFF_MAX_S, base_s * 2 ** (retry - 1)))


def retry_after_seconds(headers: Mapping[str, str], message: str = "", *, now: float | None = None) -> float | None:
    """How long the relay asks us to wait: retry-after-ms, Retry-After (seconds or an HTTP
    date), else Moonshot's "please try again after N seconds" in the message."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(float(lowered["retry-after-ms"]) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                current = time.time() if now is None else now
                return max(when.timestamp() - current, 0.0)
    match = re.search(r"try again after (\d+(?:\.\d+)?) ?s", message)
    return float(match.group(1)) if match else None


def parse_rate_headers(headers: Mapping[str, str]) -> RelayLimits | None:
    """The relay's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, as
    OpenAI-compatible gateways send them (reset as "1s", "6m0s", "20ms"); None without any."""
    lowered = {name.lower(): value for name, value in headers.items() if name[:12].lower() == "x-ratelimit-"}
    if not lowered:
        return None

    def number(name: str) -> float | None:
        try:
            value = float(lowered.get(name, ""))
        except ValueError:
            return None
        return value if math.isfinite(value) and value >= 0 else None

    return RelayLimits(
        requests_per_minute=number("x-ratelimit-limit-requests"),
        requests_remaining=number("x-ratelimit-remaining-requests"),
        requests_reset_s=_duration_s(lowered.get("x-ratelimit-reset-requests")),
        tokens_per_minute=number("x-ratelimit-limit-tokens"),
        tokens_remaining=number("x-ratelimit-remaining-tokens"),
        tokens_reset_s=_duration_s(lowered.get("x-ratelimit-reset-tokens")),
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_s(value: str | None) -> float | None:
    """ "6m0s" → 360.0, "20ms" → 0.02, "1.5" → 1.5; None when unreadable."""
    if not value:
        return None
    value = value.strip().lower()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(a + b for a, b in parts) != value:
        return None
    return sum(float(amount) * _DURATION_S[unit] for amount, unit in parts)


def error_fields(body: bytes) -> tuple[str, str]:
    """(error.type, error.message) of an error body, the message cut to a readable length: the
    one reader of a relay's error, live and batch alike."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = body[:200].decode("utf-8", "replace").strip()
        return "", " ".join(text.split())
    return error_of(data)


def error_of(data: Any) -> tuple[str, str]:
    """(type or code, message) of a decoded body's `error`: an object or a bare string."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code") or ""
        return str(kind)[:100], " ".join(str(error.get("message") or "").split())[:500]
    if isinstance(error, str):
        return "", " ".join(error.split())[:500]
    return "", ""


# No request has more tokens than this (the largest context window is about a million): a
# count above it is a relay's bug, not a bill to trust.
MAX_REPORTED_TOKENS = 10_000_000
# A relay-stated charge above this per request is not a charge either.
MAX_STATED_COST_USD = Decimal(1000)
# A model id is short; the answer's is cut to this before it is recorded.
MAX_MODEL_CHARS = 100


def parse_completion(status: int, body: bytes, headers: Mapping[str, str], latency_ms: float) -> Completion:
    """A 2xx body → Completion; a body that is not a chat completion is retryable, and may have
    been billed (the relay answered 2xx). Usage that is missing or not believable is None:
    unreported, so the answer is kept and its tokens are counted offline instead."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError, RecursionError):
        snippet = " ".join(body[:120].decode("utf-8", "replace").split())
        raise RelayRetryable(
            "bad_response", f"HTTP {status} but not a chat completion: {snippet!r}", status=status, maybe_billed=True
        ) from None
    if not isinstance(content, str):
        content = "" if content is None else json.dumps(content)
    finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    reasoning = choice["message"].get("reasoning_content") if isinstance(choice["message"], dict) else None
    reported = _reported(data.get("usage"))  # read once: what is billed, and whether it adds up
    model = data.get("model") if isinstance(data, dict) else None
    return Completion(
        content=content,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        usage=_usage(reported),
        request_id=_request_id(headers, data),
        relay_cost_usd=_relay_cost(data),
        status=status,
        latency_ms=latency_ms,
        limits=parse_rate_headers(headers),
        usage_adds_up=reported is None or reported.adds_up,
        reasoning=reasoning if isinstance(reasoning, str) else "",
        model=(model.strip()[:MAX_MODEL_CHARS] or None) if isinstance(model, str) else None,
    )


def _token_count(value: Any) -> int:
    """A token count as relays send it: an integer, or a string of digits; nothing else."""
    if isinstance(value, bool):
        raise ValueError("not a token count")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_REPORTED_TOKENS:
        raise ValueError("not a token count")
    return value


TokenCount = Annotated[int, BeforeValidator(_token_count)]


class _CachedDetails(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cached_tokens: TokenCount | None = None


class _CompletionDetails(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reasoning_tokens: TokenCount | None = None


class ReportedUsage(BaseModel):
    """The relay's `usage` object, checked where it enters: counts are integers in range, and
    cached tokens (`prompt_tokens_details.cached_tokens`, else Moonshot's top-level
    `cached_tokens`, KIMI.md §3) are part of the prompt, never more than it, and never all of
    it (a cache serves a prompt's start, not the request's own end)."""

    model_config = ConfigDict(extra="ignore")
    prompt_tokens: TokenCount
    completion_tokens: TokenCount
    total_tokens: TokenCount | None = None
    cached_tokens: TokenCount | None = None
    prompt_tokens_details: _CachedDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None

    @model_validator(mode="after")
    def _cached_within_prompt(self) -> ReportedUsage:
        if self.cached > self.prompt_tokens:
            raise ValueError("more cached tokens than prompt tokens")
        if self.prompt_tokens and self.cached == self.prompt_tokens:
            # A prefix cache serves the start of a prompt, never its last tokens (a request's
            # own product data): a whole prompt "from cache" is a usage object not to bill by.
            raise ValueError("every prompt token cached")
        return self

    @property
    def billed_output(self) -> int:
        """The output a relay bills: completion_tokens, or more where the usage says so (a
        total above prompt + completion, reasoning tokens beyond the completion: reasoning
        billed outside completion_tokens)."""
        output = self.completion_tokens
        if self.total_tokens is not None:
            output = max(output, self.total_tokens - self.prompt_tokens)
        details = self.completion_tokens_details
        reasoning = details.reasoning_tokens if details is not None else None
        if reasoning is not None and reasoning > self.completion_tokens:  # not a part of it: beside it
            output = max(output, self.completion_tokens + reasoning)
        return output

    @property
    def adds_up(self) -> bool:
        """Whether the counts agree (the total is prompt + completion, reasoning within the
        completion); where they do not, the larger output is billed (billed_output)."""
        return self.billed_output == self.completion_tokens

    @property
    def cached(self) -> int:
        details = self.prompt_tokens_details
        if details is not None and details.cached_tokens is not None:
            return details.cached_tokens
        return self.cached_tokens or 0


def usage_from(usage: Any) -> Usage | None:
    """The relay's usage object → Usage; None when it is missing or cannot be believed."""
    return _usage(_reported(usage))


def _usage(reported: ReportedUsage | None) -> Usage | None:
    if reported is None:
        return None
    details = reported.completion_tokens_details
    reasoning = details.reasoning_tokens if details is not None and details.reasoning_tokens else 0
    output = reported.billed_output
    return Usage(
        input_tokens=reported.prompt_tokens,
        cached_tokens=reported.cached,
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
    )


def _reported(usage: Any) -> ReportedUsage | None:
    try:
        return ReportedUsage.model_validate(usage)
    except ValidationError:
        return None


def _request_id(headers: Mapping[str, str], data: Mapping[str, Any]) -> str | None:
    # httpx headers look up case-insensitively; a plain dict needs the exact case.
    for name in ("msh-request-id", "Msh-Request-Id", "x-request-id", "x-msh-trace-id"):
        value = headers.get(name)
        if value:
            return value[:200]
    return str(data.get("id"))[:200] if data.get("id") else None


def _relay_cost(data: Mapping[str, Any]) -> Decimal | None:
    """A charge some relays state in the response (HolySheep's examples show usage.cost_usd);
    None unless it is a finite, believable amount."""
    reported = data.get("usage")
    usage = reported if isinstance(reported, dict) else {}
    for value in (usage.get("cost_usd"), usage.get("cost"), data.get("cost_usd")):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                amount = Decimal(str(value))
            except InvalidOperation:
                continue
            if amount.is_finite() and 0 <= amount <= MAX_STATED_COST_USD:
                return amount
    return None


# --- pacing --------------------------------------------------------------------------------


class Pacer:
    """Requests per second (smoothed, adapted to the relay by a RateController), optional
    tokens per minute, a cap in flight, and one pause shared by every sender, which the
    controller calls for at most once per burst of 429s."""

    def __init__(
        self,
        *,
        rpm: int | None,
        concurrency: int,
        tpm: int | None = None,
        start_rpm: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """rpm None means `--rpm auto`: start at `start_rpm` (a previous run's finding) or low."""
        self.controller = RateController(
            ceiling_rps=rpm / 60 if rpm else None,
            start_rps=start_rpm / 60 if start_rpm else None,
            clock=clock,
        )
        self._applied_rps = self.controller.rate_rps
        burst = self._bucket_size()
        self._requests = AdjustableLimiter(burst, burst / self._applied_rps)
        self._tpm = tpm
        self._tokens = AdjustableLimiter(tpm, 60.0) if tpm else None
        self._in_flight = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._sleep = sleep
        self._resume_at = 0.0
        self.pauses_s: list[float] = []
        self.first_sent: float | None = None
        self.last_done: float | None = None
        self.sent = 0

    def pause(self, seconds: float) -> None:
        """Hold every sender for `seconds` (longer pauses win over shorter ones)."""
        resume_at = self._clock() + seconds
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self.pauses_s.append(seconds)

    async def wait_if_paused(self) -> None:
        while (remaining := self._resume_at - self._clock()) > 0:
            await self._sleep(remaining)

    @asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[float]:
        """Wait for a free slot and the rate limits, then hold the slot for one request;
        yields the moment it was sent."""
        async with self._in_flight:
            # A pause that begins while a sender waits voids the rate it was granted: the bucket
            # kept leaking through the pause, and every sender released at once would be a burst.
            while True:
                await self.wait_if_paused()
                await self._acquire_rate()
                if self._resume_at <= self._clock():
                    break
            if self._tokens is not None and self._tpm is not None:
                await self._tokens.acquire(min(tokens, self._tpm))
            sent_at = self._clock()
            self.controller.on_sent(sent_at)
            if self.first_sent is None:
                self.first_sent = sent_at
            self.sent += 1
            try:
                yield sent_at
            finally:
                self.last_done = self._clock()

    async def _acquire_rate(self) -> None:
        """The request bucket. While the controller's rate grows on a clock (auto, recovery),
        a waiting sender ticks it every step rather than only when the next one is sent."""
        self._tick()
        while self.controller.is_ramping and not self._requests.has_capacity():
            try:
                await asyncio.wait_for(self._requests.acquire(), STEP_S)
                return
            except asyncio.TimeoutError:
                self._tick()
        await self._requests.acquire()

    def _tick(self) -> None:
        self.controller.tick()
        self._follow_controller()

    def _follow_controller(self) -> None:
        """Set the bucket to the controller's rate."""
        rate = self.controller.rate_rps
        if rate != self._applied_rps:
            self._requests.set_rate(rate, burst=self._bucket_size())
            self._applied_rps = rate

    def _bucket_size(self) -> int:
        """A tenth of a second's quota (at least one, at most ten): smooth, so a short run does
        not spend a minute's allowance in its first second, yet not slowed by timer jitter as a
        bucket of one is at high rates. One while the rate ramps: a probe must not be a burst."""
        if self.controller.is_ramping or self.controller.source == "probing":
            return 1
        return max(1, min(10, int(self.controller.rate_rps / 10)))

    # --- what became of a request sent at `sent_at` -----------------------------------------

    def answered(self, sent_at: float, limits: RelayLimits | None) -> None:
        """The relay took it and answered (a completion, or a refusal that is not for the rate)."""
        self.controller.on_answered()
        self._read_limits(limits)
        self._follow_controller()

    def rate_limited(self, sent_at: float, retry_after_s: float | None, limits: RelayLimits | None) -> None:
        """A 429 for the rate: slow every sender, and hold them if the controller says so."""
        self._pause_for(self.controller.on_rate_limited(sent_at, retry_after_s))
        self._read_limits(limits)
        self._follow_controller()

    def failed_transiently(self, sent_at: float, limits: RelayLimits | None) -> None:
        """Overload, a 5xx, a timeout, a dropped connection, a garbled body: that request is
        retried; the shared rate slows only within the controller's bound."""
        self.controller.on_answered()
        self.controller.on_overloaded(sent_at)
        self._read_limits(limits)
        self._follow_controller()

    def unsent(self, sent_at: float) -> None:
        """It never reached the relay (connection refused)."""
        self.controller.on_unsent(sent_at)

    def _pause_for(self, seconds: float) -> None:
        if seconds > 0:
            self.pause(seconds)

    def _read_limits(self, limits: RelayLimits | None) -> None:
        if limits is None:
            return
        self._pause_for(self.controller.on_headers(limits))
        stated_tpm = limits.tokens_per_minute
        if stated_tpm and (self._tpm is None or stated_tpm < self._tpm):
            # The relay states a tokens-per-minute limit below ours (or we set none): keep under it.
            self._tpm = int(stated_tpm)
            self._tokens = AdjustableLimiter(self._tpm, 60.0)

    def release_tokens(self, reserved: int, used: int) -> None:
        """--tpm reserved prompt + max_tokens before sending; give back what was not used."""
        if self._tokens is not None and self._tpm is not None:
            unused = min(reserved, self._tpm) - used
            if unused > 0:
                self._tokens.release(unused)

    def effective_rps(self) -> float | None:
        if self.first_sent is None or self.last_done is None or self.last_done <= self.first_sent:
            return None
        return self.sent / (self.last_done - self.first_sent)


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive in both backends
    body: bytes


class RelayClient:
    """One shared connection pool (keep-alive, sized to the concurrency) to the relay.

    The default backend is aiohttp itself: it costs about half the CPU per request of httpx on
    aiohttp's transport (bench/live_throughput.py), and at high rates CPU is the ceiling.
    `http_transport: httpx`, or an injected httpx transport (tests, benchmarks), uses httpx.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if settings.api_key is None:
            raise LocalizeError("no API key")  # callers check first; never reached by users
        self._settings = settings
        self._clock = clock
        self._system_json: dict[str, str] = {}
        self._chat_url = settings.base_url + "/chat/completions"
        self._models_url = settings.base_url + "/models"
        self._headers = {
            "Authorization": f"Bearer {settings.api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }
        secret = settings.api_key.get_secret_value()
        self._redact = Redactor(secret)  # the relay's own words: the key and anything key-shaped
        self._redact_content = Redactor(secret, shapes=False)  # a listing may say "sk-" and keep it
        self._backend: _AiohttpBackend | _HttpxBackend
        if transport is None and settings.http_transport == "aiohttp":
            self._backend = _AiohttpBackend(settings)
        else:
            self._backend = _HttpxBackend(settings, transport)

    async def aclose(self) -> None:
        await self._backend.aclose()

    async def chat(self, body: Mapping[str, Any]) -> Completion:
        """One POST /chat/completions attempt. Whatever the relay says passes the redactor
        before it can reach a record, a file or the terminal."""
        started = self._clock()
        try:
            timeout_s = answer_timeout_s(self._settings.timeout_s, body.get("max_tokens"))
            reply = await self._request("POST", self._chat_url, self._encode(body), timeout_s)
            latency_ms = (self._clock() - started) * 1000
            if reply.status >= 300:
                raise classify_error(reply.status, reply.body, reply.headers, model=body["model"])
            completion = parse_completion(reply.status, reply.body, reply.headers, latency_ms)
        except RelayError as error:
            raise self._redacted(error) from None
        content = self._redact_content(completion.content)
        request_id = self._redact(completion.request_id) if completion.request_id else None
        model = self._redact(completion.model) if completion.model else None
        if content is not completion.content or request_id != completion.request_id or model != completion.model:
            completion = dataclasses.replace(completion, content=content, request_id=request_id, model=model)
        return completion

    async def models(self) -> list[str]:
        """The model ids the relay serves (GET /models): a key check too."""
        try:
            reply = await self._request("GET", self._models_url, None, self._settings.timeout_s)
            if reply.status >= 300:
                error = classify_error(reply.status, reply.body, reply.headers, model="")
                raise RelayFatal(error.kind, error.message, status=error.status, hint=error.hint)
            data = json.loads(reply.body)["data"]
            return sorted(self._redact(str(item["id"])) for item in data)
        except RelayError as error:
            raise self._redacted(error) from None
        except (ValueError, KeyError, TypeError, RecursionError):
            raise RelayFatal(
                "bad_response", "GET /models did not return a model list", hint="check --base-url"
            ) from None

    def _redacted(self, error: RelayError) -> RelayError:
        error.message = self._redact(error.message)
        error.hint = self._redact(error.hint) if error.hint else error.hint
        error.args = (error.message,)
        return error

    def _encode(self, body: Mapping[str, Any]) -> bytes:
        """The body as JSON, with each system message encoded once: it is the same few
        kilobytes for every job of a platform and locale."""
        messages = []
        for message in body["messages"]:
            if message["role"] == "system":
                encoded = self._system_json.get(message["content"])
                if encoded is None:
                    encoded = self._system_json[message["content"]] = _BODY_JSON.encode(message)
                messages.append(encoded)
            else:
                messages.append(_BODY_JSON.encode(message))
        rest = _BODY_JSON.encode({key: value for key, value in body.items() if key != "messages"})
        return ('{"messages": [' + ", ".join(messages) + "], " + rest[1:]).encode()

    async def _request(self, method: str, url: str, body: bytes | None, timeout_s: float) -> _Reply:
        stage, error = await self._backend.request(method, url, self._headers, body, timeout_s)
        if isinstance(stage, _Reply):
            if 300 <= stage.status < 400:
                # Not followed: a POST carries product data, and the key would not go along, so
                # the answer would blame the key. Say where it points instead.
                location = stage.headers.get("location") or stage.headers.get("Location") or "?"
                raise RelayFatal(
                    "redirect",
                    f"the relay answered {method} {url} with a redirect (HTTP {stage.status}) to {location[:200]}",
                    status=stage.status,
                    hint="localize does not follow redirects; set --base-url to the address it points to, "
                    "if you trust it",
                )
            return stage
        if stage is Failure.TOO_LARGE:
            raise RelayRetryable(
                "bad_response",
                f"the answer was larger than {MAX_BODY_BYTES // 1_000_000} MB: not read",
                maybe_billed=True,
            )
        if stage is Failure.UNSENT:
            raise RelayRetryable("connection", f"cannot connect to {self._settings.base_url}: {error}", unsent=True)
        if stage is Failure.TIMEOUT:
            raise RelayRetryable("timeout", f"no answer within {timeout_s:g} s", maybe_billed=True)
        raise RelayRetryable("connection", f"connection dropped: {error}", maybe_billed=True)


# json.dumps(..., ensure_ascii=False), built once: with an option, json.dumps builds an encoder per call.
_BODY_JSON = json.JSONEncoder(ensure_ascii=False)


def answer_timeout_s(timeout_s: float, max_tokens: object) -> float:
    """A request's timeout: --timeout, grown with the answer it asks for past the default."""
    extra = max_tokens - DEFAULT_MAX_TOKENS if isinstance(max_tokens, int) else 0
    return timeout_s + max(extra, 0) / SLOWEST_TOKENS_PER_S


class _AiohttpBackend:
    """Requests through aiohttp; failures sorted into the kinds of Failure."""

    def __init__(self, settings: Settings) -> None:
        import aiohttp  # here: ~11 MB that dry runs never need

        self._aiohttp = aiohttp
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_s, sock_connect=min(10.0, settings.timeout_s))
        self._timeouts: dict[float, Any] = {settings.timeout_s: self._timeout}
        self._limit = settings.concurrency
        self._session: Any = None  # created on first use, inside the running loop

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout_s: float
    ) -> tuple[_Reply | Failure, str]:
        aiohttp = self._aiohttp
        timeout = self._timeouts.get(timeout_s)
        if timeout is None:
            timeout = self._timeouts[timeout_s] = aiohttp.ClientTimeout(
                total=timeout_s, sock_connect=self._timeout.sock_connect
            )
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as response:
                length = response.content_length
                if length is not None and length <= MAX_BODY_BYTES and "Content-Encoding" not in response.headers:
                    content: bytes | None = await response.read()  # its size is said, within the cap, as it is
                else:  # (compressed, or of no said size: what it unpacks to is capped as it streams)
                    content = await read_capped(response.content.iter_chunked(1 << 16), MAX_BODY_BYTES)
                if content is None:
                    response.close()  # its connection is not used again: the rest of the body is on it
                    return Failure.TOO_LARGE, ""
                return _Reply(response.status, response.headers, content), ""
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return Failure.UNSENT, _reason(exc)
        except asyncio.TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
            return Failure.TIMEOUT, _reason(exc)
        except aiohttp.ClientError as exc:
            return Failure.DROPPED, _reason(exc)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _HttpxBackend:
    """Requests through httpx, on its own transport or an injected one."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
        self._timeout_s = settings.timeout_s
        self._connect_s = min(10.0, settings.timeout_s)
        self._timeout = httpx.Timeout(settings.timeout_s, connect=self._connect_s)
        self._http = _CookielessClient(
            timeout=self._timeout,
            limits=limits,
            transport=transport,
            follow_redirects=False,
        )

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout_s: float
    ) -> tuple[_Reply | Failure, str]:
        # httpx's timeouts are per read, so a relay that drips a byte a second never trips
        # them: the timeout bounds the whole exchange here, as aiohttp's total timeout does.
        try:
            return await asyncio.wait_for(self._exchange(method, url, headers, body, timeout_s), timeout_s)
        except asyncio.TimeoutError:
            return Failure.TIMEOUT, f"no answer within {timeout_s:g} s"
        except httpx.HTTPError as exc:
            return _failure_stage(exc), _reason(exc)

    async def _exchange(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout_s: float
    ) -> tuple[_Reply | Failure, str]:
        timeout = self._timeout if timeout_s == self._timeout_s else httpx.Timeout(timeout_s, connect=self._connect_s)
        request = self._http.build_request(method, url, headers=headers, content=body, timeout=timeout)
        response = await self._http.send(request, stream=True)
        try:
            content = await read_capped(response.aiter_bytes(), MAX_BODY_BYTES)
        finally:
            await response.aclose()
        if content is None:
            return Failure.TOO_LARGE, ""
        return _Reply(response.status_code, response.headers, content), ""

    async def aclose(self) -> None:
        await self._http.aclose()


async def read_capped(chunks: AsyncIterator[bytes], cap: int) -> bytes | None:
    """A streamed body, or None once it passes `cap` bytes (read no further: a relay gone
    wrong must not fill the memory). The one streaming cap of every exchange with the relay."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)


def _reason(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:300]


def _failure_stage(exc: httpx.HTTPError) -> Failure:
    """Where an httpx request failed: it never reached the relay (so cannot have been billed),
    it got no answer in time, or the connection broke."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Failure.UNSENT
    if isinstance(exc, httpx.TimeoutException):
        return Failure.TIMEOUT
    return Failure.DROPPED


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _CookielessClient(httpx.AsyncClient):
    """An AsyncClient that keeps no cookies. The relay sets none, and httpx would otherwise
    parse every response's headers through http.cookiejar: about 5% of our CPU per request."""

    _none = _NoCookies()

    @property  # read-only on purpose
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass


# --- retries -------------------------------------------------------------------------------


class Asks(Protocol):
    """What a job's request goes through: the live Sender, or the batch collector that gathers
    first asks into a batch file (batch.BatchCollector)."""

    async def send(
        self,
        body: Mapping[str, Any],
        *,
        tokens: int,
        worst_case_usd: Decimal,
        first_attempt: int,
        on_failed: Callable[[FailedAttempt, bool], None],
        on_sending: Callable[[int], Awaitable[None]] | None = None,
        request_key: str = "",
        batch_jobs: Sequence[tuple[tuple[str, str, str], str]] = (),
        batch_worst_case_usd: Decimal = Decimal(0),
        price: Price | None = None,
        first_ask: bool | None = None,
    ) -> tuple[Completion, int]: ...


class Sender:
    """Sends with pacing and retries; reports every failed attempt as it ends."""

    def __init__(
        self,
        client: RelayClient,
        pacer: Pacer,
        *,
        max_retries: int,
        backoff_base_s: float,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        budget: Budget | None = None,
        price: Price | None = None,
    ) -> None:
        self._client = client
        self._budget = budget
        self._price = price
        self._pacer = pacer
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._unreachable_streak = 0
        self._stopped: RelayFatal | None = None  # once one request meets a fatal error, none is sent

    async def send(
        self,
        body: Mapping[str, Any],
        *,
        tokens: int,
        worst_case_usd: Decimal,
        first_attempt: int,
        on_failed: Callable[[FailedAttempt, bool], None],
        on_sending: Callable[[int], Awaitable[None]] | None = None,
        request_key: str = "",
        batch_jobs: Sequence[tuple[tuple[str, str, str], str]] = (),
        batch_worst_case_usd: Decimal = Decimal(0),
        price: Price | None = None,
        first_ask: bool | None = None,
    ) -> tuple[Completion, int]:
        """(the completion, its attempt number). `request_key` names the jobs a request serves
        (the batch collector keys its lines by it; a live send does not need it, nor the
        jobs and worst case at the batch price the collector records and reserves). `on_sending`
        hears each attempt's number just before it goes out (so a kill mid-request still
        leaves a trace); each failed attempt is reported as it ends, with whether it was the
        job's last; then the error is raised or the attempt retried. With a budget, each
        attempt first reserves `worst_case_usd` (BudgetReached if it cannot), and settles
        what the answer cost at `price` (the run's model's unless given: the judge's).
        `first_ask` tells the batch collector a request's first ask from a re-ask where its
        attempt number cannot (the judge's); the live sender sends both alike."""
        price = price or self._price
        number = first_attempt
        retries = 0
        while True:
            if self._budget is not None and not await self._budget.reserve(worst_case_usd):
                raise BudgetReached(
                    f"not sent: its worst case ${worst_case_usd:.4f} would cross the --max-cost cap "
                    f"(${self._budget.spent_usd:.4f} of ${self._budget.cap_usd} spent)"
                )
            spent: Decimal | None = Decimal(0)  # nothing is spent until the request goes out
            try:
                async with self._pacer.slot(tokens) as sent_at:
                    if self._stopped is not None:  # it stopped while this one waited for its turn
                        raise self._not_sent(number)
                    if on_sending is not None:
                        await on_sending(number)
                    spent = None  # sent: unknown (booked at the worst case) unless the answer shows it
                    started = time.monotonic()
                    try:
                        completion = await self._client.chat(body)
                        self._unreachable_streak = 0
                        self._pacer.answered(sent_at, completion.limits)
                        usage = completion.usage
                        if usage is not None:  # else unreported: the budget keeps the worst case
                            self._pacer.release_tokens(tokens, usage.input_tokens + usage.output_tokens)
                            if price is not None:
                                spent = cost_usd(usage, price)
                        return completion, number
                    except RelayError as error:
                        failed = FailedAttempt(number, error, (time.monotonic() - started) * 1000)
                        self._tell_pacer(sent_at, error)
                        if not error.maybe_billed:  # else unknown: booked at the worst case
                            spent = Decimal(0)
            finally:
                if self._budget is not None:
                    self._budget.settle(worst_case_usd, spent)
            stop = self._verdict(failed.error, retries)
            on_failed(failed, stop is not None)
            if stop is not None:
                stop.attempt = number
                if isinstance(stop, RelayFatal):
                    self._stopped = self._stopped or stop
                raise stop
            retries += 1
            number += 1
            retryable = failed.error
            assert isinstance(retryable, RelayRetryable)  # _verdict stops on everything else
            # This request waits as asked, if asked; the pacer decides for the rest.
            await self._sleep(retry_wait_s(retryable.retry_after_s, retries, self._backoff_base_s, self._rng))

    def _not_sent(self, number: int) -> RelayFatal:
        stopped = self._stopped
        assert stopped is not None
        error = RelayFatal("aborted", f"not sent: the run stopped ({stopped.kind}: {stopped.message})")
        error.attempt = number - 1
        return error

    def _tell_pacer(self, sent_at: float, error: RelayError) -> None:
        """Each signal to its remedy: a rate-limit 429 slows every sender; a transient failure
        is retried by its own request; a refusal of this one request says nothing of the rate."""
        if error.kind == "rate_limited":
            retry_after_s = error.retry_after_s if isinstance(error, RelayRetryable) else None
            self._pacer.rate_limited(sent_at, retry_after_s, error.limits)
        elif isinstance(error, RelayRetryable) and error.unsent:
            self._pacer.unsent(sent_at)
        elif isinstance(error, RelayRetryable):
            self._pacer.failed_transiently(sent_at, error.limits)
        else:
            self._pacer.answered(sent_at, error.limits)

    def _verdict(self, error: RelayError, retries: int) -> RelayError | None:
        """None to retry, else the error that ends this job (RelayFatal ends the run)."""
        if isinstance(error, RelayRetryable) and error.unsent:
            self._unreachable_streak += 1
            if self._unreachable_streak >= UNREACHABLE_AFTER:
                return RelayFatal(
                    "unreachable", error.message, hint="check --base-url and the network; nothing more will be sent"
                )
        else:
            self._unreachable_streak = 0
        return retry_verdict(error, retries, self._max_retries)


def retry_verdict(error: RelayError, retries: int, max_retries: int) -> RelayError | None:
    """What a failed exchange with the relay comes to, the live sender's and the batch
    client's alike: None to try again (a retryable kind, `retries` made so far of
    `max_retries`), else the error that ends it: a refusal or a fatal kind as it is (an empty
    account stops at once), a wait asked for past MAX_PAUSE_S as the end of the run."""
    if not isinstance(error, RelayRetryable):
        return error
    if error.retry_after_s is not None and error.retry_after_s > MAX_PAUSE_S:
        return RelayFatal(
            "rate_limited",
            f"the relay asks to wait {error.retry_after_s:.0f} s ({error.message})",
            status=error.status,
            hint="a daily limit is likely reached: run again later; finished work is kept",
        )
    if retries >= max_retries:
        return error
    return None


# Connection refusals in a row, across all jobs, before the relay counts as unreachable.
UNREACHABLE_AFTER = 8

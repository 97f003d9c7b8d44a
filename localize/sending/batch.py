"""The batch API (`--batch`): the same jobs, prompts and packs as a live run, sent as one JSONL
file and answered within the completion window, at the batch price.

Moonshot's (OpenAI-shaped) flow: upload the file to /v1/files (`purpose=batch`), create a batch
at /v1/batches, poll it, download its output and error files. Its rules: no sampling parameters
in a line (`temperature`, `top_p`, `n`...), one model per file, files of at most 100 MB, and
only some models batch (those with a `batch:` price in prices.yaml).

The run's first asks go into the file; re-asks of invalid answers, and lines the batch failed,
are finished live. A batch is recorded in OUT (batches.jsonl), with the jobs each line serves
and the fingerprints they were asked with, before the run waits for it. Every later run first
collects every recorded batch (`collect_recorded`), whatever the catalog is now: the answers of
jobs still wanted as they were asked are used, the rest are counted, and only what no batch
answers is submitted again. A batch is forgotten only after its answers are committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx

from ..config import Settings
from ..cost import Budget, Price, Usage, cost_usd
from ..errors import BudgetReached
from ..output.lock import JobKey
from ..output.store import BatchRecord, LineJob, RunStore
from ..planning.packing import split_usage
from ..redact import REDACTED, Redactor
from .relay import (
    Completion,
    FailedAttempt,
    RelayError,
    RelayFatal,
    RelayRetryable,
    Sender,
    classify_error,
    error_fields,
    parse_completion,
    read_capped,
    retry_verdict,
    retry_wait_s,
)

# Moonshot rejects a batch file whose lines set these.
SAMPLING = ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty")
MAX_FILE_BYTES = 100_000_000
# At most this many requests in one file (a file also stays under MAX_FILE_BYTES).
MAX_LINES = 20_000
TERMINAL = ("completed", "failed", "expired", "cancelled")
# An expired or cancelled batch's unanswered lines go into a new batch at most this many times.
RESUBMISSIONS = 3
POLL_MAX_S = 300.0
# Tries again, with back-off from batch_poll_s, of an exchange the relay stalls or refuses with 5xx.
RETRIES = 4
FIND_PAGES = 100  # of 100 batches each: how far back a batch made but not recorded is looked for
CLOCK_SKEW_S = 600  # the relay's clock and ours may differ by this much
# A batch still running this long past its completion window is given up: cancelled, and its
# requests submitted again (or sent live).
OVERDUE_MARGIN_S = 3600.0
# The most an output file may hold per line it answers (a live answer is at most
# relay.MAX_BODY_BYTES; a batch line's answer is the same completion in an envelope), and a floor.
OUTPUT_BYTES_PER_LINE = 256_000
OUTPUT_BYTES_MIN = 16_000_000


class BatchUnavailable(RelayFatal):
    """The relay has no batch API, or will not batch this model."""


class BatchGone(Exception):
    """A recorded batch the relay no longer knows (404 on it, its batch API still there)."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(batch_id)
        self.batch_id = batch_id


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """--no-wait: a batch submitted (or still running); the same command collects it."""

    batch_id: str
    requests: int
    status: str
    age_s: float  # since its file was uploaded
    window_s: float


class BatchPending(Exception):
    """--no-wait: the run's batches are submitted (or still running)."""

    def __init__(self, batches: Sequence[PendingBatch], *, over_budget: int = 0) -> None:
        super().__init__(", ".join(batch.batch_id for batch in batches))
        self.batches = tuple(batches)
        self.over_budget = over_budget  # requests left out: they did not fit the --max-cost cap


def custom_id(request_key: str, body: Mapping[str, Any]) -> str:
    """A line's id: the jobs it serves and exactly what it asks, hashed (64 characters at most),
    so the same request in the next identical command finds its line again."""
    text = request_key + "\0" + json.dumps(body, ensure_ascii=False, sort_keys=True)
    return "lz-" + hashlib.sha256(text.encode()).hexdigest()[:48]


def batch_line(line_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the batch file: the live request without the sampling parameters."""
    return {
        "custom_id": line_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {key: value for key, value in body.items() if key not in SAMPLING},
    }


@dataclass(frozen=True, slots=True)
class LineResult:
    """What the batch did with one line: an answer, or an error to finish live. `maybe_billed`:
    the relay may have charged for it though no answer can be used (a line the output file
    repeats, or one it answered unreadably)."""

    completion: Completion | None
    error: str | None = None
    maybe_billed: bool = False
    budget: bool = False  # not submitted: it did not fit the --max-cost cap


@dataclass(slots=True)
class BatchAnswers:
    """An output and an error file, read against the lines the batch was asked."""

    results: dict[str, LineResult] = field(default_factory=dict)  # by custom_id (order is not the input's)
    repeated: list[str] = field(default_factory=list)  # custom_ids answered more than once: none is used
    unknown: list[str] = field(default_factory=list)  # custom_ids the batch was not asked: ignored
    unreadable: int = 0  # output lines with no readable custom_id (invalid UTF-8, not JSON)

    def notes(self, batch_id: str) -> list[str]:
        said = []
        if self.repeated:
            said.append(
                f"Batch {batch_id} answered {len(self.repeated):,} requests more than once ({_some(self.repeated)}):"
                " none of those answers is used; they are asked again and counted as possibly billed."
            )
        if self.unknown:
            said.append(
                f"Batch {batch_id}'s output holds {len(self.unknown):,} answers to requests it was not asked"
                f" ({_some(self.unknown)}): ignored."
            )
        if self.unreadable:
            said.append(f"Batch {batch_id}'s output has {self.unreadable:,} unreadable lines (not JSON, or not UTF-8).")
        return said


def _some(ids: Sequence[str]) -> str:
    return ", ".join(ids[:3]) + (", …" if len(ids) > 3 else "")


def read_results(output: bytes, errors: bytes, batch_id: str, expected: Collection[str] | None = None) -> BatchAnswers:
    """The output and error files, by custom_id. Only the ids the batch was asked count (any,
    where `expected` is None); an id answered twice is no answer (which of two listings belongs
    to the product cannot be told)."""

    def asked(line_id: str) -> bool:
        return expected is None or line_id in expected

    answers = BatchAnswers()
    seen: Counter[str] = Counter()
    for raw in output.splitlines():
        if not raw.strip():
            continue
        line_id = _custom_id_of(raw)
        if line_id is None:
            answers.unreadable += 1
            continue
        seen[line_id] += 1
        if not asked(line_id):
            if seen[line_id] == 1:
                answers.unknown.append(line_id)
            continue
        try:
            response = json.loads(raw)["response"]
            body = json.dumps(response["body"]).encode()
            completion = parse_completion(int(response.get("status_code", 200)), body, {}, 0.0)
            answers.results[line_id] = LineResult(replace(completion, batch_id=batch_id))
        except (ValueError, KeyError, TypeError, RelayError) as exc:
            answers.results[line_id] = LineResult(None, f"unreadable batch answer: {exc}", maybe_billed=True)
    for line_id, count in seen.items():
        if count > 1 and asked(line_id):
            answers.repeated.append(line_id)
            answers.results[line_id] = LineResult(
                None, f"the batch's output answers this request {count} times", maybe_billed=True
            )
    for raw in errors.splitlines():
        line_id = _custom_id_of(raw)
        if line_id and asked(line_id) and line_id not in answers.results:
            answers.results[line_id] = LineResult(None, _error_message(raw))
    return answers


def _custom_id_of(raw: bytes) -> str | None:
    try:
        line_id = json.loads(raw)["custom_id"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return line_id if isinstance(line_id, str) and line_id else None


def _error_message(raw: bytes) -> str:
    """What a line of a batch's error file says went wrong (relay.error_fields reads it)."""
    kind, message = error_fields(raw)
    return message or kind or "failed in the batch"


_COLLECT_LATER = "a batch it created is recorded in OUT/batches.jsonl: run the same command again to collect it"


class BatchClient:
    """/v1/files and /v1/batches on the relay (httpx: files may be large, and stream)."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        assert settings.api_key is not None  # callers check first
        secret = settings.api_key.get_secret_value()
        self._secret = secret.encode()
        self._redact = Redactor(secret)  # a gateway may echo the key in its errors
        self._base = settings.base_url
        self._model = settings.model
        self._retry_s = settings.batch_poll_s
        self.poll_s = settings.batch_poll_s  # the first wait between polls of a batch
        self._sleep = sleep
        self._rng = random.Random()
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            timeout=httpx.Timeout(settings.timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def probe(self) -> None:
        """BatchUnavailable when the relay has no batch API (checked before anything is made)."""
        reply = await self._call("GET", "/batches", params={"limit": 1}, retries=1)  # a wrong --base-url fails fast
        if reply.status_code == 404:
            raise BatchUnavailable(
                "no_batch_api",
                f"the relay at {self._base} has no batch API (404 on /batches)",
                hint="run without --batch (or with --batch-auto, which falls back to live requests)",
            )

    async def upload(self, content: bytes) -> str:
        files = {"file": ("localize-batch.jsonl", content, "application/jsonl")}
        reply = await self._call("POST", "/files", data={"purpose": "batch"}, files=files)
        return str(self._json(reply, "upload the batch file")["id"])

    async def create(self, file_id: str, window: str) -> dict[str, Any]:
        request = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": window}
        reply = await self._call("POST", "/batches", json=request)
        if reply.status_code in (400, 403, 422):
            message = self._message(reply)
            raise BatchUnavailable(
                "batch_refused",
                f"the relay refused the batch for model {self._model}: {message}",
                hint="some models do not batch: run live, or pick one that prices.yaml gives a batch price",
            )
        return self._json(reply, "create the batch")

    async def find_batch(self, file_id: str, uploaded: float | None = None) -> str | None:
        """The batch the relay made of this input file, if any: a run may have stopped between
        making it and recording it. Pages through the relay's list of batches, newest first,
        until one made before the file was uploaded (`uploaded`, Unix seconds: none older can be
        made of it); a list it cannot give, or one that does not end, ends the run rather than
        risk a second batch of the same lines."""
        after: str | None = None
        for _ in range(FIND_PAGES):
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            reply = await self._call("GET", "/batches", params=params)
            try:
                if reply.status_code >= 300:
                    raise ValueError(reply.status_code)
                page = reply.json()
                batches = [batch for batch in page["data"] if isinstance(batch, dict)]
            except (ValueError, KeyError, TypeError):
                raise self._cannot_tell(file_id, f"is unreadable (HTTP {reply.status_code})") from None
            for batch in batches:
                if batch.get("input_file_id") == file_id and batch.get("id"):
                    return str(batch["id"])
            if not page.get("has_more") or not batches:
                return None
            oldest = batches[-1].get("created_at")
            if uploaded is not None and isinstance(oldest, (int, float)) and oldest < uploaded - CLOCK_SKEW_S:
                return None  # the list has reached batches made before the file existed
            last = str(batches[-1].get("id"))
            if last == after:
                raise self._cannot_tell(file_id, "pages in a loop (the same page twice)")
            after = last
        raise self._cannot_tell(file_id, f"did not end after {FIND_PAGES * 100:,} batches")

    def _cannot_tell(self, file_id: str, why: str) -> RelayFatal:
        return RelayFatal(
            "bad_response",
            f"cannot tell whether a batch was made of file {file_id}: the relay's list of batches {why}",
            hint="run the same command again later; nothing is uploaded or made until it can tell",
        )

    async def get(self, batch_id: str) -> dict[str, Any]:
        """A batch's state; BatchGone when the relay no longer knows it (404 on it while its
        list of batches answers: it has a batch API, only not that batch)."""
        reply = await self._call("GET", f"/batches/{batch_id}")
        if reply.status_code == 404 and (await self._call("GET", "/batches", params={"limit": 1})).status_code == 200:
            raise BatchGone(batch_id)
        return self._json(reply, "read the batch")

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._json(await self._call("POST", f"/batches/{batch_id}/cancel"), "cancel the batch")

    async def download(self, file_id: str | None, *, cap_bytes: int) -> bytes | None:
        """A batch's output or error file (b"" for none); None when it is larger than
        `cap_bytes` (read no further: a relay gone wrong must not fill the memory)."""
        if not file_id:
            return b""
        reply = await self._call("GET", f"/files/{file_id}/content", cap_bytes=cap_bytes)
        if reply.status_code == 413:
            return None
        if reply.status_code >= 300:
            raise RelayFatal("bad_response", f"cannot download batch file {file_id}: HTTP {reply.status_code}")
        # An answer that quotes the key keeps nothing of it (as live answers, relay.py).
        return (
            reply.content.replace(self._secret, REDACTED.encode()) if self._secret in reply.content else reply.content
        )

    async def _call(
        self, method: str, path: str, *, retries: int = RETRIES, cap_bytes: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One exchange, judged as the live sender judges an answer (relay.retry_verdict): tried
        again with back-off while the relay stalls, drops the connection or answers 408, 409,
        429 or 5xx (a Retry-After obeyed up to the live cap); an empty account, or a wait asked
        past the cap, ends the run at once. A relay still away after the retries ends the run
        (exit 4); a batch it created is recorded in OUT, so the same command picks it up. Any
        other answer is the caller's to read. With `cap_bytes`, a body past it is not read:
        the answer is a bare 413."""
        attempt = 0
        while True:
            try:
                reply = await self._exchange(method, self._base + path, cap_bytes, **kwargs)
            except httpx.HTTPError as exc:
                error: RelayError = RelayRetryable("connection", f"{type(exc).__name__}: {exc}")
            else:
                if reply.status_code < 400:
                    return reply
                # The live client's reading of the answer: its kind, its words, its Retry-After.
                error = classify_error(reply.status_code, reply.content, reply.headers, model=self._model)
                if not isinstance(error, RelayRetryable) and error.kind != "quota":
                    return reply  # a refusal the caller reads for what it means here (404: no batch API)
            stop = retry_verdict(error, attempt, retries)
            if isinstance(stop, RelayFatal):
                raise RelayFatal(stop.kind, self._redact(stop.message), status=stop.status, hint=stop.hint)
            if stop is not None:
                said = f"the relay did not answer {method} {path} ({stop.message}) after {attempt + 1} tries"
                raise RelayFatal("batch_unreachable", self._redact(said), hint=_COLLECT_LATER)
            attempt += 1
            wait = error.retry_after_s if isinstance(error, RelayRetryable) else None
            await self._sleep(retry_wait_s(wait, attempt, self._retry_s, self._rng))

    async def _exchange(self, method: str, url: str, cap_bytes: int | None, **kwargs: Any) -> httpx.Response:
        if cap_bytes is None:
            return await self._http.request(method, url, **kwargs)
        request = self._http.build_request(method, url, **kwargs)
        reply = await self._http.send(request, stream=True)
        try:
            body = await read_capped(reply.aiter_bytes(), cap_bytes)  # decoded: the cap is on what memory holds
        finally:
            await reply.aclose()
        if body is None:
            return httpx.Response(413, request=request)
        headers = {"content-type": reply.headers.get("content-type", "application/octet-stream")}
        return httpx.Response(reply.status_code, headers=headers, content=body, request=request)

    def _json(self, reply: httpx.Response, what: str) -> dict[str, Any]:
        if reply.status_code == 404:
            raise BatchUnavailable("no_batch_api", f"the relay at {self._base} has no batch API (404)")
        if reply.status_code in (401, 403):  # the live client's words and kind ("auth"), the key redacted
            error = classify_error(reply.status_code, reply.content, reply.headers, model=self._model)
            raise RelayFatal(error.kind, self._redact(f"{error.message} (trying to {what})"), hint=error.hint)
        if reply.status_code >= 300:
            raise RelayFatal("bad_response", f"could not {what}: HTTP {reply.status_code} {self._message(reply)}")
        try:
            data = reply.json()
        except ValueError:
            raise RelayFatal("bad_response", f"could not {what}: the answer is not JSON") from None
        if not isinstance(data, dict) or "id" not in data:
            raise RelayFatal("bad_response", f"could not {what}: the answer is not a file or batch object")
        return data

    def _message(self, reply: httpx.Response) -> str:
        """What the relay said, without the key it may have echoed."""
        return self._redact(error_fields(reply.content)[1][:300])


@dataclass(slots=True)
class _Waiting:
    line: dict[str, Any]
    future: asyncio.Future[LineResult]
    jobs: tuple[LineJob, ...]  # the jobs the line serves, with the fingerprints they were asked with
    worst_case_usd: Decimal  # at the batch price, the answer at its output cap
    on_failed: Callable[[FailedAttempt, bool], None] | None
    number: int  # the attempt number its answer is logged as


class BatchCollector:
    """Stands in for the live sender: a job's first ask joins the batch file (its re-asks too,
    with batch_reasks: batch); lines the batch failed go live. run_in_batches submits what was
    gathered and resolves each ask with its answer. A line is recorded with its batch in
    OUT/batches.jsonl, not as a sent attempt: its usage is logged once, when it is collected.

    `live_over_budget` (--batch-auto): lines that do not fit the --max-cost cap at the batch
    price go live (where each is reserved on its own) instead of failing."""

    def __init__(
        self,
        live: Sender,
        *,
        reasks_by_batch: bool = False,
        live_over_budget: bool = False,
    ) -> None:
        self._live = live
        self._reasks_by_batch = reasks_by_batch
        self._live_over_budget = live_over_budget
        self._preanswered: dict[str, LineResult] = {}
        self._waiting: dict[str, _Waiting] = {}
        self.changed = asyncio.Event()
        self.live_after_batch = 0  # lines the batch failed, finished live
        self.reasks = 0  # re-asks of invalid answers, live or in a follow-up batch
        self.over_budget = 0  # lines that did not fit the --max-cost cap at the batch price

    @property
    def asked(self) -> int:
        """Asks waiting for the batch now (not those answered in an earlier round)."""
        return len(self.waiting())

    async def send(
        self,
        body: Mapping[str, Any],
        *,
        request_key: str = "",
        batch_jobs: Sequence[LineJob] = (),
        batch_worst_case_usd: Decimal = Decimal(0),
        **options: Any,
    ) -> tuple[Completion, int]:
        first = int(options.get("first_attempt", 1))
        asked = options.get("first_ask")
        if not asked if asked is not None else first != 1:
            self.reasks += 1
            if not self._reasks_by_batch:
                return await self._live.send(body, request_key=request_key, **options)  # a re-ask: live, by default
        line_id = custom_id(request_key, body)
        ready = self._preanswered.pop(line_id, None)
        if ready is not None and ready.completion is not None:
            return ready.completion, first
        waiting = self._waiting.get(line_id)
        if waiting is None:
            future: asyncio.Future[LineResult] = asyncio.get_running_loop().create_future()
            waiting = self._waiting[line_id] = _Waiting(
                batch_line(line_id, body),
                future,
                tuple(batch_jobs),
                Decimal(batch_worst_case_usd),
                options.get("on_failed"),
                first,
            )
            self.changed.set()
        result = await waiting.future
        if result.completion is not None:
            return result.completion, waiting.number
        if result.budget and not self._live_over_budget:
            raise BudgetReached(result.error or "not sent: the --max-cost cap was reached")
        if not result.budget:
            self.live_after_batch += 1
        return await self._live.send(body, request_key=request_key, **{**options, "first_attempt": waiting.number})

    def preanswer(self, results: Mapping[str, LineResult]) -> None:
        """Answers of a batch an older version recorded (by custom_id only): used when the very
        same request is asked again."""
        self._preanswered.update(results)

    def waiting(self) -> dict[str, _Waiting]:
        """The asks still waiting for a batch, by line id, in the order asked."""
        return {line_id: waiting for line_id, waiting in self._waiting.items() if not waiting.future.done()}

    def fit_budget(self, room_usd: Decimal) -> Decimal:
        """Keep the lines whose worst cases (at the batch price) fit in `room_usd`, in the order
        asked; the others are settled as over the cap. Returns what the kept lines reserve."""
        kept = Decimal(0)
        for waiting in self.waiting().values():
            if kept + waiting.worst_case_usd <= room_usd:
                kept += waiting.worst_case_usd
                continue
            self.over_budget += 1
            worst = waiting.worst_case_usd
            message = f"not sent: its worst case ${worst:.4f} at the batch price would cross the --max-cost cap"
            waiting.future.set_result(LineResult(None, message, budget=True))
        return kept

    def resolve(self, results: Mapping[str, LineResult], batch_id: str) -> None:
        """Answer the asks the batch answered (or failed); an answer that may have been billed
        though it cannot be used is logged as such first."""
        for line_id, waiting in self.waiting().items():
            result = results.get(line_id)
            if result is None:
                continue
            if result.maybe_billed:
                self._log_unconfirmed(waiting, batch_id, result.error or "unusable batch answer")
            waiting.future.set_result(result)

    def unconfirmed(self, line_ids: Iterable[str], batch_id: str, why: str) -> None:
        """Lines the batch left unanswered though its counts say it did them: possibly billed."""
        waiting = self.waiting()
        for line_id in line_ids:
            if line_id in waiting:
                self._log_unconfirmed(waiting[line_id], batch_id, why)

    @staticmethod
    def _log_unconfirmed(waiting: _Waiting, batch_id: str, why: str) -> None:
        if waiting.on_failed is not None:
            error = RelayRetryable("batch_unanswered", why, maybe_billed=True)
            waiting.on_failed(FailedAttempt(waiting.number, error, 0.0, batch_id=batch_id), False)
        waiting.number += 1

    def fail_missing(self, message: str) -> None:
        """The batch ended without answering these: they are finished live."""
        for waiting in self.waiting().values():
            waiting.future.set_result(LineResult(None, message))

    def clear(self) -> None:
        """Forget the asks of a finished chunk (the counts run on, for the run's summary)."""
        self._waiting.clear()


def encode_lines(lines: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


@dataclass(slots=True)
class BatchProgress:
    """What the run says while a batch works: its id, status and the batch's own counts."""

    batch_id: str
    status: str
    total: int
    completed: int
    failed: int


def progress_of(batch: Mapping[str, Any]) -> BatchProgress:
    """A batch object's status and counts, as far as the relay's answer makes sense (a count it
    garbles reads as 0: the progress line is for people, the output file decides)."""
    counts = batch.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}

    def count(name: str) -> int:
        value = counts.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    return BatchProgress(
        str(batch.get("id")), str(batch.get("status")), count("total"), count("completed"), count("failed")
    )


async def run_in_batches(
    units: Iterable[Sequence[Any]],
    send_unit: Callable[[Any], Awaitable[None]],
    collector: BatchCollector,
    client: BatchClient,
    store: RunStore,
    settings: Settings,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    now: Callable[[], float] = time.time,
    on_status: Callable[[BatchProgress], None] | None = None,
    on_unit: Callable[[], None] | None = None,
    budget: Budget | None = None,
    price: Price | None = None,
) -> list[str]:
    """Send every unit's first ask through the batch API, MAX_LINES requests to a file: start
    each unit's work, wait until all have asked, submit the batch, and let them finish on its
    answers (their re-asks live). A batch is forgotten only once every unit it answered has
    committed its result. Returns what the run should say about it."""
    notes: list[str] = []
    iterator = iter(units)
    while True:
        chunk = []
        for unit in iterator:
            if unit:
                chunk.append(unit)
            elif on_unit:
                on_unit()  # settled without sending (up to date)
            if len(chunk) >= MAX_LINES:
                break
        if not chunk:
            return notes + _summary_notes(collector, settings)
        tasks = [asyncio.create_task(_unit(send_unit, unit, on_unit)) for unit in chunk]
        collected: list[str] = []  # input files of the batches whose answers this chunk uses
        try:
            # Round after round: the first asks, then (with batch_reasks: batch) the re-asks of
            # the answers that were not valid, until every unit has finished.
            while True:
                await _until_all_asked(collector, tasks)
                if not collector.asked:
                    break
                reserved = Decimal(0)
                if budget is not None:
                    reserved = collector.fit_budget(budget.room_usd())
                    if not collector.asked:
                        continue  # nothing fits: those asks fail (or go live with --batch-auto)
                    await budget.reserve(reserved)
                spent = await _collect(
                    collector,
                    client,
                    store,
                    settings,
                    sleep=sleep,
                    now=now,
                    on_status=on_status,
                    notes=notes,
                    collected=collected,
                )
                if budget is not None:
                    budget.settle(reserved, _batch_cost(spent, price))
            await asyncio.gather(*tasks)
            for file_id in collected:
                store.forget_batch(file_id)  # every answer it gave is committed
        finally:
            for task in tasks:
                task.cancel()
            collector.clear()


def _summary_notes(collector: BatchCollector, settings: Settings) -> list[str]:
    notes = []
    if collector.over_budget:
        went = "sent live instead (--batch-auto)" if settings.batch == "auto" else "not sent"
        notes.append(
            f"{collector.over_budget:,} requests did not fit the --max-cost cap at the batch price"
            f" (every answer at --max-tokens): {went}."
        )
    if collector.reasks:
        how = "in follow-up batches" if settings.batch_reasks == "batch" else "live"
        notes.append(f"{collector.reasks:,} re-asks of invalid answers were sent {how}.")
    if collector.live_after_batch:
        notes.append(f"{collector.live_after_batch:,} requests the batch did not answer were sent live.")
    return notes


async def _unit(send_unit: Callable[[Any], Awaitable[None]], unit: Any, on_unit: Callable[[], None] | None) -> None:
    await send_unit(unit)
    if on_unit:
        on_unit()


async def _until_all_asked(collector: BatchCollector, tasks: list[asyncio.Task[None]]) -> None:
    """Until every unit has put its first ask in the file (or settled without one)."""
    while collector.asked + sum(task.done() for task in tasks) < len(tasks):
        collector.changed.clear()
        changed = asyncio.create_task(collector.changed.wait())
        running = [task for task in tasks if not task.done()]
        await asyncio.wait([changed, *running], return_when=asyncio.FIRST_COMPLETED)
        changed.cancel()
        for task in tasks:  # a unit that failed outright (a bug) surfaces now, not after the batch
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


async def _collect(
    collector: BatchCollector,
    client: BatchClient,
    store: RunStore,
    settings: Settings,
    *,
    sleep: Callable[[float], Awaitable[None]],
    now: Callable[[], float],
    on_status: Callable[[BatchProgress], None] | None,
    notes: list[str],
    collected: list[str],
) -> list[Completion]:
    """Submit the batches of the gathered lines, one per file of at most MAX_FILE_BYTES, wait
    for them and resolve every ask; returns their answers. Lines a batch left unanswered go
    into a new batch (RESUBMISSIONS times at most), then live."""
    waiting = collector.waiting()
    answers: list[Completion] = []
    status = ""
    for round_number in range(RESUBMISSIONS + 1):
        if not waiting:
            break
        records = [await _submit(part, client, store, settings, now) for part in _files(waiting)]
        states = [await client.get(str(record.batch)) for record in records]
        pairs = list(zip(records, states, strict=True))
        running = [(record, state) for record, state in pairs if state.get("status") not in TERMINAL]
        if settings.no_wait and running:
            raise BatchPending(
                [_pending(record, state, now()) for record, state in running], over_budget=collector.over_budget
            )
        for record, state in pairs:
            state = await _wait(client, state, record, sleep=sleep, now=now, on_status=on_status, notes=notes)
            status = str(state.get("status"))
            read = await _read_batch(client, state, record, notes)
            answers += [result.completion for result in read.results.values() if result.completion is not None]
            collector.resolve(read.results, str(record.batch))
            collector.unconfirmed(_unconfirmed(record, read, state), str(record.batch), _UNANSWERED)
            collected.append(record.file)
        waiting = collector.waiting()
        if not waiting or status == "failed":
            break
        again = (
            "sent again in a new batch" if round_number < RESUBMISSIONS else "sent live (the batch was tried enough)"
        )
        notes.append(f"The batch ended {status} with {len(waiting):,} requests unanswered: {again}.")
    collector.fail_missing(f"the batch ended {status} without an answer")
    return answers


_UNANSWERED = "the batch counts this request done but its output has no answer for it"


def _files(waiting: Mapping[str, _Waiting]) -> list[dict[str, _Waiting]]:
    """The lines in files of at most MAX_FILE_BYTES each (Moonshot's limit)."""
    files: list[dict[str, _Waiting]] = [{}]
    size = 0
    for line_id, entry in waiting.items():
        length = len(encode_lines([entry.line]))
        if files[-1] and size + length > MAX_FILE_BYTES:
            files.append({})
            size = 0
        files[-1][line_id] = entry
        size += length
    return files


async def _submit(
    part: Mapping[str, _Waiting], client: BatchClient, store: RunStore, settings: Settings, now: Callable[[], float]
) -> BatchRecord:
    """A new batch of these lines. Its file is recorded in OUT (with the jobs each line
    serves) before the batch is made, and the batch before anything waits for it, so no run
    makes a second batch of the same lines: the next one collects it, or finds it by its file."""
    file_id = await client.upload(encode_lines([entry.line for entry in part.values()]))
    created = datetime.fromtimestamp(now(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    jobs = {line_id: entry.jobs for line_id, entry in part.items()}
    record = BatchRecord(file_id, None, created, settings.batch_window, jobs)
    store.record_batch(record)
    record = replace(record, batch=str((await client.create(file_id, settings.batch_window))["id"]))
    store.record_batch(record)
    return record


def _batch_cost(answers: Sequence[Completion], price: Price | None) -> Decimal | None:
    """What the batch's answers cost at the batch price (None, booked at the worst case, when a
    usage is missing or no price is known)."""
    if price is None or price.batch is None or any(answer.usage is None for answer in answers):
        return None
    return sum((cost_usd(answer.usage, price.batch) for answer in answers if answer.usage), Decimal(0))


async def _wait(
    client: BatchClient,
    batch: dict[str, Any],
    record: BatchRecord,
    *,
    sleep: Callable[[float], Awaitable[None]],
    now: Callable[[], float],
    on_status: Callable[[BatchProgress], None] | None,
    notes: list[str],
) -> dict[str, Any]:
    """Wait for the batch to end, with back-off up to POLL_MAX_S; one still running past its
    completion window (and a margin) is cancelled."""
    delay = client.poll_s
    while True:
        if on_status:
            on_status(progress_of(batch))
        if batch.get("status") in TERMINAL:
            return batch
        if _age_s(batch, record, now()) > _window_s(record.window) + OVERDUE_MARGIN_S:
            return await _give_up(client, batch, record, now(), notes)
        await sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_S)
        batch = await client.get(str(record.batch))


async def _give_up(
    client: BatchClient, batch: dict[str, Any], record: BatchRecord, now: float, notes: list[str]
) -> dict[str, Any]:
    """Cancel an overdue batch; what it answered before it stopped is still used."""
    age = _age_s(batch, record, now)
    notes.append(
        f"Batch {record.batch} is {_duration(age)} old, past its {record.window} completion window: cancelled;"
        " the requests it did not answer are sent again."
    )
    state = await client.cancel(str(record.batch))
    if state.get("status") not in TERMINAL:
        state = {**state, "status": "cancelled"}  # cancelling: its answers so far, if any, are read
    return state


def _pending(record: BatchRecord, batch: Mapping[str, Any], now: float) -> PendingBatch:
    return PendingBatch(
        str(record.batch),
        record.requests or progress_of(batch).total,
        str(batch.get("status")),
        _age_s(batch, record, now),
        _window_s(record.window),
    )


def _uploaded_at(record: BatchRecord) -> float | None:
    """When a record's file was uploaded (Unix seconds), None when it does not say."""
    try:
        return datetime.strptime(record.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _age_s(batch: Mapping[str, Any], record: BatchRecord, now: float) -> float:
    """Since the batch was made: the relay's created_at where it gives a sane one, else when
    its file was recorded."""
    created = batch.get("created_at")
    if not isinstance(created, (int, float)) or isinstance(created, bool) or not 0 < created <= now:
        try:
            created = datetime.strptime(record.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            return 0.0
    return max(0.0, now - float(created))


def _window_s(window: str) -> float:
    """A completion window ("24h", "7d", "90m") in seconds; 24 hours when it cannot be read."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(window[:-1]) * units[window[-1]]
    except (KeyError, ValueError, IndexError):
        return 86400.0


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.0f}h" if hours >= 2 else f"{seconds / 60:.0f} min"


async def _read_batch(
    client: BatchClient, batch: Mapping[str, Any], record: BatchRecord, notes: list[str]
) -> BatchAnswers:
    """A finished batch's answers, checked against the lines it was asked; its output file
    read up to what its requests can need."""
    batch_id = str(record.batch)
    lines = record.requests or progress_of(batch).total
    cap = max(OUTPUT_BYTES_MIN, lines * OUTPUT_BYTES_PER_LINE)
    output = await client.download(batch.get("output_file_id"), cap_bytes=cap)
    errors = await client.download(batch.get("error_file_id"), cap_bytes=cap)
    if output is None:
        notes.append(
            f"Batch {batch_id}'s output file is over {cap:,} bytes, more than its {lines:,} requests can need:"
            " not read; its requests are asked again and counted as possibly billed."
        )
    read = read_results(output or b"", errors or b"", batch_id, record.lines if record.lines is not None else None)
    notes.extend(read.notes(batch_id))
    return read


def _unconfirmed(record: BatchRecord, read: BatchAnswers, batch: Mapping[str, Any]) -> list[str]:
    """The lines the batch has no answer or error for, as many as its counts say it did
    (all of them where it gives no counts to believe): possibly billed, never seen."""
    if record.lines is None:
        return []
    missing = [line_id for line_id in record.lines if line_id not in read.results]
    counts = progress_of(batch)
    if not isinstance(batch.get("request_counts"), Mapping) or counts.total == 0:
        return missing
    used = sum(1 for result in read.results.values() if result.completion is not None or result.maybe_billed)
    return missing[: max(0, counts.completed - used)]


# --- batches an earlier run recorded ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HarvestedAnswer:
    """A recorded batch's answer to one line, for one of the jobs it serves."""

    completion: Completion
    batch: str
    jobs: tuple[LineJob, ...]  # every job the line served, in the order asked (a pack's products)
    share: Usage | None  # this job's equal part of the line's bill; None: the relay reported none


@dataclass(slots=True)
class Harvest:
    """What the batches recorded in OUT hold for this run: answers by job (used where the job
    is still wanted with the fingerprint it was asked with), jobs still in a running batch,
    and what was billed without an answer to use."""

    answers: dict[JobKey, tuple[str, HarvestedAnswer]] = field(default_factory=dict)
    superseded: list[tuple[JobKey, HarvestedAnswer]] = field(default_factory=list)  # a job answered twice
    in_flight: dict[JobKey, str] = field(default_factory=dict)  # --no-wait: jobs of running batches
    by_line: dict[str, LineResult] = field(default_factory=dict)  # an older version's records: by custom_id
    unconfirmed: list[tuple[str, tuple[LineJob, ...]]] = field(default_factory=list)  # (batch, jobs)
    gone: set[str] = field(default_factory=set)  # recorded batches the relay no longer knows
    files: list[str] = field(default_factory=list)  # collected: forgotten once their answers are used
    pending: list[PendingBatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    overdue: int = 0  # batches given up this run

    def take(self, key: JobKey, fp: str) -> HarvestedAnswer | None:
        """The answer for this job as it is now, if a batch holds one (once)."""
        held = self.answers.get(key)
        if held is None or held[0] != fp:
            return None
        del self.answers[key]
        return held[1]

    def is_in_flight(self, key: JobKey, fp: str) -> bool:
        return self.in_flight.get(key) == fp

    def leftovers(self) -> list[tuple[JobKey, HarvestedAnswer]]:
        """Answers no job of this run used (its product changed or left the catalog): paid for."""
        return [(key, answer) for key, (_, answer) in self.answers.items()] + self.superseded


async def collect_recorded(
    client: BatchClient,
    store: RunStore,
    settings: Settings,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    now: Callable[[], float] = time.time,
    on_status: Callable[[BatchProgress], None] | None = None,
) -> Harvest:
    """Every batch OUT records, whatever the catalog is now: finished ones read, running ones
    waited for (with --no-wait, named with their age), overdue ones cancelled."""
    harvest = Harvest()
    for record in store.batch_records():
        if record.batch is None:
            found = await client.find_batch(record.file, _uploaded_at(record))
            if found is None:
                store.forget_batch(record.file)  # uploaded, but no batch was made of it: nothing to pay
                continue
            record = replace(record, batch=found)
            store.record_batch(record)
        try:
            state = await client.get(str(record.batch))
        except BatchGone:
            _forget_gone(harvest, record, store.batch_logged(str(record.batch)))
            continue
        if state.get("status") not in TERMINAL:
            if _age_s(state, record, now()) > _window_s(record.window) + OVERDUE_MARGIN_S:
                state = await _give_up(client, state, record, now(), harvest.notes)
                harvest.overdue += 1
            elif settings.no_wait:
                harvest.pending.append(_pending(record, state, now()))
                for jobs in (record.lines or {}).values():
                    harvest.in_flight.update((key, fp) for key, fp in jobs)
                continue
            else:
                state = await _wait(
                    client, state, record, sleep=sleep, now=now, on_status=on_status, notes=harvest.notes
                )
        elif on_status:
            on_status(progress_of(state))
        read = await _read_batch(client, state, record, harvest.notes)
        harvest.files.append(record.file)
        harvest.notes.append(f"Batch {record.batch}: collected where an earlier run left it (not uploaded again).")
        if record.lines is None:
            harvest.by_line.update(read.results)
            continue
        _gather(harvest, record, read, state, store.batch_logged(str(record.batch)))
    return harvest


def _forget_gone(harvest: Harvest, record: BatchRecord, logged: set[JobKey]) -> None:
    """A recorded batch the relay no longer knows: its lines counted as possibly billed (the
    relay may have run them), the batch forgotten, its jobs asked again by this run."""
    assert record.batch is not None
    for jobs in (record.lines or {}).values():
        harvest.unconfirmed.append((record.batch, tuple(job for job in jobs if job[0] not in logged)))
    harvest.gone.add(record.batch)
    harvest.files.append(record.file)
    harvest.notes.append(
        f"Batch {record.batch} is gone from the relay (404): its {record.requests:,} requests are counted as "
        "possibly billed, the batch is forgotten, and its jobs are asked again."
    )


def _gather(
    harvest: Harvest, record: BatchRecord, read: BatchAnswers, state: Mapping[str, Any], logged: set[JobKey]
) -> None:
    """A recorded batch's answers, by job; jobs the audit log already has from it are skipped."""
    assert record.lines is not None and record.batch is not None

    def unlogged(jobs: tuple[LineJob, ...]) -> tuple[LineJob, ...]:
        return tuple(job for job in jobs if job[0] not in logged)

    for line_id in _unconfirmed(record, read, state):
        harvest.unconfirmed.append((record.batch, unlogged(record.lines[line_id])))
    for line_id, result in read.results.items():
        jobs = record.lines[line_id]
        if result.maybe_billed:
            harvest.unconfirmed.append((record.batch, unlogged(jobs)))
        if result.completion is None:
            continue
        usage = result.completion.usage
        # Equal parts: a later run cannot re-render an older product's block to weigh its share.
        shares: list[Usage | None] = [None] * len(jobs)
        if usage is not None:
            shares = [share for share in split_usage(usage, [1] * len(jobs), [1] * len(jobs))]
        for (key, fp), share in zip(jobs, shares, strict=True):
            if key in logged:
                continue
            answer = HarvestedAnswer(result.completion, record.batch, jobs, share)
            earlier = harvest.answers.get(key)
            if earlier is not None:
                harvest.superseded.append((key, earlier[1]))
            harvest.answers[key] = (fp, answer)

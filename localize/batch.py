"""The batch API (`--batch`): the same jobs, prompts and packs as a live run, sent as one JSONL
file and answered within the completion window, at the batch price.

Moonshot's (OpenAI-shaped) flow: upload the file to /v1/files (`purpose=batch`), create a batch
at /v1/batches, poll it, download its output and error files. Its rules: no sampling parameters
in a line (`temperature`, `top_p`, `n`...), one model per file, files of at most 100 MB, and
only some models batch (those with a `batch:` price in prices.yaml).

The run's first asks go into the file; re-asks of invalid answers, and lines the batch failed,
are finished live. A batch is recorded in OUT (batches.jsonl) before the run waits for it, so
a run killed while it waits collects the same batch next time instead of uploading again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import httpx

from .config import Settings
from .cost import Budget, Price, cost_usd
from .redact import REDACTED, Redactor
from .relay import Completion, RelayError, RelayFatal, parse_completion
from .store import RunStore

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
FIND_PAGES = 20  # of 100 batches each: how far back a batch made but not recorded is looked for


class BatchUnavailable(RelayFatal):
    """The relay has no batch API, or will not batch this model."""


class BatchPending(Exception):
    """--no-wait: the batch is submitted (or still running); the same command collects it."""

    def __init__(self, batch_id: str, requests: int, status: str) -> None:
        super().__init__(batch_id)
        self.batch_id = batch_id
        self.requests = requests
        self.status = status


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
    """What the batch did with one line: an answer, or an error to finish live."""

    completion: Completion | None
    error: str | None = None


def read_results(output: bytes, errors: bytes, batch_id: str) -> dict[str, LineResult]:
    """The output and error files, by custom_id (their order is not the input's)."""
    found: dict[str, LineResult] = {}
    for raw in output.splitlines():
        try:
            line = json.loads(raw)
            response = line["response"]
            body = json.dumps(response["body"]).encode()
            completion = parse_completion(int(response.get("status_code", 200)), body, {}, 0.0)
            found[str(line["custom_id"])] = LineResult(replace(completion, batch_id=batch_id))
        except (ValueError, KeyError, TypeError, RelayError) as exc:
            line_id = _custom_id_of(raw)
            if line_id:
                found[line_id] = LineResult(None, f"unreadable batch answer: {exc}")
    for raw in errors.splitlines():
        line_id = _custom_id_of(raw)
        if line_id and line_id not in found:
            found[line_id] = LineResult(None, _error_message(raw))
    return found


def _custom_id_of(raw: bytes) -> str | None:
    try:
        return str(json.loads(raw)["custom_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _error_message(raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error") or {}
        return str(error.get("message") or error.get("code") or "failed in the batch")
    except (ValueError, AttributeError):
        return "failed in the batch"


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
        self._sleep = sleep
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

    async def find_batch(self, file_id: str) -> str | None:
        """The batch the relay made of this input file, if any: a run may have stopped between
        making it and recording it. Pages through the relay's list of batches; a list it
        cannot give ends the run rather than risk a second batch of the same lines."""
        after: str | None = None
        for _ in range(FIND_PAGES):
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            reply = await self._call("GET", "/batches", params=params)
            try:
                page = reply.json() if reply.status_code < 300 else None
                batches = [batch for batch in page["data"] if isinstance(batch, dict)]
            except (ValueError, KeyError, TypeError):
                raise RelayFatal(
                    "bad_response",
                    f"cannot tell whether a batch was made of file {file_id}: the relay's list of batches"
                    f" is unreadable (HTTP {reply.status_code})",
                    hint="run the same command again later; nothing is uploaded or made until it can tell",
                ) from None
            for batch in batches:
                if batch.get("input_file_id") == file_id and batch.get("id"):
                    return str(batch["id"])
            if not page.get("has_more") or not batches:
                return None
            after = str(batches[-1].get("id"))
        return None

    async def get(self, batch_id: str) -> dict[str, Any]:
        return self._json(await self._call("GET", f"/batches/{batch_id}"), "read the batch")

    async def download(self, file_id: str | None) -> bytes:
        if not file_id:
            return b""
        reply = await self._call("GET", f"/files/{file_id}/content")
        if reply.status_code >= 300:
            raise RelayFatal("bad_response", f"cannot download batch file {file_id}: HTTP {reply.status_code}")
        # An answer that quotes the key keeps nothing of it (as live answers, relay.py).
        return (
            reply.content.replace(self._secret, REDACTED.encode()) if self._secret in reply.content else reply.content
        )

    async def _call(self, method: str, path: str, *, retries: int = RETRIES, **kwargs: Any) -> httpx.Response:
        """One exchange, tried again with back-off while the relay stalls, drops the connection
        or answers 429/5xx. A relay still away after that ends the run (exit 4); a batch it
        created is recorded in OUT, so the same command picks it up."""
        for attempt in range(retries + 1):
            try:
                reply = await self._http.request(method, self._base + path, **kwargs)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if reply.status_code != 429 and reply.status_code < 500:
                    return reply
                problem = f"HTTP {reply.status_code} {self._message(reply)}"
            if attempt < retries:
                await self._sleep(self._retry_s * 2**attempt)
        raise RelayFatal(
            "batch_unreachable",
            self._redact(f"the relay did not answer {method} {path} ({problem}) after {retries + 1} tries"),
            hint="a batch it created is recorded in OUT/batches.jsonl: run the same command again to collect it",
        )

    def _json(self, reply: httpx.Response, what: str) -> dict[str, Any]:
        if reply.status_code == 404:
            raise BatchUnavailable("no_batch_api", f"the relay at {self._base} has no batch API (404)")
        if reply.status_code in (401, 403):
            raise RelayFatal("unauthorized", f"the relay refused the key while trying to {what}")
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
        try:
            text = str(reply.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            text = reply.text
        return self._redact(text[:300])


@dataclass(slots=True)
class _Waiting:
    line: dict[str, Any]
    future: asyncio.Future[LineResult]
    worst_case_usd: Decimal


class BatchCollector:
    """Stands in for the live sender: a job's first ask joins the batch file (its re-asks too,
    with batch_reasks: batch); lines the batch failed go live. run_in_batches submits what was
    gathered and resolves each ask with its answer. A line is recorded with its batch in
    OUT/batches.jsonl, not as a sent attempt: its usage is logged once, when it is collected."""

    def __init__(self, live: Any, *, reasks_by_batch: bool = False) -> None:
        self._live = live
        self._reasks_by_batch = reasks_by_batch
        self._waiting: dict[str, _Waiting] = {}
        self.changed = asyncio.Event()
        self.live_after_batch = 0  # lines the batch failed, finished live
        self.reasks = 0  # re-asks of invalid answers, live or in a follow-up batch

    @property
    def asked(self) -> int:
        """Asks waiting for the batch now (not those answered in an earlier round)."""
        return sum(1 for waiting in self._waiting.values() if not waiting.future.done())

    async def send(self, body: Mapping[str, Any], *, request_key: str = "", **options: Any) -> tuple[Completion, int]:
        if options.get("first_attempt", 1) != 1:
            self.reasks += 1
            if not self._reasks_by_batch:
                return await self._live.send(body, **options)  # a re-ask: live, by default
        line_id = custom_id(request_key, body)
        waiting = self._waiting.get(line_id)
        if waiting is None:
            future: asyncio.Future[LineResult] = asyncio.get_running_loop().create_future()
            worst = Decimal(options.get("worst_case_usd", 0))
            waiting = self._waiting[line_id] = _Waiting(batch_line(line_id, body), future, worst)
            self.changed.set()
        result = await waiting.future
        if result.completion is not None:
            return result.completion, int(options.get("first_attempt", 1))
        self.live_after_batch += 1
        return await self._live.send(body, **options)

    def lines(self) -> list[dict[str, Any]]:
        """The lines of the asks still waiting for a batch."""
        return [waiting.line for waiting in self._waiting.values() if not waiting.future.done()]

    def worst_case_usd(self) -> Decimal:
        """What every line gathered could cost at most (at the live price: the batch's is lower)."""
        waiting = [entry.worst_case_usd for entry in self._waiting.values() if not entry.future.done()]
        return sum(waiting, Decimal(0))

    def resolve(self, results: Mapping[str, LineResult]) -> list[str]:
        """Answer the asks the batch answered (or failed); the ids it left unanswered."""
        missing = []
        for line_id, waiting in self._waiting.items():
            if waiting.future.done():
                continue
            if line_id in results:
                waiting.future.set_result(results[line_id])
            else:
                missing.append(line_id)
        return missing

    def fail_missing(self, message: str) -> None:
        """The batch ended without answering these: they are finished live."""
        for waiting in self._waiting.values():
            if not waiting.future.done():
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
    on_status: Callable[[BatchProgress], None] | None = None,
    on_unit: Callable[[], None] | None = None,
    budget: Budget | None = None,
    price: Price | None = None,
) -> list[str]:
    """Send every unit's first ask through the batch API, MAX_LINES requests to a file: start
    each unit's work, wait until all have asked, submit (or resume) the batch, and let them
    finish on its answers (their re-asks live). Returns what the run should say about it."""
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
            if collector.reasks:
                how = "in follow-up batches" if settings.batch_reasks == "batch" else "live"
                notes.append(f"{collector.reasks:,} re-asks of invalid answers were sent {how}.")
            if collector.live_after_batch:
                notes.append(f"{collector.live_after_batch:,} requests the batch did not answer were sent live.")
            return notes
        tasks = [asyncio.create_task(_unit(send_unit, unit, on_unit)) for unit in chunk]
        try:
            # Round after round: the first asks, then (with batch_reasks: batch) the re-asks of
            # the answers that were not valid, until every unit has finished.
            while True:
                await _until_all_asked(collector, tasks)
                if not collector.asked:
                    break
                worst = collector.worst_case_usd()
                if budget is not None and not await budget.reserve(worst):
                    collector.fail_missing("the --max-cost cap cannot hold the whole batch file")  # live refuses too
                    continue
                spent = await _collect(
                    collector, client, store, settings, sleep=sleep, on_status=on_status, notes=notes
                )
                if budget is not None:
                    budget.settle(worst, _batch_cost(spent, price))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            collector.clear()


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
    on_status: Callable[[BatchProgress], None] | None,
    notes: list[str],
) -> list[Completion]:
    """Submit (or find) the batches of the gathered lines, one per file of at most
    MAX_FILE_BYTES, wait for them and resolve every ask; returns their answers."""
    lines = collector.lines()
    answers: list[Completion] = []
    status = ""
    for _ in range(RESUBMISSIONS + 1):
        if not lines:
            break
        batch_ids = [await _submit(part, client, store, settings, notes) for part in _files(lines)]
        states = [await client.get(batch_id) for batch_id in batch_ids]
        if settings.no_wait and any(state.get("status") not in TERMINAL for state in states):
            waiting = next(state for state in states if state.get("status") not in TERMINAL)
            raise BatchPending(", ".join(batch_ids), len(lines), str(waiting.get("status")))
        missing: list[str] = []
        for batch in states:
            batch = await _poll(client, batch, settings, sleep=sleep, on_status=on_status)
            status = str(batch.get("status"))
            output = await client.download(batch.get("output_file_id"))
            errors = await client.download(batch.get("error_file_id"))
            results = read_results(output, errors, str(batch["id"]))
            answers += [result.completion for result in results.values() if result.completion is not None]
            collector.resolve(results)
            store.finish_batch(str(batch["id"]))
        missing = collector.resolve({})
        if not missing or status == "failed":
            break
        notes.append(f"The batch ended {status} with {len(missing):,} requests unanswered: sent again in a new batch.")
        wanted = set(missing)
        lines = [line for line in lines if line["custom_id"] in wanted]
    collector.fail_missing(f"the batch ended {status} without an answer")
    return answers


def _files(lines: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The lines in files of at most MAX_FILE_BYTES each (Moonshot's limit)."""
    files: list[list[dict[str, Any]]] = [[]]
    size = 0
    for line in lines:
        length = len(encode_lines([line]))
        if files[-1] and size + length > MAX_FILE_BYTES:
            files.append([])
            size = 0
        files[-1].append(line)
        size += length
    return files


async def _submit(
    lines: Sequence[dict[str, Any]], client: BatchClient, store: RunStore, settings: Settings, notes: list[str]
) -> str:
    """The batch of these lines: the one an earlier run recorded (or made but could not record:
    found by its input file), or a new one. Its file is recorded in OUT before the batch is
    made and the batch before anything waits for it, so no run makes a second batch of the
    same lines."""
    ids = [str(line["custom_id"]) for line in lines]
    pending = store.pending_batch(ids)
    batch_id = pending.batch if pending else None
    if pending is not None and batch_id is None:
        batch_id = await client.find_batch(pending.file)
        if batch_id is not None:
            store.record_batch(batch_id, ids, pending.file)
    if batch_id is not None:
        notes.append(f"Batch {batch_id}: collected where an earlier run left it (not uploaded again).")
        return batch_id
    file_id = await client.upload(encode_lines(lines))
    store.record_batch(None, ids, file_id)
    batch_id = str((await client.create(file_id, settings.batch_window))["id"])
    store.record_batch(batch_id, ids, file_id)
    return batch_id


def _batch_cost(answers: Sequence[Completion], price: Price | None) -> Decimal | None:
    """What the batch's answers cost at the batch price (None, booked at the worst case, when a
    usage is missing or no price is known)."""
    if price is None or price.batch is None or any(answer.usage is None for answer in answers):
        return None
    return sum((cost_usd(answer.usage, price.batch) for answer in answers if answer.usage), Decimal(0))


async def _poll(
    client: BatchClient,
    batch: dict[str, Any],
    settings: Settings,
    *,
    sleep: Callable[[float], Awaitable[None]],
    on_status: Callable[[BatchProgress], None] | None,
) -> dict[str, Any]:
    """Wait for the batch to end, with back-off from batch_poll_s up to POLL_MAX_S."""
    delay = settings.batch_poll_s
    while True:
        if on_status:
            on_status(progress_of(batch))
        if batch.get("status") in TERMINAL:
            return batch
        await sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_S)
        batch = await client.get(str(batch["id"]))

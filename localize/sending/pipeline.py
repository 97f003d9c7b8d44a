"""The fan-out: catalog rows → jobs → prompts → (estimate | relay) → results."""

from __future__ import annotations

import asyncio
import errno
import secrets
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..checking.strings import (
    lint_kept,
    memory_for,
    store_strings,
)
from ..cost import (
    Budget,
    Price,
    judge_price,
    load_prices,
    price_for,
)
from ..errors import DiskFull, InputError
from ..output.run_report import previous_rate_rpm, write_run_reports
from ..output.store import RunStore
from ..people.edits import check_people
from ..planning.jobs import (
    PromptSets,
    check_max_tokens,
    iter_jobs,
    preflight,
    products_on,
    require_locales,
)
from ..reading.textfile import read_once
from ..shops import Delivery, Imports, ImportSummary, check_imports, write_imports
from .batch import (
    BatchClient,
    BatchCollector,
    BatchPending,
    BatchProgress,
    BatchUnavailable,
    Harvest,
    PendingBatch,
    collect_recorded,
    run_in_batches,
)
from .judge import Judge, judge_listings
from .relay import (
    Pacer,
    RelayClient,
    RelayError,
    RelayFatal,
    Sender,
)
from .runner import JobRunner, requests_in_flight

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    import httpx

    from ..config import Settings
    from ..output.lock import JobKey

# --- live runs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a live run stands, after each job it finishes or finds up to date."""

    total: int
    succeeded: int
    failed: int
    up_to_date: int
    spent_usd: Decimal
    judged: int | None = None  # --judge, once its phase began: listings the judge has answered for


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a live run did; `report` is the cost report written to OUT."""

    report: dict[str, Any]
    out: Path
    fatal: RelayFatal | None
    budget_reached: bool
    interrupted: bool
    imports: Imports = field(default_factory=Imports)  # the shops' import files written and removed
    notes: tuple[str, ...] = ()  # what the run says about how it sent (the batch API)
    pending: tuple[PendingBatch, ...] = ()  # --no-wait: batches submitted or running, to collect later
    overdue: int = 0  # batches given up past their completion window (cancelled, asked again)

    @property
    def failed(self) -> int:
        return int(self.report["jobs"]["failed"])

    @property
    def shopify(self) -> ImportSummary | None:
        """The Translate & Adapt file, when the catalog is Shopify's export."""
        return self.imports.shopify


async def run(
    settings: Settings,
    catalog: Path,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunSummary:
    """Send every job that is not up to date, validate every answer, write results, failures,
    the lock and the cost report. SIGINT / SIGTERM stop sending and keep what finished. The
    catalog is read from one copy, so what the checks counted is what is sent."""
    with read_once(catalog, always=True):
        return await _run(settings, catalog, on_progress=on_progress, on_batch=on_batch, transport=transport)


async def _run(
    settings: Settings,
    catalog: Path,
    *,
    on_progress: Callable[[Progress], None] | None,
    on_batch: Callable[[BatchProgress], None] | None,
    transport: httpx.AsyncBaseTransport | None,
) -> RunSummary:
    started = time.perf_counter()
    require_locales(settings)
    if settings.adapt and settings.batch != "off":
        raise InputError(
            "--adapt waits for each sibling market's listing, which a batch answers only later",
            hint="run the sibling markets first (a batch is fine), then the adapted ones live",
        )
    if settings.no_wait and settings.batch == "off":
        raise InputError("--no-wait submits a batch and exits", hint="add --batch (or --batch-auto)")
    check_imports(settings, catalog, lambda platform: products_on(settings, catalog, platform))
    memory = memory_for(settings, catalog)  # a TMX that cannot be read: said before anything is sent
    price = price_for(settings.model, load_prices(settings.prices))
    check_max_tokens(settings, price)
    judged_at = judge_price(settings.judge_model, price, settings.prices)  # (an unknown judge: said now)
    prompt_sets = PromptSets(settings)
    total = preflight(settings, catalog, prompt_sets)
    strings = store_strings(settings, catalog)
    total += sum(len(locales) for _, locales in strings)
    spread = (total, settings.concurrency)  # (what a run starts with in flight, before it sizes it: see pace.py)
    settings = settings.model_copy(update={"concurrency": requests_in_flight(settings, prompt_sets, price, total)})
    notes: list[str] = []
    batch_client = await _batch_client(settings, price, transport, notes)

    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    store = RunStore(settings.out)
    try:
        check_people(store, prompt_sets)  # a hand-written decision that breaks a hard rule: said before sending
    except InputError:
        store.release()
        raise
    notes.extend(store.notices)
    client = RelayClient(settings, transport=transport)
    budget = Budget(settings.max_cost_usd) if settings.max_cost_usd is not None else None
    pacer = Pacer(
        rpm=None if settings.rpm == "auto" else settings.rpm,
        concurrency=settings.concurrency,
        tpm=settings.tpm,
        start_rpm=previous_rate_rpm(settings) if settings.rpm == "auto" else None,
    )
    sender = Sender(
        client,
        pacer,
        max_retries=settings.max_retries,
        backoff_base_s=settings.backoff_s,
        budget=budget,
        price=price,
    )
    collector = (
        BatchCollector(
            sender, reasks_by_batch=settings.batch_reasks == "batch", live_over_budget=settings.batch == "auto"
        )
        if batch_client is not None
        else None
    )
    worker = JobRunner(
        settings,
        price,
        prompt_sets,
        collector or sender,
        store,
        run_id,
        memory,
        spread=spread if collector is None else None,
    )
    judge = None
    if settings.judge != "off":
        judge = Judge(settings, prompt_sets, collector or sender, store, run_id, judged_at)
    recorded = None if batch_client is not None else await _recorded_batches(settings, store, transport, on_batch)
    if recorded is not None:  # a live run beside batches an earlier run left: never pays their jobs twice
        worker.use_harvest(recorded)
        notes.extend(recorded.notes)
    adapted = frozenset(settings.adapt)  # (--adapt: those markets go once their siblings' listings are written)
    listings = (job for _, product_jobs in iter_jobs(settings, catalog, prompt_sets) for job in product_jobs)
    units = worker.every_unit((job for job in listings if job.locale.tag not in adapted), strings, last=not adapted)
    adapted_units = worker.every_unit(
        (
            job
            for _, product_jobs in iter_jobs(settings, catalog, prompt_sets)
            for job in product_jobs
            if job.locale.tag in adapted
        ),
        (),
    )
    siblings_written = asyncio.Event()
    first_phase_left = 0  # workers still on the first phase (set once they start)

    disk_errors: list[OSError] = []
    pending: list[PendingBatch] = []
    overdue: list[int] = []

    def progress() -> None:
        if on_progress:
            judging = judge is not None and judge.began
            spent = worker.spent_usd + (judge.tally.spent_usd if judge is not None else 0)
            judged = judge.tally.judged + sum(judge.tally.unjudged.values()) if judge and judging else None
            on_progress(Progress(total, worker.succeeded, worker.failed, worker.up_to_date, spent, judged))

    def disk_full(exc: OSError) -> None:
        """Nothing more can be recorded, so nothing more may be paid for: stop every worker."""
        if not is_disk_full(exc):
            raise exc
        disk_errors.append(exc)
        for task in tasks:
            task.cancel()

    async def drain() -> None:
        nonlocal first_phase_left
        try:
            try:
                for unit in units:  # one shared iterator: each worker takes the next job or pack
                    await worker.send(unit)
                    progress()
            finally:  # (however a worker leaves the first phase, the others are not left waiting)
                first_phase_left -= 1
                if not first_phase_left:
                    siblings_written.set()
            if adapted:  # every listing the adapted markets start from written first
                await siblings_written.wait()
                for unit in adapted_units:
                    await worker.send(unit)
                    progress()
        except OSError as exc:
            disk_full(exc)

    async def batches() -> None:
        assert batch_client is not None and collector is not None
        try:
            # Every batch OUT records first, whatever the catalog is now: the answers of jobs
            # still wanted are used, and only the rest go into a new batch.
            harvest = await collect_recorded(batch_client, store, settings, on_status=on_batch)
            worker.use_harvest(harvest)
            collector.preanswer(harvest.by_line)
            notes.extend(harvest.notes)
            pending.extend(harvest.pending)
            overdue.append(harvest.overdue)
            notes.extend(
                await run_in_batches(
                    units,
                    worker.send,
                    collector,
                    batch_client,
                    store,
                    settings,
                    on_status=on_batch,
                    on_unit=progress,
                    budget=budget,
                    price=price,
                )
            )
        except BatchPending as submitted:
            pending.extend(submitted.batches)  # --no-wait: recorded in OUT; the same command collects it
            if submitted.over_budget:  # left out, not submitted: said, and the run ends at the cap
                worker.budget_reached = True
                notes.append(
                    f"{submitted.over_budget:,} requests did not fit the --max-cost cap at the batch price "
                    "(every answer at --max-tokens): not submitted; a later run asks them."
                )
        except OSError as exc:
            disk_full(exc)
            return
        worker.close_harvest()

    if batch_client is not None:
        tasks = [asyncio.create_task(batches())]
    else:
        tasks = [asyncio.create_task(drain()) for _ in range(max(1, min(settings.concurrency, total)))]
        first_phase_left = len(tasks)
    # Held until the reports are written: a second SIGTERM (what `timeout` sends) or Ctrl-C
    # while the final files are written must not kill the process half way.
    interrupted = _stop_on_signals(tasks)
    try:
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
            _raise_bugs(tasks)
            if judge is not None and _judge_skipped(settings, interrupted, disk_errors, pending, worker) is None:
                # The judge reads what the run wrote: after every listing, with the same workers.
                judging = (job for _, product_jobs in iter_jobs(settings, catalog, prompt_sets) for job in product_jobs)
                tasks[:] = judge_listings(
                    judge,
                    judging,
                    settings,
                    batch_client,
                    collector,
                    budget,
                    on_batch=on_batch,
                    on_error=disk_full,
                    on_unit=progress,
                )
                await asyncio.gather(*tasks, return_exceptions=True)
                _raise_bugs(tasks)
        finally:
            await client.aclose()
            if batch_client is not None:
                await batch_client.aclose()
            if recorded is not None and not interrupted:
                worker.close_harvest()  # the collected batches' unused answers logged, the batches forgotten
            final_error, imports = _write_outputs(settings, catalog, store)
            if final_error is not None:
                disk_errors.append(final_error)
        if disk_errors:
            raise DiskFull(
                f"the disk holding {settings.out} is full ({disk_errors[0].strerror}): sending stopped",
                hint="free some space and run the same command again: what finished is kept and will not be sent again",
            )
        jobs_count = {
            "total": total,
            "succeeded": worker.succeeded,
            "failed": worker.failed,
            "up_to_date": worker.up_to_date,
        }
        if interrupted or pending or worker.in_batch:
            jobs_count["not_started"] = total - worker.succeeded - worker.failed - worker.up_to_date
        if worker.held:
            jobs_count["held"] = worker.held  # of the failed, not sent again: unchanged since they failed
        if worker.outdated:
            jobs_count["outdated"] = worker.outdated  # of the up to date: kept as a person left them
        if worker.from_memory:
            jobs_count["from_memory"] = worker.from_memory  # of the succeeded: store strings a memory filled
        if worker.reused:
            jobs_count["reused"] = worker.reused  # of the succeeded: the same copy as another job's listing
        if worker.in_batch:
            jobs_count["in_batch"] = worker.in_batch  # of those, asked by a batch still running (--no-wait)
        notes.extend(_memory_notes(worker.memory_refused))
        if recorded is not None and worker.in_batch:
            notes.append(_left_to_batches(recorded, worker.in_batch))
        elapsed_s = time.perf_counter() - started
        report = write_run_reports(
            settings,
            catalog,
            store,
            run_id,
            jobs_count,
            pacer,
            elapsed_s=elapsed_s,
            imports=imports,
            held_since=sorted(run for run in worker.held_since if run),
            reused_saved_usd=worker.saved_usd if worker.reused or worker.from_memory else None,
        )
        notes.extend(_reasoning_notes(settings, report, worker.reasoning_usd))
        if judge is not None:
            skipped = None if judge.began else _judge_skipped(settings, interrupted, disk_errors, pending, worker)
            notes.extend(judge.notes(skipped=skipped))
        notes.extend(worker.model_notes())
    finally:
        store.release()
        _restore_signals()
    return RunSummary(
        report,
        settings.out,
        worker.fatal,
        worker.budget_reached or bool(judge and judge.budget_reached),
        bool(interrupted),
        imports,
        tuple(notes),
        tuple(pending),
        sum(overdue),
    )


def _raise_bugs(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # a bug: let it surface after cleanup


def _reasoning_notes(settings: Settings, report: Mapping[str, Any], reasoning_usd: Decimal) -> list[str]:
    """Reasoning the relay billed (inside the output): said once, with its share of the cost;
    a warning when nobody asked for it (no --thinking: the model thought anyway, or the relay
    dropped the request's switch or resolved an alias to a thinking model)."""
    tokens = int(report["tokens"].get("reasoning") or 0)
    if not tokens:
        return []
    cost = float(report.get("cost_usd") or 0)
    share = f", {float(reasoning_usd) / cost:.0%} of the cost" if cost else ""
    said = f"{tokens:,} reasoning tokens billed as output (${float(reasoning_usd):.4f}{share})"
    if settings.thinking:
        return [f"note: {said}: --thinking let the model think."]
    return [
        f"warning: {said}, though thinking was not asked for: the relay may drop the request's "
        f"`thinking: disabled`, or serve {settings.model} from a thinking model; see requests.jsonl."
    ]


def _judge_skipped(
    settings: Settings, interrupted: list[int], disk_errors: list[OSError], pending: list[Any], worker: JobRunner
) -> str | None:
    """Why the judge does not run this time (None: it does)."""
    if settings.no_wait:
        return "--no-wait: the judge waits for its answers; a run without it judges the listings"
    if interrupted:
        return "the run was interrupted"
    if disk_errors:
        return "the disk is full"
    if pending:
        return "the batch is still running (--no-wait): a run that collects it judges its listings"
    if worker.fatal is not None:
        return f"the run stopped ({worker.fatal.kind})"
    if worker.budget_reached:
        return "--max-cost was reached while writing"
    return None


def _memory_notes(refused: Mapping[JobKey, str]) -> list[str]:
    """The translation memory's units the run did not use, because they fail the checks a
    model's translation gets: how many, and the first few with what is wrong."""
    if not refused:
        return []
    shown = "; ".join(f"{key[0]} [{key[2]}]: {why}" for key, why in list(refused.items())[:MEMORY_REFUSED_SHOWN])
    more = f"; and {len(refused) - MEMORY_REFUSED_SHOWN:,} more" if len(refused) > MEMORY_REFUSED_SHOWN else ""
    return [
        f"Translation memory: {len(refused):,} unit{'' if len(refused) == 1 else 's'} not used (they fail the "
        f"checks a model's translation gets; translated instead): {shown}{more}"
    ]


async def _recorded_batches(
    settings: Settings,
    store: RunStore,
    transport: httpx.AsyncBaseTransport | None,
    on_batch: Callable[[BatchProgress], None] | None,
) -> Harvest | None:
    """A run without --batch on an OUT where an earlier run recorded batches: the finished ones
    collected first (their answers used, not bought again live), the running ones left to
    answer their jobs (not waited for, not sent live). None when OUT records no batch."""
    records = store.batch_records()
    if not records:
        return None
    client = BatchClient(settings, transport=transport)
    try:
        return await collect_recorded(client, store, settings.model_copy(update={"no_wait": True}), on_status=on_batch)
    except (BatchUnavailable, RelayError) as exc:
        # The batches cannot be read now: their jobs stay theirs, for a later run to collect.
        harvest = Harvest()
        for record in records:
            for served in (record.lines or {}).values():
                harvest.in_flight.update((key, fp) for key, fp in served)
        harvest.notes.append(f"note: the batches recorded in {settings.out} could not be read ({exc.message})")
        return harvest
    finally:
        await client.aclose()


def _left_to_batches(harvest: Harvest, jobs: int) -> str:
    """What a live run left to the batches still running, and how to collect them."""
    running = "; ".join(f"{batch.batch_id}, {batch.status}" for batch in harvest.pending) or "recorded in OUT"
    return (
        f"Left to a running batch: {_plural_jobs(jobs)} a batch already asks ({running}) were not sent live; "
        "run again (with --batch to wait for it) to collect their answers: nothing is paid twice."
    )


def _plural_jobs(count: int) -> str:
    return f"{count:,} job{'' if count == 1 else 's'}"


async def _batch_client(
    settings: Settings, price: Price, transport: httpx.AsyncBaseTransport | None, notes: list[str]
) -> BatchClient | None:
    """With --batch, a client for the relay's batch API, once the relay shows it has one and
    the model batches; said before anything is made. --batch-auto falls back to live."""
    if settings.batch == "off":
        return None
    problem: BatchUnavailable | None = None
    client: BatchClient | None = None
    if price.batch is None:
        batching = sorted(model for model, entry in load_prices(settings.prices).items() if entry.batch is not None)
        problem = BatchUnavailable(
            "batch_model",
            f"model {settings.model} has no batch price in prices.yaml: it is not known to batch",
            hint=f"the models with one: {', '.join(batching) or 'none'}; run live, or add a batch price for it in "
            "localize.yaml (prices: {model: {..., batch: {...}}})",
        )
    else:
        client = BatchClient(settings, transport=transport)
        try:
            await client.probe()
        except BatchUnavailable as exc:
            await client.aclose()
            client, problem = None, exc
    if problem is None:
        return client
    if settings.batch == "on":
        raise problem
    notes.append(f"note: {problem.message}; sending live instead")
    return None


def _write_outputs(settings: Settings, catalog: Path, store: RunStore) -> tuple[OSError | None, Imports]:
    """Close the audit log and export the final files and the shops' import files; a full disk
    is returned, not raised."""
    imports = Imports()
    try:
        store.close()
        store.finish(formats=settings.formats)
        delivery = Delivery(
            settings.out,
            settings,
            catalog,
            store.results,
            lambda: {(str(r["id"]), str(r["locale"])): str(r["text"]) for r in store.string_results()},
            lambda platform: products_on(settings, catalog, platform),
            lint=lint_kept,
        )
        imports = write_imports(delivery)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        return exc, imports
    return None, imports


def is_disk_full(exc: OSError) -> bool:
    """No space left on OUT's device, or the user's quota is spent."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _stop_on_signals(tasks: list[asyncio.Task[None]]) -> list[int]:
    """Ctrl-C (or a CI runner's SIGTERM) cancels the workers: nothing new is sent, in-flight
    requests are dropped, and what finished is kept. Returns the list the caught signal lands in."""
    caught: list[int] = []
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        caught.append(signum)
        for task in tasks:
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    return caught


def _restore_signals() -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.remove_signal_handler(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


# Memory units refused named one by one in the run's note; the rest are counted.
MEMORY_REFUSED_SHOWN = 5

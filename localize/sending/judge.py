"""The quality judge (--judge): after the listings are written, a model annotates a chosen few
against their products (checking/quality.py holds the wire contract), so a person knows which
to read first. Advice, never a gate: a judge that fails, answers badly or cannot be reached
leaves its listings `unjudged` and no job fails; what it costs is billed, logged (`purpose:
judge`) and counted against --max-cost like any request.

Which listings: with `--judge` those that carry a warning plus a stable sample of the rest
(--judge-sample, 10% by default: the same listings run after run, so a re-run judges only what
changed); `--judge all` every one. Never a listing a person wrote, approved, rejected or kept,
nor one that already carries this judge's quality (its result is replaced whenever the
listing or its product changes, so an unchanged listing is not judged again)."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..checking.quality import (
    JUDGE_PACK,
    ToJudge,
    judge_max_tokens,
    judge_messages,
    judged_source,
    listing_fields,
    read_judgements,
    why_judged,
)
from ..checking.strings import STRINGS
from ..checking.validate import InvalidAnswer
from ..cost import Budget, Price, TokenCounter, Usage, cost_usd, usd, worst_case_usd
from ..errors import BudgetReached
from ..planning.jobs import chat_request_body
from ..planning.packing import Packs, apportion, split_usage
from .batch import BatchClient, BatchCollector, BatchProgress, run_in_batches
from .reask import reask
from .relay import Asks, Completion, FailedAttempt, RelayError, RelayFatal, answered_record, failed_record

if TYPE_CHECKING:
    from ..config import Settings
    from ..output.lock import JobKey
    from ..output.records import Quality
    from ..output.store import RunStore
    from ..planning.jobs import Job, PromptSets


# --max-cost reserves a judge request's input at this much over our offline count.
JUDGE_INPUT_MARGIN = 1.25
# The judge's attempts in the audit log are numbered from here (a job's own start at 1).
JUDGE_ATTEMPTS = 2_000_000
PERFECT = 100  # a score with nothing to correct
JUDGE_REASK = (
    "That answer could not be used: {problem}. Reply again with the JSON object only, "
    '{{"judgements": {{"<id>": {{"errors": [...], "score": 0-100}}}}}}, one entry per listing.'
)


@dataclass(slots=True)
class _Item:
    job: Job
    to_judge: ToJudge
    reason: str
    weight: int = 1  # its share of the request's prompt (tokens of its blocks)


@dataclass(frozen=True, slots=True)
class _Bill:
    """A listing's share of a judge's answer: billed, or (unreported) counted offline."""

    usage: Usage
    cost: Decimal
    unreported: bool = False


@dataclass(slots=True)
class JudgeTally:
    """What the judge did this run."""

    judged: int = 0
    chosen: Counter[str] = field(default_factory=Counter)  # why listings were sent: warning, sample, all
    unjudged: Counter[str] = field(default_factory=Counter)  # why a chosen listing got no judgement
    lowest: list[tuple[int, JobKey]] = field(default_factory=list)
    spent_usd: Decimal = Decimal(0)


class Judge:
    """Chooses the listings to judge, packs them by (platform, locale), asks, bills, records."""

    def __init__(
        self,
        settings: Settings,
        prompt_sets: PromptSets,
        sender: Asks,
        store: RunStore,
        run_id: str,
        price: Price,
    ) -> None:
        self._settings = settings
        self.model = settings.judge_model or settings.model
        self._body_settings = settings.model_copy(update={"model": self.model})
        self._prompt_sets = prompt_sets
        self._sender = sender
        self.store = store  # (public: the batch phase records its batches in it)
        self._run_id = run_id
        self.price = price
        self._counter = TokenCounter()
        self._attempt = JUDGE_ATTEMPTS
        self.tally = JudgeTally()
        self.fatal: RelayFatal | None = None
        self.budget_reached = False
        self.batch_notes: list[str] = []  # what the batch API said of the judge's batch
        self.began = False  # its phase began (after every listing was written)

    # --- which listings ---------------------------------------------------------------------

    def units(self, jobs: Iterable[Job]) -> Iterator[list[_Item]]:
        """The judge's requests: the chosen listings of `jobs`, up to JUDGE_PACK of one
        (platform, locale) each, in catalog order."""
        packs: Packs[_Item] = Packs()
        for job in jobs:
            item = self._chosen(job)
            if item is None:
                continue
            full = packs.add((job.platform, job.locale.tag), item, JUDGE_PACK)
            if full is not None:
                yield full
        yield from packs.rest()

    def _chosen(self, job: Job) -> _Item | None:
        if job.platform == STRINGS:
            return None
        line = self.store.result(job.key)
        if line is None:
            return None
        reason = why_judged(line, mode=self._settings.judge, rate=self._settings.judge_sample, model=self.model)
        if reason is None:
            return None
        prompt_set = self._prompt_sets.get(job.platform)
        source = judged_source(job.product, job.locale)
        listing = listing_fields(line)
        terms = tuple(prompt_set.terms_for(job.product, job.locale))
        self.tally.chosen[reason] += 1
        return _Item(job, ToJudge(job.product.id, source, listing, terms), reason)

    # --- asking -----------------------------------------------------------------------------

    async def send(self, items: list[_Item]) -> None:
        """One judge request (and one re-ask of an answer that cannot be read); every listing
        of it ends judged or unjudged, never failed."""
        stopped = "budget" if self.budget_reached else self.fatal.kind if self.fatal is not None else None
        if stopped is not None:  # (the cap reached, or the judge unreachable: the rest not sent)
            self.tally.unjudged[stopped] += len(items)
            return
        job = items[0].job
        messages = judge_messages(job.platform, job.locale, [item.to_judge for item in items])
        counted = self._counter.count_messages(messages)
        weights = self._counter.count_many([json.dumps(item.to_judge.listing) for item in items])
        for item, weight in zip(items, weights, strict=True):
            item.weight = max(1, weight)
        max_tokens = judge_max_tokens(len(items), thinking=self._settings.thinking and self.price.thinks)
        pack = {"size": len(items), "lead": items[0].job.product.id} if len(items) > 1 else None
        for ask in range(2 if self._settings.max_reasks else 1):
            answered = await self._request(items, messages, counted, max_tokens, pack, first_ask=not ask)
            if answered is None:
                return
            completion, number = answered
            bills = self._bill(items, completion, counted)
            try:
                qualities, problems = read_judgements(
                    completion.content, completion.finish_reason, [item.to_judge for item in items], self.model
                )
            except InvalidAnswer as exc:
                if exc.kind == "truncated" and len(items) > 1:  # asked again whole, it would be cut again
                    for item, bill in zip(items, bills, strict=True):
                        self._log(item, completion, number, bill, pack, error=exc, outcome=None)
                    half = len(items) // 2
                    for part in (items[:half], items[half:]):
                        await self.send(part)
                    return
                last = ask == 1 or not self._settings.max_reasks
                for item, bill in zip(items, bills, strict=True):
                    self._log(item, completion, number, bill, pack, error=exc, outcome="unjudged" if last else None)
                if last:
                    self.tally.unjudged[exc.kind] += len(items)
                    return
                messages = reask(messages, completion.content, exc, note=JUDGE_REASK)
                counted = self._counter.count_messages(messages)
                continue
            for item, bill in zip(items, bills, strict=True):
                self._settle(item, qualities.get(item.job.product.id), problems, completion, number, bill, pack)
            return

    def _settle(
        self,
        item: _Item,
        quality: Quality | None,
        problems: list[str],
        completion: Completion,
        number: int,
        bill: _Bill,
        pack: dict[str, Any] | None,
    ) -> None:
        """A listing of a readable answer: its quality recorded, or why it has none."""
        if quality is None:
            why = next((problem for problem in problems if problem.startswith(f"{item.job.product.id}:")), None)
            error = InvalidAnswer("no_score" if why else "missing", why or "the answer has no judgement for it")
            self._log(item, completion, number, bill, pack, error=error, outcome="unjudged")
            self.tally.unjudged[error.kind] += 1
            return
        record = self._record(item, completion, number, bill, pack, error=None, outcome="judged")
        self.store.record_quality(item.job.key, quality.as_json(), attempt=record)
        self.tally.judged += 1
        self.tally.lowest.append((quality.score, item.job.key))

    async def _request(
        self,
        items: list[_Item],
        messages: list[dict[str, str]],
        counted: int,
        max_tokens: int,
        pack: dict[str, Any] | None,
        *,
        first_ask: bool,
    ) -> tuple[Completion, int] | None:
        body = chat_request_body(self._body_settings, messages, max_tokens)
        # A block of attempt numbers per request, one for each of its retries: the numbers of one
        # listing's requests (an ask, a re-ask) never meet, whatever else is in flight.
        first = self._attempt + 1
        self._attempt += self._settings.max_retries + 1
        reserved = math.ceil(counted * JUDGE_INPUT_MARGIN)
        try:
            completion, number = await self._sender.send(
                body,
                tokens=counted + max_tokens,
                worst_case_usd=worst_case_usd(reserved, max_tokens, self.price),
                batch_worst_case_usd=worst_case_usd(reserved, max_tokens, self.price.batch or self.price),
                first_attempt=first,
                on_failed=lambda failed, last: self._log_failed(items, failed, counted, pack, last=last),
                on_sending=lambda number: self._log_sent(items, number, pack),
                request_key="judge|" + "|".join("/".join(item.job.key) for item in items),
                price=self.price,
                first_ask=first_ask,
            )
        except BudgetReached:
            self.budget_reached = True
            self.tally.unjudged["budget"] += len(items)
            return None
        except RelayError as exc:
            if isinstance(exc, RelayFatal):
                self.fatal = self.fatal or exc
            self.tally.unjudged[exc.kind] += len(items)
            return None
        return completion, number

    # --- billing and the audit log ----------------------------------------------------------

    def _bill(self, items: list[_Item], completion: Completion, counted: int) -> list[_Bill]:
        """Each listing's share of the answer's usage and cost. Without usage the relay can be
        held to, the answer is counted offline and kept apart from the billed totals."""
        weights = [item.weight for item in items]
        unreported = completion.usage is None
        usage = completion.usage or Usage(input_tokens=counted, output_tokens=self._counter.count(completion.content))
        shares = split_usage(usage, weights, weights) if len(items) > 1 else [usage]
        price = self.price.batch if completion.batch_id and self.price.batch else self.price
        bills = []
        for share in shares:
            cost = cost_usd(share, price)
            if not unreported:
                self.tally.spent_usd += cost
            bills.append(_Bill(share, cost, unreported))
        return bills

    def _base(self, item: _Item, number: int, pack: dict[str, Any] | None) -> dict[str, Any]:
        key = item.job.key
        base: dict[str, Any] = {
            "run": self._run_id,
            "id": key[0],
            "platform": key[1],
            "locale": key[2],
            "attempt": number,
            "model": self.model,
            "user": self._settings.user,
            "purpose": "judge",
        }
        if pack is not None:
            base["pack"] = pack
        return base

    def _record(
        self,
        item: _Item,
        completion: Completion,
        number: int,
        bill: _Bill,
        pack: dict[str, Any] | None,
        *,
        error: InvalidAnswer | None,
        outcome: str | None,
    ) -> dict[str, Any]:
        record = answered_record(
            {**self._base(item, number, pack), "model": completion.model or self.model},
            completion,
            bill.usage,
            bill.cost,
            unreported=bill.unreported,
            lead=pack is None or pack["lead"] == item.job.product.id,
            error=(error.kind, error.message) if error else None,
            counted_input=bill.usage.input_tokens if bill.unreported else None,
            judge_outcome=outcome,
        )
        return record.to_json()

    def _log(self, item: _Item, *answer: Any, **how: Any) -> None:
        self.store.log_attempt(self._record(item, *answer, **how))

    async def _log_sent(self, items: list[_Item], number: int, pack: dict[str, Any] | None) -> None:
        self.store.log_sent([self._base(item, number, pack) for item in items])

    def _log_failed(
        self, items: list[_Item], failed: FailedAttempt, counted: int, pack: dict[str, Any] | None, *, last: bool
    ) -> None:
        inputs = apportion(counted, [item.weight for item in items])
        for item, counted_input in zip(items, inputs, strict=True):
            base = self._base(item, failed.number, pack)
            record = failed_record(base, failed, counted_input, judge_outcome="unjudged" if last else None)
            self.store.log_attempt(record.to_json())

    # --- what the run says ------------------------------------------------------------------

    def notes(self, *, skipped: str | None = None, shown: int = 3) -> list[str]:
        """How many listings were judged and why, the lowest scores, and the unjudged (or why
        the judge did not run)."""
        if skipped is not None:
            return [f"Judge: not run ({skipped})."]
        tally = self.tally
        chosen = sum(tally.chosen.values())
        if not chosen:
            return [f"Judge ({self.model}): nothing to judge (every chosen listing is judged already, or a person's)."]
        said_as = {
            "all": "all",
            "warning": "with warnings",
            "sample": f"in the {self._settings.judge_sample:.0%} sample",
        }
        why = ", ".join(f"{count:,} {said_as[reason]}" for reason, count in sorted(tally.chosen.items()))
        cost = usd(tally.spent_usd)
        said = f"Judge ({self.model}): {tally.judged:,} of {chosen:,} listings judged ({why}), ${cost:.4f}"
        lowest = sorted(item for item in tally.lowest if item[0] < PERFECT)[:shown]
        if lowest:
            said += "; lowest: " + ", ".join(f"{key[0]} [{key[2]}] {score}" for score, key in lowest)
        elif tally.judged:
            said += "; every one scored 100"
        notes = [said + ".", *self.batch_notes]
        if self.fatal is not None:
            notes.append(f"warning: the judge stopped: {self.fatal.kind}: {self.fatal.message}")
        unjudged = sum(tally.unjudged.values())
        if unjudged:
            kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(tally.unjudged.items()))
            notes.append(
                f"warning: {unjudged:,} listing{'s' if unjudged != 1 else ''} unjudged ({kinds}): the judge is advice; "
                "no job failed for it, and the next run with --judge asks again."
            )
        return notes


def judge_listings(
    judge: Judge,
    jobs: Iterable[Job],
    settings: Settings,
    batch_client: BatchClient | None,
    collector: BatchCollector | None,
    budget: Budget | None,
    *,
    on_batch: Callable[[BatchProgress], None] | None,
    on_error: Callable[[OSError], None],
    on_unit: Callable[[], None],
) -> list[asyncio.Task[None]]:
    """The judge's workers: as many as the run's requests in flight, or one that sends the
    judge's requests through the batch API (with --batch, at its price). `on_unit` hears each
    request's end (the run's progress)."""
    units = judge.units(jobs)
    judge.began = True
    on_unit()

    async def drain() -> None:
        try:
            for unit in units:
                await judge.send(unit)
                on_unit()
        except OSError as exc:
            on_error(exc)

    async def batched() -> None:
        assert batch_client is not None and collector is not None
        try:
            judge.batch_notes.extend(
                await run_in_batches(
                    units,
                    judge.send,
                    collector,
                    batch_client,
                    judge.store,
                    settings,
                    on_status=on_batch,
                    on_unit=on_unit,
                    budget=budget,
                    price=judge.price,
                )
            )
        except OSError as exc:
            on_error(exc)

    if batch_client is not None and collector is not None:
        return [asyncio.create_task(batched())]
    return [asyncio.create_task(drain()) for _ in range(max(1, settings.concurrency))]

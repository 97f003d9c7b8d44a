"""The runner: a run's jobs carried from their plan (plan.py) to a result or a recorded
failure. It makes the requests they share (a job alone, or packed with jobs of its platform
and locale), sends them, judges each answer, re-asks what is invalid, bills every attempt to
its jobs, and records results, failures and the audit log; twins of a copy take their first
job's listing. pipeline.py drives it; the planning stage decides what reaches it.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..checking.job_kinds import JobKind, ListingKind, StringKind, load_checks
from ..checking.strings import STRING_TOKENS_OVERHEAD, STRINGS, starts_request
from ..checking.validate import InvalidAnswer, Listing, names_other_product, parse_answer
from ..config import DEFAULT_MAX_TOKENS
from ..cost import (
    TOKENS_PER_MESSAGE,
    TOKENS_REPLY_PRIMER,
    Price,
    TokenCounter,
    Usage,
    cost_usd,
    load_prices,
    price_of_answer,
    worst_case_usd,
)
from ..errors import BudgetReached, PromptError
from ..output.audit import AuditRecord
from ..output.layout import CALIBRATION
from ..output.records import Billing, Line, ResultLine, StringLine
from ..output.store import JobFailure, JobResult, RunStore
from ..planning.calibration import Calibration
from ..planning.jobs import Job, PromptSets, chat_request_body
from ..planning.pace import in_flight
from ..planning.packing import AnswerRoom, Packs, apportion, expected_output_tokens, listing_budget, split_usage
from ..planning.plan import Outcome, Plan, Planner
from .batch import BatchCollector
from .group_commit import GroupCommit
from .reask import reask
from .relay import Asks, Completion, FailedAttempt, RelayError, RelayFatal, answered_record, failed_record

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from ..config import Settings
    from ..locales import Locale
    from ..output.lock import Fingerprint, JobKey
    from ..planning.prompts import Message, PackedPrompt
    from ..planning.rules import PlatformRules
    from ..reading.catalog import Product
    from ..reading.glossary import Term
    from ..reading.memory import Memory
    from .batch import Harvest, HarvestedAnswer


# Audit records of batch answers no job used are numbered from here (a job's own attempts
# count from 1), so they never share a job's attempt number in the same run.
HARVEST_ATTEMPTS = 1000
# A product whose copy is longer than this is checked in a worker thread (see _judge_off_loop).
OFF_LOOP_CHARS = 8_000
# Answers that were not a well-formed JSON object: the relay's bad day, not the job's.
UNFORMED_ANSWERS = frozenset({"invalid_json", "truncated"})
# A packed answer that fails as a whole this many times is split in halves.
PACK_WHOLE_FAILURES = 2
# An answer cut at its max_tokens: its listings' budget becomes what it reached, this much more.
CUT_OFF_MARGIN = 1.25
# What a listing a reviewer sent back is asked with (after its own request).
REVIEW_NOTE = "\n\nA reviewer sent the previous listing for this product back with this note: {note}\nWrite it again."
STRING_REVIEW_NOTE = (
    "\n\nA reviewer sent the previous translation of this text back with this note: {note}\nTranslate it again."
)
# Without a budget or --tpm, prompts are counted offline for the first requests and then one in
# ten: enough for calibration.json's billed/counted ratio per locale.
CALIBRATION_SAMPLE_FIRST = 200
CALIBRATION_SAMPLE_EVERY = 10
# Worst-case input for --max-cost when no live run has calibrated the count: o200k may
# undercount Kimi's tokens (KIMI.md §5), so reserve a quarter more than counted.
BUDGET_INPUT_MARGIN = 1.25


@dataclass(slots=True)
class _Work:
    """A job to send, and what it has taken so far: attempts made, its share of their bill."""

    job: Job
    messages: list[Message]  # the job's own request (its fingerprint's), re-asked alone
    rules: PlatformRules | None  # None for a string (strings.py checks those)
    fp: Fingerprint
    fields: Mapping[str, str]
    terms: list[Term]
    attempts: int = 0
    spent: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    harvested: HarvestedAnswer | None = None  # a recorded batch's answer to exactly this job
    copy: str | None = None  # its copy key (Preparer.copy_key): twins take its listing
    reviewed: bool = False  # people decided on its listing: a new one starts their record over
    adapted: bool = False  # its prompt carries a sibling market's listing (--adapt): asked alone

    @property
    def line_job(self) -> tuple[JobKey, str]:
        """The job as a batch line records it: its key and fingerprint."""
        return self.job.key, self.fp.digest().hex()


@dataclass(frozen=True, slots=True)
class _Bill:
    """One job's part of an answered request: billed usage (counted offline when the relay
    reported none to believe), its cost, and our offline count of its input."""

    usage: Usage
    cost: Decimal
    unreported: bool
    counted_input: int | None
    model: str  # the model that answered


# A job answered with a valid listing: the job, its result line, the record of the attempt.
_Answered = tuple[_Work, Line, dict[str, Any]]
# A request attempt about to go out, as its row marks it sent (RunStore.log_sent).
_Sent = dict[str, Any]


def requests_in_flight(settings: Settings, prompt_sets: PromptSets, price: Price, jobs: int) -> int:
    """How many requests a live run keeps out at once (pace.py): --concurrency, or enough for
    --rpm when each answer is as long as a full pack of the longest expected listings."""
    room = AnswerRoom.of(settings.max_tokens, price, thinking=settings.thinking)
    counter = TokenCounter()
    answers = []
    for platform in settings.platforms or ():
        for locale in settings.locales:
            rules = prompt_sets.get(platform).rules_for(locale)
            tokens_per_char = counter.tokens_per_char(locale)
            pack = room.pack_size(settings.pack, listing_budget(rules, tokens_per_char), (jobs, settings.concurrency))
            answers.append(pack * expected_output_tokens(rules, tokens_per_char))
    return in_flight(settings, answers)


class JobRunner:
    """Runs jobs to a result or a recorded failure, or finds them up to date: render, compare
    with the lock, send (alone or packed with jobs of the same platform and locale), validate,
    re-ask."""

    def __init__(
        self,
        settings: Settings,
        price: Price,
        prompt_sets: PromptSets,
        sender: Asks,
        store: RunStore,
        run_id: str,
        memory: Memory | None = None,
        *,
        spread: tuple[int, int] | None = None,
    ) -> None:
        """`spread`: a live run's jobs (listings and strings) and the requests it starts with in
        flight, so a small run's packs leave a request for each (AnswerRoom.pack_size); None
        (a batch, which waits for no answer): packs stay full."""
        self._settings = settings
        self._price = price
        self._prompt_sets = prompt_sets
        self._sender = sender
        self._store = store
        # The requests marked as sent and the results answered in one turn of the event loop:
        # written in one transaction.
        self._journal: GroupCommit[_Sent | _Answered] = GroupCommit(self._write_journal)
        self._run_id = run_id
        # What the last live run measured: how the relay bills what we count (the --max-cost reserve).
        self._calibration = Calibration.load(settings.out / CALIBRATION, model=settings.model)
        self._counter = TokenCounter()
        load_checks(settings)  # now, not while the first answers are checked with requests in flight
        self._count_all = settings.max_cost_usd is not None or settings.tpm is not None
        self._input_ratio_seen = 0.0  # the most input the relay billed per token we counted
        self._requests = 0
        self._planner = Planner(settings, prompt_sets, store, memory=memory)
        self._room = AnswerRoom.of(settings.max_tokens, price, thinking=settings.thinking)
        # Output tokens a listing may take, per (platform, locale): the high estimate at first,
        # raised when an answer is cut at its max_tokens (later packs are then smaller).
        self._per_listing: dict[tuple[str, str], int] = {}
        self._spread = spread
        self._listings = ListingKind(settings, prompt_sets)
        self._strings = StringKind()
        self._harvest: Harvest | None = None
        self._harvest_unlogged = 0  # answers taken from the harvest whose attempt is not logged yet
        self._all_units_made = False
        self._extra_attempt = HARVEST_ATTEMPTS  # numbers for audit records of answers no job used
        self.succeeded = 0
        self.failed = 0
        self.up_to_date = 0
        self.held = 0  # of the failed: failures held, their jobs unchanged since the run that met them
        self.reused = 0  # of the succeeded: listings taken from a job with the same copy, not paid for
        self.saved_usd = Decimal(0)  # what those listings cost where they were written
        # Per copy key: the job whose result was written for it this run, or the twins waiting for its
        # first job (the leader) to settle; and the copy key each leader asks.
        self._copies: dict[str, JobKey | list[_Work]] = {}
        self.from_memory = 0  # of the succeeded: store strings a translation memory filled
        self.outdated = 0  # a person's listings kept though their product changed (--refresh-outdated)
        self._leading: dict[JobKey, str] = {}
        # Twins whose leader's listing names the leader's id or SKU: not reused, asked themselves.
        self._own_copy: list[_Work] = []
        self.in_batch = 0  # jobs a running batch (--no-wait) already asks
        self.spent_usd = Decimal(0)
        self.reasoning_usd = Decimal(0)  # what the model's reasoning cost (inside the output billed)
        self._prices = load_prices(settings.prices)
        # Requests answered by a model other than the one asked (an alias the relay resolved).
        self.answered_by: dict[str, int] = {}
        self.fatal: RelayFatal | None = None
        self.budget_reached = False

    # --- which jobs go out, and with which others -------------------------------------------

    def every_unit(
        self, jobs: Iterable[Job], strings: Iterable[tuple[Product, list[Locale]]], *, last: bool = True
    ) -> Iterator[list[_Work]]:
        """The listings' units, then the strings'; once the `last` phase's last is made, every
        job was seen."""
        yield from self.units(jobs)
        yield from self.string_units(strings)
        self._all_units_made = last

    def units(self, jobs: Iterable[Job]) -> Iterator[list[_Work]]:
        """The jobs to send, grouped into the requests they share: up to the pack size of
        their (platform, locale), in catalog order. An empty unit stands for a job settled
        without sending (up to date, or a prompt that cannot render)."""
        packs: Packs[_Work] = Packs()
        for job in jobs:
            work = self._prepare(job)
            if work is None:
                yield []
                continue
            if work.harvested is not None or work.reviewed or work.adapted:
                yield [work]  # answered already, asked with a reviewer's note or a sibling's listing: alone
                continue
            size = self._pack_size(job)
            if size == 1:
                yield [work]
                continue
            full = packs.add((job.platform, job.locale.tag), work, size)
            if full is not None:
                yield full
        yield from packs.rest()

    def string_units(self, strings: Iterable[tuple[Product, list[Locale]]]) -> Iterator[list[_Work]]:
        """A store's strings to translate, per locale as many to a request as fit: up to
        STRINGS_PER_REQUEST, and no more than their expected translations fit in max_tokens
        (one per request with --pack 1). An empty unit stands for one up to date."""
        packs: dict[str, list[_Work]] = {}
        used: dict[str, float] = {}  # expected output tokens of each locale's pack so far
        for product, locales in strings:
            for locale in locales:
                work = self._carry_out(self._planner.string(product, locale))
                if work is None or work.harvested is not None or work.reviewed:
                    yield [work] if work is not None else []  # (asked with a reviewer's note: alone)
                    continue
                tokens = len(product.name) * self._counter.tokens_per_char(locale) + STRING_TOKENS_OVERHEAD
                pack = packs.setdefault(locale.tag, [])
                if starts_request(len(pack), used.get(locale.tag, 0.0), tokens, self._settings):
                    yield pack
                    pack = packs[locale.tag] = []
                    used[locale.tag] = 0.0
                pack.append(work)
                used[locale.tag] = used.get(locale.tag, 0.0) + tokens
        yield from (pack for pack in packs.values() if pack)

    def _prepare(self, job: Job) -> _Work | None:
        work = self._carry_out(self._planner.listing(job))
        if work is not None:  # glossary terms only for jobs that go out
            work.terms = self._prompt_sets.get(job.platform).terms_for(job.product, job.locale)
        return work

    def _carry_out(self, plan: Plan) -> _Work | None:
        """What a job's plan (plan.py) does to OUT: a job settled without sending is recorded
        and counted here (None); one that goes out is returned as the work to send."""
        job, outcome = plan.job, plan.outcome
        if outcome is Outcome.NO_PROMPT:
            self._fail(job, "prompt", plan.problem, 0)
            return None
        if outcome is Outcome.UP_TO_DATE:
            self._store.mark_current(job.key)
            self.up_to_date += 1
            return None
        if outcome is Outcome.OUTDATED:
            self.up_to_date += 1  # settled: a person's listing, kept though its product changed since,
            self.outdated += 1  # and said (counted among the up to date, as the report has it)
            self._store.set_outdated(job.key)
            return None
        if outcome is Outcome.HELD:  # failed as it stands now: not paid for again (--retry-failed)
            self.failed += 1
            self.held += 1
            return None
        if outcome is Outcome.IN_BATCH:
            self.in_batch += 1  # a running batch asks it already (--no-wait): not asked twice
            return None
        prepared = plan.prepared
        assert prepared is not None
        messages = prepared.messages
        note = plan.decided.note
        if note is not None:  # sent back by a reviewer: asked with the note (the lock keeps the plain prompt)
            said = (STRING_REVIEW_NOTE if job.platform == STRINGS else REVIEW_NOTE).format(note=note)
            messages = [*messages[:-1], {"role": "user", "content": messages[-1]["content"] + said}]
        work = _Work(job, messages, prepared.rules, prepared.fp, prepared.fields, [], reviewed=plan.decided.reviewed)
        work.adapted = prepared.adapted
        work.harvested, work.copy = plan.harvested, plan.copy
        self._harvest_unlogged += plan.harvested is not None
        if outcome is Outcome.FROM_MEMORY:
            assert plan.memory is not None
            self._fill_from_memory(work, plan.memory)
            return None
        if outcome is Outcome.REUSED:
            return self._twin(work, plan.written)
        if plan.copy is not None:
            self._lead(work, plan.copy)
        return work

    def _fill_from_memory(self, work: _Work, text: str) -> None:
        """A store string whose text a translation memory holds (--memory, a person's
        translations in the export): the result, at no cost."""
        job = work.job
        line = self._strings.result_line(job, text, Billing(self._settings.model))
        assert isinstance(line, StringLine)
        self._store.record_result(JobResult(job.key, replace(line, memory=True), work.fp, work.fields))
        self.succeeded += 1
        self.from_memory += 1
        usage = Usage(input_tokens=self._counter.count(job.product.name), output_tokens=self._counter.count(text))
        self.saved_usd += cost_usd(usage, self._price)

    def _twin(self, work: _Work, written: Mapping[str, Any] | None) -> _Work | None:
        """A job with the same copy as another's: it takes the listing written for it (an
        earlier run's, or this run's), or waits for the job on its way; None either way. When
        there is none after all (that job failed), or its text names that job's product, it
        is sent itself, the first of its copy from now on."""
        assert work.copy is not None
        leader = self._copies.get(work.copy) if written is None else None
        if isinstance(leader, list):
            leader.append(work)  # its leader is on its way
            return None
        # (a leader that succeeded is remembered by its key, its listing read back from OUT: a
        # run of 50,000 jobs does not hold 50,000 listings)
        known = written if leader is None else self._store.result(leader)
        if known is not None and not names_other_product(known, work.job.product):
            self._settle_copy(work, known)
            return None
        self._lead(work, work.copy)
        return work

    def _lead(self, work: _Work, copy: str) -> None:
        """The job asks its copy for the twins that follow it this run."""
        self._copies[copy] = []
        self._leading[work.job.key] = copy

    def _settle_copy(self, work: _Work, line: Mapping[str, Any]) -> None:
        """A twin's result: the listing written for the same copy, under its own id and SKU,
        at no cost, naming the job it came from (people decided on that one, not on this: their
        decisions are not the line's own, and are not taken)."""
        job = work.job
        fields = job.product.fields
        leader: Line = StringLine.of(line) if job.platform == STRINGS else ResultLine.of(line)
        source = leader.reused_from or leader.id
        # (its own earlier listing, when only its SKU changed, names no other)
        reused = source if source != job.product.id else None
        if isinstance(leader, StringLine):
            kind, field_name = fields.get("resource_type"), fields.get("field")
            twin: Line = replace(
                leader,
                id=job.product.id,
                type=None if kind is None else str(kind),
                field=None if field_name is None else str(field_name),
                billing=leader.billing.free(),
                reused_from=reused,
            )
        else:
            sku = fields.get("sku")
            twin = replace(
                leader,
                id=job.product.id,
                sku=None if sku is None else str(sku),
                billing=leader.billing.free(),
                reused_from=reused,
            )
        self._store.record_result(JobResult(job.key, twin, work.fp, work.fields, work.copy))
        self.succeeded += 1
        self.reused += 1
        self.saved_usd += Decimal(str(leader.billing.cost_usd))

    def _pack_size(self, job: Job) -> int:
        return self._room.pack_size(self._settings.pack, self._listing_tokens(job), self._spread)

    def _listing_tokens(self, job: Job) -> int:
        key = (job.platform, job.locale.tag)
        tokens = self._per_listing.get(key)
        if tokens is None:
            rules = self._prompt_sets.get(job.platform).rules_for(job.locale)
            tokens = self._per_listing[key] = listing_budget(rules, self._counter.tokens_per_char(job.locale))
        return tokens

    def _max_tokens(self, works: list[_Work]) -> int:
        """What a request for `works` asks for its answer: their listings at the high estimate
        (a store string's request, --max-tokens or the default)."""
        job = works[0].job
        if job.platform == STRINGS:
            return self._settings.max_tokens or DEFAULT_MAX_TOKENS
        return self._room.max_tokens(len(works), self._listing_tokens(job))

    def _cut_off(self, works: list[_Work], completion: Completion) -> None:
        """An answer cut at its max_tokens: its (platform, locale)'s listings are longer than
        the estimate said. What the answer reached, per listing and with a margin, becomes
        their budget, so its halves and later packs ask for enough (and hold fewer)."""
        job = works[0].job
        if self._room.fixed or completion.usage is None or job.platform == STRINGS:
            return
        reached = completion.usage.output_tokens - completion.usage.reasoning_tokens
        grown = math.ceil(reached / len(works) * CUT_OFF_MARGIN)
        key = (job.platform, job.locale.tag)
        self._per_listing[key] = max(self._listing_tokens(job), grown)

    async def send(self, works: list[_Work]) -> None:
        """One unit of `units` or `string_units`: a job alone, or a pack; then the twins whose
        leader's listing (this unit's) names the leader's own codes: each asked on its own."""
        if len(works) == 1 and works[0].harvested is not None:
            await self._settle_harvested(works[0])
        elif len(works) == 1 and self._echoed(works[0]):
            await self._send_pack(works)  # a batch line of one, with the id echo: a line's answer names its job
        elif len(works) == 1:
            await self._send_alone(works[0])
        elif works:
            await self._send_pack(works)
        while self._own_copy:
            await self._send_alone(self._own_copy.pop())

    # --- sending ------------------------------------------------------------------------------

    async def _send_alone(self, work: _Work, messages: list[Message] | None = None, *, asks_used: int = 0) -> None:
        """The job's own request, re-asked with the validator's message until its answer is
        valid or its re-asks are spent. A job re-asked out of a pack has used one ask."""
        if self._stopped([work]):
            return
        messages = messages or work.messages
        too_large = self._over_window(messages, self._max_tokens([work]))
        if too_large is not None:
            self._fail(work.job, "too_large", too_large, work.attempts, held=work.fp)
            return
        for ask in range(asks_used, self._settings.max_reasks + 1):
            last = ask == self._settings.max_reasks
            answered = await self._request([work], messages, pack=None)
            if answered is None:
                return
            completion, counted = answered
            bill = self._bill([work], completion, messages, counted, [1], [1])[0]
            try:
                listing, warnings = await self._judge_off_loop(
                    work, self._kind(work).answer_alone(work.job, completion), last
                )
            except InvalidAnswer as exc:
                if exc.kind == "truncated":
                    self._cut_off([work], completion)  # the re-ask asks for more
                if last:
                    answer = self._answer_record(work, completion, bill, error=exc, outcome="failed", pack=None)
                    self._fail(work.job, exc.kind, exc.message, work.attempts, answer=answer, held=work.fp)
                    return
                self._store.log_attempt(self._answer_record(work, completion, bill, error=exc, outcome=None, pack=None))
                messages = reask(messages, completion.content, exc)
                continue
            answer = self._answer_record(work, completion, bill, error=None, outcome="succeeded", pack=None)
            await self._succeed(work, listing, warnings, bill, answer=answer)
            return

    def _echoed(self, work: _Work) -> bool:
        """Whether a job asked alone goes as a pack of one: in a batch, where an answer is
        matched to its line by custom_id alone, the packed form's id (the key and the echo)
        names the product it was written for, so an answer under another line's id is caught.
        Not a store string (its key is its id already), nor a listing sent back with a note."""
        return (
            isinstance(self._sender, BatchCollector)
            and work.job.platform != STRINGS
            and not work.reviewed
            and not work.adapted  # (its sibling's listing is in its own form only)
        )

    async def _send_pack(self, works: list[_Work]) -> None:
        """Several jobs of one (platform, locale) in one request. Each listing of the answer is
        validated on its own: valid ones are kept, an invalid one is re-asked alone. An answer
        that fails as a whole twice is split in halves, each sent again, so a product that
        breaks every answer ends up alone and fails by itself."""
        if self._stopped(works):
            return
        try:
            packed = self._kind(works[0]).render_pack([work.job.product for work in works], works[0].job)
        except PromptError as exc:
            for work in works:
                self._fail(work.job, "prompt", str(exc), work.attempts)
            return
        if self._over_window(packed.messages, self._max_tokens(works)) is not None:
            if len(works) == 1:
                await self._send_alone(works[0])  # one too large: it fails alone, as asked alone
                return
            half = len(works) // 2  # the products that fit go on in smaller packs; one too large fails alone
            for part in (works[:half], works[half:]):
                await self.send(part)
            return
        ids = [work.job.product.id for work in works]
        pack = {"size": len(works), "lead": ids[0]}
        weights = self._counter.count_many(list(packed.blocks))
        messages = packed.messages
        last = self._settings.max_reasks == 0
        for _ in range(PACK_WHOLE_FAILURES):
            answered = await self._request(works, messages, pack=pack, weights=weights, packed=packed)
            if answered is None:
                return
            completion, counted = answered
            try:
                listings = self._kind(works[0]).read_pack(completion, ids)
            except InvalidAnswer as exc:
                bills = self._bill(works, completion, messages, counted, weights, weights)
                for work, bill in zip(works, bills, strict=True):
                    self._store.log_attempt(
                        self._answer_record(work, completion, bill, error=exc, outcome=None, pack=pack)
                    )
                if exc.kind == "truncated" and len(works) > 1:
                    self._cut_off(works, completion)  # asked again whole, it would be cut again: split
                    break
                messages = reask(messages, completion.content, exc)
                continue
            answers = [listings[product_id] for product_id in ids]
            shares = [
                self._counter.count(json.dumps(data, ensure_ascii=False)) if _is_answer(data) else 0 for data in answers
            ]
            bills = self._bill(works, completion, messages, counted, weights, shares)
            again: list[tuple[_Work, list[Message]]] = []
            valid: list[_Answered] = []
            for work, data, bill in zip(works, answers, bills, strict=True):
                try:
                    mates = [_identity(other.job.product) for other in works if other is not work]
                    listing, warnings = await self._judge_off_loop(work, _packed_part(work, data, mates), last)
                except InvalidAnswer as exc:
                    answer = self._answer_record(
                        work, completion, bill, error=exc, outcome="failed" if last else None, pack=pack
                    )
                    if last:
                        self._fail(work.job, exc.kind, exc.message, work.attempts, answer=answer, held=work.fp)
                    else:
                        self._store.log_attempt(answer)
                        again.append((work, self._reask_alone(work, data, exc)))
                    continue
                answer = self._answer_record(work, completion, bill, error=None, outcome="succeeded", pack=pack)
                valid.append(self._answered(work, listing, warnings, bill, answer=answer))
            if valid:
                await self._journal.add(valid)
            for work, alone in again:
                await self._send_alone(work, alone, asks_used=1)
            return
        if len(works) == 1:  # a pack of one that failed as a whole: asked in its own form
            await self._send_alone(works[0])
            return
        half = len(works) // 2
        for part in (works[:half], works[half:]):
            await self.send(part)

    # --- answers of batches an earlier run recorded -----------------------------------------

    @property
    def memory_refused(self) -> dict[JobKey, str]:
        """Memory units that failed the checks: not used, and why."""
        return self._planner.tally.memory_refused

    @property
    def held_since(self) -> set[str]:
        """The runs that met the failures held."""
        return self._planner.tally.held_since

    def use_harvest(self, harvest: Harvest) -> None:
        self._harvest = harvest
        self._planner.harvest = harvest

    async def _settle_harvested(self, work: _Work) -> None:
        """A job a recorded batch answered as it is asked now: its part of that answer checked
        as a live one is, and re-asked alone (live) when it is not valid."""
        answer = work.harvested
        assert answer is not None
        completion = answer.completion
        ids = [key[0] for key, _ in answer.jobs]
        pack = _pack_of(ids)
        work.attempts += 1
        bill = self._harvest_bill(work, answer)
        last = self._settings.max_reasks == 0
        data: object = None
        try:
            kind = self._kind(work)
            if pack is not None or kind.packed_alone or _packed_answer(completion.content):
                mates = [
                    (other, "", "") for other in ids if other != work.job.product.id
                ]  # (only their ids known here)
                data = _packed_part(work, kind.read_pack(completion, ids)[work.job.product.id], mates)
            else:
                data = kind.answer_alone(work.job, completion)
            listing, warnings = await self._judge_off_loop(work, data, last)
        except InvalidAnswer as exc:
            record = self._answer_record(
                work, completion, bill, error=exc, outcome="failed" if last else None, pack=pack
            )
            self._harvest_unlogged -= 1
            if last:
                self._fail(work.job, exc.kind, exc.message, work.attempts, answer=record, held=work.fp)
                return
            self._store.log_attempt(record)
            await self._send_alone(work, self._reask_alone(work, data, exc), asks_used=1)
            return
        record = self._answer_record(work, completion, bill, error=None, outcome="succeeded", pack=pack)
        await self._succeed(work, listing, warnings, bill, answer=record)
        self._harvest_unlogged -= 1

    def _harvest_bill(self, work: _Work, answer: HarvestedAnswer) -> _Bill:
        """The job's part of a recorded batch line's bill, at the batch price."""
        share, unreported = answer.share, answer.share is None
        if share is None:
            share = Usage(
                input_tokens=self._counter.count_messages(work.messages),
                output_tokens=self._counter.count(answer.completion.content) // len(answer.jobs),
            )
        answering = self._model_price(answer.completion.model)
        cost = cost_usd(share, answering.batch or answering)
        work.spent += share
        work.cost += cost
        self.spent_usd += cost
        return _Bill(share, cost, unreported, None, answer.completion.model or self._settings.model)

    def close_harvest(self) -> None:
        """Once every job was seen and every answer taken is logged: log the recorded batches'
        answers no job used (products that changed or left: paid for all the same) and the
        lines they left unanswered though billed, then forget those batches."""
        harvest = self._harvest
        if harvest is None or not self._all_units_made or self._harvest_unlogged:
            return  # not every job was seen: the next run collects these batches again
        price = self._price.batch or self._price
        for key, answer in harvest.leftovers():
            ids = [job[0] for job, _ in answer.jobs]
            record = AuditRecord(
                **self._key_base(key, self._next_extra_attempt(), _pack_of(ids)),
                batch=answer.batch,
                status=answer.completion.status,
                error="unused",
                message=f"answered in batch {answer.batch} for an earlier version of the job: not used",
                latency_ms=0.0,
                usage=answer.share.as_dict() if answer.share else None,
                cost_usd=float(cost_usd(answer.share, price)) if answer.share else 0.0,
                request_id=answer.completion.request_id,
                usage_unreported=answer.share is None,
            )
            self._store.log_attempt(record.to_json())
        for batch_id, jobs in harvest.unconfirmed:
            ids = [job[0] for job, _ in jobs]
            for key, _ in jobs:
                record = AuditRecord(
                    **self._key_base(key, self._next_extra_attempt(), _pack_of(ids)),
                    batch=batch_id,
                    status=None,
                    error="batch_gone" if batch_id in harvest.gone else "batch_unanswered",
                    message=f"batch {batch_id} is gone from the relay: this request may have been billed"
                    if batch_id in harvest.gone
                    else f"batch {batch_id} counts this request done but its output has no usable answer",
                    latency_ms=0.0,
                    usage=None,
                    cost_usd=0.0,
                    maybe_billed=True,
                )
                self._store.log_attempt(record.to_json())
        for file_id in harvest.files:
            self._store.forget_batch(file_id)
        self._harvest = self._planner.harvest = None

    def _next_extra_attempt(self) -> int:
        self._extra_attempt += 1
        return self._extra_attempt

    def _kind(self, work: _Work) -> JobKind:
        """What differs between a listing and a store's text (job_kinds.py)."""
        return self._strings if work.job.platform == STRINGS else self._listings

    def _reask_alone(self, work: _Work, data: object, problem: InvalidAnswer) -> list[Message]:
        """A job's own request, after its part of a packed answer was invalid: what it got and
        what was wrong with it (or, with nothing usable, the plain request)."""
        if not _is_answer(data):
            return work.messages
        own = self._kind(work).as_own_answer(work.job, data)
        return reask(work.messages, json.dumps(own, ensure_ascii=False), problem)

    def _stopped(self, works: list[_Work]) -> bool:
        """Once the run stopped (a fatal relay error, the budget), jobs are recorded unsent."""
        if self.fatal is not None:
            message = f"not sent: the run stopped ({self.fatal.kind}: {self.fatal.message})"
            for work in works:
                self._fail(work.job, "aborted", message, work.attempts)
            return True
        if self.budget_reached:
            for work in works:
                self._fail(work.job, "budget", "not sent: the --max-cost cap was reached", work.attempts)
            return True
        return False

    async def _request(
        self,
        works: list[_Work],
        messages: list[Message],
        *,
        pack: dict[str, Any] | None,
        weights: list[int] | None = None,
        packed: PackedPrompt | None = None,
    ) -> tuple[Completion, int | None] | None:
        """One request for `works` (with its retries): the completion and our offline count of
        its prompt; None when it failed, every job of it then recorded as failed."""
        lead = works[0]
        counted = self._count(messages, packed, weights)
        weights = weights or [1]
        max_tokens = self._max_tokens(works)
        # What only a budget reserves, and what only the batch collector keys and records a
        # request by: a live run without --max-cost makes none of it.
        batched = isinstance(self._sender, BatchCollector)
        worst_case = Decimal(0)
        if batched or self._settings.max_cost_usd is not None:
            worst_case = self._worst_case(counted or 0, lead.job, self._price, max_tokens)
        batch_options: dict[str, Any] = {}
        if batched:
            batch_options = {
                "batch_worst_case_usd": self._worst_case(
                    counted or 0, lead.job, self._price.batch or self._price, max_tokens
                ),
                "batch_jobs": [work.line_job for work in works],
                "request_key": "|".join("/".join(work.job.key) for work in works),
            }
        try:
            completion, number = await self._sender.send(
                chat_request_body(self._settings, messages, max_tokens),
                tokens=(counted or 0) + max_tokens,
                worst_case_usd=worst_case,
                first_attempt=lead.attempts + 1,
                on_failed=lambda failed, last: self._log_failed(
                    works, failed, messages, counted, weights, pack=pack, last=last
                ),
                on_sending=lambda number: self._log_sent(works, number, counted, weights, pack=pack),
                **batch_options,
            )
        except BudgetReached as exc:
            self.budget_reached = True
            for work in works:
                self._fail(work.job, "budget", exc.message, work.attempts)
            return None
        except RelayError as exc:
            if isinstance(exc, RelayFatal):
                self.fatal = self.fatal or exc
            for work in works:
                self._fail(work.job, exc.kind, exc.message, exc.attempt or work.attempts + 1)
            return None
        for work in works:
            work.attempts = number
        return completion, counted

    def _bill(
        self,
        works: list[_Work],
        completion: Completion,
        messages: list[Message],
        counted: int | None,
        input_weights: list[int],
        output_weights: list[int],
    ) -> list[_Bill]:
        """Each job's share of an answered request, booked to it and to the run."""
        usage = completion.usage
        unreported = usage is None
        thought = self._counter.count(completion.reasoning) if completion.reasoning else 0
        if usage is None:
            # The relay sent no usage we can believe: keep the answer (it was paid for),
            # count its tokens offline, and let the report list it apart.
            counted = counted if counted is not None else self._counter.count_messages(messages)
            output = self._counter.count(completion.content) + thought
            usage = Usage(input_tokens=counted, output_tokens=output, reasoning_tokens=thought)
        else:
            self._learn_input_ratio(counted, usage)
            if thought and not usage.reasoning_tokens:  # reasoning text, no count of it: counted offline
                usage = replace(usage, reasoning_tokens=min(thought, usage.output_tokens))
        answering = self._answering(completion)
        if usage.reasoning_tokens:
            self.reasoning_usd += cost_usd(Usage(output_tokens=usage.reasoning_tokens), answering)
        shares = split_usage(usage, input_weights, output_weights) if len(works) > 1 else [usage]
        price = answering.batch if completion.batch_id and answering.batch else answering
        inputs: list[int | None] = (
            list(apportion(counted, input_weights)) if counted is not None else [None] * len(works)
        )
        bills = []
        for work, share, counted_input in zip(works, shares, inputs, strict=True):
            cost = cost_usd(share, price)
            work.spent += share
            work.cost += cost
            self.spent_usd += cost
            bills.append(_Bill(share, cost, unreported, counted_input, completion.model or self._settings.model))
        return bills

    def _answering(self, completion: Completion) -> Price:
        """The price of the model that answered: the one asked, unless the answer names another
        the price table knows at another price (an alias the relay resolved), counted."""
        named = completion.model
        if named is not None and not self._asked(named):
            self.answered_by[named] = self.answered_by.get(named, 0) + 1
        return self._model_price(named)

    def _asked(self, named: str) -> bool:
        """Whether an answer's model is the one asked (as a relay may spell it: `Kimi-K2`)."""
        return named.lower() == self._settings.model.lower()

    def _model_price(self, named: str | None) -> Price:
        if named is None or self._asked(named):
            return self._price
        other = price_of_answer(named, self._prices)
        return other if other is not None and other.list_price != self._price.list_price else self._price

    def model_notes(self) -> list[str]:
        """One line per model that answered in place of the one asked, and at which price."""
        notes = []
        for named, requests in sorted(self.answered_by.items()):
            other = price_of_answer(named, self._prices)
            if other is None:
                priced = f"no price is known for it: priced as {self._settings.model}"
            elif other.list_price == self._price.list_price:
                priced = f"at {self._settings.model}'s price, the same"
            else:
                priced = (
                    f"priced as {other.model} (${other.input:.2f} input, ${other.cached_input:.2f} cached,"
                    f" ${other.output:.2f} output per 1M), not as {self._settings.model}"
                )
            notes.append(
                f"The relay answered {requests:,} request{'s' if requests != 1 else ''} with {named}, not"
                f" {self._settings.model} (an alias it resolved): {priced}."
            )
        return notes

    async def _judge_off_loop(self, work: _Work, data: object, last: bool) -> tuple[Listing | str, list[str]]:
        """_judge, in a worker thread for a product with long copy: its checks are linear and
        read a bounded part of each text, but tens of milliseconds on the event loop would
        still hold up every request in flight."""
        if work.job.product.copy_chars() < OFF_LOOP_CHARS:
            return self._judge(work, data, last)
        return await asyncio.to_thread(self._judge, work, data, last)

    def _judge(self, work: _Work, data: object, last: bool) -> tuple[Listing | str, list[str]]:
        """The listing (or translation) and its warnings, or InvalidAnswer."""
        return self._kind(work).judge(work.job, data, work.rules, work.terms, last=last)

    async def _succeed(
        self, work: _Work, value: Listing | str, warnings: list[str], bill: _Bill, *, answer: dict[str, Any]
    ) -> None:
        """The job's result, recorded with the attempt that answered it."""
        await self._journal.add([self._answered(work, value, warnings, bill, answer=answer)])

    def _answered(
        self, work: _Work, value: Listing | str, warnings: list[str], bill: _Bill, *, answer: dict[str, Any]
    ) -> _Answered:
        """The job's result line and the record of the attempt that answered it."""
        job = work.job
        if bill.unreported:
            warnings = [*warnings, "usage_unreported"]
        billing = Billing(
            model=bill.model,
            attempts=work.attempts,
            input_tokens=work.spent.input_tokens,
            output_tokens=work.spent.output_tokens,
            cached_tokens=work.spent.cached_tokens,
            cost_usd=float(work.cost),
            warnings=tuple(warnings),
        )
        return work, self._kind(work).result_line(job, value, billing), answer

    def _write_journal(self, items: Iterable[_Sent | _Answered]) -> None:
        """What one turn of the event loop asked to write: requests about to go out, marked as
        sent, and results, in one transaction; then each result is counted and its twins take
        its listing. Here, where the transaction ends, not in the jobs' tasks: a task cancelled
        while it waits (Ctrl-C) has its result counted too."""
        sent: list[_Sent] = []
        answered: list[_Answered] = []
        for item in items:
            if isinstance(item, tuple):
                answered.append(item)
            else:
                sent.append(item)
        with self._store.together():
            self._store.log_sent(sent)
            self._store.record_results(
                (JobResult(work.job.key, typed, work.fp, work.fields, work.copy), answer)
                for work, typed, answer in answered
            )
        for work, typed, _ in answered:
            self._recorded(work, typed)

    def _recorded(self, work: _Work, typed: Line) -> None:
        job = work.job
        self.succeeded += 1
        if work.reviewed:  # a new listing where people had decided: their record starts over
            self._store.regenerated(job.key)
        key = self._leading.pop(job.key, None)
        if key is not None:
            twins = self._copies.get(key)
            self._copies[key] = job.key
            line = typed.as_json() if twins else {}
            for twin in twins if isinstance(twins, list) else ():
                if names_other_product(line, twin.job.product):
                    self._own_copy.append(twin)  # its leader's text names the leader: asked itself (send)
                else:
                    self._settle_copy(twin, line)

    def _count(self, messages: list[Message], packed: PackedPrompt | None, weights: list[int] | None) -> int | None:
        """Offline prompt tokens, where they are needed: every request when a budget or a
        tokens-per-minute limit must reserve them; otherwise a sample, which is all the
        calibration of later estimates needs (counting costs a tenth of our CPU per request).
        A pack's blocks are counted already (its jobs' shares): only its frame is added."""
        self._requests += 1
        if packed is not None and weights is not None and messages is packed.messages:
            system = self._counter.count_messages(messages[:1]) - TOKENS_REPLY_PRIMER
            return system + self._counter.count(packed.header) + sum(weights) + TOKENS_PER_MESSAGE + TOKENS_REPLY_PRIMER
        if (
            self._count_all
            or packed is not None
            or self._requests <= CALIBRATION_SAMPLE_FIRST
            or self._requests % CALIBRATION_SAMPLE_EVERY == 0
        ):
            return self._counter.count_messages(messages)
        return None

    def _over_window(self, messages: list[Message], max_tokens: int) -> str | None:
        """Why a request cannot fit the model's context window with `max_tokens` for its answer
        (said with its size), or None. Counted only when its bytes could be too many: a token
        is at least one byte."""
        window = self._price.context_tokens
        room = window - max_tokens if window else None
        if room is None or 4 * sum(len(message["content"]) for message in messages) <= room:
            return None  # (a character is at most 4 bytes: most requests are not encoded to tell)
        if sum(len(message["content"].encode()) for message in messages) <= room:
            return None
        tokens = self._counter.count_messages(messages)
        if tokens <= room:
            return None
        return (
            f"not sent: the request is about {tokens:,} tokens and max_tokens {max_tokens:,},"
            f" over {self._settings.model}'s context window of {window:,}; leave long columns out with --fields -NAME"
        )

    def _worst_case(self, counted: int, job: Job, price: Price, max_tokens: int) -> Decimal:
        """A request's worst case for --max-cost: its input at the most the relay has billed
        per counted token (this run, or the calibrated previous one), the whole output cap, at
        `price` (live, or the batch API's)."""
        ratio = self._calibration.input_ratio(job.locale.tag) if self._calibration else None
        margin = max(ratio * 1.05 if ratio else BUDGET_INPUT_MARGIN, self._input_ratio_seen * 1.05)
        return worst_case_usd(math.ceil(counted * margin), max_tokens, price)

    def _learn_input_ratio(self, counted: int | None, usage: Usage) -> None:
        if counted:
            self._input_ratio_seen = max(self._input_ratio_seen, usage.input_tokens / counted)

    def _fail(
        self,
        job: Job,
        kind: str,
        message: str,
        attempts: int,
        *,
        answer: dict[str, Any] | None = None,
        held: Fingerprint | None = None,
    ) -> None:
        """The job's failure, recorded with its last answer where it had one. `held`: the
        fingerprint of a job whose answers failed the checks, so an unchanged re-run holds it
        (a failure of the relay or the run says nothing of the job, and is asked again). An
        answer that was not a whole JSON object (empty, cut off, a proxy's HTML page inside a
        200) says nothing of the job either: it is never held."""
        if kind in UNFORMED_ANSWERS:
            held = None
        fingerprint = held.digest().hex() if held is not None else None
        failure = JobFailure(job.key, kind, message, attempts, self._run_id if held else None, fingerprint)
        self._store.record_failure(failure, attempt=answer)
        self.failed += 1
        key = self._leading.pop(job.key, None)
        twins = self._copies.pop(key, None) if key is not None else None
        for twin in twins if isinstance(twins, list) else ():  # the same copy would fail the same way
            same = f"{message} (the same copy as {job.product.id}, which failed)"
            self._fail(twin.job, kind, same, 0, held=twin.fp if held is not None else None)

    # --- the audit log ------------------------------------------------------------------------

    async def _log_sent(
        self, works: list[_Work], number: int, counted: int | None, weights: list[int], *, pack: dict[str, Any] | None
    ) -> None:
        inputs = apportion(counted, weights) if counted is not None else [None] * len(works)
        await self._journal.add(
            {**self._attempt_base(work.job, number, pack), "counted_input": counted_input}
            for work, counted_input in zip(works, inputs, strict=True)
        )

    def _log_failed(
        self,
        works: list[_Work],
        failed: FailedAttempt,
        messages: list[Message],
        counted: int | None,
        weights: list[int],
        *,
        pack: dict[str, Any] | None,
        last: bool,
    ) -> None:
        if failed.error.maybe_billed and counted is None:
            counted = self._counter.count_messages(messages)
        inputs = apportion(counted, weights) if counted is not None else [None] * len(works)
        for work, counted_input in zip(works, inputs, strict=True):
            base = self._attempt_base(work.job, failed.number, pack)
            record = failed_record(base, failed, counted_input, job_outcome="failed" if last else None)
            self._store.log_attempt(record.to_json())

    def _answer_record(
        self,
        work: _Work,
        completion: Completion,
        bill: _Bill,
        *,
        error: InvalidAnswer | None,
        outcome: str | None,
        pack: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """One job's audit record of an answered attempt (relay.answered_record)."""
        record = answered_record(
            {**self._attempt_base(work.job, work.attempts, pack), "model": bill.model},
            completion,
            bill.usage,
            bill.cost,
            unreported=bill.unreported,
            lead=pack is None or pack["lead"] == work.job.product.id,
            error=(error.kind, error.message) if error else None,
            counted_input=bill.counted_input,
            job_outcome=outcome or None,
        )
        return record.to_json()

    def _attempt_base(self, job: Job, attempt: int, pack: dict[str, Any] | None) -> dict[str, Any]:
        base = self._key_base(job.key, attempt, pack)
        if job.platform == STRINGS:
            base["resource_type"] = job.product.fields["resource_type"]  # the report sums strings by type
        return base

    def _key_base(self, key: JobKey, attempt: int, pack: dict[str, Any] | None) -> dict[str, Any]:
        base = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "run": self._run_id,
            "id": key[0],
            "platform": key[1],
            "locale": key[2],
            "attempt": attempt,
            "model": self._settings.model,
            "user": self._settings.user,
        }
        if pack is not None:
            base["pack"] = pack  # one request for `size` jobs; `lead` is the id whose record counts it
        return base


def _packed_answer(content: str) -> bool:
    """Whether an answer has the packed form (a batch line of one is asked with it)."""
    try:
        return isinstance(parse_answer(content, None).get("listings"), dict)
    except InvalidAnswer:
        return False


def _pack_of(ids: list[str]) -> dict[str, Any] | None:
    """A request's pack entry for the audit log (None for a job asked alone)."""
    return {"size": len(ids), "lead": ids[0]} if len(ids) > 1 else None


def _is_answer(data: object) -> bool:
    """Whether a packed answer's part for a job is something to judge (not absent, not refused)."""
    return data is not None and not isinstance(data, InvalidAnswer)


def _identity(product: Product) -> tuple[str, str, str]:
    """What names a product in a listing: its id, its SKU and its name."""
    return product.id, str(product.fields.get("sku") or ""), product.name


def _packed_part(work: _Work, data: object, mates: Sequence[tuple[str, str, str]] = ()) -> object:
    """A job's part of a packed answer, or why there is none to judge: missing, or written for
    another product of the request (it names that one's SKU or name, and not as its own does)."""
    if data is None:
        raise InvalidAnswer("missing", f"the answer has no listing for {work.job.product.id!r}")
    if isinstance(data, InvalidAnswer):
        raise data
    if isinstance(data, dict) and work.job.platform != STRINGS:
        other = next((mate for mate in mates if names_other_product(data, work.job.product, mate)), None)
        if other is not None:
            raise InvalidAnswer(
                "wrong_product",
                f"the listing under {work.job.product.id!r} is about another product of this request "
                f"({other[0]!r}): write the listing of {work.job.product.id!r} from its own product data",
            )
    return data

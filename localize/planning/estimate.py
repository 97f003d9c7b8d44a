"""The dry run: render every prompt, count its tokens, price the run per (platform, locale)
group as low / expected / high, using the calibration a live run leaves behind."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checking.strings import (
    STRING_TOKENS_OVERHEAD,
    STRINGS,
    USER,
    memory_for,
    render_strings,
    store_strings,
    string_requests,
)
from ..config import DEFAULT_MAX_TOKENS, Settings
from ..cost import (
    OUTPUT_HIGH_FACTOR,
    REPORT_VERSION,
    TOKENS_PER_MESSAGE,
    TOKENS_REPLY_PRIMER,
    Price,
    TokenCounter,
    Usage,
    chat_prompt_tokens,
    cost_usd,
    judge_price,
    load_prices,
    price_for,
    usd,
)
from ..locales import Locale
from ..output.layout import CALIBRATION, LOCK
from ..output.store import RunStore
from ..reading.catalog import Product
from ..reading.fields import left_out_kind
from ..reading.textfile import read_once
from ..shops import check_imports
from .calibration import Calibration
from .jobs import Job, PromptSets, check_max_tokens, iter_jobs, products_on, require_locales
from .judge_estimate import JudgeEstimate
from .pace import answer_seconds, in_flight
from .pace import minutes as pace_minutes
from .packing import PACK_ID_TOKENS, AnswerRoom, expected_output_tokens, listing_budget
from .plan import Outcome, Planner, Tally
from .prompts import ADAPT_NOTE, PACK_HEADER, STYLE_SECTION, PromptSet, data_json

# Moonshot's prefix cache matches in whole 256-token chunks (KIMI.md §3).
CACHE_CHUNK_TOKENS = 256
# How far an answer's length strays from the lengths the prompt asks for, and how far o200k
# may undercount Kimi's tokenizer outside English and Chinese (KIMI.md §5). Assumptions, shown
# in the report, until a live run calibrates them.
OUTPUT_LOW_FACTOR = 0.7
INPUT_HIGH_FACTOR = 1.15


def cacheable_prefix_tokens(system_tokens: int) -> int:
    """Tokens of the shared prefix (system message and its template tokens) a cache can hit."""
    return (system_tokens + TOKENS_PER_MESSAGE) // CACHE_CHUNK_TOKENS * CACHE_CHUNK_TOKENS


# --- estimates ------------------------------------------------------------------------------


@dataclass(slots=True)
class GroupEstimate:
    """Jobs sharing one (platform, locale): one system prompt, one expected answer size, one
    pack size. Input is kept apart as what every request repeats (its frame: the system
    message, template tokens, a pack's header) and what each job adds (its product)."""

    platform: str
    locale: str
    system_tokens: int  # the system message of a request (a packed one where pack > 1)
    output_tokens: int  # expected per job
    max_tokens: int  # what a full pack's request asks for its answer
    pack: int = 1
    alone_max_tokens: int = 0  # what a job asked alone asks
    frame_tokens: int = 0  # per request, beside the products
    single_frame_tokens: int = 0  # per request at --pack 1
    jobs: int = 0
    product_tokens: int = 0  # the jobs' user messages (their ids in a pack's fences apart)
    # From a live run (Calibration): billed / counted input, and the answers' real mean size.
    input_ratio: float | None = None
    output_per_job: float | None = None
    style: tuple[tuple[str, ...], int] = ((), 0)  # the style guides in its system message, and their tokens
    adapted: bool = False  # --adapt: each job alone, with its sibling market's listing in its prompt
    adapt_note_tokens: int = 0
    # What the pack is chosen from once the run's size is known (settle): a listing group's.
    sizing: tuple[AnswerRoom, int, int, int] | None = None  # room, per listing, packed and single system

    def calibrate(self, calibration: Calibration) -> None:
        """Use what a live run measured for this group's locale and platform."""
        self.input_ratio = calibration.input_ratio(self.locale)
        self.output_per_job = calibration.output_per_job(self.locale, self.platform)

    def add_job(self, user_tokens: int) -> None:
        self.jobs += 1
        self.product_tokens += user_tokens

    def settle(self, setting: int | str, spread: tuple[int, int] | None, header_tokens: Callable[[int], int]) -> None:
        """The pack the run's size gives this group (AnswerRoom.pack_size), and what its
        requests then repeat: the packed system message and header, or the single one's frame."""
        if self.sizing is None:
            return
        room, per_listing, packed_system, single_system = self.sizing
        self.pack = 1 if self.adapted else room.pack_size(setting, per_listing, spread)
        self.max_tokens = room.max_tokens(self.pack, per_listing)
        if self.pack > 1:
            self.system_tokens = packed_system
            self.frame_tokens = chat_prompt_tokens([packed_system, header_tokens(self.pack)])
        else:
            self.system_tokens = single_system
            self.frame_tokens = self.single_frame_tokens

    @property
    def requests(self) -> int:
        return -(-self.jobs // self.pack)

    @property
    def input_tokens(self) -> int:
        ids = PACK_ID_TOKENS * self.jobs if self.pack > 1 and self.platform != STRINGS else 0
        return self.requests * self.frame_tokens + self.product_tokens + ids

    @property
    def answer_tokens(self) -> float:
        """Expected output tokens of one full request (a pack's listings)."""
        per_job = self.output_per_job if self.output_per_job is not None else self.output_tokens
        return per_job * min(self.pack, max(self.jobs, 1))

    @property
    def single_input_tokens(self) -> int:
        """The input of the same jobs sent one per request (--pack 1)."""
        return self.jobs * self.single_frame_tokens + self.product_tokens

    def scenarios(self) -> dict[str, Usage]:
        """Token totals for the low, expected and high cases."""
        ratio = self.input_ratio
        calibrated = ratio is not None
        input_tokens = round(self.input_tokens * ratio) if ratio is not None else self.input_tokens
        per_job = self.output_per_job if self.output_per_job is not None else self.output_tokens
        cached = max(self.requests - 1, 0) * cacheable_prefix_tokens(self.system_tokens)
        cap = self.max_tokens // max(self.pack, 1)  # a job's part of its request's answer
        low_out = min(math.ceil(per_job * OUTPUT_LOW_FACTOR), cap)
        high_out = min(math.ceil(per_job * OUTPUT_HIGH_FACTOR), cap)
        expected_out = round(min(per_job, cap) * self.jobs)
        # Once calibrated, the tokenizer gap is measured, so the high case drops its margin.
        high_in = input_tokens if calibrated else math.ceil(input_tokens * INPUT_HIGH_FACTOR)
        return {
            # Every request after the first hits the cache for the shared prefix; short answers.
            "low": Usage(input_tokens, min(cached, input_tokens), low_out * self.jobs),
            # No cache hits (the relay may not pass them on); answers at the target lengths.
            "expected": Usage(input_tokens, 0, expected_out),
            # No cache hits, long answers (and, uncalibrated, the tokenizer undercounting).
            "high": Usage(high_in, 0, high_out * self.jobs),
        }


@dataclass(slots=True)
class Estimate:
    """A dry run's result: per (platform, locale) groups and the price used."""

    model: str
    price: Price
    tokenizer: str
    groups: dict[tuple[str, str], GroupEstimate] = field(default_factory=dict)
    products: int = 0
    products_without_jobs: int = 0
    up_to_date: int = 0  # jobs whose results in OUT are current: not sent, not priced
    # Jobs a run would settle without a request (not priced): the same copy as another job's
    # listing, a store string a translation memory fills, a failure held (unchanged since it failed).
    reused: int = 0
    from_memory: int = 0
    held: int = 0
    outdated: int = 0  # a person's listings kept though their product changed
    elapsed_s: float = 0.0
    calibration: Calibration | None = None
    rpm: int | str = 60
    completion_window: str = "24h"
    # Per column: input tokens its values cost over the first COLUMN_SAMPLE products' jobs.
    column_tokens: dict[str, int] = field(default_factory=dict)
    # Columns left out of the prompt by default (fields.py), seen in the sampled products.
    left_out: set[str] = field(default_factory=set)
    # Jobs whose request alone cannot fit the model's context window with --max-tokens: (id, tokens).
    over_window: list[tuple[str, int]] = field(default_factory=list)
    max_tokens: int = 0
    concurrency: int = 0  # requests a run keeps in flight (pace.py)
    judge: JudgeEstimate | None = None  # --judge: what judging the listings would cost

    def by_column(self) -> dict[str, int]:
        """The input tokens each catalog column costs the run (scaled up from a sample), most first."""
        sampled = min(self.products, COLUMN_SAMPLE)
        scale = self.products / sampled if sampled else 0.0
        return dict(
            sorted(
                ((name, round(tokens * scale)) for name, tokens in self.column_tokens.items()),
                key=lambda item: -item[1],
            )
        )

    @property
    def jobs(self) -> int:
        return sum(group.jobs for group in self.groups.values())

    def timing(self) -> dict[str, Any]:
        """Requests and input as packing sends them, beside one product per request, and how
        long each takes: at --rpm (the relay's per-minute limit is the ceiling) unless the
        requests in flight, each waiting for its answer, cannot keep that pace."""
        requests = sum(group.requests for group in self.groups.values())
        single = self.jobs
        rpm = self.rpm if isinstance(self.rpm, int) else None
        seconds = (
            sum(answer_seconds(group.answer_tokens) * group.requests for group in self.groups.values()) / requests
            if requests
            else 0.0
        )
        single_seconds = (
            sum(answer_seconds(group.answer_tokens / max(group.pack, 1)) * group.jobs for group in self.groups.values())
            / single
            if single
            else 0.0
        )
        taken = pace_minutes(requests, rpm, self.concurrency, seconds)
        single_taken = pace_minutes(single, rpm, self.concurrency, single_seconds)
        return {
            "rpm": self.rpm,
            "requests": requests,
            "input_tokens": sum(group.input_tokens for group in self.groups.values()),
            "minutes": round(taken, 1) if taken is not None else None,
            "concurrency": min(self.concurrency, requests),
            "answer_seconds": round(seconds, 1),
            # The most a request carries: the pack size, or the group's jobs when fewer.
            "packs": {f"{g.locale}/{g.platform}": min(g.pack, max(g.jobs, 1)) for _, g in sorted(self.groups.items())},
            "pack_1": {
                "requests": single,
                "input_tokens": sum(group.single_input_tokens for group in self.groups.values()),
                "minutes": round(single_taken, 1) if single_taken is not None else None,
            },
        }

    def _left_out(self) -> dict[str, list[str]]:
        """The columns that stay out of the prompt by default, by why."""
        kinds: dict[str, list[str]] = {}
        for name in sorted(self.left_out):
            kinds.setdefault(left_out_kind(name), []).append(name)
        return kinds

    def _over_window(self) -> dict[str, Any]:
        """The jobs a run would refuse unsent, their request too large for the model."""
        if not self.over_window:
            return {}
        largest = sorted(self.over_window, key=lambda item: -item[1])[:5]
        return {
            "over_context_window": {
                "jobs": len(self.over_window),
                "context_tokens": self.price.context_tokens,
                "max_tokens": self.max_tokens,
                "largest": [{"id": product_id, "input_tokens": tokens} for product_id, tokens in largest],
            }
        }

    def report(self) -> dict[str, Any]:
        """The cost-report shape of DESIGN.md with "estimated": true and a low/expected/high range."""
        totals = {name: Usage() for name in ("low", "expected", "high")}
        by_locale: dict[str, dict[str, Usage]] = {}
        by_platform: dict[str, dict[str, Usage]] = {}
        by_pair: dict[str, dict[str, Any]] = {}
        jobs_by: dict[str, int] = {}
        requests_by: dict[str, int] = {}
        for (platform, locale), group in sorted(self.groups.items()):
            scenarios = group.scenarios()
            for key, bucket in ((locale, by_locale), (platform, by_platform)):
                slot = bucket.setdefault(key, {name: Usage() for name in totals})
                for name, usage in scenarios.items():
                    slot[name] += usage
                jobs_by[key] = jobs_by.get(key, 0) + group.jobs
                requests_by[key] = requests_by.get(key, 0) + group.requests
            for name, usage in scenarios.items():
                totals[name] += usage
            by_pair[f"{locale}/{platform}"] = {
                "locale": locale,
                "platform": platform,
                "pack": group.pack,
                **self._entry(group.jobs, group.requests, scenarios),
            }
        timing = self.timing()
        batch = self._batch(totals)
        return {
            "version": REPORT_VERSION,
            "model": self.model,
            "currency": "USD",
            "estimated": True,
            **self._entry(self.jobs, timing["requests"], totals, top=True),
            "by_locale": {key: self._entry(jobs_by[key], requests_by[key], value) for key, value in by_locale.items()},
            "by_platform": {
                key: self._entry(jobs_by[key], requests_by[key], value) for key, value in by_platform.items()
            },
            "by_locale_platform": by_pair,
            "timing": timing,
            "by_column": self.by_column(),
            "style": {
                f"{locale}/{platform}": {"guides": list(group.style[0]), "tokens_per_request": group.style[1]}
                for (platform, locale), group in sorted(self.groups.items())
                if group.style[0]
            },
            "left_out": self._left_out(),
            **({"judge": self.judge.report()} if self.judge is not None else {}),
            "batch": batch,
            "products": {"total": self.products, "without_jobs": self.products_without_jobs},
            **self._over_window(),
            "latency_ms": {"p50": None, "p95": None},
            "elapsed_s": round(self.elapsed_s, 3),
            "price": {
                "model": self.price.model,
                "usd_per_million": {
                    "input": float(self.price.input),
                    "cached_input": float(self.price.cached_input),
                    "output": float(self.price.output),
                },
                "as_of": self.price.as_of.isoformat() if self.price.as_of else None,
                "source": self.price.source,
            },
            "method": {
                "tokenizer": self.tokenizer,
                "template_tokens": {"per_message": TOKENS_PER_MESSAGE, "reply_primer": TOKENS_REPLY_PRIMER},
                "low": f"cache hits on the shared prefix after each group's first request; output x{OUTPUT_LOW_FACTOR}",
                "expected": "no cache hits; output at the prompt's target lengths",
                "high": f"no cache hits; input x{INPUT_HIGH_FACTOR}; output x{OUTPUT_HIGH_FACTOR} "
                "(capped at max_tokens)",
                "calibrated": self.calibration is not None,
                **({"calibration": self.calibration.summary()} if self.calibration else {}),
            },
        }

    def _batch(self, totals: Mapping[str, Usage]) -> dict[str, Any]:
        """The same run through the batch API (`--batch`): its price, and the wait."""
        price = self.price.batch
        if price is None:
            return {"available": False, "reason": f"no batch price known for {self.price.model}"}
        expected = cost_usd(totals["expected"], price)
        live = cost_usd(totals["expected"], self.price)
        return {
            "available": True,
            "cost_usd": usd(expected),
            "range": {name: usd(cost_usd(usage, price)) for name, usage in totals.items()},
            "saving": round(float(1 - expected / live), 4) if live else 0.0,
            "completion_window": self.completion_window,
            "price": {"as_of": price.as_of.isoformat() if price.as_of else None, "source": price.source},
        }

    def tally(self, tally: Tally) -> None:
        """What the planning stage settles without a request: up to date (a person's outdated
        listing among them, as a run counts it), reused, filled from memory, held."""
        self.up_to_date = tally[Outcome.UP_TO_DATE] + tally[Outcome.OUTDATED]
        self.outdated = tally[Outcome.OUTDATED]
        self.reused = tally[Outcome.REUSED]
        self.from_memory = tally[Outcome.FROM_MEMORY]
        self.held = tally[Outcome.HELD]

    @property
    def settled_unsent(self) -> int:
        """Jobs a run would settle without sending them (beside those up to date)."""
        return self.reused + self.from_memory + self.held

    def _jobs(self, priced: int) -> dict[str, int]:
        jobs = {
            "total": priced + self.up_to_date + self.settled_unsent,
            "succeeded": 0,
            "failed": 0,
            "up_to_date": self.up_to_date,
        }
        jobs.update({name: count for name, count in self.unsent().items() if count})
        return jobs

    def unsent(self) -> dict[str, int]:
        return {"reused": self.reused, "from_memory": self.from_memory, "held": self.held, "outdated": self.outdated}

    def _entry(self, jobs: int, requests: int, scenarios: Mapping[str, Usage], *, top: bool = False) -> dict[str, Any]:
        expected = scenarios["expected"]
        entry: dict[str, Any] = {
            "jobs": self._jobs(jobs) if top else jobs,
            "requests": requests,
            "tokens": expected.as_dict(),
            "cost_usd": usd(cost_usd(expected, self.price)),
            "range": {name: usd(cost_usd(usage, self.price)) for name, usage in scenarios.items()},
        }
        return entry


# --- the dry run ----------------------------------------------------------------------------


PROGRESS_EVERY = 1000
# The products whose columns are counted one by one, for what each column costs.
COLUMN_SAMPLE = 1000
COUNT_BATCH = 1024


def estimate(settings: Settings, catalog: Path, *, on_progress: Callable[[int], None] | None = None) -> Estimate:
    """Render every prompt, count its tokens and price the run. Sends nothing."""
    # With earlier results in OUT, jobs that are up to date would not be sent: they cost nothing.
    # --force sends them all, but for a person's listings, which it never regenerates.
    with_results = (settings.out / LOCK).exists()
    with read_once(catalog), RunStore(settings.out, read_only=True) if with_results else nullcontext() as store:
        return _estimate(settings, catalog, store, on_progress=on_progress)


def _estimate(
    settings: Settings, catalog: Path, store: RunStore | None, *, on_progress: Callable[[int], None] | None
) -> Estimate:
    started = time.perf_counter()
    require_locales(settings)
    # What the live run would refuse before sending (an Amazon feed without product types, a
    # Magento file without store views) is refused here too, not priced.
    check_imports(settings, catalog, lambda platform: products_on(settings, catalog, platform))
    price = price_for(settings.model, load_prices(settings.prices))
    check_max_tokens(settings, price)
    prompt_sets = PromptSets(settings)
    counter = TokenCounter()
    calibration = Calibration.load(settings.out / CALIBRATION, model=settings.model)
    result = Estimate(
        model=settings.model,
        price=price,
        tokenizer=counter.name,
        calibration=calibration,
        rpm=settings.rpm,
        completion_window=settings.batch_window,
        max_tokens=settings.max_tokens or DEFAULT_MAX_TOKENS,
        judge=JudgeEstimate.of(settings, judge_price(settings.judge_model, price, settings.prices)),
    )
    # The run's own planning stage (plan.py): what it would send, settle or reuse, decided as it decides.
    planner = Planner(settings, prompt_sets, store, memory=memory_for(settings, catalog))
    # User messages are counted in batches, which tiktoken spreads over every core.
    pending: list[tuple[GroupEstimate, str, str]] = []
    planned = 0  # every job of the catalog, as a run counts them (packs leave it requests to spread)
    for product, jobs in iter_jobs(settings, catalog, prompt_sets):
        result.products += 1
        if result.products <= COLUMN_SAMPLE:
            result.left_out.update(product.left_out)
            for name, value in product.data().items():
                tokens = counter.count(data_json({name: value}))
                result.column_tokens[name] = result.column_tokens.get(name, 0) + tokens * max(len(jobs), 1)
        if not jobs:
            result.products_without_jobs += 1
        planned += len(jobs)
        for job in jobs:
            plan = planner.listing(job)
            if plan.error is not None:
                raise plan.error  # a template that cannot render: said before anything is priced
            if result.judge is not None and plan.outcome is Outcome.UP_TO_DATE:
                result.judge.kept(job, store, counter)  # (listings reused this run as copies: not priced)
            if plan.outcome is not Outcome.SEND:
                continue
            assert plan.messages is not None
            prompt_set = prompt_sets.get(job.platform)
            group = result.groups.get((job.platform, job.locale.tag))
            if group is None:
                group = _new_group(job, prompt_set, counter, settings, price)
                if job.locale.tag in settings.adapt:  # (the note around a sibling's listing, counted once)
                    group.adapted, group.adapt_note_tokens = True, adapt_note_tokens(counter)
                if calibration is not None:
                    group.calibrate(calibration)
                result.groups[(job.platform, job.locale.tag)] = group
            pending.append((group, plan.messages[1]["content"], job.product.id))
            if result.judge is not None:
                result.judge.written(job, group.output_tokens, counter)
            if group.adapted and (plan.prepared is None or not plan.prepared.adapted):
                # Its sibling's listing is not written yet: priced at the size this market's will have.
                group.product_tokens += group.output_tokens + group.adapt_note_tokens
        if len(pending) >= COUNT_BATCH:
            _count_pending(pending, counter, result, settings)
        if on_progress and result.products % PROGRESS_EVERY == 0:
            on_progress(result.products)
    _count_pending(pending, counter, result, settings)
    planned += _add_strings(result, settings, catalog, counter, planner)
    result.tally(planner.tally)
    # A live run spreads a small run's jobs over the requests it keeps in flight (--concurrency,
    # or the 16 a run starts from); a batch waits for no answer: its packs stay full.
    spread = (planned, settings.concurrency) if settings.batch == "off" else None
    for group in result.groups.values():  # the run's size known: each group's pack, as a run chooses it
        group.settle(settings.pack, spread, lambda count: counter.count(PACK_HEADER.format(count=count)))
    result.concurrency = in_flight(settings, [group.answer_tokens for group in result.groups.values()])
    result.elapsed_s = time.perf_counter() - started
    return result


def _add_strings(result: Estimate, settings: Settings, catalog: Path, counter: TokenCounter, planner: Planner) -> int:
    """A Shopify export's other texts: one "strings" group per locale, sent as a run packs them.
    How many string jobs there are (sent or not), as a run counts them."""
    by_locale: dict[str, list[tuple[Product, Locale]]] = {}
    asked = 0
    for product, locales in store_strings(settings, catalog):
        asked += len(locales)
        for locale in locales:
            if planner.string(product, locale).outcome is Outcome.SEND:
                by_locale.setdefault(locale.tag, []).append((product, locale))
    for tag, strings in by_locale.items():
        locale = strings[0][1]
        products = [product for product, _ in strings]
        prompt = render_strings(products, locale)
        tokens_per_char = counter.tokens_per_char(locale)
        outputs = [len(product.name) * tokens_per_char + STRING_TOKENS_OVERHEAD for product in products]
        requests = string_requests(outputs, settings)
        system = counter.count(prompt.messages[0]["content"])
        group = GroupEstimate(
            platform=STRINGS,
            locale=tag,
            system_tokens=system,
            output_tokens=math.ceil(sum(outputs) / len(outputs)),
            max_tokens=settings.max_tokens or DEFAULT_MAX_TOKENS,
            pack=-(-len(products) // requests),
            frame_tokens=chat_prompt_tokens([system, counter.count(prompt.header) + 2]),
            single_frame_tokens=chat_prompt_tokens([system, counter.count(USER.format(count=1, payload="")) + 2]),
            jobs=len(products),
            product_tokens=sum(counter.count_many(list(prompt.blocks))),
        )
        if result.calibration is not None:
            group.calibrate(result.calibration)
        result.groups[(STRINGS, tag)] = group
    return asked


def _count_pending(
    pending: list[tuple[GroupEstimate, str, str]], counter: TokenCounter, result: Estimate, settings: Settings
) -> None:
    # A product's user message is the same in each of its locales (prompts.render_user): each
    # distinct text is counted once.
    distinct = list(dict.fromkeys(text for _, text, _ in pending))
    count_of = dict(zip(distinct, counter.count_many(distinct), strict=True))
    window = result.price.context_tokens
    for group, text, product_id in pending:
        user_tokens = count_of[text]
        # The system message is the same for the whole group: counted once, in _new_group.
        group.add_job(user_tokens)
        alone = group.single_frame_tokens + user_tokens
        if window and alone + group.alone_max_tokens > window:
            result.over_window.append((product_id, alone))
    pending.clear()


def adapt_note_tokens(counter: TokenCounter) -> int:
    """Tokens of --adapt's note around a sibling's listing (the listing itself apart)."""
    return counter.count(ADAPT_NOTE.format(sibling="Spanish (Spain)", target="Spanish (Mexico)", listing=""))


def _new_group(
    job: Job, prompt_set: PromptSet, counter: TokenCounter, settings: Settings, price: Price
) -> GroupEstimate:
    """A listing group; its pack (and what the pack repeats) is settled once the run's size is known."""
    rules = prompt_set.rules_for(job.locale)
    tokens_per_char = counter.tokens_per_char(job.locale)
    room = AnswerRoom.of(settings.max_tokens, price, thinking=settings.thinking)
    per_listing = listing_budget(rules, tokens_per_char)
    single_system = counter.count(prompt_set.render_system(job.locale))
    packed_system = counter.count(prompt_set.render_system(job.locale, packed=True))
    style = prompt_set.style_for(job.locale)
    return GroupEstimate(
        style=(style.names, counter.count(STYLE_SECTION.format(guides=style.text)) if style.text else 0),
        platform=job.platform,
        locale=job.locale.tag,
        system_tokens=single_system,
        output_tokens=expected_output_tokens(rules, tokens_per_char),
        max_tokens=room.max_tokens(1, per_listing),
        alone_max_tokens=room.max_tokens(1, per_listing),
        single_frame_tokens=chat_prompt_tokens([single_system, 0]),
        sizing=(room, per_listing, packed_system, single_system),
    )

"""Prices, token counting, estimates and the cost report.

Money is Decimal from the price table to the report, so sums over 100k requests do not drift;
the report rounds to micro-dollars only when it is written.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel import Locale as BabelLocale
from pydantic import TypeAdapter, ValidationError

from . import tokenizer
from .config import PriceOverride
from .errors import ConfigError, PriceError
from .locales import Locale

_CORES = max(os.cpu_count() or 1, 1)
PRICES_FILE = Path(__file__).with_name("prices.yaml")
PER_MILLION = Decimal(1_000_000)

# Kimi K2's chat template wraps each message as <|im_user|>user<|im_middle|>…<|im_end|>
# (4 tokens around the content) and primes the reply with <|im_assistant|>assistant<|im_middle|>.
TOKENS_PER_MESSAGE = 4
# How long answers may run against the prompt's target lengths, in the estimate's high case;
# packs are sized so that even such answers fit in max_tokens.
OUTPUT_HIGH_FACTOR = 1.4
TOKENS_REPLY_PRIMER = 3


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model."""

    model: str
    input: Decimal
    cached_input: Decimal
    output: Decimal
    as_of: date | None
    source: str | None
    batch: Price | None = None  # through the batch API, where the model batches
    context_tokens: int | None = None  # the context window: prompt and answer together
    max_output_tokens: int | None = None  # the most one answer may hold (None: not known)
    thinks: bool = False  # thinks by default (KIMI.md §7): reasoning billed as output
    thinking_temperature: float | None = None  # what thinking requires
    plain_temperature: float | None = None  # what the model requires with thinking disabled

    @property
    def list_price(self) -> tuple[Decimal, Decimal, Decimal]:
        """Input, cached input and output per million: what two ids must share to cost the same."""
        return self.input, self.cached_input, self.output


@dataclass(slots=True)
class Usage:
    """Token counts, as the relay's `usage` reports them. Cached tokens are part of input;
    reasoning tokens (a thinking model's, KIMI.md §7) are part of the output, billed as it is."""

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        self.input_tokens += other.input_tokens
        self.cached_tokens += other.cached_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens
        return self

    def as_dict(self) -> dict[str, int]:
        counts = {"input": self.input_tokens, "cached_input": self.cached_tokens, "output": self.output_tokens}
        if self.reasoning_tokens:  # (of the output; only where a model reasoned, so other reports read as before)
            counts["reasoning"] = self.reasoning_tokens
        return counts


def cost_usd(usage: Usage, price: Price) -> Decimal:
    """What `usage` costs: uncached input at the miss price, cached at the hit price, output."""
    uncached = usage.input_tokens - usage.cached_tokens
    return (
        uncached * price.input + usage.cached_tokens * price.cached_input + usage.output_tokens * price.output
    ) / PER_MILLION


def usd(amount: Decimal) -> float:
    """Micro-dollar precision: exact to the cent for any catalog size."""
    return float(amount.quantize(Decimal("0.000001")))


# --- prices ---------------------------------------------------------------------------------


def load_prices(overrides: Mapping[str, PriceOverride] | None = None) -> dict[str, Price]:
    """The built-in price table with localize.yaml's `prices:` on top (field by field)."""
    raw = yaml.safe_load(PRICES_FILE.read_text(encoding="utf-8"))
    try:
        table = TypeAdapter(dict[str, PriceOverride]).validate_python(raw)
    except ValidationError as exc:  # a packaging mistake, but say where
        raise ConfigError(f"invalid price table: {exc.errors()[0]['msg']}", where=str(PRICES_FILE)) from None
    for model, override in (overrides or {}).items():
        # A known model's entry keeps what the override does not say (its window, its output
        # limit, whether it thinks): a new price must not make packs small or checks vanish.
        known = table.get(model)
        table[model] = (
            PriceOverride.model_validate(known.model_dump(exclude_unset=True) | override.model_dump(exclude_unset=True))
            if known
            else override
        )
    return {model: _price(model, entry) for model, entry in table.items()}


def _price(model: str, entry: PriceOverride) -> Price:
    batch = entry.batch
    batched = Price(model, batch.input, batch.cached_input, batch.output, batch.as_of, batch.source) if batch else None
    return Price(
        model,
        entry.input,
        entry.cached_input,
        entry.output,
        entry.as_of,
        entry.source,
        batched,
        entry.context_tokens,
        entry.max_output_tokens,
        entry.thinks,
        entry.thinking_temperature,
        entry.plain_temperature,
    )


def price_for(model: str, prices: Mapping[str, Price]) -> Price:
    """The model's price, or a PriceError naming the known ids and how to add one."""
    if model in prices:
        return prices[model]
    raise PriceError(
        f"no price known for model {model!r} (known: {', '.join(sorted(prices))})",
        hint=f"add it to localize.yaml: prices: {{{model}: {{input: 0.60, cached_input: 0.15, output: 2.50}}}}"
        " (USD per million tokens)",
    )


def judge_price(judge_model: str | None, run_price: Price, overrides: Mapping[str, PriceOverride]) -> Price:
    """The price the quality judge's requests are billed at: its own model's (--judge-model),
    else the run's (a PriceError, said before anything is sent, for a model without one)."""
    if judge_model is None or judge_model == run_price.model:
        return run_price
    return price_for(judge_model, load_prices(overrides))


def price_of_answer(named: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of the model an answer names, as relays spell it: `kimi-k2.6`,
    `moonshot/kimi-k2.6`, `Kimi-K2.6`; None when the table has no such model."""
    for candidate in (named, named.rpartition("/")[2], named.lower(), named.rpartition("/")[2].lower()):
        if candidate in prices:
            return prices[candidate]
    return None


# --- tokens ---------------------------------------------------------------------------------


class TokenCounter:
    """Offline prompt token counts, with Kimi's chat-template tokens added per message.

    o200k_base stands in for Kimi's vocabulary, which cannot be shipped (KIMI.md §5).
    """

    name = tokenizer.ENCODING_NAME

    def __init__(self) -> None:
        self._encoding = tokenizer.o200k_base()
        self._system_counts: dict[str, int] = {}
        self._executor: ThreadPoolExecutor | None = None

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count_many(self, texts: list[str]) -> list[int]:
        """Counts for many texts, one chunk per core: tiktoken releases the GIL while it
        encodes, and its own batch call would queue one thread-pool task per text."""
        if _CORES == 1 or len(texts) < 256:
            return [self.count(text) for text in texts]
        size = -(-len(texts) // _CORES)
        chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
        counted = self._pool().map(self._count_chunk, chunks)
        return [count for chunk in counted for count in chunk]

    def _count_chunk(self, texts: list[str]) -> list[int]:
        encode = self._encoding.encode_ordinary
        return [len(encode(text)) for text in texts]

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=_CORES, thread_name_prefix="count")
        return self._executor

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        """Prompt tokens for a chat request, template tokens included. A system message is
        shared by every job of a (platform, locale), so its count is remembered."""
        counts = []
        for message in messages:
            if message["role"] == "system":
                cached = self._system_counts.get(message["content"])
                if cached is None:
                    cached = self._system_counts[message["content"]] = self.count(message["content"])
                counts.append(cached)
            else:
                counts.append(self.count(message["content"]))
        return chat_prompt_tokens(counts)

    def tokens_per_char(self, locale: Locale) -> float:
        return _tokens_per_char(self, locale.tag)


@lru_cache(maxsize=64)
def _tokens_per_char(counter: TokenCounter, tag: str) -> float:
    """How many tokens a character of this locale's text costs, measured on real text in it:
    CLDR's names of the world's territories, written in the locale (Babel ships them)."""
    babel_locale = BabelLocale.parse(tag, sep="-")
    sample = " ".join(sorted(babel_locale.territories.values()))
    return counter.count(sample) / max(len(sample), 1)


def chat_prompt_tokens(content_tokens: list[int]) -> int:
    """Prompt tokens of a chat request whose messages' contents count `content_tokens`."""
    return sum(content_tokens) + TOKENS_PER_MESSAGE * len(content_tokens) + TOKENS_REPLY_PRIMER


# --- budget -------------------------------------------------------------------------------


class Budget:
    """--max-cost: each request reserves its worst case before it is sent, and what was spent
    plus what is reserved never crosses the cap.

    A request that does not fit waits for the ones in flight to settle (their real cost is
    usually far below the worst case) and is refused only when it still does not fit with
    nothing in flight. What a request cost is booked in full, even past its reservation: a
    relay that bills more than expected stops the run sooner, never later. The most any
    request has cost over its reservation scales every reservation from then on, those in
    flight included; and until a first request has settled, those in flight may hold only a
    third of what is left, so even a first wave billed at three times its worst case fits.
    """

    def __init__(self, cap_usd: Decimal) -> None:
        self.cap_usd = cap_usd
        self.spent_usd = Decimal(0)
        self._reserved = Decimal(0)  # worst cases of the requests in flight, as estimated
        self._overrun = Decimal(1)  # the largest cost / worst case seen so far, at least 1
        self._answers = 0
        self._settled = asyncio.Event()

    async def reserve(self, worst_case: Decimal) -> bool:
        """Hold room for a request whose estimated worst case is `worst_case`; False when it
        cannot fit even with nothing else in flight."""
        while not self._fits(worst_case):
            if self._reserved == 0:
                return False
            self._settled.clear()
            await self._settled.wait()
        self._reserved += worst_case
        return True

    def room_usd(self) -> Decimal:
        """The largest worst case one reservation could hold now (what reserve would take)."""
        room = self.cap_usd - self.spent_usd
        if self._answers == 0 and self._reserved > 0:
            room *= FIRST_WAVE_SHARE
        return max(Decimal(0), room / self._overrun - self._reserved)

    def settle(self, worst_case: Decimal, spent: Decimal | None) -> None:
        """Swap a reservation for what the request cost; `spent` None when nobody knows (sent
        but unanswered, or the relay reported no usage): booked at its worst case. Synchronous,
        so it also runs in the `finally` of a cancelled request."""
        self._reserved -= worst_case
        if spent is None:
            spent = worst_case * self._overrun
        else:
            self._answers += 1
            if worst_case > 0 and spent > worst_case * self._overrun:
                self._overrun = spent / worst_case
        self.spent_usd += spent
        self._settled.set()

    def _fits(self, worst_case: Decimal) -> bool:
        room = self.cap_usd - self.spent_usd
        if self._answers == 0 and self._reserved > 0:  # one request alone may use it all
            room *= FIRST_WAVE_SHARE
        return (self._reserved + worst_case) * self._overrun <= room


# Before any answer has shown what the relay bills, requests in flight together hold at most
# this share of the budget left.
FIRST_WAVE_SHARE = Decimal("0.33")


def worst_case_usd(input_tokens: int, max_tokens: int, price: Price) -> Decimal:
    """A request's highest possible cost: every input token uncached, the full output cap."""
    return (input_tokens * price.input + max_tokens * price.output) / PER_MILLION


# --- live runs ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    jobs: int = 0
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)

    def entry(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "requests": self.requests,
            "tokens": self.usage.as_dict(),
            "cost_usd": usd(self.cost),
        }


# cost_report.json's version (the estimate's --json too): a report without one is version 1.
REPORT_VERSION = 1


def build_report(
    attempts: Iterable[Mapping[str, Any]],
    *,
    model: str,
    jobs: Mapping[str, int],
    elapsed_s: float,
    budget_usd: Decimal | None = None,
) -> dict[str, Any]:
    """The cost report of a live run: a sum over its audit log, so it equals the bill.

    Every attempt the relay answered counts, including answers that failed validation and
    were re-asked. `jobs` holds total / succeeded / failed / up_to_date.
    """
    total = _Tally()
    groups: dict[str, dict[str, _Tally]] = {
        "by_locale": {},
        "by_platform": {},
        "by_user": {},
        "by_resource_type": {},
        "by_mode": {},
        "by_model": {},
        "by_purpose": {},
    }
    batched = False
    judged = False
    relay_cost = Decimal(0)
    relay_priced = 0
    latencies: list[float] = []
    errors: dict[str, int] = {}
    unconfirmed = {"requests": 0, "counted_input_tokens": 0}
    unreported = {"requests": 0, "counted_input_tokens": 0, "counted_output_tokens": 0, "estimated_cost_usd": 0.0}
    unreported_cost = Decimal(0)
    mismatched = 0  # answers whose usage did not add up (the larger output billed)
    for record in attempts:
        # A packed request has a record per job it served, each with the job's share of the
        # usage; it counts as one request, on its lead job's record.
        pack = record.get("pack")
        request = 0 if isinstance(pack, Mapping) and pack.get("lead") != record.get("id") else 1
        if record.get("usage_mismatch"):
            mismatched += 1
        if record.get("maybe_billed"):
            unconfirmed["requests"] += request
            unconfirmed["counted_input_tokens"] += _count(record.get("counted_input"))
        if record.get("usage_unreported"):
            unreported["requests"] += request
            unreported["counted_input_tokens"] += _count(record.get("counted_input"))
            unreported["counted_output_tokens"] += _count(record.get("counted_output"))
            unreported_cost += _money(record.get("estimated_cost_usd"))
        usage = Usage(**_usage_fields(record.get("usage")))
        cost = _money(record.get("cost_usd"))
        keys = {
            "by_locale": record.get("locale"),
            "by_platform": record.get("platform"),
            "by_user": record.get("user") or "(none)",
        }
        if record.get("resource_type"):  # a Shopify store's strings, by the kind of thing they name
            keys["by_resource_type"] = record["resource_type"]
        # Answered by the batch API (at its price) or live: the two parts of the bill.
        keys["by_mode"] = "batch" if record.get("batch") else "live"
        keys["by_model"] = record.get("model") or model  # the model that answered
        batched = batched or bool(record.get("batch"))
        # Writing listings, or judging them (--judge): the judge's line counts the listings it judged.
        purpose = str(record.get("purpose") or "listing")
        judged = judged or purpose != "listing"
        finished = 1 if record.get("job_outcome") else 0
        for tally in (total, *(groups[name].setdefault(str(key), _Tally()) for name, key in keys.items())):
            tally.requests += request
            tally.usage += usage
            tally.cost += cost
            tally.jobs += finished
        by_purpose = groups["by_purpose"].setdefault(purpose, _Tally())
        by_purpose.requests += request
        by_purpose.usage += usage
        by_purpose.cost += cost
        by_purpose.jobs += finished if purpose == "listing" else int(record.get("judge_outcome") == "judged")
        if record.get("relay_cost_usd") is not None:
            relay_cost += _money(record["relay_cost_usd"])
            relay_priced += 1
        if record.get("error"):
            errors[str(record["error"])] = errors.get(str(record["error"]), 0) + 1
        status, latency = record.get("status"), record.get("latency_ms")
        if request and isinstance(status, int) and 200 <= status < 300 and isinstance(latency, (int, float)):
            latencies.append(float(latency))
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "model": model,
        "currency": "USD",
        "estimated": False,
        "jobs": dict(jobs),
        "requests": total.requests,
        "tokens": total.usage.as_dict(),
        # Input served from the relay's prefix cache, the reason prompts put static text first.
        "cached_share": round(total.usage.cached_tokens / total.usage.input_tokens, 4)
        if total.usage.input_tokens
        else 0.0,
        "cost_usd": usd(total.cost),
        "cost_cny": usd(total.cost),  # the relay bills ¥1 = $1 (KIMI.md §6)
        "by_locale": {key: tally.entry() for key, tally in sorted(groups["by_locale"].items())},
        "by_platform": {key: tally.entry() for key, tally in sorted(groups["by_platform"].items())},
        "by_user": {key: tally.entry() for key, tally in sorted(groups["by_user"].items())},
        **(
            {"by_resource_type": {key: tally.entry() for key, tally in sorted(groups["by_resource_type"].items())}}
            if groups["by_resource_type"]
            else {}
        ),
        **({"by_mode": {key: tally.entry() for key, tally in sorted(groups["by_mode"].items())}} if batched else {}),
        # Where a relay answered with another model than the one asked (an alias it resolved).
        **(
            {"by_model": {key: tally.entry() for key, tally in sorted(groups["by_model"].items())}}
            if set(groups["by_model"]) - {model}
            else {}
        ),
        # What the quality judge cost beside the listings (--judge): its own line of the same bill.
        **(
            {"by_purpose": {key: tally.entry() for key, tally in sorted(groups["by_purpose"].items())}}
            if judged
            else {}
        ),
        "errors": dict(sorted(errors.items())),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "elapsed_s": round(elapsed_s, 3),
    }
    if relay_priced:
        report["relay_cost_usd"] = usd(relay_cost)
        # Flag more than a cent or 1% apart: rounding on either side stays well inside that.
        gap = abs(relay_cost - total.cost)
        report["relay_cost_disagrees"] = bool(gap > Decimal("0.01") or gap > total.cost / 100)
    if mismatched:
        # Reasoning billed outside completion_tokens (a total above prompt + completion): billed as the larger.
        report["usage_mismatch"] = {"requests": mismatched}
    if unconfirmed["requests"]:
        # Sent but unanswered (timeouts, dropped connections): possibly billed, usage unknown.
        report["unconfirmed"] = unconfirmed
    if unreported["requests"]:
        # Answered, but the relay's usage was missing or unbelievable: counted offline instead.
        unreported["estimated_cost_usd"] = usd(unreported_cost)
        report["unreported"] = unreported
    if budget_usd is not None:
        report["budget_usd"] = float(budget_usd)
    return report


def report_markdown(report: Mapping[str, Any]) -> str:
    """cost_report.md: the same figures, for a pull request or a CI summary."""
    jobs = report["jobs"]
    tokens = report["tokens"]
    lines = [
        f"# Cost report ({'estimate' if report.get('estimated') else 'billed'}), {report['model']}",
        "",
        f"- Jobs: {jobs.get('total', 0):,} total, {jobs.get('succeeded', 0):,} succeeded, "
        f"{jobs.get('failed', 0):,} failed, {jobs.get('up_to_date', 0):,} up to date",
        f"- Requests: {report['requests']:,}",
        f"- Tokens: {tokens['input']:,} input ({tokens['cached_input']:,} cached), {tokens['output']:,} output"
        + (f" ({tokens['reasoning']:,} reasoning)" if tokens.get("reasoning") else ""),
        f"- Cost: ${report['cost_usd']:,.6f}",
    ]
    rate = report.get("rate") or {}
    if rate.get("effective_rpm"):
        lines.append(
            f"- Rate: {rate['effective_rpm'] / 60:.1f} requests/s effective, settled at "
            f"{rate['final_rpm'] / 60:.1f}/s ({rate.get('source', 'configured')}); "
            f"{rate.get('slowdowns', 0)} slowdowns, {rate.get('rate_limited', 0)} rate-limit 429s "
            f"({rate.get('stray_429s', 0)} stray), {rate.get('overload_retries', 0)} overload retries"
        )
    if "relay_cost_usd" in report:
        flag = " (disagrees with ours)" if report.get("relay_cost_disagrees") else ""
        lines.append(f"- Relay's own figure: ${report['relay_cost_usd']:,.6f}{flag}")
    if report.get("unconfirmed"):
        gone = report["unconfirmed"]
        lines.append(
            f"- Not in the totals: {gone['requests']:,} requests got no answer after sending; the relay may have "
            f"billed them (about {gone['counted_input_tokens']:,} input tokens plus their answers)"
        )
    if report.get("unreported"):
        gone = report["unreported"]
        lines.append(
            f"- Not in the totals: {gone['requests']:,} answers came without usage the relay could be held to; "
            f"counted offline they are {gone['counted_input_tokens']:,} input and {gone['counted_output_tokens']:,} "
            f"output tokens, about ${gone['estimated_cost_usd']:,.6f}"
        )
    judge = (report.get("by_purpose") or {}).get("judge")
    if judge:
        lines.append(
            f"- Judge: {judge['jobs']:,} listings judged in {judge['requests']:,} requests, "
            f"${judge['cost_usd']:,.6f} of the cost"
        )
    if report.get("errors"):
        lines.append("- Errors: " + ", ".join(f"{kind} {count}" for kind, count in report["errors"].items()))
    for section, title in (
        ("by_locale", "Locale"),
        ("by_platform", "Platform"),
        ("by_resource_type", "Resource type"),
        ("by_user", "User"),
    ):
        entries = report.get(section) or {}
        if not entries or (section == "by_user" and list(entries) == ["(none)"]):
            continue
        lines += [
            "",
            f"| {title} | Jobs | Requests | Input | Cached | Output | Cost (USD) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, entry in entries.items():
            t = entry["tokens"]
            lines.append(
                f"| {key} | {entry['jobs']:,} | {entry['requests']:,} | {t['input']:,} | {t['cached_input']:,} | "
                f"{t['output']:,} | {entry['cost_usd']:,.6f} |"
            )
    return "\n".join(lines) + "\n"


def _usage_fields(usage: Any) -> dict[str, int]:
    if not isinstance(usage, Mapping):
        return {}
    return {
        "input_tokens": _count(usage.get("input")),
        "cached_tokens": _count(usage.get("cached_input")),
        "output_tokens": _count(usage.get("output")),
        "reasoning_tokens": _count(usage.get("reasoning")),
    }


# An audit log is read back by `localize report` long after it was written, perhaps by an older
# version or after a crash: a value that is not what we write counts as nothing, never a crash.
_MAX_LOGGED_TOKENS = 10_000_000


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_LOGGED_TOKENS:
        return value
    return 0


def _money(value: Any) -> Decimal:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        amount = Decimal(str(value))
        if amount.is_finite() and 0 <= amount <= 1_000_000:
            return amount
    return Decimal(0)


def _percentile(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)) - 1, 0)
    return round(ordered[rank], 1)

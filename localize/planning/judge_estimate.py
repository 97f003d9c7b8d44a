"""The dry run's price of the quality judge (--judge): which listings a run would judge (those
it writes or finds unjudged, as the judge chooses them) and what judging them costs at the
judge's price. Listings a run will mark with a warning cannot be known before it, so the
estimate counts the sample (or all) and says the warned ones come on top."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..checking.quality import (
    JUDGE_OUTPUT_TOKENS,
    JUDGE_PACK,
    JUDGE_SYSTEM,
    judged_source,
    listing_fields,
    sampled,
    why_judged,
)
from ..cost import Price, TokenCounter, Usage, chat_prompt_tokens, cost_usd, usd
from .prompts import data_json

if TYPE_CHECKING:
    from ..config import Settings
    from ..output.store import RunStore
    from .jobs import Job

# A listing's tags and ids around its source and listing in the judge's request.
BLOCK_TOKENS = 30


@dataclass(slots=True)
class _Group:
    system_tokens: int
    listings: int = 0
    tokens: int = 0  # its listings' sources and listings, as the request holds them

    @property
    def requests(self) -> int:
        return -(-self.listings // JUDGE_PACK)


@dataclass(slots=True)
class JudgeEstimate:
    """What --judge would ask, per (platform, locale), and its price."""

    model: str
    price: Price
    mode: str
    rate: float
    groups: dict[tuple[str, str], _Group] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings, price: Price) -> JudgeEstimate | None:
        if settings.judge == "off":
            return None
        return cls(settings.judge_model or settings.model, price, settings.judge, settings.judge_sample)

    def written(self, job: Job, listing_tokens: int, counter: TokenCounter) -> None:
        """A listing the run writes: judged if all are, or it falls in the sample."""
        if self.mode == "all" or sampled(job.key, self.rate):
            self._add(job, listing_tokens, counter)

    def kept(self, job: Job, store: RunStore | None, counter: TokenCounter) -> None:
        """A listing OUT holds already: judged if the judge would choose it (not judged yet)."""
        line = store.result(job.key) if store is not None else None
        if line is not None and why_judged(line, mode=self.mode, rate=self.rate, model=self.model) is not None:
            self._add(job, counter.count(json.dumps(listing_fields(line), ensure_ascii=False)), counter)

    def _add(self, job: Job, listing_tokens: int, counter: TokenCounter) -> None:
        key = (job.platform, job.locale.tag)
        group = self.groups.get(key)
        if group is None:
            system = JUDGE_SYSTEM.format(platform=job.platform, language=job.locale.display_name, locale=job.locale.tag)
            group = self.groups[key] = _Group(counter.count(system))
        group.listings += 1
        group.tokens += counter.count(data_json(judged_source(job.product, job.locale))) + listing_tokens + BLOCK_TOKENS

    def report(self) -> dict[str, Any]:
        """The dry run's `judge` entry: listings, requests, tokens and the expected cost."""
        usage = Usage()
        listings = requests = 0
        for group in self.groups.values():
            listings += group.listings
            requests += group.requests
            frames = group.requests * chat_prompt_tokens([group.system_tokens, 0])
            usage += Usage(input_tokens=frames + group.tokens, output_tokens=JUDGE_OUTPUT_TOKENS * group.listings)
        return {
            "model": self.model,
            "mode": self.mode,
            "sample": self.rate if self.mode == "sample" else None,
            "listings": listings,
            "requests": requests,
            "tokens": usage.as_dict(),
            "cost_usd": usd(cost_usd(usage, self.price)),
            # With --batch the judge's requests go in a batch too, at its price (where it has one).
            "batch_cost_usd": usd(cost_usd(usage, self.price.batch)) if self.price.batch else None,
            "note": "listings with warnings are judged too; how many is known only once the run writes them"
            if self.mode == "sample"
            else None,
        }

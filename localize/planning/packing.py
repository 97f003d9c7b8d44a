"""Several products of one (platform, locale) in one request: reading the packed answer, and
sharing the request's bill among the jobs it served.

The request itself is rendered by `PromptSet.render_pack` (the wire contract); how many
products share it, and how long an answer it asks for, is `AnswerRoom`'s to say, from the
answer lengths the platform's rules ask for and the model's output limit.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..checking.validate import InvalidAnswer, parse_answer
from ..config import DEFAULT_MAX_TOKENS
from ..cost import OUTPUT_HIGH_FACTOR, Price, Usage
from .prompts import fence_id
from .rules import PlatformRules

# Keys, quotes, brackets and commas of the answer's JSON, plus per-item punctuation.
ANSWER_JSON_TOKENS = 24
ANSWER_TOKENS_PER_ITEM = 3

PACK_SHAPE = '{"listings": {"<id>": {"id": "<id>", ...}, ...}}'

Item = TypeVar("Item")


class Packs(Generic[Item]):
    """Items filled into one pack per key (a platform and locale), in the order they come: a
    pack is let go as soon as it holds its size, the rest when there are no more items."""

    def __init__(self) -> None:
        self._filling: dict[Hashable, list[Item]] = {}

    def add(self, key: Hashable, item: Item, size: int) -> list[Item] | None:
        """The key's pack, when this item fills it; None while it is filling."""
        pack = self._filling.setdefault(key, [])
        pack.append(item)
        return self._filling.pop(key) if len(pack) >= size else None

    def rest(self) -> Iterator[list[Item]]:
        """The packs not yet full."""
        filling, self._filling = self._filling, {}
        yield from filling.values()


def read_pack(content: str, finish_reason: str | None, ids: Sequence[str]) -> dict[str, object]:
    """Each id's listing in a packed answer (None where the answer has none), or InvalidAnswer
    when the answer fails as a whole (cut off, not JSON, not the packed shape, an id twice).

    A listing stands under its id exactly as written in its fence (escaped), nothing looser:
    ids that differ only by escaping or Unicode normalisation must never take each other's
    listing. The "id" a listing repeats inside it must be the one it stands under; a listing
    that names another product is that product's, written in the wrong place: InvalidListing."""
    data = parse_answer(content, finish_reason)
    listings = data.get("listings")
    if not isinstance(listings, dict):
        raise InvalidAnswer("schema", f"the answer must be one JSON object {PACK_SHAPE}, keyed by the products' ids")
    found: dict[str, object] = {}
    for product_id in ids:
        fenced = fence_id(product_id)
        listing = listings.get(fenced)
        if isinstance(listing, dict) and "id" in listing:
            listing = dict(listing)
            echoed = listing.pop("id")
            if echoed != fenced:
                listing = InvalidListing(
                    "mixed_up",
                    f"the listing under {fenced!r} says it is for {echoed!r}: write each product's own listing",
                )
        found[product_id] = listing
    if all(listing is None for listing in found.values()):
        named = ", ".join(repr(key) for key in list(listings)[:3]) or "none"
        raise InvalidAnswer("schema", f"the answer has no listing under any product's id (its keys: {named})")
    return found


class InvalidListing(InvalidAnswer):
    """One listing of a packed answer that cannot be its product's (raised when it is judged)."""


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights`, in whole units that sum to exactly `total`
    (largest remainders first; equal shares where every weight is 0)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    shares = [total * weight // whole for weight in weights]
    left = total - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for index in by_remainder[:left]:
        shares[index] += 1
    return shares


def split_usage(usage: Usage, input_weights: Sequence[int], output_weights: Sequence[int]) -> list[Usage]:
    """A request's billed usage shared among its jobs: input (cached and not) by each job's
    share of the prompt, output by its share of the answer. The shares sum to the bill."""
    cached = apportion(usage.cached_tokens, input_weights)
    uncached = apportion(usage.input_tokens - usage.cached_tokens, input_weights)
    output = apportion(usage.output_tokens, output_weights)
    reasoning = apportion(usage.reasoning_tokens, output_weights)
    return [Usage(c + u, c, o, r) for c, u, o, r in zip(cached, uncached, output, reasoning, strict=True)]


def expected_output_tokens(rules: PlatformRules, tokens_per_char: float) -> int:
    """Tokens of an answer that meets the prompt's target lengths."""
    chars = 0
    items = 0
    for rule in rules.fields().values():
        count = rule.expected_items
        chars += rule.target_chars * count
        items += count
    return math.ceil(chars * tokens_per_char) + ANSWER_JSON_TOKENS + ANSWER_TOKENS_PER_ITEM * items


# --pack auto never puts more products in one request. Chosen by measurement (bench/pack_ceiling.py,
# bench/RESULTS.md): the requests a job needs keep falling to about 20-24 and then flatten, while
# the answers that break grow with the pack and are paid for whole; 20 is the smallest ceiling
# that brings five locales of 10,000 products under an hour at 60 RPM (16: 61 minutes).
PACK_MAX = 20
# A listing's key in a packed answer (its id, quotes, colon, comma).
PACK_TOKENS_PER_LISTING = 12
# A product's id in its packed fence (<product_data id="…">), on average.
PACK_ID_TOKENS = 6
# Room a thinking model keeps for its reasoning, on top of the listings (KIMI.md §4, §7: >= 16k).
REASONING_ROOM = 16384


def listing_budget(rules: PlatformRules, tokens_per_char: float) -> int:
    """Output tokens one listing may take in a packed answer: the high estimate (answers
    OUTPUT_HIGH_FACTOR as long as the targets) and its key."""
    return math.ceil(expected_output_tokens(rules, tokens_per_char) * OUTPUT_HIGH_FACTOR) + PACK_TOKENS_PER_LISTING


@dataclass(frozen=True, slots=True)
class AnswerRoom:
    """How long an answer a request may ask for: `--max-tokens` when given (every request asks
    exactly it), else the model's output limit (prices.yaml `max_output_tokens`), less the room
    its reasoning needs when it thinks; a model with no known limit keeps DEFAULT_MAX_TOKENS."""

    limit: int
    fixed: bool = False
    reasoning: int = 0

    @classmethod
    def of(cls, max_tokens: int | None, price: Price | None, *, thinking: bool) -> AnswerRoom:
        reasoning = REASONING_ROOM if price is not None and price.thinks and thinking else 0
        if max_tokens is not None:
            return cls(max_tokens, fixed=True)
        limit = price.max_output_tokens if price is not None and price.max_output_tokens else DEFAULT_MAX_TOKENS
        return cls(limit, reasoning=min(reasoning, limit // 2))

    def pack_size(self, setting: int | str, per_listing: int, spread: tuple[int, int] | None = None) -> int:
        """`--pack N` as given; `auto`: as many products as fit even when every answer is as
        long as the high estimate, at most PACK_MAX; and with `spread` (a live run's jobs, and
        the requests it keeps in flight) no more than leave it a request for each place in
        flight: 26 jobs at 16 in flight go as 13 requests of two, written at once, not as two
        of 13 written one after another. Only small runs meet it (past 16 x 20 jobs, PACK_MAX)."""
        if setting != "auto":
            return int(setting)
        room = self.limit - self.reasoning - ANSWER_JSON_TOKENS
        size = min(PACK_MAX, room // max(per_listing, 1))
        if spread is not None:
            jobs, in_flight = spread
            size = min(size, -(-jobs // max(in_flight, 1)))
        return max(1, size)

    def max_tokens(self, listings: int, per_listing: int) -> int:
        """What a request of `listings` products asks for its answer: its listings at the high
        estimate and the reasoning room, never under DEFAULT_MAX_TOKENS nor over the limit."""
        if self.fixed:
            return self.limit
        wanted = listings * per_listing + ANSWER_JSON_TOKENS + self.reasoning
        return min(self.limit, max(DEFAULT_MAX_TOKENS, wanted))

"""Several products of one (platform, locale) in one request: reading the packed answer, and
sharing the request's bill among the jobs it served.

The request itself is rendered by `PromptSet.render_pack` (the wire contract); how many
products share it is `estimate.pack_size`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .cost import Usage
from .prompts import fence_id
from .validate import InvalidAnswer, parse_answer

PACK_SHAPE = '{"listings": {"<id>": {"id": "<id>", ...}, ...}}'


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
    return [Usage(c + u, c, o) for c, u, o in zip(cached, uncached, output, strict=True)]

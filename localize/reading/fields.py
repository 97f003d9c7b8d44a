"""Which catalog columns reach the model.

Shop exports carry far more than copy: prices, stock flags, image links, tax classes, dates,
review switches. Sent to the model they cost input tokens and invite it to copy noise, so by
default a column stays out when its name says it is not copy, or when its value is only a link
or a yes/no. `--fields` (or `fields:` in localize.yaml) decides otherwise: `name,description`
sends only those (and the row's id), `-brand` leaves a column out, `+price` lets one in.

Customers' data and promotions stay out too: reviewer names and ids, review titles and bodies,
ratings and their counts (personal data a third party need not see, and claims a listing must
not copy), discounts, sale and promotion fields, coupons (they change by the week).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Column names that are not copy: what a shop tracks about a product, not what a shopper reads.
NOT_COPY = re.compile(
    r"price|cost|stock|qty|quantity|inventory|backorder|url|link|image|img|photo|picture|media|asset|thumbnail|"
    r"date|time|created|updated|modified|tax|shipping|barcode|gtin|ean|upc|isbn|asin|mpn|"
    r"status|visib|published|featured|enabled|sold individually|download|reviews|rating|position|"
    r"menu order|grouped|upsell|cross-sell|button text|purchase note|external|parent|"
    r"(^|[\s_-])id$|^type$|^handle$",
    re.IGNORECASE,
)
# Customers' data and promotions: named apart in the dry run.
PRIVATE_OR_PROMOTION = re.compile(
    r"review|rating|customer|buyer|(^|[\s_-])user([\s_-]|$)|discount|(^|[\s_-])sale([\s_-]|$)|on[\s_-]?sale|"
    r"promo|coupon|voucher|(^|[\s_-])deal",
    re.IGNORECASE,
)
_LINK = re.compile(r"^(https?://|www\.)\S+$", re.IGNORECASE)
_YES_NO = frozenset({"yes", "no", "true", "false", "0", "1", "y", "n"})
# Our own fields are always copy, whatever their names look like.
_OURS = frozenset({"name", "description", "features", "keywords", "category", "brand", "tone", "options", "material"})


@dataclass(frozen=True, slots=True)
class FieldSelection:
    """`--fields`: columns sent only (`only`), let in despite the defaults (`allow`), kept out
    (`deny`)."""

    only: frozenset[str] = frozenset()
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    every: bool = False  # every column kept (what a shop's import file reads: price, stock)

    @classmethod
    def parse(cls, value: str | Iterable[str] | None) -> FieldSelection:
        items = value.split(",") if isinstance(value, str) else list(value or ())
        only, allow, deny = set(), set(), set()
        for item in (str(item).strip() for item in items):
            if not item:
                continue
            if item.startswith("-"):
                deny.add(item[1:].strip())
            elif item.startswith("+"):
                allow.add(item[1:].strip())
            else:
                only.add(item)
        return cls(frozenset(only), frozenset(allow), frozenset(deny))

    def keeps(self, name: str, value: Any) -> bool:
        """Whether a descriptive column reaches the model."""
        if self.every:
            return True
        if name in self.deny:
            return False
        if name in self.allow or name in self.only:
            return True
        if self.only:
            return False
        return is_copy(name, value)

    def select(self, row: Mapping[str, Any], control: Iterable[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The row with only what reaches the model, plus the columns that steer the run; and
        the names of the columns left out."""
        steering = set(control)
        kept, dropped = {}, []
        for key, value in row.items():
            if key in steering or self.keeps(key, value):
                kept[key] = value
            else:
                dropped.append(key)
        return kept, _names(tuple(dropped))


@lru_cache(maxsize=4096)
def _names(names: tuple[str, ...]) -> tuple[str, ...]:
    """One tuple for each set of dropped names (rows of one file share it)."""
    return names


def left_out_kind(name: str) -> str:
    """Why a column stays out by default, as the dry run says it."""
    return "customers' data and promotions" if PRIVATE_OR_PROMOTION.search(name) else "not copy"


def is_copy(name: str, value: Any) -> bool:
    """A column a shopper reads: not named like shop data, not a bare link or a yes/no."""
    if name in _OURS:
        return True
    if NOT_COPY.search(name) or PRIVATE_OR_PROMOTION.search(name):
        return False
    if isinstance(value, str):
        text = value.strip()
        return not (_LINK.match(text) or text.lower() in _YES_NO)
    return not isinstance(value, bool)

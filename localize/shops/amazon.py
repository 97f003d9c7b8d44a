"""Amazon: a Selling Partner API `JSON_LISTINGS_FEED` (Feeds API, schema version 2.0) from the
amazon platform's listings (`--format amazon`): one PATCH message per SKU replacing
`item_name`, `bullet_point`, `product_description` and `generic_keyword`, each value with the
locale's `language_tag` and the store's `marketplace_id` (../shared/PLATFORMS.md, "Language
tags and marketplaces").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..layout import AMAZON_FEED
from ..store import atomic_write
from .base import Delivery, ImportFile, Shop, ShopFields

if TYPE_CHECKING:
    from ..config import Settings

# Amazon stores by country: marketplace ids (PLATFORMS.md; pulleee/amazonSellerAPI, Roman16/pw-front).
MARKETPLACES = {
    "US": "ATVPDKIKX0DER",
    "CA": "A2EUQ1WTGCTBG2",
    "MX": "A1AM78C64UM0Y8",
    "BR": "A2Q3Y263D00KWC",
    "GB": "A1F83G8C2ARO7P",
    "JP": "A1VC38T7YXB528",
    "IN": "A21TJRUUN4KGV",
    "AU": "A39IBJ37TRP1C6",
    "SG": "A19VAU5U5O7RUS",
    "DE": "A1PA6795UKMFR9",
    "FR": "A13V1IB3VIYZZH",
    "IT": "APJ6JRA9NG5V4",
    "ES": "A1RKKUPIHCS9HS",
    "NL": "A1805IZSGTT6HS",
    "SE": "A2NODRKZP88ZB9",
    "PL": "A1C3SOZRARQ6R3",
    "TR": "A33AVAJ2PDY3EV",
    "AE": "A2VIGQ35RCS4UG",
    "SA": "A17E79C6D8DWNP",
}


class Amazon(Shop):
    name = "amazon"
    title = "Amazon"
    import_format = "amazon"
    files = (AMAZON_FEED,)

    def check(self, settings: Settings, catalog: Path) -> None:
        if not settings.amazon_seller_id:
            raise ConfigError(
                "--format amazon needs your Amazon seller id",
                hint="set amazon_seller_id in localize.yaml or the AMAZON_SELLER_ID environment variable",
            )
        for locale in settings.locales:
            marketplace_for(locale.tag, settings.amazon_marketplaces)  # an unknown store: said before sending

    def write(self, delivery: Delivery) -> list[ImportFile]:
        listings = [ShopFields.of(result) for result in delivery.results if result.get("platform") == "amazon"]
        settings = delivery.settings
        feed = amazon_feed(
            listings, seller_id=settings.amazon_seller_id or "", marketplaces=settings.amazon_marketplaces
        )
        path = delivery.out / AMAZON_FEED
        atomic_write(path, json.dumps(feed, ensure_ascii=False, indent=2) + "\n")
        return [ImportFile(self.name, path, len(feed["messages"]))]


def marketplace_for(tag: str, overrides: Mapping[str, str]) -> str:
    """The Amazon store a locale's listing goes to: localize.yaml's `amazon_marketplaces`, else
    the store of its country."""
    if tag in overrides:
        return overrides[tag]
    country = tag.rsplit("-", 1)[-1].upper()
    if country not in MARKETPLACES:
        raise ConfigError(
            f"no Amazon store known for {tag}",
            where="--format amazon",
            hint=f"name its marketplace id in localize.yaml: amazon_marketplaces: {{{tag}: A...}}",
        )
    return MARKETPLACES[country]


def amazon_feed(listings: Iterable[ShopFields], *, seller_id: str, marketplaces: Mapping[str, str]) -> dict[str, Any]:
    """The JSON_LISTINGS_FEED document: one PATCH per SKU, its values in every locale's store."""
    by_sku: dict[str, list[ShopFields]] = {}
    for listing in listings:
        by_sku.setdefault(listing.sku or listing.id, []).append(listing)
    messages = []
    for number, (sku, versions) in enumerate(sorted(by_sku.items()), start=1):
        values: dict[str, list[dict[str, str]]] = {
            "item_name": [],
            "bullet_point": [],
            "product_description": [],
            "generic_keyword": [],
        }
        for listing in versions:
            where = {
                "language_tag": listing.locale.replace("-", "_"),
                "marketplace_id": marketplace_for(listing.locale, marketplaces),
            }
            values["item_name"].append({"value": listing.title, **where})
            values["bullet_point"] += [{"value": bullet, **where} for bullet in listing.bullets]
            values["product_description"].append({"value": listing.description, **where})
            values["generic_keyword"].append({"value": listing.keywords(" "), **where})
        messages.append(
            {
                "messageId": number,
                "sku": sku,
                "operationType": "PATCH",
                "productType": "PRODUCT",
                "patches": [
                    {"op": "replace", "path": f"/attributes/{name}", "value": value} for name, value in values.items()
                ],
            }
        )
    return {"header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"}, "messages": messages}

"""Amazon: Selling Partner API `JSON_LISTINGS_FEED` documents (Feeds API, schema version 2.0)
from the amazon platform's listings (`--format amazon`), one per SP-API region (NA, EU, FE: each
its own endpoint, often its own seller account): OUT/amazon/NA.json, EU.json, FE.json.

Each message names the seller's own SKU (never the ASIN) and the product's real product type
(from the catalog or `amazon_product_types:`; the generic "PRODUCT" type requires attributes a
listing does not carry). By default it PATCHes an existing listing: `replace` on `item_name`,
`bullet_point`, `product_description` and `generic_keyword`, each value with the locale's
`language_tag` and the store's `marketplace_id`, and nothing else (../shared/PLATFORMS.md).
`amazon_operation: update` writes UPDATE messages (`requirements: LISTING`, the same attributes)
for listings that do not exist yet: an UPDATE replaces the whole listing.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..output.layout import AMAZON_DIR, AMAZON_FEED
from ..output.store import atomic_write
from .base import Delivery, ImportFile, ProductRows, Shop, ShopFields, ShopOption, locale_map, one_of, text, text_map

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


# SP-API regions by store country (PLATFORMS.md, "Regions").
REGIONS = {
    **dict.fromkeys(("US", "CA", "MX", "BR"), "NA"),
    **dict.fromkeys(("GB", "DE", "FR", "IT", "ES", "NL", "SE", "PL", "BE", "TR", "AE", "SA", "EG", "IN"), "EU"),
    **dict.fromkeys(("JP", "AU", "SG"), "FE"),
}
# The catalog columns that may hold a product's Amazon product type, in the order they are read.
TYPE_FIELDS = ("product_type", "feed_product_type", "item_type")
_ASIN = re.compile(r"^B0[0-9A-Z]{8}$")
TEXT_ATTRIBUTES = ("item_name", "bullet_point", "product_description", "generic_keyword")
NAMED = 5  # products named one by one in an error; the rest are counted


def _regions(value: object) -> dict[str, str]:
    found = text_map(value)
    for region in found:
        if region not in ("NA", "EU", "FE"):
            raise ValueError(f"keys are SP-API regions: NA, EU or FE, not {region!r}")
    return found


# localize.yaml: the feed header's sellerId (every region), or one per region's account; the
# product type of a category's products that have none; patch (existing listings) or update
# (whole new ones); a locale's marketplace id beside the built-in table.
OPTIONS = (
    ShopOption("amazon_seller_id", text, lambda: None, env="AMAZON_SELLER_ID"),
    ShopOption("amazon_seller_ids", _regions, dict),
    ShopOption("amazon_product_types", text_map, dict),
    ShopOption("amazon_operation", one_of("patch", "update"), lambda: "patch"),
    ShopOption("amazon_marketplaces", locale_map, dict),
)


class Amazon(Shop):
    name = "amazon"
    title = "Amazon"
    import_format = "amazon"
    platform = "amazon"
    files = (AMAZON_DIR, AMAZON_FEED)  # the single feed of an earlier version goes too
    options = OPTIONS

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        """Every store known, every region's seller id given, every product with its product
        type and its seller SKU: said before anything is sent."""
        marketplaces, types = (
            self.setting(settings, "amazon_marketplaces"),
            self.setting(settings, "amazon_product_types"),
        )
        for locale in settings.locales:
            marketplace_for(locale.tag, marketplaces)  # an unknown store: said before sending
        for region in sorted({region_of(locale.tag) for locale in settings.locales}):
            self.seller_id(settings, region)
        untyped, asins = [], []
        for product_id, fields in products("amazon"):
            if not product_type(fields, types):
                untyped.append(product_id)
            if not str(fields.get("sku") or "").strip() and _ASIN.match(product_id):
                asins.append(product_id)
        if untyped:
            raise ConfigError(
                f"--format amazon needs each product's Amazon product type: {_named(untyped)} have none",
                where=str(catalog),
                hint="add a product_type column (the type Seller Central shows, e.g. HEADPHONES), map one with "
                "--map product_type=COLUMN, or set amazon_product_types: {CATEGORY: TYPE} in localize.yaml",
            )
        if asins:
            raise ConfigError(
                f"--format amazon needs your seller SKU; {_named(asins)} have an ASIN as their id and no SKU",
                where=str(catalog),
                hint="add a sku column with your own SKUs (or --map sku=COLUMN): a feed names SKUs, never ASINs",
            )

    def write(self, delivery: Delivery) -> list[ImportFile]:
        settings = delivery.settings
        folder = delivery.out / AMAZON_DIR
        if folder.exists():
            shutil.rmtree(folder)  # a region no longer asked for must not stay behind
        (delivery.out / AMAZON_FEED).unlink(missing_ok=True)
        folder.mkdir()
        by_category = self.setting(settings, "amazon_product_types")
        types = {pid: product_type(fields, by_category) for pid, fields in delivery.products("amazon")}
        by_region: dict[str, list[ShopFields]] = {}
        for result in delivery.results:
            if result.get("platform") == "amazon":
                listing = ShopFields.of(result)
                by_region.setdefault(region_of(listing.locale), []).append(listing)
        written = []
        for region, listings in sorted(by_region.items()):
            feed = amazon_feed(
                listings,
                seller_id=self.seller_id(settings, region),
                marketplaces=self.setting(settings, "amazon_marketplaces"),
                product_types=types,
                operation=self.setting(settings, "amazon_operation"),
            )
            path = folder / f"{region}.json"
            atomic_write(path, json.dumps(feed, ensure_ascii=False, indent=2) + "\n")
            written.append(
                ImportFile(self.name, path, len(feed["messages"]), notes=[f"submit to the {region} endpoint"])
            )
        return written

    def seller_id(self, settings: Settings, region: str) -> str:
        """The seller id of a region: `amazon_seller_ids: {EU: …}`, else the one for all regions."""
        found = self.setting(settings, "amazon_seller_ids").get(region) or self.setting(settings, "amazon_seller_id")
        if not found:
            raise ConfigError(
                "--format amazon needs your Amazon seller id",
                hint=f"set amazon_seller_id (every region) or amazon_seller_ids: {{{region}: A...}} (the {region} "
                "region's account) in localize.yaml, or the AMAZON_SELLER_ID environment variable",
            )
        return str(found)


def region_of(tag: str) -> str:
    """The SP-API region serving a locale's store."""
    return REGIONS.get(tag.rsplit("-", 1)[-1].upper(), "NA")


def product_type(fields: Mapping[str, Any], by_category: Mapping[str, str]) -> str | None:
    """A product's Amazon product type: its own column, else the one localize.yaml maps its category to."""
    lowered = {str(name).lower(): value for name, value in fields.items()}
    for name in TYPE_FIELDS:
        value = str(lowered.get(name) or "").strip()
        if value:
            return value
    category = lowered.get("category")
    categories = category if isinstance(category, (list, tuple)) else [category]
    return next((by_category[str(item)] for item in categories if str(item) in by_category), None)


def _named(ids: list[str]) -> str:
    shown = ", ".join(ids[:NAMED]) + (f" and {len(ids) - NAMED:,} more" if len(ids) > NAMED else "")
    return f"{len(ids):,} product{'' if len(ids) == 1 else 's'} ({shown})"


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


def amazon_feed(
    listings: Iterable[ShopFields],
    *,
    seller_id: str,
    marketplaces: Mapping[str, str],
    product_types: Mapping[str, str | None],
    operation: str = "patch",
) -> dict[str, Any]:
    """One region's JSON_LISTINGS_FEED document: a message per seller SKU, its text in every
    locale's store of the region."""
    by_sku: dict[str, list[ShopFields]] = {}
    for listing in listings:
        by_sku.setdefault(listing.sku or listing.id, []).append(listing)
    messages: list[dict[str, Any]] = []
    for number, (sku, versions) in enumerate(sorted(by_sku.items()), start=1):
        values: dict[str, list[dict[str, str]]] = {name: [] for name in TEXT_ATTRIBUTES}
        for listing in versions:
            where = {
                "language_tag": listing.locale.replace("-", "_"),
                "marketplace_id": marketplace_for(listing.locale, marketplaces),
            }
            values["item_name"].append({"value": listing.title, **where})
            values["bullet_point"] += [{"value": bullet, **where} for bullet in listing.bullets]
            values["product_description"].append({"value": listing.description, **where})
            values["generic_keyword"].append({"value": listing.keywords(" "), **where})
        message: dict[str, Any] = {
            "messageId": number,
            "sku": sku,
            "operationType": "UPDATE" if operation == "update" else "PATCH",
            "productType": product_types.get(versions[0].id) or "",
        }
        if operation == "update":
            message["requirements"] = "LISTING"
            message["attributes"] = values
        else:
            message["patches"] = [
                {"op": "replace", "path": f"/attributes/{name}", "value": value} for name, value in values.items()
            ]
        messages.append(message)
    return {"header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"}, "messages": messages}

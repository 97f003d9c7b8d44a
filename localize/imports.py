"""Each shop's own import file, written from the results (`--format amazon,woocommerce`).

- amazon: a Selling Partner API `JSON_LISTINGS_FEED` (Feeds API, schema version 2.0): one PATCH
  message per SKU replacing `item_name`, `bullet_point`, `product_description` and
  `generic_keyword`, each value with the locale's `language_tag` and the store's
  `marketplace_id` (../shared/PLATFORMS.md, "Language tags and marketplaces").
- magento: the product import CSV (System → Data Transfer → Import, entity "Products"), one row
  per SKU and store view, store-view attributes only: `sku, store_view_code, name, description,
  short_description, meta_title, meta_keywords, meta_description`; the store view of each locale
  comes from `magento_store_views` in localize.yaml.
- akeneo: a product CSV (`;`-separated) with the identifier and `{code}-{locale}[-{channel}]`
  columns, for the attributes the source export shows as localizable, in every target locale.
- woocommerce: per locale, a CSV in WooCommerce's product importer columns (`ID`, `SKU`, `Name`,
  `Short description`, `Description`, `Tags`), which WPML's and Polylang's importers take as a
  translation of the products with those IDs.

Files of a format the run does not ask for are removed, so OUT never holds one that no longer
matches results.jsonl.
"""

from __future__ import annotations

import csv
import html
import io
import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .layout import AKENEO_FILE, AMAZON_FEED, MAGENTO_FILE, WOOCOMMERCE_DIR
from .sanitize import clean_html, plain_text, safe_row
from .store import atomic_write

# The --format values that are a shop's import file (written from every result).
IMPORT_FORMATS = frozenset({"amazon", "woocommerce", "magento", "akeneo"})
MAGENTO_COLUMNS = (
    "sku",
    "store_view_code",
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_keywords",
    "meta_description",
)
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
WOOCOMMERCE_COLUMNS = ("ID", "SKU", "Name", "Short description", "Description", "Tags")


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


def amazon_feed(results: Iterable[Mapping[str, Any]], *, seller_id: str, marketplaces: Mapping[str, str]) -> str:
    """The JSON_LISTINGS_FEED document: one PATCH per SKU, its values in every locale's store."""
    by_sku: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        by_sku.setdefault(str(result.get("sku") or result["id"]), []).append(result)
    messages = []
    for number, (sku, listings) in enumerate(sorted(by_sku.items()), start=1):
        values: dict[str, list[dict[str, str]]] = {
            "item_name": [],
            "bullet_point": [],
            "product_description": [],
            "generic_keyword": [],
        }
        for listing in listings:
            where = {
                "language_tag": str(listing["locale"]).replace("-", "_"),
                "marketplace_id": marketplace_for(str(listing["locale"]), marketplaces),
            }
            values["item_name"].append({"value": listing["title"], **where})
            values["bullet_point"] += [{"value": bullet, **where} for bullet in listing.get("bullets") or []]
            values["product_description"].append({"value": listing["description"], **where})
            values["generic_keyword"].append({"value": " ".join(listing.get("seo_tags") or []), **where})
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
    feed = {"header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"}, "messages": messages}
    return json.dumps(feed, ensure_ascii=False, indent=2) + "\n"


def woocommerce_csv(results: Iterable[Mapping[str, Any]]) -> str:
    """One locale's listings in WooCommerce's importer columns: the highlights as the short
    description's list, the search tags as product tags."""
    buffer = io.StringIO()
    writer = _SafeWriter(buffer)
    writer.writerow(WOOCOMMERCE_COLUMNS)
    for result in results:
        bullets = "".join(f"<li>{html.escape(str(item))}</li>" for item in result.get("bullets") or [])
        writer.writerow(
            [
                result["id"],
                result.get("sku") or "",
                result["title"],
                f"<ul>{bullets}</ul>" if bullets else "",
                result["description"],
                ", ".join(result.get("seo_tags") or []),
            ]
        )
    return buffer.getvalue()


def magento_csv(results: Iterable[Mapping[str, Any]], store_views: Mapping[str, str]) -> str:
    """The listings as Magento's import reads store-view values: the highlights as the short
    description's list, the SEO fields where the platform wrote them."""
    buffer = io.StringIO()
    writer = _SafeWriter(buffer)
    writer.writerow(MAGENTO_COLUMNS)
    for result in results:
        extra = result.get("extra") or {}
        bullets = "".join(f"<li>{html.escape(str(item))}</li>" for item in result.get("bullets") or [])
        writer.writerow(
            [
                result.get("sku") or result["id"],
                store_views[str(result["locale"])],
                result["title"],
                result["description"],
                f"<ul>{bullets}</ul>" if bullets else "",
                extra.get("seo_title") or result["title"],
                ", ".join(result.get("seo_tags") or []),
                extra.get("seo_description") or "",
            ]
        )
    return buffer.getvalue()


# The attribute codes a listing fills (other localizable attributes are left to the PIM).
AKENEO_CODES = frozenset(
    {"name", "title", "description", "short_description", "meta_title", "meta_description", "keywords", "meta_keywords"}
)


def _akeneo_value(code: str, result: Mapping[str, Any]) -> str:
    """A listing's value for one of AKENEO_CODES."""
    extra = result.get("extra") or {}
    bullets = "".join(f"<li>{html.escape(str(item))}</li>" for item in result.get("bullets") or [])
    values: dict[str, str] = {
        "name": result["title"],
        "title": result["title"],
        "description": result["description"],
        "short_description": f"<ul>{bullets}</ul>" if bullets else "",
        "meta_title": extra.get("seo_title") or result["title"],
        "meta_description": extra.get("seo_description") or "",
        "keywords": ", ".join(result.get("seo_tags") or []),
        "meta_keywords": ", ".join(result.get("seo_tags") or []),
    }
    return values[code]


def akeneo_csv(results: Iterable[Mapping[str, Any]], attributes: list[tuple[str, str | None]]) -> str:
    """One row per product: its identifier, then each localizable attribute we write, per locale."""
    listings = list(results)
    locales = sorted({str(result["locale"]) for result in listings})
    written = [(code, channel) for code, channel in attributes if code in AKENEO_CODES]
    columns = [
        f"{code}-{locale.replace('-', '_')}" + (f"-{channel}" if channel else "")
        for code, channel in written
        for locale in locales
    ]
    by_product: dict[str, dict[str, str]] = {}
    for result in listings:
        cells = by_product.setdefault(str(result.get("sku") or result["id"]), {})
        for code, channel in written:
            column = f"{code}-{str(result['locale']).replace('-', '_')}" + (f"-{channel}" if channel else "")
            cells[column] = _akeneo_value(code, result)
    buffer = io.StringIO()
    writer = _SafeWriter(buffer, delimiter=";")
    writer.writerow(["sku", *columns])
    for sku, cells in sorted(by_product.items()):
        writer.writerow([sku, *(cells.get(column, "") for column in columns)])
    return buffer.getvalue()


def write_imports(
    out: Path,
    formats: Iterable[str],
    results: list[Mapping[str, Any]],
    *,
    seller_id: str | None,
    marketplaces: Mapping[str, str],
    store_views: Mapping[str, str] | None = None,
    akeneo_attributes: list[tuple[str, str | None]] | None = None,
) -> list[Path]:
    """Write the import files asked for from the run's results (amazon from the amazon
    platform's; the shop formats from the shopify platform's, else the only platform's), and
    remove those not asked for. Returns the files written."""
    formats = set(formats)
    written = []
    results = [shop_safe(result) for result in results]
    # The formats written as one file: its name, and how it is made (only when asked for).
    single: dict[str, tuple[str, Callable[[], str]]] = {
        "amazon": (
            AMAZON_FEED,
            lambda: amazon_feed(
                [result for result in results if result.get("platform") == "amazon"],
                seller_id=seller_id or "",
                marketplaces=marketplaces,
            ),
        ),
        "magento": (MAGENTO_FILE, lambda: magento_csv(shop_listings(results), store_views or {})),
        "akeneo": (AKENEO_FILE, lambda: akeneo_csv(shop_listings(results), akeneo_attributes or [])),
    }
    for name, (file_name, make) in single.items():
        path = out / file_name
        if name in formats:
            atomic_write(path, make())
            written.append(path)
        else:
            path.unlink(missing_ok=True)
    folder = out / WOOCOMMERCE_DIR
    if "woocommerce" in formats:
        listings = shop_listings(results)
        if folder.exists():
            shutil.rmtree(folder)  # a locale no longer asked for must not stay behind
        folder.mkdir()
        for locale in sorted({str(result["locale"]) for result in listings}):
            path = folder / f"{locale}.csv"
            atomic_write(path, woocommerce_csv(result for result in listings if result["locale"] == locale))
            written.append(path)
    elif folder.exists():
        shutil.rmtree(folder)
    return written


class _SafeWriter:
    """csv.writer whose cells a spreadsheet shows as text (sanitize.safe_cell): an ID, SKU or
    text from the catalog that starts like a formula gets a leading apostrophe."""

    def __init__(self, buffer: io.StringIO, **options: Any) -> None:
        self._writer = csv.writer(buffer, **options)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow(safe_row(row))


def shop_safe(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """A result as a shop may publish it, whatever results.jsonl holds: the description's HTML
    reduced to what storefronts render (no scripts, handlers, styles or javascript: links), and
    every other field plain text."""
    extra = result.get("extra") or {}
    return {
        **result,
        "title": plain_text(str(result["title"])),
        "description": clean_html(str(result["description"])),
        "bullets": [plain_text(str(item)) for item in result.get("bullets") or []],
        "seo_tags": [plain_text(str(item)) for item in result.get("seo_tags") or []],
        "extra": {name: plain_text(str(value)) for name, value in extra.items()},
    }


def shop_listings(results: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The listings a web shop imports: the shopify platform's (written for a shop's own
    product page), else those of the run's only platform."""
    platforms = {result.get("platform") for result in results}
    chosen = "shopify" if "shopify" in platforms else (next(iter(platforms)) if len(platforms) == 1 else None)
    return [result for result in results if result.get("platform") == chosen]


def require_store_views(formats: Iterable[str], locales: Iterable[str], store_views: Mapping[str, str]) -> None:
    """--format magento writes each locale to a store view: every locale needs one."""
    missing = [tag for tag in locales if tag not in store_views]
    if "magento" in set(formats) and missing:
        example = ", ".join(f"{tag}: {tag.split('-')[0]}" for tag in missing[:2])
        raise ConfigError(
            f"--format magento needs the store view of {', '.join(missing)}",
            hint=f"name them in localize.yaml: magento_store_views: {{{example}}}",
        )


def require_seller_id(formats: Iterable[str], seller_id: str | None) -> None:
    """--format amazon needs the seller id in the feed's header: say so before sending."""
    if "amazon" in set(formats) and not seller_id:
        raise ConfigError(
            "--format amazon needs your Amazon seller id",
            hint="set amazon_seller_id in localize.yaml or the AMAZON_SELLER_ID environment variable",
        )

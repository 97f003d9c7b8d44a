"""Magento 2: its product export (System → Export → Products) read as a catalog, and the
product import CSV (System → Data Transfer → Import, entity "Products") with the listings as
store-view values (`--format magento`).

The export has one row per SKU and store view; the default scope's row (no store_view_code)
is the source copy. A configurable product lists its simple children in
`configurable_variations` ("sku=…,size=M,color=Black|sku=…").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..output.layout import MAGENTO_FILE
from ..output.store import atomic_write
from ..reading.fields import NOT_COPY
from ..reading.textfile import Records, open_file, table_header, table_records
from .base import (
    Delivery,
    ImportFile,
    ProductRows,
    Row,
    Shop,
    ShopOption,
    counted,
    csv_text,
    finish_product,
    formula_keys,
    locale_map,
    lowered,
    multi,
    web_shop_listings,
)

if TYPE_CHECKING:
    from ..config import Settings

MARKERS = ("sku", "store_view_code", "product_type", "name")
# The import's store-view attributes a listing fills.
COLUMNS = (
    "sku",
    "store_view_code",
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_keywords",
    "meta_description",
)


class Magento(Shop):
    name = "magento"
    title = "Magento"
    import_format = "magento"
    platform = "magento"
    files = (MAGENTO_FILE,)
    # The store view each locale's rows are imported into: localize.yaml, and --store-view LOCALE=CODE on top.
    options = (ShopOption("magento_store_views", locale_map, dict, flag="store_view"),)

    def recognises(self, columns: list[str]) -> bool:
        names = {name.lower() for name in columns}
        return all(name in names for name in MARKERS)

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        """One product per default-scope SKU; simple children of a configurable fold into its
        options (and are not products of their own)."""
        products: dict[str, tuple[int, dict[str, Any], dict[str, list[str]]]] = {}
        children: set[str] = set()
        repeated: list[tuple[int, dict[str, Any], dict[str, list[str]]]] = []
        for line, raw in records:
            record = lowered(raw)
            if record.get("store_view_code", "").strip():
                continue  # a store view's translation, not the source
            row: dict[str, Any] = {
                "id": record.get("sku", ""),
                "sku": record.get("sku", ""),
                "name": record.get("name", ""),
                "description": record.get("description", ""),
                "short_description": record.get("short_description", ""),
                "category": multi(record.get("categories", ""), ","),
                "keywords": multi(record.get("meta_keywords", ""), ","),
            }
            options: dict[str, list[str]] = {}
            for name, value in _attribute_pairs(record.get("additional_attributes", "")):
                if not NOT_COPY.search(name):
                    row[name] = value
            for child in multi(record.get("configurable_variations", ""), "|"):
                values = dict(part.partition("=")[::2] for part in child.split(","))
                children.add(values.pop("sku", ""))
                for name, value in values.items():
                    if value and value not in options.setdefault(name, []):
                        options[name].append(value)
            if record.get("weight", "").strip():
                row["weight"] = record["weight"].strip()
            if row["id"] in products:
                repeated.append((line, row, options))  # an SKU again: the catalog names it
                continue
            products[row["id"]] = (line, row, options)
        for sku, (line, row, options) in [*products.items(), *((held[1]["id"], held) for held in repeated)]:
            if sku not in children:
                yield line, finish_product(row, options)

    def parent_of(self, records: Records, row_id: str) -> str | None:
        """A configurable's simple child, named by its SKU: the configurable's SKU."""
        for _, raw in records:
            record = lowered(raw)
            children = (
                dict(part.partition("=")[::2] for part in child.split(",")).get("sku")
                for child in multi(record.get("configurable_variations", ""), "|")
            )
            if not record.get("store_view_code", "").strip() and row_id in children:
                return record.get("sku")
        return None

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        rows = [lowered(record) for _, record in records]
        default = [row for row in rows if not row.get("store_view_code", "").strip()]
        children = {
            part.partition("=")[2].split(",")[0]
            for row in default
            for part in multi(row.get("configurable_variations", ""), "|")
        }
        return (
            f"Magento export: {counted(len(rows), 'row')} → {counted(len(default) - len(children), 'product')} "
            f"(default scope; {len(children):,} simple children folded, "
            f"{counted(len(rows) - len(default), 'store-view row')} skipped)"
        )

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        """Each locale is written to a store view: every locale needs one."""
        views = self.setting(settings, "magento_store_views")
        missing = [locale.tag for locale in settings.locales if locale.tag not in views]
        if missing:
            example = ", ".join(f"{tag}: {tag.split('-')[0]}" for tag in missing[:2])
            flags = " ".join(f"--store-view {tag}={tag.split('-')[0]}" for tag in missing[:2])
            raise ConfigError(
                f"--format magento needs the store view of {', '.join(missing)}",
                hint=f"pass {flags}, or name them in localize.yaml: magento_store_views: {{{example}}}",
            )

    def write(self, delivery: Delivery) -> list[ImportFile]:
        """The listings as Magento's import reads store-view values: the highlights as the
        short description's list, the SEO fields where the platform wrote them. A value the
        export already holds for that store view (a person's translation) is written back as
        it is, unless --overwrite-existing: an empty cell would not keep it either way."""
        views = self.setting(delivery.settings, "magento_store_views")
        existing = _store_view_values(delivery.catalog)
        rows, kept = [], 0
        for listing in web_shop_listings(delivery.results, self.name):
            sku = listing.sku or listing.id
            ours = {
                "name": listing.title,
                "description": listing.description,
                "short_description": listing.bullets_html,
                "meta_title": listing.meta_title,
                "meta_keywords": listing.keywords(),
                "meta_description": listing.meta_description,
            }
            have = existing.get((sku, views[listing.locale]), {})
            row = [sku, views[listing.locale]]
            for column in COLUMNS[2:]:
                if have.get(column, "").strip() and not delivery.settings.overwrite_existing:
                    row.append(have[column])
                    kept += 1
                else:
                    row.append(ours[column])
            rows.append(row)
        path = delivery.out / MAGENTO_FILE
        atomic_write(path, csv_text(COLUMNS, rows, keys=("sku",)))
        notes = ["--overwrite-existing replaces what was kept."] if kept else []
        notes += formula_keys(row[0] for row in rows)
        return [ImportFile(self.name, path, len(rows), kept=kept, notes=notes)]


def _store_view_values(catalog: Path) -> dict[tuple[str, str], dict[str, str]]:
    """What a Magento export already holds per (SKU, store view); nothing for another catalog."""
    header = table_header(catalog) if catalog.is_file() else None
    if header is None or not Magento().recognises(header):
        return {}
    found = {}
    with open_file(catalog) as handle:
        _, records = table_records(catalog, handle)
        for _, raw in records:
            record = lowered(raw)
            view = record.get("store_view_code", "").strip()
            if view:
                found[(record.get("sku", ""), view)] = record
    return found


def _attribute_pairs(cell: str) -> list[tuple[str, str]]:
    """Magento's `additional_attributes` ("activity=Gym,Travel,color=Blue"): a multi-select's
    values are commas inside the list, so a part without "=" belongs to the attribute before it."""
    pairs: list[list[str]] = []
    for part in multi(cell, ","):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            pairs.append([name.strip(), value.strip()])
        elif pairs:
            pairs[-1][1] += f", {part}"
    return [(name, value) for name, value in pairs if value]

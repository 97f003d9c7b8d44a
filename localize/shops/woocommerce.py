"""WooCommerce: its product export (Products → Export) read as a catalog, and per locale a CSV
in its product importer's columns (`--format woocommerce`).

The export's `Parent` ties a variation to its variable product (`id:123` or the parent's SKU);
`Attribute N name` / `Attribute N value(s)` carry options.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping
from typing import Any

from ..layout import WOOCOMMERCE_DIR
from ..store import atomic_write
from ..textfile import Records
from .base import (
    Delivery,
    ImportFile,
    Row,
    Shop,
    ShopFields,
    add_option,
    counted,
    csv_text,
    finish_product,
    kinds,
    lowered,
    web_shop_listings,
)

# The columns that mark the export (its own sample export has them).
MARKERS = ("id", "type", "sku", "name")
COLUMNS = ("ID", "SKU", "Name", "Short description", "Description", "Tags")
_DIMENSION = re.compile(r"(weight|length|width|height) \((\w+)\)")


class WooCommerce(Shop):
    name = "woocommerce"
    title = "WooCommerce"
    import_format = "woocommerce"
    files = (WOOCOMMERCE_DIR,)

    def recognises(self, columns: list[str]) -> bool:
        names = {name.lower() for name in columns}
        return all(name in names for name in MARKERS) and ("parent" in names or "short description" in names)

    def products(self, header: list[str], records: Records) -> Iterator[Row]:
        """One product per parent row; a variation's attribute values fold into its parent's
        options. Held until the file ends, since a variation may come after other products."""
        products: dict[str, tuple[int, dict[str, Any], dict[str, list[str]]]] = {}
        by_sku: dict[str, str] = {}
        orphans: list[tuple[int, dict[str, str]]] = []
        for line, raw in records:
            record = lowered(raw)
            if record.get("type", "").strip().lower() == "variation":
                orphans.append((line, record))
                continue
            row = _product(record)
            products[row["id"]] = (line, row, _attributes({}, record))
            if record.get("sku"):
                by_sku[record["sku"]] = row["id"]
        for line, record in orphans:
            parent = record.get("parent", "").strip()
            key = parent[3:] if parent.lower().startswith("id:") else by_sku.get(parent, parent)
            if key in products:
                _attributes(products[key][2], record)
            else:  # a variation whose parent is not in the file: a product of its own
                row = _product(record)
                products[row["id"]] = (line, row, _attributes({}, record))
        for line, row, options in products.values():
            yield line, finish_product(row, options)

    def describe(self, header: list[str], records: Records) -> str:
        types = kinds(records, "type")
        rows, folded = sum(types.values()), types["variation"]
        return (
            f"WooCommerce export: {counted(rows, 'row')} → {counted(rows - folded, 'product')}, "
            f"{counted(folded, 'variation')} folded"
        )

    def write(self, delivery: Delivery) -> list[ImportFile]:
        """Per locale, the listings in the importer's columns: the highlights as the short
        description's list, the search tags as product tags."""
        folder = delivery.out / WOOCOMMERCE_DIR
        if folder.exists():
            shutil.rmtree(folder)  # a locale no longer asked for must not stay behind
        folder.mkdir()
        listings = web_shop_listings(delivery.results)
        written = []
        for locale in sorted({listing.locale for listing in listings}):
            rows = [_row(listing) for listing in listings if listing.locale == locale]
            path = folder / f"{locale}.csv"
            atomic_write(path, csv_text(COLUMNS, rows))
            written.append(ImportFile(self.name, path, len(rows)))
        return written


def _row(listing: ShopFields) -> list[str]:
    return [listing.id, listing.sku, listing.title, listing.bullets_html, listing.description, listing.keywords()]


def _product(record: Mapping[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": record.get("id", "") or record.get("sku", ""),
        "name": record.get("name", ""),
        "sku": record.get("sku", ""),
        "short_description": record.get("short description", ""),
        "description": record.get("description", ""),
        "category": record.get("categories", ""),
        "keywords": [tag.strip() for tag in record.get("tags", "").split(",") if tag.strip()],
    }
    for name, value in record.items():  # the specs a shopper reads: dimensions and weight with their units
        unit = _DIMENSION.fullmatch(name)
        if unit and value.strip():
            row[unit.group(1)] = f"{value.strip()} {unit.group(2)}"
    return row


def _attributes(options: dict[str, list[str]], record: Mapping[str, str]) -> dict[str, list[str]]:
    number = 1
    while f"attribute {number} name" in record:
        name = record.get(f"attribute {number} name", "")
        for value in record.get(f"attribute {number} value(s)", "").split(","):
            add_option(options, name, value)
        number += 1
    return options

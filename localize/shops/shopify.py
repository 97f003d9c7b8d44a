"""Shopify's product export (admin: Products → Export) read as a catalog. One product spans
several rows (its variants and images), each repeating the Handle. Its import file is the
Translate & Adapt one (translate_adapt.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..reading.textfile import Records
from .base import Row, Shop, add_option, counted, finish_product

# The columns that mark the export.
MARKERS = ("Handle", "Title", "Body (HTML)")


class ShopifyProducts(Shop):
    name = "shopify"
    title = "Shopify product"
    platform = "shopify"

    def recognises(self, columns: list[str]) -> bool:
        return all(name in columns for name in MARKERS)

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        """One product per Handle: the first row carries the product, the rows after it add variants."""
        current: dict[str, Any] | None = None
        start = 0
        options: dict[str, list[str]] = {}
        names: list[str] = []
        for line, record in records:
            if current is not None and record.get("Handle", "") == current["id"]:
                _add_options(options, record, names)
                continue
            if current is not None:
                yield start, finish_product(current, options)
            current, start, options = _product(record), line, {}
            names = [record.get(f"Option{n} Name", "") for n in (1, 2, 3)]
            _add_options(options, record, names)
        if current is not None:
            yield start, finish_product(current, options)

    def parent_of(self, records: Records, row_id: str) -> str | None:
        """A variant, named by its SKU: its product's Handle."""
        return next((record.get("Handle") for _, record in records if record.get("Variant SKU") == row_id), None)

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        handles = [record.get("Handle", "") for _, record in records]
        return f"Shopify product export: {counted(len(handles), 'row')} → {counted(len(set(handles)), 'product')}"


def _product(record: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": record.get("Handle", ""),
        "name": record.get("Title", ""),
        "description": record.get("Body (HTML)", ""),
        "brand": record.get("Vendor", ""),
        "category": record.get("Product Category") or record.get("Type", ""),
        "sku": record.get("Variant SKU", ""),
        "keywords": [tag.strip() for tag in record.get("Tags", "").split(",") if tag.strip()],
    }
    if record.get("Type"):
        row["product_type"] = record["Type"]
    return row


def _add_options(options: dict[str, list[str]], record: dict[str, str], names: list[str]) -> None:
    for number, name in enumerate(names, start=1):
        if name != "Title":  # Shopify's "Title: Default Title" stands for no options at all
            add_option(options, name, record.get(f"Option{number} Value", ""))

"""Akeneo PIM: its product export read as a catalog, and a product CSV with the listings in
every target locale (`--format akeneo`).

An Akeneo product CSV is `;`-separated: the identifier (`sku`), `family`, and attribute
columns, localizable ones as `{code}-{locale}` and scopable ones with a channel:
`{code}-{locale}-{channel}`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CatalogError
from ..layout import AKENEO_FILE
from ..store import atomic_write
from ..textfile import Records, csv_header
from .base import (
    Delivery,
    ImportFile,
    ProductRows,
    Row,
    Shop,
    ShopFields,
    counted,
    csv_text,
    lowered,
    web_shop_listings,
)

if TYPE_CHECKING:
    from ..config import Settings

_COLUMN = re.compile(r"^(?P<code>[A-Za-z0-9_]+)-(?P<locale>[a-z]{2,3}_[A-Z]{2})(?:-(?P<channel>[A-Za-z0-9_]+))?$")
# Akeneo's measurement units as listings write them.
_UNITS = {"GRAM": "g", "KILOGRAM": "kg", "MILLIMETER": "mm", "CENTIMETER": "cm", "METER": "m", "LITER": "l"}
# Columns that say what a product is, never copy for the model.
_NOT_COPY = ("sku", "identifier", "family", "groups", "enabled")
# The attribute codes a listing fills (other localizable attributes are left to the PIM).
CODES = frozenset(
    {"name", "title", "description", "short_description", "meta_title", "meta_description", "keywords", "meta_keywords"}
)
# (attribute code, channel or None): an attribute the export shows as localizable.
Attribute = tuple[str, "str | None"]


class Akeneo(Shop):
    name = "akeneo"
    title = "Akeneo"
    import_format = "akeneo"
    files = (AKENEO_FILE,)

    def recognises(self, columns: list[str]) -> bool:
        names = {name.lower() for name in columns}
        return "family" in names and ("sku" in names or "identifier" in names) and bool(localizable(columns))

    def products(self, header: list[str], records: Records) -> Iterator[Row]:
        columns = localizable(header)
        source = source_locale(header)
        for line, record in records:
            ids = lowered(record)
            row: dict[str, Any] = {"id": ids.get("sku") or ids.get("identifier", "")}
            if ids.get("sku"):
                row["sku"] = ids["sku"]
            for name, value in record.items():
                if not value.strip():
                    continue
                if name in columns:
                    code, locale, channel = columns[name]
                    if locale == source and (code not in row or channel == "ecommerce"):
                        row[code] = value  # one value per attribute: the ecommerce channel's where there are several
                elif name.endswith("-unit") or name.lower() in _NOT_COPY:
                    continue
                elif name.lower() == "categories":
                    row["category"] = [item for item in value.split(",") if item]
                else:
                    unit = record.get(f"{name}-unit", "").strip()
                    row[name] = f"{value} {_UNITS.get(unit, unit.lower())}".strip() if unit else value
            yield line, row

    def describe(self, header: list[str], records: Records) -> str:
        count = sum(1 for _ in records)
        return f"Akeneo export: {counted(count, 'product')}, copy in {source_locale(header)}"

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        if catalog.is_file():
            attributes(catalog)  # not an Akeneo export: said before sending

    def write(self, delivery: Delivery) -> list[ImportFile]:
        """One row per product: its identifier, then each localizable attribute we write, per locale."""
        listings = web_shop_listings(delivery.results)
        locales = sorted({listing.locale for listing in listings})
        written = [(code, channel) for code, channel in attributes(delivery.catalog) if code in CODES]
        columns = [_column(code, locale, channel) for code, channel in written for locale in locales]
        by_product: dict[str, dict[str, str]] = {}
        for listing in listings:
            cells = by_product.setdefault(listing.sku or listing.id, {})
            for code, channel in written:
                cells[_column(code, listing.locale, channel)] = _value(code, listing)
        rows = [[sku, *(cells.get(column, "") for column in columns)] for sku, cells in sorted(by_product.items())]
        path = delivery.out / AKENEO_FILE
        atomic_write(path, csv_text(["sku", *columns], rows, delimiter=";"))
        return [ImportFile(self.name, path, len(rows))]


def localizable(columns: list[str]) -> dict[str, tuple[str, str, str | None]]:
    """The localizable columns of an Akeneo export: column → (attribute code, locale, channel)."""
    found = {}
    for name in columns:
        match = _COLUMN.match(name)
        if match:
            found[name] = (match.group("code"), match.group("locale"), match.group("channel"))
    return found


def source_locale(columns: list[str]) -> str:
    """The locale the export's copy is written in: the one most of its localizable columns carry."""
    counts = Counter(locale for _, locale, _ in localizable(columns).values())
    return counts.most_common(1)[0][0]


def attributes(path: Path) -> list[Attribute]:
    """The attributes an Akeneo export shows as localizable in its copy's locale."""
    header = csv_header(path)
    if header is None or not Akeneo().recognises(header):
        raise CatalogError(
            path, "not an Akeneo product export", line=1, hint="--format akeneo starts from Akeneo's export"
        )
    source = source_locale(header)
    return [(code, channel) for code, locale, channel in localizable(header).values() if locale == source]


def _column(code: str, locale: str, channel: str | None) -> str:
    return f"{code}-{locale.replace('-', '_')}" + (f"-{channel}" if channel else "")


def _value(code: str, listing: ShopFields) -> str:
    """A listing's value for one of CODES."""
    values = {
        "name": listing.title,
        "title": listing.title,
        "description": listing.description,
        "short_description": listing.bullets_html,
        "meta_title": listing.meta_title,
        "meta_description": listing.meta_description,
        "keywords": listing.keywords(),
        "meta_keywords": listing.keywords(),
    }
    return values[code]

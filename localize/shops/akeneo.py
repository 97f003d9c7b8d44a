"""Akeneo PIM: its product export read as a catalog, and a product CSV with the listings in
every target locale (`--format akeneo`).

An Akeneo product CSV is `;`-separated: the identifier (`sku`), `family`, and attribute
columns, localizable ones as `{code}-{locale}` and scopable ones with a channel:
`{code}-{locale}-{channel}`. The copy is read from the locale whose values fill the most rows
(`--source-locale` chooses another); association, group and category columns name other
records, never copy, and never reach the model. The import file keeps every value the export
already holds in a target locale (a person's translation) unless `--overwrite-existing`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CatalogError
from ..output.layout import AKENEO_FILE
from ..output.store import atomic_write
from ..reading.textfile import Records, open_file, table_header, table_records
from .base import (
    Delivery,
    ImportFile,
    ProductRows,
    Row,
    Shop,
    ShopFields,
    counted,
    csv_text,
    formula_keys,
    lowered,
    web_shop_listings,
)

if TYPE_CHECKING:
    from ..config import Settings

_COLUMN = re.compile(r"^(?P<code>[A-Za-z0-9_]+)-(?P<locale>[a-z]{2,3}_[A-Z]{2})(?:-(?P<channel>[A-Za-z0-9_]+))?$")
# Akeneo's measurement units as listings write them.
_UNITS = {"GRAM": "g", "KILOGRAM": "kg", "MILLIMETER": "mm", "CENTIMETER": "cm", "METER": "m", "LITER": "l"}
# The attribute codes a listing fills (other localizable attributes are left to the PIM).
CODES = frozenset(
    {"name", "title", "description", "short_description", "meta_title", "meta_description", "keywords", "meta_keywords"}
)
# (attribute code, channel or None): an attribute the export shows as localizable.
Attribute = tuple[str, "str | None"]


# Columns that name other records or say what a product is: never copy for the model.
_NOT_COPY = ("sku", "identifier", "family", "family_variant", "groups", "enabled", "parent", "categories")
# Associations: `{TYPE}-products`, `{TYPE}-product_models`, `{TYPE}-groups` (and their quantities).
_ASSOCIATION = re.compile(r"^[A-Za-z0-9_]+-(products|product_models|groups)(-quantity)?$")


class Akeneo(Shop):
    name = "akeneo"
    title = "Akeneo"
    import_format = "akeneo"
    platform = "akeneo"
    files = (AKENEO_FILE,)

    def recognises(self, columns: list[str]) -> bool:
        names = {name.lower() for name in columns}
        return "family" in names and ("sku" in names or "identifier" in names) and bool(localizable(columns))

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        """Each row's copy in the source locale. The rows are held to choose it (the locale
        whose values fill the most rows), so an export is read whole."""
        rows = list(records)
        columns = localizable(header)
        source, _ = choose_source(header, [record for _, record in rows], source_locale)
        for line, record in rows:
            ids = lowered(record)
            row: dict[str, Any] = {"id": ids.get("sku") or ids.get("identifier", "")}
            if ids.get("sku"):
                row["sku"] = ids["sku"]
            for name, value in record.items():
                if not value.strip() or _is_reference(name):
                    continue
                if name in columns:
                    code, locale, channel = columns[name]
                    if locale == source and (code not in row or channel == "ecommerce"):
                        row[code] = value  # one value per attribute: the ecommerce channel's where there are several
                elif name.endswith("-unit"):
                    continue
                else:
                    unit = record.get(f"{name}-unit", "").strip()
                    row[name] = f"{value} {_UNITS.get(unit, unit.lower())}".strip() if unit else value
            yield line, row

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        rows = [record for _, record in records]
        source, why = choose_source(header, rows, source_locale)
        return f"Akeneo export: {counted(len(rows), 'product')}, copy in {source} ({why})"

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        if catalog.is_file():
            attributes(catalog, _tag(settings))  # not an Akeneo export, an unknown source: said before sending

    def write(self, delivery: Delivery) -> list[ImportFile]:
        """One row per product: its identifier, then each localizable attribute we write, per
        target locale; a value the export already holds there is written back as it is."""
        settings = delivery.settings
        listings = web_shop_listings(delivery.results, self.name)
        source = _tag(settings)
        written = [(code, channel) for code, channel in attributes(delivery.catalog, source) if code in CODES]
        existing = _existing(delivery.catalog)
        chosen = source or choose_source(table_header(delivery.catalog) or [], list(existing.values()), None)[0]
        locales = sorted({listing.locale for listing in listings if listing.locale.replace("-", "_") != chosen})
        columns = [_column(code, locale, channel) for code, channel in written for locale in locales]
        by_product: dict[str, dict[str, str]] = {}
        kept = 0
        for listing in listings:
            if listing.locale not in locales:
                continue  # the source's own language: its copy is the PIM's
            key = listing.sku or listing.id
            cells = by_product.setdefault(key, {})
            have = existing.get(key, {})
            for code, channel in written:
                column = _column(code, listing.locale, channel)
                value = _value(code, listing)
                if have.get(column, "").strip() and (not settings.overwrite_existing or not value.strip()):
                    cells[column] = have[column]  # a person's translation, or an earlier import: kept
                    kept += 1
                else:
                    cells[column] = value
        # Akeneo's import clears a value whose cell is empty: a cell we have nothing for (that
        # locale's listing failed, the platform wrote no such field) carries what the export holds.
        rows = [
            [sku, *(cells.get(column) or existing.get(sku, {}).get(column, "") for column in columns)]
            for sku, cells in sorted(by_product.items())
        ]
        path = delivery.out / AKENEO_FILE
        atomic_write(path, csv_text(["sku", *columns], rows, keys=("sku",), delimiter=";"))
        notes = ["--overwrite-existing replaces what was kept."] if kept else []
        notes += formula_keys(row[0] for row in rows)
        return [ImportFile(self.name, path, len(rows), kept=kept, notes=notes)]


def _is_reference(name: str) -> bool:
    """A column naming other records (associations, groups, categories) or the product's kind."""
    return name.lower() in _NOT_COPY or bool(_ASSOCIATION.match(name))


def _tag(settings: Settings) -> str | None:
    """--source-locale as Akeneo writes a locale (`en_US`), if given."""
    return settings.source_locale.tag.replace("-", "_") if settings.source_locale else None


def choose_source(header: list[str], rows: list[dict[str, str]], override: str | None) -> tuple[str, str]:
    """The locale the export's copy is read from, and why: `override` (--source-locale), else
    the locale whose localizable values fill the most rows (the first in the header on a tie)."""
    locales = list(dict.fromkeys(locale for _, locale, _ in localizable(header).values()))
    if override is not None:
        if override not in locales:
            raise CatalogError(
                Path("--source-locale"),
                f"{override} is not among the export's locales",
                hint=f"the export has {', '.join(locales)}",
            )
        return override, "--source-locale"
    columns = localizable(header)
    filled = {locale: 0 for locale in locales}
    for row in rows:
        seen = {columns[name][1] for name, value in row.items() if name in columns and value.strip()}
        for locale in seen:
            filled[locale] += 1
    best = max(locales, key=lambda locale: filled[locale])  # max keeps the first of equals
    others = "; ".join(f"{locale} {filled[locale]:,}" for locale in locales if locale != best)
    return best, f"its text fills {filled[best]:,} of {len(rows):,} rows" + (f"; {others}" if others else "")


def localizable(columns: list[str]) -> dict[str, tuple[str, str, str | None]]:
    """The localizable columns of an Akeneo export: column → (attribute code, locale, channel)."""
    found = {}
    for name in columns:
        match = _COLUMN.match(name)
        if match:
            found[name] = (match.group("code"), match.group("locale"), match.group("channel"))
    return found


def _existing(path: Path) -> dict[str, dict[str, str]]:
    """The export's rows by identifier: what the PIM already holds."""
    found: dict[str, dict[str, str]] = {}
    with open_file(path) as handle:
        _, records = table_records(path, handle)
        for _, record in records:
            ids = lowered(record)
            found[ids.get("sku") or ids.get("identifier", "")] = record
    return found


def attributes(path: Path, source_locale: str | None) -> list[Attribute]:
    """The attributes an Akeneo export shows as localizable in its copy's locale."""
    header = table_header(path)
    if header is None or not Akeneo().recognises(header):
        raise CatalogError(
            path, "not an Akeneo product export", line=1, hint="--format akeneo starts from Akeneo's export"
        )
    source = source_locale or choose_source(header, list(_existing(path).values()), None)[0]
    if source_locale is not None:
        choose_source(header, [], source_locale)  # an unknown one: said here
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

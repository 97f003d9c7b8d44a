"""WooCommerce: its product export (Products → Export) read as a catalog, and the files that
import the listings as translations with WPML (`--format woocommerce`).

The export's `Parent` ties a variation to its variable product (`id:123` or the parent's SKU);
`Attribute N name` / `Attribute N value(s)` carry options.

A translation is a product of its own in WooCommerce, linked to its source by WPML. WooCommerce's
importer matches a row to an existing product by ID or SKU, and refuses a SKU already in use, so a
translated row carries neither: it is created as a new product. WPML Export and Import links it
to its source through three meta columns (`_wpml_import_language_code`,
`_wpml_import_source_language_code`, `_wpml_import_translation_group`), one translation group
per source product shared by all its languages. The source products must carry their group too,
so a second file sets exactly that on them, by ID (or SKU), and nothing else:

- woocommerce/sources.csv: `ID` (or `SKU`) and the three WPML columns; import with "Update
  existing products" ticked (only these columns exist, so no other field of a product changes);
- woocommerce/translations.csv: one new product per listing and language; import without it;
- then WPML → Export and Import → Run, which sets the languages and links each group.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checking.sanitize import clean_html, has_markup, plain_text
from ..errors import ConfigError
from ..locales import Locale, parse_locale
from ..output.layout import WOOCOMMERCE_DIR
from ..output.store import atomic_write
from ..reading.textfile import Records, open_file, table_header, table_records
from .base import (
    Delivery,
    ImportFile,
    ProductRows,
    Row,
    Shop,
    ShopFields,
    StoreString,
    add_option,
    counted,
    csv_text,
    finish_product,
    formula_keys,
    kinds,
    lowered,
    web_shop_listings,
)

if TYPE_CHECKING:
    from ..config import Settings

# The columns that mark the export (its own sample export has them).
MARKERS = ("id", "type", "sku", "name")
WPML_LANGUAGE = "Meta: _wpml_import_language_code"
WPML_SOURCE_LANGUAGE = "Meta: _wpml_import_source_language_code"
WPML_GROUP = "Meta: _wpml_import_translation_group"
WPML_COLUMNS = (WPML_LANGUAGE, WPML_SOURCE_LANGUAGE, WPML_GROUP)
TRANSLATION_COLUMNS = (
    "ID",
    "Type",
    "SKU",
    "Name",
    "Published",
    "Short description",
    "Description",
    "Tags",
    "Purchase note",
    "Button text",
)  # then its own attributes' columns, then WPML's
SOURCES, TRANSLATIONS = "sources.csv", "translations.csv"
# The export's texts beside a listing that a translation carries: our name → the export's column.
_TEXTS = {"purchase_note": "purchase note", "button_text": "button text"}

# WPML's language codes where they are not the ISO language alone.
_WPML_CODES = {
    "pt-BR": "pt-br",
    "pt-PT": "pt-pt",
    "zh-CN": "zh-hans",
    "zh-SG": "zh-hans",
    "zh-TW": "zh-hant",
    "zh-HK": "zh-hant",
}
_DIMENSION = re.compile(r"(weight|length|width|height) \((\w+)\)")


class WooCommerce(Shop):
    name = "woocommerce"
    title = "WooCommerce"
    import_format = "woocommerce"
    platform = "woocommerce"
    files = (WOOCOMMERCE_DIR,)

    def recognises(self, columns: list[str]) -> bool:
        names = {name.lower() for name in columns}
        return all(name in names for name in MARKERS) and ("parent" in names or "short description" in names)

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        """One product per parent row; a variation's attribute values fold into its parent's
        options. Held until the file ends, since a variation may come after other products."""
        products: dict[str, tuple[int, dict[str, Any], dict[str, list[str]]]] = {}
        repeated: list[tuple[int, dict[str, Any], dict[str, list[str]]]] = []  # an id again: the catalog names it
        by_sku: dict[str, str] = {}
        orphans: list[tuple[int, dict[str, str]]] = []
        for line, raw in records:
            record = lowered(raw)
            if record.get("type", "").strip().lower() == "variation":
                orphans.append((line, record))
                continue
            row = _product(record)
            if row["id"] in products:
                repeated.append((line, row, _attributes({}, record)))
                continue
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
        for line, row, options in [*products.values(), *repeated]:
            yield line, finish_product(row, options)

    def parent_of(self, records: Records, row_id: str) -> str | None:
        """A variation, named by its ID or SKU: the id of the product its Parent names."""
        skus: dict[str, str] = {}
        parent = None
        for _, raw in records:
            record = lowered(raw)
            if record.get("type", "").strip().lower() != "variation":
                skus[record.get("sku", "")] = _product(record)["id"]
            elif row_id in (record.get("id"), record.get("sku")) and record.get("parent", "").strip():
                parent = record["parent"].strip()
        if parent is None:
            return None
        return parent[3:] if parent.lower().startswith("id:") else skus.get(parent, parent)

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        types = kinds(records, "type")
        rows, folded = sum(types.values()), types["variation"]
        return (
            f"WooCommerce export: {counted(rows, 'row')} → {counted(rows - folded, 'product')}, "
            f"{counted(folded, 'variation')} folded"
        )

    def strings(self, catalog: Path) -> list[StoreString]:
        """Beside each product's listing, the texts its translation carries: the purchase note,
        an external product's button text, and its own (local) attributes' names and values,
        each value on its own so a variation's value still matches. A global attribute's terms
        are translated once, in WPML's taxonomy translation, and the translation shares them."""
        return [
            StoreString(_string_key(product_id, name), "WOOCOMMERCE", name, text, store="WooCommerce")
            for product_id, source in _sources(catalog).items()
            for name, text in source.strings().items()
        ]

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        """Each source product is named by its WooCommerce ID (from WooCommerce's export) or SKU."""
        if not catalog.is_file() or _export_header(catalog) is not None:
            return
        header = table_header(catalog) or []
        sku = settings.columns.get("sku", "sku")
        if sku.lower() not in {name.lower() for name in header}:
            raise ConfigError(
                "--format woocommerce needs each product's WooCommerce ID or SKU",
                where=str(catalog),
                hint="start from WooCommerce's export (Products → Export), or give a sku column (--map sku=COLUMN)",
            )

    def write(self, delivery: Delivery) -> list[ImportFile]:
        """sources.csv (the source products' translation groups) and translations.csv (a new
        product per listing and language, linked to its source's group)."""
        folder = delivery.out / WOOCOMMERCE_DIR
        if folder.exists():
            shutil.rmtree(folder)  # a file of an earlier layout must not stay behind
        folder.mkdir()
        sources = _sources(delivery.catalog)
        source_language = _wpml_code(delivery.settings.source_locale)
        translated: dict[str, list[ShopFields]] = {}
        for listing in web_shop_listings(delivery.results, self.name):
            translated.setdefault(listing.id, []).append(listing)
        width = max((len(source.attributes) for source in sources.values()), default=0)
        columns = [*TRANSLATION_COLUMNS, *_attribute_columns(width), *WPML_COLUMNS]
        rows: list[list[str]] = []
        linked: list[_Source] = []
        for product_id, versions in translated.items():
            source = sources.get(product_id) or _Source(sku=versions[0].sku)
            group = f"localize-{product_id}"
            linked.append(replace(source, group=group))
            for listing in sorted(versions, key=lambda item: item.locale):
                said = _Translations(delivery.strings, product_id, listing.locale)
                rows.append(
                    [
                        "",  # a new product: no source's ID...
                        source.type,
                        "",  # ...and no SKU (WooCommerce refuses one in use; WPML syncs it after linking)
                        listing.title,
                        source.published,
                        listing.bullets_html,
                        listing.description,
                        listing.keywords(),
                        clean_html(said("purchase_note")),  # HTML a storefront shows: the allow-list
                        _text(said("button_text")),  # a button's label: text alone
                        *source.attribute_cells(said, width),
                        _wpml_code(parse_locale(listing.locale)),
                        source_language,
                        group,
                    ]
                )
        sources_path, translations_path = folder / SOURCES, folder / TRANSLATIONS
        atomic_write(sources_path, _sources_csv(linked, source_language))
        atomic_write(translations_path, csv_text(columns, rows))
        asked = len(sources) * len(delivery.settings.locales) if sources else len(rows)
        return [
            ImportFile(self.name, sources_path, len(linked), notes=formula_keys(s.id or s.sku for s in linked)),
            ImportFile(self.name, translations_path, len(rows), failed=max(asked - len(rows), 0)),
        ]


@dataclass(frozen=True, slots=True)
class _Attribute:
    """A product's own (local) attribute: its number in the export, name, values, visibility."""

    number: int
    name: str
    values: tuple[str, ...]
    visible: str


@dataclass(frozen=True, slots=True)
class _Source:
    """A source product of a WooCommerce export, as its translation needs it."""

    id: str = ""
    sku: str = ""
    type: str = "simple"
    published: str = ""
    texts: Mapping[str, str] = field(default_factory=dict)  # purchase note, button text
    attributes: tuple[_Attribute, ...] = ()
    group: str = ""  # its WPML translation group, once it has translations

    def strings(self) -> dict[str, str]:
        """Its texts beside the listing, by name: notes, attribute names, each value on its own."""
        found = dict(self.texts)
        for attribute in self.attributes:
            found[f"attribute_{attribute.number}_name"] = attribute.name
            for index, value in enumerate(attribute.values, start=1):
                found[f"attribute_{attribute.number}_value_{index}"] = value
        return found

    def attribute_cells(self, said: _Translations, width: int) -> list[str]:
        """Its local attributes in a translation's row (name, values, visible, global: 0),
        translated where a translation came back, else as the source has them (a value must
        still match its variations)."""
        cells: list[str] = []
        for attribute in self.attributes:
            prefix = f"attribute_{attribute.number}"
            values = [_text(said(f"{prefix}_value_{i}", value)) for i, value in enumerate(attribute.values, start=1)]
            cells += [_text(said(f"{prefix}_name", attribute.name)), ", ".join(values), attribute.visible, "0"]
        return cells + [""] * 4 * (width - len(self.attributes))


@dataclass(frozen=True, slots=True)
class _Translations:
    """One product's store strings in one locale."""

    strings: Mapping[tuple[str, str], str]
    product_id: str
    locale: str

    def __call__(self, name: str, fallback: str = "") -> str:
        return self.strings.get((_string_key(self.product_id, name), self.locale), fallback)


def _sources_csv(linked: list[_Source], source_language: str) -> str:
    """sources.csv: each source product named by its WooCommerce ID where the export gives it,
    else by its SKU, with its translation group, its own language code left empty and the
    source language set (PLATFORMS.md), and no other column.

    WooCommerce's importer, updating a product, writes every mapped cell, an empty one too
    (`set_sku('')`), and WPML copies a source's SKU to its translations: so a SKU column is
    there only for products named by SKU, and where a file mixes both, a product named by ID
    carries its own SKU as the export has it (writing it back changes nothing)."""
    by_sku = any(not source.id for source in linked)
    by_id = any(source.id for source in linked) or not by_sku
    header = [*(["ID"] if by_id else []), *(["SKU"] if by_sku else []), *WPML_COLUMNS]
    rows = [
        [*([source.id] if by_id else []), *([source.sku] if by_sku else []), "", source_language, source.group]
        for source in linked
    ]
    return csv_text(header, rows, keys=("ID", "SKU"))


def _text(value: str) -> str:
    """A field WooCommerce shows as text (a button's label, an attribute's name or value): any
    markup a translation brought reduced to its words, the text itself unchanged (`Black &
    White` still matches its variations)."""
    return html.unescape(plain_text(value)).strip() if has_markup(value) else value


def _wpml_code(locale: Locale | None) -> str:
    """WPML's code of a language: `de`, `ja`, `pt-br`, `zh-hans`..., English where unknown."""
    if locale is None:
        return "en"
    return _WPML_CODES.get(locale.tag, locale.language)


def _export_header(catalog: Path) -> list[str] | None:
    header = table_header(catalog)
    return header if header is not None and WooCommerce().recognises(header) else None


def _sources(catalog: Path) -> dict[str, _Source]:
    """The source products of a WooCommerce export, by our id (none for any other catalog: its
    rows are named by SKU)."""
    if not catalog.is_file() or _export_header(catalog) is None:
        return {}
    found = {}
    with open_file(catalog) as handle:
        _, records = table_records(catalog, handle)
        for _, raw in records:
            record = lowered(raw)
            if record.get("type", "").strip().lower() == "variation":
                continue
            texts = {name: record.get(column, "").strip() for name, column in _TEXTS.items()}
            found[_product(record)["id"]] = _Source(
                id=record.get("id", ""),
                sku=record.get("sku", ""),
                type=record.get("type", "").strip() or "simple",
                published=record.get("published", ""),
                texts={name: text for name, text in texts.items() if text},
                attributes=tuple(_own_attributes(record)),
            )
    return found


def _own_attributes(record: Mapping[str, str]) -> Iterator[_Attribute]:
    """A product's local attributes (a global one's terms are translated in WPML's taxonomy
    translation, and its translation shares them)."""
    number = 1
    while f"attribute {number} name" in record:
        name = record.get(f"attribute {number} name", "").strip()
        values = tuple(
            value.strip() for value in record.get(f"attribute {number} value(s)", "").split(",") if value.strip()
        )
        if name and values and record.get(f"attribute {number} global", "").strip() != "1":
            yield _Attribute(number, name, values, record.get(f"attribute {number} visible", "1") or "1")
        number += 1


def _string_key(product_id: str, name: str) -> str:
    """A product's text beside its listing, as strings.jsonl names it."""
    return f"WOOCOMMERCE/{product_id}/{name}"


def _attribute_columns(count: int) -> list[str]:
    return [
        column
        for number in range(1, count + 1)
        for column in (
            f"Attribute {number} name",
            f"Attribute {number} value(s)",
            f"Attribute {number} visible",
            f"Attribute {number} global",
        )
    ]


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

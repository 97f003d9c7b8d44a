"""Shopify's Translate & Adapt round trip: the store's translations export in, the file to
import out (../shared/PLATFORMS.md, "Shopify Translate & Adapt").

The export lists one row per resource × field × language, each language's rows in a block of
their own. The import matches rows on Shopify's resource ids and default content, which only
the export carries, so the import file is the export itself with `Translated content` filled
where a translation is missing or `outdated`: every row once, in the export's order, every
other column byte for byte, and a translation someone wrote kept as it is.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.core import get_global

from ..checking.sanitize import clean_html, safe_cell
from ..errors import CatalogError, InputError
from ..locales import Locale, parse_locale
from ..output.layout import SHOPIFY_TRANSLATIONS
from ..output.store import atomic_write
from ..reading.textfile import Records, open_file, table_header, table_records
from .base import Delivery, ImportFile, Lint, ProductRows, Row, Shop, ShopFields, StoreString, counted

if TYPE_CHECKING:
    from ..config import Settings

# Settings → Languages → Export (and the Translate & Adapt app) write this header.
TRANSLATIONS_HEADER = (
    "Type",
    "Identification",
    "Field",
    "Locale",
    "Market",
    "Status",
    "Default content",
    "Translated content",
)
# A product's source copy, by translation key; `handle` is left out: translating it moves the URL.
TRANSLATED_FIELDS = {
    "title": "name",
    "body_html": "description",
    "product_type": "product_type",
    "meta_title": "meta_title",
    "meta_description": "meta_description",
}
# A product read from the export carries, under this field, per language code of the export,
# whether a listing row still needs a translation (catalog.Product.translations).
TRANSLATIONS_KEY = "shopify_translations"
# The PRODUCT keys a generated listing fills.
LISTING_FIELDS = ("title", "body_html", "meta_title", "meta_description")
# Shopify's published-locale codes are language-only except where a region tells variants apart.
_REGION_KEPT = {"pt-BR", "pt-PT", "zh-CN", "zh-TW"}
_URL = re.compile(r"^(https?://|mailto:|tel:|/)\S*$", re.IGNORECASE)
_NUMBER = re.compile(r"^[\s\d.,:%+\-/]*$")


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One row of the export, every cell as written."""

    line: int
    cells: Mapping[str, str]

    @property
    def type(self) -> str:
        return self.cells["Type"].strip()

    @property
    def resource_id(self) -> str:
        """The numeric id, without the apostrophe that keeps Excel from reading it as a number."""
        return self.cells["Identification"].strip().lstrip("'")

    @property
    def field(self) -> str:
        return self.cells["Field"].strip()

    @property
    def code(self) -> str:
        return self.cells["Locale"].strip()

    @property
    def default(self) -> str:
        return self.cells["Default content"]

    @property
    def translated(self) -> str:
        return self.cells["Translated content"]

    @property
    def string_key(self) -> str:
        """The row's key as a string to translate: type, resource, field (and market, where
        the row has one); the same in every language of the export."""
        market = self.cells.get("Market", "").strip()
        return "/".join([self.type, self.resource_id, self.field, *([market] if market else [])])

    @property
    def is_listing(self) -> bool:
        """A row a product's listing fills (a product's other rows are strings)."""
        return self.type == "PRODUCT" and self.field in LISTING_FIELDS

    @property
    def outdated(self) -> bool:
        return self.cells["Status"].strip().lower() == "outdated"

    @property
    def has_translation(self) -> bool:
        """A translation someone (or an earlier import) wrote, still current: kept as it is."""
        return bool(self.translated.strip()) and not self.outdated

    def unsent_reason(self) -> str | None:
        """Why this row's default content is never sent (a URL handle, a number, JSON...), or
        None for text a shopper reads."""
        text = self.default.strip()
        if not text:
            return "empty"
        if self.field == "handle":
            return "handle"
        if _URL.match(text):
            return "URL"
        if _NUMBER.match(text):
            return "number"
        if text[0] in "[{":
            try:
                json.loads(text)
            except ValueError:
                return None
            return "JSON"
        return None


def is_translations_export(columns: list[str]) -> bool:
    return tuple(columns[: len(TRANSLATIONS_HEADER)]) == TRANSLATIONS_HEADER


def shop_locale(locale: Locale, file_codes: Iterable[str]) -> str:
    """The shop's code for a locale: the export's own where it has one for the language,
    otherwise `de`, `ja`, or `pt-BR` / `zh-TW` where Shopify needs the region."""
    for code in file_codes:
        language, _, region = code.partition("-")
        if language.lower() == locale.language and (not region or region.upper() == (locale.territory or "")):
            return code
    if locale.tag in _REGION_KEPT:
        return locale.tag
    return locale.language


def locale_of_code(code: str) -> Locale:
    """The locale a shop's language code stands for: its own region where it has one
    (`pt-BR`), else CLDR's likely region (`sv` → `sv-SE`, `ja` → `ja-JP`)."""
    if "-" in code:
        return parse_locale(code)
    parts = get_global("likely_subtags").get(code.lower(), code).split("_")
    territory = parts[-1] if len(parts) > 1 and len(parts[-1]) == 2 else None
    return parse_locale(f"{code}-{territory}" if territory else code)


# Kept translations that need a look, listed one by one in the report (the rest counted).
NEEDS_LOOK_LISTED = 100


@dataclass(slots=True)
class ImportSummary(ImportFile):
    """What the import file does with the export's rows for the run's languages (`kept`: a
    current translation, written back as it was; `failed`: needed a translation, and the job
    behind it failed or did not run)."""

    written: bool = False
    filled: int = 0
    left: Counter[str] = field(default_factory=Counter)  # "TYPE: why" → rows left as they were
    other_languages: int = 0  # rows of languages the run does not localize into
    added: int = 0  # rows for a language the export does not have yet
    completed: int = 0  # rows for a text the export has, which an asked language's rows lacked
    # Kept translations a person wrote that break the store (a placeholder lost, markup, the
    # wrong language): written back as they were, and named so someone looks at them.
    needs_look: list[dict[str, str]] = field(default_factory=list)

    @property
    def needed(self) -> int:
        return self.filled + self.failed

    def as_json(self) -> dict[str, Any]:
        return {
            **ImportFile.as_json(self),
            "written": self.written,
            "filled": self.filled,
            "left": dict(sorted(self.left.items())),
            "other_languages": self.other_languages,
            "added": self.added,
            "completed": self.completed,
            "kept_needs_look": self.needs_look[:NEEDS_LOOK_LISTED],
            "kept_needs_look_count": len(self.needs_look),
        }


def write_import(
    rows: list[ExportRow],
    out: Path,
    locales: Iterable[Locale],
    listings: Mapping[tuple[str, str], Mapping[str, Any]],
    strings: Mapping[tuple[str, str], str],
    *,
    force: bool,
    lint: Lint | None = None,
) -> ImportSummary:
    """OUT/shopify_translations.csv from the export's rows, the shopify listings (by (product
    id, locale tag)) and the strings' translations (by (string key, locale tag)). Nothing is
    written when rows needed a translation and none could be filled: an import file that
    changes nothing is not a result. `lint` checks the translations kept as a person wrote them."""
    found = _Found(listings, strings, lint)
    codes = list(dict.fromkeys(row.code for row in rows if row.code))
    targets = {shop_locale(locale, codes): locale for locale in locales}
    summary = ImportSummary("shopify", out / SHOPIFY_TRANSLATIONS, 0)
    written: list[list[str]] = []
    for row in rows:
        written.append(_filled(row, targets, found, summary, force=force))
    # A resource an asked language's block lacks (a language the shop has not exported yet, or
    # a text its block leaves out): a new row for it, copied from the first block that has it,
    # so every text translated for that language reaches the file.
    resources = {row.string_key: row for row in reversed(rows)}  # each one's first row
    have: dict[str, set[str]] = {}
    for row in rows:
        have.setdefault(row.code, set()).add(row.string_key)
    for code, locale in targets.items():
        present = have.get(code, set())
        for key, row in sorted(resources.items(), key=lambda item: item[1].line):
            if key in present:
                continue
            blank = ExportRow(row.line, {**row.cells, "Locale": code, "Status": "", "Translated content": ""})
            written.append(_filled(blank, {code: locale}, found, summary, force=force))
            if code in have:
                summary.completed += 1
            else:
                summary.added += 1
    target = out / SHOPIFY_TRANSLATIONS
    if summary.needed and not summary.filled:
        target.unlink(missing_ok=True)  # an older file would look like this run's
        return summary
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: CRLF, quotes only where needed
    writer.writerow(TRANSLATIONS_HEADER)
    writer.writerows(written)
    # A BOM keeps Excel round-trips in UTF-8 (PLATFORMS.md); Shopify reads it either way.
    atomic_write(target, "\ufeff" + buffer.getvalue())
    summary.written = True
    summary.rows = len(written)
    return summary


@dataclass(frozen=True, slots=True)
class _Found:
    listings: Mapping[tuple[str, str], Mapping[str, Any]]
    strings: Mapping[tuple[str, str], str]
    lint: Lint | None

    def text(self, row: ExportRow, locale: Locale) -> str:
        """Our translation for the row, as a storefront may show it: HTML reduced to what it
        renders (the checks refused script-bearing answers; this holds for hand edits too)."""
        if row.is_listing:
            return _listing_text(row.field, self.listings.get((row.resource_id, locale.tag)))
        return clean_html(self.strings.get((row.string_key, locale.tag), ""))


def _filled(
    row: ExportRow, targets: Mapping[str, Locale], found: _Found, summary: ImportSummary, *, force: bool
) -> list[str]:
    cells = [row.cells[name] for name in TRANSLATIONS_HEADER]
    locale = targets.get(row.code)
    if locale is None:
        summary.other_languages += 1
        return cells
    if row.has_translation and not force:
        summary.kept += 1
        problem = found.lint(row.default, row.translated, locale) if found.lint else None
        if problem:
            summary.needs_look.append(
                {"type": row.type, "id": row.resource_id, "field": row.field, "locale": row.code, "problem": problem}
            )
        return cells
    reason = row.unsent_reason()
    if reason is not None:
        summary.left[f"{row.type}: {reason}"] += 1
        return cells
    translated = found.text(row, locale)
    if not translated:
        summary.failed += 1  # the job failed or was not sent: the row keeps what it had
        return cells
    summary.filled += 1
    cells[-1] = safe_cell(translated)  # the one neutraliser every CSV writer uses (sanitize.py)
    return cells


def _listing_text(field: str, result: Mapping[str, Any] | None) -> str:
    """A listing's text for one PRODUCT translation key."""
    if result is None:
        return ""
    listing = ShopFields.of(result)
    texts = {
        "title": listing.title,
        "body_html": listing.description + listing.bullets_html,
        "meta_title": listing.meta_title,
        "meta_description": listing.meta_description,
    }
    return texts.get(field, "")


def product_needs(rows: Iterable[ExportRow]) -> dict[str, bool]:
    """Per language of a product's rows: whether a listing row in it needs a translation
    (missing or outdated; rows without default content need none), or a listing field the
    product has in another language's rows is missing from its own (the import file adds it)."""
    rows = list(rows)
    needs: dict[str, bool] = {}
    fields: dict[str, set[str]] = {}
    for row in rows:
        wanted = row.is_listing and not row.has_translation and row.unsent_reason() is None
        needs[row.code] = needs.get(row.code, False) or wanted
        fields.setdefault(row.code, set())
        if row.is_listing:
            fields[row.code].add(row.field)
    texts = {row.field for row in rows if row.is_listing and row.unsent_reason() is None}
    return {code: wanted or bool(texts - fields[code]) for code, wanted in needs.items()}


def not_an_export(path: Path) -> CatalogError:
    return CatalogError(
        path,
        "not a Shopify translations export",
        line=1,
        hint="--format shopify starts from Shopify's export: Settings → Languages → Export",
    )


def is_export_file(path: Path) -> bool:
    """Whether the file is a Shopify translations export (a JSON catalog never is)."""
    header = table_header(path)
    return header is not None and is_translations_export(header)


def read_export(path: Path | str) -> list[ExportRow]:
    """The export's rows as they are (for writing the import file back)."""
    path = Path(path)
    with open_file(path) as handle:
        header, records = table_records(path, handle, strip=False)  # written back byte for byte
        if not is_translations_export([name for name in header if name]):
            raise not_an_export(path)
        return [ExportRow(line, record) for line, record in records]


def writes_import(settings: Settings, catalog: Path) -> bool:
    """A run on Shopify's translations export writes the file to import back (asked for with
    --format shopify, or implied by the catalog), unless --platform leaves shopify out."""
    if settings.platforms is not None and "shopify" not in settings.platforms:
        return False
    return "shopify" in settings.formats or (catalog.is_file() and is_export_file(catalog))


class TranslateAdapt(Shop):
    name = "shopify"
    title = "Shopify Translate & Adapt"
    import_format = "shopify"
    platform = "shopify"
    files = (SHOPIFY_TRANSLATIONS,)

    def recognises(self, columns: list[str]) -> bool:
        return is_translations_export(columns)

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        """One shopify product per PRODUCT Identification, wherever its rows stand (an export
        of every language lists each language's rows in a block of their own), its source copy
        from the rows' default content. Each carries, per language of the export, whether a
        listing row in it still needs a translation."""
        products: dict[str, tuple[int, dict[str, Any], list[ExportRow]]] = {}
        for line, record in records:
            if record.get("Type", "").strip() != "PRODUCT":
                continue
            row = ExportRow(line, record)
            held = products.get(row.resource_id)
            if held is None:
                held = products[row.resource_id] = (line, {"id": row.resource_id, "platform": ["shopify"]}, [])
            _, product, rows = held
            rows.append(row)
            ours = TRANSLATED_FIELDS.get(row.field)
            if ours and row.default.strip() and ours not in product:
                product[ours] = row.default.strip()
        for line, product, rows in products.values():
            product[TRANSLATIONS_KEY] = product_needs(rows)
            yield line, product

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        rows = [ExportRow(line, record) for line, record in records]
        codes = len({row.code for row in rows})
        products = len({row.resource_id for row in rows if row.type == "PRODUCT"})
        return (
            f"Shopify translations export: {counted(len(rows), 'row')} in {counted(codes, 'language')}, "
            f"{counted(products, 'product')}"
        )

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        """--format shopify answers the translations export, so it needs that export as the
        catalog and the shopify platform (which the export's products get unless --platform
        says otherwise): say so before anything is sent."""
        if settings.platforms is not None and "shopify" not in settings.platforms:
            raise InputError("--format shopify writes the shopify platform's results", hint="add --platform shopify")
        if catalog.is_file() and not is_export_file(catalog):  # a missing file: reported on reading
            raise InputError(
                "--format shopify needs Shopify's translations export as the catalog",
                where=str(catalog),
                hint="export it in Shopify admin (Settings → Languages → Export): the import matches "
                "rows on the ids and default content only that file carries",
            )

    def asked(self, settings: Settings, catalog: Path) -> bool:
        return writes_import(settings, catalog)

    def translations(self, catalog: Path) -> Iterable[tuple[str, str, str]]:
        """The export's current translations of store texts (a person's, or an earlier import)."""
        for row in read_export(catalog):
            if not row.is_listing and row.has_translation and row.unsent_reason() is None:
                yield row.default, row.code, row.translated

    def strings(self, catalog: Path) -> list[StoreString]:
        """The export's text rows other than a product's listing fields, once per key (the first
        language's row gives the source text), in the export's order."""
        found: dict[str, tuple[ExportRow, dict[str, bool]]] = {}
        for row in read_export(catalog):
            if row.is_listing or row.unsent_reason() is not None:
                continue
            held = found.setdefault(row.string_key, (row, {}))
            needs = held[1]
            needs[row.code] = needs.get(row.code, False) or not row.has_translation
        return [
            StoreString(key, row.type, row.field, row.default.strip(), needs) for key, (row, needs) in found.items()
        ]

    def write(self, delivery: Delivery) -> list[ImportFile]:
        settings = delivery.settings
        listings = {
            (str(result["id"]), str(result["locale"])): result
            for result in delivery.results
            if result.get("platform") == "shopify"
        }
        summary = write_import(
            read_export(delivery.catalog),
            delivery.out,
            settings.locales,
            listings,
            delivery.strings,
            force=settings.force,
            lint=delivery.lint,
        )
        return [summary]

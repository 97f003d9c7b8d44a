"""Shopee: the seller's own mass-upload template, filled in place (`--format shopee --template
LOCALE=FILE`): OUT/shopee/<locale>.xlsx, one per market (each market is its own shop).

The data sheet is the one whose first row holds field codes (`ps_product_name|1|0`: the code,
then flags); the rows after it are the template's header block (a signature, the labels, the
required flags, help), and the data starts after it: after the rows a frozen pane holds and the
two help rows below the flags row, whichever is later (row 7 in the current templates;
../shared/PLATFORMS.md, "Shopee and Lazada templates"). A listing fills `ps_product_name`,
`ps_product_description` (plain text: Shopee shows no HTML; the highlights atop, the hashtags
below) and `ps_sku_parent_short`; price, stock and weight come from the catalog where it has them.

A template a seller exported with rows filled (their source market's listings) reads as a
catalog too, by its field codes.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..checking.sanitize import text_with_breaks
from ..output.layout import SHOPEE_DIR
from ..planning.rules import PlatformRules
from ..reading.textfile import Records
from ..reading.xlsx import Sheet, Workbook
from .base import Row, ShopFields, counted, finish_product
from .template import Layout, TemplateShop, catalog_values

# A field code of the first row: `ps_product_name|1|0`, `channel_id.80014|0|0`.
_CODE = re.compile(r"^([a-z][a-z0-9_]*(?:\.[0-9A-Za-z_]+)?)(?:\|.*)?$")
# What the required-flags row says, in the languages of Shopee's seller centres (any case).
MANDATORY_WORDS = frozenset(
    {"mandatory", "required", "compulsory", "wajib", "obrigatório", "obrigatorio", "obligatorio", "bắt buộc",
     "必填", "必填項", "必須", "บังคับ", "จำเป็น", "wymagane", "wajib diisi"}
)  # fmt: skip
OPTIONAL_WORDS = frozenset(
    {"optional", "opsional", "conditional", "opcional", "tùy chọn", "tuỳ chọn", "không bắt buộc", "选填", "選填",
     "ไม่บังคับ", "ตัวเลือก", "bersyarat", "condicional", "opcjonalne", "pilihan", "条件必填", "條件必填"}
)  # fmt: skip
HELP_ROWS = 2  # the help rows below the flags row in the current templates
# Our catalog fields read from a filled template, by field code.
READ_AS = {
    "ps_product_name": "name",
    "ps_product_description": "description",
    "ps_sku_parent_short": "sku",
    "ps_brand": "brand",
    "ps_category": "category",
    "ps_price": "price",
    "ps_stock": "stock",
    "ps_weight": "weight",
}


class Shopee(TemplateShop):
    name = "shopee"
    title = "Shopee"
    what = "Shopee mass-upload template"
    import_format = "shopee"
    platform = "shopee"
    files = (SHOPEE_DIR,)

    # --- the template ---------------------------------------------------------------------

    def layout(self, book: Workbook, columns: Mapping[str, str]) -> Layout | None:
        for part in book.sheets():
            sheet = book.sheet(part)
            code_row = min(sheet.cells, default=0)
            codes = field_codes(sheet.row(code_row).values()) if code_row else {}
            if columns["name"] not in codes.values():
                continue
            by_code = {code: column for column, code in field_codes_by_column(sheet.row(code_row)).items()}
            flags = _flags_row(sheet, code_row)
            data_start = max(sheet.grid.frozen_rows + 1, (flags + HELP_ROWS + 1) if flags else code_row + 6)
            labels = sheet.row(flags - 1) if flags and flags - 1 > code_row else {}
            mandatory = {
                column for column, word in sheet.row(flags).items() if word.strip().casefold() in MANDATORY_WORDS
            }
            names = {
                column: f"{code} ({labels[column]})" if labels.get(column) else code for code, column in by_code.items()
            }
            return Layout(
                sheet=sheet,
                columns={ours: by_code[code] for ours, code in columns.items() if code in by_code},
                data_start=data_start,
                key_fields=("sku", "variant_sku"),
                mandatory=mandatory,
                names=names,
            )
        return None

    def cells(
        self, listing: ShopFields, product: Mapping[str, Any], rules: PlatformRules, said: Counter[str]
    ) -> dict[str, str]:
        values = {
            "name": listing.title,
            "description": self.description(listing, rules.description.max_chars, said),
            "sku": listing.sku or listing.id,
        }
        return {**values, **catalog_values(product)}

    @staticmethod
    def description(listing: ShopFields, limit: int | None, said: Counter[str]) -> str:
        """The description cell: the highlights atop, the text, the hashtags below (Shopee reads
        `#tag` in a description as a hashtag), as plain text; hashtags, then highlights, left
        out where the cell would pass the template's limit."""
        text = text_with_breaks(listing.description)
        bullets = "\n".join(f"• {item}" for item in listing.bullets)
        tags = " ".join("#" + "".join(tag.split()) for tag in listing.seo_tags if tag.strip())
        for parts, note in (
            ((bullets, text, tags), None),
            ((bullets, text), "hashtags left out of a description to stay within the template's limit"),
            ((text,), "highlights and hashtags left out of a description to stay within the template's limit"),
        ):
            cell = "\n\n".join(part for part in parts if part)
            if limit is None or len(cell) <= limit:
                if note:
                    said[note] += 1
                return cell
        return text

    # --- a filled template read as a catalog ----------------------------------------------

    def recognises(self, columns: list[str]) -> bool:
        codes = field_codes(columns)
        return "ps_product_name" in codes.values() and any("|" in column for column in columns)

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        codes = field_codes(header)
        rows = _after_header_block(records)
        seen: set[str] = set()
        for line, record in rows:
            by_code = {codes[column]: value for column, value in record.items() if column in codes}
            sku = by_code.get("ps_sku_parent_short") or by_code.get("ps_sku_short") or ""
            if not sku or sku in seen:
                continue  # a variant's row: its product's name and description are on the first
            seen.add(sku)
            row: dict[str, Any] = {"id": sku}
            for code, ours in READ_AS.items():
                if by_code.get(code):
                    row[ours] = by_code[code]
            yield line, finish_product(row, {})

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        count = sum(1 for _ in self.products(header, records, source_locale=source_locale))
        return f"Shopee mass-upload template: {counted(count, 'product')} filled in"


def field_codes(cells: Any) -> dict[str, str]:
    """A code row's cells → their field codes (the part before the first |), cells that are none left out."""
    found = {}
    for cell in cells:
        match = _CODE.match(str(cell).strip())
        if match:
            found[str(cell)] = match.group(1)
    return found


def field_codes_by_column(row: Mapping[int, str]) -> dict[int, str]:
    codes = field_codes(row.values())
    return {column: codes[value] for column, value in row.items() if value in codes}


def _flags_row(sheet: Sheet, code_row: int) -> int:
    """The header block's row of required flags (Mandatory / Optional / Conditional), or 0."""
    return next((row for row in range(code_row + 1, code_row + 9) if is_flags_row(sheet.row(row).values())), 0)


def is_flags_row(cells: Iterable[str]) -> bool:
    """Whether a row is the required flags: one says mandatory, and most of them are flag words."""
    words = [cell.strip().casefold() for cell in cells if cell.strip()]
    known = sum(word in MANDATORY_WORDS or word in OPTIONAL_WORDS for word in words)
    return any(word in MANDATORY_WORDS for word in words) and known * 2 >= len(words)


def _after_header_block(records: Records) -> Records:
    """A filled template's records after its header block. The sheet reader leaves out the rows
    a frozen pane holds; without one, the block ends two help rows after the flags row."""
    first = list(itertools.islice(records, 8))
    flags = next((line for line, record in first if is_flags_row(record.values())), None)
    for line, record in first:
        if flags is None or line > flags + HELP_ROWS:
            yield line, record
    yield from records

"""Lazada: the seller's own Bulk Manage workbook, filled in place (`--format lazada --template
LOCALE=FILE`): OUT/lazada/<locale>.xlsx, one per market (each venture is its own shop).

The workbook has several sheets and only the upload sheet may be edited; it is the sheet whose
row of column labels names the product name and the seller SKU (`*Product Name`, `SellerSKU`:
the default labels are in prompts/lazada/rules.yaml, `lazada_columns:` in localize.yaml overrides
them), and the data starts on the row after the labels. A label starting with `*` is mandatory
(../shared/PLATFORMS.md, "Shopee and Lazada templates"). A listing fills the name, the main
description (HTML, the tags Lazada renders), the short description and highlights (the bullets
as a list) and the SKU; price and quantity come from the catalog where it has them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..checking.sanitize import clean_html
from ..output.layout import LAZADA_DIR
from ..planning.rules import PlatformRules
from ..reading.xlsx import Workbook
from .base import ShopFields, ShopOption, text_map
from .template import TEMPLATES, Layout, TemplateShop, catalog_values, normalised

if TYPE_CHECKING:
    from ..config import Settings

LABEL_ROWS = 10  # the label row is among a sheet's first rows


class Lazada(TemplateShop):
    name = "lazada"
    title = "Lazada"
    what = "Lazada Bulk Manage template"
    import_format = "lazada"
    platform = "lazada"
    files = (LAZADA_DIR,)
    # Our field → the label of the template's column, beside the defaults (a Daraz-style sheet).
    options = (TEMPLATES, ShopOption("lazada_columns", text_map, dict))

    def columns(self, settings: Settings) -> dict[str, str]:
        return {**self.template_rules(settings).columns, **self.setting(settings, "lazada_columns")}

    def layout(self, book: Workbook, columns: Mapping[str, str]) -> Layout | None:
        wanted = {normalised(label): ours for ours, label in columns.items()}
        for part in book.sheets():
            sheet = book.sheet(part)
            for row in sorted(sheet.cells)[:LABEL_ROWS]:
                labels = sheet.row(row)
                found = {
                    wanted[normalised(label)]: column for column, label in labels.items() if normalised(label) in wanted
                }
                if "name" in found and "sku" in found:
                    return Layout(
                        sheet=sheet,
                        columns=found,
                        data_start=row + 1,
                        key_fields=("sku",),
                        mandatory={column for column, label in labels.items() if label.strip().startswith("*")},
                        names={column: label.strip() for column, label in labels.items()},
                    )
        return None

    def cells(
        self, listing: ShopFields, product: Mapping[str, Any], rules: PlatformRules, said: Counter[str]
    ) -> dict[str, str]:
        tags = rules.description.allowed_tags or ("p", "br", "ul", "ol", "li", "strong", "b", "em")
        highlights = listing.bullets_html
        values = {
            "name": listing.title,
            "description": clean_html(listing.description, tags=tags),
            "short_description": highlights,
            "highlights": highlights,
            "sku": listing.sku or listing.id,
        }
        return {**values, **catalog_values(product)}

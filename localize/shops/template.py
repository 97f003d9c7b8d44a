"""A marketplace that takes only its own upload template, filled in place (Shopee, Lazada).

The seller downloads the template from the seller centre (its columns follow the shop's own
settings) and names it per locale (`--template th-TH=FILE`, `templates:` in localize.yaml); each
market is its own shop, so each locale gets its own file, OUT/<shop>/<locale>.xlsx. A template
shop finds the sheet and columns it fills (`layout`); this module does the rest the same way for
both: the rows a seller already started (same SKU) are filled where they stand, other products
go after the last used row, only the data sheet's XML changes (xlsx.fill), no cell a model wrote
can act as a formula, and the summary names the mandatory columns left for the seller.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..checking.sanitize import safe_cell
from ..errors import ConfigError, InputError
from ..locales import Locale, parse_locale
from ..planning.rules import PlatformRules, TemplateRules, load_rules, rules_file
from ..reading.xlsx import MAX_CELL_CHARS, Cell, Sheet, Workbook, WorkbookError, column_letters, fill
from .base import (
    Delivery,
    ImportFile,
    ProductRows,
    Shop,
    ShopFields,
    ShopOption,
    counted,
    formula_keys,
    web_shop_listings,
)

if TYPE_CHECKING:
    from ..config import Settings

# A number a template's numeric column takes as a number (price, stock, weight); anything else is text.
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# The catalog fields the catalog (not a model) fills, by our name: the first a product has.
CATALOG_FIELDS = {"price": ("price",), "stock": ("stock", "quantity"), "weight": ("weight",)}
NAMED = 6  # mandatory columns named one by one in the summary


def _templates(value: Any) -> dict[str, tuple[str, ...]]:
    """{LOCALE: FILE or [FILE, ...]} (localize.yaml), or --template LOCALE=FILE / FILE
    (repeatable; a FILE alone serves the run's one locale, under '')."""
    found: dict[str, tuple[str, ...]] = {}
    if isinstance(value, dict):
        for code, files in value.items():
            tag = parse_locale(str(code)).tag if str(code).strip() else ""
            listed = files if isinstance(files, (list, tuple)) else [files]
            found[tag] = (*found.get(tag, ()), *(str(file) for file in listed))
        return found
    for item in [value] if isinstance(value, str) else list(value):
        code, sep, file = str(item).partition("=")
        tag = ""
        if sep:
            try:
                tag = parse_locale(code.strip()).tag
            except InputError:
                if not any(char in code for char in "/\\."):
                    raise  # meant as a locale: say what is wrong with it
                file = str(item)  # a file name with '=' in it
        else:
            file = code
        if not file.strip():
            raise ValueError(f"must be LOCALE=FILE such as th-TH=shopee_th.xlsx, not {item!r}")
        found[tag] = (*found.get(tag, ()), file.strip())
    return found


# The seller's templates, by locale: templates: in localize.yaml, --template on top (Shopee's and
# Lazada's alike: which shop a file is for is told by its content).
TEMPLATES = ShopOption("templates", _templates, dict, flag="template")


@dataclass(slots=True)
class Layout:
    """Where a template takes its data: the sheet, the column of each of our fields, the first
    data row, which columns are mandatory and how the summary names a column."""

    sheet: Sheet
    columns: dict[str, int]
    data_start: int
    key_fields: tuple[str, ...]  # our fields whose value names a started row's product (SKUs)
    mandatory: set[int] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)

    def name(self, column: int) -> str:
        return self.names.get(column) or column_letters(column)


@dataclass(slots=True)
class Template:
    path: Path
    layout: Layout


class TemplateShop(Shop):
    """A shop whose import file is the seller's own template (see the module's docstring)."""

    what: ClassVar[str]  # how the template is named in messages
    options: ClassVar[tuple[ShopOption, ...]] = (TEMPLATES,)

    def layout(self, book: Workbook, columns: Mapping[str, str]) -> Layout | None:
        """Where this shop's template takes its data, or None when the workbook is not one."""
        raise NotImplementedError

    def cells(
        self, listing: ShopFields, product: Mapping[str, Any], rules: PlatformRules, said: Counter[str]
    ) -> dict[str, str]:
        """A listing's values by our field name (the key fields among them); what the summary
        should say about them is counted in `said` (a note → how many listings)."""
        raise NotImplementedError

    def columns(self, settings: Settings) -> dict[str, str]:
        """Our field → the template's column (a code or label): the rules' map with the settings' on top."""
        return dict(self.template_rules(settings).columns)

    # --- the shared machinery --------------------------------------------------------------

    def rules(self, settings: Settings) -> PlatformRules:
        assert self.platform is not None
        return load_rules(rules_file(self.platform, settings.prompts_dir), settings.rules.get(self.platform))

    def template_rules(self, settings: Settings) -> TemplateRules:
        found = self.rules(settings).template
        if found is None:
            raise ConfigError(
                f"the {self.title} rules have no template: section",
                where=str(rules_file(str(self.platform), settings.prompts_dir)),
                hint="copy it from the built-in prompts/<platform>/rules.yaml",
            )
        return found

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        """Every asked locale has a template of this shop's, readable and laid out as expected."""
        for locale in settings.locales:
            self.template_for(settings, locale)

    def template_for(self, settings: Settings, locale: Locale) -> Template:
        templates = self.setting(settings, "templates")
        given = list(templates.get(locale.tag, ()))
        if "" in templates:
            if len(settings.locales) != 1:
                raise ConfigError(
                    f"--template {templates[''][0]} names no locale, and the run has {len(settings.locales)}",
                    where="--template",
                    hint="name each market's template: --template th-TH=FILE (repeatable)",
                )
            given += templates[""]
        rules = self.template_rules(settings)
        columns = self.columns(settings)
        others = []
        for path in map(Path, given):
            layout = self._read_layout(path, columns)
            if layout is not None:
                return Template(path, layout)
            others.append(path)
        given_text = f" ({', '.join(map(str, others))} is not one)" if others else ""
        raise ConfigError(
            f"--format {self.import_format} needs the seller's own {self.what} for {locale.tag}{given_text}",
            where="--template",
            hint=f"download it ({rules.download}) and pass --template {locale.tag}=FILE",
        )

    def _read_layout(self, path: Path, columns: Mapping[str, str]) -> Layout | None:
        if not path.is_file():
            raise ConfigError("no such template file", where=str(path), hint="check the --template path")
        try:
            with Workbook(path) as book:
                return self.layout(book, columns)
        except WorkbookError as exc:
            raise ConfigError(
                f"the template cannot be read: {exc}",
                where=str(path),
                hint="pass the .xlsx file as the seller centre gave it",
            ) from None

    def write(self, delivery: Delivery) -> list[ImportFile]:
        settings = delivery.settings
        folder = delivery.out / self.files[0]
        if folder.exists():
            shutil.rmtree(folder)  # a market no longer asked for must not stay behind
        folder.mkdir()
        assert self.platform is not None
        rules = self.rules(settings)
        listings = web_shop_listings(delivery.results, self.platform)
        products = {product_id: fields for product_id, fields in delivery.products(self.platform)}
        written = []
        for locale in settings.locales:
            template = self.template_for(settings, locale)
            mine = [listing for listing in listings if listing.locale == locale.tag]
            target = folder / f"{locale.tag}{template.path.suffix.lower() or '.xlsx'}"
            file = self._fill(template, target, mine, products, rules.for_locale(locale.tag))
            file.failed = len(set(products) - {listing.id for listing in mine})
            written.append(file)
        return written

    def _fill(
        self,
        template: Template,
        target: Path,
        listings: Iterable[ShopFields],
        products: Mapping[str, Mapping[str, Any]],
        rules: PlatformRules,
    ) -> ImportFile:
        layout = template.layout
        sheet = layout.sheet
        started = _started_rows(layout)
        started_rows = set(started.values())
        first_new = next_row = max(sheet.last_row, layout.data_start - 1) + 1
        cells: dict[int, dict[int, Cell]] = {}
        filled = new = 0
        formulas = too_long = 0
        keys = []
        said: Counter[str] = Counter()
        for listing in listings:
            values = self.cells(listing, products.get(listing.id, {}), rules, said)
            if any(len(value) > MAX_CELL_CHARS for value in values.values()):
                too_long += 1
                continue
            row = started.get(listing.sku or listing.id)
            if row is None:
                row, next_row, new = next_row, next_row + 1, new + 1
            else:
                filled += 1
            for name, value in values.items():
                column = layout.columns.get(name)
                if column is None or (name in layout.key_fields and row in started_rows):
                    continue  # a column the template lacks; a started row keeps its own SKU
                if (row, column) in sheet.formulas:
                    formulas += 1
                    continue
                if name in layout.key_fields:
                    keys.append(value)
                    cells.setdefault(row, {})[column] = Cell(value)
                elif name in CATALOG_FIELDS and _NUMBER.fullmatch(value):
                    cells.setdefault(row, {})[column] = Cell(value, number=True)
                elif value:
                    cells.setdefault(row, {})[column] = Cell(safe_cell(value))
        try:
            fill(template.path, target, sheet.part, cells)
        except WorkbookError as exc:  # changed since the check before sending, or XML we cannot patch
            raise ConfigError(
                f"the template cannot be filled: {exc}",
                where=str(template.path),
                hint="the listings are in results.jsonl; download the template again and run the same command",
            ) from None
        parts = []
        if filled:
            parts.append(f"{counted(filled, 'row')} the seller started, filled where they stand")
        if new:
            parts.append(f"{counted(new, 'new row')} from row {first_new}")
        notes = [f"Filled in {template.path.name} (sheet {sheet.part.name!r}): {'; '.join(parts) or 'no listing'}."]
        empty = _empty_mandatory(layout, cells)
        if empty:
            named = ", ".join(layout.name(column) for column in empty[:NAMED])
            more = f" and {len(empty) - NAMED} more" if len(empty) > NAMED else ""
            notes.append(f"Mandatory columns left for you to fill before uploading: {named}{more}.")
        if formulas:
            notes.append(f"{counted(formulas, 'cell')} kept: the seller's formulas.")
        if too_long:
            notes.append(
                f"{counted(too_long, 'listing')} left out: a field longer than a cell holds ({MAX_CELL_CHARS:,})."
            )
        notes += [f"{note} ({count:,})." for note, count in said.items()] + formula_keys(keys)
        return ImportFile(self.name, target, filled + new, notes=notes)


def catalog_values(product: Mapping[str, Any]) -> dict[str, str]:
    """What the catalog (not a model) gives a template row: price, stock, weight where it has them."""
    values = {}
    for ours, names in CATALOG_FIELDS.items():
        found = next((str(product[name]).strip() for name in names if str(product.get(name) or "").strip()), "")
        if found:
            values[ours] = found
    return values


def _started_rows(layout: Layout) -> dict[str, int]:
    """The rows a seller already started, by SKU: the first key field names a product (its
    first row takes the listing), the others a variant's row, which maps to its product's first."""
    started: dict[str, int] = {}
    columns = [layout.columns[name] for name in layout.key_fields if name in layout.columns]
    for row in sorted(layout.sheet.cells):
        if row < layout.data_start or not columns:
            continue
        cells = layout.sheet.cells[row]
        product = cells.get(columns[0], "").strip()
        first = started.setdefault(product, row) if product else row
        for column in columns[1:]:
            value = cells.get(column, "").strip()
            if value:
                started.setdefault(value, first)
    return started


def _empty_mandatory(layout: Layout, cells: Mapping[int, Mapping[int, Cell]]) -> list[int]:
    """The mandatory columns some written row leaves empty."""
    empty = set()
    for row, values in cells.items():
        have = layout.sheet.row(row)
        empty |= {column for column in layout.mandatory if column not in values and not have.get(column, "").strip()}
    return sorted(empty)


def normalised(label: str) -> str:
    """A column label as matched: without a leading * (a mandatory mark), spaces folded, any case."""
    return " ".join(label.strip().lstrip("*").split()).casefold()

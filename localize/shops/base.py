"""What every shop is, and the rules all shops share.

A shop (shops/*.py) may read its own export as a catalog (`recognises` its header, turns its
rows into products) and may write its own import file from the run's listings (`import_format`,
`write`). Between a listing and a shop's fields there is one mapping (`ShopFields`): the
highlights become the short description's list, the search terms one keywords cell, the meta
title falls back to the title; every shop writes from it, so no two disagree.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..checking.sanitize import clean_html, formula_start, plain_text, safe_cell
from ..errors import ConfigError, InputError
from ..locales import Locale, parse_locale
from ..reading.textfile import Records

if TYPE_CHECKING:
    from ..config import Settings

# A row of a shop's export as our fields, with the line it starts on.
Row = tuple[int, dict[str, Any]]
# The catalog's products the run lists on a platform, as (id, fields): read when asked.
ProductRows = Callable[[str], Iterable[tuple[str, Mapping[str, Any]]]]
# What is wrong with a translation a person kept (source, translation, locale), or None.
Lint = Callable[[str, str, Locale], "str | None"]


class Delivery:
    """What a run's import files are written from. The run's results and store strings are
    read from OUT when a shop first asks for them (a run that writes no import file reads none)."""

    def __init__(
        self,
        out: Path,
        settings: Settings,
        catalog: Path,
        results: Callable[[], Iterable[Mapping[str, Any]]],
        strings: Callable[[], Mapping[tuple[str, str], str]],
        products: ProductRows,
        *,
        lint: Lint | None = None,
    ) -> None:
        self.out, self.settings, self.catalog, self.lint = out, settings, catalog, lint
        self._results, self._strings = results, strings
        self.products = products  # the catalog's products on a platform (id, fields)

    @cached_property
    def results(self) -> list[Mapping[str, Any]]:
        """Every listing of the run (results.jsonl)."""
        return list(self._results())

    @cached_property
    def strings(self) -> Mapping[tuple[str, str], str]:
        """A store string's translation by (key, locale tag)."""
        return self._strings()


@dataclass(slots=True)
class ImportFile:
    """One import file a run wrote: where, how many rows, and what became of the rest."""

    shop: str
    path: Path
    rows: int
    kept: int = 0  # rows left with a person's text
    failed: int = 0  # rows a listing should have filled and did not
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"shop": self.shop, "path": str(self.path), "rows": self.rows, "kept": self.kept, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class StoreString:
    """A shop's text beside its listings (a collection title, a purchase note, an attribute's
    value) to translate on its own: its key names it in strings.jsonl and the import file.
    `needs`: per language code of the export, whether it still needs a translation there (a
    language it does not name needs one)."""

    key: str
    type: str
    field: str
    text: str
    needs: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    store: str = "Shopify"  # the kind of store the texts are for, as the request names it


@dataclass(frozen=True, slots=True)
class ShopOption:
    """A setting a shop reads, declared by the shop: its key in localize.yaml, how a value is
    read (ValueError says why it cannot be), its default, and the environment variable and the
    command-line flag that set it (a flag's LOCALE=VALUE pairs add to the key's mapping)."""

    key: str
    read: Callable[[Any], Any]
    default: Callable[[], Any]
    env: str | None = None
    flag: str | None = None  # the flag's name in the CLI's flags (store_view for --store-view)


class Shop:
    """A shop's reader, writer and pre-checks. Every hook has a do-nothing default, so a shop
    defines only what it has."""

    name: ClassVar[str]  # how the shop is named on the command line
    title: ClassVar[str]  # how a merchant names it
    # The --format value that writes its import file, and the names that file takes in OUT
    # (removed when a run does not ask for it, so OUT never holds a stale one).
    import_format: ClassVar[str | None] = None
    files: ClassVar[tuple[str, ...]] = ()
    # The platform (prompts/<platform>/) its export's products are written for, unless a row's
    # platform column or --platform says otherwise.
    platform: ClassVar[str | None] = None
    # The settings it reads (localize.yaml keys, environment variables, flags): its own.
    options: ClassVar[tuple[ShopOption, ...]] = ()

    def setting(self, settings: Settings, key: str) -> Any:
        """One of its settings' values, read (its default when none is set)."""
        option = next(option for option in self.options if option.key == key)
        return option_value(option, settings)

    def recognises(self, columns: list[str]) -> bool:
        """Whether a CSV header is this shop's export."""
        return False

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        """The export's products, in our fields; `source_locale` (`--source-locale`) names which
        of an export's languages holds the copy, where it has several."""
        raise NotImplementedError

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        """What the export holds and reads as, in a line for the run's first lines."""
        return f"{self.title} export"

    def parent_of(self, records: Records, row_id: str) -> str | None:
        """The product a row of the export is folded into (a variation, a simple child, a
        variant named by its SKU), or None: `localize prompt --id` of that row shows its product's."""
        return None

    def asked(self, settings: Settings, catalog: Path) -> bool:
        """Whether the run writes this shop's import file."""
        return self.import_format is not None and self.import_format in settings.formats

    def strings(self, catalog: Path) -> list[StoreString]:
        """The texts beside the listings its import file carries, once each (asked only when
        the run writes that file)."""
        return []

    def translations(self, catalog: Path) -> Iterable[tuple[str, str, str]]:
        """Translations a person already made in the shop's export, as (source text, language
        code, translation): they serve the same text elsewhere in the file (a memory)."""
        return ()

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        """Before anything is sent: what writing the import file will need (exit 2 if missing);
        `products` reads the catalog's products on a platform."""

    def write(self, delivery: Delivery) -> list[ImportFile]:
        """Write the import file(s) into delivery.out; the files written."""
        return []


def option_value(option: ShopOption, settings: Settings) -> Any:
    """A shop setting's value: localize.yaml's, the environment's over it, a flag's over both
    (a flag's pairs added to the mapping); ConfigError naming where a value cannot be read."""
    raw = settings.shop.get(option.key)
    where = settings.shop_origin.get(option.key, option.key)
    if option.env and os.environ.get(option.env, "").strip():
        raw, where = os.environ[option.env].strip(), option.env
    try:
        value = option.default() if raw is None else option.read(raw)
        if option.flag and settings.shop.get(option.flag) is not None:
            where = settings.shop_origin.get(option.flag, option.flag)
            value = {**value, **option.read(settings.shop[option.flag])}
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc), where=where) from None
    except InputError as exc:  # a locale that is none
        raise ConfigError(exc.message, where=where, hint=exc.hint) from None
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty text, not {value!r}")
    return value.strip()


def text_map(value: Any) -> dict[str, str]:
    """A mapping of texts (YAML), or KEY=VALUE pairs (a flag, repeatable or comma separated)."""
    if isinstance(value, (list, tuple, str)):
        items = [value] if isinstance(value, str) else list(value)
        found = {}
        for item in (part for entry in items for part in str(entry).split(",")):
            key, sep, rest = item.partition("=")
            if not sep or not key.strip() or not rest.strip():
                raise ValueError(f"must be KEY=VALUE such as de-DE=de, not {item.strip()!r}")
            found[key.strip()] = rest.strip()
        return found
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping such as {{de-DE: de}}, not {value!r}")
    return {str(key): str(item) for key, item in value.items()}


def locale_map(value: Any) -> dict[str, str]:
    """A mapping keyed by locales, read as --locales reads them (`en_us` is en-US)."""
    return {parse_locale(key).tag: item for key, item in text_map(value).items()}


def one_of(*choices: str) -> Callable[[Any], str]:
    def read(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"input should be {' or '.join(map(repr, choices))} (got {value!r})")
        return str(value)

    return read


# --- the one mapping of a listing to a shop's fields ----------------------------------------


@dataclass(frozen=True, slots=True)
class ShopFields:
    """A listing's text as shops store it, safe to publish whatever results.jsonl holds: the
    description's HTML reduced to what storefronts render, every other field plain text."""

    id: str
    sku: str
    locale: str
    platform: str
    title: str
    description: str
    bullets: tuple[str, ...]
    seo_tags: tuple[str, ...]
    seo_title: str
    seo_description: str

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> ShopFields:
        extra = result.get("extra") or {}
        return cls(
            id=str(result["id"]),
            sku=str(result.get("sku") or ""),
            locale=str(result["locale"]),
            platform=str(result.get("platform") or ""),
            title=plain_text(str(result.get("title") or "")),
            description=clean_html(str(result.get("description") or "")),
            bullets=tuple(plain_text(str(item)) for item in result.get("bullets") or []),
            seo_tags=tuple(plain_text(str(item)) for item in result.get("seo_tags") or []),
            seo_title=plain_text(str(extra.get("seo_title") or "")),
            seo_description=plain_text(str(extra.get("seo_description") or "")),
        )

    @property
    def bullets_html(self) -> str:
        """The highlights as an HTML list (a shop's short description), or empty."""
        items = "".join(f"<li>{html.escape(item)}</li>" for item in self.bullets)
        return f"<ul>{items}</ul>" if items else ""

    def keywords(self, separator: str = ", ") -> str:
        return separator.join(self.seo_tags)

    @property
    def meta_title(self) -> str:
        """The page title a search engine shows: the SEO title where one was written, else the title."""
        return self.seo_title or self.title

    @property
    def meta_description(self) -> str:
        return self.seo_description


def web_shop_listings(results: Iterable[Mapping[str, Any]], shop: str) -> list[ShopFields]:
    """The listings a web shop imports: those written for it (`-p magento`), else the shopify
    platform's (written for a shop's own product page), else those of the run's only platform."""
    results = list(results)
    platforms = {result.get("platform") for result in results}
    chosen = next((name for name in (shop, "shopify") if name in platforms), None)
    if chosen is None and len(platforms) == 1:
        chosen = next(iter(platforms))
    return [ShopFields.of(result) for result in results if result.get("platform") == chosen]


def csv_text(
    header: Iterable[str], rows: Iterable[Iterable[object]], *, keys: Collection[str] = (), **options: Any
) -> str:
    """A CSV file's text whose cells a spreadsheet shows as text (sanitize.safe_cell): a text
    from the catalog or a model that starts like a formula gets a leading apostrophe. The
    `keys` columns (the ID or SKU the shop's importer matches its product by) are written as
    they are: an apostrophe would name another product (formula_keys says how many start so)."""
    header = list(header)
    exempt = {index for index, name in enumerate(header) if name in keys}
    buffer = io.StringIO()
    writer = csv.writer(buffer, **options)
    writer.writerow(header)
    for row in rows:
        cells = (
            "" if value is None else str(value) if at in exempt else safe_cell(value) for at, value in enumerate(row)
        )
        writer.writerow(list(cells))
    return buffer.getvalue()


def formula_keys(values: Iterable[object]) -> list[str]:
    """The notes of an import file whose ID or SKU cells start like a formula (written as they
    are, so the shop finds its product): open it as text, not in a spreadsheet."""
    count = sum(1 for value in values if formula_start(str(value or "")))
    if not count:
        return []
    return [
        f"{count:,} ID or SKU cell{'' if count == 1 else 's'} start like a spreadsheet formula and are written as "
        "they are (the shop matches its product by them): import the file as it is, do not open it in a spreadsheet."
    ]


# --- helpers of the readers -----------------------------------------------------------------


def lowered(record: Mapping[str, str]) -> dict[str, str]:
    """A record keyed by its column names in lower case (shops' exports vary in case)."""
    return {name.lower(): value for name, value in record.items()}


def multi(cell: str, separator: str) -> list[str]:
    """A multi-value cell: values separated by `separator`, or one per line."""
    return [item.strip() for part in cell.splitlines() for item in part.split(separator) if item.strip()]


def add_option(options: dict[str, list[str]], name: str, value: str) -> None:
    """One variant's value of an option (size, colour), each value once."""
    name, value = name.strip(), value.strip()
    if name and value and value not in options.setdefault(name, []):
        options[name].append(value)


def finish_product(row: dict[str, Any], options: Mapping[str, list[str]]) -> dict[str, Any]:
    """A shop export's product with its variants' options folded in, empty fields dropped."""
    if options:
        row["options"] = [f"{name}: {', '.join(values)}" for name, values in options.items() if values]
    return {key: value for key, value in row.items() if value not in ("", [], None)}


def counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def kinds(records: Records, column: str) -> Counter[str]:
    """How many rows carry each value of a column (matched in any case)."""
    return Counter(lowered(record).get(column, "").strip().lower() for _, record in records)

"""Read a catalog (CSV, JSON, JSONL or a spreadsheet) into Product records, one at a time.

A product catalog is never held whole: CSV and JSONL are read line by line, and a JSON list
is decoded one element at a time (a single value up to 16 MB). A shop's own export (shops/) is
recognised by its header and read by that shop; where a product's rows may stand anywhere
(variations, a Translate & Adapt export), that shop holds them until the file ends. Every
problem is a CatalogError naming file, line and column.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from .. import shops
from ..errors import CatalogError
from ..shops.translate_adapt import TRANSLATIONS_KEY
from .fields import FieldSelection
from .textfile import (
    MAX_LINE_BYTES,
    Format,
    Records,
    Unrepeated,
    catalog_format,
    decoded_lines,
    open_file,
    table_header,
    table_records,
)

REQUIRED = ("id", "name")
LIST_FIELDS = ("features", "keywords", "platform", "locales", "options")
# Our field names, matched in a CSV header in any case.
KNOWN_FIELDS = frozenset(
    {*REQUIRED, *LIST_FIELDS, "sku", "brand", "description", "category", "tone", "product_type", "material"}
)
# A shop export's product carries the platform of its shop (the default without --platform).
SHOP_KEY = "shop_platform"
# Columns that steer the run (which jobs a row gets) rather than describe the product.
CONTROL_FIELDS = ("id", "platform", "locales", TRANSLATIONS_KEY, SHOP_KEY)
# A market's own search terms: `keywords[de-DE]` (documented), or `keywords_de-DE`. They reach
# only that market's prompt, instead of the source keywords (prompts.PromptSet.render_user).
_MARKET_KEYWORDS = re.compile(
    r"keywords(?:\[([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\]|_([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})+))"
)


@lru_cache(maxsize=4096)
def market_of(column: str) -> str | None:
    """The market a `keywords[xx-YY]` (or `keywords_xx-YY`) column is for (None for any other)."""
    if column[:9] not in ("keywords[", "keywords_"):
        return None  # (most columns: no regex)
    match = _MARKET_KEYWORDS.fullmatch(column)
    return (match.group(1) or match.group(2)) if match else None


_JSON_SHAPE_HINT = 'expected a list of products, or {"products": [...]}'


@dataclass(frozen=True, slots=True)
class Product:
    """One catalog row. `fields` holds every non-empty column, list fields already split."""

    id: str
    name: str
    fields: Mapping[str, Any]
    line: int  # where the row starts in its file, for messages
    left_out: tuple[str, ...] = ()  # its columns that do not reach the model (fields.py)
    # Whether it gives markets their own search terms (`keywords[de-DE]`): found once, as it is made.
    has_market_keywords: bool = field(init=False, default=False, repr=False, compare=False)
    _copy_chars: int = field(init=False, default=-1, repr=False, compare=False)  # copy_chars(), once asked

    def __post_init__(self) -> None:
        # (most products have no market column, told by a search of their column names together)
        names = "\0".join(self.fields)
        named = ("keywords[" in names or "keywords_" in names) and any(market_of(key) for key in self.fields)
        object.__setattr__(self, "has_market_keywords", named)

    def data(self) -> dict[str, Any]:
        """What the model sees: the descriptive fields, without the run-steering columns (nor
        the markets' own keywords: each goes to its market's prompt alone)."""
        return {
            key: value
            for key, value in self.fields.items()
            if key not in CONTROL_FIELDS and not (self.has_market_keywords and market_of(key))
        }

    def market_keywords(self, tag: str) -> tuple[str, ...]:
        """The search terms the catalog gives this market (`keywords[de-DE]`), or none."""
        if not self.has_market_keywords:
            return ()
        for key, value in self.fields.items():
            if (market_of(key) or "").lower() == tag.lower():
                items = value.split("|") if isinstance(value, str) else [str(item) for item in value]
                return tuple(item.strip() for item in items if item.strip())
        return ()

    def copy_chars(self) -> int:
        """How much text the product carries (its strings and list items), to size its checks
        (counted once: each of its jobs asks)."""
        if self._copy_chars < 0:
            chars = sum(
                len(value) if isinstance(value, str) else sum(len(str(item)) for item in value)
                for value in self.fields.values()
                if isinstance(value, (str, list, tuple))
            )
            object.__setattr__(self, "_copy_chars", chars)
        return self._copy_chars

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.fields.get("platform", ()))

    @property
    def default_platform(self) -> str | None:
        """The platform a shop's export is written for (None for a catalog of our own)."""
        value = self.fields.get(SHOP_KEY)
        return str(value) if value else None

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(self.fields.get("locales", ()))

    @property
    def translations(self) -> Mapping[str, bool] | None:
        """From a Shopify translations export: per language code of the export, whether a
        listing row still needs a translation (None for any other catalog)."""
        return self.fields.get(TRANSLATIONS_KEY)


def read_catalog(
    path: Path | str,
    *,
    columns: Mapping[str, str] | None = None,
    duplicates: str = "error",
    fields: FieldSelection | None = None,
    source_locale: str | None = None,
) -> Iterator[Product]:
    """Yield the catalog's products in file order, checking ids as it goes. `columns` maps our
    field names to the file's (`{"id": "Handle"}`); a Shopify product export needs none.
    A repeated id is an error naming every repeated id (`duplicates="error"`), or its later
    rows are skipped (`"first"`: each id's first row is kept). `fields` chooses the columns that
    reach the model (by default, those that are copy: fields.py); `source_locale` which of a shop
    export's languages holds the copy (by default, the shop's rule decides)."""
    path = Path(path)
    seen: dict[str, int] = {}
    products = _products(path, dict(columns or {}), fields or FieldSelection(), source_locale)
    for product in products:
        first = seen.setdefault(product.id, product.line)
        if first != product.line:
            if duplicates == "first":
                continue
            raise _duplicates_error(path, product, first, products, seen)
        yield product


def _products(
    path: Path, columns: Mapping[str, str], selection: FieldSelection, source_locale: str | None = None
) -> Iterator[Product]:
    """Every row of the catalog as a Product, repeated ids and all."""
    with open_file(path) as handle:
        fmt = catalog_format(path, handle)
        if fmt in ("csv", "sheet"):
            rows = _csv_rows(path, handle, columns, source_locale)
        else:
            reader = _json_rows if fmt == "json" else _jsonl_rows
            rows = _renamed(path, reader(path, handle), columns)
        found = False
        for line, row in rows:
            found = True
            yield _product(path, line, row, fmt, selection)
        if not found:
            what = "the file has a header but no products" if fmt in ("csv", "sheet") else "no products in the file"
            raise CatalogError(path, what, hint="add one row per product")


# Duplicate ids named one by one in the error; the rest are counted.
DUPLICATES_LISTED = 10


def _duplicates_error(
    path: Path, product: Product, first: int, rest: Iterator[Product], seen: dict[str, int]
) -> CatalogError:
    """Every repeated id of the file, read to its end: one error naming the first few (with
    their lines) and counting all, so a file with 92 of them is fixed in one go."""
    product_id, line = product.id, product.line
    repeated: dict[str, list[int]] = {product_id: [first, line]}
    for later in rest:
        if later.id in repeated:
            repeated[later.id].append(later.line)
        elif seen.setdefault(later.id, later.line) != later.line:
            repeated[later.id] = [seen[later.id], later.line]
    hint = "every product needs a unique id; --duplicates first keeps each id's first row"
    if len(repeated) == 1:
        lines = repeated[product_id]
        again = f", again at {', '.join(map(str, lines[2:]))}" if len(lines) > 2 else ""
        return CatalogError(path, f"duplicate id {product_id!r} (first at line {first}{again})", line=line, hint=hint)
    listed = "; ".join(
        f"{key!r} (lines {', '.join(map(str, lines))})" for key, lines in list(repeated.items())[:DUPLICATES_LISTED]
    )
    more = f"; and {len(repeated) - DUPLICATES_LISTED} more" if len(repeated) > DUPLICATES_LISTED else ""
    return CatalogError(path, f"{len(repeated)} ids are repeated: {listed}{more}", line=line, hint=hint)


def count_duplicates(path: Path | str, *, columns: Mapping[str, str] | None = None) -> int:
    """How many rows repeat an earlier row's id (what `--duplicates first` skips)."""
    seen: set[str] = set()
    repeated = 0
    for product in _products(Path(path), dict(columns or {}), FieldSelection()):
        repeated += product.id in seen
        seen.add(product.id)
    return repeated


# --- CSV -------------------------------------------------------------------------------


def _csv_rows(
    path: Path, handle: BinaryIO, columns: Mapping[str, str], source_locale: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows keyed by our field names: renamed by the column map, or read by the shop whose
    export it is."""
    header, records = table_records(path, handle)
    named = [name for name in header if name]
    columns = _check_mapped(path, columns, named)
    shop = None if columns else shops.recognise(named)  # a shop's own export reads without a mapping
    if shop is not None:
        for line, product in shop.products(named, iter(Unrepeated(records)), source_locale=source_locale):
            if shop.platform:
                product[SHOP_KEY] = shop.platform  # written for the shop the export comes from
            yield line, product
        return
    ours = {theirs: our for our, theirs in columns.items()}
    # Our own field names match in any case ("ID", "Name"), unless a mapping says otherwise.
    for name in header:
        if name and name not in ours and name.lower() in KNOWN_FIELDS and name.lower() not in columns:
            ours[name] = name.lower()
    renamed = [ours.get(name, name) for name in header]
    _header(path, renamed)
    for line, record in records:
        row: dict[str, Any] = {}
        for name, cell in record.items():
            name = ours.get(name, name)
            if name in LIST_FIELDS:
                items = [item.strip() for item in cell.split("|") if item.strip()]
                if items:
                    row[name] = items
            elif cell:
                row[name] = cell
        yield line, row


def _check_mapped(path: Path, columns: Mapping[str, str], have: list[str]) -> dict[str, str]:
    """The mapping with each column as the file spells it (matched in any case), or a
    CatalogError naming the nearest columns."""
    by_lower = {name.lower(): name for name in have}
    found = {}
    for ours, theirs in columns.items():
        if theirs in have or theirs.lower() in by_lower:
            found[ours] = theirs if theirs in have else by_lower[theirs.lower()]
            continue
        near = difflib.get_close_matches(theirs.lower(), list(by_lower), n=3, cutoff=0.5)
        listed = ", ".join(have[:12]) + (", ..." if len(have) > 12 else "")
        hint = (
            f"did you mean {', '.join(repr(by_lower[name]) for name in near)}?" if near else f"the file has: {listed}"
        )
        raise CatalogError(path, f"column {theirs!r} (mapped to {ours}) is not in the file", line=1, hint=hint)
    return found


def _header(path: Path, columns: list[str]) -> list[str]:
    named = [name for name in columns if name]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        have = ", ".join(named[:8]) + (", ..." if len(named) > 8 else "")
        raise CatalogError(
            path,
            f"missing required column{'s' if len(missing) > 1 else ''} " + " and ".join(repr(name) for name in missing),
            line=1,
            hint=f"the header has: {have}; rename columns or map them with --map "
            + ",".join(f"{name}={_stand_in(name, named)}" for name in missing),
        )
    return columns


# The columns that usually hold our required fields in other tools' files, most likely first.
_STAND_INS = {
    "id": ("sku", "product_id", "item_id", "asin", "handle", "code", "identifier", "ean", "gtin"),
    "name": ("title", "product_name", "item_name", "post_title", "label"),
}


def _stand_in(field: str, columns: list[str]) -> str:
    """The header's column that most likely holds `field` (`sku` for id, `title` for name),
    as the file spells it; COLUMN where none does."""
    by_lower = {column.lower().replace(" ", "_"): column for column in columns}
    return next((by_lower[name] for name in _STAND_INS.get(field, ()) if name in by_lower), "COLUMN")


def folded_into(path: Path, row_id: str, *, columns: Mapping[str, str] | None = None) -> str | None:
    """The product a shop export's row is folded into (a WooCommerce variation, a Magento
    simple child, a Shopify variant's SKU), or None."""
    with _shop_export(path, columns) as export:
        return export[0].parent_of(export[2], row_id) if export is not None else None


def recognised(path: Path, *, columns: Mapping[str, str] | None = None, source_locale: str | None = None) -> str | None:
    """What kind of shop export a CSV catalog is and what it reads as, in a line (None for a
    catalog in our own columns, a mapped one, or anything but a CSV file)."""
    with _shop_export(path, columns) as export:
        if export is None:
            return None
        shop, header, records = export
        unrepeated = Unrepeated(records)
        return shop.describe(header, iter(unrepeated), source_locale=source_locale) + unrepeated.said()


@contextmanager
def _shop_export(
    path: Path, columns: Mapping[str, str] | None
) -> Iterator[tuple[shops.Shop, list[str], Records] | None]:
    """A shop's export read from its start: the shop, the header and the records (None for a
    catalog in our own columns, a mapped one, or anything but a CSV file)."""
    header = table_header(path) if not columns and path.is_file() else None
    shop = shops.recognise(header) if header is not None else None
    if shop is None or header is None:
        yield None
        return
    with open_file(path) as handle:
        catalog_format(path, handle)
        _, records = table_records(path, handle)
        yield shop, header, records


# --- JSON and JSONL ----------------------------------------------------------------------


def _renamed(path: Path, rows: Iterator[tuple[int, Any]], columns: Mapping[str, str]) -> Iterator[tuple[int, Any]]:
    """JSON rows with their keys renamed by the column map (checked on the first product)."""
    ours = {theirs: our for our, theirs in columns.items()}
    first = True
    for line, row in rows:
        if ours and isinstance(row, dict):
            if first:
                _check_mapped(path, columns, list(row))
            row = {ours.get(key, key): value for key, value in row.items()}
        first = False
        yield line, row


def _jsonl_rows(path: Path, handle: BinaryIO) -> Iterator[tuple[int, Any]]:
    for number, text in enumerate(decoded_lines(path, handle), start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except RecursionError:
            raise CatalogError(path, "a value is nested too deeply", line=number) from None
        except json.JSONDecodeError as exc:
            raise CatalogError(
                path,
                f"invalid JSON: {exc.msg}",
                line=number,
                column=exc.colno,
                hint="each line must be one complete JSON object",
            ) from None


def _json_rows(path: Path, handle: BinaryIO) -> Iterator[tuple[int, Any]]:
    stream = _JsonStream(path, decoded_lines(path, handle, pieces=True))
    opening = stream.next_char()
    if opening == "[":
        yield from stream.array_items()
    elif opening == "{":
        yield from _products_member(stream)
    else:
        raise stream.error("the top level is not a list or an object", hint=_JSON_SHAPE_HINT)
    if stream.next_char(required=False):
        raise stream.error("unexpected data after the end of the JSON value")


def _products_member(stream: _JsonStream) -> Iterator[tuple[int, Any]]:
    """Find "products" in a top-level object and stream its list; skip other members."""
    found = False
    char = stream.next_char()
    while char != "}":
        if char != '"':
            raise stream.error("expected a quoted member name")
        stream.unread()
        key = stream.value()[1]
        if stream.next_char() != ":":
            raise stream.error("expected ':' after a member name")
        if key == "products":
            if stream.next_char() != "[":
                raise stream.error('"products" is not a list', hint=_JSON_SHAPE_HINT)
            found = True
            yield from stream.array_items()
        else:
            stream.value()
        char = stream.next_char()
        if char == ",":
            char = stream.next_char()
        elif char != "}":
            raise stream.error("expected ',' or '}' in the top-level object")
    if not found:
        raise stream.error('the object has no "products" list', hint=_JSON_SHAPE_HINT)


class _JsonStream:
    """Decodes a JSON document value by value from a stream of lines.

    Only about one chunk plus the value being decoded is buffered, so the file is never held
    whole; positions are tracked so errors can name line and column.
    """

    _CHUNK = 1 << 16

    def __init__(self, path: Path, lines: Iterator[str]) -> None:
        self._path = path
        self._lines = lines
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self._decoder = json.JSONDecoder()
        # Newlines are counted incrementally: (_mark_pos, _mark_line) is a known position's line.
        self._mark_pos = 0
        self._mark_line = 1

    def _fill(self, at_least: int = _CHUNK) -> bool:
        """Append about `at_least` characters of lines to the buffer (one concatenation);
        False at the end of the file."""
        if self._eof:
            return False
        if self._pos > self._CHUNK and self._mark_pos <= self._pos:
            # Drop what has been consumed, keeping the line mark right.
            self._mark_line += self._buffer.count("\n", self._mark_pos, self._pos)
            self._buffer, self._pos, self._mark_pos = self._buffer[self._pos :], 0, 0
        parts, size = [], 0
        for line in self._lines:
            parts.append(line)
            size += len(line)
            if size >= at_least:
                break
        else:
            self._eof = True
        self._buffer += "".join(parts)
        return bool(parts)

    def _grow(self) -> bool:
        """Read until what follows the value's start has doubled; False at the end of the file."""
        pending = len(self._buffer) - self._pos
        if pending > MAX_LINE_BYTES:
            raise self._too_long()
        return self._fill(at_least=max(pending, self._CHUNK))

    def _too_long(self) -> CatalogError:
        return self.error(
            f"a value longer than {MAX_LINE_BYTES // 1_000_000} MB",
            hint="a product's fields are text; leave images and files out (link them instead)",
        )

    def _line(self, pos: int) -> int:
        """The line `pos` is on, counted on from the last position asked (each value's line
        costs what lies between it and the last: a one-line file is not read again per value)."""
        if pos < self._mark_pos:
            self._mark_pos, self._mark_line = 0, self._mark_line - self._buffer.count("\n", 0, self._mark_pos)
        self._mark_line += self._buffer.count("\n", self._mark_pos, pos)
        self._mark_pos = pos
        return self._mark_line

    def _where(self, pos: int) -> tuple[int, int]:
        """Line and column, for an error (the column is looked for only then)."""
        line = self._line(pos)
        return line, pos - (self._buffer.rfind("\n", 0, pos) + 1) + 1

    def error(self, message: str, *, pos: int | None = None, hint: str | None = None) -> CatalogError:
        line, column = self._where(self._pos if pos is None else pos)
        return CatalogError(self._path, message, line=line, column=column, hint=hint)

    def next_char(self, *, required: bool = True) -> str:
        """Skip whitespace and consume one character ('' at the end when not required)."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buffer):
                self._pos += 1
                return self._buffer[self._pos - 1]
            if not self._fill():
                if required:
                    raise self.error("the JSON ends too early", hint="the file looks cut off")
                return ""

    def unread(self) -> None:
        self._pos -= 1

    def value(self) -> tuple[int, Any]:
        """Decode the next JSON value; returns (its line, the value). A value that does not end
        in the buffer is tried again only once the buffer has doubled, so a large one costs a
        few decodes, not one per chunk; one longer than MAX_LINE_BYTES is not a product."""
        self.next_char()
        self.unread()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except RecursionError:
                raise self.error("a value is nested too deeply", hint="a product is an object of fields") from None
            except json.JSONDecodeError as exc:
                # The value may simply continue in the next chunks; only at the end is it broken.
                if self._grow():
                    continue
                raise self.error(f"invalid JSON: {exc.msg}", pos=exc.pos) from None
            # A bare number at the buffer's end may continue in the next chunk ("12" | "34").
            if end == len(self._buffer) and not isinstance(value, (dict, list, str)) and self._fill():
                continue
            if end - self._pos > MAX_LINE_BYTES:
                raise self._too_long()
            line = self._line(self._pos)
            self._pos = end
            return line, value

    def array_items(self) -> Iterator[tuple[int, Any]]:
        """Yield the items of an array whose '[' was just consumed."""
        if self.next_char() == "]":
            return
        self.unread()
        while True:
            yield self.value()
            char = self.next_char()
            if char == "]":
                return
            if char != ",":
                raise self.error(f"expected ',' or ']' between list items, found {char!r}", pos=self._pos - 1)


# --- rows → products ----------------------------------------------------------------------


def _product(path: Path, line: int, row: Any, fmt: Format, selection: FieldSelection | None = None) -> Product:
    if not isinstance(row, dict):
        raise CatalogError(
            path,
            f"a product must be an object, found {type(row).__name__}",
            line=line,
            hint=_JSON_SHAPE_HINT,
        )
    if fmt not in ("csv", "sheet"):
        row = _normalise_json_row(path, line, row)
    product_id = row.get("id")
    if not product_id:
        raise CatalogError(path, "empty id", line=line, column="id", hint="every product needs a unique id")
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in product_id):  # C0 and C1 control characters
        raise CatalogError(
            path,
            f"id {product_id!r} holds a line break or another control character",
            line=line,
            column="id",
            hint="ids go into import files, the lock and --check's lines: remove it",
        )
    if not row.get("name"):
        raise CatalogError(path, "empty name", line=line, column="name", hint="every product needs a name")
    dropped: tuple[str, ...] = ()
    if selection is not None:
        row, dropped = selection.select(row, (*CONTROL_FIELDS, *REQUIRED, "sku"))
    return Product(id=product_id, name=row["name"], fields=row, line=line, left_out=dropped)


def _normalise_json_row(path: Path, line: int, row: dict[str, Any]) -> dict[str, Any]:
    for required in REQUIRED:
        if required not in row:
            raise CatalogError(
                path,
                f"product has no {required!r}",
                line=line,
                hint=f"the keys are: {', '.join(list(row)[:8])}; every product needs id and name",
            )
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("id", "name"):
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise CatalogError(
                    path,
                    f"{key!r} must be a string, found {type(value).__name__}",
                    line=line,
                    column=key,
                )
            value = str(value).strip()
        elif key in LIST_FIELDS:
            value = _json_list(path, line, key, value)
        elif isinstance(value, str):
            value = value.strip()
        if value not in ("", None, [], {}):
            out[key] = value
    return out


def _json_list(path: Path, line: int, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split("|") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return [str(item).strip() for item in value if str(item).strip()]
    if value is None:
        return []
    raise CatalogError(
        path,
        f"{key!r} must be a list of strings",
        line=line,
        column=key,
        hint='write it as ["a", "b"] or "a|b"',
    )

"""Read a catalog (CSV, JSON or JSONL) into Product records, one at a time.

A product catalog is never held whole: CSV and JSONL are read line by line, and a JSON list
is decoded one element at a time (a single value up to 16 MB). A Shopify translations export
is the exception: its rows are read into memory, since a product's rows may stand anywhere in
it. Every problem is a CatalogError naming file, line and column.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from .errors import CatalogError
from .fields import NOT_COPY, FieldSelection
from .shopify import TRANSLATED_FIELDS, ExportRow, is_translations_export, not_an_export, product_needs

Format = Literal["csv", "json", "jsonl"]

REQUIRED = ("id", "name")
LIST_FIELDS = ("features", "keywords", "platform", "locales", "options")
# Our field names, matched in a CSV header in any case.
KNOWN_FIELDS = frozenset(
    {*REQUIRED, *LIST_FIELDS, "sku", "brand", "description", "category", "tone", "product_type", "material"}
)
# Columns that steer the run (which jobs a row gets) rather than describe the product.
CONTROL_FIELDS = ("id", "platform", "locales", "shopify_translations")
# A Shopify translations export's product: per language code, whether a listing row needs filling.
TRANSLATIONS_KEY = "shopify_translations"

_UTF8_HINT = "save the file as UTF-8 (in Excel: Save As → CSV UTF-8)"
# Longer than any product row; a "line" this long is a binary file or an unclosed quote.
MAX_LINE_BYTES = 16_000_000
# How the files merchants pass by mistake begin: archives and compressed streams (zip, gzip,
# bzip2, xz, zstd, 7z); a workbook is a zip of XML parts (.xlsx, .ods) or, before 2007, an OLE2
# compound file (.xls).
_COMPRESSED_MAGIC = (
    b"PK\x03\x04",
    b"\x1f\x8b",
    *(b"BZh%d1AY&SY" % level for level in range(1, 10)),
    b"\xfd7zXZ",
    b"(\xb5/\xfd",
    b"7z\xbc\xaf",
)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORKBOOK_PARTS = (b"[Content_Types].xml", b"xl/", b"docProps/", b"opendocument.spreadsheet")
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def _is_workbook(path: Path, head: bytes) -> bool:
    if head.startswith(_OLE2_MAGIC):
        return True
    if not head.startswith(b"PK\x03\x04"):
        return False
    return path.suffix.lower() in _WORKBOOK_SUFFIXES or any(part in head for part in _WORKBOOK_PARTS)


_JSON_SHAPE_HINT = 'expected a list of products, or {"products": [...]}'


@dataclass(frozen=True, slots=True)
class Product:
    """One catalog row. `fields` holds every non-empty column, list fields already split."""

    id: str
    name: str
    fields: Mapping[str, Any]
    line: int  # where the row starts in its file, for messages
    left_out: tuple[str, ...] = ()  # its columns that do not reach the model (fields.py)

    def data(self) -> dict[str, Any]:
        """What the model sees: the descriptive fields, without the run-steering columns."""
        return {key: value for key, value in self.fields.items() if key not in CONTROL_FIELDS}

    def copy_chars(self) -> int:
        """How much text the product carries (its strings and list items), to size its checks."""
        return sum(
            len(value) if isinstance(value, str) else sum(len(str(item)) for item in value)
            for value in self.fields.values()
            if isinstance(value, (str, list, tuple))
        )

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.fields.get("platform", ()))

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(self.fields.get("locales", ()))

    @property
    def translations(self) -> Mapping[str, bool] | None:
        """From a Shopify translations export: per language code of the export, whether a
        listing row still needs a translation (None for any other catalog)."""
        return self.fields.get(TRANSLATIONS_KEY)


def detect_format(path: Path, head: bytes) -> Format:
    """Pick the reader by extension, then by the first bytes when the extension is unknown."""
    suffix = path.suffix.lower()
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".json", "") or suffix not in (".csv", ".tsv", ".txt"):
        if text.startswith(b"["):
            return "json"
        if text.startswith(b"{"):
            return "jsonl" if _looks_like_jsonl(text) else "json"
        if suffix == ".json":
            return "json"
    return "csv"


def read_catalog(
    path: Path | str,
    *,
    columns: Mapping[str, str] | None = None,
    duplicates: str = "error",
    fields: FieldSelection | None = None,
) -> Iterator[Product]:
    """Yield the catalog's products in file order, checking ids as it goes. `columns` maps our
    field names to the file's (`{"id": "Handle"}`); a Shopify product export needs none.
    A repeated id is an error naming every repeated id (`duplicates="error"`), or its later
    rows are skipped (`"first"`: each id's first row is kept). `fields` chooses the columns that
    reach the model (by default, those that are copy: fields.py)."""
    path = Path(path)
    seen: dict[str, int] = {}
    products = _products(path, dict(columns or {}), fields or FieldSelection())
    for product in products:
        first = seen.setdefault(product.id, product.line)
        if first != product.line:
            if duplicates == "first":
                continue
            raise _duplicates_error(path, product, first, products, seen)
        yield product


def _products(path: Path, columns: Mapping[str, str], selection: FieldSelection) -> Iterator[Product]:
    """Every row of the catalog as a Product, repeated ids and all."""
    handle = _open(path)
    with handle:
        head = handle.peek(4096)[:4096] if hasattr(handle, "peek") else b""
        if not head.lstrip(b"\xef\xbb\xbf").strip():
            raise CatalogError(path, "the file is empty", hint="add a header row such as id,name")
        if _is_workbook(path, head):
            raise CatalogError(
                path,
                "a spreadsheet workbook (Excel or OpenDocument), not a CSV",
                hint="save the sheet as CSV (Excel: File → Save As → CSV UTF-8) and pass that file",
            )
        if head.startswith(_COMPRESSED_MAGIC):
            raise CatalogError(
                path, "a compressed file (gzip, zip or similar)", hint="unpack it and pass the CSV or JSON inside"
            )
        if b"\x00" in head:
            raise CatalogError(
                path,
                "the file holds binary data (NUL bytes), not a catalog",
                hint="a catalog is CSV, JSON or JSONL text in UTF-8 (or UTF-16 with the byte-order mark Excel writes)",
            )
        fmt = detect_format(path, head)
        if fmt == "csv":
            rows = _csv_rows(path, handle, columns)
        else:
            reader = _json_rows if fmt == "json" else _jsonl_rows
            rows = _renamed(path, reader(path, handle), columns)
        found = False
        for line, row in rows:
            found = True
            yield _product(path, line, row, fmt, selection)
        if not found:
            what = "the file has a header but no products" if fmt == "csv" else "no products in the file"
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


# Catalogs being read from a copy (read_once): the path as given → the copy.
_COPIES: dict[str, Path] = {}


@contextmanager
def read_once(path: Path | str, *, always: bool = False) -> Iterator[None]:
    """Within this block every read of `path` reads one copy of it, taken now. A pipe,
    /dev/stdin or `<(...)` can be read only once, yet a run reads its catalog twice (checks
    first, then sends); and a file appended to while a run goes on must not change what the
    run counts and sends. Regular files are copied only when `always`."""
    path = Path(path)
    key = os.path.abspath(path)
    if key in _COPIES or not path.exists() or path.is_dir() or (path.is_file() and not always):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="localize-catalog-") as folder:
        copy = Path(folder) / "catalog"
        with _open(path) as source, copy.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        _COPIES[key] = copy
        try:
            yield
        finally:
            del _COPIES[key]


def _open(path: Path) -> BinaryIO:
    copy = _COPIES.get(os.path.abspath(path))
    if copy is not None:
        return copy.open("rb")
    if not path.exists():
        raise CatalogError(path, "no such file", hint="check the path to the catalog")
    if path.is_dir():
        raise CatalogError(path, "is a directory", hint="pass the catalog file itself")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CatalogError(path, f"cannot open: {exc.strerror}") from None
    return _as_utf8(path, handle)


def _as_utf8(path: Path, handle: io.BufferedReader) -> BinaryIO:
    """The file's bytes as UTF-8: a UTF-16 file (Excel's "Unicode Text", tab-separated; its BOM
    says which) is decoded as it is read, so every reader after this sees one encoding."""
    start = handle.peek(4)[:4]
    if start.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return handle  # not a catalog: its NUL bytes say so
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return io.BufferedReader(_Utf16Source(path, handle), buffer_size=1 << 16)
    return handle


class _Utf16Source(io.RawIOBase):
    """UTF-8 bytes read from a UTF-16 file, in pieces: never the whole file at once."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self._path = path
        self._text = io.TextIOWrapper(handle, encoding="utf-16", newline="")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                piece = self._text.read(1 << 15)
            except UnicodeDecodeError as exc:
                raise CatalogError(
                    self._path, f"the file is not valid UTF-16 ({exc.reason})", hint=_UTF8_HINT
                ) from None
            if not piece:
                return 0
            self._pending = piece.encode("utf-8", errors="surrogatepass")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._text.close()
        super().close()


def _decoded_lines(path: Path, handle: BinaryIO, *, pieces: bool = False) -> Iterator[str]:
    """UTF-8 lines (a BOM is dropped), failing with the line of the first undecodable byte.
    A line ends at LF, CRLF or a lone CR (old Excel for Mac writes CR alone; a file may mix them).

    No line is held whole past MAX_LINE_BYTES: a CSV or JSONL line that long is not a catalog
    (a binary or sparse file, an unclosed quote) and ends the read; a JSON document written on
    one line comes in pieces (`pieces`), which the JSON reader joins as it decodes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    number = 1
    carry = b""  # the part of a read after its last lone CR: the start of the next line
    while raw := carry + handle.readline(MAX_LINE_BYTES):
        carry = b""
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        ended = raw.endswith(b"\n")
        if not ended and len(raw) >= MAX_LINE_BYTES and not pieces:
            cut = raw.rfind(b"\r", 0, len(raw) - 1)
            if cut < 0:
                raise CatalogError(
                    path,
                    f"a line longer than {MAX_LINE_BYTES // 1_000_000} MB",
                    line=number,
                    hint="this does not look like a catalog; a CSV needs one product per line (or a quoted cell)",
                )
            raw, carry = raw[: cut + 1], raw[cut + 1 :]
        try:
            text = decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise CatalogError(
                path,
                f"byte 0x{raw[exc.start]:02x} at position {exc.start + 1} is not UTF-8",
                line=number,
                hint=_UTF8_HINT,
            ) from None
        if pieces or "\r" not in text:
            yield text
            number += ended
            continue
        for line in _LONE_CR.split(text):
            if line:
                yield line
                number += line.endswith(("\n", "\r"))
    if carry:
        yield decoder.decode(carry)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CatalogError(path, "the file ends inside a UTF-8 character", line=number, hint=_UTF8_HINT) from None


# Splits after a CR that no LF follows: the line ends there (a CR inside a quoted cell is kept,
# since the CSV reader joins the lines of a quoted cell with their endings).
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


# --- CSV -------------------------------------------------------------------------------


def _csv_rows(path: Path, handle: BinaryIO, columns: Mapping[str, str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows keyed by our field names: renamed by the column map, or read as a Shopify export."""
    header, records = _csv_records(path, handle)
    named = [name for name in header if name]
    columns = _check_mapped(path, columns, named)
    if not columns:  # a shop's own export, recognised by its header, reads without a mapping
        exports = (
            (is_shopify_export, _shopify_products),
            (is_woocommerce_export, _woocommerce_products),
            (is_magento_export, _magento_products),
            (is_akeneo_export, lambda rows: _akeneo_products(named, rows)),
            (is_translations_export, _translations_products),
        )
        for recognises, products in exports:
            if recognises(named):
                yield from products(records)
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


def _csv_records(
    path: Path, handle: BinaryIO, *, strip: bool = True
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header, and the rows as {column: cell} (stripped unless `strip` is off), each with
    its starting line."""
    lines = _decoded_lines(path, handle)
    first = next(lines, "")
    delimiter = _delimiter(path, first)
    numbered = _LineCounter(_chain(first, lines))
    reader = csv.reader(numbered, delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as exc:
        raise CatalogError(path, f"broken header: {exc}", line=1) from None
    named = [name for name in header if name]
    duplicates = sorted({name for name in named if named.count(name) > 1})
    if duplicates:
        raise CatalogError(
            path, f"duplicate column {duplicates[0]!r} in the header", line=1, hint="give every column a unique name"
        )

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        row_start = numbered.count + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise CatalogError(
                        path,
                        f"a cell longer than {csv.field_size_limit():,} characters",
                        line=row_start,
                        hint='is a quote left open? A " inside a quoted cell is written ""',
                    ) from None
                raise CatalogError(
                    path,
                    f"broken quoting: {exc}",
                    line=row_start,
                    hint='a quoted field must end with " and a " inside one is written ""',
                ) from None
            line, row_start = row_start, numbered.count + 1
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            if len(cells) != len(header):
                raise CatalogError(
                    path,
                    f"{len(cells)} fields but the header has {len(header)}",
                    line=line,
                    hint=f"quote fields that contain {delimiter!r}, and give every row every column",
                )
            # An unnamed column (a trailing delimiter in the header) is dropped.
            yield (
                line,
                {name: cell.strip() if strip else cell for name, cell in zip(header, cells, strict=True) if name},
            )

    return header, records()


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


def recognised(path: Path, *, columns: Mapping[str, str] | None = None) -> str | None:
    """What kind of shop export a CSV catalog is and what it reads as, in a line (None for a
    catalog in our own columns, a mapped one, or anything but a CSV file)."""
    if columns or not path.is_file():
        return None
    try:
        return _recognised(path)
    except CatalogError:
        return None  # not a catalog at all: reading it says why, in one line


def _recognised(path: Path) -> str | None:
    with _open(path) as handle:
        head = handle.peek(4096)[:4096] if hasattr(handle, "peek") else b""
        if b"\x00" in head or not head.lstrip(b"\xef\xbb\xbf").strip() or detect_format(path, head) != "csv":
            return None
        header, records = _csv_records(path, handle)
        named = [name for name in header if name]
        if is_woocommerce_export(named):
            kinds = Counter(
                {name.lower(): value for name, value in record.items()}.get("type", "").strip().lower()
                for _, record in records
            )
            rows, folded = sum(kinds.values()), kinds["variation"]
            return f"WooCommerce export: {rows:,} rows → {rows - folded:,} products, {folded:,} variations folded"
        if is_magento_export(named):
            lowered = [{name.lower(): value for name, value in record.items()} for _, record in records]
            default = [row for row in lowered if not row.get("store_view_code", "").strip()]
            children = {
                part.partition("=")[2].split(",")[0]
                for row in default
                for part in _multi(row.get("configurable_variations", ""), "|")
            }
            views = len(lowered) - len(default)
            return (
                f"Magento export: {len(lowered):,} rows → {len(default) - len(children):,} products "
                f"(default scope; {len(children):,} simple children folded, "
                f"{views:,} store-view row{'' if views == 1 else 's'} skipped)"
            )
        if is_akeneo_export(named):
            count = sum(1 for _ in records)
            return f"Akeneo export: {count:,} products, copy in {akeneo_source_locale(named)}"
        if is_shopify_export(named):
            handles = [record.get("Handle", "") for _, record in records]
            return f"Shopify product export: {len(handles):,} rows → {len(set(handles)):,} products"
        if is_translations_export(named):
            export_rows = [ExportRow(line, record) for line, record in records]
            codes = len({row.code for row in export_rows})
            products = len({row.resource_id for row in export_rows if row.type == "PRODUCT"})
            return (
                f"Shopify translations export: {len(export_rows):,} rows in {codes}"
                f" language{'s' if codes != 1 else ''}, "
                f"{products:,} products"
            )
    return None


# --- Shopify translations export (Translate & Adapt) ---------------------------------------


def is_translations_export_file(path: Path) -> bool:
    """Whether the file's header is a Shopify translations export's (read with the CSV reader,
    so quoted or BOM-prefixed headers count too). A JSON catalog is never read as CSV."""
    with _open(path) as raw:
        head = raw.peek(4096)[:4096] if hasattr(raw, "peek") else b""
        if detect_format(path, head) != "csv":
            return False
        with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as handle:
            try:
                header = next(csv.reader(handle), [])
            except csv.Error:
                return False  # not a header any export has: reading the catalog says what it is
    return is_translations_export([name.strip() for name in header if name.strip()])


def read_translations_export(path: Path | str) -> list[ExportRow]:
    """The export's rows as they are (for writing the import file back)."""
    path = Path(path)
    with _open(path) as handle:
        header, records = _csv_records(path, handle, strip=False)  # written back byte for byte
        if not is_translations_export([name for name in header if name]):
            raise not_an_export(path)
        return [ExportRow(line, record) for line, record in records]


def _translations_products(records: Iterator[tuple[int, dict[str, str]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """One shopify product per PRODUCT Identification, wherever its rows stand (an export of
    every language lists each language's rows in a block of their own), its source copy from
    the rows' default content. Each carries, per language of the export, whether a listing row
    in it still needs a translation."""
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


# --- Shopify product export ------------------------------------------------------------------

# The columns that mark Shopify's product export (admin: Products → Export); one product spans
# several rows (its variants and images), each repeating the Handle.
SHOPIFY_MARKERS = ("Handle", "Title", "Body (HTML)")


def is_shopify_export(columns: list[str]) -> bool:
    return all(name in columns for name in SHOPIFY_MARKERS)


def _shopify_products(records: Iterator[tuple[int, dict[str, str]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """One product per Handle: the first row carries the product, the rows after it add variants."""
    current: dict[str, Any] | None = None
    start = 0
    options: dict[str, list[str]] = {}
    for line, record in records:
        handle = record.get("Handle", "")
        if current is not None and handle == current["id"]:
            _add_options(options, record, current.get("_option_names", []))
            continue
        if current is not None:
            yield start, _finish_product(current, options)
        current, start, options = _shopify_row(record), line, {}
        _add_options(options, record, current.get("_option_names", []))
    if current is not None:
        yield start, _finish_product(current, options)


def _shopify_row(record: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": record.get("Handle", ""),
        "name": record.get("Title", ""),
        "description": record.get("Body (HTML)", ""),
        "brand": record.get("Vendor", ""),
        "category": record.get("Product Category") or record.get("Type", ""),
        "sku": record.get("Variant SKU", ""),
        "keywords": [tag.strip() for tag in record.get("Tags", "").split(",") if tag.strip()],
        "_option_names": [record.get(f"Option{n} Name", "") for n in (1, 2, 3)],
    }
    if record.get("Type"):
        row["product_type"] = record["Type"]
    return row


def _add_options(options: dict[str, list[str]], record: dict[str, str], names: list[str]) -> None:
    for number, name in enumerate(names, start=1):
        value = record.get(f"Option{number} Value", "")
        if name and name != "Title" and value and value not in options.setdefault(name, []):
            options[name].append(value)


def _finish_product(row: dict[str, Any], options: dict[str, list[str]]) -> dict[str, Any]:
    """A shop export's product with its variants' options folded in, empty fields dropped."""
    row.pop("_option_names", None)
    if options:
        row["options"] = [f"{name}: {', '.join(values)}" for name, values in options.items() if values]
    return {key: value for key, value in row.items() if value not in ("", [], None)}


# --- WooCommerce product export ---------------------------------------------------------------

# Products → Export in WooCommerce writes these (its own sample export has them); `Parent` ties a
# variation to its variable product, `Attribute N name` / `Attribute N value(s)` carry options.
WOOCOMMERCE_MARKERS = ("id", "type", "sku", "name")


def is_woocommerce_export(columns: list[str]) -> bool:
    lowered = {name.lower() for name in columns}
    return all(name in lowered for name in WOOCOMMERCE_MARKERS) and (
        "parent" in lowered or "short description" in lowered
    )


def _woocommerce_products(records: Iterator[tuple[int, dict[str, str]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """One product per parent row; a variation's attribute values fold into its parent's options
    (the parent is named in `Parent` by `id:123` or by its SKU). Held until the file ends, since
    a variation may come after other products."""
    products: dict[str, tuple[int, dict[str, Any], dict[str, list[str]]]] = {}
    by_sku: dict[str, str] = {}
    orphans: list[tuple[int, dict[str, str]]] = []
    for line, raw in records:
        record = {name.lower(): value for name, value in raw.items()}
        if record.get("type", "").strip().lower() == "variation":
            orphans.append((line, record))
            continue
        row = _woocommerce_row(record)
        options: dict[str, list[str]] = {}
        _add_woocommerce_attributes(options, record)
        products[row["id"]] = (line, row, options)
        if record.get("sku"):
            by_sku[record["sku"]] = row["id"]
    for line, record in orphans:
        parent = record.get("parent", "").strip()
        key = parent[3:] if parent.lower().startswith("id:") else by_sku.get(parent, parent)
        if key in products:
            _add_woocommerce_attributes(products[key][2], record)
        else:  # a variation whose parent is not in the file: a product of its own
            row = _woocommerce_row(record)
            own: dict[str, list[str]] = {}
            _add_woocommerce_attributes(own, record)
            products[row["id"]] = (line, row, own)
    for line, row, options in products.values():
        yield line, _finish_product(row, options)


def _woocommerce_row(record: Mapping[str, str]) -> dict[str, Any]:
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
        unit = re.fullmatch(r"(weight|length|width|height) \((\w+)\)", name)
        if unit and value.strip():
            row[unit.group(1)] = f"{value.strip()} {unit.group(2)}"
    return row


def _add_woocommerce_attributes(options: dict[str, list[str]], record: Mapping[str, str]) -> None:
    number = 1
    while f"attribute {number} name" in record:
        name = record.get(f"attribute {number} name", "").strip()
        for value in record.get(f"attribute {number} value(s)", "").split(","):
            if name and value.strip() and value.strip() not in options.setdefault(name, []):
                options[name].append(value.strip())
        number += 1


# --- Magento 2 product export ------------------------------------------------------------------

# System → Export → Products writes one row per SKU and store view; the default scope's row
# (no store_view_code) is the source copy. A configurable product lists its simple children in
# `configurable_variations` ("sku=…,size=M,color=Black|sku=…").
MAGENTO_MARKERS = ("sku", "store_view_code", "product_type", "name")


def is_magento_export(columns: list[str]) -> bool:
    lowered = {name.lower() for name in columns}
    return all(name in lowered for name in MAGENTO_MARKERS)


def _magento_products(records: Iterator[tuple[int, dict[str, str]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """One product per default-scope SKU; simple children of a configurable fold into its
    options (and are not products of their own)."""
    products: dict[str, tuple[int, dict[str, Any], dict[str, list[str]]]] = {}
    children: set[str] = set()
    for line, raw in records:
        record = {name.lower(): value for name, value in raw.items()}
        if record.get("store_view_code", "").strip():
            continue  # a store view's translation, not the source
        row: dict[str, Any] = {
            "id": record.get("sku", ""),
            "sku": record.get("sku", ""),
            "name": record.get("name", ""),
            "description": record.get("description", ""),
            "short_description": record.get("short_description", ""),
            "category": _multi(record.get("categories", ""), ","),
            "keywords": _multi(record.get("meta_keywords", ""), ","),
        }
        options: dict[str, list[str]] = {}
        for name, value in _attribute_pairs(record.get("additional_attributes", "")):
            if not NOT_COPY.search(name):
                row[name] = value
        for child in _multi(record.get("configurable_variations", ""), "|"):
            values = dict(part.partition("=")[::2] for part in child.split(","))
            children.add(values.pop("sku", ""))
            for name, value in values.items():
                if value and value not in options.setdefault(name, []):
                    options[name].append(value)
        if record.get("weight", "").strip():
            row["weight"] = record["weight"].strip()
        products[row["id"]] = (line, row, options)
    for sku, (line, row, options) in products.items():
        if sku not in children:
            yield line, _finish_product(row, options)


def _attribute_pairs(cell: str) -> list[tuple[str, str]]:
    """Magento's `additional_attributes` ("activity=Gym,Travel,color=Blue"): a multi-select's
    values are commas inside the list, so a part without "=" belongs to the attribute before it."""
    pairs: list[list[str]] = []
    for part in _multi(cell, ","):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            pairs.append([name.strip(), value.strip()])
        elif pairs:
            pairs[-1][1] += f", {part}"
    return [(name, value) for name, value in pairs if value]


def _multi(cell: str, separator: str) -> list[str]:
    """A multi-value cell: Magento separates values by `separator`, or one per line."""
    return [item.strip() for part in cell.splitlines() for item in part.split(separator) if item.strip()]


# --- Akeneo PIM product export ------------------------------------------------------------------

# An Akeneo product CSV (`;`-separated): the identifier (`sku`), `family`, and attribute columns,
# localizable ones as `{code}-{locale}` and scopable ones with a channel: `{code}-{locale}-{channel}`.
_AKENEO_COLUMN = re.compile(
    r"^(?P<code>[A-Za-z0-9_]+)-(?P<locale>[a-z]{2,3}_[A-Z]{2})(?:-(?P<channel>[A-Za-z0-9_]+))?$"
)
# Akeneo's measurement units as listings write them.
_AKENEO_UNITS = {"GRAM": "g", "KILOGRAM": "kg", "MILLIMETER": "mm", "CENTIMETER": "cm", "METER": "m", "LITER": "l"}


def akeneo_columns(columns: list[str]) -> dict[str, tuple[str, str, str | None]]:
    """The localizable columns of an Akeneo export: column → (attribute code, locale, channel)."""
    found = {}
    for name in columns:
        match = _AKENEO_COLUMN.match(name)
        if match:
            found[name] = (match.group("code"), match.group("locale"), match.group("channel"))
    return found


def is_akeneo_export(columns: list[str]) -> bool:
    lowered = {name.lower() for name in columns}
    return "family" in lowered and ("sku" in lowered or "identifier" in lowered) and bool(akeneo_columns(columns))


def akeneo_source_locale(columns: list[str]) -> str:
    """The locale the export's copy is written in: the one most of its localizable columns carry."""
    counts = Counter(locale for _, locale, _ in akeneo_columns(columns).values())
    return counts.most_common(1)[0][0]


def akeneo_attributes(path: Path) -> list[tuple[str, str | None]]:
    """The attributes an Akeneo export shows as localizable in its copy's locale: (code, channel)."""
    with _open(path) as handle:
        header, _ = _csv_records(path, handle)
    named = [name for name in header if name]
    if not is_akeneo_export(named):
        raise CatalogError(
            path, "not an Akeneo product export", line=1, hint="--format akeneo starts from Akeneo's export"
        )
    source = akeneo_source_locale(named)
    return [(code, channel) for code, locale, channel in akeneo_columns(named).values() if locale == source]


def _akeneo_products(
    header: list[str], records: Iterator[tuple[int, dict[str, str]]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    localized = akeneo_columns(header)
    source = akeneo_source_locale(header)
    for line, record in records:
        lowered = {name.lower(): value for name, value in record.items()}
        row: dict[str, Any] = {"id": lowered.get("sku") or lowered.get("identifier", "")}
        if lowered.get("sku"):
            row["sku"] = lowered["sku"]
        for name, value in record.items():
            if not value.strip():
                continue
            if name in localized:
                code, locale, channel = localized[name]
                if locale == source and (code not in row or channel == "ecommerce"):
                    row[code] = value  # one value per attribute: the ecommerce channel's where there are several
            elif name.endswith("-unit") or name.lower() in ("sku", "identifier", "family", "groups", "enabled"):
                continue
            elif name.lower() == "categories":
                row["category"] = [item for item in value.split(",") if item]
            else:
                unit = record.get(f"{name}-unit", "").strip()
                row[name] = f"{value} {_AKENEO_UNITS.get(unit, unit.lower())}".strip() if unit else value
        yield line, row


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


def _delimiter(path: Path, first_line: str) -> str:
    if path.suffix.lower() == ".tsv" or ("\t" in first_line and "," not in first_line):
        return "\t"
    # Excel in many European locales saves "CSV" with semicolons.
    if ";" in first_line and "," not in first_line:
        return ";"
    return ","


class _LineCounter:
    """Feeds lines to csv.reader while counting them, so errors can name a line."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.count = 0

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        return line


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


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
    for number, text in enumerate(_decoded_lines(path, handle), start=1):
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
    stream = _JsonStream(path, _decoded_lines(path, handle, pieces=True))
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

    def _where(self, pos: int) -> tuple[int, int]:
        if pos < self._mark_pos:
            self._mark_pos, self._mark_line = 0, self._mark_line - self._buffer.count("\n", 0, self._mark_pos)
        self._mark_line += self._buffer.count("\n", self._mark_pos, pos)
        self._mark_pos = pos
        column = pos - (self._buffer.rfind("\n", 0, pos) + 1) + 1
        return self._mark_line, column

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
            line = self._where(self._pos)[0]
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


def _looks_like_jsonl(text: bytes) -> bool:
    first, _, rest = text.partition(b"\n")
    try:
        json.loads(first)
    except ValueError:
        return False
    return rest.lstrip().startswith(b"{")


# --- rows → products ----------------------------------------------------------------------


def _product(path: Path, line: int, row: Any, fmt: Format, selection: FieldSelection | None = None) -> Product:
    if not isinstance(row, dict):
        raise CatalogError(
            path,
            f"a product must be an object, found {type(row).__name__}",
            line=line,
            hint=_JSON_SHAPE_HINT,
        )
    if fmt != "csv":
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

"""A catalog file as text: its bytes opened once (a pipe read twice, a file appended to while a
run goes on), decoded to UTF-8 lines whatever the encoding Excel wrote, and a CSV's header and
records. The readers of catalog.py and of each shop (shops/) start here. Also the one way OUT's
append-only logs (reviews.jsonl, deliveries.jsonl) are appended to: append_lines.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..errors import CatalogError

Records = Iterator[tuple[int, dict[str, str]]]

Format = Literal["csv", "json", "jsonl", "sheet"]


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
            return "jsonl" if looks_like_jsonl(text) else "json"
        if suffix == ".json":
            return "json"
    return "csv"


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
        with open_file(path) as source, copy.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        _COPIES[key] = copy
        try:
            yield
        finally:
            del _COPIES[key]


def open_file(path: Path) -> BinaryIO:
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


def decoded_lines(path: Path, handle: BinaryIO, *, pieces: bool = False) -> Iterator[str]:
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
        cr = text.find("\r")
        if pieces or cr < 0 or (cr == len(text) - 2 and ended):  # (no CR, or the CRLF that ends it: most files)
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


def csv_records(
    path: Path, handle: BinaryIO, *, strip: bool = True
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header, and the rows as {column: cell} (stripped unless `strip` is off), each with
    its starting line."""
    lines = decoded_lines(path, handle)
    first = next(lines, "")
    delimiter = _delimiter(path, first)
    numbered = _LineCounter(_chain(first, lines))
    reader = csv.reader(numbered, delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as exc:
        raise CatalogError(path, f"broken header: {exc}", line=1) from None
    named = [name for name in header if name]
    duplicates = sorted(name for name, count in Counter(named).items() if count > 1)  # (one pass: a wide header)
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


def looks_like_jsonl(text: bytes) -> bool:
    first, _, rest = text.partition(b"\n")
    try:
        json.loads(first)
    except ValueError:
        return False
    return rest.lstrip().startswith(b"{")


def catalog_format(path: Path, handle: BinaryIO) -> Format:
    """The reader the file needs, after refusing what is no catalog at all (an empty file, a
    workbook, an archive, binary data) with a line that says what it is."""
    head = handle.peek(4096)[:4096] if hasattr(handle, "peek") else b""
    if not head.lstrip(b"\xef\xbb\xbf").strip():
        raise CatalogError(path, "the file is empty", hint="add a header row such as id,name")
    if _is_workbook(path, head):
        if head.startswith(b"PK\x03\x04") and path.suffix.lower() not in (".xlsb", ".numbers"):
            return "sheet"  # the sheet reader says what is wrong with one that is none
        raise CatalogError(
            path,
            "an Excel 97-2003 (.xls), binary (.xlsb) or Numbers spreadsheet workbook, which we do not read",
            hint="save it as .xlsx (or CSV UTF-8) and pass that file",
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
    return detect_format(path, head)


class Unrepeated:
    """A shop export's records without the rows that repeat an earlier row cell for cell (an
    export run twice into one file, a concatenation): each is read once, and counted in
    `skipped` so the run says how many it left out. A row that shares an earlier one's id but
    not its cells is not a repeat: the shop's reader yields both and the catalog's check of
    repeated ids names them."""

    def __init__(self, records: Records) -> None:
        self.skipped = 0
        self._records = records
        self._seen: set[bytes] = set()

    def __iter__(self) -> Records:
        for line, record in self._records:
            digest = hashlib.blake2b(json.dumps(list(record.items())).encode(), digest_size=12).digest()
            if digest in self._seen:
                self.skipped += 1
                continue
            self._seen.add(digest)
            yield line, record

    def said(self) -> str:
        """The words the describe line ends with ("" when nothing repeated)."""
        if not self.skipped:
            return ""
        return f"; {self.skipped:,} repeated row{'' if self.skipped == 1 else 's'} skipped (the same as an earlier row)"


def table_records(
    path: Path, handle: BinaryIO, *, strip: bool = True
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """A table's header and records: a CSV's (csv_records), or a workbook's chosen sheet's
    (spreadsheet.py: --sheet, else the first), each record with its line or row."""
    head = handle.peek(8)[:8] if hasattr(handle, "peek") else b""
    if head.startswith(b"PK\x03\x04"):
        from . import spreadsheet  # noqa: PLC0415 - calamine is loaded for a workbook only

        return spreadsheet.sheet_records(path, handle, sheet=_SHEETS.get(os.path.abspath(path)))
    return csv_records(path, handle, strip=strip)


def table_header(path: Path) -> list[str] | None:
    """A table catalog's named columns (None for a JSON catalog, or a file that is no catalog:
    reading it says why, in one line)."""
    try:
        with open_file(path) as handle:
            if catalog_format(path, handle) not in ("csv", "sheet"):
                return None
            header, _ = table_records(path, handle)
    except CatalogError:
        return None
    return [name for name in header if name]


# The sheet of a workbook catalog a command reads (--sheet), by the catalog's path.
_SHEETS: dict[str, str] = {}


@contextmanager
def sheet_of(path: Path | str | None, sheet: str | None) -> Iterator[None]:
    """Within this block a workbook at `path` is read from its sheet named `sheet` (None: the first)."""
    key = os.path.abspath(path) if path is not None else ""
    if path is None or sheet is None or key in _SHEETS:
        yield
        return
    _SHEETS[key] = sheet
    try:
        yield
    finally:
        del _SHEETS[key]


def append_lines(path: Path, lines: Iterable[str]) -> int:
    """Add whole lines at the end of a log, written through to disk before this returns; on a
    full disk nothing is left half-written (the file is cut back to where it was). How many."""
    lines = list(lines)
    if not lines:
        return 0
    with path.open("a", encoding="utf-8") as handle:
        start = handle.tell()
        try:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            handle.truncate(start)
            raise
    return len(lines)

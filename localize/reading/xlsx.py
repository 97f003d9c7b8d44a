"""An Office Open XML workbook (.xlsx, .xlsm) as the zip of XML parts it is: its sheets found,
a sheet's cells read, its claimed size checked, and cells written into a sheet in place.

Marketplaces accept only their own template filled in place (../shared/PLATFORMS.md, "Shopee
and Lazada templates"): a spreadsheet library's load-and-save drops the cross-sheet list
validations, and some cannot open the templates at all. So a sheet is patched as text: the rows
it touches are rebuilt (their untouched cells kept byte for byte), every other row, every other
part of the package is written back as it was read. New text goes in as inline strings, so the
shared strings never change.

Every part is untrusted XML: parsed by defusedxml (no entities, no DTDs), read within a size cap.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_M = "{" + MAIN + "}"

# A workbook larger than this is no catalog or template (a catalog of 100,000 products is a few MB).
MAX_FILE_BYTES = 256 * 1024 * 1024
# A part unpacked larger than this is not read (a zip bomb); a sheet's XML of a million rows is well under.
MAX_PART_BYTES = 1024 * 1024 * 1024
# Cells a sheet may claim (its dimension, its farthest cell): a reader allocates the whole
# rectangle, so a small file that claims the grid's far corner would take hundreds of gigabytes.
MAX_CELLS = 25_000_000
# Excel's own limits: the grid and a cell's text.
MAX_ROW, MAX_COLUMN = 1_048_576, 16_384
MAX_CELL_CHARS = 32_767


class WorkbookError(ValueError):
    """The file is no workbook we can read or write (the message says why, in a line)."""


@dataclass(frozen=True, slots=True)
class SheetPart:
    name: str
    part: str  # its XML's name in the zip, e.g. xl/worksheets/sheet1.xml
    hidden: bool = False


@dataclass(slots=True)
class Grid:
    """What a sheet claims and holds: its dimension, its farthest cell, the rows its frozen pane
    holds above the data (0: none)."""

    dimension: str = ""
    rows: int = 0  # the farthest row and column any cell or the dimension names
    columns: int = 0
    frozen_rows: int = 0

    @property
    def cells(self) -> int:
        return self.rows * self.columns


@dataclass(slots=True)
class Cell:
    """A value to write: text (an inline string) or a number (written as one)."""

    value: str
    number: bool = False


@dataclass(slots=True)
class Sheet:
    """A sheet's cells as text, by row and column (1-based), with its grid."""

    part: SheetPart
    cells: dict[int, dict[int, str]] = field(default_factory=dict)
    formulas: set[tuple[int, int]] = field(default_factory=set)
    grid: Grid = field(default_factory=Grid)

    def row(self, number: int) -> dict[int, str]:
        return self.cells.get(number, {})

    @property
    def last_row(self) -> int:
        """The last row holding a value (0 when none does)."""
        return max((row for row, cells in self.cells.items() if any(v.strip() for v in cells.values())), default=0)


# --- cell references ------------------------------------------------------------------------

_REF = re.compile(r"^\$?([A-Z]{1,3})\$?([0-9]{1,7})$")


def column_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def parse_ref(ref: str) -> tuple[int, int] | None:
    """(row, column) of a reference such as B7, or None."""
    found = _REF.match(ref.strip().upper())
    return (int(found.group(2)), column_number(found.group(1))) if found else None


# --- the package ----------------------------------------------------------------------------


class Workbook:
    """A workbook's zip, opened for reading: its sheets and their cells."""

    def __init__(self, source: Path | IO[bytes], name: str = "") -> None:
        self.name = name or str(source)
        size = _size(source)
        if size > MAX_FILE_BYTES:
            raise WorkbookError(f"{size / 2**20:,.0f} MB, more than a workbook we read ({MAX_FILE_BYTES >> 20} MB)")
        try:
            self.zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as exc:
            raise WorkbookError(f"not a readable workbook ({exc})") from None
        self.members = {info.filename: info for info in self.zip.infolist()}
        if "xl/workbook.xml" not in self.members and not any(_is_workbook_part(name) for name in self.members):
            raise WorkbookError("not an Excel workbook (no xl/workbook.xml in it)")
        self._shared: list[str] | None = None

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def read(self, part: str, *, limit: int = MAX_PART_BYTES) -> bytes:
        info = self.members.get(part)
        if info is None:
            raise WorkbookError(f"the part {part} is missing")
        if info.file_size > limit:
            raise WorkbookError(f"{part} unpacks to {info.file_size / 2**20:,.0f} MB: too large to read")
        try:
            with self.zip.open(info) as handle:
                return handle.read(limit + 1)[:limit]
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise WorkbookError(f"{part} cannot be unpacked ({exc})") from None

    def stream(self, part: str) -> IO[bytes]:
        info = self.members.get(part)
        if info is None:
            raise WorkbookError(f"the part {part} is missing")
        if info.file_size > MAX_PART_BYTES:
            raise WorkbookError(f"{part} unpacks to {info.file_size / 2**20:,.0f} MB: too large to read")
        return self.zip.open(info)

    def xml(self, part: str) -> Element:
        try:
            return SafeET.fromstring(self.read(part))
        except SafeET.ParseError as exc:
            raise WorkbookError(f"{part} is not well-formed XML ({exc})") from None
        except Exception as exc:  # defusedxml's refusals (entities, DTDs) and the like
            raise WorkbookError(f"{part} is refused: {type(exc).__name__}") from None

    def sheets(self) -> list[SheetPart]:
        """The worksheets in the workbook's order (chart sheets and dialogs left out)."""
        book = self.xml(_workbook_part(self.members))
        targets = self._relationships(_workbook_part(self.members))
        found = []
        for sheet in book.iter(_M + "sheet"):
            target = targets.get(sheet.get("{" + _REL + "}id", ""))
            if target and target in self.members and "/worksheets/" in target:
                found.append(SheetPart(sheet.get("name", ""), target, sheet.get("state", "visible") != "visible"))
        if not found:
            raise WorkbookError("the workbook has no worksheet")
        return found

    def _relationships(self, part: str) -> dict[str, str]:
        folder, _, name = part.rpartition("/")
        rels = f"{folder}/_rels/{name}.rels"
        if rels not in self.members:
            return {}
        targets = {}
        for rel in self.xml(rels).iter("{" + _PACKAGE_REL + "}Relationship"):
            target = rel.get("Target", "")
            if rel.get("TargetMode") == "External":
                continue
            targets[rel.get("Id", "")] = _resolve(folder, target)
        return targets

    @property
    def shared_strings(self) -> list[str]:
        if self._shared is None:
            targets = self._relationships(_workbook_part(self.members)).values()
            part = next((target for target in targets if target.endswith("sharedStrings.xml")), None)
            if part is None or part not in self.members:
                self._shared = []
            else:
                self._shared = [_text_of(item) for item in self.xml(part).iter(_M + "si")]
        return self._shared

    def grid(self, sheet: SheetPart) -> Grid:
        """What the sheet claims, read as a stream (no cell is held): its dimension, its farthest
        cell reference, its frozen rows."""
        grid = Grid()
        tail = b""
        with self.stream(sheet.part) as handle:
            while chunk := handle.read(1 << 20):
                text = tail + chunk
                for match in _CLAIM.finditer(text):
                    kind, value = match.group(1), match.group(2).decode("ascii", "replace")
                    if kind == b"ref" and not grid.dimension:
                        grid.dimension = value
                        for ref in value.split(":"):
                            _stretch(grid, parse_ref(ref))
                    elif kind == b"r":
                        _stretch(grid, parse_ref(value) if not value.isdigit() else (int(value), 0))
                    elif kind == b"ySplit" and not grid.frozen_rows:
                        grid.frozen_rows = int(float(value)) if _is_number(value) else 0
                tail = text[-200:]
        return grid

    def sheet(self, part: SheetPart) -> Sheet:
        """The sheet's cells as text, the cells holding a formula, its grid."""
        root = self.xml(part.part)
        found = Sheet(part, grid=self.grid(part))
        shared = self.shared_strings
        for number, row in _rows(root):
            for column, cell in _cells(row):
                text = _cell_text(cell, shared)
                if cell.find(_M + "f") is not None:
                    found.formulas.add((number, column))
                if text:
                    found.cells.setdefault(number, {})[column] = text
        return found


# The size claims of a sheet's XML: <dimension ref=…>, every row's and cell's r=…, a pane's ySplit.
_CLAIM = re.compile(rb'<(?:\w+:)?(?:dimension|row|c|pane)\b[^>]*?\b(ref|r|ySplit)="([^"]{1,40})"')


def _stretch(grid: Grid, at: tuple[int, int] | None) -> None:
    if at is not None:
        grid.rows, grid.columns = max(grid.rows, at[0]), max(grid.columns, at[1])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _size(source: Path | IO[bytes]) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    at = source.tell()
    size = source.seek(0, os.SEEK_END)
    source.seek(at)
    return size


def _is_workbook_part(name: str) -> bool:
    return name.endswith("/workbook.xml") and name.count("/") == 1


def _workbook_part(members: Mapping[str, zipfile.ZipInfo]) -> str:
    if "xl/workbook.xml" in members:
        return "xl/workbook.xml"
    return next(name for name in members if _is_workbook_part(name))


def _resolve(folder: str, target: str) -> str:
    """A relationship's target as a zip member name."""
    if target.startswith("/"):
        return target[1:]
    parts = folder.split("/") if folder else []
    for piece in target.split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece not in ("", "."):
            parts.append(piece)
    return "/".join(parts)


def _rows(root: Element) -> Iterator[tuple[int, Element]]:
    data = root.find(_M + "sheetData")
    if data is None:
        return
    number = 0
    for row in data.iter(_M + "row"):
        number = int(row.get("r") or number + 1)
        yield number, row


def _cells(row: Element) -> Iterator[tuple[int, Element]]:
    column = 0
    for cell in row.iter(_M + "c"):
        at = parse_ref(cell.get("r", ""))
        column = at[1] if at else column + 1
        yield column, cell


def _cell_text(cell: Element, shared: list[str]) -> str:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        inline = cell.find(_M + "is")
        return _text_of(inline) if inline is not None else ""
    value = cell.findtext(_M + "v") or ""
    if kind == "s":
        try:
            return shared[int(value)]
        except (ValueError, IndexError):
            return ""
    if kind == "b":
        return "TRUE" if value == "1" else "FALSE"
    return _unescape(value)


def _text_of(item: Element) -> str:
    """A string item's text: its <t>, or its runs' (phonetic guides left out)."""
    direct = item.find(_M + "t")
    if direct is not None:
        return _unescape(direct.text or "")
    return "".join(_unescape(run.findtext(_M + "t") or "") for run in item.findall(_M + "r"))


# OOXML writes characters XML cannot hold as _xHHHH_ (and a literal "_x0041_" as _x005F_x0041_).
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), text) if "_x" in text else text


# --- writing cells in place -----------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (C0 controls but tab and line breaks, lone surrogates,
# U+FFFE/U+FFFF): written as OOXML's _xHHHH_ escapes, as Excel does.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_text(text: str) -> str:
    """Text as a <t> element's content: XML-escaped, OOXML's _xHHHH_ escapes where needed."""
    text = _ESCAPED.sub(lambda match: "_x005F" + match.group(0), text)
    text = _NOT_XML.sub(lambda match: f"_x{ord(match.group(0)):04X}_", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fill(source: Path, target: Path, sheet: SheetPart, cells: Mapping[int, Mapping[int, Cell]]) -> None:
    """Write `source` to `target` with `cells` (row → column → value) written into `sheet`:
    only that sheet's XML changes, and in it only the rows written to (and its dimension)."""
    with Workbook(source) as book:
        patched = patch_sheet(book.read(sheet.part), cells)
        try:
            SafeET.fromstring(patched)
        except SafeET.ParseError as exc:  # never hand a shop a sheet Excel would "repair"
            raise WorkbookError(f"{sheet.part} could not be patched ({exc})") from None
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as out:
                for info in book.zip.infolist():
                    data = patched if info.filename == sheet.part else book.read(info.filename)
                    out.writestr(_copy_info(info), data, compress_type=info.compress_type)
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


def _copy_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
    copy.compress_type, copy.external_attr, copy.create_system = info.compress_type, info.external_attr, 0
    return copy


_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?sheetData>)", re.DOTALL)
_ROW = re.compile(rb"<(?:\w+:)?row\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?row>)", re.DOTALL)
_CELL = re.compile(rb"<(?:\w+:)?c\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)", re.DOTALL)
_CELL_TAG = re.compile(rb"^<((?:\w+:)?c)\b")
_ATTRIBUTE = re.compile(rb'\b([\w:]+)="([^"]*)"')
_DIMENSION = re.compile(rb'(<(?:\w+:)?dimension\b[^>]*?\bref=")([^"]*)(")')
_COLUMN_STYLE = re.compile(rb"<(?:\w+:)?col\b([^>]*?)/?>")


def patch_sheet(xml: bytes, cells: Mapping[int, Mapping[int, Cell]]) -> bytes:
    """A sheet's XML with `cells` written: the rows they fall in rebuilt (their other cells kept
    as they were), new rows added in order, the dimension widened; nothing else changed."""
    data = _SHEET_DATA.search(xml)
    if data is None:
        raise WorkbookError("the sheet has no sheetData")
    prefix = data.group(1)
    body = data.group(2) or b""
    styles = _column_styles(xml[: data.start()])
    pending = {row: dict(values) for row, values in sorted(cells.items()) if values}
    pieces: list[bytes] = []
    at = 0
    number = 0
    for match in _ROW.finditer(body):
        attributes = dict(_ATTRIBUTE.findall(match.group(1)))
        number = int(attributes.get(b"r", b"0") or 0) or number + 1
        for row in [row for row in pending if row < number]:
            pieces += [body[at : match.start()], _new_row(prefix, row, pending.pop(row), styles)]
            at = match.start()
        if number in pending:
            pieces += [body[at : match.start()], _patched_row(prefix, match, number, pending.pop(number), styles)]
            at = match.end()
    pieces.append(body[at:])
    pieces += [_new_row(prefix, row, values, styles) for row, values in pending.items()]
    inner = b"".join(pieces)
    rebuilt = b"<%ssheetData>%s</%ssheetData>" % (prefix, inner, prefix)
    if data.group(2) is not None:  # keep the element's own opening tag as it was
        opening = xml[data.start() : data.start() + xml[data.start() :].index(b">") + 1]
        rebuilt = opening + inner + b"</%ssheetData>" % prefix
    patched = xml[: data.start()] + rebuilt + xml[data.end() :]
    return _widen_dimension(patched, cells)


def _column_styles(head: bytes) -> dict[int, bytes]:
    """The style a column's cells take by default (<cols><col min max style>)."""
    styles: dict[int, bytes] = {}
    for match in _COLUMN_STYLE.finditer(head):
        attributes = dict(_ATTRIBUTE.findall(match.group(1)))
        style = attributes.get(b"style")
        if style and style != b"0":
            low, high = int(attributes.get(b"min", b"0")), int(attributes.get(b"max", b"0"))
            for column in range(low, min(high, low + 512) + 1):
                styles[column] = style
    return styles


def _patched_row(
    prefix: bytes, match: re.Match[bytes], number: int, values: dict[int, Cell], styles: Mapping[int, bytes]
) -> bytes:
    """An existing row with `values` written: each untouched cell's bytes kept, a touched
    cell's style kept, new cells put in column order."""
    attributes = match.group(1)
    kept: list[tuple[int, bytes]] = []
    column = 0
    for cell in _CELL.finditer(match.group(2) or b""):
        cell_attributes = dict(_ATTRIBUTE.findall(cell.group(1)))
        at = parse_ref(cell_attributes.get(b"r", b"").decode("ascii", "replace"))
        column = at[1] if at else column + 1
        if column in values:
            style = cell_attributes.get(b"s") or styles.get(column)
            kept.append((column, _cell(prefix, number, column, values.pop(column), style)))
        elif b"r" not in cell_attributes:  # name its place, so the cells put beside it stay in theirs
            named = b'<\\1 r="%s%d"' % (_letters(column), number)
            kept.append((column, _CELL_TAG.sub(named, cell.group(0), count=1)))
        else:
            kept.append((column, cell.group(0)))
    kept += [(column, _cell(prefix, number, column, value, styles.get(column))) for column, value in values.items()]
    kept.sort(key=lambda item: item[0])
    attributes = _widen_spans(attributes, kept[0][0], kept[-1][0]) if kept else attributes
    return b"<%srow%s>%s</%srow>" % (prefix, attributes, b"".join(cell for _, cell in kept), prefix)


def _new_row(prefix: bytes, number: int, values: Mapping[int, Cell], styles: Mapping[int, bytes]) -> bytes:
    cells = b"".join(
        _cell(prefix, number, column, value, styles.get(column)) for column, value in sorted(values.items())
    )
    return b'<%srow r="%d">%s</%srow>' % (prefix, number, cells, prefix)


def _cell(prefix: bytes, row: int, column: int, value: Cell, style: bytes | None) -> bytes:
    """A cell element in the sheet's own namespace prefix: a number, or an inline string."""
    ref = b"%s%d" % (_letters(column), row)
    styled = b' s="%s"' % style if style else b""
    p = prefix
    if value.number:
        return b'<%sc r="%s"%s><%sv>%s</%sv></%sc>' % (p, ref, styled, p, value.value.encode("ascii"), p, p)
    text = escape_text(value.value).encode("utf-8")
    return b'<%sc r="%s"%s t="inlineStr"><%sis><%st xml:space="preserve">%s</%st></%sis></%sc>' % (
        p, ref, styled, p, p, text, p, p, p,
    )  # fmt: skip


def _letters(column: int) -> bytes:
    return column_letters(column).encode("ascii")


_SPANS = re.compile(rb'\bspans="(\d+):(\d+)"')


def _widen_spans(attributes: bytes, first: int, last: int) -> bytes:
    found = _SPANS.search(attributes)
    if found is None:
        return attributes
    low, high = min(int(found.group(1)), first), max(int(found.group(2)), last)
    return attributes[: found.start()] + b'spans="%d:%d"' % (low, high) + attributes[found.end() :]


def _widen_dimension(xml: bytes, cells: Mapping[int, Mapping[int, Cell]]) -> bytes:
    found = _DIMENSION.search(xml)
    written = [(row, column) for row, values in cells.items() for column in values]
    if found is None or not written:
        return xml
    refs = [parse_ref(ref) for ref in found.group(2).decode("ascii", "replace").split(":")]
    known = [ref for ref in refs if ref is not None]
    if not known:
        return xml
    top = min(min(row for row, _ in known), min(row for row, _ in written))
    left = min(min(column for _, column in known), min(column for _, column in written))
    bottom = max(max(row for row, _ in known), max(row for row, _ in written))
    right = max(max(column for _, column in known), max(column for _, column in written))
    ref = f"{column_letters(left)}{top}:{column_letters(right)}{bottom}".encode("ascii")
    return xml[: found.start(2)] + ref + xml[found.end(2) :]

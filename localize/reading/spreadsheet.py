"""A spreadsheet catalog (.xlsx, .xlsm, .ods) read as a table: a header and records, as a CSV
catalog gives them, so the same catalog saved either way makes the same products.

python-calamine reads the sheet. It sizes its memory from what the sheet claims, so before it
sees a file the file's size, the sheet's claimed dimension and its farthest cell reference are
checked: a small workbook that claims the whole grid is one line, not an aborted process
(python-calamine issue 130; ../shared/PLATFORMS.md).

The sheet read is the one `--sheet` names, else the first visible one (or a marketplace
template's data sheet, found by its field codes). The header is its first non-empty row; the
rows a frozen pane holds above the data (a template's labels and help) are headings, not
products. Cells read as written: 20000 (not 20000.0), 1.25, a date as an ISO date, a formula's
cached value.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import defusedxml.ElementTree as SafeET
import python_calamine

from ..errors import CatalogError
from .xlsx import MAX_CELLS, MAX_FILE_BYTES, MAX_PART_BYTES, Grid, Workbook, WorkbookError, column_letters

Records = Iterator[tuple[int, dict[str, str]]]

_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_SAVE_AS_CSV = "save the sheet as CSV UTF-8 and pass that file"


def sheet_records(path: Path, handle: IO[bytes], *, sheet: str | None = None) -> tuple[list[str], Records]:
    """The header and the records of a workbook's sheet (the first, or `sheet`), each record
    with its row number, cells as text and stripped."""
    handle.seek(0)
    candidates = _checked(path, handle, sheet)
    handle.seek(0)
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(handle)
        name, frozen, rows = _pick(book, candidates)
    except python_calamine.PasswordError:
        raise CatalogError(
            path, "the workbook is password-protected", hint="remove the password, or save as CSV"
        ) from None
    except Exception as exc:  # calamine's errors name the part that is broken
        raise CatalogError(path, f"the workbook cannot be read ({exc})", hint=_SAVE_AS_CSV) from None
    numbered = [(index + 1, [_text(value) for value in row]) for index, row in enumerate(rows)]
    at = next((index for index, (_, cells) in enumerate(numbered) if any(cells)), None)
    if at is None:
        raise CatalogError(path, f"the sheet {name!r} is empty", hint="add a header row such as id,name")
    header_row, header = numbered[at][0], [cell.strip() for cell in numbered[at][1]]
    while header and not header[-1]:
        header.pop()
    named = [column for column in header if column]
    repeated = sorted(column for column, count in Counter(named).items() if count > 1)
    if repeated:
        raise CatalogError(
            path,
            f"duplicate column {repeated[0]!r} in the header",
            line=header_row,
            hint="give every column a unique name",
        )
    first_data = max(header_row, frozen) + 1

    def records() -> Records:
        for number, cells in numbered[at + 1 :]:
            if number < first_data or not any(cell.strip() for cell in cells):
                continue
            yield number, {column: cell.strip() for column, cell in zip(header, cells, strict=False) if column}

    return header, records()


def _pick(book: Any, candidates: list[tuple[str, int]]) -> tuple[str, int, list[list[Any]]]:
    """The sheet read: the first candidate, unless it is none of a template's data sheet and a
    later one is (its first rows are enough to tell)."""
    name, frozen = candidates[0]
    rows = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
    if not _has_field_codes(rows[:_CODE_ROWS]):
        for other, other_frozen in candidates[1:]:
            head = book.get_sheet_by_name(other).to_python(skip_empty_area=False, nrows=_CODE_ROWS)
            if _has_field_codes(head):
                return other, other_frozen, book.get_sheet_by_name(other).to_python(skip_empty_area=False)
    return name, frozen, rows


_CODE_ROWS = 10  # a template's row of field codes is among its sheet's first rows


def _has_field_codes(rows: list[list[Any]]) -> bool:
    """Whether a sheet's first non-empty row holds a marketplace's field codes (Shopee's
    `ps_product_name|1|0`): the data sheet of a template, wherever it stands among the sheets."""
    first = next((row for row in rows if any(value not in ("", None) for value in row)), [])
    return sum(1 for value in first if isinstance(value, str) and _FIELD_CODE.match(value)) >= 2


_FIELD_CODE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[0-9A-Za-z_]+)?\|")


def _checked(path: Path, handle: IO[bytes], sheet: str | None) -> list[tuple[str, int]]:
    """The sheets that may be read, each with the rows frozen above its data, after checking
    what each claims: the one named, else the visible ones in order (the first is read, unless
    a later one is a marketplace template's data sheet)."""
    size = handle.seek(0, 2)
    handle.seek(0)
    if size > MAX_FILE_BYTES:
        raise CatalogError(
            path,
            f"a workbook of {size / 2**20:,.0f} MB, more than we read ({MAX_FILE_BYTES >> 20} MB)",
            hint=_SAVE_AS_CSV,
        )
    try:
        with zipfile.ZipFile(handle) as archive:
            if "mimetype" in archive.namelist() and archive.read("mimetype").strip() == _ODS_MIME:
                return _checked_ods(path, archive, sheet)
    except zipfile.BadZipFile as exc:
        raise CatalogError(path, f"a damaged workbook ({exc})", hint=_SAVE_AS_CSV) from None
    handle.seek(0)
    try:
        with Workbook(handle, str(path)) as book:
            sheets = book.sheets()
            if sheet is not None:
                chosen = _chosen(path, [part.name for part in sheets], sheet)
                parts = [part for part in sheets if part.name == chosen]
            else:
                parts = [part for part in sheets if not part.hidden] or sheets[:1]
            candidates = []
            for part in parts:
                grid = book.grid(part)
                _check_grid(path, part.name, grid)
                candidates.append((part.name, grid.frozen_rows))
    except WorkbookError as exc:
        raise CatalogError(path, str(exc), hint=_SAVE_AS_CSV) from None
    return candidates


def _chosen(path: Path, names: list[str], sheet: str | None) -> str:
    if not names:
        raise CatalogError(path, "the workbook has no sheet")
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    folded = {name.casefold(): name for name in names}
    if sheet.casefold() in folded:
        return folded[sheet.casefold()]
    raise CatalogError(path, f"no sheet named {sheet!r}", hint=f"the workbook has: {', '.join(names)} (--sheet NAME)")


def _check_grid(path: Path, sheet: str, grid: Grid) -> None:
    if grid.cells <= MAX_CELLS:
        return
    claimed = grid.dimension or f"A1:{column_letters(grid.columns)}{grid.rows}"
    raise CatalogError(
        path,
        f"the sheet {sheet!r} claims {claimed} ({grid.rows:,} rows × {grid.columns:,} columns, "
        f"more than the {MAX_CELLS:,} cells we read)",
        hint="delete the empty rows and columns past your data (or a stray cell far away), or save the sheet as CSV",
    )


def _checked_ods(path: Path, archive: zipfile.ZipFile, sheet: str | None) -> list[tuple[str, int]]:
    """An OpenDocument sheet's extent, counted as a stream: rows and cells repeated by
    number-rows-repeated / number-columns-repeated count where they hold a value (the empty
    rows an editor repeats to the grid's end hold none)."""
    try:
        info = archive.getinfo("content.xml")
    except KeyError:
        raise CatalogError(path, "an OpenDocument file without content.xml", hint=_SAVE_AS_CSV) from None
    if info.file_size > MAX_PART_BYTES:
        raise CatalogError(path, f"content.xml unpacks to {info.file_size / 2**20:,.0f} MB", hint=_SAVE_AS_CSV)
    names: list[str] = []
    chosen: str | None = None
    grid = Grid()
    row = column = 0
    row_filled = False
    try:
        with archive.open(info) as stream:
            for event, element in SafeET.iterparse(stream, events=("start", "end")):
                tag = element.tag
                if tag == _TABLE + "table":
                    if event == "start":
                        names.append(element.get(_TABLE + "name", ""))
                        if chosen is None and (sheet is None or names[-1].casefold() == sheet.casefold()):
                            chosen, row = names[-1], 0
                    elif chosen == names[-1]:
                        break
                    continue
                if chosen is None or chosen != names[-1] or event == "start":
                    continue
                if tag in (_TABLE + "table-cell", _TABLE + "covered-table-cell"):
                    repeat = _repeat(element, "number-columns-repeated")
                    if element.get(_OFFICE + "value-type") or element.find(_TEXT + "p") is not None:
                        grid.columns = max(grid.columns, column + repeat)
                        row_filled = True
                    column += repeat
                    element.clear()
                elif tag == _TABLE + "table-row":
                    repeat = _repeat(element, "number-rows-repeated")
                    if row_filled:
                        grid.rows = row + repeat
                    row, column, row_filled = row + repeat, 0, False
                    element.clear()
    except SafeET.ParseError as exc:
        raise CatalogError(path, f"content.xml is not well-formed XML ({exc})", hint=_SAVE_AS_CSV) from None
    except Exception as exc:  # defusedxml's refusals
        raise CatalogError(path, f"content.xml is refused ({type(exc).__name__})", hint=_SAVE_AS_CSV) from None
    if chosen is None:
        _chosen(path, names, sheet)  # says which sheets there are
        raise CatalogError(path, "the workbook has no sheet")
    _check_grid(path, chosen, grid)
    return [(chosen, 0)]


def _repeat(element: Any, attribute: str) -> int:
    try:
        return max(1, int(element.get(_TABLE + attribute, "1")))
    except ValueError:
        return 1


def _text(value: object) -> str:
    """A cell's value as the sheet shows it written: whole numbers without .0, dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15g")
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if not value.microsecond else "auto")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)

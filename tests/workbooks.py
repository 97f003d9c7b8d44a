"""Workbooks built the way spreadsheet programs and marketplaces write them, part by part:
catalogs (.xlsx, .ods) and Shopee / Lazada templates with several sheets, a header block, a
helper sheet an x14 cross-sheet list validation points at, a frozen pane written as Shopee
writes it (activePane="bottom_left", which openpyxl refuses), shared strings and rows a seller
already started. No spreadsheet library writes them: what the tests check is our own reading
and patching of these parts."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


@dataclass(frozen=True)
class Formula:
    formula: str
    cached: object


@dataclass
class SheetSpec:
    name: str
    rows: Sequence[Sequence[object]] = ()
    first_row: int = 1
    frozen_rows: int = 0  # a frozen pane below this many rows
    validations: str = ""  # extra XML put in the worksheet's extLst (x14 lists)
    hidden: bool = False
    dimension: str | None = None  # what <dimension ref> claims (default: the cells written)
    extra_cells: Sequence[str] = ()  # raw <c> elements put in a row of their own at the end
    column_styles: dict[int, int] = field(default_factory=dict)
    blank_styled_rows: Sequence[int] = ()  # rows with styled empty cells (a template's prepared rows)


def _col(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _excel_date(value: dt.date) -> float:
    base = dt.datetime(1899, 12, 30)
    moment = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    return (moment - base).total_seconds() / 86400


class _Strings:
    def __init__(self) -> None:
        self.items: list[str] = []

    def index(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text)


def _cell(ref: str, value: object, strings: _Strings) -> str:
    if value is None:
        return ""
    if isinstance(value, Formula):
        cached = value.cached
        kind = ' t="str"' if isinstance(cached, str) else ""
        return f'<c r="{ref}"{kind}><f>{escape(value.formula)}</f><v>{escape(str(cached))}</v></c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, dt.date):
        style = 2 if isinstance(value, dt.datetime) else 1
        return f'<c r="{ref}" s="{style}"><v>{_excel_date(value)}</v></c>'
    if isinstance(value, (int, float)):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    return f'<c r="{ref}" t="s"><v>{strings.index(str(value))}</v></c>'


def _sheet_xml(spec: SheetSpec, strings: _Strings) -> str:
    rows = []
    last_row, last_col = spec.first_row, 1
    for offset, values in enumerate(spec.rows):
        number = spec.first_row + offset
        cells = "".join(_cell(f"{_col(c)}{number}", v, strings) for c, v in enumerate(values, start=1))
        if cells:
            rows.append(f'<row r="{number}" spans="1:{max(len(values), 1)}">{cells}</row>')
            last_row, last_col = number, max(last_col, len(values))
    for number in spec.blank_styled_rows:
        cells = "".join(f'<c r="{_col(c)}{number}" s="3"/>' for c in range(1, last_col + 1))
        rows.append(f'<row r="{number}">{cells}</row>')
    rows.sort(key=lambda row: int(row.split('r="', 1)[1].split('"', 1)[0]))
    if spec.extra_cells:
        rows.append(f'<row r="{last_row + 1}">{"".join(spec.extra_cells)}</row>')
    dimension = spec.dimension or f"A1:{_col(last_col)}{last_row}"
    pane = ""
    if spec.frozen_rows:
        # Shopee's templates write the pane name with an underscore, which openpyxl refuses.
        pane = (
            f'<pane ySplit="{spec.frozen_rows}" topLeftCell="A{spec.frozen_rows + 1}" '
            'activePane="bottom_left" state="frozen"/>'
        )
    cols = ""
    if spec.column_styles:
        cols = (
            "<cols>"
            + "".join(
                f'<col min="{c}" max="{c}" width="30" style="{s}" customWidth="1"/>'
                for c, s in spec.column_styles.items()
            )
            + "</cols>"
        )
    ext = ""
    if spec.validations:
        ext = (
            '<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
            'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
            f"{spec.validations}</ext></extLst>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN}" xmlns:r="{REL}" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
        f'<dimension ref="{dimension}"/>'
        f'<sheetViews><sheetView workbookViewId="0">{pane}</sheetView></sheetViews>'
        f'<sheetFormatPr defaultRowHeight="15"/>{cols}'
        f"<sheetData>{''.join(rows)}</sheetData>"
        '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        f"{ext}</worksheet>"
    )


STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<styleSheet xmlns="{MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    '<borders count="1"><border/></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    "</styleSheet>"
)


def write_xlsx(path: Path, sheets: Sequence[SheetSpec]) -> Path:
    """An .xlsx of these sheets, parts in the order Excel writes them."""
    strings = _Strings()
    sheet_parts = [_sheet_xml(spec, strings) for spec in sheets]
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for n in range(1, len(sheets) + 1)
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f"{overrides}"
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
            + "".join(
                f'<sheet name={quoteattr(spec.name)} sheetId="{n}" r:id="rId{n}"'
                + (' state="hidden"' if spec.hidden else "")
                + "/>"
                for n, spec in enumerate(sheets, start=1)
            )
            + "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            + "".join(
                f'<Relationship Id="rId{n}" '
                'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
                f'Target="worksheets/sheet{n}.xml"/>'
                for n in range(1, len(sheets) + 1)
            )
            + f'<Relationship Id="rId{len(sheets) + 1}" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
            f'<Relationship Id="rId{len(sheets) + 2}" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
            'Target="sharedStrings.xml"/></Relationships>'
        ),
        "xl/styles.xml": STYLES,
    }
    for n, xml in enumerate(sheet_parts, start=1):
        parts[f"xl/worksheets/sheet{n}.xml"] = xml
    parts["xl/sharedStrings.xml"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<sst xmlns="{MAIN}" count="{len(strings.items)}" uniqueCount="{len(strings.items)}">'
        + "".join(f'<si><t xml:space="preserve">{escape(text)}</t></si>' for text in strings.items)
        + "</sst>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)
    return path


def parts_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- OpenDocument ----------------------------------------------------------------------------

_ODS_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"'
)


def _ods_cell(value: object) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, Formula):
        cached = value.cached
        return (
            f'<table:table-cell table:formula="of:{escape(value.formula)}" office:value-type="float" '
            f'office:value="{cached}"><text:p>{cached}</text:p></table:table-cell>'
        )
    if isinstance(value, bool):
        return (
            f'<table:table-cell office:value-type="boolean" office:boolean-value="{str(value).lower()}">'
            f"<text:p>{str(value).upper()}</text:p></table:table-cell>"
        )
    if isinstance(value, dt.date):
        return (
            f'<table:table-cell office:value-type="date" office:date-value="{value.isoformat()}">'
            f"<text:p>{value.isoformat()}</text:p></table:table-cell>"
        )
    if isinstance(value, (int, float)):
        return (
            f'<table:table-cell office:value-type="float" office:value="{value!r}">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    lines = "".join(f"<text:p>{escape(line)}</text:p>" for line in str(value).split("\n"))
    return f'<table:table-cell office:value-type="string">{lines}</table:table-cell>'


def write_ods(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[object]]]], *, trailer: str = "") -> Path:
    """An .ods of (name, rows) sheets; `trailer` is raw XML put after the first sheet's rows
    (the empty rows an editor repeats to the grid's end, or a bomb)."""
    tables = []
    for index, (name, rows) in enumerate(sheets):
        body = "".join("<table:table-row>" + "".join(map(_ods_cell, row)) + "</table:table-row>" for row in rows)
        if index == 0:
            body += trailer
        tables.append(f"<table:table table:name={quoteattr(name)}>{body}</table:table>")
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document-content {_ODS_NS} office:version="1.2"><office:body><office:spreadsheet>'
        f"{''.join(tables)}</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED
        )
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return path


# --- marketplace templates, laid out as downloaded ----------------------------------------------

X14_LIST = (
    '<x14:dataValidations count="1">'
    '<x14:dataValidation type="list" allowBlank="1" showInputMessage="1" showErrorMessage="1">'
    "<x14:formula1><xm:f>{helper}!$A$1:$A$40</xm:f></x14:formula1><xm:sqref>{column}{first}:{column}10000</xm:sqref>"
    "</x14:dataValidation></x14:dataValidations>"
)
SHOPEE_CODES = [
    "ps_category|1|0", "ps_product_name|1|0", "ps_product_description|1|0", "ps_sku_parent_short|0|0",
    "et_title_variation_integration_no|0|0", "et_title_variation_1|0|0", "ps_sku_short|0|0", "ps_price|1|0",
    "ps_stock|1|0", "ps_weight|1|0", "ps_brand|0|0", "channel_id.70022|0|0", "et_title_reason|0|0",
]  # fmt: skip
SHOPEE_LABELS = [
    "Category", "Product Name", "Product Description", "Parent SKU", "Variation Integration No.",
    "Name of Variation 1", "SKU", "Price", "Stock", "Weight", "Brand", "Standard Delivery", "Fail Reason",
]  # fmt: skip
SHOPEE_FLAGS = [
    "Mandatory", "Mandatory", "Mandatory", "Optional", "Conditional", "Conditional", "Optional", "Mandatory",
    "Mandatory", "Mandatory", "Optional", "Conditional", "Optional",
]  # fmt: skip
# Rows a seller started: a product with a category and a variant row under it.
SHOPEE_STARTED = [
    ["100644", "Old name", "Old description of the lamp", "SKU-STARTED", "", "", "", 20, 5, 0.4, "Lumo", "Enable", ""],
    ["", "", "", "SKU-STARTED", 1, "Colour", "SKU-STARTED-RED", 20, 3, 0.4, "", "", ""],
]


def shopee_template(path: Path, *, started: Sequence[Sequence[object]] = SHOPEE_STARTED, frozen: int = 6) -> Path:
    """A Shopee mass-upload template as the seller centre ships it: a guide sheet, the data
    sheet (codes, signature, labels, flags, two help rows, data from row 7, a frozen pane
    openpyxl refuses, a category list validated against a hidden helper sheet), the helper."""
    block = [
        SHOPEE_CODES,
        ["basic", "9c1f0e7d2a", *range(1, len(SHOPEE_CODES) - 1)],
        SHOPEE_LABELS,
        SHOPEE_FLAGS,
        ["Choose from the list" for _ in SHOPEE_CODES],
        ["Up to 120 characters" for _ in SHOPEE_CODES],
    ]
    return write_xlsx(
        path,
        [
            SheetSpec("Guidance", [["How to fill the template"], ["Do not delete or rename any sheet."]]),
            SheetSpec(
                "Template",
                [*block, *started],
                frozen_rows=frozen,
                validations=X14_LIST.format(helper="Category", column="A", first=7),
                column_styles={2: 3, 3: 3},
            ),
            SheetSpec("Category", [[f"1006{n:02d}"] for n in range(40)], hidden=True),
        ],
    )


LAZADA_LABELS = [
    "*Product Name", "*Short Description", "Main Description", "Highlights", "SellerSKU", "*Price", "*Quantity",
    "*Brand", "Color Family",
]  # fmt: skip


def lazada_template(path: Path, *, labels: Sequence[str] = LAZADA_LABELS) -> Path:
    """A Lazada Bulk Manage workbook: instructions, the upload sheet (a note row, the labels,
    a row the seller started), a brand list a validation points at."""
    return write_xlsx(
        path,
        [
            SheetSpec("Instructions", [["Only edit the Upload Template sheet."]]),
            SheetSpec(
                "Upload Template",
                [
                    ["Fill in one product per row; fields marked * are mandatory."],
                    list(labels),
                    ["Old lamp name", "", "", "", "LZ-STARTED", 15, 2, "Lumo", "White"],
                ],
                frozen_rows=2,
                validations=X14_LIST.format(helper="Brands", column="H", first=3),
            ),
            SheetSpec("Brands", [["Lumo"], ["No Brand"]], hidden=True),
        ],
    )

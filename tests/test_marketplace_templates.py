"""Shopee and Lazada: the seller's own template filled in place. Every part of the workbook but
the data sheet comes back byte for byte; in the data sheet, every row the run did not write,
the pane, the validations; a real reader (python-calamine) reads what was written."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import python_calamine
from conftest import write
from fake_relay import FakeRelay
from workbooks import SHOPEE_CODES, lazada_template, parts_of, shopee_template

from localize.reading.xlsx import Cell, escape_text, patch_sheet

CATALOG = """id,sku,name,brand,description,price,stock,weight
P1,SKU-STARTED,Lumo desk lamp,Lumo,"A dimmable LED desk lamp with 3 colour temperatures and a USB-C port.",20,5,0.4
P2,NEW-1,Lumo floor lamp,Lumo,"A tall LED floor lamp with a linen shade and a foot switch.",=1+2,7,2
P3,NEW-2,Lumo clip lamp,Lumo,"A small clip-on reading lamp, 2 W, battery powered.",12.50,,
"""
SHOPEE_SHEET = "xl/worksheets/sheet2.xml"


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-templates-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write(tmp_path / "lamps.csv", CATALOG)


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "--base-url", relay.base_url, "--out", "out", "--no-progress", *args)


def rows_of(path: Path, sheet: str) -> list[list[str]]:
    """The sheet as a spreadsheet reader sees it, from A1, every cell as text."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    return [[_text(cell) for cell in row] for row in book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)]


def _text(cell: object) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def row_elements(xml: bytes) -> dict[int, bytes]:
    return {int(m.group(1)): m.group(0) for m in re.finditer(rb'<row r="(\d+)"[^>]*>.*?</row>', xml, re.DOTALL)}


def outside_sheet_data(xml: bytes) -> bytes:
    """A sheet's XML but its rows and its dimension (what a fill may change)."""
    xml = re.sub(rb"<sheetData>.*</sheetData>", b"", xml, flags=re.DOTALL)
    return re.sub(rb'<dimension ref="[^"]*"/>', b"", xml)


def test_shopee_template_is_filled_in_place(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    template = shopee_template(tmp_path / "shopee_th.xlsx")
    before = template.read_bytes()
    result = run(run_cli, relay, catalog, "-l", "th-TH", "-p", "shopee", "--format", "shopee", "--template", template)
    assert result.exit_code == 0, result.stderr
    written = tmp_path / "out" / "shopee" / "th-TH.xlsx"
    assert template.read_bytes() == before  # the seller's download is never written to

    old, new = parts_of(template), parts_of(written)
    assert list(new) == list(old)  # every part, in its order
    assert {name for name in old if old[name] != new[name]} == {SHOPEE_SHEET}
    assert outside_sheet_data(new[SHOPEE_SHEET]) == outside_sheet_data(old[SHOPEE_SHEET])
    assert b'activePane="bottom_left"' in new[SHOPEE_SHEET] and b"<xm:f>Category!$A$1:$A$40</xm:f>" in new[SHOPEE_SHEET]
    old_rows, new_rows = row_elements(old[SHOPEE_SHEET]), row_elements(new[SHOPEE_SHEET])
    for number in (1, 2, 3, 4, 5, 6, 8):  # the header block and the variant row, untouched
        assert new_rows[number] == old_rows[number]
    assert b'<dimension ref="A1:M10"/>' in new[SHOPEE_SHEET]

    rows = rows_of(written, "Template")
    codes = [code.split("|")[0] for code in SHOPEE_CODES]
    at = {code: codes.index(code) for code in codes}
    started, variant, first_new, second_new = rows[6], rows[7], rows[8], rows[9]
    # The row the seller started keeps their cells, gets the listing.
    assert started[at["ps_category"]] == "100644" and started[at["ps_brand"]] == "Lumo"
    assert started[at["ps_sku_parent_short"]] == "SKU-STARTED" and started[at["channel_id.70022"]] == "Enable"
    assert started[at["ps_product_name"]] == "หูฟังไร้สาย Nordbeat ตัดเสียงรบกวน"
    description = started[at["ps_product_description"]]
    assert description.startswith("• ตัดเสียงรบกวนได้ดีเยี่ยม\n") and "<" not in description
    assert "#หูฟัง #ไร้สาย" in description  # hashtags below, as Shopee reads them
    assert variant[at["ps_sku_short"]] == "SKU-STARTED-RED" and variant[at["ps_product_name"]] == ""
    # New products after the last used row, with the catalog's figures.
    assert [first_new[at["ps_sku_parent_short"]], second_new[at["ps_sku_parent_short"]]] == ["NEW-1", "NEW-2"]
    assert first_new[at["ps_price"]] == "'=1+2"  # a formula-shaped cell is text, neutralised
    assert second_new[at["ps_price"]] == "12.5" and first_new[at["ps_stock"]] == "7"
    assert first_new[at["ps_category"]] == "" and len(rows) == 10
    assert b"<f>" not in new[SHOPEE_SHEET]  # never a formula cell

    said = " ".join(result.stderr.split())
    assert "Import file (shopee): out/shopee/th-TH.xlsx: 3 rows." in said
    assert "Filled in shopee_th.xlsx (sheet 'Template'): 1 row the seller started, filled where they stand; " in said
    assert "2 new rows from row 9." in said
    left = "ps_category (Category), ps_stock (Stock), ps_weight (Weight)"
    assert f"Mandatory columns left for you to fill before uploading: {left}." in said


def test_shopee_without_template_stops_before_sending(run_cli, relay: FakeRelay, catalog: Path) -> None:
    result = run(run_cli, relay, catalog, "-l", "th-TH,pt-BR", "-p", "shopee", "--format", "shopee")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "needs the seller's own Shopee mass-upload template for th-TH" in result.stderr
    assert "Seller Centre → My Products → Mass Upload" in result.stderr
    assert relay.requests == []


def test_a_template_of_the_other_shop_is_named(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    lazada = lazada_template(tmp_path / "lazada_th.xlsx")
    result = run(run_cli, relay, catalog, "-l", "th-TH", "-p", "shopee", "--format", "shopee", "--template", lazada)
    assert result.exit_code == 2 and f"({lazada} is not one)" in result.stderr
    assert relay.requests == []


def test_one_bare_template_needs_one_locale(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    template = shopee_template(tmp_path / "shopee.xlsx")
    result = run(
        run_cli, relay, catalog, "-l", "th-TH,pt-BR", "-p", "shopee", "--format", "shopee", "--template", template
    )
    assert result.exit_code == 2 and "names no locale, and the run has 2" in result.stderr
    assert "--template th-TH=FILE" in result.stderr and relay.requests == []


def test_a_damaged_template_is_one_line(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    broken = write(tmp_path / "shopee.xlsx", b"PK\x03\x04 not really a zip")
    result = run(
        run_cli, relay, catalog, "-l", "th-TH", "-p", "shopee", "--format", "shopee", "--template", f"th-TH={broken}"
    )
    assert result.exit_code == 2 and "the template cannot be read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and relay.requests == []


def test_each_market_gets_its_own_file(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    th, br = shopee_template(tmp_path / "th.xlsx"), shopee_template(tmp_path / "br.xlsx", started=())
    result = run(
        run_cli, relay, catalog, "-l", "th-TH,pt-BR", "-p", "shopee", "--format", "shopee",
        "--template", f"th-TH={th}", "--template", f"pt-BR={br}",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "out" / "shopee").iterdir()) == ["pt-BR.xlsx", "th-TH.xlsx"]
    brazil = rows_of(tmp_path / "out" / "shopee" / "pt-BR.xlsx", "Template")
    assert [row[3] for row in brazil[6:]] == ["SKU-STARTED", "NEW-1", "NEW-2"]  # data from row 7
    assert brazil[6][1].startswith("Fones de ouvido")
    # Asked for no more, the folder goes.
    again = run(run_cli, relay, catalog, "-l", "th-TH,pt-BR", "-p", "shopee")
    assert again.exit_code == 0 and not (tmp_path / "out" / "shopee").exists()


def test_templates_from_localize_yaml(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    shopee_template(tmp_path / "th.xlsx")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\ntemplates:\n  th_TH: th.xlsx\n")
    result = run(run_cli, relay, catalog, "-l", "th-TH", "-p", "shopee", "--format", "shopee")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "shopee" / "th-TH.xlsx").is_file()


def test_lazada_template_is_filled_in_place(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    template = lazada_template(tmp_path / "lazada_th.xlsx")
    write(tmp_path / "seller.csv", CATALOG.replace("SKU-STARTED", "LZ-STARTED"))
    result = run(
        run_cli, relay, tmp_path / "seller.csv", "-l", "th-TH", "-p", "lazada", "--format", "lazada",
        "--template", f"th-TH={template}",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    written = tmp_path / "out" / "lazada" / "th-TH.xlsx"
    old, new = parts_of(template), parts_of(written)
    assert list(new) == list(old) and {name for name in old if old[name] != new[name]} == {SHOPEE_SHEET}
    assert outside_sheet_data(new[SHOPEE_SHEET]) == outside_sheet_data(old[SHOPEE_SHEET])
    assert b"<xm:f>Brands!$A$1:$A$40</xm:f>" in new[SHOPEE_SHEET]
    rows = rows_of(written, "Upload Template")
    labels = rows[1]
    at = {label: labels.index(label) for label in labels}
    started = rows[2]
    assert started[at["SellerSKU"]] == "LZ-STARTED" and started[at["*Brand"]] == "Lumo"
    assert started[at["Color Family"]] == "White" and started[at["*Product Name"]] == "หูฟังไร้สาย Nordbeat ตัดเสียงรบกวน"
    assert started[at["*Short Description"]].startswith("<ul><li>") and started[at["Highlights"]].startswith("<ul>")
    assert started[at["*Price"]] == "20"
    assert [row[at["SellerSKU"]] for row in rows[3:]] == ["NEW-1", "NEW-2"]
    said = " ".join(result.stderr.split())
    assert "Mandatory columns left for you to fill before uploading: *Quantity, *Brand." in said


def test_lazada_labels_from_localize_yaml(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    """A Daraz-style sheet whose labels differ: lazada_columns names them."""
    labels = ["*Product Name", "*Short Description", "Main Description", "Seller SKU", "*Price", "*Stock"]
    lazada_template(tmp_path / "daraz.xlsx", labels=labels)
    plain = run(
        run_cli, relay, catalog, "-l", "en-PH", "-p", "lazada", "--format", "lazada", "--template", "daraz.xlsx"
    )
    assert plain.exit_code == 2 and "Lazada Bulk Manage template for en-PH" in plain.stderr
    write(
        tmp_path / "localize.yaml",
        "rpm: 60000\nbackoff_s: 0.001\nlazada_columns:\n  sku: Seller SKU\n  stock: '*Stock'\n",
    )
    result = run(
        run_cli, relay, catalog, "-l", "en-PH", "-p", "lazada", "--format", "lazada", "--template", "daraz.xlsx"
    )
    assert result.exit_code == 0, result.stderr
    rows = rows_of(tmp_path / "out" / "lazada" / "en-PH.xlsx", "Upload Template")
    assert [row[3] for row in rows[3:]] == ["SKU-STARTED", "NEW-1", "NEW-2"] and rows[4][5] == "7"


def test_a_listing_that_looks_like_a_formula_stays_text(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """results.jsonl edited by hand (or an older run): what reaches the sheet is still text."""
    catalog = write(tmp_path / "c.csv", CATALOG)
    template = shopee_template(tmp_path / "t.xlsx", started=())
    args = ("-l", "th-TH", "-p", "shopee", "--format", "shopee", "--template", str(template))
    assert run(run_cli, relay, catalog, *args).exit_code == 0
    results = tmp_path / "out" / "results.jsonl"
    text = results.read_text(encoding="utf-8")
    results.write_text(re.sub(r'"title": "[^"]*"', '"title": "=HYPERLINK(\\\\"http://x\\\\")"', text, count=1))
    again = run(run_cli, relay, catalog, *args)
    assert again.exit_code == 0, again.stderr
    names = [row[1] for row in rows_of(tmp_path / "out" / "shopee" / "th-TH.xlsx", "Template")[6:]]
    assert all(not name.startswith("=") for name in names)


def test_patch_keeps_untouched_cells_and_escapes_text() -> None:
    xml = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:C2"/>'
        b'<sheetData><row r="1" spans="1:3"><c r="A1" t="s"><v>0</v></c><c r="C1" s="2"><v>7</v></c></row>'
        b'<row r="3"><c s="4"/><c><v>1</v></c></row></sheetData></worksheet>'
    )
    patched = patch_sheet(xml, {1: {2: Cell("a < b & _x0041_")}, 2: {1: Cell("12.5", number=True)}, 3: {3: Cell("z")}})
    assert b'<c r="A1" t="s"><v>0</v></c>' in patched and b'<c r="C1" s="2"><v>7</v></c>' in patched
    assert b'<c r="B1" t="inlineStr"><is><t xml:space="preserve">a &lt; b &amp; _x005F_x0041_</t></is></c>' in patched
    assert b'<row r="2"><c r="A2"><v>12.5</v></c></row>' in patched  # a new row, in order
    assert b'<c r="A3" s="4"/><c r="B3"><v>1</v></c><c r="C3" t="inlineStr">' in patched  # r-less cells placed
    assert b'spans="1:3"' in patched and b'<dimension ref="A1:C3"/>' in patched
    assert escape_text("bell\x07") == "bell_x0007_"


def test_written_workbook_is_a_valid_zip(run_cli, relay: FakeRelay, catalog: Path, tmp_path: Path) -> None:
    template = shopee_template(tmp_path / "t.xlsx")
    result = run(run_cli, relay, catalog, "-l", "th-TH", "-p", "shopee", "--format", "shopee", "--template", template)
    assert result.exit_code == 0, result.stderr  # (a Result is always true: its exit code is what can fail)
    with zipfile.ZipFile(tmp_path / "out" / "shopee" / "th-TH.xlsx") as archive:
        assert archive.testzip() is None


def test_the_readme_example_prints_what_the_readme_shows(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """README, "Shopee and Lazada": the command on the shipped examples, and its closing lines."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Shopee and Lazada", 1)[1].split("\n## ", 1)[0]
    command = section.split("```sh\n", 1)[1].split("\n#", 1)[0].replace("\\\n", " ").split()
    assert command[:2] == ["localize", "run"] and command[-1] == "--dry-run"
    shown = [line[2:] for line in section.splitlines() if line.startswith("# Import file")]
    assert len(shown) == 2
    examples = Path(__file__).resolve().parent.parent / "examples"
    (tmp_path / "examples").symlink_to(examples)
    result = run_cli(*command[1:-1], "--base-url", relay.base_url, "--no-progress")
    assert result.exit_code == 0, result.stderr
    printed = [line for line in result.stderr.splitlines() if line.startswith("Import file")]
    assert printed == shown


def test_a_prefixed_sheet_gets_prefixed_cells() -> None:
    xml = (
        b'<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<x:sheetData><x:row r="1"><x:c r="A1" t="s"><x:v>0</x:v></x:c></x:row></x:sheetData></x:worksheet>'
    )
    patched = patch_sheet(xml, {1: {2: Cell("b")}, 2: {1: Cell("3", number=True)}})
    assert b'<x:c r="B1" t="inlineStr"><x:is><x:t xml:space="preserve">b</x:t></x:is></x:c>' in patched
    assert b'<x:row r="2"><x:c r="A2"><x:v>3</x:v></x:c></x:row>' in patched


def test_a_variant_sku_fills_its_products_first_row(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """Shopee wants a product's name and description on its first row: a catalog that names
    the variant's SKU fills the row of the product it belongs to, never the variant's."""
    template = shopee_template(tmp_path / "t.xlsx")
    catalog = write(tmp_path / "c.csv", CATALOG.replace("P1,SKU-STARTED,", "P1,SKU-STARTED-RED,"))
    result = run(run_cli, relay, catalog, "-l", "th-TH", "-p", "shopee", "--format", "shopee", "--template", template)
    assert result.exit_code == 0, result.stderr
    rows = rows_of(tmp_path / "out" / "shopee" / "th-TH.xlsx", "Template")
    assert rows[6][1].startswith("หูฟัง") and rows[6][3] == "SKU-STARTED"  # the product's row, its SKU kept
    assert rows[7][1] == "" and rows[7][6] == "SKU-STARTED-RED"
    assert [row[3] for row in rows[8:]] == ["NEW-1", "NEW-2"]


def test_a_merge_removes_every_shops_files_from_the_registry(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """A merge writes no import file (it has no settings to write one with): those the shards
    left go, every registered shop's, Shopee's folder included."""
    catalog = write(tmp_path / "c.csv", CATALOG)
    template = shopee_template(tmp_path / "t.xlsx")
    for shard in ("1/2", "2/2"):
        args = ("-l", "th-TH", "-p", "shopee", "--format", "shopee", "--template", str(template), "--shard", shard)
        result = run_cli("run", catalog, "--base-url", relay.base_url, "--out", f"out{shard[0]}", *args)
        assert result.exit_code == 0, result.stderr
        assert (tmp_path / f"out{shard[0]}" / "shopee" / "th-TH.xlsx").is_file()
    merged = run_cli("merge", "out1", "out2", "--out", "out1", "--json")
    assert merged.exit_code == 0, merged.stderr
    assert not (tmp_path / "out1" / "shopee").exists() and "shopee" in json.loads(merged.stdout)["removed"]

"""Catalogs kept in spreadsheets: .xlsx, .xlsm and .ods read as their CSV twin reads (the same
jobs, prompts and fingerprints), cells as written, and a workbook that claims the whole grid
refused in a line before the reader sees it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay
from workbooks import Formula, SheetSpec, shopee_template, write_ods, write_xlsx

HEADER = ["id", "name", "description", "capacity_mah", "weight_kg", "released", "in_stock"]
ROWS = [
    ["PB-1", "Voltkit power bank", "Charges a laptop over USB-C.", 20000, 1.25, dt.date(2024, 3, 1), True],
    ["PB-2", "Voltkit mini", "Line one\nline two", Formula("D2/2", 10000), 0.2, dt.date(2024, 5, 17), False],
]
TWIN = (
    "id,name,description,capacity_mah,weight_kg,released,in_stock\n"
    "PB-1,Voltkit power bank,Charges a laptop over USB-C.,20000,1.25,2024-03-01,TRUE\n"
    'PB-2,Voltkit mini,"Line one\nline two",10000,0.2,2024-05-17,FALSE\n'
)
FIELDS = "+capacity_mah,+weight_kg,+released,+in_stock"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-sheets-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def dry_run(run_cli, catalog: Path, *args: str) -> dict:
    result = run_cli("run", catalog, "-l", "de-DE,ja-JP", "--dry-run", "--json", "--fields", FIELDS, *args)
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    found.pop("elapsed_s")
    return found


def user_message(run_cli, catalog: Path, *args: str) -> str:
    result = run_cli("prompt", catalog, "--id", "PB-2", "-l", "de-DE", "--json", "--fields", FIELDS, *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["messages"][-1]["content"]


@pytest.mark.parametrize("kind", ["xlsx", "xlsm", "ods"])
def test_a_spreadsheet_reads_as_its_csv_twin(run_cli, tmp_path: Path, kind: str) -> None:
    twin = write(tmp_path / "twin.csv", TWIN)
    if kind == "ods":
        book = write_ods(tmp_path / "catalog.ods", [("Products", [HEADER, *ROWS])])
    else:
        book = write_xlsx(tmp_path / f"catalog.{kind}", [SheetSpec("Products", [HEADER, *ROWS])])
    assert dry_run(run_cli, book) == dry_run(run_cli, twin)
    message = user_message(run_cli, book)
    assert message == user_message(run_cli, twin)
    assert '"capacity_mah": "10000"' in message and '"weight_kg": "0.2"' in message  # as written
    assert '"released": "2024-05-17"' in message and "Line one\\nline two" in message


def test_a_run_on_the_csv_is_current_for_the_workbook(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """The same fingerprints: a catalog moved from CSV to a workbook sends nothing again."""
    twin = write(tmp_path / "twin.csv", TWIN)
    book = write_xlsx(tmp_path / "catalog.xlsx", [SheetSpec("Products", [HEADER, *ROWS])])
    args = ("-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--no-progress")
    assert run_cli("run", twin, *args).exit_code == 0
    sent = len(relay.requests)
    check = run_cli("run", book, *args, "--check")
    assert check.exit_code == 0, check.stdout + check.stderr
    again = run_cli("run", book, *args)
    assert again.exit_code == 0 and len(relay.requests) == sent


def test_header_is_the_first_non_empty_row_and_frozen_rows_are_headings(run_cli, tmp_path: Path) -> None:
    book = write_xlsx(
        tmp_path / "c.xlsx",
        [SheetSpec("Sheet1", [["id", "name"], ["(our ids)", "(the product's name)"], ["A1", "Mug"]], first_row=3,
                   frozen_rows=4)],
    )  # fmt: skip
    found = dry_run(run_cli, book)
    assert found["products"]["total"] == 1


def test_sheet_is_chosen_by_name(run_cli, tmp_path: Path) -> None:
    book = write_xlsx(
        tmp_path / "c.xlsx",
        [SheetSpec("Notes", [["read me"], ["nothing here"]]), SheetSpec("Products", [HEADER, *ROWS])],
    )
    first = run_cli("run", book, "-l", "de-DE", "--dry-run")
    assert first.exit_code == 2 and "missing required columns 'id' and 'name'" in first.stderr
    assert dry_run(run_cli, book, "--sheet", "products")["products"]["total"] == 2
    missing = run_cli("run", book, "-l", "de-DE", "--dry-run", "--sheet", "Catalog")
    assert missing.exit_code == 2 and "no sheet named 'Catalog'" in missing.stderr
    assert "the workbook has: Notes, Products" in missing.stderr
    assert user_message(run_cli, book, "--sheet", "Products") == user_message(run_cli, write(tmp_path / "t.csv", TWIN))


def test_rows_are_named_by_their_row_number(run_cli, tmp_path: Path) -> None:
    book = write_xlsx(tmp_path / "c.xlsx", [SheetSpec("S", [["id", "name"], ["A", "x\ny"], ["B", "z"], ["A", "w"]])])
    result = run_cli("run", book, "-l", "de-DE", "--dry-run")
    assert result.exit_code == 2 and "c.xlsx:4: duplicate id 'A' (first at line 2)" in result.stderr


def localize(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own: a reader that did allocate the grid would abort it, not the suite."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "localize", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("claim", ["cell", "dimension"])
def test_a_workbook_that_claims_the_grid_is_refused_in_a_line(tmp_path: Path, claim: str) -> None:
    spec = SheetSpec("Products", [["id", "name"], ["A1", "Mug"]])
    if claim == "cell":
        spec.extra_cells = ['<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c>']
    else:
        spec.dimension = "A1:XFD1048576"
    book = write_xlsx(tmp_path / "bomb.xlsx", [spec])
    assert book.stat().st_size < 5_000
    result = localize("run", book, "-l", "de-DE", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "claims" in line and "1,048,576 rows × 16,384 columns" in line


def test_an_ods_that_repeats_a_cell_over_the_grid_is_refused(tmp_path: Path) -> None:
    bomb = (
        '<table:table-row table:number-rows-repeated="1048000">'
        '<table:table-cell table:number-columns-repeated="1024" office:value-type="string"><text:p>x</text:p>'
        "</table:table-cell></table:table-row>"
    )
    book = write_ods(tmp_path / "bomb.ods", [("Products", [["id", "name"], ["A1", "Mug"]])], trailer=bomb)
    result = localize("run", book, "-l", "de-DE", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and "claims" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_empty_rows_an_editor_repeats_are_no_claim(run_cli, tmp_path: Path) -> None:
    trailer = (
        '<table:table-row table:number-rows-repeated="1048570">'
        '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
    )
    book = write_ods(tmp_path / "c.ods", [("Products", [["id", "name"], ["A1", "Mug"]])], trailer=trailer)
    assert dry_run(run_cli, book)["products"]["total"] == 1


def test_old_and_damaged_workbooks_are_one_line(run_cli, tmp_path: Path) -> None:
    xls = write(tmp_path / "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    result = run_cli("run", xls, "-l", "de-DE", "--dry-run")
    assert result.exit_code == 2 and "save it as .xlsx" in result.stderr
    damaged = write(tmp_path / "damaged.xlsx", b"PK\x03\x04" + b"xl/workbook.xml" + b"\x00" * 100)
    result = run_cli("run", damaged, "-l", "de-DE", "--dry-run")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("frozen", [6, 0])
def test_a_filled_shopee_template_reads_as_a_catalog(run_cli, tmp_path: Path, frozen: int) -> None:
    """The seller's source-market listings, exported in Shopee's template: one product per parent
    SKU (the variant row folds into it), the header block never a product, with or without a pane."""
    book = shopee_template(tmp_path / "mine.xlsx", frozen=frozen)
    result = run_cli("run", book, "-l", "th-TH", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["products"]["total"] == 1
    assert "Shopee mass-upload template: 1 product filled in" in result.stderr
    shown = run_cli("prompt", book, "--id", "SKU-STARTED", "-l", "th-TH", "--json")
    assert shown.exit_code == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert "Shopee" in body["messages"][0]["content"]  # written for the shop it comes from
    assert "Old description of the lamp" in body["messages"][-1]["content"]

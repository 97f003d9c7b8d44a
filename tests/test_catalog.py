"""Reading catalogs: every format, list fields, pass-through columns, streaming."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from conftest import SAMPLE, write

from localize.errors import CatalogError
from localize.reading.catalog import read_catalog

PRODUCTS = [
    {"id": "A1", "name": "Wool Beanie", "features": ["Merino", "One size"], "colour": "olive"},
    {"id": "B2", "name": "Desk Lamp", "keywords": ["lamp", "led"], "brand": "Solane"},
]


def _as_csv(delimiter: str = ",") -> str:
    header = ["id", "name", "features", "keywords", "brand", "colour"]
    rows = [delimiter.join(header)]
    for product in PRODUCTS:
        cells = ["|".join(value) if isinstance(value := product.get(column, ""), list) else value for column in header]
        rows.append(delimiter.join(cells))
    return "\n".join(rows) + "\n"


def _expected() -> list[dict]:
    return [dict(product) for product in PRODUCTS]


@pytest.mark.parametrize(
    "name,content",
    [
        ("catalog.csv", _as_csv()),
        ("catalog-bom.csv", "\ufeff" + _as_csv()),
        ("excel-semicolon.csv", _as_csv(";")),
        ("catalog.tsv", _as_csv("\t")),
        ("catalog.json", json.dumps(PRODUCTS, indent=2)),
        ("wrapped.json", json.dumps({"meta": {"exported": "2026-11-01"}, "products": PRODUCTS})),
        ("catalog.jsonl", "\n".join(json.dumps(p) for p in PRODUCTS) + "\n"),
        ("lines-named.json", "\n".join(json.dumps(p) for p in PRODUCTS) + "\n"),
        ("no-extension", json.dumps(PRODUCTS)),
        ("export.txt", _as_csv()),
    ],
)
def test_every_format_reads_the_same_products(tmp_path: Path, name: str, content: str) -> None:
    products = list(read_catalog(write(tmp_path / name, content)))
    assert [dict(p.fields) for p in products] == _expected()
    assert [p.id for p in products] == ["A1", "B2"]


def test_csv_list_fields_split_on_pipes_and_drop_blanks(tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", 'id,name,features\nA,Mug," big | blue ||dishwasher safe"\n')
    (product,) = read_catalog(catalog)
    assert product.fields["features"] == ["big", "blue", "dishwasher safe"]


def test_json_list_fields_accept_pipe_strings_and_numbers(tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "c.json", json.dumps([{"id": 7, "name": "Mug", "keywords": "a|b", "features": [250, "ml"]}])
    )
    (product,) = read_catalog(catalog)
    assert product.id == "7"
    assert product.fields["keywords"] == ["a", "b"]
    assert product.fields["features"] == ["250", "ml"]


def test_multiline_quoted_csv_cell_keeps_line_numbers(tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", 'id,name,description\nA,Mug,"line one\nline two"\nB,Cup,x\nA,Dup,y\n')
    with pytest.raises(CatalogError) as caught:
        list(read_catalog(catalog))
    assert caught.value.line == 5  # the duplicate's own line, counting the two-line cell
    assert "first at line 2" in str(caught.value)


def test_unnamed_trailing_columns_are_ignored(tmp_path: Path) -> None:
    (product,) = read_catalog(write(tmp_path / "c.csv", "id,name,\nA,Mug,\n"))
    assert dict(product.fields) == {"id": "A", "name": "Mug"}


def test_control_columns_are_not_sent_as_product_data(tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", "id,name,platform,locales,material\nA,Mug,amazon,de-DE,stoneware\n")
    (product,) = read_catalog(catalog)
    assert product.data() == {"name": "Mug", "material": "stoneware"}
    assert product.platforms == ("amazon",)
    assert product.locales == ("de-DE",)


def test_reading_is_streamed_row_by_row(tmp_path: Path) -> None:
    """Rows before a broken one are produced before the error: the file is not read whole first."""
    lines = ["id,name"] + [f"P{i},Product {i}" for i in range(5000)] + ['BAD,"unclosed']
    rows = read_catalog(write(tmp_path / "c.csv", "\n".join(lines) + "\n"))
    assert next(rows).id == "P0"
    seen = 1
    with pytest.raises(CatalogError) as caught:
        for _ in rows:
            seen += 1
    assert seen == 5000
    assert caught.value.line == 5002


def test_large_json_list_is_streamed_with_exact_error_line(tmp_path: Path) -> None:
    products = [{"id": i, "name": f"P{i}", "description": "x" * 200} for i in range(3000)]
    text = json.dumps({"products": products}, indent=2)
    broken = text.replace('"id": 2999,', '"id": 2999 oops', 1)
    line = broken[: broken.index("2999 oops")].count("\n") + 1
    rows = read_catalog(write(tmp_path / "c.json", broken))
    assert next(rows).id == "0"
    with pytest.raises(CatalogError) as caught:
        list(rows)
    assert caught.value.line == line


def test_number_split_across_read_chunks_is_read_whole(tmp_path: Path) -> None:
    padding = " " * (65536 - len('[{"id": "A", "name": "B", "n": ') - 2)
    text = '[{"id": "A", "name": "B", ' + padding + '"n": 1234567890}]'
    (product,) = read_catalog(write(tmp_path / "c.json", text))
    assert product.fields["n"] == 1234567890


def test_sample_catalog_is_a_realistic_dozen(tmp_path: Path) -> None:
    products = list(read_catalog(SAMPLE))
    assert len(products) >= 12
    categories = {p.fields["category"].split(" > ")[0] for p in products}
    assert {"Electronics", "Apparel", "Home & Kitchen", "Beauty", "Toys & Games"} <= categories
    for product in products:
        assert {"brand", "features", "keywords", "tone"} <= set(product.fields)
        assert len(product.fields["features"]) >= 3


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_shopify_product_export_is_one_product_per_handle() -> None:
    products = list(read_catalog(EXAMPLES / "shopify_products_export.csv"))
    assert [p.id for p in products] == ["merino-wool-beanie", "ceramic-pour-over-set", "trail-running-vest-12l"]
    beanie = products[0].fields
    assert beanie["name"] == "Merino Wool Beanie" and beanie["brand"] == "Trailwool"
    assert beanie["description"].startswith("<p>A soft, warm beanie")  # the HTML body is the source copy
    assert beanie["keywords"] == ["merino", "winter", "hats", "unisex"]
    assert beanie["options"] == ["Color: Olive, Charcoal, Rust", "Size: One size"]
    assert beanie["sku"] == "TW-BEA-OLV"
    assert products[1].line == 5  # where the product's first row is


def test_column_map_renames_the_files_columns(tmp_path: Path) -> None:
    catalog = write(tmp_path / "pim.csv", "Handle,Title,Bullet Points\nmug-1,Stoneware Mug,dishwasher safe|350 ml\n")
    (product,) = read_catalog(catalog, columns={"id": "Handle", "name": "Title", "features": "Bullet Points"})
    assert dict(product.fields) == {"id": "mug-1", "name": "Stoneware Mug", "features": ["dishwasher safe", "350 ml"]}


def test_column_map_applies_to_json_too(tmp_path: Path) -> None:
    catalog = write(tmp_path / "pim.json", json.dumps([{"sku_code": "A1", "label": "Mug", "colour": "blue"}]))
    (product,) = read_catalog(catalog, columns={"id": "sku_code", "name": "label"})
    assert (product.id, product.name, product.fields["colour"]) == ("A1", "Mug", "blue")


def test_excel_unicode_text_utf16_with_a_bom_reads_like_utf8(tmp_path: Path) -> None:
    """Excel's "Unicode Text" save: UTF-16LE with a BOM, tab-separated, CRLF; and UTF-16BE."""
    text = 'id\tname\tdescription\r\nA-1\tMütze\t"Warm, ""weich"", 20 cm"\r\nB-2\t日本の帽子\tDe luxe\r\n'
    little = tmp_path / "unicode.txt"
    little.write_bytes(text.encode("utf-16"))  # Python writes the BOM, in the machine's order (LE here)
    big = tmp_path / "big.csv"
    big.write_bytes(codecs.BOM_UTF16_BE + "id,name\n1,Hat\n".encode("utf-16-be"))
    products = list(read_catalog(little))
    assert [(p.id, p.name, p.fields.get("description")) for p in products] == [
        ("A-1", "Mütze", 'Warm, "weich", 20 cm'),
        ("B-2", "日本の帽子", "De luxe"),
    ]
    assert [(p.id, p.name) for p in read_catalog(big)] == [("1", "Hat")]


def test_utf16_that_does_not_decode_is_one_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(
        codecs.BOM_UTF16_LE + "id,name\n1,".encode("utf-16-le") + b"\x00\xd8" + "x\n".encode("utf-16-le")
    )
    with pytest.raises(CatalogError, match="not valid UTF-16"):
        list(read_catalog(broken))


WOOCOMMERCE = Path(__file__).resolve().parent.parent / "examples" / "woocommerce_products_export.csv"


def test_a_shop_export_read_twice_into_one_file_reads_once_and_says_so(run_cli, tmp_path: Path) -> None:
    text = WOOCOMMERCE.read_text(encoding="utf-8-sig")
    header, _, body = text.partition("\n")
    doubled = write(tmp_path / "doubled.csv", header + "\n" + body * 16)
    result = run_cli("run", doubled, "-l", "de-DE", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("WooCommerce export: 5 rows → 3 products")  # not 80 rows → 48 products
    assert first.endswith("75 repeated rows skipped (the same as an earlier row)")
    assert json.loads(result.stdout)["jobs"]["total"] == 3


def test_a_conflicting_copy_of_a_shop_exports_id_stops_like_a_plain_csv(run_cli, tmp_path: Path) -> None:
    text = WOOCOMMERCE.read_text(encoding="utf-8-sig")
    changed = next(line for line in text.splitlines(keepends=True) if line.startswith("105,"))
    conflicting = write(tmp_path / "conflicting.csv", text + changed.replace("Ceramic Pour-Over Set", "Teapot"))
    result = run_cli("run", conflicting, "-l", "de-DE", "--dry-run")
    assert result.exit_code == 2 and "duplicate id '105'" in result.stderr and "--duplicates first" in result.stderr
    assert "Traceback" not in result.stderr
    kept = {p.id: p for p in read_catalog(conflicting, duplicates="first")}
    assert kept["105"].fields["name"] == "Ceramic Pour-Over Set"  # the first row's


def test_a_conflicting_copy_of_a_magento_sku_stops_too(run_cli, tmp_path: Path) -> None:
    import csv
    import io

    export = Path(__file__).resolve().parent.parent / "examples" / "magento_products_export.csv"
    rows = list(csv.DictReader(io.StringIO(export.read_text(encoding="utf-8-sig"), newline="")))

    def written(name: str, extra: dict[str, str]) -> Path:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, extra])
        return write(tmp_path / name, buffer.getvalue())

    again = run_cli("run", written("again.csv", rows[0]), "-l", "de-DE", "--dry-run")
    assert again.exit_code == 0 and "1 repeated row skipped" in again.stderr.splitlines()[0]  # the same row: once
    changed = {**rows[0], "name": "Another bag"}
    result = run_cli("run", written("conflicting.csv", changed), "-l", "de-DE", "--dry-run")
    assert result.exit_code == 2 and f"duplicate id {rows[0]['sku']!r}" in result.stderr


def test_a_one_line_json_catalog_names_the_line_and_column_of_a_late_error(tmp_path: Path) -> None:
    """A minified catalog is read value by value without looking back over the line for each
    (bench/json_catalogs.py measures it); an error still names its line and column."""
    products = ",".join(json.dumps({"id": f"P{n}", "name": f"Product {n}"}) for n in range(2000))
    path = write(tmp_path / "min.json", "[" + products + ',{"id": "bad", "name": }]')
    with pytest.raises(CatalogError) as raised:
        list(read_catalog(path))
    assert raised.value.line == 1 and raised.value.column == len("[" + products + ',{"id": "bad", "name": ') + 1


def test_a_wide_header_is_read_in_one_pass_and_its_duplicate_named(run_cli, tmp_path: Path) -> None:
    """30,000 columns (an export with every attribute flattened): read at once (it was a count
    per column, 8 s here), and a repeated column still named."""
    columns = ["id", "name", *(f"attr{n}" for n in range(30_000))]
    wide = write(tmp_path / "wide.csv", ",".join(columns) + "\n" + ",".join(["P1", "Mug", *["x"] * 30_000]) + "\n")
    assert [p.id for p in read_catalog(wide)] == ["P1"]
    repeated = write(tmp_path / "repeated.csv", ",".join([*columns, "attr7"]) + "\n")
    result = run_cli("run", repeated, "-l", "de-DE", "--dry-run")
    assert result.exit_code == 2 and "duplicate column 'attr7'" in result.stderr

"""Catalogs as merchants have them: every repeated id named at once, columns in any case, a
mistyped mapping answered with the nearest column, bare languages and markets a platform does
not serve, and no stale extra file left beside the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay


def estimate(run_cli, catalog: Path, *args: str):
    return run_cli("estimate", catalog, "-l", "de-DE", *args)


def test_every_repeated_id_is_named_in_one_error(run_cli, tmp_path: Path) -> None:
    rows = ["id,name"] + [f"P{n % 12},Kettle {n}" for n in range(30)]
    catalog = write(tmp_path / "dup.csv", "\n".join(rows) + "\n")
    result = estimate(run_cli, catalog)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "12 ids are repeated: 'P0' (lines 2, 14, 26); 'P1' (lines 3, 15, 27)" in line
    assert "and 2 more" in line and "--duplicates first" in line


def test_duplicates_first_keeps_each_ids_first_row(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "dup.csv", "id,name\nA,first\nB,b\nA,second\nA,third\n")
    result = estimate(run_cli, catalog, "--duplicates", "first", "--json")
    assert result.exit_code == 0, result.stderr
    assert "note: 2 rows repeat an earlier id and are skipped" in result.stderr
    assert json.loads(result.stdout)["products"]["total"] == 2
    prompt = run_cli("prompt", catalog, "--id", "A", "--locale", "de-DE", "--json")
    assert prompt.exit_code == 0 and '\\"name\\": \\"first\\"' in prompt.stdout  # the first row is A


def test_our_columns_match_in_any_case_and_a_mistyped_mapping_gets_the_nearest(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "shop.csv", "ID,Name,Brand,SKU\n1,Kettle,Aquaclar,AQ-1\n")
    result = estimate(run_cli, catalog, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["products"]["total"] == 1
    mistyped = estimate(run_cli, catalog, "--map", "name=Brnd")
    assert mistyped.exit_code == 2 and "did you mean 'Brand'?" in mistyped.stderr
    mapped = estimate(run_cli, catalog, "--map", "id=sku,name=brand", "--json")  # their columns, in any case
    assert mapped.exit_code == 0, mapped.stderr


def test_a_bare_language_becomes_its_market_with_a_note(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "ja,de-DE", "--json")
    assert result.exit_code == 0, result.stderr
    assert "note: ja → ja-JP (the language's main market" in result.stderr
    assert set(json.loads(result.stdout)["by_locale"]) == {"ja-JP", "de-DE"}


def test_a_market_a_platform_does_not_serve_gets_a_warning(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE,th-TH", "-p", "shopee,amazon")
    assert result.exit_code == 0, result.stderr
    assert "warning: shopee does not sell in DE (de-DE); it serves SG, MY, TH, ID, VN, PH, TW, BR" in result.stderr
    assert "TH (th-TH)" not in result.stderr and "amazon does not" not in result.stderr


def test_an_extra_format_not_asked_for_again_is_removed(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-test")
    catalog = write(tmp_path / "one.csv", "id,name\nK1,Kettle\n")
    with FakeRelay() as relay:
        args = ("run", catalog, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out")
        assert run_cli(*args, "--format", "jsonl,csv,json").exit_code == 0
        assert Path("out/results.csv").exists() and Path("out/results.json").exists()
        assert run_cli(*args).exit_code == 0
    assert not Path("out/results.csv").exists() and not Path("out/results.json").exists()


WOOCOMMERCE = Path(__file__).resolve().parent.parent / "examples" / "woocommerce_products_export.csv"


def test_a_woocommerce_export_reads_without_a_mapping_variations_folded() -> None:
    from localize.reading.catalog import read_catalog, recognised

    products = {product.id: product for product in read_catalog(WOOCOMMERCE)}
    assert list(products) == ["101", "102", "105"]
    hoodie = products["102"].data()
    assert hoodie["options"] == ["Color: Olive, Charcoal", "Size: S, M, L, XL"]  # XL only from a variation
    assert hoodie["short_description"] == "A relaxed hoodie in organic cotton." and hoodie["keywords"][0] == "hoodie"
    for noise in ("59.00", "https://shop.example", "taxable", "visible", "42"):
        assert noise not in json.dumps(products["101"].data() | hoodie), noise  # prices, links, flags, stock
    assert products["101"].data()["weight"] == "0.1 kg"  # a spec, with its unit
    assert recognised(WOOCOMMERCE) == "WooCommerce export: 5 rows → 3 products, 2 variations folded"


def test_a_woocommerce_header_in_odd_casing_reads_the_same(tmp_path: Path) -> None:
    from localize.reading.catalog import read_catalog

    lines = WOOCOMMERCE.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    odd = write(tmp_path / "woo.csv", lines[0].lower() + "".join(lines[1:]))
    assert [p.id for p in read_catalog(odd)] == ["101", "102", "105"]


def test_columns_that_are_not_copy_stay_out_and_fields_decides_otherwise(run_cli, tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "shop.csv",
        "id,name,material,price,stock_qty,image_url,on_sale,care\n"
        "1,Kettle,steel,19.99,12,https://cdn.example/k.jpg,yes,Hand wash only\n",
    )

    def sent(*args: str) -> dict:
        result = run_cli("prompt", catalog, "--id", "1", "--locale", "de-DE", "--json", *args)
        assert result.exit_code == 0, result.stderr
        user = json.loads(result.stdout)["messages"][1]["content"]
        return json.loads(user.split("<product_data>\n", 1)[1].split("\n</product_data>", 1)[0])

    assert sent() == {"name": "Kettle", "material": "steel", "care": "Hand wash only"}
    write(tmp_path / "localize.yaml", "fields: [-care, +price]\n")
    assert sent() == {"name": "Kettle", "material": "steel", "price": "19.99"}
    write(tmp_path / "localize.yaml", "fields: name,material\n")
    assert sent() == {"name": "Kettle", "material": "steel"}


def test_the_dry_run_shows_what_each_column_costs(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE", "--json")
    columns = json.loads(result.stdout)["by_column"]
    assert list(columns)[0] == "features" and columns["name"] > 0
    lean = json.loads(run_cli("estimate", sample, "-l", "de-DE", "--fields", "-features", "--json").stdout)
    assert "features" not in lean["by_column"]
    assert lean["tokens"]["input"] < json.loads(result.stdout)["tokens"]["input"] - columns["features"] * 0.9
    text = run_cli("estimate", sample, "-l", "de-DE")
    assert "Input tokens by column: features" in text.stderr


def test_a_json_catalog_with_a_large_value_on_its_first_line_reads(run_cli, tmp_path: Path) -> None:
    """A base64 image of 200 KB in the first product: never read as a CSV header (whose field
    limit is 128 KB), and left out of the prompt as a non-copy column."""
    image = "data:image/png;base64," + "A" * 200_000
    catalog = write(tmp_path / "catalog.json", json.dumps([{"id": "A", "name": "Hat", "image": image}]))
    result = estimate(run_cli, catalog, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["products"]["total"] == 1
    check = run_cli("run", catalog, "-l", "de-DE", "--check")
    assert check.exit_code == 1 and "Traceback" not in check.stderr


def test_a_large_json_value_is_read_whole_and_one_past_the_limit_is_one_line(run_cli, tmp_path: Path) -> None:
    from localize.reading.catalog import read_catalog
    from localize.reading.textfile import MAX_LINE_BYTES

    long_copy = "Warm. " * 700_000  # 4 MB in one value, across some 60 reads of the file
    catalog = write(
        tmp_path / "big.json", json.dumps({"products": [{"id": "A", "name": "Hat", "description": long_copy}]})
    )
    (product,) = list(read_catalog(catalog))
    assert product.fields["description"] == long_copy.strip()
    huge = write(
        tmp_path / "huge.json", json.dumps([{"id": "A", "name": "Hat", "description": "x" * (MAX_LINE_BYTES + 10)}])
    )
    result = estimate(run_cli, huge)
    assert result.exit_code == 2 and "a value longer than 16 MB" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("newline", ["\r", "mixed"])
def test_a_csv_with_old_mac_or_mixed_line_endings_reads(tmp_path: Path, newline: str) -> None:
    from localize.reading.catalog import read_catalog

    rows = ["id,name,description", "A,Hat,Warm hat", 'B,Cap,"Two lines:\rone, two"', "C,Scarf,Long scarf"]
    if newline == "mixed":
        text = rows[0] + "\r\n" + rows[1] + "\r" + rows[2] + "\n" + rows[3] + "\r"
    else:
        text = "\r".join(rows) + "\r"
    catalog = tmp_path / "mac.csv"
    catalog.write_bytes(text.encode())
    products = list(read_catalog(catalog))
    assert [p.id for p in products] == ["A", "B", "C"] and [p.line for p in products] == [2, 3, 5]
    assert products[1].fields["description"] == "Two lines:\rone, two"


AMAZON_IN = (
    "product_id,product_name,category,discounted_price,actual_price,discount_percentage,rating,rating_count,"
    "about_product,user_id,user_name,review_id,review_title,review_content,img_link,product_link\n"
    'B07JW9H4J1,Wayona Nylon Braided USB Cable,Computers&Accessories|Cables,399,1099,64%,4.2,"24,269",'
    '"Compatible with iPhone 12, fast charging","AG3D6O4STAQ,AHMY5CWJMMK","Manav,Adarsh gupta",'
    '"R3HXWT0LRP0NMF,R2AJM3LFTLZHFO","Satisfied,Charging is really fast","Looks durable,I ordered this cable",'
    "https://m.media-amazon.com/images/I/51UsScvHQNL.jpg,https://www.amazon.in/dp/B07JW9H4J1\n"
)


def test_customers_data_and_promotions_stay_out_of_the_prompt_and_the_dry_run_names_them(
    run_cli, tmp_path: Path
) -> None:
    """The Amazon India dataset shape: reviewer names and ids, review titles and bodies,
    ratings and discounts are never sent by default; --fields +NAME lets one in."""
    catalog = write(tmp_path / "amazon_in.csv", AMAZON_IN)
    mapped = ("--map", "id=product_id,name=product_name")
    prompt = run_cli("prompt", catalog, "--id", "B07JW9H4J1", "--locale", "de-DE", *mapped, "--json")
    assert prompt.exit_code == 0, prompt.stderr
    for private in ("Adarsh gupta", "Charging is really fast", "Looks durable", "64%", "24,269", "AHMY5CWJMMK"):
        assert private not in prompt.stdout
    assert "Compatible with iPhone 12" in prompt.stdout
    report = json.loads(estimate(run_cli, catalog, *mapped, "--json").stdout)
    assert report["left_out"]["customers' data and promotions"] == [
        "discount_percentage", "discounted_price", "rating", "rating_count", "review_content", "review_id",
        "review_title", "user_id", "user_name",
    ]  # fmt: skip
    text = estimate(run_cli, catalog, *mapped).stderr
    assert "Left out of the prompt (not copy: actual_price, img_link, product_link; customers' data" in text
    allowed = run_cli(
        "prompt", catalog, "--id", "B07JW9H4J1", "--locale", "de-DE", *mapped, "--fields", "+review_title"
    )
    assert allowed.exit_code == 0, allowed.stderr
    assert "Charging is really fast" in allowed.stdout

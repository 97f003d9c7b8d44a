"""Each shop's own import file, written from the results and read back as the shop reads it."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay

from localize.output.store import iter_jsonl


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-imports-test")
    monkeypatch.setenv("AMAZON_SELLER_ID", "A2SELLER0TEST")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "--base-url", relay.base_url, "--out", "out", *args)


def read_listings_feed(path: Path) -> dict:
    """A JSON_LISTINGS_FEED as the Feeds API takes it (PLATFORMS.md, from the Listings Feed
    schema 2.0): the envelope, then each message's operation with what it must and must not have."""
    feed = json.loads(path.read_text(encoding="utf-8"))
    assert set(feed) == {"header", "messages"}
    header = feed["header"]
    assert header["version"] == "2.0" and header["sellerId"] and set(header) <= {"sellerId", "version", "issueLocale"}
    messages = feed["messages"]
    assert 1 <= len(messages) <= 10_000
    assert [m["messageId"] for m in messages] == list(range(1, len(messages) + 1))
    assert len({m["sku"] for m in messages}) == len(messages)
    for message in messages:
        assert message["sku"] and message["productType"] and message["productType"] != "PRODUCT"
        if message["operationType"] == "PATCH":
            assert "patches" in message and "attributes" not in message and "requirements" not in message
            for patch in message["patches"]:
                assert patch["op"] in ("add", "replace", "merge", "delete") and patch["path"].startswith("/attributes/")
                assert all({"value", "language_tag", "marketplace_id"} <= set(value) for value in patch["value"])
        else:
            assert message["operationType"] == "UPDATE" and "attributes" in message and "patches" not in message
    return feed


# Amazon's product type for each of the sample's categories (the last part of its path).
TYPES = {
    "Headphones": "HEADPHONES",
    "Power Banks": "POWER_BANK",
    "Smart Plugs": "SMART_PLUG",
    "Hoodies": "SWEATSHIRT",
    "Running": "SHOES",
    "Scarves": "SCARF",
    "Hair Dryers": "HAIR_DRYER",
    "Serums": "SKIN_SERUM",
    "Dutch Ovens": "DUTCH_OVEN",
    "Water Filters": "WATER_FILTRATION_UNIT",
    "Desk Lamps": "LAMP",
    "Building Toys": "BUILDING_TOY",
}


def typed(sample: Path) -> Path:
    """The sample with a product_type column, but for the puzzles, typed by localize.yaml instead."""
    rows = list(csv.DictReader(sample.read_text(encoding="utf-8").splitlines()))
    out = io.StringIO()
    writer = csv.DictWriter(out, [*rows[0], "product_type"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "product_type": TYPES.get(row["category"].rsplit(" > ", 1)[-1], "")})
    return write(sample.with_name("typed.csv"), out.getvalue())


TYPED_CONFIG = "rpm: 60000\nbackoff_s: 0.001\namazon_product_types: {'Toys & Games > Puzzles': PUZZLES}\n"


def test_the_amazon_feeds_patch_each_seller_sku_on_its_product_type_one_feed_per_region(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    write(Path("localize.yaml"), TYPED_CONFIG + "amazon_seller_ids: {FE: A3FARSELLER}\n")
    result = run(run_cli, relay, typed(sample), "-l", "de-DE,en-GB,ja-JP", "--format", "amazon")
    assert result.exit_code == 0, result.stderr
    assert sorted(path.name for path in Path("out/amazon").iterdir()) == ["EU.json", "FE.json"]
    eu, fe = read_listings_feed(Path("out/amazon/EU.json")), read_listings_feed(Path("out/amazon/FE.json"))
    assert eu["header"]["sellerId"] == "A2SELLER0TEST" and fe["header"]["sellerId"] == "A3FARSELLER"
    assert f"Import file (amazon): {Path('out/amazon/EU.json')}: 13 rows." in result.stderr
    results = list(iter_jsonl(Path("out/results.jsonl")))
    message = next(m for m in eu["messages"] if m["sku"] == "NB-ANC45-BLK")
    assert message["operationType"] == "PATCH" and message["productType"] == "HEADPHONES"
    assert {m["productType"] for m in eu["messages"]} >= {"PUZZLES", "LAMP"}  # from localize.yaml, from the column
    patches = {patch["path"]: patch for patch in message["patches"]}
    assert set(patches) == {
        "/attributes/item_name",
        "/attributes/bullet_point",
        "/attributes/product_description",
        "/attributes/generic_keyword",
    }
    assert all(patch["op"] == "replace" for patch in patches.values())
    names = patches["/attributes/item_name"]["value"]
    german = next(r for r in results if r["sku"] == "NB-ANC45-BLK" and r["locale"] == "de-DE")
    assert {"value": german["title"], "language_tag": "de_DE", "marketplace_id": "A1PA6795UKMFR9"} in names
    assert {(v["language_tag"], v["marketplace_id"]) for v in names} == {
        ("de_DE", "A1PA6795UKMFR9"),
        ("en_GB", "A1F83G8C2ARO7P"),  # the UK store takes en_GB
    }
    japanese = next(m for m in fe["messages"] if m["sku"] == "NB-ANC45-BLK")["patches"][0]["value"]
    assert {v["marketplace_id"] for v in japanese} == {"A1VC38T7YXB528"}  # only the JP store in the FE feed
    bullets = [v["value"] for v in patches["/attributes/bullet_point"]["value"] if v["language_tag"] == "de_DE"]
    assert bullets == german["bullets"]
    keywords = [v["value"] for v in patches["/attributes/generic_keyword"]["value"] if v["language_tag"] == "de_DE"]
    assert keywords == [" ".join(german["seo_tags"])]


def test_amazon_update_messages_carry_the_listing_requirement(run_cli, sample: Path, relay: FakeRelay) -> None:
    write(Path("localize.yaml"), TYPED_CONFIG + "amazon_operation: update\n")
    result = run(run_cli, relay, typed(sample), "-l", "fr-FR", "--format", "amazon")
    assert result.exit_code == 0, result.stderr
    feed = read_listings_feed(Path("out/amazon/EU.json"))
    assert all(m["operationType"] == "UPDATE" and m["requirements"] == "LISTING" for m in feed["messages"])


def test_the_amazon_feed_needs_types_skus_seller_ids_and_known_stores_before_sending(
    run_cli, sample: Path, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    untyped = run(run_cli, relay, sample, "-l", "de-DE", "--format", "amazon")
    assert untyped.exit_code == 2 and "Amazon product type: 13 products" in untyped.stderr
    write(Path("localize.yaml"), TYPED_CONFIG)
    asins = write(tmp_path / "asins.csv", "id,name,product_type\nB0CX23V5KK,Travel mug,DRINKING_CUP\n")
    by_asin = run(run_cli, relay, asins, "-l", "de-DE", "--format", "amazon")
    assert by_asin.exit_code == 2 and "B0CX23V5KK" in by_asin.stderr and "seller SKU" in by_asin.stderr
    monkeypatch.delenv("AMAZON_SELLER_ID")
    result = run(run_cli, relay, typed(sample), "-l", "de-DE,ja-JP", "--format", "amazon")
    assert result.exit_code == 2 and "amazon_seller_ids: {EU: A...}" in result.stderr
    monkeypatch.setenv("AMAZON_SELLER_ID", "A2SELLER0TEST")
    unknown = run(run_cli, relay, typed(sample), "-l", "th-TH", "--format", "amazon")
    assert unknown.exit_code == 2 and "no Amazon store known for th-TH" in unknown.stderr
    assert relay.paths == []  # nothing was sent for any of them
    write(Path("localize.yaml"), TYPED_CONFIG + "amazon_marketplaces: {th-TH: A0THTEST}\n")
    mapped = run(run_cli, relay, typed(sample), "-l", "th-TH", "--format", "amazon")
    assert mapped.exit_code == 0, mapped.stderr
    assert "A0THTEST" in Path("out/amazon/NA.json").read_text(encoding="utf-8")


WOO_EXPORT = Path(__file__).resolve().parent.parent / "examples" / "woocommerce_products_export.csv"


def read_woocommerce_import(text: str) -> list[dict[str, str]]:
    """A CSV as WooCommerce's product importer reads it (woocommerce.com, "Product CSV Import
    Schema"): a header row of column names, one product per row, UTF-8, RFC 4180 quoting."""
    return list(csv.DictReader(io.StringIO(text, newline="")))


def woocommerce_update(products: list[dict[str, str]], rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The products after WooCommerce's importer ran a file with "Update existing products"
    ticked: a row finds its product by ID, else by SKU, and every mapped cell is written to it,
    an empty one too (WC_Product_CSV_Importer: `set_props`, then `set_sku('')` for an empty
    SKU cell); `Meta: key` cells become the product's meta data."""
    updated = [dict(product) for product in products]
    for row in rows:
        found = next((p for p in updated if row.get("ID") and p["ID"] == row["ID"]), None)
        found = found or next((p for p in updated if row.get("SKU") and p["SKU"] == row["SKU"]), None)
        assert found is not None, f"the importer finds no product for {row}"
        for column, value in row.items():
            if column != "ID":
                found[column] = value
    return updated


def test_updating_the_sources_changes_nothing_but_their_translation_group(run_cli, relay: FakeRelay) -> None:
    """Following the README's step 1 on WooCommerce's own export: every source product keeps its
    SKU and every other field; only WPML's three meta columns are added."""
    export = Path(__file__).resolve().parent.parent / "examples" / "woocommerce_products_export.csv"
    products = read_woocommerce_import(export.read_text(encoding="utf-8-sig"))
    result = run(run_cli, relay, export, "-l", "de-DE", "-p", "shopify", "--format", "woocommerce")
    assert result.exit_code == 0, result.stderr
    sources = read_woocommerce_import(Path("out/woocommerce/sources.csv").read_text(encoding="utf-8"))
    after = woocommerce_update(products, sources)
    for before, now in zip(products, after, strict=True):
        assert {k: v for k, v in now.items() if not k.startswith("Meta: _wpml")} == before
    assert [p["SKU"] for p in after] == [p["SKU"] for p in products] and all(p["SKU"] for p in after)


def test_woocommerce_translations_are_new_products_linked_by_wpml(run_cli, relay: FakeRelay) -> None:
    """WooCommerce matches rows to products by ID or SKU and refuses a SKU in use, so a translated
    row carries neither; WPML Export and Import links it to its source through a translation
    group that the source product gets from sources.csv (ID and the WPML columns, nothing else)."""
    export = Path(__file__).resolve().parent.parent / "examples" / "woocommerce_products_export.csv"
    source_rows = read_woocommerce_import(export.read_text(encoding="utf-8-sig"))
    source_ids = {row["ID"] for row in source_rows}
    source_skus = {row["SKU"] for row in source_rows if row["SKU"]}
    result = run(run_cli, relay, export, "-l", "de-DE,pt-BR", "-p", "shopify", "--format", "woocommerce")
    assert result.exit_code == 0, result.stderr
    results = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    sources = read_woocommerce_import(Path("out/woocommerce/sources.csv").read_text(encoding="utf-8"))
    translations = read_woocommerce_import(Path("out/woocommerce/translations.csv").read_text(encoding="utf-8"))
    group = "Meta: _wpml_import_translation_group"
    assert list(sources[0]) == [
        "ID",
        "Meta: _wpml_import_language_code",
        "Meta: _wpml_import_source_language_code",
        group,
    ]
    assert sorted(row["ID"] for row in sources) == ["101", "102", "105"]  # the export's products, by ID
    assert all(row["Meta: _wpml_import_language_code"] == "" for row in sources)  # empty on a source row
    assert all(row["Meta: _wpml_import_source_language_code"] == "en" for row in sources)
    assert len(translations) == 6
    for row in translations:  # nothing a source product has, so the importer creates each one
        assert row["ID"] == "" and row["SKU"] == "" and row["ID"] not in source_ids and row["SKU"] not in source_skus
        assert row["Meta: _wpml_import_source_language_code"] == "en"
    groups = {row[group]: row["ID"] for row in sources}
    assert len(groups) == 3  # one group per source product...
    for row in translations:  # ...shared by all its languages
        assert row[group] in groups
    hoodie = [row for row in translations if groups[row[group]] == "102"]
    assert {row["Meta: _wpml_import_language_code"] for row in hoodie} == {"de", "pt-br"}
    assert all(row["Type"] == "variable" for row in hoodie)  # the source's type
    german = next(row for row in hoodie if row["Meta: _wpml_import_language_code"] == "de")
    listing = results[("102", "de-DE")]
    assert german["Name"] == listing["title"] and german["Description"] == listing["description"]
    assert german["Short description"].startswith("<ul><li>") and german["Tags"] == ", ".join(listing["seo_tags"])
    again = run(run_cli, relay, export, "-l", "de-DE", "-p", "shopify")  # not asked for: removed
    assert again.exit_code == 0 and not Path("out/woocommerce").exists()


def test_woocommerce_from_our_own_catalog_names_sources_by_sku(run_cli, sample: Path, relay: FakeRelay) -> None:
    result = run(run_cli, relay, sample, "-l", "fr-FR", "--format", "woocommerce")
    assert result.exit_code == 0, result.stderr
    sources = read_woocommerce_import(Path("out/woocommerce/sources.csv").read_text(encoding="utf-8"))
    assert all("ID" not in row and row["SKU"] for row in sources) and len(sources) == 13
    catalog = [{"ID": "", "SKU": row["sku"]} for row in csv.DictReader(sample.open(encoding="utf-8-sig"))]
    after = woocommerce_update(catalog, sources)  # found by SKU, which is written back as it is
    assert [p["SKU"] for p in after] == [p["SKU"] for p in catalog]


def test_woocommerce_needs_an_id_or_sku_before_sending(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    catalog = write(tmp_path / "plain.csv", "id,name,description\np1,Mug,A mug.\n")
    result = run(run_cli, relay, catalog, "-l", "fr-FR", "--format", "woocommerce")
    assert result.exit_code == 2 and "WooCommerce ID or SKU" in result.stderr and relay.chat_requests == []


MAGENTO = Path(__file__).resolve().parent.parent / "examples" / "magento_products_export.csv"


def test_a_magento_export_reads_its_default_scope_with_children_folded() -> None:
    from localize.reading.catalog import read_catalog, recognised

    products = {product.id: product.data() for product in read_catalog(MAGENTO)}
    assert list(products) == ["24-MB01", "MH01"]  # the simple children and the store-view row are not products
    assert products["MH01"]["options"] == ["color: Black, Gray", "size: XS, M"]
    assert products["24-MB01"]["activity"] == "Gym, Travel"  # a multi-select's values stay together
    assert products["24-MB01"]["category"] == ["Default Category/Gear", "Default Category/Gear/Bags"]
    assert "34.00" not in json.dumps(products) and "Taxable Goods" not in json.dumps(products)
    assert recognised(MAGENTO).startswith("Magento export: 5 rows → 2 products")


def test_magento_gets_an_import_row_per_sku_and_store_view(run_cli, relay: FakeRelay) -> None:
    refused = run(run_cli, relay, MAGENTO, "-l", "de-DE,fr-FR", "-p", "shopify", "--format", "magento")
    assert refused.exit_code == 2 and "magento_store_views" in refused.stderr and relay.paths == []
    write(Path("localize.yaml"), "rpm: 60000\nbackoff_s: 0.001\nmagento_store_views: {de-DE: de, fr-FR: fr}\n")
    result = run(run_cli, relay, MAGENTO, "-l", "de-DE,fr-FR", "-p", "shopify", "--format", "magento")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(Path("out/magento_products.csv").read_text(encoding="utf-8"), newline="")))
    assert list(rows[0]) == [
        "sku",
        "store_view_code",
        "name",
        "description",
        "short_description",
        "meta_title",
        "meta_keywords",
        "meta_description",
    ]
    assert sorted((row["sku"], row["store_view_code"]) for row in rows) == [
        ("24-MB01", "de"),
        ("24-MB01", "fr"),
        ("MH01", "de"),
        ("MH01", "fr"),
    ]
    results = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    hoodie = next(row for row in rows if row["sku"] == "MH01" and row["store_view_code"] == "fr")
    listing = results[("MH01", "fr-FR")]
    assert hoodie["name"] == listing["title"] and hoodie["meta_title"] == listing["extra"]["seo_title"]
    assert hoodie["meta_keywords"] == ", ".join(listing["seo_tags"])


def test_magento_takes_store_views_from_the_command_line_and_keeps_what_a_store_view_has(
    run_cli, relay: FakeRelay
) -> None:
    result = run(
        run_cli, relay, MAGENTO, "-l", "de-DE", "-p", "shopify", "--format", "magento", "--store-view", "de-DE=de"
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(Path("out/magento_products.csv").read_text(encoding="utf-8"), newline="")))
    bag = next(row for row in rows if row["sku"] == "24-MB01")
    assert bag["name"] == "Joust Sporttasche" and bag["description"] == "<p>Die sportliche Joust Sporttasche.</p>"
    results = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    assert bag["meta_title"] == results[("24-MB01", "de-DE")]["extra"]["seo_title"]  # empty there: ours
    assert "magento_products.csv: 2 rows, 2 kept as the shop has them." in result.stderr
    replaced = run(
        run_cli,
        relay,
        MAGENTO,
        "-l",
        "de-DE",
        "-p",
        "shopify",
        "--format",
        "magento",
        "--store-view",
        "de-DE=de",
        "--overwrite-existing",
    )
    assert replaced.exit_code == 0, replaced.stderr
    rows = list(csv.DictReader(io.StringIO(Path("out/magento_products.csv").read_text(encoding="utf-8"), newline="")))
    bag = next(row for row in rows if row["sku"] == "24-MB01")
    assert bag["name"] == results[("24-MB01", "de-DE")]["title"]
    bad = run(run_cli, relay, MAGENTO, "-l", "de-DE", "-p", "shopify", "--format", "magento", "--store-view", "de")
    assert bad.exit_code == 2 and "--store-view" in bad.stderr and "de-DE=de" in bad.stderr


AKENEO = Path(__file__).resolve().parent.parent / "examples" / "akeneo_products_export.csv"


def test_an_akeneo_export_reads_its_copy_locale_and_channel() -> None:
    from localize.reading.catalog import read_catalog, recognised

    products = {product.id: product.data() for product in read_catalog(AKENEO)}
    wallet = products["1111111172"]
    assert wallet["name"] == "Chrome wallet"  # en_US, not the French column
    assert wallet["description"].startswith("<p>A slim wallet")  # the ecommerce channel's, not mobile's
    assert wallet["weight"] == "80 g" and wallet["material"] == "leather"
    assert "39.00" not in json.dumps(wallet) and "files/" not in json.dumps(wallet)
    assert recognised(AKENEO) == "Akeneo export: 2 products, copy in en_US (its text fills 2 of 2 rows; fr_FR 1)"


def test_akeneo_never_empties_a_value_the_pim_holds(run_cli, tmp_path: Path) -> None:
    """Akeneo's import clears a value whose cell is empty: where a locale's listing failed, the
    product's cell carries what the export holds, --overwrite-existing or not."""
    with FakeRelay(poison="Chrome wallet", poison_locale="fr-FR") as relay:
        result = run(
            run_cli, relay, AKENEO, "-l", "de-DE,fr-FR", "-p", "shopify", "--format", "akeneo", "--overwrite-existing"
        )
    assert result.exit_code == 1, result.stderr  # the wallet's French listing failed
    text = Path("out/akeneo_products.csv").read_text(encoding="utf-8")
    rows = {row["sku"]: row for row in csv.DictReader(io.StringIO(text, newline=""), delimiter=";")}
    assert rows["1111111172"]["name-fr_FR"] == "Portefeuille chromé"
    assert rows["1111111171"]["name-fr_FR"]  # the other product's French listing came back


def test_akeneo_gets_localized_columns_for_its_localizable_attributes(run_cli, relay: FakeRelay) -> None:
    result = run(run_cli, relay, AKENEO, "-l", "de-DE,fr-FR", "-p", "shopify", "--format", "akeneo")
    assert result.exit_code == 0, result.stderr
    text = Path("out/akeneo_products.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert list(rows[0]) == [
        "sku",
        "name-de_DE",
        "name-fr_FR",
        "description-de_DE-ecommerce",
        "description-fr_FR-ecommerce",
        "description-de_DE-mobile",
        "description-fr_FR-mobile",
        "short_description-de_DE-ecommerce",
        "short_description-fr_FR-ecommerce",
    ]  # material is localizable but no listing field: left to the PIM
    results = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    wallet = next(row for row in rows if row["sku"] == "1111111172")
    assert wallet["name-fr_FR"] == "Portefeuille chromé"  # the PIM's own French name, kept
    assert wallet["name-de_DE"] == results[("1111111172", "de-DE")]["title"]
    assert wallet["description-de_DE-ecommerce"] == results[("1111111172", "de-DE")]["description"]
    assert "akeneo_products.csv: 2 rows, 1 kept as the shop has them. --overwrite-existing replaces" in result.stderr
    replaced = run(
        run_cli, relay, AKENEO, "-l", "de-DE,fr-FR", "-p", "shopify", "--format", "akeneo", "--overwrite-existing"
    )
    assert replaced.exit_code == 0, replaced.stderr
    rows = list(
        csv.DictReader(
            io.StringIO(Path("out/akeneo_products.csv").read_text(encoding="utf-8"), newline=""), delimiter=";"
        )
    )
    wallet = next(row for row in rows if row["sku"] == "1111111172")
    assert wallet["name-fr_FR"] == results[("1111111172", "fr-FR")]["title"]
    not_akeneo = run(
        run_cli,
        relay,
        Path(__file__).resolve().parent.parent / "sample_catalog.csv",
        "-l",
        "de-DE",
        "--format",
        "akeneo",
    )
    assert not_akeneo.exit_code == 2 and "not an Akeneo product export" in not_akeneo.stderr


def test_akeneo_reads_the_locale_its_rows_fill_and_never_sends_associations(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    """de_DE comes first in the header but is empty in most rows; en_US fills every row: the copy
    is read from en_US, the German value a person wrote is kept, and associations stay out."""
    header = (
        "sku;family;categories;groups;SUBSTITUTION-products;name-de_DE;name-en_US;description-de_DE;description-en_US"
    )
    rows = [
        "MUG-1;mugs;kitchen;;MUG-2,MUG-3;Oro Becher;Oro Mug;Ein Becher.;A stoneware mug, 350 ml.",
        "MUG-2;mugs;kitchen;;MUG-1;;Terra Mug;;A terracotta mug, 300 ml.",
        "MUG-3;mugs;kitchen;;;;Vetro Mug;;A glass mug, 250 ml.",
    ]
    export = write(tmp_path / "akeneo.csv", "\n".join([header, *rows]) + "\n")
    result = run(run_cli, relay, export, "-l", "de-DE", "-p", "shopify", "--format", "akeneo")
    assert result.exit_code == 0, result.stderr
    assert "copy in en_US (its text fills 3 of 3 rows; de_DE 1)" in result.stderr
    sent = json.dumps([request["messages"] for request in relay.chat_requests])
    assert "Terra Mug" in sent and "Oro Becher" not in sent  # the source is English
    assert "SUBSTITUTION" not in sent and "kitchen" not in sent
    written = list(
        csv.DictReader(
            io.StringIO(Path("out/akeneo_products.csv").read_text(encoding="utf-8"), newline=""), delimiter=";"
        )
    )
    by_sku = {row["sku"]: row for row in written}
    assert list(written[0]) == ["sku", "name-de_DE", "description-de_DE"]  # never the source's own columns
    assert by_sku["MUG-1"]["name-de_DE"] == "Oro Becher"  # a person's German kept
    results = {r["id"]: r for r in iter_jsonl(Path("out/results.jsonl"))}
    assert by_sku["MUG-2"]["name-de_DE"] == results["MUG-2"]["title"]
    chosen = run(run_cli, relay, export, "-l", "fr-FR", "-p", "shopify", "--source-locale", "de-DE", "--dry-run")
    assert "copy in de_DE (--source-locale)" in chosen.stderr  # chosen, and then: German has rows without a name
    assert chosen.exit_code == 2 and "empty name" in chosen.stderr
    unknown = run(run_cli, relay, export, "-l", "fr-FR", "-p", "shopify", "--source-locale", "ja-JP", "--dry-run")
    assert unknown.exit_code == 2 and "ja_JP is not among the export's locales" in unknown.stderr


@pytest.mark.parametrize(
    ("export", "shop", "extra"),
    [
        ("woocommerce_products_export.csv", "woocommerce", ()),
        ("magento_products_export.csv", "magento", ("--store-view", "de-DE=de")),
        ("akeneo_products_export.csv", "akeneo", ()),
        ("shopify_products_export.csv", "shopify", ()),
    ],
)
def test_a_shops_export_is_written_for_that_shop_unless_told(
    run_cli, relay: FakeRelay, export: str, shop: str, extra: tuple[str, ...]
) -> None:
    catalog = Path(__file__).resolve().parent.parent / "examples" / export
    fmt = ("--format", shop) if shop != "shopify" else ()
    result = run(run_cli, relay, catalog, "-l", "de-DE", *fmt, *extra)
    assert result.exit_code == 0, result.stderr
    assert {r["platform"] for r in iter_jsonl(Path("out/results.jsonl"))} == {shop}
    listing = next(body for body in relay.chat_requests if "<strings>" not in body["messages"][-1]["content"])
    system = listing["messages"][0]["content"]
    assert (
        "Shopify" if shop == "shopify" else f"runs on {shop.capitalize() if shop != 'woocommerce' else 'WooCommerce'}"
    ) in system
    if fmt:
        assert f"Import file ({shop}):" in result.stderr
    named = run(run_cli, relay, catalog, "-l", "de-DE", "-p", "amazon", "--dry-run")
    assert named.exit_code == 0 and "amazon" in named.stderr.lower()


def test_woocommerce_translations_carry_notes_button_text_and_local_attributes(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    """Beside the listing, a translation carries the product's purchase note, an external
    product's button text and its own attributes, each translated as a store string; a global
    attribute (WPML translates its terms once) stays out."""
    rows = read_woocommerce_import(WOO_EXPORT.read_text(encoding="utf-8-sig"))
    rows[0]["Purchase note"] = "Hand wash cold and dry flat."
    rows[-1]["Type"], rows[-1]["Button text"] = "external", "Buy at <b>the roastery</b> & more"
    rows[-1]["External URL"] = "https://roastery.example/pour-over"
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    export = write(tmp_path / "woo.csv", out.getvalue())
    result = run(run_cli, relay, export, "-l", "de-DE", "--format", "woocommerce")
    assert result.exit_code == 0, result.stderr
    strings = {r["id"]: r["text"] for r in iter_jsonl(Path("out/strings.jsonl"))}
    asked = [body for body in relay.chat_requests if "<strings>" in body["messages"][-1]["content"]]
    assert asked and all("texts of a WooCommerce store" in body["messages"][0]["content"] for body in asked)
    assert set(strings) == {
        "WOOCOMMERCE/101/purchase_note",
        "WOOCOMMERCE/101/attribute_1_name",
        "WOOCOMMERCE/101/attribute_1_value_1",
        "WOOCOMMERCE/105/button_text",
    }  # the hoodie's Color and Size are global attributes
    translations = read_woocommerce_import(Path("out/woocommerce/translations.csv").read_text(encoding="utf-8"))
    group = "Meta: _wpml_import_translation_group"
    beanie = next(row for row in translations if row[group] == "localize-101")
    assert beanie["Purchase note"] == strings["WOOCOMMERCE/101/purchase_note"]
    assert beanie["Attribute 1 name"] == strings["WOOCOMMERCE/101/attribute_1_name"]
    assert beanie["Attribute 1 value(s)"] == strings["WOOCOMMERCE/101/attribute_1_value_1"]
    assert beanie["Attribute 1 global"] == "0" and beanie["Attribute 1 visible"] == "1"
    pour_over = next(row for row in translations if row[group] == "localize-105")
    assert pour_over["Type"] == "external" and "<b>" in strings["WOOCOMMERCE/105/button_text"]
    assert pour_over["Button text"] == html.unescape(re.sub(r"<[^>]+>", "", strings["WOOCOMMERCE/105/button_text"]))
    assert "<" not in pour_over["Button text"] and "&amp;" not in pour_over["Button text"]  # a label: its text
    hoodie = next(row for row in translations if row[group] == "localize-102")
    assert hoodie["Attribute 1 name"] == "" and hoodie["Purchase note"] == ""


def test_an_import_file_is_written_from_copy_for_its_shop_unless_told_otherwise(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    """--format magento without -p writes listings for Magento (its SEO fields filled), not the
    default amazon copy; -p amazon --format magento says, before sending, what the file is made of."""
    result = run(run_cli, relay, sample, "-l", "de-DE", "--format", "magento", "--store-view", "de-DE=de")
    assert result.exit_code == 0, result.stderr
    assert {r["platform"] for r in iter_jsonl(Path("out/results.jsonl"))} == {"magento"}
    rows = list(csv.DictReader(io.StringIO(Path("out/magento_products.csv").read_text(encoding="utf-8"), newline="")))
    assert len(rows) == 13 and all(row["meta_description"] and row["meta_title"] for row in rows)
    told = run(run_cli, relay, sample, "-l", "de-DE", "-p", "amazon", "--format", "magento", "--store-view", "de-DE=de")
    assert told.exit_code == 0, told.stderr
    assert "warning: the Magento import file is written from the amazon listings" in told.stderr
    assert "add -p magento" in told.stderr
    none = run(run_cli, relay, sample, "-l", "de-DE", "-p", "amazon", "--format", "woocommerce", "--dry-run")
    assert none.exit_code == 0 and "the WooCommerce import file is written from the amazon listings" in none.stderr


def test_the_dry_run_refuses_what_the_live_run_would_refuse(run_cli, sample: Path) -> None:
    """An Amazon feed without product types and a Magento file without store views stop the dry
    run with the live run's own line (exit 2), instead of pricing jobs that would never be sent."""
    untyped = run_cli("run", sample, "-l", "de-DE", "--format", "amazon", "--dry-run", "--out", "out")
    assert untyped.exit_code == 2 and "needs each product's Amazon product type" in untyped.stderr
    assert "Estimated cost" not in untyped.stderr and "Traceback" not in untyped.stderr
    viewless = run_cli("estimate", MAGENTO, "-l", "de-DE", "--format", "magento", "--json")
    assert viewless.exit_code == 2 and "magento_store_views" in viewless.stderr and viewless.stdout == ""


def test_a_sku_that_starts_like_a_formula_still_names_the_shops_product(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    """An apostrophe before `@SUM(A1)` would make the importer look for another SKU: identifiers
    are written as they are, and the run says to import the file as it is."""
    catalog = write(tmp_path / "shop.csv", "id,sku,name\np1,@SUM(A1),Merino Wool Beanie\np2,=A2+1,Chrome wallet\n")
    result = run(run_cli, relay, catalog, "-l", "de-DE", "--format", "magento", "--store-view", "de-DE=de")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(Path("out/magento_products.csv").read_text(encoding="utf-8"), newline="")))
    assert sorted(row["sku"] for row in rows) == ["=A2+1", "@SUM(A1)"]
    assert all(not row["name"].startswith(("=", "@", "+", "-")) for row in rows)
    assert "2 ID or SKU cells start like a spreadsheet formula and are written as they are" in result.stderr


def test_a_shops_own_settings_are_read_where_they_are_declared(run_cli, sample: Path) -> None:
    """amazon_*, magento_store_views, templates, lazada_columns belong to their shops (shops/*.py
    declare them); a bad value or a misspelt key is still one line, exit 2, naming where."""
    write(Path("localize.yaml"), "amazon_seller_ids: {XX: A1}\n")
    bad = run_cli("run", sample, "-l", "de-DE", "--dry-run")
    assert bad.exit_code == 2 and "localize.yaml: amazon_seller_ids: keys are SP-API regions" in bad.stderr
    write(Path("localize.yaml"), "amazon_seler_id: A1\n")
    typo = run_cli("run", sample, "-l", "de-DE", "--dry-run")
    assert typo.exit_code == 2 and "unknown setting 'amazon_seler_id'" in typo.stderr
    assert "amazon_seller_id" in typo.stderr and "magento_store_views" in typo.stderr  # the shops' keys listed
    write(Path("localize.yaml"), "magento_store_views: {de-DE: de}\n")
    view = run_cli("run", sample, "-l", "de-DE", "--dry-run", "--format", "magento", "--store-view", "de_DE")
    assert view.exit_code == 2 and "--store-view: must be KEY=VALUE" in view.stderr

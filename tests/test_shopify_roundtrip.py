"""Shopify round trip: the Translate & Adapt export in, the import file out (PLATFORMS.md).

examples/shopify_translations_export.csv is an export of every language (German, then French,
each in its own block) with human translations, an outdated row, options, a collection,
metafields (text, JSON, a URL, a number), a menu and a link, theme strings with placeholders
and a policy in HTML.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay

from localize.checking.strings import check_string
from localize.checking.validate import InvalidAnswer
from localize.locales import parse_locale
from localize.output.store import iter_jsonl
from localize.reading.catalog import read_catalog
from localize.shops.translate_adapt import locale_of_code, shop_locale

EXPORT = Path(__file__).resolve().parent.parent / "examples" / "shopify_translations_export.csv"
HEADER = ["Type", "Identification", "Field", "Locale", "Market", "Status", "Default content", "Translated content"]
IMPORT = Path("out/shopify_translations.csv")
PRODUCTS = ["8812345678901", "8812345678902", "8812345678903"]


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-shopify-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def shopify_run(run_cli, relay: FakeRelay, catalog: Path = EXPORT, *args: str):
    return run_cli("run", catalog, "--base-url", relay.base_url, "--out", "out", *args)


def csv_rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def keyed(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], dict[str, str]]:
    return {(row["Identification"], row["Field"], row["Locale"]): row for row in rows}


def test_an_export_of_every_language_reads_as_one_product_per_identification() -> None:
    products = list(read_catalog(EXPORT))
    assert [p.id for p in products] == PRODUCTS  # no "duplicate id" for the French block
    first = products[0]
    assert first.fields["name"] == "Merino Wool Beanie" and first.fields["product_type"] == "Beanie"
    assert first.platforms == ("shopify",)
    assert "handle" not in first.data() and "merino-wool-beanie" not in str(first.data())
    # German: the title is translated, but the body is outdated; French: nothing is translated.
    assert first.translations == {"de": True, "fr": True}
    assert "shopify_translations" not in first.data()  # steers the run; never reaches the model


def test_one_command_gives_back_the_import_file_with_human_work_kept(run_cli, relay: FakeRelay) -> None:
    result = shopify_run(run_cli, relay)
    assert result.exit_code == 0, result.stderr
    assert "Locales from the export: de → de-DE, fr → fr-FR" in result.stderr
    assert IMPORT.read_bytes().startswith(b"\xef\xbb\xbf" + ",".join(HEADER).encode() + b"\r\n")
    source, written = csv_rows(EXPORT), csv_rows(IMPORT)
    # Every row of the export once, in its order, every column but the translation byte for byte.
    assert len(written) == len(source)
    for before, after in zip(source, written, strict=True):
        assert [after[name] for name in HEADER[:-1]] == [before[name] for name in HEADER[:-1]]
    rows = keyed(written)
    assert rows[("'8812345678901", "title", "de")]["Translated content"] == "Wollmütze aus Merino"  # kept
    assert rows[("'8812345678901", "title", "de")]["Status"] == "translated"
    outdated = rows[("'8812345678901", "body_html", "de")]
    assert (
        outdated["Status"] == "outdated"
        and outdated["Translated content"] != "<p>Eine weiche Mütze aus Merinowolle.</p>"
    )
    results = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    beanie_fr = results[("8812345678901", "fr-FR")]
    assert rows[("'8812345678901", "title", "fr")]["Translated content"] == beanie_fr["title"]
    assert rows[("'8812345678901", "body_html", "fr")]["Translated content"].startswith(beanie_fr["description"])
    assert rows[("'8812345678901", "meta_title", "fr")]["Translated content"] == beanie_fr["extra"]["seo_title"]
    assert rows[("'9911223344", "name", "fr")]["Translated content"] == "Couleur"  # a human's option name
    for untouched in (
        ("'8812345678901", "handle", "de"),
        ("'3311220100", "value", "fr"),
        ("'3311220101", "value", "de"),
    ):
        assert rows[untouched]["Translated content"] == ""  # a handle, JSON, a URL: never sent, never changed
    assert rows[("'8812345678903", "meta_title", "de")]["Translated content"] == ""  # no default content
    assert "44 rows filled, 4 kept (a current translation)" in result.stderr
    assert "PRODUCT: handle 6" in result.stderr and "METAFIELD: JSON 2" in result.stderr
    # Every other text row is translated as a string, placeholders, Liquid tags and HTML intact.
    theme = rows[("'1234567890", "general.newsletter.success", "fr")]["Translated content"]
    assert theme.count("{{ name }}") == 1 and "{% if discount %}" in theme and theme.endswith("{% endif %}")
    assert "bonnet" in theme and "Thanks" not in theme
    policy = rows[("'7788990011", "body", "de")]["Translated content"]
    assert policy.startswith("<h2>") and "<strong>" in policy and "{{ shop.email }}" in policy
    assert "Returns" not in policy and "Mütze" in policy
    for key in (("'4455667788", "title", "de"), ("'5566778900", "title", "fr"), ("'9911223345", "name", "de")):
        assert rows[key]["Translated content"], key
    strings = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/strings.jsonl"))}
    assert len(strings) == 25 and ("MENU/5566778899/title", "fr-FR") not in strings  # a human's, kept
    assert "Winter Essentials" not in Path("out/results.jsonl").read_text()  # results.jsonl: listings only
    report = json.loads(Path("out/cost_report.json").read_text())
    by_type = report["by_resource_type"]
    assert sum(entry["jobs"] for entry in by_type.values()) == 25
    assert by_type["ONLINE_STORE_THEME"]["jobs"] == 6 and by_type["SHOP_POLICY"]["jobs"] == 2


def test_the_cost_report_on_disk_says_what_the_import_file_holds_as_json_output_does(run_cli, relay: FakeRelay) -> None:
    printed = shopify_run(run_cli, relay, EXPORT, "--json")
    assert printed.exit_code == 0, printed.stderr
    on_disk = json.loads(Path("out/cost_report.json").read_text())["shopify_import"]
    assert on_disk == json.loads(printed.stdout)["shopify_import"]
    assert on_disk["written"] and on_disk["filled"] > 0 and on_disk["kept"] > 0
    filled = len([row for row in csv_rows(IMPORT) if row["Translated content"]]) - on_disk["kept"]
    assert on_disk["filled"] <= filled  # every row it says it filled has a translation in the file


def test_strings_are_sent_in_the_wire_form_and_a_dropped_placeholder_is_re_asked(run_cli, relay: FakeRelay) -> None:
    key = "ONLINE_STORE_THEME/1234567890/general.cart.item_count"
    relay.enqueue(Answer(), Answer(strings={key: "Artikel im Warenkorb"}))  # the listing pack goes first
    result = shopify_run(run_cli, relay, EXPORT, "-l", "de-DE", "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    asked = [body["messages"] for body in relay.chat_requests if "<strings>" in body["messages"][1]["content"]]
    first = asked[0]
    assert '{"strings": {"<key>": "<translation>", ...}}' in first[0]["content"]
    payload = first[1]["content"].split("<strings>", 1)[1].rsplit("</strings>", 1)[0]
    sent = json.loads(payload)
    assert sent[key] == "{{ count }} items in your cart"
    assert "\\u003cp>" in payload or "\u003cp>" in payload  # '<' escaped: no text can close the fence
    again = asked[1]  # the failing string alone, with what it got and what was wrong
    assert list(json.loads(again[1]["content"].split("<strings>", 1)[1].rsplit("</strings>", 1)[0])) == [key]
    assert again[-2]["role"] == "assistant" and "Artikel im Warenkorb" in again[-2]["content"]
    assert "{{ count }}" in again[-1]["content"]
    strings = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/strings.jsonl"))}
    fixed = strings[(key, "de-DE")]
    assert fixed["attempts"] == 2 and fixed["text"].startswith("{{ count }}")
    assert (
        keyed(csv_rows(IMPORT))[("'1234567890", "general.cart.item_count", "de")]["Translated content"] == fixed["text"]
    )


def test_an_edited_default_content_renews_only_that_string(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    export = write(tmp_path / "export.csv", EXPORT.read_text(encoding="utf-8"))
    assert shopify_run(run_cli, relay, export).exit_code == 0
    sent = len(relay.chat_requests)
    write(export, export.read_text(encoding="utf-8").replace(",Add to cart,", ",Add to bag,"))
    again = shopify_run(run_cli, relay, export)
    assert again.exit_code == 0, again.stderr
    renewed = relay.chat_requests[sent:]
    assert len(renewed) == 2  # the one string, in German and in French
    assert all("Add to bag" in body["messages"][1]["content"] for body in renewed)
    checked = run_cli("run", export, "--out", "out", "--check")
    assert checked.exit_code == 0, checked.stderr


def test_a_language_whose_rows_are_all_current_sends_nothing(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """Rows already translated (and not outdated) cost nothing: no job, no request."""
    source = EXPORT.read_text(encoding="utf-8")
    translated = []
    for row in csv.reader(io.StringIO(source, newline="")):
        if row[0] == "PRODUCT" and row[3] == "de" and row[6].strip():
            row[5], row[7] = "translated", row[7] or f"DE {row[2]}"
        translated.append(row)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(translated)
    export = write(tmp_path / "export.csv", buffer.getvalue())
    result = shopify_run(run_cli, relay, export)
    assert result.exit_code == 0, result.stderr
    assert {r["locale"] for r in iter_jsonl(Path("out/results.jsonl"))} == {"fr-FR"}
    listings = [body for body in relay.chat_requests if "<product_data" in body["messages"][1]["content"]]
    assert listings and all("Target locale: fr-FR" in body["messages"][0]["content"] for body in listings)
    assert keyed(csv_rows(IMPORT))[("'8812345678902", "title", "de")]["Translated content"] == "DE title"


def test_locales_match_the_exports_languages_and_add_the_missing_ones(run_cli, relay: FakeRelay) -> None:
    result = shopify_run(run_cli, relay, EXPORT, "-l", "de-DE,ja-JP")
    assert result.exit_code == 0, result.stderr
    source, written = csv_rows(EXPORT), csv_rows(IMPORT)
    assert written[: len(source)] == [
        {**row, "Translated content": written[number]["Translated content"]} for number, row in enumerate(source)
    ]
    french = [row for row in written if row["Locale"] == "fr"]
    assert french == [row for row in source if row["Locale"] == "fr"]  # not asked for: as they were
    japanese = [row for row in written[len(source) :]]
    assert {row["Locale"] for row in japanese} == {"ja"} and len(japanese) == len(french)
    assert keyed(written)[("'8812345678902", "title", "ja")]["Translated content"].startswith("Nordbeat")
    assert "added for a language the export did not have" in result.stderr


def test_a_re_run_sends_nothing_and_writes_the_same_file(run_cli, relay: FakeRelay) -> None:
    assert shopify_run(run_cli, relay).exit_code == 0
    first, sent = IMPORT.read_bytes(), len(relay.chat_requests)
    again = shopify_run(run_cli, relay)
    assert again.exit_code == 0 and "nothing was sent" in again.stderr
    assert len(relay.chat_requests) == sent and IMPORT.read_bytes() == first


def test_force_renews_human_translations_too(run_cli, relay: FakeRelay) -> None:
    assert shopify_run(run_cli, relay, EXPORT, "--force").exit_code == 0
    rows = keyed(csv_rows(IMPORT))
    assert rows[("'8812345678901", "title", "de")]["Translated content"] != "Wollmütze aus Merino"


def test_a_run_in_which_every_job_failed_writes_no_import_file(run_cli, relay: FakeRelay) -> None:
    IMPORT.parent.mkdir()
    write(IMPORT, "an import file from an earlier run")
    relay.enqueue(*[Answer(content="{not json")] * 31)  # 6 listings and 25 strings, one request each
    result = shopify_run(run_cli, relay, EXPORT, "--pack", "1", "--max-reasks", "0")
    assert result.exit_code == 1
    assert "No Shopify import file: none of the 44 rows that need a translation could be filled" in result.stderr
    assert not IMPORT.exists()
    assert "Shopify import file: out" not in result.stderr


@pytest.mark.parametrize(
    "tag,file_codes,expected",
    [
        ("de-DE", ["de"], "de"),
        ("de-DE", [], "de"),
        ("ja-JP", ["de"], "ja"),
        ("pt-BR", [], "pt-BR"),
        ("zh-TW", [], "zh-TW"),
        ("pt-BR", ["pt-BR", "pt-PT"], "pt-BR"),
        ("fr-CA", ["fr"], "fr"),
    ],
)
def test_shop_locale_codes(tag: str, file_codes: list[str], expected: str) -> None:
    assert shop_locale(parse_locale(tag), file_codes) == expected


@pytest.mark.parametrize("code,tag", [("sv", "sv-SE"), ("ja", "ja-JP"), ("pt-BR", "pt-BR"), ("de", "de-DE")])
def test_an_exports_language_codes_become_locales(code: str, tag: str) -> None:
    assert locale_of_code(code).tag == tag


def test_format_shopify_on_a_product_export_exits_2_before_sending(run_cli, relay: FakeRelay) -> None:
    export = EXPORT.with_name("shopify_products_export.csv")
    result = shopify_run(run_cli, relay, export, "-l", "de-DE", "-p", "shopify", "--format", "shopify")
    assert result.exit_code == 2 and "translations export" in result.stderr
    assert relay.paths == []


def test_shards_split_the_strings_too_and_merge_them_into_strings_jsonl(run_cli, relay: FakeRelay) -> None:
    for shard in ("1/2", "2/2"):
        result = run_cli("run", EXPORT, "--base-url", relay.base_url, "--out", f"shard{shard[0]}", "--shard", shard)
        assert result.exit_code == 0, result.stderr
    halves = [list(iter_jsonl(Path(f"shard{n}/strings.jsonl"))) for n in (1, 2)]
    assert all(halves) and not {r["id"] for r in halves[0]} & {r["id"] for r in halves[1]}
    merged = run_cli("merge", "shard1", "shard2", "--out", "merged")
    assert merged.exit_code == 0, merged.stderr
    assert len(list(iter_jsonl(Path("merged/strings.jsonl")))) == 25
    assert all(r["platform"] == "shopify" for r in iter_jsonl(Path("merged/results.jsonl")))


@pytest.mark.parametrize(
    "source,translation,kind",
    [
        ("{{ count }} items in your cart", "Artikel im Warenkorb", "placeholders"),
        ("{{ count }} items", "{{ count }} {{ count }} Artikel", "placeholders"),
        ("{% if a %}Yes{% endif %} please", "{% endif %}Ja{% if a %} bitte", "placeholders"),
        ("<p>Warm <strong>layers</strong></p>", "<p><strong>Warme</strong> Schichten</p>", None),
        ("<p>Warm <strong>layers</strong></p>", "<p>Warme Schichten</p>", "html"),
        ("<h2>Returns</h2><p>Within 30 days.</p>", "<p>Innerhalb von 30 Tagen.</p><h2>Rückgabe</h2>", "html"),
        ("Machine wash cold; lay flat to dry.", "Machine wash cold; lay flat to dry.", "untranslated"),
        ("Machine wash cold; lay flat to dry.", "Kalt", "length"),
        ("Add to cart", "In den Warenkorb", None),
        ("Add to cart", "", "schema"),
        ("Shop all", "Все товары", "wrong_language"),
    ],
)
def test_a_strings_translation_is_checked(source: str, translation: str, kind: str | None) -> None:
    if kind is None:
        assert check_string(source, translation, parse_locale("de-DE"))[0] == translation
        return
    with pytest.raises(InvalidAnswer) as caught:
        check_string(source, translation, parse_locale("de-DE"))
    assert caught.value.kind == kind


def test_the_estimate_prices_the_strings_and_knows_when_they_are_done(run_cli, relay: FakeRelay) -> None:
    estimated = json.loads(run_cli("estimate", EXPORT, "--out", "out", "--json").stdout)
    groups = estimated["by_locale_platform"]
    assert groups["de-DE/strings"]["jobs"] == 13 and groups["fr-FR/strings"]["jobs"] == 12
    assert estimated["jobs"]["total"] == 31 and estimated["cost_usd"] > groups["de-DE/shopify"]["cost_usd"]
    assert shopify_run(run_cli, relay).exit_code == 0
    assert len(relay.chat_requests) == estimated["requests"]  # the estimate packs as the run does
    again = json.loads(run_cli("estimate", EXPORT, "--out", "out", "--json").stdout)
    assert again["jobs"]["up_to_date"] == 31 and again["requests"] == 0


def test_short_japanese_in_kanji_alone_is_accepted_on_the_first_answer(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    """Collection titles and menu items: 家具, 電子機器, 高品質 are correct Japanese, not Chinese."""
    rows = [
        ["PRODUCT", "'8801", "title", "ja", "", "", "Oak chair", ""],
        ["COLLECTION", "'4401", "title", "ja", "", "", "Furniture", ""],
        ["COLLECTION", "'4402", "title", "ja", "", "", "Electronics", ""],
        ["MENU", "'5501", "title", "ja", "", "", "High quality", ""],
    ]
    export = tmp_path / "kanji.csv"
    with export.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    kanji = {"COLLECTION/4401/title": "家具", "COLLECTION/4402/title": "電子機器", "MENU/5501/title": "高品質"}
    relay.enqueue(Answer(), Answer(strings=kanji))  # the product's listing goes first
    result = shopify_run(run_cli, relay, export, "-l", "ja-JP", "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 2  # the listing and the strings: no re-ask
    written = {row["Identification"]: row["Translated content"] for row in csv_rows(IMPORT) if row["Type"] != "PRODUCT"}
    assert written == {"'4401": "家具", "'4402": "電子機器", "'5501": "高品質"}


def test_kept_human_translations_that_break_the_store_are_named_not_changed(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    """A Swedish translation that lost {{ count }} and one with an unclosed <p>: kept byte for
    byte (a person wrote them), named in the summary, cost_report.json and on the review page."""
    rows = [
        ["PRODUCT", "'8801", "title", "sv", "", "", "Oak chair", ""],
        ["ONLINE_STORE_THEME", "'77", "general.cart.item_count", "sv", "", "translated",
         "{{ count }} items in your cart", "varor i din varukorg"],
        ["PAGE", "'88", "body_html", "sv", "", "translated", "<p>Free returns within 30 days.</p>",
         "<p>Fri retur inom 30 dagar."],
        ["COLLECTION", "'99", "title", "sv", "", "translated", "Chairs", "Stolar"],
    ]  # fmt: skip
    export = tmp_path / "kept.csv"
    with export.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    result = shopify_run(run_cli, relay, export, "-l", "sv-SE")
    assert result.exit_code == 0, result.stderr
    assert "Kept, needs a look: 2 translations" in result.stderr
    written = keyed(csv_rows(IMPORT))
    assert written[("'77", "general.cart.item_count", "sv")]["Translated content"] == "varor i din varukorg"
    assert written[("'88", "body_html", "sv")]["Translated content"] == "<p>Fri retur inom 30 dagar."
    summary = json.loads(Path("out/cost_report.json").read_text())["shopify_import"]
    looked = {(row["id"], row["field"]): row["problem"] for row in summary["kept_needs_look"]}
    assert set(looked) == {("77", "general.cart.item_count"), ("88", "body_html")}
    assert "{{ count }}" in looked[("77", "general.cart.item_count")] and "</p>" in looked[("88", "body_html")]
    page = run_cli("review", "out")
    assert page.exit_code == 0, page.stderr
    html = Path("out/review.html").read_text(encoding="utf-8")
    assert "Kept, needs a look (2)" in html and "general.cart.item_count" in html


def test_every_text_translated_for_an_asked_language_is_in_the_file_and_the_counts_add_up(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    """An export whose German block leaves out texts its French block has (a collection, a
    metafield): the German translations of those are billed, so they are written too, as new
    rows; and the summary accounts for every row of the file."""
    rows = csv_rows(EXPORT)
    kept_out = {"COLLECTION", "METAFIELD"}
    trimmed = [row for row in rows if not (row["Locale"] == "de" and row["Type"] in kept_out)]
    out = io.StringIO()
    writer = csv.DictWriter(out, HEADER, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(trimmed)
    export = write(tmp_path / "trimmed.csv", out.getvalue())
    result = shopify_run(run_cli, relay, export, "-l", "de-DE", "--json")
    assert result.exit_code == 0, result.stderr
    written = csv_rows(IMPORT)
    german = keyed([row for row in written if row["Locale"] == "de"])
    sent = {(r["id"], r["locale"]) for r in iter_jsonl(Path("out/strings.jsonl"))}
    for key, row in keyed([r for r in rows if r["Type"] in kept_out and r["Locale"] == "fr"]).items():
        string_key = f"{row['Type']}/{row['Identification'].lstrip(chr(39))}/{row['Field']}"
        if (string_key, "de-DE") in sent:  # translated (and billed) for German: in the file
            assert german[(key[0], key[1], "de")]["Translated content"], key
    assert any(row["Type"] == "COLLECTION" for row in german.values())
    summary = json.loads(result.stdout)["shopify_import"]
    accounted = summary["kept"] + summary["filled"] + summary["failed"] + sum(summary["left"].values())
    assert accounted + summary["other_languages"] == len(written) == summary["rows"]
    # German is in the export: its rows were completed, not added for a language it lacked
    assert summary["completed"] == sum(1 for row in rows if row["Locale"] == "fr" and row["Type"] in kept_out)
    assert summary["added"] == 0


TMX = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4">
  <header creationtool="SomeCAT" creationtoolversion="9" datatype="plaintext" segtype="sentence"
          adminlang="en" srclang="en-US" o-tmf="cat"/>
  <body>
    <tu><tuv xml:lang="en-US"><seg>Add to   cart</seg></tuv><tuv xml:lang="de-DE"><seg>In den Warenkorb</seg></tuv></tu>
    <tu><tuv xml:lang="en-US"><seg>{{ count }} items in your cart</seg></tuv>
        <tuv xml:lang="de"><seg>{{ count }} Artikel im Warenkorb</seg></tuv></tu>
    <tu><tuv xml:lang="en-US"><seg>Shop all</seg></tuv><tuv xml:lang="de"><seg>Alles ansehen</seg></tuv></tu>
    <tu><tuv xml:lang="en-US"><seg>Winter Essentials</seg></tuv><tuv xml:lang="ja"><seg>冬の必需品</seg></tuv></tu>
  </body>
</tmx>
"""


def strings_asked(relay: FakeRelay, language: str) -> str:
    """Every store text a run asked the relay for in one language."""
    return "".join(
        body["messages"][1]["content"]
        for body in relay.chat_requests
        if "<strings>" in body["messages"][-1]["content"] and f"locale {language}" in body["messages"][0]["content"]
    )


def test_a_translation_memory_fills_store_strings_without_a_request(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    memory = write(tmp_path / "shop.tmx", TMX)
    priced = run_cli("run", EXPORT, "--out", "out", "--memory", memory, "--dry-run", "--json")
    assert priced.exit_code == 0 and json.loads(priced.stdout)["jobs"]["from_memory"] == 3  # the three German
    result = shopify_run(run_cli, relay, EXPORT, "--memory", memory, "--json")
    assert result.exit_code == 0, result.stderr
    german = strings_asked(relay, "de-DE")
    assert german and "Add to cart" not in german and "items in your cart" not in german and "Shop all" not in german
    assert "Add to cart" in strings_asked(relay, "fr-FR")  # no French in the memory: asked
    rows = keyed(csv_rows(IMPORT))
    assert rows[("'1234567890", "products.product.add_to_cart", "de")]["Translated content"] == "In den Warenkorb"
    count = rows[("'1234567890", "general.cart.item_count", "de")]["Translated content"]
    assert count == "{{ count }} Artikel im Warenkorb"
    filled = [r for r in iter_jsonl(Path("out/strings.jsonl")) if r.get("memory")]
    assert {(r["field"], r["locale"]) for r in filled} >= {
        ("products.product.add_to_cart", "de-DE"),
        ("general.cart.item_count", "de-DE"),
    }
    report = json.loads(result.stdout)
    assert report["jobs"]["from_memory"] == len(filled) and report["reused"]["saved_usd"] > 0
    assert run_cli("approve", "out", "--id", "8812345678901", "--locale", "de-DE").exit_code == 0
    exported = tmp_path / "out.tmx"
    done = run_cli("memory", "export", "out", "--tmx", exported)
    assert done.exit_code == 0 and "translation units" in done.stderr
    from localize.reading.memory import read_tmx

    units = {(source, language): text for source, language, text in read_tmx(exported)}
    assert units[("Add to cart", "de-de")] == "In den Warenkorb"  # the run's store texts
    assert units[("Main menu", "fr")] == "Menu principal"  # a person's translation in the export
    approved = next(r for r in iter_jsonl(Path("out/results.jsonl")) if r["approved"])
    assert units[("Merino Wool Beanie", "de-de")] == approved["title"]  # a listing a person approved


def test_the_exports_own_translations_serve_the_same_text_elsewhere(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """A person translated the French menu title "Main menu"; a link with the same text is
    filled from it, not sent."""
    text = EXPORT.read_text(encoding="utf-8-sig").replace(",Shop all,", ",Main menu,")
    export = write(tmp_path / "export.csv", text)
    result = shopify_run(run_cli, relay, export, "-l", "fr-FR")
    assert result.exit_code == 0, result.stderr
    assert "Main menu" not in strings_asked(relay, "fr-FR")
    rows = keyed(csv_rows(IMPORT))
    assert rows[("'5566778900", "title", "fr")]["Translated content"] == "Menu principal"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('<?xml version="1.0"?><!DOCTYPE tmx [<!ENTITY a "aaaa">]><tmx><body/></tmx>', "declares"),
        ("<tmx><body><tu></body></tmx>", "not well-formed XML"),
        ("<html><body/></html>", "not a TMX file"),
        ('<?xml version="1.0" encoding="x-unknown-9"?><tmx/>', "unknown encoding"),
        (
            '<tmx version="1.4"><header srclang="en"/><body>'
            + '<tu><tuv xml:lang="en"><seg>Shop all</seg></tuv>' * 20_000
            + "</tu>" * 20_000
            + "</body></tmx>",
            "nests a <tu> inside a <tu>",  # read at once, not a walk of every unit's subtree
        ),
    ],
    ids=["entity", "broken", "html", "encoding", "nested"],
)
def test_a_memory_that_is_not_a_safe_tmx_stops_the_run_before_sending(
    run_cli, relay: FakeRelay, tmp_path: Path, content: str, said: str
) -> None:
    memory = write(tmp_path / "bad.tmx", content)
    result = shopify_run(run_cli, relay, EXPORT, "--memory", memory)
    assert result.exit_code == 2 and said in result.stderr and relay.chat_requests == []
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said in errors[0] and "Traceback" not in result.stderr


def test_a_memory_over_the_size_cap_is_refused(
    run_cli, relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import localize.reading.memory

    monkeypatch.setattr(localize.reading.memory, "MAX_BYTES", 100)
    memory = write(tmp_path / "big.tmx", TMX)
    result = shopify_run(run_cli, relay, EXPORT, "--memory", memory)
    assert result.exit_code == 2 and "more than" in result.stderr and relay.chat_requests == []


def test_a_language_block_missing_a_listing_field_is_asked_and_only_that_field_filled(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    """The beanie's German title is a person's and the German block has no description, SEO
    title or SEO description row: the German listing is asked, the three rows are added and
    filled, the person's title is written back byte for byte, and the counts say so."""
    missing = {"body_html", "meta_title", "meta_description"}
    rows = [
        row
        for row in csv_rows(EXPORT)
        if not (row["Identification"] == "'8812345678901" and row["Locale"] == "de" and row["Field"] in missing)
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, HEADER)
    writer.writeheader()
    writer.writerows(rows)
    export = write(tmp_path / "export.csv", buffer.getvalue())
    german = [r for r in csv_rows(export) if r["Identification"] == "'8812345678901" and r["Locale"] == "de"]
    assert [r["Field"] for r in german] == ["title", "handle", "product_type"]
    assert next(iter(read_catalog(export))).translations["de"] is True  # a field to fill
    stale = run_cli("run", export, "--out", "out", "--check")
    assert stale.exit_code == 1 and "8812345678901\tshopify\tde-DE\t" in stale.stdout  # a job of its own
    result = shopify_run(run_cli, relay, export)
    assert result.exit_code == 0, result.stderr
    results = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    listing = results[("8812345678901", "de-DE")]  # the German listing was asked
    rows = keyed(csv_rows(IMPORT))
    assert rows[("'8812345678901", "title", "de")]["Translated content"] == "Wollmütze aus Merino"  # the person's
    assert rows[("'8812345678901", "body_html", "de")]["Translated content"].startswith(listing["description"])
    assert rows[("'8812345678901", "meta_title", "de")]["Translated content"]
    assert "failed" not in result.stderr.split("Shopify import file:")[1].split("\n")[0]
    assert "3 added where a language's rows lacked the text" in result.stderr
    assert "for a language the export did not have" not in result.stderr
    assert run_cli("run", export, "--out", "out", "--check").exit_code == 0


def test_the_dry_run_counts_products_and_store_strings_apart(run_cli) -> None:
    result = run_cli("run", EXPORT, "--out", "out", "--dry-run")
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("Dry run:"))
    # (31 jobs spread over the 16 requests a run starts with in flight: two products a request)
    assert "3 products → 31 jobs (1 platform × 2 locales), up to 2 products per request" in line  # not 13 of 3
    assert "25 store string jobs, up to 13 a request" in line


def test_the_summary_names_every_results_file_it_wrote(run_cli, relay: FakeRelay) -> None:
    result = shopify_run(run_cli, relay, EXPORT, "--format", "shopify,csv,json")
    assert result.exit_code == 0, result.stderr
    said = next(line for line in result.stderr.splitlines() if line.startswith("Results: "))
    for name in ("results.jsonl", "results.csv", "results.json", "strings.jsonl"):
        assert f"out/{name}" in said and Path("out", name).is_file()


BAD_TMX = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4">
  <header creationtool="SomeCAT" creationtoolversion="9" datatype="plaintext" segtype="sentence"
          adminlang="en" srclang="en-US" o-tmf="cat"/>
  <body>
    <tu><tuv xml:lang="en-US"><seg>&lt;h2&gt;Returns&lt;/h2&gt;
&lt;p&gt;Return unworn items within &lt;strong&gt;30 days&lt;/strong&gt; for a full refund.&lt;/p&gt;
&lt;p&gt;Questions? Write to {{ shop.email }}.&lt;/p&gt;</seg></tuv>
        <tuv xml:lang="de-DE"><seg>&lt;h2&gt;Rückgabe&lt;/h2&gt;
&lt;p&gt;Ungetragene Artikel innerhalb von &lt;strong&gt;300 Tagen&lt;/strong&gt; zurückgeben.&lt;/p&gt;
&lt;p&gt;Fragen? Schreiben Sie an {{ shop.email }}.&lt;/p&gt;</seg></tuv></tu>
    <tu><tuv xml:lang="en-US"><seg>Add to cart</seg></tuv><tuv xml:lang="ja-JP"><seg>In den Warenkorb</seg></tuv>
        <tuv xml:lang="fr-FR"><seg>=HYPERLINK("http://evil.example","Ajouter")</seg></tuv></tu>
    <tu><tuv xml:lang="en-US"><seg>Shop all</seg></tuv><tuv xml:lang="zh"><seg>查看全部商品</seg></tuv></tu>
    <tu><tuv xml:lang="en-US"><seg>Main menu</seg></tuv><tuv xml:lang="ja"><seg>メインメニュー {{</seg></tuv></tu>
  </body>
</tmx>
"""


def test_memory_units_pass_the_checks_a_models_translation_gets(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    """A changed figure, German in ja-JP, an unclosed {{ and a formula: none of them is used;
    each is translated instead, and the run says which (zh for zh-TW: the unit test below)."""
    memory = write(tmp_path / "bad.tmx", BAD_TMX)
    result = shopify_run(run_cli, relay, EXPORT, "-l", "de-DE,fr-FR,ja-JP", "--memory", memory)
    assert result.exit_code == 0, result.stderr
    assert not [line for line in iter_jsonl(Path("out/strings.jsonl")) if line.get("memory")]
    said = next(line for line in result.stderr.splitlines() if line.startswith("Translation memory:"))
    assert "4 units not used" in said and "figures" in said and "SHOP_POLICY/7788990011/body [de-DE]" in said
    assert "placeholders" in said  # the unclosed {{
    text = IMPORT.read_text(encoding="utf-8-sig")
    assert "300 Tagen" not in text and "HYPERLINK" not in text and "{{</" not in text
    assert "In den Warenkorb" not in text  # German is not Japanese
    priced = run_cli("run", EXPORT, "-l", "de-DE,fr-FR,ja-JP", "--memory", memory, "--dry-run", "--json")
    assert json.loads(priced.stdout)["jobs"].get("from_memory", 0) == 0  # the dry run agrees


def test_a_corrected_memory_replaces_its_earlier_fills(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    first = write(tmp_path / "first.tmx", TMX)
    assert shopify_run(run_cli, relay, EXPORT, "-l", "de-DE", "--memory", first).exit_code == 0
    key = ("ONLINE_STORE_THEME/1234567890/products.product.add_to_cart", "de-DE")
    assert {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/strings.jsonl"))}[key]["text"] == "In den Warenkorb"
    corrected = write(tmp_path / "corrected.tmx", TMX.replace("In den Warenkorb", "Zum Warenkorb hinzufügen"))
    checked = run_cli("run", EXPORT, "-l", "de-DE", "--out", "out", "--memory", corrected, "--check")
    assert checked.exit_code == 1 and "add_to_cart\tstrings\tde-DE\tits translation memory changed" in checked.stdout
    sent = len(relay.chat_requests)
    again = shopify_run(run_cli, relay, EXPORT, "-l", "de-DE", "--memory", corrected)
    assert again.exit_code == 0, again.stderr
    line = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/strings.jsonl"))}[key]
    assert line["text"] == "Zum Warenkorb hinzufügen" and line["memory"] is True
    assert len(relay.chat_requests) == sent  # refilled from the memory, not asked
    rows = keyed(csv_rows(IMPORT))
    assert (
        rows[("'1234567890", "products.product.add_to_cart", "de")]["Translated content"] == "Zum Warenkorb hinzufügen"
    )


def test_a_memorys_bare_language_serves_only_locales_in_its_script() -> None:
    from localize.reading.memory import Memory

    memory = Memory()
    memory.add("Shop all", "zh", "查看全部")
    memory.add("Shop all", "de", "Alles ansehen")
    memory.add("Add to cart", "pt-br", "Adicionar ao carrinho")
    assert memory.find("Shop all", parse_locale("zh-CN")) == "查看全部"
    assert memory.find("Shop all", parse_locale("zh-TW")) is None  # traditional: not served by zh
    assert memory.find("Shop all", parse_locale("de-AT")) == "Alles ansehen"
    assert memory.find("Add to cart", parse_locale("pt-PT")) is None  # a regional variant serves its own region

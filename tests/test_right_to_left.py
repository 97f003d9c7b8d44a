"""Right-to-left listings (issue 38, item 4): an Arabic, Hebrew, Persian or Urdu description
says dir="rtl" on its outer element, and no listing carries stray direction marks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay, listing_for

from localize.checking.direction import declares_rtl, direction_marks, with_rtl, without_rtl_wrapper
from localize.locales import parse_locale
from localize.output.store import iter_jsonl


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-rtl-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\nconcurrency: 1\n")


@pytest.mark.parametrize(("tag", "rtl"), [("ar-SA", True), ("he-IL", True), ("fa-IR", True), ("ur-PK", True)])
def test_the_right_to_left_languages_are_known_by_cldr(tag: str, rtl: bool) -> None:
    assert parse_locale(tag).right_to_left is rtl
    assert not parse_locale("de-DE").right_to_left and not parse_locale("ja-JP").right_to_left


def test_the_outer_element_says_rtl_or_a_div_is_put_around() -> None:
    assert with_rtl('<p class="lead">مرحبا</p>') == '<p dir="rtl" class="lead">مرحبا</p>'
    assert with_rtl("<p>أ</p><p>ب</p>") == '<div dir="rtl"><p>أ</p><p>ب</p></div>'  # two outer elements
    assert with_rtl("نص بلا وسوم") == '<div dir="rtl">نص بلا وسوم</div>'
    assert with_rtl('<div dir="ltr">x</div>') == '<div dir="rtl">x</div>'
    kept = '<section dir="rtl"><p>x</p></section>'
    assert declares_rtl(kept) and with_rtl(kept) == kept  # said already: left as written
    assert without_rtl_wrapper(with_rtl("<p>أ</p><p>ب</p>")) == "<p>أ</p><p>ب</p>"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("مرحبا\u200f!", "a right-to-left mark (U+200F)"),
        ("Model\u200e 5", "a left-to-right mark (U+200E)"),
        ("\u202eevil", "a direction override (U+202E, RLO), which shows the text reordered"),
        ("\u2067اسم", "an unclosed direction mark (U+2067)"),
        ("اسم\u2069", "an unpaired closing direction mark (U+2069)"),
        ("\u202bاسم\u2069", "an unpaired closing direction mark (U+2069)"),  # an embedding closed as an isolate
    ],
)
def test_stray_and_unpaired_direction_marks_are_named(text: str, said: str) -> None:
    assert direction_marks(text) == said


def test_paired_isolates_and_text_without_marks_pass() -> None:
    assert direction_marks("\u2067اسم\u2069 و \u202bنص\u202c") is None
    assert direction_marks("Kabellose Kopfhörer") is None


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "--base-url", relay.base_url, "--out", "out", *args)


def results() -> list[dict]:
    return list(iter_jsonl(Path("out/results.jsonl")))


def test_an_arabic_shopify_description_says_rtl_and_the_import_file_keeps_it(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = run(run_cli, relay, sample, "-l", "ar-SA", "-p", "shopify")
    assert result.exit_code == 0, result.stderr
    rows = results()
    assert len(rows) == 13
    assert all(row["description"].startswith('<div dir="rtl">') for row in rows)
    assert all(any(w.startswith("rtl_dir_added") for w in row["warnings"]) for row in rows)
    # Amazon's description is plain text: no markup is added to it.
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample, "-l", "ar-SA", "-p", "amazon", "--out", "out-amazon").exit_code == 0
    plain = list(iter_jsonl(Path("out-amazon/results.jsonl")))
    assert plain and not any("dir=" in row["description"] for row in plain)


def test_a_listing_with_a_direction_mark_is_refused_and_asked_again(run_cli, sample: Path) -> None:
    marked = {**listing_for("ar"), "title": listing_for("ar")["title"] + "\u200f"}
    with FakeRelay() as relay:
        relay.enqueue(Answer(listing=marked))
        result = run(run_cli, relay, sample, "-l", "ar-SA")
        asked = len(relay.chat_requests)
    assert result.exit_code == 0, result.stderr
    assert asked == 14  # 13 jobs, one asked twice
    refused = [r for r in iter_jsonl(Path("out/requests.jsonl")) if r.get("error") == "direction_marks"]
    assert len(refused) == 1 and "right-to-left mark (U+200F)" in refused[0]["message"]
    assert not any("\u200f" in json.dumps(row, ensure_ascii=False) for row in results())


def test_the_review_page_shows_a_right_to_left_listing_right_to_left(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample, "-l", "ar-SA,de-DE", "-p", "shopify").exit_code == 0
    page = Path(run_cli("review", "out").stdout.strip()).read_text(encoding="utf-8")
    arabic = [row for row in page.split("<tr ") if 'data-locale="ar-SA"' in row]
    german = [row for row in page.split("<tr ") if 'data-locale="de-DE"' in row]
    assert arabic and all('<td dir="rtl">' in row for row in arabic)
    assert german and not any('dir="rtl"' in row.split("<details")[0] for row in german)

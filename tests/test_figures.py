"""Figures are facts: every number with a unit, model name, image and link of the source
survives into every listing, read as values in the notations listings really use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay

from localize.checking.figures import check_facts, extract_figures, extract_names, facts_of
from localize.checking.validate import InvalidAnswer
from localize.locales import parse_locale
from localize.output.store import iter_jsonl

KEY = "sk-figures-test"
POWER_BANK = {
    "name": "Voltkit 20000 mAh Power Bank 65 W USB-C PD",
    "sku": "VK-PB20-WHT",
    "features": ["65 W USB-C Power Delivery", "20000 mAh in a 370 g body", "Bluetooth 5.3 display link"],
}


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", KEY)
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\n")


def values(text: str) -> list[tuple[str, list[float]]]:
    return [(figure.dimension, sorted(figure.values)) for figure in extract_figures(text)]


# --- extraction ----------------------------------------------------------------------------


def test_german_and_french_numbers_read_as_the_same_values() -> None:
    english = values("20000 mAh, 1.7 l, 370 g")
    assert [v for _, v in values("20.000 mAh, 1,7 l, 370 g")][1:] == [v for _, v in english][1:]
    assert 72000.0 in values("20.000 mAh")[0][1]  # German grouping (20.000 is also 20 in English)
    assert values("20 000 mAh") == values("20\u202f000 mAh") == [english[0]]  # French grouping
    assert values("1,7 l") == [english[1]]


def test_full_width_digits_ranges_and_hyphenated_units() -> None:
    assert values("２００００ｍＡｈ") == values("20000 mAh")
    assert [v for _, v in values("5–10 kg")] == [[5.0], [10.0]]
    assert values("a 45-hour battery") == values("45 Stunden") == values("45時間")
    assert values("27-inch") == values("27 Zoll") == values("27 in")


def test_model_and_standard_names() -> None:
    names = extract_names("Nordbeat ANC45 over WH-1000XM5, Bluetooth 5.3, USB-C and IPX5; 20000MAH is a figure")
    assert names == ["Bluetooth 5.3", "USB-C", "ANC45", "WH-1000XM5", "IPX5"]


def test_a_figure_in_the_product_name_only_is_a_fact() -> None:
    facts = facts_of({"name": "Trail Running Vest 12 L", "description": "A close-fitting vest."})
    assert [figure.text for figure in facts.figures] == ["12 L"]
    assert check_facts(facts, ["Trailrunning-Weste", "Eine eng anliegende Weste."]) == [
        "the source says 12 L; the listing does not give it"
    ]


def test_codes_are_not_facts_to_repeat() -> None:
    facts = facts_of(POWER_BANK)
    assert "VK-PB20-WHT" not in facts.names
    assert set(facts.names) == {"USB-C", "Bluetooth 5.3"}


# --- the check -----------------------------------------------------------------------------


def test_a_listing_in_another_notation_keeps_every_figure() -> None:
    facts = facts_of(POWER_BANK)
    german = ["Voltkit Powerbank 20.000 mAh, 65 W, USB-C", "Nur 370 g leicht; Anzeige über Bluetooth 5.3"]
    japanese = ["Voltkit モバイルバッテリー ２００００ｍＡｈ ６５Ｗ USB-C", "重さ370g、Bluetooth 5.3対応"]
    assert check_facts(facts, german) == [] and check_facts(facts, japanese) == []


def test_changed_missing_and_invented_figures_are_named() -> None:
    facts = facts_of(POWER_BANK)
    problems = check_facts(facts, ["Voltkit Powerbank 2000 mAh, 65 W, USB-C, Bluetooth 5.3, 5 h Laufzeit"])
    assert "the source says 20000 mAh; the listing says 2000 mAh" in problems
    assert "the source says 370 g; the listing does not give it" in problems
    assert "the listing says 5 h, which the source does not (an invented spec)" in problems


def test_an_imperial_conversion_is_accepted_and_a_wrong_one_rejected() -> None:
    facts = facts_of({"name": "Monitor", "features": ["27-inch IPS panel", "weighs 4.2 kg"]})
    assert check_facts(facts, ["27 in (68.6 cm) IPS monitor, 4.2 kg (9.3 lb)"]) == []
    assert check_facts(facts, ["68,6 cm Bildschirm, 4,2 kg"]) == []  # the market's units alone
    wrong = check_facts(facts, ["27 in (60 cm) IPS monitor, 4.2 kg (8 lb)"])
    assert "the listing says 60 cm; the source says 27 inch" in wrong
    assert "the listing says 8 lb; the source says 4.2 kg" in wrong


def test_images_and_links_must_keep_their_addresses() -> None:
    body = '<p>Size chart:</p><img src="https://cdn.example/chart.png"><a href="/pages/care">care</a>'
    facts = facts_of({"name": "Beanie", "description": body})
    assert facts.media == ("https://cdn.example/chart.png", "/pages/care")
    kept = (
        '<p>Größentabelle:</p><img src="https://cdn.example/chart.png" alt="Tabelle"><a href="/pages/care">Pflege</a>'
    )
    assert check_facts(facts, ["Mütze", kept]) == []
    dropped = check_facts(facts, ["Mütze", "<p>Größentabelle</p>"])
    assert dropped == [
        "keep every image and link of the source with the same address: https://cdn.example/chart.png, /pages/care"
    ]


def test_a_table_of_the_source_must_stay_a_table() -> None:
    body = "<table><tr><th>Size</th><th>cm</th></tr><tr><td>S</td><td>54</td></tr></table>"
    facts = facts_of({"name": "Beanie", "description": body})
    assert facts.tables == 1
    assert check_facts(facts, ["<table><tr><th>Größe</th><th>cm</th></tr><tr><td>S</td><td>54</td></tr></table>"]) == []
    assert check_facts(facts, ["Größe S: 54"]) == [
        "keep the source's 1 table(s) as HTML tables, translating their cells"
    ]


# --- in a run ------------------------------------------------------------------------------


def power_bank_catalog(tmp_path: Path) -> Path:
    return write(
        tmp_path / "catalog.json",
        json.dumps([{"id": "PB-1", **POWER_BANK, "features": POWER_BANK["features"]}]),
    )


def test_a_changed_figure_is_re_asked_with_the_finding_and_fixed(run_cli, tmp_path: Path) -> None:
    with FakeRelay() as relay:
        relay.enqueue(Answer(facts="change"))
        result = run_cli(
            "run", power_bank_catalog(tmp_path), "-l", "de-DE", "--base-url", relay.base_url, "--out", "out"
        )
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 2
    note = relay.chat_requests[1]["messages"][-1]["content"]
    assert "the source says 20000 mAh; the listing says 200000 mAh" in note
    (row,) = iter_jsonl(Path("out/results.jsonl"))
    assert row["attempts"] == 2 and row["warnings"] == [] and "20000 mAh" in row["description"]
    report = json.loads(Path("out/cost_report.json").read_text())
    assert report["errors"] == {"figures": 1}  # the re-asks the figures caused, counted


def test_an_invented_figure_is_flagged_and_kept_as_a_warning_after_the_last_ask(run_cli, tmp_path: Path) -> None:
    with FakeRelay() as relay:
        relay.enqueue(*[Answer(facts="invent")] * 3)
        result = run_cli(
            "run", power_bank_catalog(tmp_path), "-l", "de-DE", "--base-url", relay.base_url, "--out", "out"
        )
    assert result.exit_code == 0, result.stderr
    (row,) = iter_jsonl(Path("out/results.jsonl"))
    assert row["attempts"] == 3
    assert row["warnings"] == ["figures: the listing says 12 h, which the source does not (an invented spec)"]


def test_strict_figures_fail_the_job_instead(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\nfigures: strict\nmax_reasks: 1\n")
    with FakeRelay() as relay:
        relay.enqueue(*[Answer(facts="drop")] * 2)
        result = run_cli(
            "run", power_bank_catalog(tmp_path), "-l", "de-DE", "--base-url", relay.base_url, "--out", "out"
        )
    assert result.exit_code == 1
    (failure,) = iter_jsonl(Path("out/failures.jsonl"))
    assert failure["error"] == "figures" and "20000 mAh" in failure["message"]


def test_a_dropped_image_is_re_asked(run_cli, tmp_path: Path) -> None:
    body = '<p>Warm merino.</p><img src="https://cdn.example/chart.png">'
    catalog = write(tmp_path / "beanie.json", json.dumps([{"id": "B-1", "name": "Beanie", "description": body}]))
    with FakeRelay() as relay:
        relay.enqueue(Answer(facts="drop"))
        args = ("-l", "de-DE", "-p", "shopify", "--base-url", relay.base_url, "--out", "out")
        result = run_cli("run", catalog, *args)
    assert result.exit_code == 0, result.stderr
    assert "https://cdn.example/chart.png" in relay.chat_requests[1]["messages"][-1]["content"]
    (row,) = iter_jsonl(Path("out/results.jsonl"))
    assert row["attempts"] == 2 and 'src="https://cdn.example/chart.png"' in row["description"]


def test_units_per_market_reach_the_prompt(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "units: {en_us: imperial}\n")
    catalog = power_bank_catalog(tmp_path)
    american = run_cli("prompt", catalog, "--id", "PB-1", "--locale", "en-US", "--json")
    german = run_cli("prompt", catalog, "--id", "PB-1", "--locale", "de-DE", "--json")
    assert "shoppers in this market read imperial units" in json.loads(american.stdout)["messages"][0]["content"]
    assert "imperial" not in json.loads(german.stdout)["messages"][0]["content"]


WORST_CASES = {
    "digit groups": "1 " + "000 " * 16_000,
    "model numbers": "Fits models: " + " ".join(str(100 + i) for i in range(16_000)),
    "unclosed tags": "<a " * 21_400,
    "a run of <": "<" * 64_000,
    "unclosed placeholders": "{{" * 32_000,
    "figures": "".join(f"{i} kg " for i in range(10_000)),
}


@pytest.mark.parametrize("text", WORST_CASES.values(), ids=WORST_CASES.keys())
def test_the_checks_read_a_bounded_part_of_64_kb_of_a_worst_case(text: str) -> None:
    """Each pattern's worst case, 64 KB of it: the checks read at most SCAN_CHARS of a text (a
    figure past that is not read) and say at most MAX_PROBLEMS problems. Their time on these
    inputs is in bench/check_worst_case.py (linear: 64 KB costs about four times 16 KB)."""
    from localize.checking.figures import MAX_PROBLEMS, SCAN_CHARS
    from localize.checking.sanitize import unsafe_markup
    from localize.checking.strings import check_string

    assert len(text) >= 64_000
    late = text[:SCAN_CHARS] + " 777 mAh " + text[SCAN_CHARS:]
    facts = facts_of({"description": late})
    assert all(figure.text != "777 mAh" for figure in facts.figures)
    early = facts_of({"description": "777 mAh " + text})
    assert any(figure.text == "777 mAh" for figure in early.figures)
    assert len(check_facts(early, ["nothing"])) <= MAX_PROBLEMS
    assert unsafe_markup(text) == []
    try:  # the store-string check reads the same text: it answers (placeholders, tags, script)
        check_string(text, text, parse_locale("de-DE"))
    except InvalidAnswer as refused:
        assert refused.kind in ("untranslated", "wrong_language", "length")


@pytest.mark.parametrize("count", [3, 40], ids=["scanned", "searched"])
def test_a_spec_sheet_of_many_figures_is_checked_figure_by_figure(count: int) -> None:
    """A dimension with a few figures is scanned and one with many searched by value: either
    way each figure is found where it is written (in another unit too) and a changed one named."""
    source = "; ".join(f"slot {n}: {n * 100 + 50} g" for n in range(count))
    kept = [f"{n * 100 + 50} g" for n in range(count)]
    kept[1] = f"{(1 * 100 + 50) / 1000} kg"  # the same weight in kilograms
    assert check_facts(facts_of({"specs": source}), ["; ".join(kept)]) == []
    changed = [*kept]
    written, last = f"{(count - 1) * 100 + 51} g", f"{(count - 1) * 100 + 50} g"
    changed[-1] = written
    problems = check_facts(facts_of({"specs": source}), ["; ".join(changed)])
    # (the changed figure is named in the first problem when it is among the first few written)
    assert [problem.split(";")[0] for problem in problems] in (
        [f"the source says {last}"],
        [f"the source says {last}", f"the listing says {written}"],
    )


def _units_in_a_fresh_process(cache_home: Path) -> str:
    """What a new process reads `2 kg` and `1 lb` as, with the user's cache folder at `cache_home`."""
    code = "from localize.checking.figures import _unit; print(_unit('kg'), _unit('lb'))"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return done.stdout


def test_the_unit_registry_is_cached_and_a_broken_cache_is_passed_over(tmp_path: Path) -> None:
    """Pint's parsed definitions are cached in the user's cache folder; a cache that cannot be
    written (the folder is a file) or was left half-written is passed over, with the same units."""
    expected = _units_in_a_fresh_process(tmp_path / "cache")
    assert "kilogram" in expected and "[mass]" in expected
    cached = list((tmp_path / "cache" / "pint").glob("*.pickle"))
    assert cached, "the definitions were cached"
    assert _units_in_a_fresh_process(tmp_path / "cache") == expected  # read from the cache
    for path in cached:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a run killed while writing
    assert _units_in_a_fresh_process(tmp_path / "cache") == expected
    (tmp_path / "not-a-folder").write_text("")
    assert _units_in_a_fresh_process(tmp_path / "not-a-folder") == expected


# --- precision, not percentage (issue 24) ---------------------------------------------------

PRECISION_CASES = [
    # (source, listing, same facts?) from real listings
    ("27 in IPS monitor", "27 in (68.6 cm) IPS-Monitor", True),
    ("27 in IPS monitor", "27 in (60 cm) IPS-Monitor", False),
    ("weighs 1.2 kg", "wiegt 1.2 kg (2.6 lb)", True),
    ("weighs 4.2 kg", "wiegt 4,2 kg (9.3 lb)", True),
    ("a 1.7 l kettle", "ein 1,7 l Wasserkocher", True),
    ("a 1.7 l kettle", "a 57.5 fl oz kettle", True),
    ("20000 mAh battery", "20100 mAh Akku", False),
    ("20000 mAh battery", "20.000 mAh Akku", True),
    ("20000 mAh battery", "20001 mAh Akku", False),
    ("1500 W motor", "1520 W Motor", False),
    ("1500 W motor", "1,5 kW Motor", True),
    ("a 1.8 l jug", "eine 1,9 l Kanne", False),
    ("Bajaj DX-2 600W mixer", "Bajaj DX-2 Mixer mit 600 W", True),
    ("Pack of 2 500 ml bottles", "2er-Pack Flaschen à 500 ml", True),
    ("Apple iPhone 13 128 GB", "Apple iPhone 13 mit 128 GB", True),
]


@pytest.mark.parametrize(("source", "listing", "same"), PRECISION_CASES, ids=[c[1] for c in PRECISION_CASES])
def test_figures_compare_by_written_precision(source: str, listing: str, same: bool) -> None:
    problems = check_facts(facts_of({"description": source}), [listing])
    assert (problems == []) is same, problems


def test_a_space_groups_thousands_only_where_the_language_does() -> None:
    facts = facts_of({"description": "2 500 ml"})
    assert check_facts(facts, ["2 500 ml"], spaced_groups=True) == []  # French: 2500 ml, as written
    assert check_facts(facts_of({"description": "2500 ml"}), ["2 500 ml"], spaced_groups=True) == []
    assert check_facts(facts_of({"description": "500 ml"}), ["2 500 ml"], spaced_groups=True) != []


def test_a_relay_nudging_one_figure_by_its_smallest_step_never_goes_unflagged(run_cli, tmp_path: Path) -> None:
    """30% of first answers change one figure by one in its last digit (20000 → 20001 mAh,
    370 → 371 g): every one is caught and asked again, and no result keeps a changed figure."""
    products = [
        {"id": f"PB-{n}", "name": f"Voltkit {10000 + n * 1000} mAh Power Bank {20 + n} W", "weight": f"{300 + n} g"}
        for n in range(20)
    ]
    path = write(tmp_path / "banks.json", json.dumps(products))
    nudged = {n for n in range(20) if n % 10 in (1, 4, 7)}  # 30%
    with FakeRelay() as relay:
        relay.enqueue(*[Answer(facts="nudge" if n in nudged else "keep") for n in range(20)])
        result = run_cli("run", path, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--concurrency", "1")
        asked = len(relay.chat_requests)
    assert result.exit_code == 0, result.stderr
    assert asked == 20 + len(nudged)  # each nudge re-asked once; the right answers on the first ask
    for row in iter_jsonl(Path("out/results.jsonl")):
        n = int(row["id"].split("-")[1])
        assert f"{10000 + n * 1000} mAh" in row["description"] and f"{300 + n} g" in row["description"]
        assert row["warnings"] == []


def test_a_correct_conversion_is_accepted_on_the_first_answer(run_cli, tmp_path: Path) -> None:
    from fake_relay import listing_for

    kettle = [{"id": "K1", "name": "Kettle", "description": "Weighs 1.2 kg."}]
    path = write(tmp_path / "kettle.json", json.dumps(kettle))
    listing = {**listing_for("en"), "description": "Weighs 1.2 kg (2.6 lb)."}
    with FakeRelay() as relay:
        relay.enqueue(Answer(listing=listing))
        result = run_cli("run", path, "-l", "en-US", "--base-url", relay.base_url, "--out", "out")
        asked = len(relay.chat_requests)
    assert result.exit_code == 0, result.stderr
    assert asked == 1

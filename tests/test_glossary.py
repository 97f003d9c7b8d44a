"""--glossary: kept terms survive, fixed translations are used, only entries a product uses
reach its prompt, and editing an entry regenerates only the jobs that use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay, listing_for

from localize.output.store import iter_jsonl
from localize.reading.glossary import Term, load_glossary

KEY = "sk-glossary-test"


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", KEY)
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def test_yaml_and_csv_glossaries_read_the_same(tmp_path: Path) -> None:
    yaml_file = write(
        tmp_path / "g.yaml",
        "keep: [Nordbeat, ANC45]\ntranslate:\n  noise cancelling:\n    de-DE: Geräuschunterdrückung\n",
    )
    csv_file = write(
        tmp_path / "g.csv", "term,de-DE,ja-JP\nNordbeat,,\nANC45,,\nnoise cancelling,Geräuschunterdrückung,\n"
    )
    for path in (yaml_file, csv_file):
        glossary = load_glossary(path)
        text = "Nordbeat ANC45 Wireless Noise Cancelling Headphones"
        assert glossary.terms_for(text, "de-DE") == [
            Term("Nordbeat"),
            Term("ANC45"),
            Term("noise cancelling", "Geräuschunterdrückung"),
        ]
        assert glossary.terms_for(text, "ja-JP") == [Term("Nordbeat"), Term("ANC45")]
        assert glossary.terms_for("ANC450 headphones", "de-DE") == []  # whole words only


def test_only_entries_a_product_uses_reach_its_prompt(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "g.yaml", "keep: [Nordbeat, Castellan]\n")
    result = run_cli(
        "prompt", sample, "--id", "ELEC-001", "--locale", "de-DE", "--glossary", tmp_path / "g.yaml", "--json"
    )
    user = json.loads(result.stdout)["messages"][1]["content"]
    assert '"Nordbeat": keep exactly as written' in user and "Castellan" not in user
    assert user.index("Glossary") < user.index("<product_data>")


def test_a_kept_brand_survives_in_every_locale(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    catalog = write(tmp_path / "c.csv", "id,name,brand\nP1,Noise Cancelling Headphones,Nordbeat\n")
    write(tmp_path / "g.yaml", "keep: [Nordbeat]\n")
    result = run_cli(
        "run",
        catalog,
        "-l",
        "de-DE,ja-JP,th-TH",
        "--glossary",
        tmp_path / "g.yaml",
        "--base-url",
        relay.base_url,
        "--out",
        "out",
    )
    assert result.exit_code == 0, result.stderr
    rows = list(iter_jsonl(Path("out/results.jsonl")))
    assert len(rows) == 3 and all("Nordbeat" in row["title"] for row in rows)


def test_a_glossary_violation_is_reasked_naming_the_term(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    catalog = write(tmp_path / "c.csv", "id,name,brand\nP1,Noise Cancelling Headphones,Nordbeat\n")
    write(tmp_path / "g.yaml", "keep: [Nordbeat]\n")
    translated_away = {**listing_for("de"), "title": "Kopfhörer mit Geräuschunterdrückung"}
    translated_away["description"] = "Kabellose Kopfhörer für Reisen, leise und bequem."
    relay.enqueue(Answer(listing=translated_away))
    result = run_cli(
        "run", catalog, "-l", "de-DE", "--glossary", tmp_path / "g.yaml", "--base-url", relay.base_url, "--out", "out"
    )
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 2
    assert 'keep "Nordbeat" exactly as written' in relay.chat_requests[1]["messages"][-1]["content"]


def test_warn_mode_keeps_the_answer_with_a_named_warning(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\nglossary_violation: warn\nmax_reasks: 1\n")
    catalog = write(tmp_path / "c.csv", "id,name,brand\nP1,Noise Cancelling Headphones,Nordbeat\n")
    write(tmp_path / "g.yaml", "translate:\n  noise cancelling:\n    de-DE: ANC-Technik\n")
    result = run_cli(
        "run", catalog, "-l", "de-DE", "--glossary", tmp_path / "g.yaml", "--base-url", relay.base_url, "--out", "out"
    )
    assert result.exit_code == 0, result.stderr
    (row,) = iter_jsonl(Path("out/results.jsonl"))
    assert row["warnings"] == ['glossary: write "noise cancelling" as "ANC-Technik"']
    assert len(relay.chat_requests) == 2  # asked once more before settling for a warning


def test_editing_one_entry_resends_only_the_jobs_that_use_it(run_cli, sample: Path, tmp_path: Path, relay) -> None:
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\nglossary_violation: warn\nmax_reasks: 0\n")
    glossary = write(tmp_path / "g.yaml", "keep: [Nordbeat]\n")
    args = ("run", sample, "-l", "de-DE,ja-JP", "--glossary", glossary, "--base-url", relay.base_url, "--out", "out")
    assert run_cli(*args).exit_code == 0
    sent = len(relay.chat_requests)
    write(glossary, "keep: [Nordbeat, Voltkit]\n")
    assert run_cli(*args).exit_code == 0
    new = relay.chat_requests[sent:]
    assert len(new) == 2 and all('"brand": "Voltkit"' in body["messages"][1]["content"] for body in new)


def test_a_glossary_with_a_bad_locale_exits_2(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "g.yaml", "translate:\n  mug:\n    jp-JP: マグ\n")
    result = run_cli("estimate", sample, "-l", "de-DE", "--glossary", tmp_path / "g.yaml")
    assert result.exit_code == 2 and "g.yaml" in result.stderr and "jp-JP" in result.stderr


def test_a_missing_glossary_exits_2(run_cli, sample: Path, tmp_path: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE", "--glossary", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "no such glossary file" in result.stderr

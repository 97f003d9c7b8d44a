"""A market's own search terms (issue 38, item 3): a `keywords[de-DE]` column (or
`keywords_de-DE`) reaches only the German prompt, in place of the source keywords, and the
answer's search terms are checked to carry them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay, listing_for

from localize.output.store import iter_jsonl

GERMAN_TERMS = "Bluetooth Kopfhörer|Reisekopfhörer"


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-keywords-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\nconcurrency: 1\n")


def catalog(tmp_path: Path, column: str = "keywords[de-DE]", terms: str = GERMAN_TERMS) -> Path:
    return write(
        tmp_path / "catalog.csv",
        f"id,name,brand,keywords,{column}\n"
        f"K1,Nordbeat travel headphones,Nordbeat,wireless headphones|travel,{terms}\n"
        "K2,Nordbeat desk lamp,Nordbeat,desk lamp|led,\n",
    )


def users(relay: FakeRelay, code: str) -> list[str]:
    return [b["messages"][1]["content"] for b in relay.chat_requests if f"({code}" in b["messages"][0]["content"]]


@pytest.mark.parametrize("column", ["keywords[de-DE]", "keywords_de-DE"])
def test_the_markets_terms_replace_the_source_keywords_in_its_prompt_alone(
    run_cli, tmp_path: Path, column: str
) -> None:
    path = catalog(tmp_path, column)
    with FakeRelay() as relay:
        result = run_cli("run", path, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out")
        german, japanese = users(relay, "Germany"), users(relay, "Japan")
    assert result.exit_code == 0, result.stderr
    k1_de = next(text for text in german if "travel headphones" in text)
    assert '"keywords": ["Bluetooth Kopfhörer", "Reisekopfhörer"]' in k1_de and "wireless headphones" not in k1_de
    assert "this market's own search terms" in k1_de
    k1_ja = next(text for text in japanese if "travel headphones" in text)
    assert "Reisekopfhörer" not in k1_ja and '"keywords": ["wireless headphones", "travel"]' in k1_ja
    assert all("own search terms" not in text for text in japanese)
    # The stock answer's tags lack the German terms: said as a warning on that listing alone.
    warned = {
        (row["id"], row["locale"]): [w for w in row["warnings"] if w.startswith("market_keywords")]
        for row in iter_jsonl(Path("out/results.jsonl"))
    }
    assert warned[("K1", "de-DE")] == ['market_keywords: the search terms lack "Bluetooth Kopfhörer", "Reisekopfhörer"']
    assert not any(found for key, found in warned.items() if key != ("K1", "de-DE"))


def test_an_answer_carrying_the_terms_is_not_warned(run_cli, tmp_path: Path) -> None:
    path = catalog(tmp_path)
    tagged = {**listing_for("de"), "seo_tags": ["bluetooth kopfhörer", "Reisekopfhörer", "kabellos", "reise", "anc"]}
    with FakeRelay() as relay:
        relay.enqueue(Answer(listing=tagged))
        assert run_cli("run", path, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out").exit_code == 0
    k1 = next(row for row in iter_jsonl(Path("out/results.jsonl")) if row["id"] == "K1")
    assert not any(w.startswith("market_keywords") for w in k1["warnings"])


def test_changing_a_markets_terms_makes_only_that_market_stale(run_cli, tmp_path: Path) -> None:
    path = catalog(tmp_path)
    with FakeRelay() as relay:
        assert run_cli("run", path, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out").exit_code == 0
        catalog(tmp_path, terms="Reisekopfhörer|ANC Kopfhörer")
        before = len(relay.chat_requests)
        again = run_cli("run", path, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out", "--json")
        sent = relay.chat_requests[before:]
    assert again.exit_code == 0
    assert len(sent) == 1 and "ANC Kopfhörer" in sent[0]["messages"][1]["content"]  # K1 in German, nothing else
    assert json.loads(again.stdout)["jobs"]["up_to_date"] == 3

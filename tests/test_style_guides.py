"""Style guides (issue 38, item 1): a brand's voice and each market's habits, in the system
message of exactly the jobs they apply to, in those jobs' fingerprints, priced by the dry run,
and their `avoid:` words asked away."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay, listing_for

from localize.output.store import iter_jsonl

GERMAN = "Siezen Sie die Kundschaft. Keine Ausrufezeichen."


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-style-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\nconcurrency: 1\n")


@pytest.fixture
def guides(tmp_path: Path) -> Path:
    """style/ beside the catalog: a German market guide that avoids two words, and a Japanese one."""
    (tmp_path / "style").mkdir()
    write(tmp_path / "style" / "de-DE.md", f"---\navoid: [billig, Schnäppchen]\n---\n{GERMAN}\n")
    write(tmp_path / "style" / "ja.md", "丁寧語で書き、感嘆符は使わない。\n")
    return tmp_path / "style"


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out", *args)


def systems(relay: FakeRelay, code: str) -> list[str]:
    return [
        body["messages"][0]["content"] for body in relay.chat_requests if f"({code}" in body["messages"][0]["content"]
    ]


def test_a_guide_is_in_the_system_message_of_exactly_its_locales_requests(run_cli, sample: Path, guides: Path) -> None:
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0
        german, japanese = systems(relay, "Germany"), systems(relay, "Japan")
    assert len(german) == 13 and all(GERMAN in system for system in german)
    assert len(japanese) == 13 and all("丁寧語" in system and GERMAN not in system for system in japanese)
    shown = run_cli("prompt", sample, "--id", "ELEC-001", "-l", "de-DE")
    assert GERMAN in shown.stdout and "<style_guide>" in shown.stdout


def test_editing_a_guide_makes_only_its_jobs_stale(run_cli, sample: Path, guides: Path) -> None:
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0
        write(guides / "de-DE.md", "---\navoid: [billig]\n---\nDuzen Sie niemanden.\n")
        check = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check", "--json")
        before = len(relay.chat_requests)
        again = run(run_cli, relay, sample)
        sent = relay.chat_requests[before:]
    assert check.exit_code == 1
    assert again.exit_code == 0 and len(sent) == 13
    assert all("Germany" in body["messages"][0]["content"] for body in sent)  # the German jobs, and no others


def test_a_word_the_guide_avoids_is_asked_away_then_said(run_cli, sample: Path, guides: Path) -> None:
    cheap = {**listing_for("de"), "title": "Billig und gut: Nordbeat Kopfhörer mit Geräuschunterdrückung"}
    with FakeRelay() as relay:
        relay.enqueue(Answer(listing=cheap))
        first = run_cli("run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out")
        assert first.exit_code == 0, first.stderr
        asked = len(relay.chat_requests)
    assert asked == 14  # one re-ask
    refused = [r for r in iter_jsonl(Path("out/requests.jsonl")) if r.get("error")]
    assert len(refused) == 1 and 'uses "billig", which the style guide says to avoid' in refused[0]["message"]
    # On the last ask a word still there is kept with a warning (a guide is advice, not a hard rule).
    with FakeRelay() as relay:
        relay.enqueue(Answer(listing=cheap))
        last = run_cli("run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out2", "--max-reasks", "0")
        assert last.exit_code == 0, last.stderr
    warned = [
        row for row in iter_jsonl(Path("out2/results.jsonl")) if any(w.startswith("style:") for w in row["warnings"])
    ]
    assert len(warned) == 1, [row["warnings"] for row in iter_jsonl(Path("out2/results.jsonl"))][:3]


def test_the_dry_run_prices_the_guides_and_names_them(run_cli, sample: Path, guides: Path) -> None:
    missing = run_cli("estimate", sample, "-l", "de-DE,ja-JP", "--style", guides.parent / "none", "--json")
    # A --style folder that is not there: an error, not an estimate without guides.
    assert missing.exit_code == 2 and missing.stdout == "" and "no such folder" in missing.stderr
    (guides.parent / "other").mkdir()
    elsewhere = Path(shutil.copy(sample, guides.parent / "other" / "catalog.csv"))
    without = json.loads(run_cli("estimate", elsewhere, "-l", "de-DE,ja-JP", "--json").stdout)  # no style/ beside it
    guided = json.loads(run_cli("estimate", sample, "-l", "de-DE,ja-JP", "--json").stdout)
    assert guided["style"]["de-DE/amazon"]["guides"] == ["de-DE.md"] and guided["style"]["ja-JP/amazon"]["guides"] == [
        "ja.md"
    ]
    tokens = (
        guided["style"]["de-DE/amazon"]["tokens_per_request"] * 13
        + guided["style"]["ja-JP/amazon"]["tokens_per_request"] * 13
    )
    # Every request carries its guides (counted apart, a token a request may merge at the seam).
    assert abs(guided["tokens"]["input"] - without["tokens"]["input"] - tokens) <= guided["requests"]
    text = run_cli("estimate", sample, "-l", "de-DE,ja-JP")
    assert "Style guides in the system message: de-DE/amazon de-DE.md (" in text.stderr


def test_a_guide_too_long_or_with_bad_front_matter_is_one_line_and_exit_2(run_cli, sample: Path, guides: Path) -> None:
    write(guides / "de-DE.md", "x" * 4_001)
    long = run_cli("estimate", sample, "-l", "de-DE")
    assert long.exit_code == 2 and "de-DE.md: 4,001 characters, over the 4,000 a guide may have" in long.stderr
    write(guides / "de-DE.md", "---\navoid: billig\n---\ntext\n")
    bad = run_cli("estimate", sample, "-l", "de-DE")
    assert bad.exit_code == 2 and "avoid: must be a list of words" in bad.stderr
    assert "Traceback" not in long.stderr + bad.stderr and len(bad.stderr.strip().splitlines()) == 1

"""Human work is kept: edits, approvals and rejections in OUT/reviews.jsonl (one decision a
line, as the review page and `localize approve` write them, or a reviewer in a pull request),
and no re-run overwrites a person."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay

from localize.store import iter_jsonl


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-reviews-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out", *args)


def results() -> dict[tuple[str, str, str], dict]:
    return {(r["id"], r["platform"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}


def decide(**decision: object) -> None:
    with Path("out/reviews.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"time": "2026-12-02T10:00:00+00:00", **decision}, ensure_ascii=False) + "\n")


KEY = ("ELEC-001", "amazon", "de-DE")


def test_a_human_edit_survives_reruns_a_fresh_clone_and_a_source_edit(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    assert all(line["origin"] == "model" and line["approved"] is False for line in results().values())
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="edit", fields={"title": "Nordbeat ANC45 Kopfhörer"})
    sent = len(relay.chat_requests)
    again = run(run_cli, relay, sample)
    assert again.exit_code == 0 and len(relay.chat_requests) == sent
    edited = results()[KEY]
    assert edited["title"] == "Nordbeat ANC45 Kopfhörer" and edited["origin"] == "human"
    shutil.copytree("out", "clone", ignore=shutil.ignore_patterns("localize.db*"))  # a fresh clone of OUT
    shutil.rmtree("out")
    shutil.move("clone", "out")
    assert run(run_cli, relay, sample).exit_code == 0 and len(relay.chat_requests) == sent
    assert results()[KEY]["title"] == "Nordbeat ANC45 Kopfhörer"
    text = sample.read_text(encoding="utf-8").replace("Hybrid active noise cancelling", "Adaptive noise cancelling")
    write(sample, text)  # the product's source changes
    changed = run(run_cli, relay, sample)
    assert changed.exit_code == 0, changed.stderr
    kept = results()[KEY]
    assert kept["title"] == "Nordbeat ANC45 Kopfhörer" and kept["outdated"] is True  # kept, and said
    asked = [body["messages"][-1]["content"] for body in relay.chat_requests[sent:]]
    assert len(asked) == 1 and "ELEC-001" not in json.dumps(asked)  # only ja-JP was regenerated
    assert json.loads(Path("out/cost_report.json").read_text())["jobs"]["outdated"] == 1
    check = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")
    assert check.exit_code == 1 and "outdated" in check.stdout and "ELEC-001\tamazon\tde-DE" in check.stdout
    refreshed = run(run_cli, relay, sample, "--refresh-outdated")
    assert refreshed.exit_code == 0
    fresh = results()[KEY]
    assert fresh["origin"] == "model" and fresh["title"] != "Nordbeat ANC45 Kopfhörer" and "outdated" not in fresh


def test_require_approved_fails_until_approve_all(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    gate = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check", "--require-approved")
    assert gate.exit_code == 1 and "26 listings are not approved yet" in gate.stderr
    partial = run_cli("approve", "out", "--locale", "de-DE")
    assert partial.exit_code == 0 and "Approved 13 listings" in partial.stderr
    approved = run_cli("approve", "out", "--all", "--user", "ci")
    assert approved.exit_code == 0 and "Approved 13 listings" in approved.stderr
    assert all(line["approved"] for line in results().values())
    assert len(Path("out/reviews.jsonl").read_text().splitlines()) == 26
    gate = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check", "--require-approved")
    assert gate.exit_code == 0, gate.stderr
    nothing = run_cli("approve", "out")
    assert nothing.exit_code == 2 and "--all" in nothing.stderr


def test_a_rejected_listing_is_the_only_request_of_the_next_run_and_carries_the_note(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="approve")
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="reject", note="Name the 45-hour battery first.")
    sent = len(relay.chat_requests)
    again = run(run_cli, relay, sample)
    assert again.exit_code == 0, again.stderr
    asked = relay.chat_requests[sent:]
    assert len(asked) == 1 and "Name the 45-hour battery first." in asked[0]["messages"][-1]["content"]
    line = results()[KEY]
    assert line["origin"] == "model" and line["approved"] is False and "rejected" not in line
    assert json.loads(Path("out/reviews.jsonl").read_text().splitlines()[-1])["action"] == "regenerated"
    assert run(run_cli, relay, sample).exit_code == 0 and len(relay.chat_requests) == sent + 1  # settled


def test_a_broken_review_line_is_named(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    write(Path("out/reviews.jsonl"), '{"id": "ELEC-001", "action": "bless"}\n')
    result = run(run_cli, relay, sample)
    assert result.exit_code == 2 and "reviews.jsonl:1" in result.stderr and "Traceback" not in result.stderr

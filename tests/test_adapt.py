"""Sibling locales (issue 38, item 2): --adapt es-MX=es-ES writes the Mexican listing by
adapting the Spanish one, after it, with the sibling's listing in its prompt (and fingerprint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay

from localize.output.store import iter_jsonl


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-adapt-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli(
        "run",
        catalog,
        "-l",
        "es-ES,es-MX",
        "--adapt",
        "es-MX=es-ES",
        "--base-url",
        relay.base_url,
        "--out",
        "out",
        *args,
    )


def mexican(relay: FakeRelay) -> list[dict]:
    return [body for body in relay.chat_requests if "(Mexico)" in body["messages"][0]["content"]]


def test_the_adapted_market_goes_after_its_sibling_with_the_siblings_listing(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = run(run_cli, relay, sample)
        bodies = relay.chat_requests
        adapted = mexican(relay)
    assert result.exit_code == 0, result.stderr
    first_mexican = next(i for i, body in enumerate(bodies) if "(Mexico)" in body["messages"][0]["content"])
    assert all("(Mexico)" in body["messages"][0]["content"] for body in bodies[first_mexican:])  # Spain's first
    assert len(adapted) == 13  # one product a request: each carries its own sibling's listing
    spanish = {row["id"]: row for row in iter_jsonl(Path("out/results.jsonl")) if row["locale"] == "es-ES"}
    for body in adapted:
        user = body["messages"][1]["content"]
        assert "Adapt it to Spanish (Mexico)" in user and "<sibling_listing>" in user
        product = next(pid for pid in spanish if f'"sku": "{spanish[pid]["sku"]}"' in user)
        assert json.dumps(spanish[product]["title"], ensure_ascii=False) in user
    rows = [row for row in iter_jsonl(Path("out/results.jsonl")) if row["locale"] == "es-MX"]
    assert len(rows) == 13  # checked as any listing (figures against the product)
    # `localize prompt` shows the adapted request as a run would send it now.
    shown = run_cli("prompt", sample, "--id", "ELEC-001", "-l", "es-MX", "--adapt", "es-MX=es-ES", "--out", "out")
    assert shown.exit_code == 0, shown.stderr
    assert "<sibling_listing>" in shown.stdout and spanish["ELEC-001"]["title"] in shown.stdout
    plain = run_cli("prompt", sample, "--id", "ELEC-001", "-l", "es-MX", "--out", "out")
    assert "<sibling_listing>" not in plain.stdout


def test_a_change_to_the_siblings_listing_makes_the_adapted_one_stale(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0
        with Path("out/reviews.jsonl").open("a", encoding="utf-8") as handle:  # a person edits a Spanish title
            edit = {"id": "ELEC-001", "platform": "amazon", "locale": "es-ES", "action": "edit"}
            handle.write(
                json.dumps({"time": "2026-12-06T10:00:00+00:00", **edit, "fields": {"title": "Auriculares ANC45"}})
                + "\n"
            )
        check = run_cli("run", sample, "-l", "es-ES,es-MX", "--adapt", "es-MX=es-ES", "--out", "out", "--check")
        before = len(relay.chat_requests)
        again = run(run_cli, relay, sample)
        sent = relay.chat_requests[before:]
    assert check.exit_code == 1
    assert again.exit_code == 0 and len(sent) == 1
    assert "(Mexico)" in sent[0]["messages"][0]["content"] and "Auriculares ANC45" in sent[0]["messages"][1]["content"]


def test_the_dry_run_prices_the_siblings_listing_in_each_adapted_prompt(run_cli, sample: Path) -> None:
    plain = json.loads(run_cli("estimate", sample, "-l", "es-ES,es-MX", "--pack", "1", "--json").stdout)
    adapted = json.loads(
        run_cli("estimate", sample, "-l", "es-ES,es-MX", "--pack", "1", "--adapt", "es-MX=es-ES", "--json").stdout
    )
    full, adapting = plain["by_locale"]["es-MX"], adapted["by_locale"]["es-MX"]
    assert adapting["tokens"]["output"] == full["tokens"]["output"]  # the listing is written all the same
    extra = (adapting["tokens"]["input"] - full["tokens"]["input"]) / 13
    assert extra > full["tokens"]["output"] / 13  # its prompt carries a listing the size of its own
    assert adapted["by_locale"]["es-ES"] == plain["by_locale"]["es-ES"]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("es-MX", "must be LOCALE=SIBLING such as es-MX=es-ES"),
        ("es-MX=es-MX", "which must be written from the product itself"),
    ],
)
def test_a_bad_adapt_is_one_line_and_exit_2(run_cli, sample: Path, given: str, said: str) -> None:
    result = run_cli("estimate", sample, "-l", "es-ES,es-MX", "--adapt", given)
    assert result.exit_code == 2 and said in result.stderr and "Traceback" not in result.stderr


def test_adapt_with_a_batch_is_refused_before_anything_is_sent(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = run(run_cli, relay, sample, "--batch")
        sent = relay.uploads + len(relay.chat_requests)
    assert result.exit_code == 2 and sent == 0 and "--adapt waits for each sibling" in result.stderr

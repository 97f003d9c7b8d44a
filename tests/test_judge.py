"""The quality judge (issue 39): --judge asks a model to annotate listings against their
products (the wire contract in checking/quality.py), stores `quality` on the results, bills it as
its own line of the report, and never fails a job."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from conftest import write
from fake_relay import JUDGE_OPENING, MISSING, Answer, FakeRelay, Reply, judge_answer
from test_review import CHROMIUM, dom
from test_reviews import start_server
from webhook_receiver import SECRET, Receiver

from localize.checking.quality import ToJudge, judge_messages, read_judgements, sampled, why_judged
from localize.checking.validate import InvalidAnswer
from localize.locales import parse_locale
from localize.output.store import iter_jsonl

GERMAN = parse_locale("de-DE")


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-judge-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\nmax_retries: 1\n")


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str, locales: str = "de-DE"):
    return run_cli("run", catalog, "-l", locales, "--base-url", relay.base_url, "--out", "out", *args)


def results() -> dict[tuple[str, str], dict]:
    return {(row["id"], row["locale"]): row for row in iter_jsonl(Path("out/results.jsonl"))}


def judged_requests(relay: FakeRelay) -> list[dict]:
    return [body for body in relay.chat_requests if body["messages"][0]["content"].startswith(JUDGE_OPENING)]


def audit() -> list[dict]:
    return [json.loads(line) for line in Path("out/requests.jsonl").read_text(encoding="utf-8").splitlines()]


# --- the wire contract, both ways ------------------------------------------------------------


def item(product_id: str = 'A"1<', **listing: object) -> ToJudge:
    fields = {"title": "Kopfhörer", "description": "Kabellose Kopfhörer mit 45 Stunden Akku.", **listing}
    return ToJudge(product_id, {"name": "Headphones", "features": "45-hour battery"}, fields)


def test_the_request_holds_each_source_and_listing_fenced_under_its_escaped_id() -> None:
    messages = judge_messages("amazon", GERMAN, [item(), item("B-2", description="<p>Text</p>")])
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith(JUDGE_OPENING)
    assert "German (Germany)" in messages[0]["content"] and "amazon" in messages[0]["content"]
    user = messages[1]["content"]
    assert '<source id="A&quot;1&lt;">\n{"name": "Headphones", "features": "45-hour battery"}\n</source>' in user
    assert '<listing id="A&quot;1&lt;" locale="de-DE">' in user and '<listing id="B-2" locale="de-DE">' in user
    assert "\\u003cp>Text\\u003c/p>" in user  # a listing's markup cannot close its tag
    assert user.count("<listing ") == 2


def test_an_answer_is_read_strictly() -> None:
    items = [item("A"), item("B")]
    content = json.dumps(
        {
            "judgements": {
                "A": {
                    "errors": [
                        {"span": "45 Stunden", "category": "Accuracy - Mistranslation", "severity": "Major"},
                        {"span": "not in the listing", "category": "fluency", "severity": "minor"},
                        {"span": "Kopfhörer", "category": "made up", "severity": "minor"},
                        {"span": "Kopfhörer", "category": "fluency", "severity": "critical"},
                    ],
                    "score": 61.6,
                },
                "B": {"errors": [], "score": "high"},
            }
        }
    )
    qualities, problems = read_judgements(content, "stop", items, "kimi-k2")
    assert set(qualities) == {"A"} and problems == ["B: no score from 0 to 100"]
    assert qualities["A"].score == 62 and qualities["A"].model == "kimi-k2"
    assert [error.as_json() for error in qualities["A"].errors] == [
        {"span": "45 Stunden", "category": "accuracy/mistranslation", "severity": "major"},
        {"span": "Kopfhörer", "category": "other", "severity": "minor"},
    ]  # the span not in the listing and the unknown severity dropped


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ("They look fine.", "invalid_json"),
        ('{"scores": {}}', "schema"),
        ('{"judgements": {"A": {"errors": [], "score": 90}, "C": {"errors": [], "score": 90}}}', "schema"),
        ('{"judgements": {"A": {"errors": [], "score": 90}, "A": {"errors": [], "score": 10}}}', "schema"),
    ],
)
def test_an_answer_that_cannot_be_read_is_refused_whole(content: str, kind: str) -> None:
    with pytest.raises(InvalidAnswer) as refused:
        read_judgements(content, "stop", [item("A"), item("B")], "kimi-k2")
    assert refused.value.kind == kind


def test_the_test_relays_judge_answers_the_contract_we_send() -> None:
    """The other way round: our request, answered by the stand-in judge, reads back."""
    planted = item("A", description="Kabellose Kopfhörer, wasserdicht, keeps you warm all day.")
    messages = judge_messages("amazon", GERMAN, [item("B"), planted])
    qualities, problems = read_judgements(judge_answer(messages[1]["content"]), "stop", [item("B"), planted], "m")
    assert not problems and qualities["B"].score == 100 and not qualities["B"].errors
    assert qualities["A"].score == 50
    assert {(e.category, e.span) for e in qualities["A"].errors} == {
        ("accuracy/addition", "wasserdicht"),
        ("accuracy/untranslated", "keeps you warm all day"),
    }


def test_the_sample_is_stable_and_about_its_share() -> None:
    keys = [(f"P{n}", "amazon", "de-DE") for n in range(4000)]
    chosen = [key for key in keys if sampled(key, 0.1)]
    assert 320 < len(chosen) < 480
    assert chosen == [key for key in keys if sampled(key, 0.1)]
    assert not any(sampled(key, 0) for key in keys) and all(sampled(key, 1) for key in keys)


def test_which_listings_go_to_the_judge() -> None:
    line = {"id": "P1", "platform": "amazon", "locale": "de-DE", "warnings": [], "origin": "model"}
    assert why_judged(line, mode="all", rate=0, model="m") == "all"
    assert why_judged({**line, "warnings": ["figures: 5 W"]}, mode="sample", rate=0, model="m") == "warning"
    assert why_judged(line, mode="sample", rate=1, model="m") == "sample"
    assert why_judged(line, mode="sample", rate=0, model="m") is None
    for persons in ({"origin": "human"}, {"approved": True}, {"rejected": "no"}, {"outdated": True}):
        assert why_judged({**line, **persons}, mode="all", rate=1, model="m") is None
    judged = {**line, "quality": {"score": 80, "errors": [], "model": "m"}}
    assert why_judged(judged, mode="all", rate=1, model="m") is None
    assert why_judged(judged, mode="all", rate=1, model="other") == "all"  # another judge asked for


# --- a run with the judge ---------------------------------------------------------------------


def test_judge_all_scores_every_listing_and_bills_it_as_its_own_line(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        relay.plant = {"VK-PB20-WHT": {"description": "Powerbank mit 20000 mAh, wasserdicht. Keeps your phone alive."}}
        result = run(run_cli, relay, sample, "--judge", "all")
        bill = relay.bill_usd()
        judge_bodies = judged_requests(relay)
    assert result.exit_code == 0, result.stderr
    rows = results()
    assert all(row["quality"]["model"] == "kimi-k2" for row in rows.values()) and len(rows) == 13
    planted = rows[("ELEC-002", "de-DE")]["quality"]
    assert planted["score"] < 100 and {e["category"] for e in planted["errors"]} >= {
        "accuracy/addition",
        "accuracy/untranslated",
    }
    assert sorted(rows.values(), key=lambda row: row["quality"]["score"])[0]["id"] == "ELEC-002"
    assert len(judge_bodies) == 2  # 13 listings, 8 a request
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    assert Decimal(str(report["cost_usd"])) == pytest.approx(bill, abs=Decimal("0.000002"))
    judge = report["by_purpose"]["judge"]
    assert judge["jobs"] == 13 and judge["requests"] == 2 and judge["cost_usd"] > 0
    assert report["by_purpose"]["listing"]["jobs"] == 13
    assert report["jobs"]["succeeded"] == 13
    judged = [record for record in audit() if record.get("purpose") == "judge"]
    assert len(judged) == 13 and {record["judge_outcome"] for record in judged} == {"judged"}
    assert "Judge (kimi-k2): 13 of 13 listings judged (13 all)" in result.stderr
    assert "lowest: ELEC-002 [de-DE]" in result.stderr
    assert "judging the listings, $" in result.stderr  # the progress of its phase (a CI log's line)
    assert "- Judge: 13 listings judged in 2 requests" in Path("out/cost_report.md").read_text(encoding="utf-8")
    assert "Of that, the judge (--judge): 13 listings judged in 2 requests" in result.stderr
    rebuilt = run_cli("report", "out")  # the report rebuilt from the audit log says it too
    assert rebuilt.exit_code == 0 and "Of that, the judge (--judge): 13 listings judged in 2 requests" in rebuilt.stderr

    # Nothing changed: nothing is judged again; an edited product's listing is written and judged anew.
    with FakeRelay() as relay:
        again = run(run_cli, relay, sample, "--judge", "all")
        assert again.exit_code == 0 and not relay.chat_requests
    assert "nothing to judge" in again.stderr
    text = sample.read_text(encoding="utf-8").replace("Weighs 254 g.", "Weighs 250 g.")
    sample.write_text(text, encoding="utf-8")
    with FakeRelay() as relay:
        changed = run(run_cli, relay, sample, "--judge", "all")
        bodies = judged_requests(relay)
    assert changed.exit_code == 0, changed.stderr
    assert len(bodies) == 1 and bodies[0]["messages"][1]["content"].count("<listing ") == 1
    assert '<listing id="ELEC-001"' in bodies[0]["messages"][1]["content"]


def test_by_default_the_judge_reads_warned_listings_and_a_sample(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        # Its figures left out on every ask: kept with a `figures` warning (figures: warn), not failed.
        relay.plant = {"NB-ANC45-BLK": {"description": "Kabellose Kopfhörer mit Geräuschunterdrückung."}}
        result = run(run_cli, relay, sample, "--judge", "--judge-sample", "0")
        bodies = judged_requests(relay)
    assert result.exit_code == 0, result.stderr
    rows = results()
    warned = {key for key, row in rows.items() if row["warnings"]}
    judged = {key for key, row in rows.items() if "quality" in row}
    assert warned and judged == warned
    assert sum(body["messages"][1]["content"].count("<listing ") for body in bodies) == len(warned)


def test_a_judge_that_fails_or_answers_nonsense_never_fails_a_job(run_cli, sample: Path) -> None:
    for mode in ("nonsense", "fail", "unknown_id", "no_score", "model_not_found"):
        with FakeRelay() as relay:
            relay.judge_mode = mode
            result = run(run_cli, relay, sample, "--judge", "all", "--out", f"out-{mode}")
        assert result.exit_code == 0, (mode, result.stderr)
        rows = list(iter_jsonl(Path(f"out-{mode}/results.jsonl")))
        assert len(rows) == 13 and not any("quality" in row for row in rows), mode
        assert "13 listings unjudged" in result.stderr, (mode, result.stderr)
        assert not Path(f"out-{mode}/failures.jsonl").read_text(encoding="utf-8").strip()
    assert "the judge stopped: not_found" in result.stderr


def test_spans_not_in_the_listing_are_dropped_and_the_score_kept(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        relay.judge_mode = "bad_span"
        result = run(run_cli, relay, sample, "--judge", "all")
    assert result.exit_code == 0, result.stderr
    assert all(row["quality"]["score"] == 100 and not row["quality"]["errors"] for row in results().values())


def test_the_judge_counts_against_max_cost(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0  # the listings, written first
    with FakeRelay() as relay:
        # The judge's requests (8 listings and 5, each reserved at its whole output cap) do not fit.
        result = run(run_cli, relay, sample, "--judge", "all", "--max-cost", "0.01")
        assert not relay.chat_requests
    assert result.exit_code == 3, result.stderr
    rows = results()
    assert len(rows) == 13 and not any("quality" in row for row in rows.values())  # every listing kept
    assert "13 listings unjudged (budget 13)" in result.stderr, result.stderr
    with FakeRelay() as relay:
        result = run(run_cli, relay, sample, "--judge", "all", "--max-cost", "0.05")
        bill = relay.bill_usd()
    assert result.exit_code == 0, result.stderr
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    assert report["by_purpose"]["judge"]["jobs"] == 13 and report["cost_usd"] <= 0.05
    assert Decimal(str(report["cost_usd"])) == pytest.approx(bill, abs=Decimal("0.000002"))


def test_min_quality_without_check_is_a_usage_error(run_cli, sample: Path) -> None:
    done = run_cli("run", sample, "-l", "de-DE", "--out", "out", "--dry-run", "--min-quality", "80")
    assert done.exit_code == 2
    assert done.stderr.strip().splitlines() == [
        "error: --min-quality is read by --check: add --check to compare OUT's scores with it"
        " (see `localize run --help`)"
    ]


def test_check_min_quality_names_the_listings_below_it(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        relay.plant = {"VK-PB20-WHT": {"description": "Powerbank, wasserdicht."}}
        assert run(run_cli, relay, sample, "--judge", "--judge-sample", "50%").exit_code == 0
    rows = results()
    judged = {key[0] for key, row in rows.items() if "quality" in row}
    assert "ELEC-002" in judged or not sampled(("ELEC-002", "amazon", "de-DE"), 0.5)
    checked = run_cli("run", sample, "-l", "de-DE", "--out", "out", "--check", "--min-quality", "80")
    low = {key[0] for key, row in rows.items() if "quality" in row and row["quality"]["score"] < 80}
    if not low:
        pytest.skip("the sample left the planted listing out")  # (it does not: ELEC-002 is in the 50%)
    assert checked.exit_code == 1
    assert "ELEC-002\tamazon\tde-DE\tquality 75" in checked.stdout
    assert "1 judged listing scored below 80 (--min-quality): ELEC-002 [amazon de-DE] 75" in checked.stderr
    unjudged = 13 - len(judged)
    assert f"{unjudged} listings not judged (not failing --min-quality)" in checked.stderr
    as_json = run_cli("run", sample, "-l", "de-DE", "--out", "out", "--check", "--min-quality", "80", "--json")
    data = json.loads(as_json.stdout)
    assert data["low_quality"] == [{"id": "ELEC-002", "platform": "amazon", "locale": "de-DE", "score": 75}]
    assert len(data["unjudged"]) == unjudged
    # A person's approval stands over the judge.
    assert run_cli("approve", "out", "--id", "ELEC-002").exit_code == 0
    assert run_cli("run", sample, "-l", "de-DE", "--out", "out", "--check", "--min-quality", "80").exit_code == 0


def test_judge_flags_are_checked_before_anything_is_sent(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = run(run_cli, relay, sample, "--judge-sample", "150%", "--judge")
        assert not relay.chat_requests
    assert result.exit_code == 2 and "--judge-sample" in result.stderr and "Traceback" not in result.stderr
    with FakeRelay() as relay:
        result = run(run_cli, relay, sample, "--judge", "--judge-model", "no-such-model")
        assert not relay.chat_requests
    assert result.exit_code == 2 and "no-such-model" in result.stderr


# --- shown, delivered and priced -------------------------------------------------------------

PLANTED = {"VK-PB20-WHT": {"description": "Powerbank mit 20000 mAh, wasserdicht. Keeps your phone alive."}}


def judged_out(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        relay.plant = PLANTED
        result = run(run_cli, relay, sample, "--judge", "all")
    assert result.exit_code == 0, result.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_review_page_puts_the_lowest_score_first_and_marks_its_spans(run_cli, sample: Path, tmp_path: Path) -> None:
    judged_out(run_cli, sample)
    html, log = dom(Path(run_cli("review", "out").stdout.strip()), "", tmp_path)
    assert 'data-ready="1"' in html and "Uncaught" not in log
    products = re.findall(r'<section class="product" data-id="([^"]+)"', html)
    assert products[0] == "ELEC-002" and len(products) == 13
    assert '<mark class="judge major" title="accuracy/addition">wasserdicht</mark>' in html
    assert '<mark class="judge major" title="accuracy/untranslated">Keeps your phone alive</mark>' in html
    assert re.search(r'<div class="quality low" data-score="50">quality 50', html)
    assert html.count('class="quality ok" data-score="100"') == 12


def test_the_api_lists_the_lowest_scores_first_and_a_persons_approval_stands_over_them(run_cli, sample: Path) -> None:
    judged_out(run_cli, sample)
    served = start_server()
    try:
        base, token = served.split("?token=")
        base = base.rstrip("/")
        listings = httpx.get(f"{base}/api/listings?token={token}").json()["listings"]
        assert listings[0]["id"] == "ELEC-002" and listings[0]["quality"]["score"] == 50
        assert {e["span"] for e in listings[0]["quality"]["errors"]} == {"wasserdicht", "Keeps your phone alive"}
        assert all("quality" in item for item in listings)
        approved = httpx.post(
            f"{base}/api/listings/amazon/de-DE/ELEC-002", json={"approved": True}, headers={"X-Localize-Token": token}
        )
        assert approved.status_code == 200
        listings = httpx.get(f"{base}/api/listings?token={token}").json()["listings"]
        assert listings[-1]["id"] == "ELEC-002" and listings[0]["id"] != "ELEC-002"
    finally:
        served.stop()


def test_a_delivered_listing_carries_its_quality(run_cli, sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALIZE_WEBHOOK_SECRET", SECRET)
    with Receiver() as receiver:
        with FakeRelay() as relay:
            relay.plant = PLANTED
            result = run(run_cli, relay, sample, "--judge", "--judge-sample", "0", "--webhook", receiver.url)
        delivered = {item["id"]: item for item in receiver.listings()}
        assert result.exit_code == 0, result.stderr
        warned = {key[0] for key, row in results().items() if row["warnings"]}
        assert warned == {"ELEC-002"}  # its figures left out: a warning, so judged
        assert len(delivered) == 13 and {pid for pid, item in delivered.items() if item["quality"]} == warned
        assert delivered["ELEC-002"]["quality"] == results()[("ELEC-002", "de-DE")]["quality"]
        text = sample.read_text(encoding="utf-8").replace("Weighs 254 g.", "Weighs 250 g.")
        sample.write_text(text, encoding="utf-8")
        receiver.accepted.clear()
        with FakeRelay() as relay:
            assert run(run_cli, relay, sample, "--judge", "all", "--webhook", receiver.url).exit_code == 0
        delivered = {item["id"]: item for item in receiver.listings()}
    # A new version of ELEC-001, and the listings judged since they were delivered, each with its judgement.
    assert len(delivered) == 12 and "ELEC-002" not in delivered
    assert all(item["quality"]["score"] == 100 and item["quality"]["model"] == "kimi-k2" for item in delivered.values())


def test_the_dry_run_prices_the_judge(run_cli, sample: Path) -> None:
    def judge_entry(*args: str) -> dict:
        result = run_cli("run", sample, "-l", "de-DE", "--out", "out", "--dry-run", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    assert "judge" not in judge_entry()
    every = judge_entry("--judge", "all")["judge"]
    assert every["listings"] == 13 and every["requests"] == 2 and every["cost_usd"] > 0
    assert every["tokens"]["output"] == 13 * 200
    assert 0 < every["batch_cost_usd"] < every["cost_usd"]  # kimi-k2's batch price
    none = judge_entry("--judge", "--judge-sample", "0")["judge"]
    assert none["listings"] == 0 and none["cost_usd"] == 0 and "warnings" in none["note"]
    text = run_cli("run", sample, "-l", "de-DE", "--out", "out", "--dry-run", "--judge", "all")
    assert "Judge (--judge, kimi-k2): 13 listings (every listing) in 2 requests" in text.stderr
    # Written without the judge: the dry run prices judging what OUT holds; judged, nothing.
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0
    kept = judge_entry("--judge", "all")
    assert kept["judge"]["listings"] == 13 and kept["jobs"]["up_to_date"] == 13
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample, "--judge", "all").exit_code == 0
        live = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))["by_purpose"]["judge"]
    assert judge_entry("--judge", "all")["judge"]["listings"] == 0
    # The estimate's input against what the test relay billed for the same judging (its stand-in
    # tokenizer); its output (200 tokens a judgement) is far above a clean listing's empty list.
    assert 0.6 < kept["judge"]["tokens"]["input"] / live["tokens"]["input"] < 1.6
    assert kept["judge"]["tokens"]["output"] > live["tokens"]["output"]


def test_with_batch_the_judges_requests_go_in_a_batch_too(run_cli, sample: Path) -> None:
    write(Path("localize.yaml"), "rpm: 60000\nbackoff_s: 0.001\nbatch_poll_s: 0.001\n")
    with FakeRelay() as relay:  # (faults that pass every check: no re-ask goes live)
        relay.plant = {
            "VK-PB20-WHT": {"bullets": ["Wasserdicht", "Keeps your phone alive", "Leicht", "Schnell", "Klein"]}
        }
        result = run(run_cli, relay, sample, "--batch", "--judge", "all")
        uploads, live = relay.uploads, relay.chat_requests
        files = [
            [json.loads(line) for line in relay.files[batch["input_file_id"]].decode().splitlines()]
            for batch in relay.batches.values()
        ]
        at_batch_price = relay.bill_usd(("0.36", "0.09", "1.50"))
    assert result.exit_code == 0, result.stderr
    assert uploads == 2 and live == []  # the listings' batch, then the judge's
    judge_lines = [line for line in files[1] if line["body"]["messages"][0]["content"].startswith(JUDGE_OPENING)]
    assert len(judge_lines) == len(files[1]) == 2
    rows = results()
    assert len(rows) == 13 and all("quality" in row for row in rows.values())
    assert rows[("ELEC-002", "de-DE")]["quality"]["score"] == 50
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    assert set(report["by_mode"]) == {"batch"} and report["by_purpose"]["judge"]["requests"] == 2
    assert Decimal(str(report["cost_usd"])) == at_batch_price.quantize(Decimal("0.000001"))
    assert not Path("out/batches.jsonl").exists()  # both collected


def test_planted_faults_score_below_clean_listings_and_each_is_named(run_cli, sample: Path) -> None:
    """The judge against the faults the checks cannot see: English left in, a claim the product
    does not make, the informal register; and a changed figure, which the figure check meets
    first (figures: warn keeps it with a warning, so the judge reads it too)."""
    planted = {
        "TW-MW-HD-OLV-M": {"description": "Warme Mütze aus Merinowolle. Keeps you warm all winter long."},
        "LV-SRM-VC-30": {"bullets": ["Wasserdicht", "Leicht", "Sanft", "Vegan", "Schnell"]},
        "SF-RUN-W-PNK-38": {
            "title": "Laufschuh, der dich schneller macht",
            "bullets": ["Für dich gemacht", "Leicht", "Bequem", "Atmungsaktiv", "Stabil"],
        },
        "VK-PB20-WHT": {"facts": "change"},
    }
    with FakeRelay() as relay:
        relay.plant = planted
        result = run(run_cli, relay, sample, "--judge", "all")
    assert result.exit_code == 0, result.stderr
    rows = {key[0]: row for key, row in results().items()}
    found = {pid: {error["category"] for error in row["quality"]["errors"]} for pid, row in rows.items()}
    assert found["APP-001"] == {"accuracy/untranslated"}
    assert found["BEA-001"] == {"accuracy/addition"}
    assert found["APP-002"] == {"style"}
    assert "accuracy/mistranslation" in found["ELEC-002"] and rows["ELEC-002"]["warnings"]  # the check saw it first
    clean = [
        row["quality"]["score"] for pid, row in rows.items() if pid not in {"APP-001", "BEA-001", "APP-002", "ELEC-002"}
    ]
    faulty = [rows[pid]["quality"]["score"] for pid in ("APP-001", "BEA-001", "APP-002", "ELEC-002")]
    assert clean == [100] * 9 and max(faulty) < min(clean)
    assert sorted(rows, key=lambda pid: rows[pid]["quality"]["score"])[:4] == sorted(
        ("APP-001", "BEA-001", "APP-002", "ELEC-002"), key=lambda pid: rows[pid]["quality"]["score"]
    )


def test_a_judge_answer_without_usage_is_counted_offline_and_kept_apart(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0
    with FakeRelay() as relay:
        relay.enqueue(Answer(usage=MISSING))  # the first judge request's answer
        result = run(run_cli, relay, sample, "--judge", "all")
        bill = relay.bill_usd()
    assert result.exit_code == 0, result.stderr
    assert all("quality" in row for row in results().values())  # the answer was used
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    unreported = report["unreported"]
    assert unreported["requests"] == 1 and unreported["counted_input_tokens"] > 0
    assert unreported["counted_output_tokens"] > 0 and unreported["estimated_cost_usd"] > 0
    assert Decimal(str(report["cost_usd"])) < bill  # only what the relay reported is in the totals
    assert report["by_purpose"]["judge"]["jobs"] == 13


def test_every_judge_request_sent_is_logged_as_answered_not_left_for_a_killed_run(run_cli, sample: Path) -> None:
    """Each answered judge request's record carries the attempt number it was sent under, so
    nothing it marked as sent is later taken for a request a killed run left unanswered."""
    write(Path("localize.yaml"), "rpm: 60000\nbackoff_s: 0.001\nmax_retries: 1\nconcurrency: 8\n")
    with FakeRelay() as relay:
        relay.enqueue(Reply(503, {"error": {"message": "busy", "type": "engine_overloaded_error"}}))
        assert run(run_cli, relay, sample, "--judge", "all", "--pack", "1").exit_code == 0
        assert run(run_cli, relay, sample, "--judge", "all").exit_code == 0  # a second run reads OUT again
    records = audit()
    assert not [record for record in records if record.get("error") == "killed"]
    judged = [record for record in records if record.get("purpose") == "judge" and record.get("usage")]
    assert len({(record["id"], record["attempt"]) for record in judged}) == len(judged) == 13


def test_a_judge_answer_cut_off_is_split_not_asked_again_whole(run_cli, sample: Path) -> None:
    write(Path("localize.yaml"), "rpm: 60000\nbackoff_s: 0.001\nconcurrency: 1\n")
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0
    with FakeRelay() as relay:
        relay.enqueue(Answer(content='{"judgements": {"APP-001": {"errors": [], "sco', finish_reason="length"))
        result = run(run_cli, relay, sample, "--judge", "all")
        sizes = [body["messages"][1]["content"].count("<listing ") for body in judged_requests(relay)]
    assert result.exit_code == 0, result.stderr
    assert sizes == [8, 4, 4, 5]  # the cut pack of 8 in halves, then the other pack
    assert all("quality" in row for row in results().values())
    cut = [record for record in audit() if record.get("error") == "truncated"]
    assert len(cut) == 8 and all(record["purpose"] == "judge" and record["usage"] for record in cut)


def test_localize_prompt_shows_the_judges_request_for_outs_listing(run_cli, sample: Path) -> None:
    lines = sample.read_text(encoding="utf-8").splitlines(keepends=True)
    one = write(Path("one.csv"), lines[0] + next(line for line in lines if line.startswith("ELEC-002,")))
    shown = run_cli("prompt", one, "--id", "ELEC-002", "-l", "de-DE", "--judge", "--out", "out")
    assert shown.exit_code == 2 and "OUT holds no listing of 'ELEC-002' in de-DE on amazon" in shown.stderr
    with FakeRelay() as relay:
        relay.plant = PLANTED
        assert run(run_cli, relay, one, "--judge", "all").exit_code == 0
        (sent,) = judged_requests(relay)
    shown = run_cli("prompt", one, "--id", "ELEC-002", "-l", "de-DE", "--judge", "--out", "out", "--json")
    assert shown.exit_code == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body == sent  # exactly what the run sent for it
    assert body["messages"][1]["content"].startswith("Annotate this listing.") and body["max_tokens"] == 2048
    assert "wasserdicht" in body["messages"][1]["content"]  # the listing as OUT holds it


def test_a_judge_refused_with_a_401_that_echoes_the_key_says_so_without_the_key(run_cli, sample: Path) -> None:
    write(Path("localize.yaml"), "rpm: 60000\nbackoff_s: 0.001\nconcurrency: 1\n")  # (the pack of 8 asks first)
    with FakeRelay() as relay:
        assert run(run_cli, relay, sample).exit_code == 0
    with FakeRelay() as relay:
        echo = {"error": {"type": "invalid_authentication_error", "message": "Invalid API key provided: sk-judge-test"}}
        relay.enqueue(Reply(401, echo))
        result = run(run_cli, relay, sample, "--judge", "all")
    assert result.exit_code == 0, result.stderr  # advice: no job failed, every listing kept
    assert "sk-judge-test" not in result.stderr + result.stdout + Path("out/requests.jsonl").read_text(encoding="utf-8")
    assert "the judge stopped: auth: the relay rejected the API key (HTTP 401)" in result.stderr
    assert "[redacted]" in result.stderr and "Traceback" not in result.stderr
    assert "13 listings unjudged (auth 13)" in result.stderr  # nothing more sent once the key is refused
    assert len(results()) == 13 and not any("quality" in row for row in results().values())

"""CI regeneration and durability: the lock, --check, resume after a kill, the budget, shards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import SAMPLE, write
from fake_relay import FakeRelay

from localize.output.store import iter_jsonl
from localize.planning.jobs import in_shard

KEY = "sk-incremental-test-key"
OUTPUTS = ("results.jsonl", "failures.jsonl", "localize.lock")


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", KEY)
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\n")


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str, out: str = "out"):
    return run_cli("run", catalog, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", out, *args)


def snapshot(out: str = "out") -> dict[str, bytes]:
    return {name: (Path(out) / name).read_bytes() for name in OUTPUTS}


def edit_row(catalog: Path, product_id: str, old: str, new: str) -> None:
    lines = catalog.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.startswith(product_id + ","):
            assert old in line
            lines[number] = line.replace(old, new, 1)
    catalog.write_text("".join(lines), encoding="utf-8")


def test_second_identical_run_sends_nothing_and_rewrites_identical_bytes(run_cli, sample: Path, relay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    first = snapshot()
    sent = len(relay.chat_requests)
    second = run(run_cli, relay, sample)
    assert second.exit_code == 0
    assert len(relay.chat_requests) == sent == 26
    assert snapshot() == first
    assert "All 26 jobs are up to date: nothing was sent." in second.stderr
    assert json.loads(Path("out/cost_report.json").read_text())["jobs"]["up_to_date"] == 26


def test_lock_is_sorted_json_lines_one_entry_per_line(run_cli, sample: Path, relay) -> None:
    run(run_cli, relay, sample)
    lines = Path("out/localize.lock").read_text().splitlines()
    assert json.loads(lines[0]) == {"localize_lock": 1}
    entries = [json.loads(line) for line in lines[1:]]
    products = [e["product"] for e in entries if "product" in e]
    jobs = [tuple(e["job"]) for e in entries if "job" in e]
    assert products == sorted(products) and len(products) == 13
    assert jobs == sorted(jobs) and len(jobs) == 26
    assert {"row", "model", "params", "prompt", "rules"} <= set(entries[-1])


def test_an_edited_row_regenerates_exactly_its_jobs(run_cli, sample: Path, relay) -> None:
    run(run_cli, relay, sample)
    before = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    edit_row(sample, "HOME-002", "Space-saving desk lamp", "Compact desk lamp")
    checked = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")
    assert checked.exit_code == 1
    assert checked.stdout.splitlines() == [
        "HOME-002\tamazon\tde-DE\tedited description",
        "HOME-002\tamazon\tja-JP\tedited description",
    ]
    sent = len(relay.chat_requests)
    result = run(run_cli, relay, sample)
    assert result.exit_code == 0
    new_requests = relay.chat_requests[sent:]
    assert len(new_requests) == 2
    assert all("Compact desk lamp" in body["messages"][1]["content"] for body in new_requests)
    after = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    assert {k for k in after if after[k] != before[k]} <= {("HOME-002", "de-DE"), ("HOME-002", "ja-JP")}
    assert run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check").exit_code == 0


def test_check_needs_no_key_sends_nothing_and_prints_json(run_cli, sample: Path, relay, monkeypatch) -> None:
    monkeypatch.delenv("HOLYSHEEP_API_KEY")
    result = run(run_cli, relay, sample, "--check", "--json")
    assert result.exit_code == 1
    listing = json.loads(result.stdout)
    assert listing["total"] == 26 and listing["fresh"] == 0
    assert {entry["reason"] for entry in listing["stale"]} == {"new row"}
    assert relay.paths == []


def test_changed_prompt_model_or_rules_regenerate_without_force(run_cli, sample: Path, relay, tmp_path: Path) -> None:
    run(run_cli, relay, sample, "-p", "shopee")
    mine = tmp_path / "mine" / "shopee"
    mine.mkdir(parents=True)
    write(mine / "user.j2", "Write the listing.\n<product_data>\n{{ data | data_json }}\n</product_data>\n")

    def reasons(*extra: str) -> set[str]:
        result = run_cli(
            "run", sample, "-l", "de-DE,ja-JP", "-p", "shopee", "--out", "out", "--check", "--json", *extra
        )
        return {entry["reason"] for entry in json.loads(result.stdout)["stale"]}

    assert reasons("--prompts", str(tmp_path / "mine")) == {"changed prompt"}
    assert reasons("--model", "kimi-k2.6") == {"changed model (kimi-k2 → kimi-k2.6)"}
    write(
        tmp_path / "localize.yaml",
        "rpm: 60000\nbackoff_s: 0.001\npack: 1\nrules:\n  shopee:\n    title: {max_chars: 100}\n",
    )
    assert reasons() == {"changed rules"}
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\n")
    assert reasons("--max-tokens", "2000") == {"changed parameters"}
    sent = len(relay.chat_requests)
    run(run_cli, relay, sample, "-p", "shopee", "--model", "kimi-k2.6")
    assert len(relay.chat_requests) - sent == 26  # a new model regenerates everything, no --force


def test_narrowed_run_keeps_other_entries_so_check_reports_no_false_failures(run_cli, sample: Path, relay) -> None:
    run(run_cli, relay, sample)
    edit_row(sample, "TOY-002", "A relaxing landscape puzzle", "A calming landscape puzzle")
    narrowed = run_cli("run", sample, "-l", "ja-JP", "--base-url", relay.base_url, "--out", "out")
    assert narrowed.exit_code == 0
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26  # de-DE results kept
    result = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")
    assert result.stdout.splitlines() == ["TOY-002\tamazon\tde-DE\tedited row"]  # only the truly stale job


def test_removed_products_leave_their_results(run_cli, sample: Path, relay, tmp_path: Path) -> None:
    run(run_cli, relay, sample)
    smaller = write(tmp_path / "smaller.csv", "".join(sample.read_text().splitlines(keepends=True)[:5]))
    sent = len(relay.chat_requests)
    assert run(run_cli, relay, smaller).exit_code == 0
    assert len(relay.chat_requests) == sent
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_force_regenerates_everything(run_cli, sample: Path, relay) -> None:
    run(run_cli, relay, sample)
    run(run_cli, relay, sample, "--force")
    assert len(relay.chat_requests) == 52


def test_budget_stops_before_crossing_the_cap_and_a_larger_cap_picks_up_the_rest(run_cli, sample: Path, relay) -> None:
    cap = Decimal("0.015")
    result = run(run_cli, relay, sample, "--max-cost", str(cap), "--concurrency", "4")
    assert result.exit_code == 3
    report = json.loads(Path("out/cost_report.json").read_text())
    billed_usd = relay.bill_usd()
    assert billed_usd <= cap and Decimal(str(report["cost_usd"])) <= cap
    assert report["budget_usd"] == float(cap)
    jobs = report["jobs"]
    assert jobs["succeeded"] + jobs["failed"] + jobs["up_to_date"] == 26
    budget_failures = [f for f in iter_jsonl(Path("out/failures.jsonl")) if f["error"] == "budget"]
    assert budget_failures and len(budget_failures) == jobs["failed"]
    assert "spent of the $0.0150 cap" in result.stderr
    sent = len(relay.chat_requests)
    again = run(run_cli, relay, sample, "--max-cost", "5")
    assert again.exit_code == 0
    assert len(relay.chat_requests) - sent == len(budget_failures)
    assert list(iter_jsonl(Path("out/failures.jsonl"))) == []


def _start(catalog: Path, relay: FakeRelay, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HOLYSHEEP_API_KEY": KEY}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localize",
            "run",
            str(catalog),
            "-l",
            "de-DE,ja-JP",
            "--base-url",
            relay.base_url,
            "--out",
            "out",
            "--concurrency",
            "4",
            "--no-progress",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished_results(out: str = "out") -> int:
    """The results a run has committed to OUT's database so far (readable while it runs)."""
    path = Path(out) / "localize.db"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM jobs WHERE result IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:  # the run has not created its tables yet
        return 0
    finally:
        db.close()


def _wait_for_journal(lines: int, process: subprocess.Popen) -> None:
    """Wait until the run has committed `lines` finished jobs (a condition, polled; not a timing)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if _finished_results() >= lines:
            return
        time.sleep(0.02)
    raise AssertionError("the run never committed enough jobs")


def _kill_after(finished: int, catalog: Path, relay: FakeRelay, *, in_flight: bool = False) -> None:
    """Start a run and kill -9 it once it has committed `finished` jobs (and, with `in_flight`,
    once the relay also holds a request it has not answered yet)."""
    process = _start(catalog, relay)
    _wait_for_journal(finished, process)
    if in_flight:
        _wait_for_a_request_in_flight(relay, process)
    process.kill()
    process.wait()


def _wait_for_a_request_in_flight(relay: FakeRelay, process: subprocess.Popen) -> None:
    """Wait until the relay has received a request it has not answered (a condition, polled)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(relay.chat_requests) > relay.billed["responses"]:
            return
        time.sleep(0.005)
    raise AssertionError("the run never had a request in flight")


def test_sigkill_mid_run_then_rerun_pays_only_for_what_was_in_flight(run_cli, sample: Path) -> None:
    with FakeRelay(latency_s=0.15) as relay:
        _kill_after(6, sample, relay)
        finished = _finished_results()
        sent_before = len(relay.chat_requests)
        result = run(run_cli, relay, sample, "--concurrency", "4")
        assert result.exit_code == 0, result.stderr
        total_sent = len(relay.chat_requests)
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert total_sent - 26 <= 4  # paid twice: at most the 4 requests that were in flight
    assert total_sent - sent_before == 26 - finished
    assert f"{finished} up to date" in result.stderr


def test_ctrl_c_keeps_what_finished_prints_how_to_resume_and_exits_130(run_cli, sample: Path) -> None:
    with FakeRelay(latency_s=0.15) as relay:
        process = _start(sample, relay)
        _wait_for_journal(4, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert "Run the same command again" in stderr and "Traceback" not in stderr
        kept = len(list(iter_jsonl(Path("out/results.jsonl"))))
        assert kept >= 4
        report = json.loads(Path("out/cost_report.json").read_text())
        assert report["interrupted"] is True and report["jobs"]["not_started"] == 26 - kept
        result = run(run_cli, relay, sample)
    assert result.exit_code == 0 and f"{kept} up to date" in result.stderr


def test_shards_split_the_catalog_and_merge_into_one_run(run_cli, sample: Path) -> None:
    with FakeRelay(caching=False) as relay:
        run(run_cli, relay, sample, out="full")
    for k in (1, 2):
        with FakeRelay(caching=False) as relay:
            result = run(run_cli, relay, sample, "--shard", f"{k}/2", out=f"shard{k}")
            assert result.exit_code == 0
            mine = [p for p in _ids(sample) if in_shard(p, (k, 2))]
            assert 0 < len(mine) < 13
            assert len(relay.chat_requests) == 2 * len(mine)  # only its own products, both locales
            assert {r["id"] for r in iter_jsonl(Path(f"shard{k}/results.jsonl"))} == {
                p for p in _ids(sample) if in_shard(p, (k, 2))
            }
    merged = run_cli("merge", "shard1", "shard2", "--out", "merged")
    assert merged.exit_code == 0, merged.stderr
    for name in OUTPUTS:
        assert Path("merged", name).read_bytes() == Path("full", name).read_bytes(), name
    report = json.loads(Path("merged/cost_report.json").read_text())
    assert report["jobs"]["succeeded"] == 26 and report["requests"] == 26


def test_merge_prefers_the_owning_shard_over_older_copies(run_cli, sample: Path, relay) -> None:
    """In CI every shard starts from the committed outputs; each regenerates only its own rows."""
    run(run_cli, relay, sample, out="committed")
    owner = {p: 1 if in_shard(p, (1, 2)) else 2 for p in _ids(sample)}
    first = next(p for p in owner if owner[p] == 1)
    second = next(p for p in owner if owner[p] == 2)
    edit_row(sample, first, ",", ",NEW ")
    edit_row(sample, second, ",", ",NEW ")
    for k in (1, 2):
        shutil.copytree("committed", f"shard{k}")
        run(run_cli, relay, sample, "--shard", f"{k}/2", out=f"shard{k}")
    assert run_cli("merge", "shard1", "shard2", "--out", "merged").exit_code == 0
    assert run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "merged", "--check").exit_code == 0

    def lock_line(out: str, product_id: str) -> str:
        text = Path(out, "localize.lock").read_text(encoding="utf-8")
        start = f'{{"job": ["{product_id}", "amazon", "de-DE"]'
        return next(line for line in text.splitlines() if line.startswith(start))

    for product_id, owner_shard in ((first, "shard1"), (second, "shard2")):  # the owner's new row won
        assert lock_line("merged", product_id) == lock_line(owner_shard, product_id)
        assert lock_line("merged", product_id) != lock_line("committed", product_id)


def test_merge_of_an_unfinished_run_exits_2(run_cli, sample: Path) -> None:
    with FakeRelay(latency_s=0.15) as relay:
        _kill_after(6, sample, relay)  # a run killed before it exported its files
    result = run_cli("merge", "out", "--out", "merged")
    assert result.exit_code == 2 and "did not finish" in result.stderr


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_merge_of_a_folder_that_is_no_run_output_exits_2(run_cli, sample: Path, relay, folder: str) -> None:
    """A typo or an empty folder among the shards would merge as a shard without results."""
    run(run_cli, relay, sample)
    if folder == "empty":
        Path(folder).mkdir()
    result = run_cli("merge", "out", folder, "--out", "merged")
    assert result.exit_code == 2, result.stderr
    assert folder in result.stderr and "--out directory" in result.stderr
    assert not Path("merged").exists()
    assert not Path(folder, "localize.db").exists()  # nothing written into what is not an OUT


def _ids(catalog: Path) -> list[str]:
    return [line.split(",", 1)[0] for line in catalog.read_text().splitlines()[1:]]


def test_shard_option_is_validated(run_cli) -> None:
    result = run_cli("estimate", SAMPLE, "-l", "de-DE", "--shard", "3/2")
    assert result.exit_code == 2 and "--shard" in result.stderr


def test_estimate_prices_only_what_a_run_would_send(run_cli, sample: Path, relay) -> None:
    run(run_cli, relay, sample)
    edit_row(sample, "BEA-001", "A lightweight daily serum", "A light daily serum")
    result = run_cli("estimate", sample, "-l", "de-DE,ja-JP", "--out", "out", "--json")
    report = json.loads(result.stdout)
    assert report["jobs"]["total"] == 26 and report["jobs"]["up_to_date"] == 24
    assert report["requests"] == 2
    forced = json.loads(run_cli("estimate", sample, "-l", "de-DE,ja-JP", "--out", "out", "--json", "--force").stdout)
    assert forced["requests"] == 26
    human = run_cli("estimate", sample, "-l", "de-DE,ja-JP", "--out", "out")
    assert "24 jobs are up to date in out/" in human.stderr


def test_a_rerun_that_fails_keeps_every_earlier_result(run_cli, sample: Path, relay) -> None:
    """A revoked key in CI must not wipe the committed listings: failures never delete results."""
    from fake_relay import Reply

    run(run_cli, relay, sample)
    before = snapshot()["results.jsonl"]
    edit_row(sample, "TOY-001", "Open-ended magnetic tiles", "Open-ended magnet tiles")
    # A revoked key refuses every request, however many are in flight when the first refusal lands.
    relay.enqueue(*[Reply(401, {"error": {"type": "invalid_authentication_error", "message": "bad key"}})] * 64)
    result = run(run_cli, relay, sample, "--force")
    assert result.exit_code == 4
    assert Path("out/results.jsonl").read_bytes() == before
    assert {f["error"] for f in iter_jsonl(Path("out/failures.jsonl"))} <= {"auth", "aborted"}
    checked = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")
    assert checked.stdout.count("TOY-001") == 2  # the edited row is still reported stale
    relay.forget_queue()
    run(run_cli, relay, sample)  # the key works again: only the stale jobs are sent
    assert list(iter_jsonl(Path("out/failures.jsonl"))) == []


def test_merge_keeps_a_result_beside_its_failure_as_a_run_does(run_cli, sample: Path, relay) -> None:
    """A shard whose re-run failed keeps its earlier listing; merging must not drop it either."""
    from fake_relay import Reply

    run(run_cli, relay, sample, "--shard", "1/2", out="shard1")
    kept = Path("shard1/results.jsonl").read_bytes()
    # A revoked key refuses every request, however many are in flight when the first refusal lands.
    relay.enqueue(*[Reply(401, {"error": {"type": "invalid_authentication_error", "message": "bad key"}})] * 64)
    assert run(run_cli, relay, sample, "--shard", "1/2", "--force", out="shard1").exit_code == 4
    assert Path("shard1/results.jsonl").read_bytes() == kept and list(iter_jsonl(Path("shard1/failures.jsonl")))
    assert run_cli("merge", "shard1", "--out", "merged").exit_code == 0
    assert Path("merged/results.jsonl").read_bytes() == kept
    assert len(list(iter_jsonl(Path("merged/failures.jsonl")))) == len(list(iter_jsonl(Path("shard1/failures.jsonl"))))


def test_a_run_killed_mid_request_leaves_its_paid_requests_in_the_audit_log(run_cli, sample: Path) -> None:
    """kill -9 while requests are in flight: the next run logs them as possibly billed, so the
    audit log covers every request the relay received."""
    with FakeRelay(latency_s=0.15) as relay:
        _kill_after(6, sample, relay, in_flight=True)
        assert run(run_cli, relay, sample, "--concurrency", "4").exit_code == 0
        received = len(relay.chat_requests)
    everything = json.loads(run_cli("report", "out", "--all", "--json").stdout)
    assert everything["requests"] >= received  # nothing the relay got is forgotten
    killed = everything["errors"].get("killed", 0)
    assert killed >= 1 and everything["unconfirmed"]["requests"] >= killed


def test_a_second_run_on_the_same_out_exits_2_while_check_and_estimate_still_work(run_cli, sample: Path) -> None:
    with FakeRelay(latency_s=0.15) as relay:
        first = _start(sample, relay)
        _wait_for_journal(2, first)
        second = run(run_cli, relay, sample)
        checked = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")
        estimated = run_cli("estimate", sample, "-l", "de-DE,ja-JP", "--out", "out")
        _, stderr = first.communicate(timeout=120)
        sent = len(relay.chat_requests)
    assert second.exit_code == 2
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("error: out is being written by another localize command (localize run, pid ")
    assert checked.exit_code == 1 and estimated.exit_code == 0, checked.stderr + estimated.stderr
    assert first.returncode == 0, stderr
    assert sent == 26  # the second run sent nothing
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert Path("out/.localize-run").read_text() == ""  # committed with OUT: empty between runs


def test_two_sigterms_still_end_in_130_with_everything_written(run_cli, sample: Path) -> None:
    """`timeout` sends SIGTERM, and impatient CI runners send it twice."""
    with FakeRelay(latency_s=0.15) as relay:
        process = _start(sample, relay)
        _wait_for_journal(4, process)
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    kept = len(list(iter_jsonl(Path("out/results.jsonl"))))
    assert kept >= 4
    assert json.loads(Path("out/cost_report.json").read_text())["jobs"]["not_started"] == 26 - kept


def test_a_full_disk_is_its_own_exit_and_leaves_no_temp_files(run_cli, sample: Path) -> None:
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    Path("out").mkdir()
    Path("out/requests.jsonl").symlink_to("/dev/full")
    with FakeRelay() as relay:
        result = run(run_cli, relay, sample, "--concurrency", "16")
        assert len(relay.chat_requests) <= 16  # stopped at once: nothing more may be paid for unrecorded
    assert result.exit_code == 5, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "is full" in line and "run the same command again" in line
    known = {".localize-run", ".gitignore"}
    assert [path.name for path in Path("out").iterdir() if path.name.startswith(".") and path.name not in known] == []


def _without_database_rerun_sends_nothing(run_cli, relay, sample: Path, *, damaged: bool = False) -> None:
    """Delete (or damage) OUT's database, run again: every job is up to date from the files alone."""
    for path in Path("out").glob("localize.db*"):
        path.unlink()
    if damaged:
        Path("out/localize.db").write_bytes(b"this is not a database" * 100)
    sent = len(relay.chat_requests)
    again = run(run_cli, relay, sample)
    assert again.exit_code == 0 and "26 up to date" in again.stderr
    assert len(relay.chat_requests) == sent


def test_a_missing_database_is_rebuilt_from_the_committed_text_files(run_cli, sample: Path, relay) -> None:
    """CI starts from a fresh clone: the text files are there, the database is not."""
    run(run_cli, relay, sample)
    before = {name: Path("out", name).read_bytes() for name in OUTPUTS}
    _without_database_rerun_sends_nothing(run_cli, relay, sample)
    assert {name: Path("out", name).read_bytes() for name in OUTPUTS} == before


def test_text_files_changed_behind_the_databases_back_win(run_cli, sample: Path) -> None:
    """A `git pull` brings results.jsonl without one job: the database follows the files."""
    # Without prefix caching the regenerated job is billed as it was the first time, whichever
    # of the first run's concurrent requests reached the relay first.
    with FakeRelay(caching=False) as relay:
        run(run_cli, relay, sample)
        lines = Path("out/results.jsonl").read_text().splitlines(keepends=True)
        Path("out/results.jsonl").write_text("".join(lines[1:]))
        sent = len(relay.chat_requests)
        again = run(run_cli, relay, sample)
    assert again.exit_code == 0 and "25 up to date" in again.stderr
    assert len(relay.chat_requests) == sent + 1
    assert Path("out/results.jsonl").read_text().splitlines(keepends=True) == lines


def test_the_readme_queries_run_against_a_real_out(run_cli, sample: Path, relay) -> None:
    """Every `sqlite3 localized/localize.db "..."` line in the README works as written."""
    run(run_cli, relay, sample, out="localized")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    queries = [line.split('"')[1] for line in readme.splitlines() if line.startswith('sqlite3 localized/localize.db "')]
    assert len(queries) >= 2
    db = sqlite3.connect("localized/localize.db")
    try:
        for query in queries:
            assert db.execute(query).fetchall(), query
    finally:
        db.close()


def test_a_damaged_database_is_started_again_from_the_text_files(run_cli, sample: Path, relay) -> None:
    run(run_cli, relay, sample)
    _without_database_rerun_sends_nothing(run_cli, relay, sample, damaged=True)


def test_check_reads_an_out_it_cannot_write(run_cli, sample: Path, relay) -> None:
    """A read-only checkout with no database: --check builds the state in memory and writes nothing."""
    run(run_cli, relay, sample)
    for path in Path("out").glob("localize.db*"):
        path.unlink()
    Path("out/.localize-run").unlink()
    Path("out/.localize-run").mkdir()  # cannot be opened for writing, as on a read-only mount
    checked = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")
    assert checked.exit_code == 0, checked.stderr
    assert "All 26 jobs are up to date" in checked.stderr
    assert not Path("out/localize.db").exists()


def test_a_full_disk_under_the_database_is_a_disk_full_error(tmp_path: Path) -> None:
    """SQLite says "database or disk is full"; the run must hear ENOSPC, as from any file."""
    import errno

    from localize.output.lock import Fingerprint
    from localize.output.records import Billing, ResultLine
    from localize.output.store import JobResult, RunStore

    store = RunStore(tmp_path / "out")
    store._db.execute("PRAGMA max_page_count = 40")  # a disk with room for 40 pages only
    fingerprint = Fingerprint(row="r", model="m", params="p", prompt="q", rules="s")
    with pytest.raises(OSError) as caught:
        for number in range(10_000):
            key = (f"P{number}", "amazon", "de-DE")
            line = ResultLine(key[0], None, key[1], key[2], "x" * 500, "", (), (), Billing("m"))
            store.record_result(JobResult(key, line, fingerprint, {"name": "n"}))
    assert caught.value.errno == errno.ENOSPC
    store.release()


def test_writes_together_are_one_transaction_all_or_none(tmp_path: Path) -> None:
    """A turn's sent marks and results (runner._write_journal): a failure anywhere in them
    leaves none written, and after it the store writes on as before."""
    from localize.output.lock import Fingerprint
    from localize.output.records import Billing, ResultLine
    from localize.output.store import JobResult, RunStore

    store = RunStore(tmp_path / "out")
    fingerprint = Fingerprint(row="r", model="m", params="p", prompt="q", rules="s")

    def sent(product: str) -> dict[str, object]:
        return {"run": "run-1", "id": product, "platform": "amazon", "locale": "de-DE", "attempt": 1}

    def result(product: str) -> JobResult:
        line = ResultLine(product, None, "amazon", "de-DE", "Titel", "", (), (), Billing("m"))
        return JobResult((product, "amazon", "de-DE"), line, fingerprint, {"name": "n"})

    with pytest.raises(RuntimeError), store.together():
        store.log_sent([sent("P1")])
        store.record_results([(result("P2"), None)])
        raise RuntimeError("a bug after the writes")
    marked = "SELECT id FROM attempts WHERE logged = 0"  # (marked as sent: no audit record yet)
    assert store._db.execute(marked).fetchall() == [] and list(store.results()) == []
    with store.together():
        store.log_sent([sent("P1")])
        store.record_results([(result("P2"), None)])
    store.record_result(result("P3"))  # (outside together(): its own transaction, as before)
    assert store._db.execute(marked).fetchall() == [("P1",)]
    assert [line["id"] for line in store.results()] == ["P2", "P3"]
    # A product's line is written once a run; the one rolled back, again.
    assert store._db.execute("SELECT id FROM products ORDER BY id").fetchall() == [("P2",), ("P3",)]
    store.release()


def test_report_and_review_follow_text_files_pulled_behind_the_databases_back(run_cli, sample: Path, relay) -> None:
    """`localize report` and `review` read the database, which follows what `git pull` brought:
    another machine's run in the audit log, one result fewer."""
    run(run_cli, relay, sample)
    log = Path("out/requests.jsonl").read_text().splitlines(keepends=True)
    pulled = json.dumps({**json.loads(log[0]), "run": "other-machine", "time": "2999-01-01T00:00:00"}) + "\n"
    Path("out/requests.jsonl").write_text("".join(log) + "".join(pulled))
    lines = Path("out/results.jsonl").read_text().splitlines(keepends=True)
    Path("out/results.jsonl").write_text("".join(lines[1:]))
    latest = json.loads(run_cli("report", "out", "--json").stdout)
    assert latest["runs"] == ["other-machine"] and latest["requests"] == 1
    everything = json.loads(run_cli("report", "out", "--all", "--json").stdout)
    assert everything["requests"] == len(log) + 1
    assert run_cli("review", "out").exit_code == 0
    page = Path("out/review.html").read_text(encoding="utf-8")
    dropped = json.loads(lines[0])
    assert page.count('class="job ') == len(lines) - 1
    assert f'data-locale="{dropped["locale"]}"' in page


def test_report_after_a_kill_counts_what_the_killed_run_logged(run_cli, sample: Path) -> None:
    """A killed run never exported; its attempts are in the audit log, and the report reads them."""
    with FakeRelay(latency_s=0.15) as relay:
        _kill_after(5, sample, relay)
    logged = list(iter_jsonl(Path("out/requests.jsonl")))
    report = json.loads(run_cli("report", "out", "--json").stdout)
    assert logged and report["requests"] == len(logged)


def test_merging_into_a_committed_out_leaves_no_stale_file(run_cli, sample: Path, relay) -> None:
    """A merge into a `localized/` an earlier run wrote: its strings.jsonl, results.csv and import
    files no longer match the merged results.jsonl, so none of them stays as it was."""
    assert run(run_cli, relay, sample, "--format", "jsonl,csv", "--shard", "1/2", out="shard1").exit_code == 0
    assert run(run_cli, relay, sample, "--shard", "2/2", out="shard2").exit_code == 0
    merged = Path("merged")
    merged.mkdir()
    write(merged / "strings.jsonl", '{"id": "OLD", "platform": "strings", "locale": "de-DE", "text": "alt"}\n')
    write(merged / "results.csv", "id\nOLD\n")
    (merged / "woocommerce").mkdir()
    write(merged / "woocommerce" / "de-DE.csv", "ID\nOLD\n")
    write(merged / "magento_products.csv", "sku\nOLD\n")
    result = run_cli("merge", "shard1", "shard2", "--out", "merged")
    assert result.exit_code == 0, result.stderr
    assert not (merged / "strings.jsonl").exists() and not (merged / "woocommerce").exists()
    assert not (merged / "magento_products.csv").exists()
    assert "Removed from merged: magento_products.csv, woocommerce" in result.stderr
    written = (merged / "results.csv").read_text(encoding="utf-8")  # shard1 wrote csv: written again, merged
    assert "OLD" not in written and written.count("\n") == 1 + 26
    again = run(run_cli, relay, sample, "--check", out="merged")
    assert again.exit_code == 0, again.stderr  # the merged OUT is a run's: every job up to date


def test_a_failure_is_held_until_its_job_changes_or_retry_failed(run_cli, sample: Path) -> None:
    """A job whose answers failed the checks is not re-bought by an unchanged run (a nightly CI
    job would pay for the same failure every night): it is held, said, named by --check, and
    sent again by --retry-failed or when its product changes."""
    poison = "Voltkit 20000 mAh Power Bank"  # every answer to a request holding it fails the checks
    with FakeRelay(poison=poison, poison_kind="invalid") as relay:
        first = run(run_cli, relay, sample, "--pack", "1")
        assert first.exit_code == 1, first.stderr
        failed = {(r["id"], r["locale"]) for r in iter_jsonl(Path("out/failures.jsonl"))}
        assert failed == {("ELEC-002", "de-DE"), ("ELEC-002", "ja-JP")}
        line = next(iter_jsonl(Path("out/failures.jsonl")))
        assert line["run"] == json.loads(Path("out/cost_report.json").read_text())["run"] and line["fingerprint"]
        sent = len(relay.chat_requests)
        again = run(run_cli, relay, sample, "--pack", "1")
        assert again.exit_code == 1 and len(relay.chat_requests) == sent  # nothing paid again
        report = json.loads(Path("out/cost_report.json").read_text())
        assert report["jobs"]["held"] == 2 and report["jobs"]["failed"] == 2 and report["jobs"]["up_to_date"] == 24
        assert f"Held: 2 failed jobs not sent again: nothing about them changed since run {line['run']}" in again.stderr
        check = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check", "--json")
        stale = json.loads(check.stdout)["stale"]
        assert check.exit_code == 1 and {s["reason"] for s in stale} == {f"failed (unchanged since run {line['run']})"}
        retried = run(run_cli, relay, sample, "--pack", "1", "--retry-failed")
        assert retried.exit_code == 1 and len(relay.chat_requests) > sent  # asked again, on purpose
        sent = len(relay.chat_requests)
        edit_row(sample, "ELEC-002", "Voltkit 20000 mAh Power Bank", "Voltkit 20000 mAh Travel Battery")
        fixed = run(run_cli, relay, sample, "--pack", "1")
    assert fixed.exit_code == 0, fixed.stderr
    assert len(relay.chat_requests) == sent + 2  # the changed product, in both locales
    assert not list(iter_jsonl(Path("out/failures.jsonl")))


def test_a_failure_of_the_relay_is_not_held(run_cli, sample: Path) -> None:
    """A job that failed because the relay did (5xx past every retry) says nothing about the job:
    the next run asks it again."""
    from fake_relay import Reply

    with FakeRelay() as relay:
        relay.enqueue(*[Reply(500, {"error": {"type": "server_error", "message": "boom"}})] * 1)
        first = run(run_cli, relay, sample, "--pack", "1", "--max-retries", "0", "--concurrency", "1")
        assert first.exit_code == 1, first.stderr
        (failure,) = list(iter_jsonl(Path("out/failures.jsonl")))
        assert "fingerprint" not in failure
        sent = len(relay.chat_requests)
        again = run(run_cli, relay, sample, "--pack", "1")
    assert again.exit_code == 0 and len(relay.chat_requests) == sent + 1


def _catalog_with_twins(sample: Path, path: Path, twins: int, *, later: int = 0) -> Path:
    """20 products of distinct copy (the sample's 13, and 7 renamed), then `twins` (and `later`)
    products repeating one of them under a new id and SKU."""
    import csv
    import io

    rows = list(csv.DictReader(sample.read_text(encoding="utf-8").splitlines()))
    distinct = rows + [
        {**row, "id": f"{row['id']}-B", "sku": f"{row['sku']}-B", "name": row["name"] + " Pro"} for row in rows[:7]
    ]
    copies = [
        {**distinct[n % len(distinct)], "id": f"TWIN-{n:02d}", "sku": f"TW-{n:02d}"} for n in range(twins + later)
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]))
    writer.writeheader()
    writer.writerows(distinct + copies)
    return write(path, out.getvalue())


def test_the_same_copy_is_paid_for_once_in_a_run_and_in_later_runs(run_cli, sample: Path, tmp_path: Path) -> None:
    with FakeRelay() as relay:
        catalog = _catalog_with_twins(sample, tmp_path / "twins.csv", 10)
        first = run_cli("run", catalog, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--pack", "1")
        assert first.exit_code == 0, first.stderr
        assert len(relay.chat_requests) == 20  # 30 products, 10 of them another's copy
        results = {r["id"]: r for r in iter_jsonl(Path("out/results.jsonl"))}
        assert len(results) == 30
        twin = results["TWIN-03"]
        source = results[twin["reused_from"]]
        assert twin["sku"] == "TW-03" and twin["cost_usd"] == 0 and twin["attempts"] == 0
        for name in ("title", "description", "bullets", "seo_tags"):
            assert twin[name] == source[name]
        report = json.loads(Path("out/cost_report.json").read_text())
        assert report["jobs"]["reused"] == 10 and report["jobs"]["succeeded"] == 30
        assert report["reused"]["saved_usd"] > 0 and "Reused: 10 listings" in first.stderr
        catalog = _catalog_with_twins(sample, tmp_path / "twins.csv", 10, later=5)
        later = run_cli("run", catalog, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--pack", "1")
        assert later.exit_code == 0, later.stderr
        assert len(relay.chat_requests) == 20  # 5 more copies cost nothing
        assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 35
        check = run_cli("run", catalog, "-l", "de-DE", "--out", "out", "--check")
    assert check.exit_code == 0, check.stdout
    assert run_cli("review", "out").exit_code == 0
    page = Path("out/review.html").read_text(encoding="utf-8")
    assert f"reused from {source['id']} (the same copy)" in page


def test_the_dry_run_prices_neither_copies_nor_held_failures(run_cli, sample: Path, tmp_path: Path) -> None:
    catalog = _catalog_with_twins(sample, tmp_path / "twins.csv", 10)
    estimate = run_cli("run", catalog, "-l", "de-DE", "--out", "out", "--pack", "1", "--dry-run", "--json")
    assert estimate.exit_code == 0, estimate.stderr
    report = json.loads(estimate.stdout)
    assert report["jobs"]["total"] == 30 and report["jobs"]["reused"] == 10 and report["requests"] == 20
    with FakeRelay(poison="Voltkit 20000 mAh Power Bank", poison_kind="invalid") as relay:
        run(run_cli, relay, sample, "--pack", "1")
    held = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--dry-run")
    assert held.exit_code == 0 and "Not sent, not priced: 2 failures held" in held.stderr


def test_report_all_counts_each_job_once_by_its_last_outcome(run_cli, sample: Path, relay) -> None:
    """A job sent in two runs (its product changed) is one job of `report --all`, not two;
    every job the runs sent is counted (26 of a 26-job catalog)."""
    assert run(run_cli, relay, sample).exit_code == 0
    write(sample, sample.read_text(encoding="utf-8").replace("Hybrid active noise cancelling", "Adaptive ANC"))
    assert run(run_cli, relay, sample).exit_code == 0  # ELEC-001's two jobs again
    everything = json.loads(run_cli("report", "out", "--all", "--json").stdout)
    assert everything["jobs"] == {"total": 26, "succeeded": 26, "failed": 0, "up_to_date": 0}
    assert len(everything["runs"]) == 2 and everything["cost_usd"] > 0


def test_a_twin_takes_its_leaders_listing_as_a_person_left_it_never_naming_the_leader(
    run_cli, sample: Path, tmp_path: Path
) -> None:
    """A person's correction is what a new twin takes (never a listing sent back); a leader's
    listing that names its own SKU is no twin's: the twin is asked itself."""
    import csv
    import io

    rows = list(csv.DictReader(sample.read_text(encoding="utf-8").splitlines()))
    first = rows[0]
    twin = {**first, "id": "TWIN-01", "sku": "TW-0001"}
    late = {**first, "id": "TWIN-02", "sku": "TW-0002"}

    def catalog(*extra: dict) -> Path:
        out = io.StringIO()
        writer = csv.DictWriter(out, list(first))
        writer.writeheader()
        writer.writerows([first, *extra])
        return write(tmp_path / "twins.csv", out.getvalue())

    with FakeRelay() as relay:
        args = ("-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--pack", "1")
        assert run_cli("run", catalog(), *args).exit_code == 0
        decisions = Path("out/reviews.jsonl")
        edit = {"time": "2026-12-02T10:00:00+00:00", "id": first["id"], "platform": "amazon", "locale": "de-DE"}
        decisions.write_text(
            json.dumps({**edit, "action": "edit", "fields": {"title": "Nordbeat ANC45 Kopfhörer"}}) + "\n"
        )
        assert run_cli("run", catalog(twin), *args).exit_code == 0
        lines = {line["id"]: line for line in iter_jsonl(Path("out/results.jsonl"))}
        assert lines["TWIN-01"]["title"] == "Nordbeat ANC45 Kopfhörer"  # the person's, not the model's
        assert lines["TWIN-01"]["origin"] == "model" and lines["TWIN-01"]["approved"] is False
        assert lines["TWIN-01"]["sku"] == "TW-0001"
        sent = len(relay.chat_requests)
        decisions.write_text(
            decisions.read_text()
            + json.dumps({**edit, "action": "edit", "fields": {"title": f"Nordbeat {first['sku']} Kopfhörer"}})
            + "\n"
        )
        assert run_cli("run", catalog(twin, late), *args).exit_code == 0
        lines = {line["id"]: line for line in iter_jsonl(Path("out/results.jsonl"))}
        assert first["sku"] not in lines["TWIN-02"]["title"]  # the leader's own SKU never on another product
        assert len(relay.chat_requests) == sent + 1 and "reused_from" not in lines["TWIN-02"]


def test_a_twin_in_the_same_run_is_asked_itself_when_its_leaders_listing_names_the_leader(
    run_cli, sample: Path, tmp_path: Path
) -> None:
    import csv
    import io

    from fake_relay import Answer, listing_for

    rows = list(csv.DictReader(sample.read_text(encoding="utf-8").splitlines()))
    first = rows[0]
    out = io.StringIO()
    writer = csv.DictWriter(out, list(first))
    writer.writeheader()
    writer.writerows([first, {**first, "id": "TWIN-01", "sku": "TW-0001"}])
    catalog = write(tmp_path / "twins.csv", out.getvalue())
    with FakeRelay() as relay:
        relay.enqueue(Answer(listing={**listing_for("de"), "title": f"Nordbeat Kopfhörer {first['sku']}"}))
        args = ("-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--pack", "1", "--concurrency", "1")
        args += ("--max-reasks", "0")
        result = run_cli("run", catalog, *args)
        sent = len(relay.chat_requests)
    assert result.exit_code == 0, result.stderr
    lines = {line["id"]: line for line in iter_jsonl(Path("out/results.jsonl"))}
    assert first["sku"] in lines[first["id"]]["title"]
    assert first["sku"] not in lines["TWIN-01"]["title"] and "reused_from" not in lines["TWIN-01"]
    assert sent == 2


@pytest.mark.parametrize(
    "outage",
    ["", "<html><body><h1>502 Bad Gateway</h1></body></html>", '{"title": "Kopfh'],
    ids=["empty", "proxy-html", "cut-off"],
)
def test_an_answer_that_is_not_json_is_the_relays_failure_never_held(run_cli, sample: Path, outage: str) -> None:
    """An outage of empty answers, a proxy's HTML page inside a 200, an answer cut off: the jobs
    fail, but a healthy re-run asks them again (only well-formed answers failing our checks are held)."""
    from fake_relay import Answer

    with FakeRelay() as relay:
        relay.enqueue(*[Answer(content=outage)] * 3)
        args = ("--pack", "1", "--concurrency", "1", "--max-reasks", "2")
        first = run(run_cli, relay, sample, *args)
        assert first.exit_code == 1, first.stderr
        (failure,) = list(iter_jsonl(Path("out/failures.jsonl")))
        assert "fingerprint" not in failure and "run" not in failure
        sent = len(relay.chat_requests)
        again = run(run_cli, relay, sample, "--pack", "1")
    assert again.exit_code == 0 and len(relay.chat_requests) == sent + 1


def test_the_dry_run_check_and_run_plan_every_job_alike(run_cli, sample: Path, tmp_path: Path) -> None:
    """One planning stage (plan.py): beside an earlier run's OUT, new copies of written listings,
    a held failure and new products are told apart the same way by the dry run (priced), --check
    (named) and the run (sent)."""
    poison = "Voltkit 20000 mAh Power Bank"
    with FakeRelay(poison=poison, poison_kind="invalid") as relay:
        catalog = _catalog_with_twins(sample, tmp_path / "twins.csv", 4)
        args = ("-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--pack", "1")
        assert run_cli("run", catalog, *args).exit_code == 1  # the poisoned product fails the checks
        catalog = _catalog_with_twins(sample, tmp_path / "twins.csv", 4, later=3)
        planned = json.loads(run_cli("run", catalog, *args, "--dry-run", "--json").stdout)
        check = run_cli("run", catalog, *args, "--check", "--json")
        before = len(relay.chat_requests)
        later = run_cli("run", catalog, *args, "--json")
    jobs = planned["jobs"]
    assert jobs["reused"] == 3 and jobs["held"] >= 1 and planned["requests"] == 0
    assert len(relay.chat_requests) == before  # the run sent what the dry run priced: nothing
    report = json.loads(later.stdout)["jobs"]
    assert report["reused"] == 3 and report["held"] == jobs["held"]
    stale = json.loads(check.stdout)["stale"]
    assert {entry["id"] for entry in stale} >= {f"TWIN-{n:02d}" for n in range(4, 7)}  # their outputs are missing

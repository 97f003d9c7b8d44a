"""--batch: the same jobs through the relay's batch API (files, batches, polling), against the
fake relay's OpenAI-shaped batch endpoints: answers shuffled, an error file, sampling
parameters refused, batches that expire; killed while waiting and resumed; --no-wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import write
from fake_relay import MISSING, Answer, FakeRelay, Reply

from localize.output.store import iter_jsonl

KEY = "sk-batch-test"


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", KEY)
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\nbatch_poll_s: 0.001\n")


def batch_run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out", "--batch", *args)


def report() -> dict:
    return json.loads(Path("out/cost_report.json").read_text())


def uploaded_lines(relay: FakeRelay, number: int = 1) -> list[dict]:
    file_id = list(relay.batches.values())[number - 1]["input_file_id"]
    return [json.loads(line) for line in relay.files[file_id].decode().splitlines()]


def test_a_whole_run_by_batch_is_billed_at_the_batch_price(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 0, result.stderr
    assert relay.uploads == 1 and relay.chat_requests == []  # one file, nothing live
    lines = uploaded_lines(relay)
    assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)
    assert all(len(line["custom_id"]) <= 64 for line in lines)
    assert len({line["custom_id"] for line in lines}) == len(lines) == report()["requests"]
    assert all("temperature" not in line["body"] and line["body"]["model"] == "kimi-k2" for line in lines)
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert "batch batch-1: completed" in result.stderr
    billed = relay.billed
    assert report()["tokens"] == {
        "input": billed["prompt_tokens"],
        "cached_input": billed["cached_tokens"],
        "output": billed["completion_tokens"],
    }
    at_batch_price = relay.bill_usd(("0.36", "0.09", "1.50"))
    assert Decimal(str(report()["cost_usd"])) == at_batch_price.quantize(Decimal("0.000001"))
    assert set(report()["by_mode"]) == {"batch"}
    assert not Path("out/batches.jsonl").exists()  # collected: nothing pending


def test_invalid_answers_are_re_asked_live(run_cli, sample: Path) -> None:
    with FakeRelay(batch_errors=1) as relay:
        relay.enqueue(Answer(content="{not json"))  # the batch's first answered line is broken
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 2  # the re-ask of the broken answer, and the failed line: live
    assert "1 requests the batch did not answer were sent live." in result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    modes = report()["by_mode"]
    assert modes["live"]["requests"] == 2 and modes["batch"]["requests"] == len(uploaded_lines(relay)) - 1
    assert report()["tokens"]["input"] == relay.billed["prompt_tokens"]


def test_an_expired_batch_resubmits_only_the_lines_without_an_answer(run_cli, sample: Path) -> None:
    with FakeRelay(batch_fate="expired") as relay:
        result = batch_run(run_cli, relay, sample)
        first, second = uploaded_lines(relay, 1), uploaded_lines(relay, 2)
        relay.batch_fate = "completed"
    assert result.exit_code == 0, result.stderr
    answered = {line["custom_id"] for line in first[: len(first) // 2]}
    assert {line["custom_id"] for line in second} == {line["custom_id"] for line in first} - answered
    assert "ended expired" in result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_batch_cancelled_every_time_is_submitted_again_then_finished_live(run_cli, sample: Path) -> None:
    """Someone cancels the batch in the relay's console, again and again: the lines go out in a
    new batch (three times at most), then live, and every job still ends with a result."""
    with FakeRelay(batch_fate="cancelled") as relay:
        result = batch_run(run_cli, relay, sample)
        uploads, live = relay.uploads, len(relay.chat_requests)
    assert result.exit_code == 0, result.stderr
    assert uploads == 4  # the first batch and three resubmissions, each of every line
    assert "ended cancelled" in result.stderr and result.stderr.count("sent again in a new batch") == 3
    assert result.stderr.count("requests unanswered: sent live (the batch was tried enough)") == 1  # the 4th
    assert live == len(uploaded_lines(relay, 4))  # then each line once, live
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert "by_mode" not in report()  # every answer live: a cancelled batch bills nothing
    assert report()["tokens"]["input"] == relay.billed["prompt_tokens"]


def test_a_failed_batch_is_not_submitted_again_and_its_lines_go_live(run_cli, sample: Path) -> None:
    """A batch the relay failed (a file it would not validate, say) fails the same way again:
    its lines go live at once, said in the summary."""
    with FakeRelay(batch_fate="failed") as relay:
        result = batch_run(run_cli, relay, sample)
        uploads, live = relay.uploads, len(relay.chat_requests)
    assert result.exit_code == 0, result.stderr
    assert uploads == 1 and live == len(uploaded_lines(relay))
    assert "batch batch-1: failed" in result.stderr
    assert f"{live} requests the batch did not answer were sent live." in result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_no_wait_submits_and_the_same_command_collects(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        submitted = batch_run(run_cli, relay, sample, "--no-wait")
        assert submitted.exit_code == 0, submitted.stderr
        assert "Batch batch-1 submitted" in submitted.stderr and "without --no-wait" in submitted.stderr
        pending = list(iter_jsonl(Path("out/batches.jsonl")))
        assert [record["batch"] for record in pending] == ["batch-1"]
        assert list(iter_jsonl(Path("out/results.jsonl"))) == []
        collected = batch_run(run_cli, relay, sample)
    assert collected.exit_code == 0, collected.stderr
    assert relay.uploads == 1  # collected, not uploaded again
    assert "collected where an earlier run left it" in collected.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_batch_made_but_never_recorded_is_found_by_its_file_not_made_again(run_cli, sample: Path) -> None:
    """A run that made the batch and then could not record it (a disk that filled at that
    moment) leaves only the uploaded file in OUT: the next run finds the batch by that file."""
    with FakeRelay() as relay:
        assert batch_run(run_cli, relay, sample, "--no-wait").exit_code == 0
        (record,) = list(iter_jsonl(Path("out/batches.jsonl")))
        write(Path("out/batches.jsonl"), json.dumps({**record, "batch": None}) + "\n")  # as that run left it
        collected = batch_run(run_cli, relay, sample)
        uploads, batches = relay.uploads, len(relay.batches)
    assert collected.exit_code == 0, collected.stderr
    assert uploads == 1 and batches == 1  # not uploaded, not made again
    assert f"Batch {record['batch']}: collected where an earlier run left it" in collected.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_file_recorded_whose_batch_was_never_made_gets_its_batch(run_cli, sample: Path) -> None:
    """The relay stalls on making the batch until the run gives up (exit 4, the file recorded):
    the next run finds no batch of that file at the relay, and makes one."""
    with FakeRelay(batch_stalls={"create": 100}) as relay:
        gave_up = batch_run(run_cli, relay, sample)
        assert gave_up.exit_code == 4, gave_up.stderr
        (record,) = list(iter_jsonl(Path("out/batches.jsonl")))
        assert record["batch"] is None and record["file"]
        relay.batch_stalls["create"] = 0
        again = batch_run(run_cli, relay, sample)
        batches = len(relay.batches)
    assert again.exit_code == 0, again.stderr
    assert batches == 1
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert not Path("out/batches.jsonl").exists()


def test_a_run_killed_while_it_waits_resumes_the_same_batch(sample: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HOLYSHEEP_API_KEY": KEY}
    with FakeRelay(batch_steps=10**9) as relay:  # never finishes while the first run waits
        command = [sys.executable, "-m", "localize", "run", str(sample), "-l", "de-DE,ja-JP"]
        command += ["--base-url", relay.base_url, "--out", "out", "--batch", "--no-progress"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not (relay.batches and list(relay.batches.values())[0]["_polls"] > 3):
            assert time.monotonic() < deadline and process.poll() is None, "the run never waited on its batch"
            time.sleep(0.02)  # polling a condition, not a timing
        process.kill()
        process.wait()
        relay.batch_steps = 0
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert relay.uploads == 1 and len(relay.batches) == 1
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_relay_without_the_batch_api_says_so_before_anything_is_made(run_cli, sample: Path) -> None:
    with FakeRelay(batch=False) as relay:
        refused = batch_run(run_cli, relay, sample)
        assert refused.exit_code == 4
        assert "has no batch API" in refused.stderr and len(refused.stderr.strip().splitlines()) <= 2
        assert not Path("out/results.jsonl").exists() and relay.chat_requests == []
        fallback = run_cli("run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--batch-auto")
    assert fallback.exit_code == 0, fallback.stderr
    assert "sending live instead" in fallback.stderr and len(relay.chat_requests) > 0


def test_a_model_without_a_batch_price_is_refused_by_name(run_cli, sample: Path) -> None:
    """Before anything is uploaded, naming the models that do batch (KIMI.md §7: kimi-k2.6 does,
    the retired previews do not)."""
    with FakeRelay() as relay:
        result = batch_run(run_cli, relay, sample, "--model", "kimi-k2-0905-preview")
    assert result.exit_code == 4 and "model kimi-k2-0905-preview has no batch price" in result.stderr
    assert "the models with one: kimi-k2, kimi-k2.6;" in result.stderr
    assert relay.uploads == 0


def test_the_dry_run_shows_live_and_batch_side_by_side(run_cli, sample: Path) -> None:
    estimated = json.loads(run_cli("estimate", sample, "-l", "de-DE", "--json").stdout)
    batch = estimated["batch"]
    assert batch["available"] is True and batch["completion_window"] == "24h"
    assert batch["cost_usd"] == pytest.approx(estimated["cost_usd"] * 0.6, rel=0.01)
    text = run_cli("estimate", sample, "-l", "de-DE").stderr
    assert "By batch (--batch):" in text and "40% less than live" in text and "within 24h" in text


def test_lines_past_the_file_limit_go_in_more_files(run_cli, sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import localize.sending.batch

    monkeypatch.setattr(localize.sending.batch, "MAX_FILE_BYTES", 20_000)  # Moonshot's is 100 MB
    with FakeRelay() as relay:
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 0, result.stderr
    sizes = [len(relay.files[batch["input_file_id"]]) for batch in relay.batches.values()]
    assert len(sizes) >= 2 and all(size <= 20_000 for size in sizes)
    assert sum(len(uploaded_lines(relay, n + 1)) for n in range(len(sizes))) == report()["requests"]
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_run_of_several_chunks_sums_what_went_live_in_one_note(
    run_cli, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run goes out in chunks of MAX_LINES requests; the summary counts all of them once."""
    import localize.sending.batch

    monkeypatch.setattr(localize.sending.batch, "MAX_LINES", 5)  # 20,000 in a real run
    with FakeRelay(batch_errors=1) as relay:  # each batch fails its first line
        result = batch_run(run_cli, relay, sample, "--pack", "1")
        batches = len(relay.batches)
    assert result.exit_code == 0, result.stderr
    assert batches >= 3
    went_live = [line for line in result.stderr.splitlines() if "the batch did not answer" in line]
    assert went_live == [f"{batches} requests the batch did not answer were sent live."]
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_re_asks_can_go_in_a_follow_up_batch(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\nbatch_poll_s: 0.001\nbatch_reasks: batch\n")
    with FakeRelay() as relay:
        relay.enqueue(Answer(content="{not json"), Answer(content='{"title": "x"}'))
        result = batch_run(run_cli, relay, sample)
        second = uploaded_lines(relay, 2)
    assert result.exit_code == 0, result.stderr
    assert relay.chat_requests == [] and len(relay.batches) == 2  # nothing live: the re-asks were batched
    assert len(second) == 2 and all(line["body"]["messages"][-1]["role"] == "user" for line in second)
    assert "2 re-asks of invalid answers were sent in follow-up batches." in result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert report()["tokens"]["output"] == relay.billed["completion_tokens"]


def test_a_relay_that_will_not_batch_the_model_is_named_without_echoing_the_key(run_cli, sample: Path) -> None:
    with FakeRelay(batch_models=("kimi-k2-thinking",)) as relay:
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 4
    assert "the relay refused the batch for model kimi-k2: model kimi-k2 does not support batch" in result.stderr
    assert KEY not in result.stdout + result.stderr and "[redacted]" in result.stderr
    assert relay.chat_requests == []  # nothing sent live behind the user's back


def test_a_relay_that_stalls_on_the_batch_api_is_waited_out(run_cli, sample: Path) -> None:
    stalls = {"probe": 1, "upload": 2, "create": 1, "poll": 3, "download": 1}
    with FakeRelay(batch_stalls=stalls) as relay:
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 0, result.stderr
    assert relay.uploads == 1 and len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_relay_gone_while_a_batch_runs_ends_in_one_line_and_the_batch_is_kept(run_cli, sample: Path) -> None:
    with FakeRelay(batch_steps=10**9) as relay:
        submitted = batch_run(run_cli, relay, sample, "--no-wait")
        assert submitted.exit_code == 0, submitted.stderr
        relay.batch_stalls = {"poll": 10**9}  # from now on reading the batch answers 503
        gone = batch_run(run_cli, relay, sample)
    assert gone.exit_code == 4 and "Traceback" not in gone.stderr
    assert "run the same command again to collect it" in gone.stderr
    assert [record["batch"] for record in iter_jsonl(Path("out/batches.jsonl"))] == ["batch-1"]


def test_max_cost_below_the_file_submits_what_fits_at_the_batch_price_and_sends_nothing_live(
    run_cli, sample: Path
) -> None:
    """The cap holds some lines at the batch price: those go in the batch, the rest fail as
    over budget (exit 3); nothing goes live at the live price behind the user's back."""
    with FakeRelay() as relay:
        result = batch_run(run_cli, relay, sample, "--max-cost", "0.01")
        asked = relay.batch_jobs()
    assert result.exit_code == 3, result.stderr
    assert relay.uploads == 1 and relay.chat_requests == []
    results = list(iter_jsonl(Path("out/results.jsonl")))
    failures = list(iter_jsonl(Path("out/failures.jsonl")))
    assert 0 < len(results) == asked < 26 and len(results) + len(failures) == 26
    assert {row["error"] for row in failures} == {"budget"}
    assert "did not fit the --max-cost cap at the batch price" in result.stderr and "not sent" in result.stderr
    assert report()["cost_usd"] <= 0.01


def test_max_cost_with_batch_auto_sends_what_did_not_fit_live_and_says_so(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = run_cli(
            "run",
            sample,
            "-l",
            "de-DE,ja-JP",
            "--base-url",
            relay.base_url,
            "--out",
            "out",
            "--batch-auto",
            "--max-cost",
            "0.02",
        )
    assert "sent live instead (--batch-auto)" in result.stderr, result.stderr
    assert relay.uploads == 1 and relay.chat_requests  # the rest went to the live sender
    assert report()["cost_usd"] <= 0.02


def test_no_wait_without_batch_is_a_one_line_error(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = run_cli("run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--no-wait")
    assert result.exit_code == 2 and "add --batch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and relay.paths == []


def test_a_batch_answer_without_usage_is_kept_and_reported_apart(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        relay.enqueue(Answer(usage=MISSING))  # the batch's first answered line comes without usage
        result = batch_run(run_cli, relay, sample, "--pack", "1")
    assert result.exit_code == 0, result.stderr
    assert relay.chat_requests == []  # kept, not re-sent for it
    flagged = [r for r in iter_jsonl(Path("out/results.jsonl")) if "usage_unreported" in r["warnings"]]
    assert len(flagged) == 1 and report()["unreported"]["requests"] == 1


@pytest.mark.parametrize(
    "counts",
    [None, [1, 2], {"total": "lots", "completed": -3, "failed": True}, {"total": 1e9, "completed": None}],
    ids=["missing", "a_list", "garbled", "floats_and_nulls"],
)
def test_batch_counts_a_relay_garbles_read_as_zero_not_a_crash(counts: object) -> None:
    from localize.sending.batch import BatchProgress, progress_of

    batch = {"id": "batch-9", "status": "in_progress", "request_counts": counts}
    assert progress_of(batch) == BatchProgress("batch-9", "in_progress", 0, 0, 0)
    assert progress_of({"id": "b", "status": "completed", "request_counts": {"total": 4, "completed": 3}}) == (
        BatchProgress("b", "completed", 4, 3, 0)
    )


def test_the_nightly_no_wait_recipe_with_an_edit_each_night_bills_each_job_once_plus_the_edits(
    run_cli, sample: Path
) -> None:
    """The README's nightly job: `--batch --no-wait` every night, one product edited each day.
    Each night collects what the last one submitted, whatever changed since, and submits only
    the edited product's jobs."""
    rows = sample.read_text(encoding="utf-8").splitlines()
    with FakeRelay() as relay:
        for night in range(4):
            if night:
                relay.complete_batches()  # the relay worked through the day
                product = rows[night].split(",", 1)
                rows[night] = product[0] + f",Night {night} edition " + product[1]  # one edit a day
                write(sample, "\n".join(rows) + "\n")
            result = batch_run(run_cli, relay, sample, "--no-wait")
            assert result.exit_code == 0, result.stderr
            assert f"Batch batch-{night + 1} submitted" in result.stderr
        relay.complete_batches()
        final = batch_run(run_cli, relay, sample)
        asked, uploads = relay.batch_jobs(), relay.uploads
    assert final.exit_code == 0, final.stderr
    assert uploads == 4 and asked == 26 + 3 * 2  # every job once, and each edited product's two again
    results = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    assert len(results) == 26
    assert not Path("out/batches.jsonl").exists()
    history = run_cli("report", "out", "--all", "--json")
    assert history.exit_code == 0, history.stderr
    billed = relay.billed  # every answer the relay billed is in the audit log, the unused ones too
    assert json.loads(history.stdout)["tokens"] == {
        "input": billed["prompt_tokens"],
        "cached_input": billed["cached_tokens"],
        "output": billed["completion_tokens"],
    }


def test_a_batch_is_forgotten_only_after_every_answer_it_gave_is_committed(sample: Path, tmp_path: Path) -> None:
    """A run stopped (kill -9) while it still settles a batch's answers keeps the batch on
    record: the next run uses the answers it had not saved instead of paying for them again."""
    env = {**os.environ, "HOLYSHEEP_API_KEY": KEY}
    with FakeRelay(hang_s=120) as relay:
        relay.enqueue(Answer(content="{not json"), *[Answer()] * 25)  # one of the 26 lines is re-asked live...
        relay.enqueue(*["hang"] * 3)  # ...and that re-ask never comes back while the run lives
        command = [sys.executable, "-m", "localize", "run", str(sample), "-l", "de-DE,ja-JP", "--pack", "1"]
        command += ["--base-url", relay.base_url, "--out", "out", "--batch", "--no-progress", "--timeout", "300"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not relay.chat_requests:
            assert time.monotonic() < deadline and process.poll() is None, "the re-ask never went out"
            time.sleep(0.02)  # polling a condition, not a timing
        assert [record["batch"] for record in iter_jsonl(Path("out/batches.jsonl"))] == ["batch-1"]
        process.kill()
        process.wait()
        relay.forget_queue()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        uploads = relay.uploads
    assert done.returncode == 0, done.stderr
    assert "collected where an earlier run left it" in done.stderr
    assert uploads == 2 and len(uploaded_lines(relay, 2)) == 1  # only the job whose answer was never valid
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert not Path("out/batches.jsonl").exists()


def test_an_answer_repeated_under_another_line_s_id_lands_on_no_product(run_cli, sample: Path) -> None:
    with FakeRelay(batch_output="repeat") as relay:
        result = batch_run(run_cli, relay, sample, "--pack", "1")
        live, resubmitted = len(relay.chat_requests), len(uploaded_lines(relay, 2))
    assert result.exit_code == 0, result.stderr
    assert "answered 1 requests more than once" in result.stderr and "none of those answers is used" in result.stderr
    assert live == 1 and resubmitted == 1  # the repeated line (live) and the one whose answer it took (batch)
    assert report()["unconfirmed"]["requests"] == 2  # both answers were billed, neither is used
    for row in iter_jsonl(Path("out/results.jsonl")):
        assert row["locale"][:2] in ("de", "ja")


@pytest.mark.parametrize("fault", ["drop", "garble"])
def test_answers_missing_from_a_completed_batch_are_counted_as_possibly_billed(
    run_cli, sample: Path, fault: str
) -> None:
    with FakeRelay(batch_output=fault) as relay:
        result = batch_run(run_cli, relay, sample, "--pack", "1")
        missing = 2 if fault == "drop" else 1
        resubmitted = len(uploaded_lines(relay, 2))
    assert result.exit_code == 0, result.stderr
    assert resubmitted == missing
    assert report()["unconfirmed"]["requests"] == missing
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_batch_stuck_past_its_window_is_cancelled_and_asked_again(run_cli, sample: Path) -> None:
    with FakeRelay(batch_steps=10**9, batch_age_s=26 * 3600) as relay:
        first = batch_run(run_cli, relay, sample, "--no-wait")
        assert first.exit_code == 0
        relay.batch_age_s = 0
        overdue = batch_run(run_cli, relay, sample, "--no-wait")
        statuses = [batch["status"] for batch in relay.batches.values()]
    assert overdue.exit_code == 1, overdue.stderr  # said, and not a quiet success
    assert "Batch batch-1 is 26h old, past its 24h completion window: cancelled" in overdue.stderr
    assert statuses == ["cancelled", "in_progress"] and "Batch batch-2 submitted" in overdue.stderr


def test_no_wait_names_each_pending_batch_with_its_age(run_cli, sample: Path) -> None:
    with FakeRelay(batch_steps=10**9, batch_age_s=5 * 3600) as relay:
        batch_run(run_cli, relay, sample, "--no-wait")
        again = batch_run(run_cli, relay, sample, "--no-wait")
        uploads = relay.uploads
    assert again.exit_code == 0 and uploads == 1
    assert "Batch batch-1 submitted 5 h ago: 3 requests, in_progress (completion window 24 h)." in again.stderr
    assert report()["jobs"]["in_batch"] == 26  # every job is asked by the running batch: none again


def test_a_batch_list_that_never_ends_stops_the_run_instead_of_making_a_second_batch(
    run_cli, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import localize.sending.batch

    monkeypatch.setattr(localize.sending.batch, "FIND_PAGES", 20)  # (the test's own bound: pages cost a request each)
    with FakeRelay(endless_list=True) as relay:
        assert batch_run(run_cli, relay, sample, "--no-wait").exit_code == 0
        (record,) = list(iter_jsonl(Path("out/batches.jsonl")))
        write(Path("out/batches.jsonl"), json.dumps({**record, "batch": None}) + "\n")  # made, never recorded
        stopped = batch_run(run_cli, relay, sample)
        batches = len(relay.batches)
    assert stopped.exit_code == 4 and "did not end after 2,000 batches" in stopped.stderr
    assert batches == 1 and "Traceback" not in stopped.stderr


def test_an_output_file_larger_than_its_lines_can_need_is_not_read(
    run_cli, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import localize.sending.batch

    monkeypatch.setattr(localize.sending.batch, "OUTPUT_BYTES_MIN", 1_000_000)  # 16 MB in a real run
    monkeypatch.setattr(localize.sending.batch, "OUTPUT_BYTES_PER_LINE", 10_000)
    with FakeRelay(batch_output="huge") as relay:
        result = batch_run(run_cli, relay, sample)
        relay.batch_output = None
    assert result.exit_code == 0, result.stderr
    assert "output file is over 1,000,000 bytes" in result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26


def test_a_damaged_batch_record_is_one_line_naming_it(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        Path("out").mkdir()
        write(Path("out/batches.jsonl"), '<<<<<<< HEAD\n{"batch": "batch-1"}\n=======\n>>>>>>> main\n')
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 2
    assert "out/batches.jsonl:1" in result.stderr and "conflict" in result.stderr and "Traceback" not in result.stderr


def test_a_key_the_batch_api_refuses_is_named_as_the_live_client_names_it(run_cli, sample: Path) -> None:
    """The same kind ("auth") and words as a live request's 401, never the key itself."""
    with FakeRelay() as relay:
        relay.batch_refuses_key = True
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 4
    assert "the relay rejected the API key (HTTP 401)" in result.stderr and "HOLYSHEEP_API_KEY" in result.stderr
    assert KEY not in result.stderr


def test_the_batch_client_waits_as_the_relay_asks_and_backs_off_with_jitter_otherwise() -> None:
    """One back-off for both HTTP seams (relay.retry_wait_s): a 429 with Retry-After waits what
    it says, a 503 waits a jittered share of a doubling ceiling; waits are recorded, not slept."""
    import asyncio

    from localize.config import Settings
    from localize.sending.batch import BatchClient

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def upload_twice(relay: FakeRelay) -> None:
        settings = Settings(base_url=relay.base_url, api_key="sk-batch-test", batch_poll_s=2.0)
        client = BatchClient(settings, sleep=record)
        try:
            relay.batch_stall_retry_after = "7"
            relay.batch_stalls["upload"] = 2
            assert await client.upload(b'{"custom_id": "x"}\n')
            relay.batch_stall_retry_after = None
            relay.batch_stalls["upload"] = 3
            assert await client.upload(b'{"custom_id": "y"}\n')
        finally:
            await client.aclose()

    with FakeRelay(batch_stalls={}) as relay:
        asyncio.run(upload_twice(relay))
    assert waits[:2] == [7.0, 7.0]  # as asked, twice
    jittered = waits[2:]
    assert len(jittered) == 3 and all(0 <= wait <= 2.0 * 2**n for n, wait in enumerate(jittered))
    assert len(set(jittered)) == 3  # spread apart, not one fixed step


def test_a_plain_run_beside_a_pending_batch_leaves_its_jobs_to_it_then_collects_them(run_cli, sample: Path) -> None:
    """`--batch --no-wait`, then a plain run: the batch's jobs are not paid again live (said),
    and once the batch has finished a plain run collects its answers instead of sending."""
    with FakeRelay(batch_steps=50) as relay:
        assert batch_run(run_cli, relay, sample, "--no-wait").exit_code == 0
        plain = run_cli("run", sample, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out")
        assert plain.exit_code == 0, plain.stderr
        assert relay.chat_requests == []  # nothing the batch asks is bought again
        assert "Left to a running batch: 26 jobs a batch already asks (batch-1, " in plain.stderr
        assert "0 of 26 jobs succeeded, 0 failed, 26 left to a running batch" in plain.stderr
        assert list(iter_jsonl(Path("out/batches.jsonl")))  # still recorded
        relay.complete_batches()
        collected = run_cli("run", sample, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out")
        live = len(relay.chat_requests)
    assert collected.exit_code == 0, collected.stderr
    assert "collected where an earlier run left it" in collected.stderr
    assert live == 0 and relay.uploads == 1
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert not Path("out/batches.jsonl").exists() or list(iter_jsonl(Path("out/batches.jsonl"))) == []


@pytest.mark.parametrize("mode", ["--batch", "--batch-auto"])
def test_a_recorded_batch_the_relay_no_longer_knows_is_forgotten_and_its_jobs_asked_again(
    run_cli, sample: Path, mode: str
) -> None:
    """404 on a recorded batch while the relay's batch list answers: the batch is gone, not the
    batch API. Its lines count as possibly billed, it is forgotten, and its jobs are asked again."""
    with FakeRelay(batch_steps=50) as relay:
        assert batch_run(run_cli, relay, sample, "--no-wait").exit_code == 0
        (record,) = list(iter_jsonl(Path("out/batches.jsonl")))
        relay.batches.clear()  # the relay forgot it
        relay.batch_steps = 2  # (the new batch finishes at once)
        args = ("run", sample, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out", mode)
        result = run_cli(*args)
        assert result.exit_code == 0, result.stderr
        again = run_cli(*args)
    assert "no batch API" not in result.stderr
    assert f"Batch {record['batch']} is gone from the relay (404)" in result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    assert not Path("out/batches.jsonl").exists() or not list(iter_jsonl(Path("out/batches.jsonl")))
    gone = [r for r in iter_jsonl(Path("out/requests.jsonl")) if r.get("error") == "batch_gone"]
    assert len(gone) == 26 and all(r["maybe_billed"] for r in gone)
    assert again.exit_code == 0 and "gone from the relay" not in again.stderr


def test_no_wait_under_a_cap_says_what_it_left_out_and_exits_3(run_cli, sample: Path) -> None:
    with FakeRelay() as relay:
        result = batch_run(run_cli, relay, sample, "--no-wait", "--max-cost", "0.01")
    assert result.exit_code == 3, result.stderr
    assert "did not fit the --max-cost cap at the batch price" in result.stderr and "not submitted" in result.stderr
    assert "Batch batch-1 submitted" in result.stderr


def test_a_batch_made_but_not_recorded_is_found_behind_thousands_of_newer_ones(run_cli, sample: Path) -> None:
    """2,500 batches of other work made since: the list is paged past them to the run's own."""
    with FakeRelay() as relay:
        assert batch_run(run_cli, relay, sample, "--no-wait").exit_code == 0
        (record,) = list(iter_jsonl(Path("out/batches.jsonl")))
        write(Path("out/batches.jsonl"), json.dumps({**record, "batch": None}) + "\n")  # made, never recorded
        relay.newer_batches = 2500
        collected = batch_run(run_cli, relay, sample)
        batches, uploads = len(relay.batches), relay.uploads
    assert collected.exit_code == 0, collected.stderr
    assert batches == 1 and uploads == 1  # found, not made again
    assert f"Batch {record['batch']}: collected where an earlier run left it" in collected.stderr


def test_rotated_custom_ids_with_one_job_a_line_land_on_no_product(run_cli, sample: Path) -> None:
    """A relay that files every answer under the next line's custom_id, one job a line: each
    line goes as a pack of one, so its answer names the product it was written for (the key and
    the id echo); none is taken under another product, and each is asked again."""
    with FakeRelay(batch_output="rotate") as relay:
        result = batch_run(run_cli, relay, sample, "--pack", "1")
    assert result.exit_code == 0, result.stderr
    records = list(iter_jsonl(Path("out/requests.jsonl")))
    refused = [r for r in records if r.get("batch") and r.get("error")]
    assert len(refused) == 26  # every rotated answer refused: none landed on the wrong product
    assert {r["error"] for r in refused} <= {"schema", "wrong_language"}  # another id's key; another locale
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26
    lines = uploaded_lines(relay)
    assert all('"listings"' in line["body"]["messages"][0]["content"] for line in lines)  # the packed form


def test_an_empty_account_stops_the_batch_at_once_as_it_stops_a_live_run(run_cli, sample: Path) -> None:
    """The batch client takes the live sender's verdict: a quota 429 is not retried five times and
    reported as an unreachable relay; it says to top up the account, after one try."""
    quota = {"type": "exceeded_current_quota_error", "message": "Your account is suspended, please check your plan"}
    with FakeRelay(batch_stalls={"upload": 10}) as relay:
        relay.batch_stall_reply = Reply(429, {"error": quota})
        result = batch_run(run_cli, relay, sample)
        uploads = [path for path in relay.paths if path.startswith("/v1/files")]
    assert result.exit_code == 4 and "top up the account" in result.stderr
    assert "did not answer" not in result.stderr and len(uploads) == 1
    assert relay.chat_requests == []


def test_a_batch_retry_after_past_the_cap_ends_the_run_as_live_does(run_cli, sample: Path) -> None:
    """A Retry-After of 1152 s would hold a batch run for over an hour: the live cap applies."""
    limited = {"type": "rate_limit_reached_error", "message": "too many requests"}
    with FakeRelay(batch_stalls={"create": 1}) as relay:
        relay.batch_stall_reply = Reply(429, {"error": limited}, {"Retry-After": "1152"})
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 4 and "the relay asks to wait 1152 s" in result.stderr
    assert "run again later" in result.stderr


def test_a_408_from_the_batch_api_is_tried_again(run_cli, sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path("localize.yaml"), "batch_poll_s: 0.01\n")
    with FakeRelay(batch_stalls={"create": 2, "poll": 1}) as relay:
        relay.batch_stall_reply = Reply(408, {"error": {"message": "request timeout"}})
        result = batch_run(run_cli, relay, sample)
    assert result.exit_code == 0, result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 26

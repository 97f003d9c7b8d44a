"""`localize deliver` and `run --webhook`: OUT's listings reach a receiver on loopback as signed
Standard Webhooks, each version once per destination, on the receiver's bad days too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay
from webhook_receiver import DROP, SECRET, Receiver, Reply

from localize.output.store import iter_jsonl


@pytest.fixture(autouse=True)
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-deliver-test")
    monkeypatch.setenv("LOCALIZE_WEBHOOK_SECRET", SECRET)
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


@pytest.fixture
def out(run_cli, sample: Path, relay: FakeRelay) -> Path:
    result = run_cli("run", sample, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out")
    assert result.exit_code == 0, result.stderr
    return Path("out")


def test_every_listing_reaches_the_receiver_signed_and_a_second_delivery_sends_nothing(run_cli, out: Path) -> None:
    with Receiver() as receiver:
        first = run_cli("deliver", out, "--webhook", receiver.url)
        assert first.exit_code == 0, first.stderr
        listings = receiver.listings()
        assert receiver.bad_signatures == 0 and len(listings) == 26
        results = {(r["id"], r["platform"], r["locale"]): r for r in iter_jsonl(out / "results.jsonl")}
        one = next(item for item in listings if (item["id"], item["locale"]) == ("ELEC-001", "de-DE"))
        assert one["title"] == results[("ELEC-001", "amazon", "de-DE")]["title"] and one["version"]
        assert {"id", "sku", "platform", "locale", "version", "approved", "origin", "outdated"} <= set(one)
        assert "Delivered 26 listings and 0 store strings in 1 message to http://127.0.0.1:" in first.stderr
        again = run_cli("deliver", out, "--webhook", receiver.url)
        posts = len(receiver.posts)
    assert again.exit_code == 0 and "Delivered 0 listings" in again.stderr and posts == 1  # nothing changed
    said = first.stderr + again.stderr + "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert "s3cret-query-token" not in said and SECRET not in said and SECRET[6:] not in said


def test_an_edit_after_a_delivery_sends_only_that_listing(run_cli, out: Path) -> None:
    with Receiver() as receiver:
        assert run_cli("deliver", out, "--webhook", receiver.url).exit_code == 0
        line = {"time": "2026-12-06T10:00:00+00:00", "id": "ELEC-001", "platform": "amazon", "locale": "de-DE"}
        write(
            out / "reviews.jsonl", json.dumps({**line, "action": "edit", "fields": {"title": "Nordbeat ANC45"}}) + "\n"
        )
        again = run_cli("deliver", out, "--webhook", receiver.url)
        last = list(receiver.accepted.values())[-1]["data"]["listings"]
    assert again.exit_code == 0, again.stderr
    assert [(item["id"], item["locale"], item["title"], item["origin"]) for item in last] == [
        ("ELEC-001", "de-DE", "Nordbeat ANC45", "human")
    ]


def test_the_receivers_bad_days_are_retried_under_the_same_id(run_cli, out: Path) -> None:
    with Receiver() as receiver:
        receiver.enqueue(Reply(503), DROP, Reply(429, {"Retry-After": "0"}))
        result = run_cli("deliver", out, "--webhook", receiver.url)
        ids = [message_id for message_id, _ in receiver.posts]
    assert result.exit_code == 0, result.stderr
    assert len(ids) == 4 and len(set(ids)) == 1  # one message, tried four times under one id
    assert len(receiver.listings()) == 26


def test_a_receiver_that_keeps_failing_leaves_the_rest_for_the_next_delivery(run_cli, out: Path) -> None:
    with Receiver() as receiver:
        receiver.enqueue(*[Reply(503)] * 6)
        failed = run_cli("deliver", out, "--webhook", receiver.url)
        assert failed.exit_code == 1 and "26 left undelivered" in failed.stderr
        assert not receiver.accepted
        resumed = run_cli("deliver", out, "--webhook", receiver.url)
    assert resumed.exit_code == 0 and len(receiver.listings()) == 26


def test_410_stops_delivering_to_that_destination_and_other_4xx_are_not_retried(run_cli, out: Path) -> None:
    with Receiver() as receiver:
        receiver.enqueue(Reply(410))
        gone = run_cli("deliver", out, "--webhook", receiver.url)
        assert gone.exit_code == 1 and "410 Gone" in gone.stderr and len(receiver.posts) == 1
        receiver.enqueue(Reply(422, body=b'{"error": "unknown sku"}'))
        refused = run_cli("deliver", out, "--webhook", receiver.url)
        assert refused.exit_code == 1 and "HTTP 422" in refused.stderr and len(receiver.posts) == 2


def test_approved_only_delivers_what_a_person_approved_and_a_second_destination_gets_its_own(
    run_cli, out: Path
) -> None:
    assert run_cli("approve", out, "--id", "ELEC-001").exit_code == 0
    with Receiver() as first, Receiver() as second:
        assert run_cli("deliver", out, "--webhook", first.url, "--approved-only").exit_code == 0
        assert {(item["id"], item["approved"]) for item in first.listings()} == {("ELEC-001", True)}
        assert run_cli("deliver", out, "--webhook", second.url).exit_code == 0
        assert len(second.listings()) == 26
        assert run_cli("deliver", out, "--webhook", first.url).exit_code == 0
        assert len(first.listings()) == 26  # the 24 it had not had


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        ({"LOCALIZE_WEBHOOK_SECRET": ""}, (), "no webhook secret"),
        ({"LOCALIZE_WEBHOOK_SECRET": "hunter2"}, (), "not a Standard Webhooks secret"),
        ({}, ("--webhook", "http://pim.example.com/hooks"), "plain http to another machine"),
        ({}, ("--webhook", "ftp://pim.example.com/hooks"), "must be http(s)"),
    ],
    ids=["no-secret", "bad-secret", "plain-http", "scheme"],
)
def test_bad_settings_stop_before_anything_is_sent(
    run_cli, out: Path, monkeypatch: pytest.MonkeyPatch, env: dict, args: tuple, said: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with Receiver() as receiver:
        result = run_cli("deliver", out, *(args or ("--webhook", receiver.url)))
        posts = len(receiver.posts)
    assert result.exit_code == 2 and said in result.stderr and posts == 0 and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def test_the_dry_run_counts_what_would_go_and_sends_nothing(run_cli, out: Path, monkeypatch) -> None:
    monkeypatch.delenv("LOCALIZE_WEBHOOK_SECRET")
    with Receiver() as receiver:
        result = run_cli("deliver", out, "--webhook", receiver.url, "--dry-run", "--json")
        posts = len(receiver.posts)
    assert result.exit_code == 0 and posts == 0
    assert json.loads(result.stdout)["planned"] == {"listings.ready": 26}


def test_run_webhook_delivers_at_the_end_of_the_run_then_says_the_run_finished(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    with Receiver() as receiver:
        result = run_cli(
            "run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--webhook", receiver.url
        )
        messages = list(receiver.accepted.values())
    assert result.exit_code == 0, result.stderr
    assert [message["type"] for message in messages] == ["listings.ready", "run.finished"]
    finished = messages[-1]["data"]
    assert finished["delivered"] == 13 and finished["jobs"]["succeeded"] == 13 and finished["failures"] == 0
    assert finished["cost_usd"] == json.loads(Path("out/cost_report.json").read_text())["cost_usd"]


def test_run_webhook_without_a_secret_stops_before_paying(run_cli, sample: Path, relay: FakeRelay, monkeypatch) -> None:
    monkeypatch.setenv("LOCALIZE_WEBHOOK_SECRET", "")
    with Receiver() as receiver:
        result = run_cli("run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--webhook", receiver.url)
    assert result.exit_code == 2 and "no webhook secret" in result.stderr and relay.chat_requests == []


EXPORT = Path(__file__).resolve().parent.parent / "examples" / "shopify_translations_export.csv"


def test_store_strings_go_as_strings_ready_and_a_kill_mid_delivery_resends_only_what_was_in_flight(
    run_cli, relay: FakeRelay
) -> None:
    """A Translate & Adapt run: listings then store strings. `deliver` is killed (-9) while the
    strings' message is in flight: the next delivery sends that message again, under the same
    id, and not the listings the receiver acknowledged."""
    import os
    import signal
    import subprocess
    import sys

    from webhook_receiver import HANG

    assert run_cli("run", EXPORT, "--base-url", relay.base_url, "--out", "out").exit_code == 0
    with Receiver() as receiver:
        receiver.enqueue(None, HANG)  # the listings acknowledged; the strings' message hangs
        command = [sys.executable, "-m", "localize", "deliver", "out", "--webhook", receiver.url]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
        try:
            assert receiver.hanging.wait(30)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        in_flight = receiver.posts[-1][0]
        resumed = run_cli("deliver", "out", "--webhook", receiver.url)
        posts = [message_id for message_id, _ in receiver.posts]
        kinds = [message["type"] for message in receiver.accepted.values()]
    assert resumed.exit_code == 0, resumed.stderr
    assert posts[-1] == in_flight and len(posts) == 3  # the strings again, the listings not
    assert kinds == ["listings.ready", "strings.ready"]
    strings = list(receiver.accepted.values())[1]["data"]["strings"]
    assert len(strings) == len(list(iter_jsonl(Path("out/strings.jsonl"))))
    assert {"key", "locale", "text", "version", "approved", "origin"} <= set(strings[0])


def test_a_receiver_that_is_down_then_back_gets_exactly_what_was_left(run_cli, out: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port to restart the receiver on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/localize"
    receiver = Receiver(port=port)
    receiver.close()  # killed
    down = run_cli("deliver", out, "--webhook", url)
    assert down.exit_code == 1 and "26 left undelivered" in down.stderr
    with Receiver(port=port) as restarted:
        back = run_cli("deliver", out, "--webhook", url)
        assert back.exit_code == 0 and len(restarted.listings()) == 26 and len(restarted.posts) == 1


def test_a_redirect_is_not_followed(run_cli, out: Path) -> None:
    with Receiver() as receiver:
        receiver.enqueue(Reply(307, {"Location": "http://attacker.example/hooks"}))
        moved = run_cli("deliver", out, "--webhook", receiver.url)
        posts = len(receiver.posts)
    assert moved.exit_code == 1 and "a redirect, not followed" in moved.stderr and posts == 1


def test_a_ledger_on_a_full_disk_is_its_own_exit_and_the_next_delivery_resends_under_the_same_id(
    run_cli, out: Path
) -> None:
    """/dev/full answers every write with ENOSPC: the acknowledgement cannot be recorded, so the
    run stops in one line (exit 5), and the next delivery sends that message again, same id."""
    (out / "deliveries.jsonl").symlink_to("/dev/full")
    with Receiver() as receiver:
        full = run_cli("deliver", out, "--webhook", receiver.url)
        assert full.exit_code == 5 and "Traceback" not in full.stderr
        (line,) = full.stderr.strip().splitlines()
        assert "No space left" in line and "free some space" in line
        (out / "deliveries.jsonl").unlink()
        again = run_cli("deliver", out, "--webhook", receiver.url)
        ids = [message_id for message_id, _ in receiver.posts]
    assert again.exit_code == 0 and len(ids) == 2 and ids[0] == ids[1]


def test_a_delivery_while_a_run_holds_out_sends_nothing(run_cli, out: Path) -> None:
    from localize.output.store import OutHold

    hold = OutHold.take(out)
    try:
        with Receiver() as receiver:
            busy = run_cli("deliver", out, "--webhook", receiver.url)
            posts = len(receiver.posts)
    finally:
        hold.release()
    assert busy.exit_code == 2 and "is being written by another localize command" in busy.stderr and posts == 0


def test_a_receiver_that_echoes_the_secret_or_the_urls_token_is_not_repeated(run_cli, out: Path) -> None:
    with Receiver() as receiver:
        said = f'{{"error": "bad token s3cret-query-token for key {SECRET}"}}'.encode()
        receiver.enqueue(Reply(403, body=said))
        refused = run_cli("deliver", out, "--webhook", receiver.url)
    assert refused.exit_code == 1 and "HTTP 403" in refused.stderr and "[redacted]" in refused.stderr
    assert "s3cret-query-token" not in refused.stderr and SECRET not in refused.stderr


def test_a_webhook_url_whose_port_is_not_one_is_one_line(run_cli, out: Path) -> None:
    result = run_cli("deliver", out, "--webhook", "https://pim.example.com:99999/hooks")
    assert result.exit_code == 2 and "port is not a port number" in result.stderr and "Traceback" not in result.stderr


def test_run_webhook_says_when_run_finished_was_not_acknowledged(run_cli, sample: Path, relay: FakeRelay) -> None:
    with Receiver() as receiver:
        receiver.enqueue(None, *[Reply(503)] * 6)  # the listings acknowledged; run.finished never
        result = run_cli(
            "run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out", "--webhook", receiver.url
        )
    assert result.exit_code == 1 and "did not acknowledge run.finished" in result.stderr
    assert "Delivered 13 listings" in result.stderr

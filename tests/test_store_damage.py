"""OUT's state on a bad day: a damaged or newer database, hand-edited text files that no longer
parse, a lock left in a git merge conflict. Each is one line and an exit code, never a
traceback, and nothing already paid for is paid again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-store-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out", *args)


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    for needle in needles:
        assert needle in line, line


def test_a_damaged_database_is_rebuilt_from_the_text_files_and_nothing_is_paid_again(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    sent = len(relay.chat_requests)
    database = Path("out/localize.db")
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    assert len(data) > 3 * 4096
    data[4096 + 100 : 3 * 4096] = b"\xde\xad\xbe\xef" * ((2 * 4096 - 100) // 4)  # pages past the header
    database.write_bytes(bytes(data))
    again = run(run_cli, relay, sample)
    assert again.exit_code == 0, again.stderr
    assert "could not be used" in again.stderr and "rebuilt from the text files" in again.stderr
    assert len(relay.chat_requests) == sent  # every result was in the text files: nothing sent
    assert json.loads(Path("out/cost_report.json").read_text())["jobs"]["up_to_date"] == 26


def test_a_newer_schema_is_left_alone_and_named(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    with sqlite3.connect("out/localize.db") as db:
        db.execute("UPDATE meta SET value = '7' WHERE key = 'schema'")
    refused = run(run_cli, relay, sample)
    one_line_error(refused, "written by a newer localize (state schema 7; this version reads 1)")
    with sqlite3.connect("out/localize.db") as db:  # still there, as the newer version left it
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("7",)


@pytest.mark.parametrize("command", ["run", "check", "review", "report"])
def test_a_results_line_without_an_id_is_one_error_naming_it(
    run_cli, sample: Path, relay: FakeRelay, command: str
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    results = Path("out/results.jsonl")
    lines = results.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2])
    del row["id"]
    lines[2] = json.dumps(row, ensure_ascii=False)
    write(results, "\n".join(lines) + "\n")
    if command == "run":
        result = run(run_cli, relay, sample)
    elif command == "check":
        result = run(run_cli, relay, sample, "--check")
    else:
        result = run_cli(command, "out")
    one_line_error(result, "out/results.jsonl:3", "names no job (no id)")


def test_a_lock_line_that_is_not_an_object_is_one_error_naming_it(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    lock = Path("out/localize.lock")
    lines = lock.read_text(encoding="utf-8").splitlines()
    lines[3] = json.dumps("a string, not an entry")
    write(lock, "\n".join(lines) + "\n")
    one_line_error(run(run_cli, relay, sample, "--check"), "out/localize.lock:4", "git checkout")


def test_a_lock_in_a_merge_conflict_says_how_to_resolve_it_not_to_delete_it(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    sent = len(relay.chat_requests)
    lock = Path("out/localize.lock")
    lines = lock.read_text(encoding="utf-8").splitlines()
    write(
        lock,
        "\n".join([lines[0], "<<<<<<< HEAD", *lines[1:3], "=======", *lines[3:5], ">>>>>>> main", *lines[5:]]) + "\n",
    )
    result = run(run_cli, relay, sample)
    one_line_error(result, "a git merge conflict in the lock", "drop the marker lines")
    assert "delete it to regenerate" not in result.stderr and len(relay.chat_requests) == sent

"""Odd inputs and odd machines: one clear line and a documented exit code, never a traceback,
never unbounded memory; pipes and stdin work; the catalog is read once per run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay

from localize.config import load
from localize.output.store import iter_jsonl
from localize.reading.catalog import read_catalog
from localize.reading.glossary import Glossary, Term
from localize.reading.textfile import read_once

CATALOG = "id,name\nP1,Noise cancelling headphones\nP2,Travel kettle\n"


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_a_json_catalog_nested_100000_deep_is_one_line(run_cli, tmp_path: Path) -> None:
    path = write(tmp_path / "deep.json", '[{"id": "1", "name": "A", "x": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    one_line_error(run_cli("estimate", path, "-l", "de-DE"), "deep.json:1", "nested too deeply")


def test_a_jsonl_line_nested_100000_deep_is_one_line(run_cli, tmp_path: Path) -> None:
    path = write(tmp_path / "deep.jsonl", '{"id": "1", "name": "A"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    one_line_error(run_cli("estimate", path, "-l", "de-DE"), "deep.jsonl:2", "nested too deeply")


def test_a_sparse_gigabyte_file_is_refused_before_it_is_read(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "sparse.csv"
    with path.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # 2 GB of holes: no disk used, NUL bytes when read
    one_line_error(run_cli("estimate", path, "-l", "de-DE"), "sparse.csv", "binary data")


def test_a_line_longer_than_16_mb_ends_the_read_with_its_line(run_cli, tmp_path: Path) -> None:
    path = write(tmp_path / "long.csv", "id,name\n1," + "a" * 17_000_000)
    one_line_error(run_cli("estimate", path, "-l", "de-DE"), "long.csv:2", "longer than 16 MB")


def test_a_cell_past_the_csv_limit_is_named_not_called_broken_quoting(run_cli, tmp_path: Path) -> None:
    path = write(tmp_path / "cell.csv", 'id,name\n1,"' + "a" * 200_000 + '"\n')
    one_line_error(run_cli("estimate", path, "-l", "de-DE"), "cell.csv:2", "a cell longer than")


def test_a_key_with_a_line_break_is_one_line_that_never_shows_the_key(
    run_cli, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-first-half\nsk-second-half")
    line = one_line_error(run_cli("run", sample, "-l", "de-DE"), "HOLYSHEEP_API_KEY", "line break")
    assert "half" not in line


def _fifo_with(path: Path, text: str) -> threading.Thread:
    os.mkfifo(path)

    def feed() -> None:
        with path.open("w", encoding="utf-8") as pipe:  # blocks until the reader opens it
            pipe.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return writer


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry_run", "live_run"])
def test_a_fifo_catalog_is_read_once_and_works(
    run_cli, tmp_path: Path, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-test")
    writer = _fifo_with(tmp_path / "catalog.csv", CATALOG)
    extra = ["--dry-run"] if dry_run else ["--base-url", relay.base_url, "--out", "out", "--rpm", "6000"]
    result = run_cli("run", tmp_path / "catalog.csv", "-l", "de-DE", *extra)
    writer.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    if dry_run:
        assert "2 products" in result.stderr
    else:
        assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 2


def test_a_catalog_on_stdin_runs_live(tmp_path: Path, relay: FakeRelay) -> None:
    env = {**os.environ, "HOLYSHEEP_API_KEY": "sk-test", "LOCALIZE_BASE_URL": relay.base_url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "localize",
            "run",
            "/dev/stdin",
            "-l",
            "de-DE",
            "--out",
            "out",
            "--rpm",
            "6000",
            "--pack",
            "1",
        ],
        input=CATALOG,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 of 2 jobs succeeded" in done.stderr
    assert len(relay.chat_requests) == 2


def test_a_catalog_appended_to_during_a_run_is_read_as_it_was(tmp_path: Path) -> None:
    path = write(tmp_path / "catalog.csv", CATALOG)
    with read_once(path, always=True):
        first = [product.id for product in read_catalog(path)]
        with path.open("a", encoding="utf-8") as handle:
            handle.write("P3,Added while the run goes on\n")
        second = [product.id for product in read_catalog(path)]
    assert first == second == ["P1", "P2"]
    assert [product.id for product in read_catalog(path)] == ["P1", "P2", "P3"]  # the next run sees it


@pytest.mark.parametrize(
    "url,clear",
    [
        ("http://relay.example.com/v1", True),
        ("http://10.0.0.5:8080/v1", True),
        ("https://api.holysheep.ai/v1", False),
        ("http://127.0.0.1:8080/v1", False),
        ("http://localhost:9000/v1", False),
        ("http://[::1]:9000/v1", False),
    ],
)
def test_plain_http_off_this_machine_is_known_to_send_the_key_in_clear(url: str, clear: bool) -> None:
    settings = load(flags={"base_url": url}, environ={})
    assert settings.sends_key_in_clear is clear


def test_a_plain_http_relay_elsewhere_gets_a_warning_before_anything_is_sent(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-test")
    catalog = write(tmp_path / "c.csv", CATALOG)
    url = "http://192.0.2.1:9/v1"
    result = run_cli("run", catalog, "-l", "de-DE", "--base-url", url, "--timeout", "0.2", "--max-retries", "0")
    assert result.stderr.startswith("warning: http://192.0.2.1:9/v1 is plain http to another machine")
    assert result.exit_code in (1, 4)  # TEST-NET-1 answers nothing


def test_a_large_glossary_finds_terms_by_their_words_nested_ones_too() -> None:
    glossary = Glossary(
        keep=tuple(f"Widget{n} Pro" for n in range(50_000)) + ("USB", "USB-C", "°C"),
        translate={"noise cancelling": {"de-DE": "Geräuschunterdrückung"}},
    )
    text = '{"name": "widget77 pro charger", "features": ["USB-C port", "Noise Cancelling", "to 40 °C"]}'
    assert glossary.terms_for(text, "de-DE") == [
        Term("Widget77 Pro"),
        Term("USB"),
        Term("USB-C"),
        Term("°C"),
        Term("noise cancelling", "Geräuschunterdrückung"),
    ]
    assert glossary.terms_for('{"name": "Widget77 Professional"}', "de-DE") == []  # whole words only

"""Catalogs as merchants have them: every repeated id named at once, columns in any case, a
mistyped mapping answered with the nearest column, bare languages and markets a platform does
not serve, and no stale extra file left beside the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay


def estimate(run_cli, catalog: Path, *args: str):
    return run_cli("estimate", catalog, "-l", "de-DE", *args)


def test_every_repeated_id_is_named_in_one_error(run_cli, tmp_path: Path) -> None:
    rows = ["id,name"] + [f"P{n % 12},Kettle {n}" for n in range(30)]
    catalog = write(tmp_path / "dup.csv", "\n".join(rows) + "\n")
    result = estimate(run_cli, catalog)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "12 ids are repeated: 'P0' (lines 2, 14, 26); 'P1' (lines 3, 15, 27)" in line
    assert "and 2 more" in line and "--duplicates first" in line


def test_duplicates_first_keeps_each_ids_first_row(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "dup.csv", "id,name\nA,first\nB,b\nA,second\nA,third\n")
    result = estimate(run_cli, catalog, "--duplicates", "first", "--json")
    assert result.exit_code == 0, result.stderr
    assert "note: 2 rows repeat an earlier id and are skipped" in result.stderr
    assert json.loads(result.stdout)["products"]["total"] == 2
    prompt = run_cli("prompt", catalog, "--id", "A", "--locale", "de-DE", "--json")
    assert prompt.exit_code == 0 and '\\"name\\": \\"first\\"' in prompt.stdout  # the first row is A


def test_our_columns_match_in_any_case_and_a_mistyped_mapping_gets_the_nearest(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "shop.csv", "ID,Name,Brand,SKU\n1,Kettle,Aquaclar,AQ-1\n")
    result = estimate(run_cli, catalog, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["products"]["total"] == 1
    mistyped = estimate(run_cli, catalog, "--map", "name=Brnd")
    assert mistyped.exit_code == 2 and "did you mean 'Brand'?" in mistyped.stderr
    mapped = estimate(run_cli, catalog, "--map", "id=sku,name=brand", "--json")  # their columns, in any case
    assert mapped.exit_code == 0, mapped.stderr


def test_a_bare_language_becomes_its_market_with_a_note(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "ja,de-DE", "--json")
    assert result.exit_code == 0, result.stderr
    assert "note: ja → ja-JP (the language's main market" in result.stderr
    assert set(json.loads(result.stdout)["by_locale"]) == {"ja-JP", "de-DE"}


def test_a_market_a_platform_does_not_serve_gets_a_warning(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE,th-TH", "-p", "shopee,amazon")
    assert result.exit_code == 0, result.stderr
    assert "warning: shopee does not sell in DE (de-DE); it serves SG, MY, TH, ID, VN, PH, TW, BR" in result.stderr
    assert "TH (th-TH)" not in result.stderr and "amazon does not" not in result.stderr


def test_an_extra_format_not_asked_for_again_is_removed(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-test")
    catalog = write(tmp_path / "one.csv", "id,name\nK1,Kettle\n")
    with FakeRelay() as relay:
        args = ("run", catalog, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out")
        assert run_cli(*args, "--format", "jsonl,csv,json").exit_code == 0
        assert Path("out/results.csv").exists() and Path("out/results.json").exists()
        assert run_cli(*args).exit_code == 0
    assert not Path("out/results.csv").exists() and not Path("out/results.json").exists()

"""Dry run / estimate: the cost-report shape, token counts that add up, nothing sent."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import write

from localize.cost import Price, TokenCounter, Usage, cost_usd, load_prices
from localize.locales import parse_locale
from localize.planning.estimate import CACHE_CHUNK_TOKENS, OUTPUT_LOW_FACTOR, cacheable_prefix_tokens
from localize.planning.packing import expected_output_tokens
from localize.planning.prompts import load_prompt_set
from localize.reading.catalog import read_catalog

KEY = "sk-test-0123456789abcdef"


def estimate_json(run_cli, catalog: Path, *args: str) -> dict:
    result = run_cli("estimate", catalog, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_dry_run_report_has_the_design_shape(run_cli, sample: Path) -> None:
    report = estimate_json(run_cli, sample, "-l", "de-DE,ja-JP", "--pack", "1")
    assert report["estimated"] is True
    assert report["model"] == "kimi-k2" and report["currency"] == "USD"
    assert report["jobs"] == {"total": 26, "succeeded": 0, "failed": 0, "up_to_date": 0}
    assert report["requests"] == 26
    assert set(report["tokens"]) == {"input", "cached_input", "output"}
    assert set(report["by_locale"]) == {"de-DE", "ja-JP"}
    assert set(report["by_platform"]) == {"amazon"}
    assert report["range"]["low"] < report["range"]["expected"] < report["range"]["high"]
    assert report["cost_usd"] == report["range"]["expected"]
    assert {"p50", "p95"} <= set(report["latency_ms"]) and "elapsed_s" in report
    assert report["method"]["calibrated"] is False


def test_input_tokens_equal_a_recount_of_every_rendered_prompt(run_cli, sample: Path) -> None:
    """The estimate's input tokens are exactly the prompts `localize prompt` shows, counted."""
    report = estimate_json(run_cli, sample, "-l", "de-DE,th-TH", "-p", "amazon,lazada", "--pack", "1")
    counter = TokenCounter()
    total = 0
    for product in read_catalog(sample):
        for platform in ("amazon", "lazada"):
            for locale in ("de-DE", "th-TH"):
                result = run_cli("prompt", sample, "--id", product.id, "--locale", locale, "-p", platform, "--json")
                total += counter.count_messages(json.loads(result.stdout)["messages"])
    assert report["tokens"]["input"] == total
    assert report["jobs"]["total"] == 13 * 2 * 2


def test_costs_are_the_priced_token_totals(run_cli, sample: Path) -> None:
    report = estimate_json(run_cli, sample, "-l", "ja-JP", "-p", "shopee")
    tokens = report["tokens"]
    expected = (Decimal(tokens["input"]) * Decimal("0.60") + Decimal(tokens["output"]) * Decimal("2.50")) / 10**6
    assert Decimal(str(report["cost_usd"])) == expected.quantize(Decimal("0.000001"))


def test_groups_add_up_to_the_totals(run_cli, sample: Path) -> None:
    report = estimate_json(run_cli, sample, "-l", "de-DE,ja-JP,th-TH", "-p", "amazon,shopify")
    for section in ("by_locale", "by_platform", "by_locale_platform"):
        entries = report[section].values()
        assert sum(e["tokens"]["input"] for e in entries) == report["tokens"]["input"]
        assert sum(e["tokens"]["output"] for e in entries) == report["tokens"]["output"]
        assert sum(e["requests"] for e in entries) == report["requests"]
        # each entry is rounded to micro-dollars on its own
        assert sum(e["range"]["high"] for e in entries) == pytest.approx(
            report["range"]["high"], abs=1e-6 * len(entries)
        )


def test_low_estimate_prices_shared_prefix_as_cached(run_cli, sample: Path) -> None:
    """Low: after the first request, the static prefix is billed at the cache-hit price."""
    report = estimate_json(run_cli, sample, "-l", "de-DE", "--pack", "1")
    system = load_prompt_set("amazon").render_system(parse_locale("de-DE"))
    prefix = cacheable_prefix_tokens(TokenCounter().count(system))
    assert prefix >= CACHE_CHUNK_TOKENS  # the static prompt is long enough to be cached
    jobs, tokens = 13, report["tokens"]
    cached = (jobs - 1) * prefix
    low_output = math.ceil(tokens["output"] // jobs * OUTPUT_LOW_FACTOR) * jobs
    low = (
        (tokens["input"] - cached) * Decimal("0.60") + cached * Decimal("0.15") + low_output * Decimal("2.50")
    ) / 10**6
    assert Decimal(str(report["range"]["low"])) == low.quantize(Decimal("0.000001"))


def test_dry_run_sends_nothing_even_with_a_key(run_cli, sample: Path, relay, monkeypatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", KEY)
    result = run_cli("run", sample, "-l", "de-DE,ja-JP", "--dry-run", "--base-url", relay.base_url)
    assert result.exit_code == 0, result.stderr
    assert relay.paths == []
    assert KEY not in result.stdout + result.stderr


def test_run_dry_run_and_estimate_agree(run_cli, sample: Path) -> None:
    one = estimate_json(run_cli, sample, "-l", "de-DE")
    result = run_cli("run", sample, "-l", "de-DE", "--dry-run", "--json")
    two = json.loads(result.stdout)
    for report in (one, two):
        report.pop("elapsed_s")
    assert one == two


def test_human_table_goes_to_stderr_and_stdout_stays_empty(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE,ja-JP")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Dry run: nothing sent" in result.stderr
    assert "de-DE" in result.stderr and "ja-JP" in result.stderr and "Total" in result.stderr
    assert "26 jobs" in result.stderr


def test_json_flag_prints_only_json_on_stdout(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE", "--json")
    json.loads(result.stdout)
    assert "Total" not in result.stderr


def test_price_override_in_config_changes_the_estimate(run_cli, sample: Path, tmp_path: Path) -> None:
    base = estimate_json(run_cli, sample, "-l", "de-DE")
    write(tmp_path / "localize.yaml", "prices:\n  kimi-k2: {input: 1.20, cached_input: 0.30, output: 5.00}\n")
    doubled = estimate_json(run_cli, sample, "-l", "de-DE")
    assert doubled["tokens"] == base["tokens"]
    assert doubled["cost_usd"] == pytest.approx(2 * base["cost_usd"], abs=2e-6)


def test_a_model_priced_in_config_can_be_estimated(run_cli, sample: Path, tmp_path: Path) -> None:
    write(
        tmp_path / "localize.yaml",
        "model: my-k2-finetune\nprices:\n  my-k2-finetune: {input: 1, cached_input: 0.5, output: 4}\n",
    )
    report = estimate_json(run_cli, sample, "-l", "de-DE")
    assert report["model"] == "my-k2-finetune"
    assert report["price"]["usd_per_million"] == {"input": 1.0, "cached_input": 0.5, "output": 4.0}


def test_row_platform_and_locale_columns_narrow_the_jobs(run_cli, tmp_path: Path) -> None:
    catalog = write(
        tmp_path / "c.csv",
        "id,name,platform,locales\nA,Mug,,\nB,Cup,shopee,\nC,Bowl,amazon|shopee,ja-JP\nD,Plate,lazada,\n",
    )
    report = estimate_json(run_cli, catalog, "-l", "de-DE,ja-JP", "-p", "amazon,shopee")
    pairs = {key: entry["jobs"] for key, entry in report["by_locale_platform"].items()}
    # A: 2 platforms x 2 locales; B: shopee x 2; C: 2 platforms x ja-JP; D: none (lazada not in the run)
    assert pairs == {"de-DE/amazon": 1, "de-DE/shopee": 2, "ja-JP/amazon": 2, "ja-JP/shopee": 3}
    assert report["products"] == {"total": 4, "without_jobs": 1}


def test_without_platform_flag_each_row_uses_its_own_platform(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", "id,name,platform\nA,Mug,\nB,Cup,lazada\n")
    report = estimate_json(run_cli, catalog, "-l", "de-DE")
    assert {k: v["jobs"] for k, v in report["by_platform"].items()} == {"amazon": 1, "lazada": 1}


def test_output_cap_bounds_the_high_estimate(run_cli, sample: Path) -> None:
    report = estimate_json(run_cli, sample, "-l", "ja-JP", "--max-tokens", "300")
    assert report["tokens"]["output"] == 13 * 300


def test_cost_of_usage_is_exact() -> None:
    price = Price("m", Decimal("0.60"), Decimal("0.15"), Decimal("2.50"), None, None)
    usage = Usage(input_tokens=1336, cached_tokens=1280, output_tokens=31)
    assert cost_usd(usage, price) == Decimal("0.0003031")  # (56*0.6 + 1280*0.15 + 31*2.5) / 1e6


def test_builtin_prices_match_kimi_md() -> None:
    k2 = load_prices()["kimi-k2"]
    assert (k2.cached_input, k2.input, k2.output) == (Decimal("0.15"), Decimal("0.60"), Decimal("2.50"))
    assert k2.as_of is not None and k2.source


def test_denser_scripts_expect_more_output_tokens() -> None:
    counter = TokenCounter()
    rules = load_prompt_set("amazon").rules
    german = expected_output_tokens(rules, counter.tokens_per_char(parse_locale("de-DE")))
    japanese = expected_output_tokens(rules, counter.tokens_per_char(parse_locale("ja-JP")))
    assert japanese > german > 0


def test_token_counter_uses_the_official_o200k_vocabulary() -> None:
    counter = TokenCounter()
    assert counter.count("Hello") == 1
    assert counter.count("Hello world") == 2
    # 2 messages x 4 template tokens + 3 for the reply primer
    assert counter.count_messages([{"role": "system", "content": ""}, {"role": "user", "content": ""}]) == 11

"""The review page, loaded in a real headless Chromium: it runs without console errors, shows
every job, and its filters hide what they should."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import write
from fake_relay import Answer, FakeRelay, listing_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must test the review page in a browser: .ci/run installs Debian's chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture
def review(run_cli, sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run with one warning and one failure, and its review page."""
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-review-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\nmax_reasks: 0\nconcurrency: 1\n")
    with FakeRelay() as relay:
        relay.enqueue(
            Answer(listing={**listing_for("de"), "title": "Nordbeat Kopfhörer mit Geräuschunterdrückung " * 2}),
            Answer(content="{broken"),
        )
        run_cli("run", sample, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out")
    result = run_cli("review", "out")
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


def dom(page: Path, fragment: str, tmp_path: Path) -> tuple[str, str]:
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.resolve().as_uri() + fragment],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout, done.stderr


def test_console_errors_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: a page with an error does log it where we look."""
    broken = write(tmp_path / "broken.html", "<html><body><script>missingFunction();</script></body></html>")
    _, log = dom(broken, "", tmp_path)
    assert any(":CONSOLE" in line and "Uncaught ReferenceError" in line for line in log.splitlines())


def visible_jobs(html: str) -> list[str]:
    return [row for row in re.findall(r"<tr class=\"job[^>]*>", html) if "hidden" not in row]


def test_the_page_runs_clean_and_shows_every_job(review: Path, tmp_path: Path) -> None:
    html, log = dom(review, "", tmp_path)
    assert 'data-ready="1"' in html  # the script ran to its end
    assert (
        "Uncaught" not in log
        and "CONSOLE" not in log.upper().replace("CONSOLE(", "CONSOLE")
        or "error" not in log.lower()
    )
    assert len(re.findall(r"<tr class=\"job", html)) == 26 == len(visible_jobs(html))
    assert "26 of 26 jobs shown" in html
    assert "source" in html and "Nordbeat ANC45 Wireless Noise-Cancelling Headphones" in html  # source beside results
    # Each listing's figures are marked as checked, except where the check left a warning.
    # 26 jobs: one failed, one with a figures warning, TOY-001's two have no figures to check.
    assert html.count("figures ✓") == 22 and "figures ✓ 7 checked" in html  # ELEC-002: 5 figures, 2 names


def test_a_locale_filter_hides_the_other_locale(review: Path, tmp_path: Path) -> None:
    html, _ = dom(review, "#locale=ja-JP", tmp_path)
    shown = visible_jobs(html)
    assert len(shown) == 13 and all('data-locale="ja-JP"' in row for row in shown)


def test_the_warning_filter_shows_only_jobs_with_findings(review: Path, tmp_path: Path) -> None:
    html, _ = dom(review, "#warning=any", tmp_path)
    shown = visible_jobs(html)
    # The scripted long-title listing also lacks the product's figures: a warning after its one ask.
    assert len(shown) == 1 and "title_long" in shown[0] and "figures" in shown[0]
    assert 'class="used over"' in html  # the long title is flagged against its limit


def test_failures_are_on_the_page_too(review: Path, tmp_path: Path) -> None:
    html, _ = dom(review, "", tmp_path)
    assert 'class="job failed"' in html and "invalid_json" in html


def test_a_stores_strings_show_source_beside_translation_with_placeholders_marked(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-review-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")
    export = Path(__file__).resolve().parent.parent / "examples" / "shopify_translations_export.csv"
    with FakeRelay() as relay:
        assert run_cli("run", export, "--base-url", relay.base_url, "--out", "out").exit_code == 0
    page = Path(run_cli("review", "out").stdout.strip())
    html, log = dom(page, "#platform=strings", tmp_path)
    assert 'data-ready="1"' in html and "Uncaught" not in log
    shown = visible_jobs(html)
    assert len(shown) == 25 and all('data-platform="strings"' in row for row in shown)
    section = html.split('data-id="ONLINE_STORE_THEME/1234567890/general.cart.item_count"', 1)[1].split("</section>")[0]
    assert section.count('<mark class="ph">{{ count }}</mark>') == 3  # the source, and the de and fr translations
    assert "&lt;h2&gt;" in html.split('data-id="SHOP_POLICY/7788990011/body"', 1)[1]  # markup shown as written


def test_the_status_filter_shows_only_failed_jobs(review: Path, tmp_path: Path) -> None:
    html, _ = dom(review, "#status=failed", tmp_path)
    shown = visible_jobs(html)
    assert len(shown) == 1 and 'class="job failed"' in shown[0]


def test_the_review_reads_the_catalog_with_the_runs_own_mapping(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-review-test")
    catalog = write(tmp_path / "mapped.csv", "Handle,Title\nk-1,Kettle with a copper base\n")
    with FakeRelay() as relay:
        args = (
            "run",
            catalog,
            "-l",
            "de-DE",
            "--base-url",
            relay.base_url,
            "--out",
            "out",
            "--map",
            "id=Handle,name=Title",
        )
        assert run_cli(*args).exit_code == 0
    page = Path(run_cli("review", "out").stdout.strip())  # no --map: the run recorded it
    assert "Kettle with a copper base" in page.read_text(encoding="utf-8")


def test_a_large_run_shows_failures_and_warnings_first_within_the_limit(run_cli, review: Path, tmp_path: Path) -> None:
    """--limit keeps the page one a browser opens: the products with a failure or a warning come
    first, and the page says how many it leaves out."""
    result = run_cli("review", "out", "--limit", "3")
    assert result.exit_code == 0, result.stderr
    assert "Showing 3 of 13 products" in result.stderr
    html, _ = dom(Path(result.stdout.strip()), "", tmp_path)
    assert 'data-ready="1"' in html
    assert len(re.findall(r'<section class="product[^"]*" data-id=', html)) == 3
    assert 'class="job failed"' in html and "title_long" in html  # the failure and the warning made the cut
    assert "Showing 3 of 13 products" in html and "--limit 0" in html
    everything = run_cli("review", "out", "--limit", "0")
    assert everything.exit_code == 0 and "Showing" not in everything.stderr


def test_review_during_a_first_run_shows_the_jobs_finished_so_far(run_cli, sample: Path, tmp_path: Path) -> None:
    """No results.jsonl is written until the run ends; the jobs it finished are in its state."""
    import sys
    import time

    from localize.output.store import iter_jsonl

    env = {**os.environ, "HOLYSHEEP_API_KEY": "sk-review-test"}
    with FakeRelay(hang_s=120) as relay:
        relay.enqueue(*[Answer()] * 5, "hang")  # five answers, then one that never comes while the run lives
        command = [sys.executable, "-m", "localize", "run", str(sample), "-l", "de-DE", "--pack", "1"]
        command += ["--base-url", relay.base_url, "--out", "out", "--concurrency", "1", "--timeout", "300"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while len(relay.chat_requests) < 6:
                assert time.monotonic() < deadline and process.poll() is None, "the run never got going"
                time.sleep(0.02)  # polling a condition, not a timing
            assert not Path("out/results.jsonl").exists()
            result = run_cli("review", "out", "--catalog", sample)
        finally:
            process.kill()
            process.wait()
    assert result.exit_code == 0, result.stderr
    page = Path("out/review.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<tr class="job ok"', page)) == 5
    assert list(iter_jsonl(Path("out/results.jsonl"))) == []


def test_the_header_shows_what_outs_listings_cost_in_all_not_the_last_command(
    run_cli, sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-review-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")
    with FakeRelay() as relay:
        assert run_cli("run", sample, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out").exit_code == 0
        first = json.loads(Path("out/cost_report.json").read_text())["cost_usd"]
        assert run_cli("run", sample, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out").exit_code == 0
        second = json.loads(Path("out/cost_report.json").read_text())["cost_usd"]
        assert run_cli("run", sample, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out").exit_code == 0
        billed = relay.bill_usd()
    page = Path(run_cli("review", "out").stdout.strip()).read_text(encoding="utf-8")
    header = page.split("<p class=summary>")[1].split("</p>")[0]
    assert f"cost <b>${first + second:.4f}</b> in all (billed over 2 runs)" in header  # not the no-op's $0.0000
    assert abs(float(billed) - (first + second)) < 1e-4
    assert "the last run: 0 succeeded, 0 failed, 26 up to date, 0 requests" in header


def test_a_right_to_left_listing_reads_right_to_left_in_the_browser(
    run_cli, sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Arabic listing's cell and its rendered description say dir="rtl" in the DOM Chromium
    builds; a German one's do not."""
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-review-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\nconcurrency: 1\n")
    with FakeRelay() as relay:
        run_cli("run", sample, "-l", "ar-SA,de-DE", "-p", "shopify", "--base-url", relay.base_url, "--out", "out")
    html, _ = dom(Path(run_cli("review", "out").stdout.strip()), "", tmp_path)
    assert 'data-ready="1"' in html
    rows = re.findall(r'<tr class="job[^"]*"[^>]*data-locale="([^"]+)"[^>]*>.*?</tr>', html, re.DOTALL)
    cells = re.findall(
        r'<tr class="job[^"]*"[^>]*data-locale="([^"]+)"[^>]*><td>[^<]*</td><td>[^<]*</td><td( dir="rtl")?>', html
    )
    assert len(rows) == 26 and sorted(set(rows)) == ["ar-SA", "de-DE"]
    assert {locale for locale, rtl in cells if rtl} == {"ar-SA"} and {locale for locale, rtl in cells if not rtl} == {
        "de-DE"
    }
    assert html.count('<div class="rendered"><div dir="rtl">') == 13  # the description as the shop shows it

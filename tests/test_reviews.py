"""Human work is kept: edits, approvals and rejections in OUT/reviews.jsonl (one decision a
line, as the review page and `localize approve` write them, or a reviewer in a pull request),
and no re-run overwrites a person."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import write
from fake_relay import FakeRelay

from localize.output.store import iter_jsonl


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-reviews-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out", *args)


def results() -> dict[tuple[str, str, str], dict]:
    return {(r["id"], r["platform"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}


def decide(**decision: object) -> None:
    with Path("out/reviews.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"time": "2026-12-02T10:00:00+00:00", **decision}, ensure_ascii=False) + "\n")


KEY = ("ELEC-001", "amazon", "de-DE")


def test_a_human_edit_survives_reruns_a_fresh_clone_and_a_source_edit(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    assert all(line["origin"] == "model" and line["approved"] is False for line in results().values())
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="edit", fields={"title": "Nordbeat ANC45 Kopfhörer"})
    sent = len(relay.chat_requests)
    again = run(run_cli, relay, sample, "--format", "jsonl,csv")
    assert again.exit_code == 0 and len(relay.chat_requests) == sent
    edited = results()[KEY]
    assert edited["title"] == "Nordbeat ANC45 Kopfhörer" and edited["origin"] == "human"
    assert "Nordbeat ANC45 Kopfhörer" in Path("out/results.csv").read_text(encoding="utf-8")  # files use it
    shutil.copytree("out", "clone", ignore=shutil.ignore_patterns("localize.db*"))  # a fresh clone of OUT
    shutil.rmtree("out")
    shutil.move("clone", "out")
    assert run(run_cli, relay, sample).exit_code == 0 and len(relay.chat_requests) == sent
    assert results()[KEY]["title"] == "Nordbeat ANC45 Kopfhörer"
    text = sample.read_text(encoding="utf-8").replace("Hybrid active noise cancelling", "Adaptive noise cancelling")
    write(sample, text)  # the product's source changes
    changed = run(run_cli, relay, sample)
    assert changed.exit_code == 0, changed.stderr
    kept = results()[KEY]
    assert kept["title"] == "Nordbeat ANC45 Kopfhörer" and kept["outdated"] is True  # kept, and said
    asked = [body["messages"][-1]["content"] for body in relay.chat_requests[sent:]]
    assert len(asked) == 1 and "ELEC-001" not in json.dumps(asked)  # only ja-JP was regenerated
    assert json.loads(Path("out/cost_report.json").read_text())["jobs"]["outdated"] == 1
    check = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")
    assert check.exit_code == 1 and "outdated" in check.stdout and "ELEC-001\tamazon\tde-DE" in check.stdout
    refreshed = run(run_cli, relay, sample, "--refresh-outdated")
    assert refreshed.exit_code == 0
    fresh = results()[KEY]
    assert fresh["origin"] == "model" and fresh["title"] != "Nordbeat ANC45 Kopfhörer" and "outdated" not in fresh


def test_require_approved_fails_until_approve_all(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    gate = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check", "--require-approved")
    assert gate.exit_code == 1 and "26 listings are not approved yet" in gate.stderr
    partial = run_cli("approve", "out", "--locale", "de-DE")
    assert partial.exit_code == 0 and "Approved 13 listings" in partial.stderr
    approved = run_cli("approve", "out", "--all", "--user", "ci")
    assert approved.exit_code == 0 and "Approved 13 listings" in approved.stderr
    assert all(line["approved"] for line in results().values())
    assert len(Path("out/reviews.jsonl").read_text().splitlines()) == 26
    gate = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check", "--require-approved")
    assert gate.exit_code == 0, gate.stderr
    nothing = run_cli("approve", "out")
    assert nothing.exit_code == 2 and "--all" in nothing.stderr


def test_a_rejected_listing_is_the_only_request_of_the_next_run_and_carries_the_note(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="approve")
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="reject", note="Name the 45-hour battery first.")
    sent = len(relay.chat_requests)
    again = run(run_cli, relay, sample)
    assert again.exit_code == 0, again.stderr
    asked = relay.chat_requests[sent:]
    assert len(asked) == 1 and "Name the 45-hour battery first." in asked[0]["messages"][-1]["content"]
    line = results()[KEY]
    assert line["origin"] == "model" and line["approved"] is False and "rejected" not in line
    assert json.loads(Path("out/reviews.jsonl").read_text().splitlines()[-1])["action"] == "regenerated"
    assert run(run_cli, relay, sample).exit_code == 0 and len(relay.chat_requests) == sent + 1  # settled


def test_a_broken_review_line_is_named(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    write(Path("out/reviews.jsonl"), '{"id": "ELEC-001", "action": "bless"}\n')
    result = run(run_cli, relay, sample)
    assert result.exit_code == 2 and "reviews.jsonl:1" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def served(run_cli, sample: Path, relay: FakeRelay):
    """A run's OUT served as `localize review out --serve --port 0` does it, in its own process."""
    assert run(run_cli, relay, sample).exit_code == 0
    yield from serving()


class Served(str):
    """The served page's URL, and a way to stop the server (Ctrl-C) before its files are read:
    the exported files are written a moment after the last decision, and when it stops."""

    process: Any

    def stop(self) -> None:
        _stop(self.process)


def _stop(process: Any) -> None:
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0  # Ctrl-C ends it cleanly


def start_server() -> Served:
    """`localize review out --serve --port 0`, in its own process: its URL (the first line)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HOLYSHEEP_API_KEY": "sk-reviews-test"}
    command = [sys.executable, "-m", "localize", "review", "out", "--serve", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = process.stdout.readline().strip()
    if not (url.startswith("http://127.0.0.1:") and "?token=" in url):
        _stop(process)
        raise AssertionError(process.stderr.read())
    served = Served(url)
    served.process = process
    return served


def serving():
    served = start_server()
    try:
        yield served
    finally:
        served.stop()


@contextlib.contextmanager
def served_page(url: str):
    """The served page in Debian's Chromium (through Playwright), ready, and the script errors
    it logs on the way."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.goto(url)
            page.wait_for_selector("body[data-served='1']")
            yield page, errors
        finally:
            browser.close()


def api(url: str) -> tuple[str, str]:
    base, token = url.split("/?token=")
    return base, token


def test_the_api_needs_the_token_and_lists_every_listing(served: str) -> None:
    import httpx

    base, token = api(served)
    assert httpx.get(f"{base}/api/listings").status_code == 403
    assert httpx.get(f"{base}/api/listings", headers={"X-Localize-Token": token + "x"}).status_code == 403
    listings = httpx.get(f"{base}/api/listings?token={token}").json()["listings"]
    assert len(listings) == 26
    first = next(item for item in listings if (item["id"], item["locale"]) == ("ELEC-001", "de-DE"))
    assert set(first) == {"id", "platform", "locale", "fields", "origin", "approved", "status", "warnings"}
    assert {"title", "description", "bullets", "seo_tags"} <= set(first["fields"]) and first["origin"] == "model"
    page = httpx.get(served)
    assert page.status_code == 200 and "Approve all without findings" in page.text


def test_edits_approvals_and_rejections_through_the_api(served: Served) -> None:
    import httpx

    base, token = api(served)
    headers = {"X-Localize-Token": token}
    url = f"{base}/api/listings/amazon/de-DE/ELEC-001"
    edited = httpx.post(url, json={"fields": {"title": "Nordbeat ANC45 Kopfhörer"}}, headers=headers)
    assert edited.status_code == 200, edited.text
    assert edited.json()["listing"]["origin"] == "human"
    over = httpx.post(url, json={"fields": {"title": "Kopfhörer " * 40}}, headers=headers)
    assert over.status_code == 422 and over.json()["problems"]  # over Amazon's title limit: nothing saved
    assert httpx.post(url, json={"approved": "yes"}, headers=headers).status_code == 400
    approved = httpx.post(url, json={"approved": True}, headers=headers)
    assert approved.status_code == 200 and approved.json()["listing"]["approved"] is True
    rejected = httpx.post(f"{base}/api/listings/amazon/ja-JP/ELEC-001", json={"reject": "Shorter."}, headers=headers)
    sent_back = rejected.json()["listing"]
    assert rejected.status_code == 200 and sent_back["status"] == "warning"
    assert "rejected: Shorter." in sent_back["warnings"]
    assert (
        httpx.post(f"{base}/api/listings/amazon/de-DE/NOPE", json={"approved": True}, headers=headers).status_code
        == 404
    )
    foreign = httpx.post(url, json={"approved": False}, headers={**headers, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    form = httpx.post(
        url, content=b"approved=false", headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415
    lines = [json.loads(line) for line in Path("out/reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["action"] for line in lines] == ["edit", "approve", "reject"]  # the refused edit left nothing
    served.stop()  # results.jsonl is written a moment after the last decision, and when the server stops
    assert results()[KEY]["approved"] is True and results()[KEY]["title"] == "Nordbeat ANC45 Kopfhörer"


def test_a_write_while_a_run_holds_out_is_refused_with_409(served: str) -> None:
    import httpx

    from localize.output.store import OutHold

    base, token = api(served)
    hold = OutHold.take(Path("out"))  # what a run holds while it writes OUT
    try:
        busy = httpx.post(
            f"{base}/api/listings/amazon/de-DE/ELEC-001", json={"approved": True}, headers={"X-Localize-Token": token}
        )
    finally:
        hold.release()
    assert busy.status_code == 409 and "a run is writing OUT" in busy.json()["error"]
    assert not Path("out/reviews.jsonl").exists()


def test_the_served_page_edits_approves_and_keeps_them_across_a_reload(served: Served) -> None:
    """A real browser (Debian's Chromium, driven by Playwright) uses the page itself: an edit
    in place, an approval, a reload that shows both, and no script error on the way."""
    with served_page(served) as (page, errors):
        row = page.locator("section[data-id='ELEC-001'] tr.job[data-locale='de-DE']")
        title = row.locator(".edit-title")
        title.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("Nordbeat ANC45 Kopfhörer")
        assert row.locator(".used").first.inner_text().startswith("24 / ")  # the length, as you type
        page.locator("h1").click()  # the title loses focus: saved
        page.wait_for_function(
            "() => document.querySelector(\"section[data-id='ELEC-001'] tr.job[data-locale='de-DE']\")"
            ".dataset.origin === 'human'"
        )
        tags = row.locator(".tags")
        tags.click()
        page.keyboard.press("End")
        page.keyboard.type(", reisekopfhörer")
        page.locator("h1").click()  # the tags lose focus: saved as a list
        page.wait_for_function(
            "() => document.querySelector(\"section[data-id='ELEC-001'] tr.job[data-locale='de-DE'] .decision\")"
            ".textContent.includes('edited') && document.querySelector(\"section[data-id='ELEC-001'] "
            "tr.job[data-locale='de-DE'] .tags\").dataset.saved.includes('reisekopfhörer')"
        )
        row.locator(".approve").click()
        page.wait_for_function(
            "() => document.querySelector(\"section[data-id='ELEC-001'] tr.job[data-locale='de-DE']\")"
            ".dataset.approved === '1'"
        )
        page.reload()
        page.wait_for_selector("body[data-served='1']")
        row = page.locator("section[data-id='ELEC-001'] tr.job[data-locale='de-DE']")
        assert row.get_attribute("data-approved") == "1" and row.get_attribute("data-origin") == "human"
        assert row.locator(".edit-title").inner_text().strip() == "Nordbeat ANC45 Kopfhörer"
        assert "approved · edited" in row.locator(".decision").inner_text()
    assert errors == []
    served.stop()
    line = results()[KEY]
    assert line["title"] == "Nordbeat ANC45 Kopfhörer" and line["approved"] is True and line["origin"] == "human"
    assert line["seo_tags"][-1] == "reisekopfhörer"


def test_an_edit_is_offered_to_the_listings_with_the_same_copy(run_cli, sample: Path, relay: FakeRelay) -> None:
    import httpx
    from test_incremental import _catalog_with_twins

    catalog = _catalog_with_twins(sample, sample.with_name("twins.csv"), 10)
    assert run_cli("run", catalog, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out").exit_code == 0
    twin = next(line for line in iter_jsonl(Path("out/results.jsonl")) if line.get("reused_from"))
    server = serving()
    url = next(server)
    try:
        base, token = api(url)
        edited = httpx.post(
            f"{base}/api/listings/amazon/de-DE/{twin['id']}",
            json={"fields": {"title": "Handverlesen"}},
            headers={"X-Localize-Token": token},
        )
        assert edited.status_code == 200, edited.text
        twins = edited.json()["twins"]
        assert twin["reused_from"] in twins and twin["id"] not in twins
        listed = httpx.get(f"{base}/api/listings?token={token}").json()["listings"]
        assert {key for item in listed for key in item} == {
            "id",
            "platform",
            "locale",
            "fields",
            "origin",
            "approved",
            "status",
            "warnings",
        }  # the API's shape, exactly as DESIGN.md has it
    finally:
        next(server, None)


def test_merging_shards_keeps_every_decision(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    assert run_cli("approve", "out", "--id", "ELEC-001").exit_code == 0
    for k in (1, 2):  # CI: every shard starts from the committed OUT and runs its slice
        shutil.copytree("out", f"shard{k}")
        shard = run_cli(
            "run", sample, "-l", "de-DE,ja-JP", "--out", f"shard{k}", "--shard", f"{k}/2", "--base-url", relay.base_url
        )
        assert shard.exit_code == 0, shard.stderr
    assert run_cli("approve", "shard2", "--id", "HOME-002").exit_code == 0  # a reviewer on one shard's OUT
    merged = run_cli("merge", "shard1", "shard2", "--out", "merged")
    assert merged.exit_code == 0, merged.stderr
    lines = Path("merged/reviews.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(set(lines)) == 4  # ELEC-001 and HOME-002 in two locales, each once
    approved = {r["id"] for r in iter_jsonl(Path("merged/results.jsonl")) if r["approved"]}
    assert approved == {"ELEC-001", "HOME-002"}


def test_merge_keeps_a_decision_repeated_within_a_shard(run_cli, sample: Path, relay: FakeRelay) -> None:
    """approve, unapprove, approve in one second: the lines repeat exactly; merged, the listing
    is still approved (a repeated line is a decision made twice, not a copy of shared history)."""
    assert run(run_cli, relay, sample).exit_code == 0
    for action in ("approve", "unapprove", "approve"):
        decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action=action)
    shutil.copytree("out", "shard1")
    shutil.copytree("out", "shard2")
    assert run_cli("merge", "shard1", "shard2", "--out", "merged").exit_code == 0
    actions = [json.loads(line)["action"] for line in Path("merged/reviews.jsonl").read_text().splitlines()]
    assert actions == ["approve", "unapprove", "approve"]
    merged = {(r["id"], r["platform"], r["locale"]): r for r in iter_jsonl(Path("merged/results.jsonl"))}
    assert merged[KEY]["approved"] is True


def test_force_never_overwrites_a_persons_listing_and_the_dry_run_does_not_price_it(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="edit", fields={"title": "Nordbeat ANC45 Kopfhörer"})
    decide(id="HOME-002", platform="amazon", locale="ja-JP", action="approve")
    approved_title = results()[("HOME-002", "amazon", "ja-JP")]["title"]
    sent = len(relay.chat_requests)
    forced = run(run_cli, relay, sample, "--force", "--pack", "1")
    assert forced.exit_code == 0, forced.stderr
    assert len(relay.chat_requests) == sent + 24  # every job but the two a person decided on
    assert results()[KEY]["title"] == "Nordbeat ANC45 Kopfhörer"
    assert results()[("HOME-002", "amazon", "ja-JP")]["title"] == approved_title
    write(sample, sample.read_text(encoding="utf-8").replace("Hybrid active noise cancelling", "Adaptive ANC"))
    priced = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--dry-run", "--json")
    report = json.loads(priced.stdout)
    assert priced.exit_code == 0 and report["jobs"]["outdated"] == 1 and report["jobs"]["up_to_date"] == 25
    assert report["jobs"]["total"] == 26 and report["by_locale"]["ja-JP"]["jobs"] == 1  # only what is sent is priced


def test_serving_an_out_without_results_or_on_a_taken_port_is_one_line(run_cli, sample: Path, relay: FakeRelay) -> None:
    import socket

    missing = run_cli("review", "nowhere", "--serve")
    assert missing.exit_code == 2 and "no results here" in missing.stderr and "Traceback" not in missing.stderr
    assert run(run_cli, relay, sample).exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_cli("review", "out", "--serve", "--port", str(taken.getsockname()[1]))
    assert busy.exit_code == 2 and "cannot listen on 127.0.0.1" in busy.stderr and "--port" in busy.stderr


def test_a_decision_the_disk_cannot_take_is_a_507_not_a_dropped_connection(served: str) -> None:
    import httpx

    base, token = api(served)
    Path("out/reviews.jsonl").mkdir()  # a file OUT cannot write, as a full disk refuses one
    refused = httpx.post(
        f"{base}/api/listings/amazon/de-DE/ELEC-001", json={"approved": True}, headers={"X-Localize-Token": token}
    )
    assert refused.status_code == 507 and refused.json()["error"].startswith("cannot write OUT")


EXPORT = Path(__file__).resolve().parent.parent / "examples" / "shopify_translations_export.csv"


@pytest.fixture
def served_strings(run_cli, relay: FakeRelay):
    """A Translate & Adapt export's run (listings and store strings), served."""
    result = run_cli("run", EXPORT, "--base-url", relay.base_url, "--out", "out")
    assert result.exit_code == 0, result.stderr
    yield from serving()


def strings() -> dict[tuple[str, str], dict]:
    return {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/strings.jsonl"))}


def test_store_strings_are_items_of_the_api_edited_approved_and_rejected(
    served_strings: str, run_cli, relay: FakeRelay
) -> None:
    import urllib.parse

    import httpx

    sent = len(relay.chat_requests)
    base, token = api(served_strings)
    headers = {"X-Localize-Token": token}
    items = httpx.get(f"{base}/api/listings", headers=headers).json()["listings"]
    texts = [item for item in items if item["platform"] == "strings"]
    assert len(texts) == len(strings()) > 0  # every store string, as an item like a listing
    assert all(set(item["fields"]) == {"text"} and item["approved"] is False for item in texts)
    key = "COLLECTION/4455667788/body_html"  # <p>Warm layers for <strong>cold</strong> trails.</p>
    assert any(item["id"] == key and item["locale"] == "de-DE" for item in texts)
    url = f"{base}/api/listings/strings/de-DE/{urllib.parse.quote(key, safe='')}"  # its slashes encoded
    broken = httpx.post(url, json={"fields": {"text": "Warme Schichten für kalte Pfade."}}, headers=headers)
    assert broken.status_code == 422 and "html" in broken.json()["problems"][0]  # the tags lost: nothing saved
    text = "<p>Warme Schichten für <strong>kalte</strong> Pfade.</p>"
    edited = httpx.post(url, json={"fields": {"text": text}}, headers=headers)
    assert edited.status_code == 200, edited.text
    assert edited.json()["listing"]["origin"] == "human" and edited.json()["listing"]["fields"] == {"text": text}
    assert httpx.post(url, json={"fields": {"title": "x"}}, headers=headers).status_code == 422
    assert httpx.post(url, json={"approved": True}, headers=headers).json()["listing"]["approved"] is True
    again = run_cli("run", EXPORT, "--out", "out", "--base-url", relay.base_url)  # nothing to send: files rewritten
    assert again.exit_code == 0 and len(relay.chat_requests) == sent
    assert strings()[(key, "de-DE")]["text"] == text and strings()[(key, "de-DE")]["approved"] is True
    assert text in Path("out/shopify_translations.csv").read_text(encoding="utf-8")  # the person's text
    other = next(item for item in texts if item["locale"] == "fr-FR")
    other_url = f"{base}/api/listings/strings/fr-FR/{urllib.parse.quote(other['id'], safe='')}"
    rejected = httpx.post(other_url, json={"reject": "Plus court."}, headers=headers)
    assert rejected.status_code == 200 and "rejected: Plus court." in rejected.json()["listing"]["warnings"]


def test_require_approved_counts_store_strings(run_cli, relay: FakeRelay) -> None:
    assert run_cli("run", EXPORT, "--base-url", relay.base_url, "--out", "out").exit_code == 0
    assert run_cli("approve", "out", "--platform", "shopify").exit_code == 0
    waiting = run_cli("run", EXPORT, "--out", "out", "--check", "--require-approved")
    assert waiting.exit_code == 1  # the strings still wait for a person
    assert f"{len(strings())} store strings are not approved yet" in waiting.stderr
    assert run_cli("approve", "out", "--platform", "strings").exit_code == 0
    assert all(line["approved"] for line in strings().values())
    assert run_cli("run", EXPORT, "--out", "out", "--check", "--require-approved").exit_code == 0


def test_a_rejected_string_is_asked_again_alone_with_the_note(run_cli, relay: FakeRelay) -> None:
    assert run_cli("run", EXPORT, "--base-url", relay.base_url, "--out", "out").exit_code == 0
    key = next(key for key, locale in strings() if locale == "fr-FR")
    decide(id=key, platform="strings", locale="fr-FR", action="reject", note="Plus court, s'il vous plaît.")
    before = len(relay.chat_requests)
    again = run_cli("run", EXPORT, "--base-url", relay.base_url, "--out", "out")
    assert again.exit_code == 0, again.stderr
    sent = relay.chat_requests[before:]
    assert len(sent) == 1 and "Plus court, s'il vous plaît." in sent[0]["messages"][-1]["content"]
    assert "rejected" not in strings()[(key, "fr-FR")]


def test_the_served_page_edits_and_approves_a_store_string_without_a_script_error(served_strings: Served) -> None:
    with served_page(served_strings) as (page, errors):
        assert page.locator("#approve-clean").count() == 1  # the setup ran to its end
        row = page.locator("section.string tr.job[data-locale='de-DE']").first
        key = row.locator("xpath=ancestor::section").get_attribute("data-id")
        text = row.locator("[data-field='text']")
        text.click()
        page.keyboard.press("End")
        page.keyboard.type(" (geprüft)")
        page.locator("h1").click()  # loses focus: saved
        page.wait_for_function(
            "(key) => document.querySelector(`section[data-id=\"${CSS.escape(key)}\"] tr.job[data-locale='de-DE']`)"
            ".dataset.origin === 'human'",
            arg=key,
        )
        row.locator(".approve").click()
        page.wait_for_function(
            "(key) => document.querySelector(`section[data-id=\"${CSS.escape(key)}\"] tr.job[data-locale='de-DE']`)"
            ".dataset.approved === '1'",
            arg=key,
        )
    assert errors == []
    served_strings.stop()
    line = strings()[(key, "de-DE")]
    assert line["text"].endswith("(geprüft)") and line["approved"] is True and line["origin"] == "human"


def test_a_run_that_keeps_outdated_listings_says_so_and_its_counts_add_up(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    assert run_cli("approve", "out", "--id", "ELEC-001").exit_code == 0  # both its locales, a person's now
    write(sample, sample.read_text(encoding="utf-8").replace("Hybrid active noise cancelling", "Adaptive ANC"))
    result = run(run_cli, relay, sample, "--no-progress")
    assert result.exit_code == 0, result.stderr
    jobs = json.loads(Path("out/cost_report.json").read_text())["jobs"]
    assert jobs["succeeded"] + jobs["failed"] + jobs["up_to_date"] == jobs["total"] == 26
    assert jobs["outdated"] == 2 and jobs["up_to_date"] == 26
    assert "progress: 26/26 jobs, 0 failed, 26 up to date" in result.stderr  # not "0 up to date"
    assert "All 26 jobs are up to date: nothing was sent." in result.stderr
    assert "Kept: 2 listings a person edited or approved are outdated" in result.stderr
    assert "--refresh-outdated regenerates them" in result.stderr
    assert "Billed by" not in result.stderr  # nothing billed: no empty table
    priced = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--dry-run")
    assert "26 jobs are up to date in out/ (2 of them a person's listings kept" in priced.stderr


def test_approve_all_without_findings_leaves_warnings_and_outdated_listings_to_a_person(
    run_cli, sample: Path, relay: FakeRelay
) -> None:
    from fake_relay import Answer, listing_for

    long_title = "Nordbeat Kopfhörer mit Geräuschunterdrückung " * 2  # over the soft limit: a warning
    relay.enqueue(Answer(listing={**listing_for("de"), "title": long_title}))
    assert run(run_cli, relay, sample, "--pack", "1", "--concurrency", "1", "--max-reasks", "0").exit_code == 0
    warned = {key for key, line in results().items() if line["warnings"]}
    assert warned
    decide(id="HOME-002", platform="amazon", locale="ja-JP", action="edit", fields={"title": "Ein Titel"})
    text = sample.read_text(encoding="utf-8")
    home = next(line for line in text.splitlines() if line.startswith("HOME-002,"))
    write(sample, text.replace(home, home.replace("Desk Lamp with", "Desk Light with", 1)))  # its source changes
    assert run(run_cli, relay, sample).exit_code == 0
    assert results()[("HOME-002", "amazon", "ja-JP")].get("outdated") is True
    with contextlib.closing(serving()) as urls, served_page(next(urls)) as (page, errors):
        page.locator("#approve-clean").click()
        page.wait_for_function("() => document.querySelector('#approve-clean-said').textContent.length > 0")
        said = page.locator("#approve-clean-said").inner_text()
    assert errors == []
    lines = results()
    held = warned | {("HOME-002", "amazon", "ja-JP")}
    assert all(not lines[key]["approved"] for key in held)  # left for a person
    assert all(line["approved"] for key, line in lines.items() if key not in held)
    assert f"Approved {len(lines) - len(held)}; left {len(held)} with findings" in said


PAYLOAD = (
    "</p><script>fetch('/api/listings/amazon/de-DE/ELEC-001',{method:'POST'})</script><img src=x onerror=alert(1)>"
)


def test_a_crafted_cost_report_runs_no_script_on_the_served_page(served: str) -> None:
    """Every value of cost_report.json reaches the page escaped and type-checked, and the page's
    policy runs only its own script (a nonce, no 'unsafe-inline')."""
    import httpx
    from playwright.sync_api import sync_playwright

    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    report["model"] = PAYLOAD
    report["requests"] = PAYLOAD
    report["jobs"] = {"succeeded": PAYLOAD, "failed": [PAYLOAD], "up_to_date": {"x": PAYLOAD}}
    report["tokens"] = {"input": PAYLOAD}
    report["cost_usd"] = PAYLOAD
    report["shopify_import"] = {"kept_needs_look": [{"type": PAYLOAD}], "kept_needs_look_count": PAYLOAD}
    write(Path("out/cost_report.json"), json.dumps(report))
    page = httpx.get(served)
    assert page.status_code == 200 and "<script>fetch" not in page.text and "<img src=x" not in page.text
    policy = page.headers["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'nonce-" in script_src and "unsafe-inline" not in script_src
    nonce = script_src.split("'nonce-")[1].split("'")[0]
    assert page.text.count(f'nonce="{nonce}"') == 1 and httpx.get(served).headers["Content-Security-Policy"] != policy
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            dialogs: list[str] = []
            tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            tab.goto(served)
            tab.wait_for_selector("body[data-served='1']")  # the page's own script ran
            assert PAYLOAD in tab.locator(".summary").inner_text()  # shown as text, not run
            assert dialogs == []
        finally:
            browser.close()
    assert not Path("out/reviews.jsonl").exists()  # nothing was decided by opening the page


def test_the_server_takes_writes_from_its_own_names_and_refuses_other_hosts(served: str) -> None:
    """The page opened as http://localhost:PORT saves (its Origin names this server); a Host
    that is not this server's (a DNS-rebinding page) is refused, token or not."""
    import httpx

    base, token = api(served)
    port = base.rsplit(":", 1)[1]
    headers = {"X-Localize-Token": token}
    url = f"{base}/api/listings/amazon/de-DE/ELEC-001"
    local = {**headers, "Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
    assert httpx.post(url, json={"approved": True}, headers=local).status_code == 200
    own = {**headers, "Origin": base}
    assert httpx.post(url, json={"approved": False}, headers=own).status_code == 200
    rebound = {**headers, "Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
    assert httpx.post(url, json={"approved": True}, headers=rebound).status_code == 403
    assert httpx.get(f"{base}/api/listings", headers={**headers, "Host": f"attacker.example:{port}"}).status_code == 403
    crossed = {**headers, "Host": f"localhost:{port}", "Origin": "http://attacker.example"}
    assert httpx.post(url, json={"approved": True}, headers=crossed).status_code == 403
    assert results()[KEY]["approved"] is False


def test_force_with_refresh_outdated_regenerates_only_the_outdated(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="edit", fields={"title": "Nordbeat ANC45 Kopfhörer"})
    decide(id="HOME-002", platform="amazon", locale="ja-JP", action="edit", fields={"title": "デスクライト"})
    write(sample, sample.read_text(encoding="utf-8").replace("Hybrid active noise cancelling", "Adaptive ANC"))
    result = run(run_cli, relay, sample, "--force", "--refresh-outdated")
    assert result.exit_code == 0, result.stderr
    lines = results()
    assert lines[KEY]["origin"] == "model" and lines[KEY]["title"] != "Nordbeat ANC45 Kopfhörer"  # outdated: renewed
    current = lines[("HOME-002", "amazon", "ja-JP")]
    assert current["origin"] == "human" and current["title"] == "デスクライト"  # current: a person's, kept


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"title": {"de": "Kopfhörer"}}, "fields.title must be a string"),
        ({"bullets": "Starke Geräuschunterdrückung"}, "fields.bullets must be a list of strings"),
        ({"seo_tags": [1, 2, 3]}, "fields.seo_tags must be a list of strings"),
        ({"title": "Kopfhörer " * 40}, "breaks a hard rule"),  # over Amazon's title limit
    ],
    ids=["object-title", "string-bullets", "number-tags", "over-limit"],
)
def test_a_hand_written_decision_is_checked_as_the_api_checks_an_edit(
    run_cli, sample: Path, relay: FakeRelay, fields: dict, said: str
) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="approve")
    decide(id=KEY[0], platform=KEY[1], locale=KEY[2], action="edit", fields=fields)
    sent = len(relay.chat_requests)
    for result in (run(run_cli, relay, sample), run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check")):
        assert result.exit_code == 2 and said in result.stderr and "reviews.jsonl:2" in result.stderr
        assert "Traceback" not in result.stderr
    assert len(relay.chat_requests) == sent  # nothing sent, nothing published from it
    if said != "breaks a hard rule":
        assert run_cli("review", "out").exit_code == 2  # a line of the wrong shape is not even read


def raw(url: str, request: bytes) -> bytes:
    """One raw HTTP exchange with the served review API (what a hostile client sends)."""
    import socket
    import urllib.parse

    where = urllib.parse.urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_the_review_api_refuses_hostile_bodies_in_one_answer(served: str) -> None:
    base, token = api(served)
    host = base.split("//")[1]
    path = f"/api/listings/amazon/de-DE/ELEC-001?token={token}"

    def post(body: bytes, length: str | None = None) -> bytes:
        size = str(len(body)) if length is None else length
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
        return raw(served, head.encode() + b"Connection: close\r\n\r\n" + body)

    assert post(b"", "-1").startswith(b"HTTP/1.1 400")  # no read of "everything"
    assert post(b"[" * 100_000 + b"]" * 100_000).startswith(b"HTTP/1.1 400")  # nested past any decision
    assert post(b'{"reject": null}').startswith(b"HTTP/1.1 400")  # a note, not "None"
    assert not Path("out/reviews.jsonl").exists()


def test_a_silent_connection_is_closed_and_holds_no_thread(run_cli, sample: Path, relay: FakeRelay) -> None:
    import socket
    import threading

    from localize.config import load
    from localize.people.serve import ReviewServer

    assert run(run_cli, relay, sample).exit_code == 0
    server = ReviewServer(Path("out"), load(flags={}), idle_s=0.2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET /api/listings HTTP/1.1\r\n")  # and then nothing more
            assert conn.recv(1024) == b""  # closed by the server, well before the test's own 10 s
    finally:
        server.shutdown()


def test_an_edit_answers_when_the_reports_catalog_is_a_pipe_that_never_ends(served: str) -> None:
    import os

    import httpx

    base, token = api(served)
    fifo = Path("never.csv").resolve()
    os.mkfifo(fifo)
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    write(Path("out/cost_report.json"), json.dumps({**report, "catalog": str(fifo)}))
    edited = httpx.post(
        f"{base}/api/listings/amazon/de-DE/ELEC-001",
        json={"fields": {"title": "Nordbeat ANC45 Kopfhörer"}},
        headers={"X-Localize-Token": token},
        timeout=10,
    )
    assert edited.status_code == 200 and edited.json()["listing"]["origin"] == "human"


def test_a_run_meeting_the_review_servers_hold_names_it(run_cli, sample: Path, relay: FakeRelay) -> None:
    import subprocess
    import sys

    from localize.output.store import OutHold

    assert run(run_cli, relay, sample).exit_code == 0
    code = "import sys; from localize.output.store import OutHold; from pathlib import Path;"
    code += " h = OutHold.take(Path('out'));"
    code += " print('held', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, "review", "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = run(run_cli, relay, sample)
    finally:
        holder.communicate("")
    assert blocked.exit_code == 2 and "(localize review --serve, pid " in blocked.stderr
    assert OutHold.try_take(Path("out")) is not None


def test_a_cost_report_of_the_wrong_shape_still_renders_the_review(run_cli, sample: Path, relay: FakeRelay) -> None:
    assert run(run_cli, relay, sample).exit_code == 0
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    write(Path("out/cost_report.json"), json.dumps({**report, "jobs": "many", "tokens": [1], "shopify_import": [2]}))
    result = run_cli("review", "out")
    assert result.exit_code == 0, result.stderr
    assert "the last run: 0 succeeded" in Path("out/review.html").read_text(encoding="utf-8")


def test_a_decision_survives_a_server_killed_before_it_wrote_the_files(run_cli, sample: Path, relay: FakeRelay) -> None:
    """A click costs one appended line; results.jsonl is written after the decisions pause. A
    server killed in between loses nothing: the decision is in reviews.jsonl, every reader folds
    it in, and the next server (or run, or approve) writes it into the files."""
    import signal

    import httpx

    assert run(run_cli, relay, sample).exit_code == 0
    write(Path("localize.yaml"), "review_export_s: 3600\n")  # never before the kill
    served = start_server()
    base, token = api(served)
    approved = httpx.post(
        f"{base}/api/listings/amazon/de-DE/ELEC-001", json={"approved": True}, headers={"X-Localize-Token": token}
    )
    assert approved.status_code == 200 and approved.json()["listing"]["approved"] is True
    served.process.send_signal(signal.SIGKILL)
    assert served.process.wait(timeout=30) == -signal.SIGKILL
    assert results()[KEY]["approved"] is False  # the files were not written yet...
    assert [json.loads(line)["action"] for line in Path("out/reviews.jsonl").open()] == ["approve"]  # ...the line was
    listed = run_cli("run", sample, "-l", "de-DE,ja-JP", "--out", "out", "--check", "--require-approved")
    assert "25 listings are not approved yet" in listed.stderr  # a reader folds it in
    start_server().stop()  # a new server writes what the last one could not, at its start
    assert results()[KEY]["approved"] is True

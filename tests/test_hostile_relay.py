"""A relay that lies, echoes the key, overbills, drips or redirects: the money and secret
promises hold. Every case runs the CLI against the loopback fake relay."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import write
from fake_relay import DRIP, MISSING, Answer, FakeRelay, Reply

from localize.output.store import iter_jsonl

KEY = "sk-live-ECHOED-KEY-0123456789abcdef"


@pytest.fixture(autouse=True)
def key_and_fast_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", KEY)
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\npack: 1\n")


def catalog(tmp_path: Path, products: int = 1) -> Path:
    rows = "".join(f"P{n},Noise cancelling headphones {n}\n" for n in range(products))
    return write(tmp_path / "catalog.csv", "id,name\n" + rows)


def live(run_cli, relay: FakeRelay, path: Path, *args: str, locales: str = "de-DE"):
    return run_cli("run", path, "--base-url", relay.base_url, "--out", "out", "-l", locales, *args)


def report(out: Path = Path("out")) -> dict:
    return json.loads((out / "cost_report.json").read_text())


def every_file_text(out: Path) -> str:
    return "".join(path.read_text(encoding="utf-8", errors="replace") for path in out.rglob("*") if path.is_file())


# --- the key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        Reply(401, {"error": {"type": "invalid_authentication_error", "message": f"Invalid API key provided: {KEY}"}}),
        Reply(500, {"error": {"type": "server_error", "message": f"upstream said Authorization: Bearer {KEY}"}}),
        Reply(200, f"<html>proxy error for key {KEY[:14]}****{KEY[-4:]}</html>"),
    ],
    ids=["401_echoes_the_key", "500_echoes_the_header", "garbage_200_with_a_masked_key"],
)
def test_a_relay_that_echoes_the_key_never_gets_it_written_or_printed(
    run_cli, tmp_path: Path, relay: FakeRelay, reply: Reply
) -> None:
    relay.enqueue(*[reply] * 10)
    result = live(run_cli, relay, catalog(tmp_path), "--max-retries", "1")
    review = run_cli("review", "out")
    assert review.exit_code == 0, review.stderr
    text = result.stdout + result.stderr + every_file_text(Path("out"))
    assert KEY not in text and KEY[:14] not in text
    assert "[redacted]" in text  # the message is kept, only the secret is gone


@pytest.mark.parametrize(
    "model", [f"kimi-k2 via {KEY}", "k" * 5_000, 42], ids=["echoes_the_key", "five_thousand_characters", "a_number"]
)
def test_an_answers_model_field_that_lies_is_redacted_cut_or_ignored(
    run_cli, tmp_path: Path, relay: FakeRelay, model: object
) -> None:
    """The answer's `model` is the relay's word: redacted, cut to 100 characters, ignored when it
    is no text, and a model the price table does not know is priced as the one asked."""
    relay.answering_model = model  # type: ignore[assignment]
    result = live(run_cli, relay, catalog(tmp_path, 3))
    assert result.exit_code == 0, result.stderr
    assert KEY not in result.stdout + result.stderr + every_file_text(Path("out"))
    recorded = {record["model"] for record in iter_jsonl(Path("out/requests.jsonl"))}
    assert all(len(name) <= 100 for name in recorded)
    assert recorded == {"kimi-k2"} if model == 42 else "kimi-k2" not in recorded
    billed = relay.billed
    at_k2 = ((billed["prompt_tokens"] - billed["cached_tokens"]) * 0.60 + billed["cached_tokens"] * 0.15) / 1e6
    assert report()["cost_usd"] == pytest.approx(at_k2 + billed["completion_tokens"] * 2.50 / 1e6, abs=2e-6)


# --- usage the relay sends ----------------------------------------------------------------

BAD_USAGE = {
    "missing": MISSING,
    "null": None,
    "a_list": [1, 2, 3],
    "float_strings": {"prompt_tokens": "815.0", "completion_tokens": "12.5"},
    "negative": {"prompt_tokens": -5, "completion_tokens": 10},
    "absurd": {"prompt_tokens": 10**30, "completion_tokens": 10},
    "cached_over_prompt": {"prompt_tokens": 100, "completion_tokens": 10, "cached_tokens": 5000},
    "a_bool": {"prompt_tokens": True, "completion_tokens": 10},
}


@pytest.mark.parametrize("usage", BAD_USAGE.values(), ids=BAD_USAGE.keys())
def test_unbelievable_usage_keeps_the_answer_and_reports_it_apart(
    run_cli, tmp_path: Path, relay: FakeRelay, usage: object
) -> None:
    if usage is None:
        relay.enqueue(*[Reply(200, _chat_body(usage_value=None))] * 3)
    else:
        relay.enqueue(*[Answer(usage=usage)] * 3)
    result = live(run_cli, relay, catalog(tmp_path, 3))
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 3  # kept, never re-sent for its usage
    rows = list(iter_jsonl(Path("out/results.jsonl")))
    assert len(rows) == 3 and all("usage_unreported" in row["warnings"] for row in rows)
    assert all(row["input_tokens"] > 0 and row["output_tokens"] > 0 for row in rows)  # counted offline
    unreported = report()["unreported"]
    assert unreported["requests"] == 3 and unreported["counted_output_tokens"] > 0
    assert unreported["estimated_cost_usd"] > 0
    assert report()["cost_usd"] == 0.0  # the billed totals hold only what the relay reported
    assert "without usage the relay could be held to" in result.stderr
    # The summary line agrees with the progress line: what was reported and what was counted.
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress:")][-1]
    spent = progress.rsplit("$", 1)[1].split()[0]
    summary = next(line for line in result.stderr.splitlines() if "jobs succeeded" in line)
    assert "$0.0000 reported + about $" in summary and summary.endswith(f"= about ${spent}")
    rebuilt = run_cli("report", "out", "--json")
    assert rebuilt.exit_code == 0 and json.loads(rebuilt.stdout)["unreported"]["requests"] == 3


def test_usage_as_digit_strings_is_believed(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    relay.enqueue(Answer(usage={"prompt_tokens": "815", "completion_tokens": " 42 ", "cached_tokens": "512"}))
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert report()["tokens"] == {"input": 815, "cached_input": 512, "output": 42}
    assert "unreported" not in report()


@pytest.mark.parametrize("stated", [float("nan"), "Infinity", "-3", "lots"])
def test_a_relay_stated_charge_that_is_no_amount_is_ignored(
    run_cli, tmp_path: Path, relay: FakeRelay, stated: object
) -> None:
    relay.enqueue(Answer(cost_usd=stated))  # type: ignore[arg-type]
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "relay_cost_usd" not in report()
    assert run_cli("report", "out").exit_code == 0


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"id": "x", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 0}}).encode(),
        b'{"choices": [{"message": {"content": "\xff\xfe broken"}}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["empty_choices", "invalid_utf8", "nested_100000_deep"],
)
def test_a_200_that_is_no_chat_completion_is_retried_and_counted_as_possibly_billed(
    run_cli, tmp_path: Path, relay: FakeRelay, body: bytes
) -> None:
    relay.enqueue(Reply(200, body))
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 2
    assert report()["unconfirmed"]["requests"] == 1
    assert report()["errors"] == {"bad_response": 1}


def test_a_huge_answer_body_is_not_read_whole(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    relay.enqueue(Reply(200, b"{" + b" " * 9_000_000 + b"}"))
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    (first, _second) = list(iter_jsonl(Path("out/requests.jsonl")))
    assert first["error"] == "bad_response" and "larger than 8 MB" in first["message"]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_small_compressed_body_that_unpacks_past_the_cap_is_not_read_whole(
    run_cli, tmp_path: Path, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    """Its Content-Length is a few kilobytes, what it unpacks to is 9 MB: the cap is on that."""
    import gzip

    monkeypatch.setenv("LOCALIZE_HTTP_TRANSPORT", transport)
    packed = gzip.compress(b"{" + b" " * 9_000_000 + b"}")
    assert len(packed) < 100_000
    relay.enqueue(Reply(200, packed, {"Content-Encoding": "gzip"}))
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    (first, _second) = list(iter_jsonl(Path("out/requests.jsonl")))
    assert first["error"] == "bad_response" and "larger than 8 MB" in first["message"]


# --- the budget ---------------------------------------------------------------------------


def test_a_relay_billing_three_times_the_input_stays_under_max_cost(run_cli, tmp_path: Path) -> None:
    """64 in flight against a relay that bills every prompt three times over: its bill, not only
    our report, stays under the cap."""
    cap = Decimal("0.05")
    with FakeRelay(prompt_factor=3) as relay:
        args = ("--max-cost", str(cap), "--concurrency", "64", "--max-tokens", "300")
        result = live(run_cli, relay, catalog(tmp_path, 300), *args, locales="de-DE,ja-JP")
        relay_bill = relay.bill_usd()
    assert result.exit_code == 3, result.stderr  # the cap was reached, cleanly
    assert Decimal("0.02") < relay_bill <= cap
    assert Decimal(str(report()["cost_usd"])) == relay_bill.quantize(Decimal("0.000001"))


# --- transports ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_timeout_holds_against_a_relay_that_drips_a_byte_at_a_time(
    run_cli, tmp_path: Path, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("LOCALIZE_HTTP_TRANSPORT", transport)
    relay.enqueue(DRIP)
    result = live(run_cli, relay, catalog(tmp_path), "--timeout", "0.5")
    assert result.exit_code == 0, result.stderr
    first = next(iter_jsonl(Path("out/requests.jsonl")))
    assert first["error"] == "timeout" and first["maybe_billed"] is True


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_redirect_is_not_followed_and_named(
    run_cli, tmp_path: Path, relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("LOCALIZE_HTTP_TRANSPORT", transport)
    relay.enqueue(*[Reply(307, "", {"Location": "http://127.0.0.1:9/v1/chat/completions"})] * 5)
    result = live(run_cli, relay, catalog(tmp_path, 3), "--concurrency", "1")
    assert result.exit_code == 4
    assert "redirect (HTTP 307) to http://127.0.0.1:9/v1/chat/completions" in result.stderr
    assert "API key" not in result.stderr
    assert len(relay.chat_requests) == 1


def _chat_body(*, usage_value: object) -> dict:
    content = json.dumps(
        {
            "title": "Nordbeat Kopfhörer mit Geräuschunterdrückung",
            "description": "Kabellose Kopfhörer mit hybrider Geräuschunterdrückung und langer Akkulaufzeit.",
            "bullets": [
                "Starke Geräuschunterdrückung",
                "Lange Akkulaufzeit",
                "Schnelles Laden",
                "Zwei Geräte",
                "Faltbar",
            ],
            "seo_tags": ["kopfhörer", "kabellos", "reise", "bluetooth", "anc"],
        },
        ensure_ascii=False,
    )
    return {
        "id": "chatcmpl-x",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": usage_value,
    }


def test_report_reads_an_audit_log_whatever_an_older_run_left_in_it(run_cli, tmp_path: Path) -> None:
    """A log written before usage was checked (or torn by a crash) still rebuilds a report."""
    lines = [
        {"run": "r1", "model": "kimi-k2", "usage": {"input": "815.0", "cached_input": None, "output": 10**30}},
        {"run": "r1", "model": "kimi-k2", "usage": [1, 2], "cost_usd": "NaN", "relay_cost_usd": "Infinity"},
        {"run": "r1", "model": "kimi-k2", "usage": {"input": 100, "output": 20}, "cost_usd": 0.0001, "status": "200"},
        {"run": "r1", "model": "kimi-k2", "maybe_billed": True, "counted_input": -4, "error": ["odd"]},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"torn": \n' + "[" * 100_000 + "\n"
    (tmp_path / "out").mkdir()
    write(tmp_path / "out" / "requests.jsonl", text)
    rebuilt = run_cli("report", tmp_path / "out", "--json")
    assert rebuilt.exit_code == 0, rebuilt.stderr
    report = json.loads(rebuilt.stdout)
    assert report["requests"] == 4
    assert report["tokens"] == {"input": 100, "cached_input": 0, "output": 20}
    assert report["cost_usd"] == 0.0001


def test_a_re_ask_repeats_only_an_excerpt_of_a_huge_invalid_answer(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    """A relay answering 2 MB in the wrong shape: each re-ask quotes at most REASK_ANSWER_CHARS
    of it, so the garbage is not paid for again in every later request."""
    from localize.sending.reask import REASK_ANSWER_CHARS

    garbage = json.dumps({"listing": "x" * 2_000_000})
    relay.honours_max_tokens = False  # a relay that sends all of it, past max_tokens
    relay.enqueue(Answer(content=garbage), Answer(content=garbage))
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    first, second, third = relay.chat_requests
    assert len(json.dumps(second)) < len(json.dumps(first)) + REASK_ANSWER_CHARS + 6_000
    assert len(json.dumps(third)) < len(json.dumps(first)) + 2 * (REASK_ANSWER_CHARS + 6_000)
    assert "more characters left out" in second["messages"][-2]["content"]


def test_a_request_over_the_context_window_is_refused_unsent_with_its_size(run_cli, tmp_path: Path) -> None:
    rows = [{"id": "WIDE", "name": "Kettle", "description": " ".join(f"word{i}" for i in range(200_000))}]
    rows.append({"id": "OK", "name": "Kettle", "description": "A kettle."})
    path = write(tmp_path / "wide.json", json.dumps(rows))
    dry = run_cli("run", path, "-l", "de-DE", "--dry-run")
    assert "1 jobs do not fit kimi-k2's context window of 131,072 tokens" in dry.stderr
    assert "largest: WIDE" in dry.stderr
    with FakeRelay() as relay:
        result = live(run_cli, relay, path, "--pack", "2")
        sent = [request["messages"][-1]["content"] for request in relay.chat_requests]
    assert result.exit_code == 1
    assert len(sent) == 1 and "word199999" not in sent[0]  # the pack split; the wide product never sent
    (failure,) = list(iter_jsonl(Path("out/failures.jsonl")))
    assert failure["id"] == "WIDE" and failure["error"] == "too_large"
    assert "over kimi-k2's context window of 131,072" in failure["message"] and "tokens" in failure["message"]


@pytest.mark.parametrize("inside", [True, False], ids=["within-completion", "beside-completion"])
def test_reasoning_tokens_are_billed_wherever_the_relay_counts_them(
    run_cli, tmp_path: Path, relay: FakeRelay, inside: bool
) -> None:
    """A relay that bills reasoning beside completion_tokens (total_tokens above prompt +
    completion, reasoning_tokens in the details): the report still equals the bill, and says
    the usage did not add up."""
    relay.enqueue(*[Answer(reasoning=900, reasoning_inside=inside)] * 3)
    result = live(run_cli, relay, catalog(tmp_path, products=3), "--pack", "1")
    assert result.exit_code == 0, result.stderr
    assert report()["tokens"]["output"] == relay.billed["completion_tokens"]
    assert Decimal(str(report()["cost_usd"])) == pytest.approx(relay.bill_usd(), abs=Decimal("0.000001"))
    said = "The relay's usage did not add up in 3 answers"
    assert (said in result.stderr) is not inside and ("usage_mismatch" in report()) is not inside
    # Reasoning is its own count, inside the output billed: in requests.jsonl and the report.
    assert report()["tokens"]["reasoning"] == 2700
    logged = [record["usage"].get("reasoning") for record in iter_jsonl(Path("out/requests.jsonl"))]
    assert logged == [900, 900, 900]
    assert "(2,700 reasoning)" in result.stderr
    assert "warning: 2,700 reasoning tokens billed as output" in result.stderr  # nobody asked for thinking
    assert "% of the cost), though thinking was not asked for" in result.stderr


def test_reasoning_text_without_a_count_is_counted_offline(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    """A relay that returns message.reasoning_content but no reasoning_tokens: the reasoning is
    counted offline (within the output the relay billed) and said."""
    relay.enqueue(Answer(reasoning_text="Let me think about the German title first. " * 20))
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    reasoning = report()["tokens"]["reasoning"]
    assert 0 < reasoning <= report()["tokens"]["output"] and "reasoning tokens billed as output" in result.stderr


def test_a_usage_claiming_every_prompt_token_cached_is_not_billed_by(run_cli, tmp_path: Path, relay: FakeRelay) -> None:
    """A first request "100% cached": a prefix cache never serves the request's own end, so the
    answer is kept and its tokens counted offline, reported apart, never at the cached price."""
    relay.enqueue(Answer(usage={"prompt_tokens": 900, "completion_tokens": 40, "cached_tokens": 900}))
    result = live(run_cli, relay, catalog(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert report()["unreported"]["requests"] == 1 and report()["tokens"]["cached_input"] == 0

"""--pack: several products of one (platform, locale) per request, on the fake relay.

The packed-request wire contract, each listing validated on its own, a poison product failing
alone, every job's share of the bill summing to the bill, and packing that changes nothing
about which results are current.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import write
from fake_relay import _PACKED_ID, DROP, MISSING, OMIT, Answer, FakeRelay, Reply

from localize.checking.validate import InvalidAnswer
from localize.cost import Usage
from localize.output.store import iter_jsonl
from localize.planning.packing import ANSWER_JSON_TOKENS, PACK_MAX, AnswerRoom, Packs, apportion, read_pack, split_usage
from localize.sending.relay import SLOWEST_TOKENS_PER_S, answer_timeout_s

KEY = "sk-pack-test-key"
IDS = [f"P{number:02d}" for number in range(1, 9)]


@pytest.fixture(autouse=True)
def fast_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", KEY)
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\nconcurrency: 1\n")


def catalog(tmp_path: Path, ids: list[str] = IDS, *, poison: str | None = None) -> Path:
    lines = ["id,name,brand"]
    for product_id in ids:
        name = poison if poison and product_id == ids[2] else f"Travel kettle {product_id}"
        lines.append(f"{product_id},{name},Nordbeat")
    return write(tmp_path / "catalog.csv", "\n".join(lines) + "\n")


def live(run_cli, relay: FakeRelay, path: Path, *args: str):
    return run_cli("run", path, "-l", "de-DE", "--base-url", relay.base_url, "--out", "out", *args)


def results() -> dict[str, dict]:
    return {row["id"]: row for row in iter_jsonl(Path("out/results.jsonl"))}


def report() -> dict:
    return json.loads(Path("out/cost_report.json").read_text())


def assert_shares_sum_to_the_bill(relay: FakeRelay) -> None:
    """Every job's share of the usage and cost, over results and failures' audit records,
    adds up to exactly what the relay billed; and so does the report."""
    billed = relay.billed
    records = list(iter_jsonl(Path("out/requests.jsonl")))
    usage = [record["usage"] for record in records if record.get("usage")]
    assert sum(u["input"] for u in usage) == billed["prompt_tokens"]
    assert sum(u["cached_input"] for u in usage) == billed["cached_tokens"]
    assert sum(u["output"] for u in usage) == billed["completion_tokens"]
    assert report()["tokens"] == {
        "input": billed["prompt_tokens"],
        "cached_input": billed["cached_tokens"],
        "output": billed["completion_tokens"],
    }
    assert report()["requests"] == billed["responses"]
    assert Decimal(str(report()["cost_usd"])) == relay.bill_usd().quantize(Decimal("0.000001"))


def test_a_packed_run_sends_the_wire_contract_and_every_job_gets_its_share(run_cli, tmp_path: Path) -> None:
    with FakeRelay() as relay:
        result = live(run_cli, relay, catalog(tmp_path), "--pack", "3")
    assert result.exit_code == 0, result.stderr
    assert "8 of 8 jobs succeeded" in result.stderr
    assert len(relay.chat_requests) == 3  # 3 + 3 + 2
    first = relay.chat_requests[0]["messages"]
    assert '{"listings": {"<id>": {"id": "<id>", "title": string' in first[0]["content"]
    assert "You turn each catalog product into" in first[0]["content"]
    assert first[1]["content"].count("<product_data id=") == 3
    assert '<product_data id="P01">' in first[1]["content"] and "</product_data>" in first[1]["content"]
    rows = results()
    assert sorted(rows) == IDS and all(row["attempts"] == 1 for row in rows.values())
    # Each job's figures are its share: they sum to the bill, to the token and the micro-dollar.
    assert sum(row["input_tokens"] for row in rows.values()) == relay.billed["prompt_tokens"]
    assert sum(row["output_tokens"] for row in rows.values()) == relay.billed["completion_tokens"]
    assert sum(row["cached_tokens"] for row in rows.values()) == relay.billed["cached_tokens"]
    assert all(0 < row["input_tokens"] < relay.billed["prompt_tokens"] / 2 for row in rows.values())
    assert_shares_sum_to_the_bill(relay)
    records = list(iter_jsonl(Path("out/requests.jsonl")))
    assert {record["pack"]["lead"] for record in records} == {"P01", "P04", "P07"}
    assert report()["requests"] == 3 and report()["jobs"]["succeeded"] == 8


def test_one_invalid_listing_is_re_asked_alone_and_its_pack_mates_are_kept(run_cli, tmp_path: Path) -> None:
    with FakeRelay() as relay:
        relay.enqueue(Answer(pack={"P02": {"title": ""}, "P03": OMIT}))
        result = live(run_cli, relay, catalog(tmp_path, IDS[:4]), "--pack", "4")
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 3  # the pack, then P02 and P03 each alone
    re_asks = [body["messages"] for body in relay.chat_requests[1:]]
    assert all("<product_data id=" not in messages[1]["content"] for messages in re_asks)
    p02 = next(messages for messages in re_asks if "P02" in messages[1]["content"])
    assert p02[-2]["role"] == "assistant" and '"title": ""' in p02[-2]["content"]
    assert "title" in p02[-1]["content"]  # the validator's message, naming the field
    rows = results()
    assert sorted(rows) == IDS[:4]
    assert {product_id: rows[product_id]["attempts"] for product_id in IDS[:4]} == {
        "P01": 1,
        "P02": 2,
        "P03": 2,
        "P04": 1,
    }
    assert rows["P02"]["input_tokens"] > rows["P01"]["input_tokens"]  # its own request is billed to it
    assert_shares_sum_to_the_bill(relay)


def test_a_poison_product_fails_alone_and_its_pack_mates_succeed(run_cli, tmp_path: Path) -> None:
    """Every answer to a request holding the poison product is broken JSON: the pack fails
    whole twice, is split in halves, and so on until the product is alone."""
    with FakeRelay(poison="Cursed kettle") as relay:
        result = live(run_cli, relay, catalog(tmp_path, poison="Cursed kettle"), "--pack", "8")
    assert result.exit_code == 1, result.stderr
    rows = results()
    assert sorted(rows) == [product_id for product_id in IDS if product_id != "P03"]
    (failure,) = iter_jsonl(Path("out/failures.jsonl"))
    assert failure["id"] == "P03" and failure["error"] == "invalid_json"
    sizes = [body["messages"][1]["content"].count("<product_data id=") for body in relay.chat_requests]
    # Asked whole twice; then the half holding it twice (its first quarter once); then its
    # pair twice; then alone: its own three asks (max_reasks 2), and its pair-mate once; the
    # other half, once.
    assert sizes == [8, 8, 4, 4, 2, 2, 2, 0, 0, 0, 0, 4]
    assert_shares_sum_to_the_bill(relay)


def test_changing_pack_makes_nothing_stale(run_cli, tmp_path: Path) -> None:
    path = catalog(tmp_path)
    with FakeRelay() as relay:
        assert live(run_cli, relay, path, "--pack", "4").exit_code == 0
        before = {name: Path("out", name).read_bytes() for name in ("results.jsonl", "localize.lock")}
        sent = len(relay.chat_requests)
        again = live(run_cli, relay, path, "--pack", "1")
        assert again.exit_code == 0 and "All 8 jobs are up to date" in again.stderr
        assert len(relay.chat_requests) == sent
        checked = run_cli("run", path, "-l", "de-DE", "--out", "out", "--check", "--pack", "auto")
        assert checked.exit_code == 0, checked.stderr
        # An edited product regenerates its own job only, in a request of its own.
        write(path, path.read_text().replace("Travel kettle P05", "Travel kettle P05 (blue)"))
        edited = live(run_cli, relay, path, "--pack", "4")
        assert edited.exit_code == 0
        assert len(relay.chat_requests) == sent + 1
        assert relay.chat_requests[-1]["messages"][1]["content"].count("<product_data id=") == 0
    assert Path("out/localize.lock").read_bytes() != before["localize.lock"]


def test_ids_that_could_break_the_fence_are_escaped_and_matched(run_cli, tmp_path: Path) -> None:
    ids = ['A"1', "B<2>", "C&3"]
    lines = ["id,name"] + [  # three products of their own (the same copy would be asked once)
        f'"{product_id.replace(chr(34), chr(34) * 2)}",Kettle {n}' for n, product_id in enumerate(ids, start=1)
    ]
    path = write(tmp_path / "odd.csv", "\n".join(lines) + "\n")
    with FakeRelay() as relay:
        result = live(run_cli, relay, path, "--pack", "3")
    assert result.exit_code == 0, result.stderr
    user = relay.chat_requests[0]["messages"][1]["content"]
    assert '<product_data id="A&quot;1">' in user and '<product_data id="B&lt;2&gt;">' in user
    assert '<product_data id="C&amp;3">' in user
    assert sorted(results()) == sorted(ids) and len(relay.chat_requests) == 1


def test_a_budget_reserves_a_packs_worst_case(run_cli, tmp_path: Path) -> None:
    """A cap too small for one packed request's worst case sends nothing and spends nothing."""
    with FakeRelay() as relay:
        result = live(run_cli, relay, catalog(tmp_path), "--pack", "8", "--max-cost", "0.005")
    assert result.exit_code == 3, result.stderr
    assert relay.chat_requests == []
    assert {row["error"] for row in iter_jsonl(Path("out/failures.jsonl"))} == {"budget"}


def test_the_estimate_shows_requests_tokens_and_time_with_packing(run_cli, tmp_path: Path) -> None:
    path = catalog(tmp_path)
    packed = json.loads(run_cli("estimate", path, "-l", "de-DE", "--pack", "4", "--rpm", "2", "--json").stdout)
    single = json.loads(run_cli("estimate", path, "-l", "de-DE", "--pack", "1", "--rpm", "2", "--json").stdout)
    assert packed["requests"] == 2 and single["requests"] == 8
    # Sent at --rpm unless too few are in flight to keep it (here one: concurrency 1), then the
    # last answer written; a pack's answer takes longer than one listing's.
    timing, seconds = packed["timing"], packed["timing"]["answer_seconds"]
    assert timing["concurrency"] == 1 and seconds > 30
    assert timing["minutes"] == round(max(2 / 2, 2 * seconds / 60) + seconds / 60, 1)
    assert timing["pack_1"]["minutes"] > 8 / 2
    assert packed["timing"]["pack_1"]["input_tokens"] == single["tokens"]["input"]
    assert packed["tokens"]["input"] < 0.6 * single["tokens"]["input"]
    text = run_cli("estimate", path, "-l", "de-DE", "--pack", "4", "--rpm", "2")
    assert f"Time at --rpm 2: 2 requests, about {timing['minutes']:.0f} min (1 in flight: an answer" in text.stderr
    # What the estimate says a run sends is what a run sends.
    with FakeRelay() as relay:
        assert live(run_cli, relay, path, "--pack", "4").exit_code == 0
        assert len(relay.chat_requests) == packed["requests"]
        counted = sum(record["counted_input"] for record in iter_jsonl(Path("out/requests.jsonl")))
    assert counted == pytest.approx(packed["tokens"]["input"], rel=0.02)


def many(tmp_path: Path, count: int = 60) -> Path:
    return catalog(tmp_path, [f"P{number:03d}" for number in range(count)])


def packs(run_cli, path: Path, *args: str) -> dict[str, int]:
    return json.loads(run_cli("estimate", path, "-l", "de-DE,ja-JP", *args, "--json").stdout)["timing"]["packs"]


def test_pack_auto_fills_the_models_output_limit_per_locale(run_cli, tmp_path: Path) -> None:
    """--pack auto puts as many products in a request as the model's output limit holds with
    every answer at the high estimate: Japanese answers take more tokens, so fewer of them."""
    path = many(tmp_path, 400)  # (a run large enough that its packs need not spread: see below)
    # kimi-k2: 32,000 (prices.yaml); a German listing at the high estimate is under 1,600 tokens.
    assert packs(run_cli, path) == {"de-DE/amazon": PACK_MAX, "ja-JP/amazon": 12}
    # A model that writes less holds fewer...
    write(
        tmp_path / "localize.yaml",
        "prices:\n  kimi-k2: {input: 0.6, cached_input: 0.15, output: 2.5, max_output_tokens: 8000}\n",
    )
    assert packs(run_cli, path) == {"de-DE/amazon": 8, "ja-JP/amazon": 3}
    # ...a price override alone keeps the model's limit...
    write(tmp_path / "localize.yaml", "prices:\n  kimi-k2: {input: 1.2, cached_input: 0.3, output: 5}\n")
    assert packs(run_cli, path) == {"de-DE/amazon": PACK_MAX, "ja-JP/amazon": 12}
    # ...and --max-tokens caps every request, packs sized to it, as before the limits were known.
    assert packs(run_cli, path, "--max-tokens", "4096") == {"de-DE/amazon": 4, "ja-JP/amazon": 1}


def test_a_thinking_model_keeps_room_for_its_reasoning(run_cli, tmp_path: Path) -> None:
    path = many(tmp_path, 400)
    write(
        tmp_path / "localize.yaml",
        "prices:\n  kimi-k2.6: {input: 0.95, cached_input: 0.16, output: 4, max_output_tokens: 40000}\n",
    )
    plain = packs(run_cli, path, "--model", "kimi-k2.6")
    thinking = packs(run_cli, path, "--model", "kimi-k2.6", "--thinking")
    assert plain["ja-JP/amazon"] == 15 and thinking["ja-JP/amazon"] == 9  # 16,384 tokens kept for reasoning


def test_a_small_run_spreads_its_jobs_over_the_requests_it_keeps_in_flight(run_cli, tmp_path: Path) -> None:
    """26 jobs at the 16 requests a run starts with in flight go two to a request, all written at
    once, not as two of 13 written one after another; with one in flight, packs stay full."""
    path = catalog(tmp_path, [f"P{number:02d}" for number in range(13)])
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")  # (no concurrency: the default)
    assert packs(run_cli, path) == {"de-DE/amazon": 2, "ja-JP/amazon": 2}
    assert packs(run_cli, path, "--concurrency", "1") == {"de-DE/amazon": 13, "ja-JP/amazon": 12}
    estimated = json.loads(run_cli("estimate", path, "-l", "de-DE,ja-JP", "--json").stdout)["requests"]
    with FakeRelay() as relay:
        assert run_cli("run", path, "-l", "de-DE,ja-JP", "--base-url", relay.base_url, "--out", "out").exit_code == 0
        sizes = sorted(len(_PACKED_ID.findall(body["messages"][1]["content"])) for body in relay.chat_requests)
    assert len(sizes) == estimated == 14 and max(sizes) == 2  # the run sends what the estimate said
    # A batch waits for no answer: its packs stay full.
    batch = json.loads(run_cli("estimate", path, "-l", "de-DE,ja-JP", "--batch", "--json").stdout)
    assert batch["timing"]["packs"] == {"de-DE/amazon": 13, "ja-JP/amazon": 12}


def test_each_packed_request_asks_max_tokens_for_its_own_pack(run_cli, tmp_path: Path) -> None:
    """A full pack asks for its listings at the high estimate; the last, smaller one for less;
    a job alone, the default 4,096."""
    path = catalog(tmp_path, [f"P{number:02d}" for number in range(25)])
    with FakeRelay() as relay:
        result = live(run_cli, relay, path)
        asked = [
            (len(_PACKED_ID.findall(body["messages"][1]["content"])), body["max_tokens"])
            for body in relay.chat_requests
        ]
    assert result.exit_code == 0, result.stderr
    assert [count for count, _ in asked] == [PACK_MAX, 5]
    per_listing = (asked[0][1] - ANSWER_JSON_TOKENS) / PACK_MAX
    assert per_listing == int(per_listing) and asked[1][1] == max(4096, 5 * int(per_listing) + ANSWER_JSON_TOKENS)
    assert_shares_sum_to_the_bill(relay)


def test_a_pack_cut_at_max_tokens_is_split_and_its_halves_ask_for_more(run_cli, tmp_path: Path) -> None:
    """An answer cut at max_tokens is not asked again whole (it would be cut again): its halves
    go out, each asking for more per listing than the estimate said, and every listing lands."""
    path = catalog(tmp_path, [f"P{number:02d}" for number in range(20)])
    with FakeRelay() as relay:
        relay.enqueue(Answer(content='{"listings": {"P00": {"title": "' + "lang " * 40_000))
        result = live(run_cli, relay, path)
        bodies = relay.chat_requests
    assert result.exit_code == 0, result.stderr
    sizes = [len(_PACKED_ID.findall(body["messages"][1]["content"])) for body in bodies]
    assert sizes == [20, 10, 10]
    first = bodies[0]["max_tokens"]
    # The cut answer reached `first` tokens for 20 listings: each half asks 10 x first/20 x 1.25.
    assert all(body["max_tokens"] >= math.ceil(first / 20 * 1.25) * 10 for body in bodies[1:])
    assert sorted(results()) == [f"P{number:02d}" for number in range(20)]
    attempts = [record for record in iter_jsonl(Path("out/requests.jsonl")) if record.get("error")]
    assert {record["error"] for record in attempts} == {"truncated"} and len(attempts) == 20
    assert_shares_sum_to_the_bill(relay)


def test_answer_room_sizes_packs_and_requests() -> None:
    room = AnswerRoom(32_000)
    assert room.pack_size("auto", 1_000) == PACK_MAX and room.pack_size("auto", 2_600) == 12
    assert room.pack_size(3, 2_600) == 3  # --pack N as given
    assert room.max_tokens(12, 2_600) == 12 * 2_600 + ANSWER_JSON_TOKENS
    assert room.max_tokens(1, 900) == 4096  # never under the default
    assert AnswerRoom(4096, fixed=True).max_tokens(4, 900) == 4096  # --max-tokens: every request
    assert AnswerRoom(40_000, reasoning=16_384).max_tokens(2, 1_000) == 2_000 + ANSWER_JSON_TOKENS + 16_384
    assert AnswerRoom(1_000).pack_size("auto", 5_000) == 1  # one always goes


def test_a_request_asking_for_a_long_answer_waits_longer() -> None:
    assert answer_timeout_s(120.0, 4096) == 120.0 and answer_timeout_s(120.0, None) == 120.0
    assert answer_timeout_s(120.0, 1000) == 120.0
    grown = answer_timeout_s(120.0, 4096 + 15_000)
    assert grown == 120.0 + 15_000 / SLOWEST_TOKENS_PER_S  # every extra token at the slowest healthy pace


@pytest.mark.parametrize("value", ["0", "-2", "many", "51"])
def test_a_bad_pack_is_a_one_line_error(run_cli, tmp_path: Path, value: str) -> None:
    result = run_cli("estimate", catalog(tmp_path), "-l", "de-DE", "--pack", value)
    assert result.exit_code == 2
    assert "--pack" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_apportion_sums_exactly_and_follows_the_weights() -> None:
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [0, 0]) == [4, 3]
    assert apportion(0, [5, 1]) == [0, 0]
    assert apportion(1001, [500, 300, 200]) == [501, 300, 200]
    for total in (1, 17, 999, 123_457):
        for weights in ([3, 1, 4, 1, 5], [1], [0, 9, 0], [7, 7]):
            shares = apportion(total, weights)
            assert sum(shares) == total
            assert all(abs(share - total * w / sum(weights)) < 1 for share, w in zip(shares, weights, strict=True))


def test_split_usage_keeps_cached_within_input() -> None:
    shares = split_usage(Usage(1000, 999, 301), [1, 2, 3], [0, 1, 1])
    assert sum(s.input_tokens for s in shares) == 1000 and sum(s.cached_tokens for s in shares) == 999
    assert sum(s.output_tokens for s in shares) == 301 and shares[0].output_tokens == 0
    assert all(s.cached_tokens <= s.input_tokens for s in shares)


def test_read_pack_takes_escaped_keys_and_refuses_the_wrong_shape() -> None:
    listing = {"title": "t"}
    found = read_pack(json.dumps({"listings": {"A&amp;B": listing}}), "stop", ["A&B", "C"])
    assert found == {"A&B": listing, "C": None}
    for content, finish in (('{"title": "x"}', "stop"), ('{"listings": {"Z": {}}}', "stop"), ("{", "length")):
        with pytest.raises(InvalidAnswer):
            read_pack(content, finish, ["A&B"])


def test_a_packs_failed_attempts_and_missing_usage_count_once_per_request(run_cli, tmp_path: Path) -> None:
    """A 500, a dropped connection (maybe billed) and an answer without usage, each for a pack
    of four: one request each in the report, shares for every job in the audit log."""
    with FakeRelay() as relay:
        relay.enqueue(Reply(500, {"error": {"type": "server_error", "message": "boom"}}), DROP, Answer(usage=MISSING))
        result = live(run_cli, relay, catalog(tmp_path, IDS[:4]), "--pack", "4")
    assert result.exit_code == 0, result.stderr
    assert len(relay.paths) == 3
    rows = results()
    assert all(row["attempts"] == 3 and "usage_unreported" in row["warnings"] for row in rows.values())
    rep = report()
    assert rep["requests"] == 3 and rep["errors"] == {"connection": 4, "server_error": 4}
    assert rep["unconfirmed"]["requests"] == 1 and rep["unreported"]["requests"] == 1
    records = list(iter_jsonl(Path("out/requests.jsonl")))
    dropped = [record for record in records if record.get("maybe_billed")]
    assert len(dropped) == 4 and rep["unconfirmed"]["counted_input_tokens"] == sum(
        record["counted_input"] for record in dropped
    )


def packed(**listings: dict) -> str:
    return json.dumps({"listings": listings}, ensure_ascii=False)


def test_read_pack_matches_only_the_fence_id_and_refuses_an_id_twice() -> None:
    listing = {"title": "t"}
    # a&b is fenced as a&amp;b, and a&amp;b as a&amp;amp;b: neither takes the other's listing.
    found = read_pack(packed(**{"a&amp;b": {"id": "a&amp;b", **listing}}), "stop", ["a&b", "a&amp;b"])
    assert found == {"a&b": listing, "a&amp;b": None}
    nfd, nfc = "cafe\u0301", "caf\u00e9"  # one id as the catalog writes it, and as a model may normalise it
    assert read_pack(packed(**{nfc: listing, "X": listing}), "stop", [nfd, "X"]) == {nfd: None, "X": listing}
    with pytest.raises(InvalidAnswer, match="no listing under any product's id"):
        read_pack(packed(**{nfc: listing}), "stop", [nfd])
    with pytest.raises(InvalidAnswer, match="repeats the key 'P1'"):
        read_pack('{"listings": {"P1": {"title": "a"}, "P2": {"title": "b"}, "P1": {"title": "c"}}}', "stop", ["P1"])


def test_a_listing_that_names_another_product_is_not_taken_for_its_key() -> None:
    found = read_pack(packed(P1={"id": "P2", "title": "for P2"}, P2={"id": "P2", "title": "x"}), "stop", ["P1", "P2"])
    assert isinstance(found["P1"], InvalidAnswer) and "says it is for 'P2'" in str(found["P1"])
    assert found["P2"] == {"title": "x"}


def own_listing(locale_listing: dict, product_id: str) -> dict:
    return {"id": product_id, **locale_listing, "title": f"Wasserkocher für {product_id}"}


def test_a_packed_answer_with_an_id_twice_lands_on_no_product(run_cli, tmp_path: Path) -> None:
    from fake_relay import listing_for

    german = listing_for("de")
    twice = (
        '{"listings": {"P01": '
        + json.dumps(own_listing(german, "P01"), ensure_ascii=False)
        + ', "P02": '
        + json.dumps(own_listing(german, "P02"), ensure_ascii=False)
        + ', "P02": '
        + json.dumps({**own_listing(german, "P02"), "title": "Wasserkocher für P01"}, ensure_ascii=False)
        + "}}"
    )
    with FakeRelay() as relay:
        relay.enqueue(Answer(content=twice))
        result = live(run_cli, relay, catalog(tmp_path, IDS[:2]), "--pack", "2")
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 2  # refused as a whole, asked again
    assert all("für" not in row["title"] for row in results().values())
    refused = [r for r in iter_jsonl(Path("out/requests.jsonl")) if r.get("error") == "schema"]
    assert refused and "repeats the key 'P02'" in refused[0]["message"]


def test_ids_differing_only_by_escaping_keep_their_own_listings(run_cli, tmp_path: Path) -> None:
    """An honest model copies the fence ids as written: `a&b` is fenced `a&amp;b`, the id
    `a&amp;b` is fenced `a&amp;amp;b`, and each product gets its own listing."""
    path = write(tmp_path / "twins.csv", "id,name\na&b,Kettle 1.5 l\na&amp;b,Kettle 2.5 l\n")
    with FakeRelay() as relay:
        result = live(run_cli, relay, path, "--pack", "2")
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 1
    assert "1,5" in results()["a&b"]["description"] or "1.5" in results()["a&b"]["description"]
    assert "2,5" in results()["a&amp;b"]["description"] or "2.5" in results()["a&amp;b"]["description"]


def test_a_listing_written_under_the_wrong_id_is_caught_by_its_echo(run_cli, tmp_path: Path) -> None:
    from fake_relay import listing_for

    german = listing_for("de")
    mixed = packed(P01={**own_listing(german, "P02")}, P02=own_listing(german, "P02"))
    with FakeRelay() as relay:
        relay.enqueue(Answer(content=mixed))
        result = live(run_cli, relay, catalog(tmp_path, IDS[:2]), "--pack", "2")
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 2  # P01 asked again alone; P02 kept
    assert "P01" not in results()["P01"]["title"] and results()["P02"]["title"] == "Wasserkocher für P02"
    mixed_up = [r for r in iter_jsonl(Path("out/requests.jsonl")) if r.get("error") == "mixed_up"]
    assert [r["id"] for r in mixed_up] == ["P01"]


def test_a_swapped_packed_answer_without_the_id_echo_lands_on_no_product(run_cli, tmp_path: Path) -> None:
    """An answerer that predates the "id" echo swaps two listings: each names the other product
    (its name), so neither is taken where it stands; each product is asked again alone."""
    from fake_relay import listing_for

    german = listing_for("de")
    swapped = packed(
        P01={**german, "title": "Travel kettle P02 – Wasserkocher"},
        P02={**german, "title": "Travel kettle P01 – Wasserkocher"},
    )
    with FakeRelay() as relay:
        relay.enqueue(Answer(content=swapped))
        result = live(run_cli, relay, catalog(tmp_path, IDS[:2]), "--pack", "2")
    assert result.exit_code == 0, result.stderr
    assert len(relay.chat_requests) == 3  # the pack, then each alone
    assert "P02" not in results()["P01"]["title"] and "P01" not in results()["P02"]["title"]
    wrong = [r["id"] for r in iter_jsonl(Path("out/requests.jsonl")) if r.get("error") == "wrong_product"]
    assert sorted(wrong) == ["P01", "P02"]


def test_five_markets_go_at_least_fourteen_jobs_a_request(run_cli, tmp_path: Path) -> None:
    """The standard tier's goal at a test's scale: five locales, --pack auto, every listing
    valid, the report equal to the bill, and at least 14 jobs in each request on average."""
    path = many(tmp_path, 60)
    with FakeRelay() as relay:
        result = run_cli(
            "run", path, "-l", "de-DE,fr-FR,es-ES,it-IT,ja-JP", "--base-url", relay.base_url, "--out", "out"
        )
        requests = len(relay.chat_requests)
    assert result.exit_code == 0, result.stderr
    assert len(list(iter_jsonl(Path("out/results.jsonl")))) == 300 and 300 / requests >= 14
    assert_shares_sum_to_the_bill(relay)


def test_max_tokens_filling_the_context_window_is_refused_before_anything_is_sent(run_cli, tmp_path: Path) -> None:
    with FakeRelay() as relay:
        result = live(run_cli, relay, catalog(tmp_path), "--max-tokens", "200000")
        sent = relay.chat_requests
    assert result.exit_code == 2 and sent == []
    assert "--max-tokens 200,000 leaves no room for a prompt in kimi-k2's context window" in result.stderr
    assert "Traceback" not in result.stderr


def test_packs_fill_per_key_in_order_and_let_the_rest_go_at_the_end() -> None:
    packs: Packs[str] = Packs()
    full = [
        packs.add(key, item, size)
        for key, item, size in [
            ("de", "a", 2),
            ("ja", "b", 3),
            ("de", "c", 2),
            ("ja", "d", 3),
            ("de", "e", 2),
            ("ja", "f", 1),
        ]
    ]
    assert full == [None, None, ["a", "c"], None, None, ["b", "d", "f"]]  # a size met at the item that fills it
    assert list(packs.rest()) == [["e"]]
    assert list(packs.rest()) == []  # let go once

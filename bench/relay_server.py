"""A fast OpenAI-compatible relay for benchmarks (aiohttp, its own process).

    python bench/relay_server.py --port 8765 --latency-ms 80 --jitter-ms 40 --limit-rps 400

Answers every chat request with a valid listing in the requested language after a random
latency (a packed request, with one listing per product id). With --limit-rps it enforces a
one-second sliding window at that rate and answers over it with 429 + Retry-After, like a
relay's rate limiter. Its bad days:

- --overload-share P: P of the requests it takes, at random, get `429 engine_overloaded_error`
  with Retry-After: 1 (Moonshot's busy engine);
- --fault-share P: P of each job's first and second attempts fail in assorted ways: 500, 502,
  503, a dropped connection, a hang past the client's timeout (--hang-s; billed, never seen),
  a 200 that is not JSON, a rate-limit 429;
- --rate-headers: every answer states the limit in x-ratelimit-* headers (per minute);
- --figure-faults P: P of each job's first and second answers change one figure of the product
  (its listings otherwise keep every figure and model name, as a careful model does);
- --break-per-listing P: an answer holding N listings is cut off (finish_reason "length",
  billed whole) with probability 1 - (1 - P)^N: the longer the answer, the likelier it breaks.

On SIGTERM it prints what it served, and what it billed, as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import html
import json
import random
import re
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_relay import (  # noqa: E402  (shared with the test relay)
    _PACKED_ID,
    _PRODUCT,
    _STRINGS,
    _TARGET,
    asked_listing,
    facts_line,
    translate_string,
)

FAULTS = ["500", "502", "503", "drop", "hang", "not_json", "429"]


def build_app(args: argparse.Namespace, stats: dict) -> web.Application:
    window: collections.deque[float] = collections.deque()
    rng = random.Random(1)
    attempts: collections.Counter[str] = collections.Counter()  # per job: its product data and locale

    def error(status: int, kind: str, message: str, **headers: str) -> web.Response:
        stats["faults"][kind] = stats["faults"].get(kind, 0) + 1
        return web.json_response({"error": {"type": kind, "message": message}}, status=status, headers=headers)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        now = time.monotonic()
        stats["requests"] += 1
        stats.setdefault("first_at", now)
        headers = {}
        if args.limit_rps:
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= args.limit_rps:
                stats["rejected_429"] += 1
                return error(429, "rate_limit_reached_error", "max RPM reached", **{"Retry-After": "1"})
            window.append(now)
            if args.rate_headers:
                headers = {
                    "x-ratelimit-limit-requests": str(args.limit_rps * 60),
                    "x-ratelimit-remaining-requests": str(args.limit_rps - len(window)),
                }
        if args.overload_share and rng.random() < args.overload_share:
            stats["overloaded_429"] += 1
            return error(429, "engine_overloaded_error", "The engine is currently overloaded", **{"Retry-After": "1"})
        job = body["messages"][0]["content"][-200:] + body["messages"][1]["content"]
        attempts[job] += 1
        await asyncio.sleep(max(0.0, rng.gauss(args.latency_ms, args.jitter_ms / 2)) / 1000)
        fault = rng.choice(FAULTS) if attempts[job] <= 2 and rng.random() < args.fault_share else None
        if fault in ("500", "502", "503"):
            return error(int(fault), "server_error", "upstream failed")
        if fault == "429":
            stats["rejected_429"] += 1
            return error(429, "rate_limit_reached_error", "max RPM reached", **{"Retry-After": "1"})
        if fault == "drop":
            stats["faults"]["drop"] = stats["faults"].get("drop", 0) + 1
            request.transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if fault == "not_json":
            stats["faults"]["not_json"] = stats["faults"].get("not_json", 0) + 1
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        system = body["messages"][0]["content"]
        match = _TARGET.search(system)
        listing = asked_listing(match.group(1) if match else "en", system)
        user = body["messages"][1]["content"]
        facts = {html.unescape(pid or ""): facts_line(block) for pid, block in _PRODUCT.findall(user)}
        changed = attempts[job] <= 2 and rng.random() < args.figure_faults
        if changed:
            stats["figures_changed"] += 1

        def kept(product_id: str) -> dict:
            """The listing with the product's facts, one figure changed where this answer errs."""
            line = facts.get(product_id, "")
            if changed:
                line = re.sub(r"\d+", lambda number: number.group(0) + "0", line, count=1)
            return {**listing, "description": f"{listing['description']} {line}".rstrip()}

        packed = _PACKED_ID.findall(user)  # as written in the fences, as an honest model copies them
        asked = _STRINGS.search(user)  # a store's strings (the string-translation wire contract)
        if asked is not None:
            texts = json.loads(asked.group(1))
            locale = match.group(1) if match else "en"
            answer = {"strings": {key: translate_string(text, locale) for key, text in texts.items()}}
        elif packed:
            answer = {"listings": {fenced: {"id": fenced, **kept(html.unescape(fenced))} for fenced in packed}}
        else:
            answer = kept("")
        content = json.dumps(answer, ensure_ascii=False)
        finish_reason = "stop"
        # A long answer breaks more often: each listing it holds may cut it off (billed all the same).
        if args.break_per_listing and rng.random() < 1 - (1 - args.break_per_listing) ** max(len(packed), 1):
            stats["broken_answers"] = stats.get("broken_answers", 0) + 1
            stats["broken_listings"] = stats.get("broken_listings", 0) + max(len(packed), 1)
            content, finish_reason = content[: len(content) * 2 // 3], "length"
        prompt_tokens = sum(len(m["content"]) // 4 + 4 for m in body["messages"]) + 3
        completion_tokens = len(content) // 4 + 1
        billed = "billed_unseen" if fault == "hang" else "billed"
        stats[billed]["prompt_tokens"] += prompt_tokens
        stats[billed]["completion_tokens"] += completion_tokens
        stats[billed]["responses"] += 1
        if fault == "hang":  # generated and billed, but the client will have given up
            stats["faults"]["hang"] = stats["faults"].get("hang", 0) + 1
            await asyncio.sleep(args.hang_s)
        stats["answered"] += 1
        stats["last_at"] = time.monotonic()
        return web.json_response(
            {
                "id": f"chatcmpl-{stats['answered']}",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content}}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            headers=headers,
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def serve(args: argparse.Namespace) -> None:
    stats: dict = {
        "requests": 0,
        "answered": 0,
        "rejected_429": 0,
        "overloaded_429": 0,
        "figures_changed": 0,
        "faults": {},
    }
    for bill in ("billed", "billed_unseen"):
        stats[bill] = {"prompt_tokens": 0, "completion_tokens": 0, "responses": 0}
    runner = web.AppRunner(build_app(args, stats), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)  # never outlives a benchmark
    await runner.cleanup()
    # The sustained rate, as the relay saw it: answers between the first request and the last answer.
    span = stats.pop("last_at", 0.0) - stats.pop("first_at", 0.0)
    stats["answers_per_s"] = stats["answered"] / span if span > 0 else 0.0
    print(json.dumps(stats), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=80)
    parser.add_argument("--jitter-ms", type=float, default=40)
    parser.add_argument("--limit-rps", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--overload-share", type=float, default=0.0)
    parser.add_argument("--fault-share", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=5.0)
    parser.add_argument("--rate-headers", action="store_true")
    parser.add_argument("--figure-faults", type=float, default=0.0)
    parser.add_argument("--break-per-listing", type=float, default=0.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()

"""The usual integration snippet, for comparison: asyncio.Semaphore + gather + per-call retry.

No shared limiter and no shared pause: each call retries on its own with exponential back-off
(honouring Retry-After) on 429, 5xx, timeouts and broken connections, the way SDK quick-starts
and blog posts write it. httpx's default transport, as the openai SDK uses.

    python bench/baseline_snippet.py --base-url http://127.0.0.1:8765/v1 --jobs 1500 --slots 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import httpx


async def main(args: argparse.Namespace) -> dict:
    semaphore = asyncio.Semaphore(args.slots)
    stats = {"requests": 0, "rejected_429": 0, "server_errors": 0, "transport_errors": 0, "succeeded": 0}
    async with httpx.AsyncClient(
        base_url=args.base_url, timeout=args.timeout, headers={"Authorization": "Bearer sk-bench"}
    ) as client:

        async def localize(number: int) -> None:
            body = {
                "model": "kimi-k2",
                "messages": [
                    {"role": "system", "content": "Target locale: de-DE. Write the listing as JSON."},
                    {"role": "user", "content": f"Product {number}: wireless headphones"},
                ],
                "max_tokens": 4096,
                "response_format": {"type": "json_object"},
            }
            async with semaphore:
                for attempt in range(8):
                    stats["requests"] += 1
                    try:
                        response = await client.post("/chat/completions", json=body)
                        if response.status_code == 429 or response.status_code >= 500:
                            stats["rejected_429" if response.status_code == 429 else "server_errors"] += 1
                            wait = float(response.headers.get("retry-after", 2**attempt))
                            await asyncio.sleep(wait + random.random())
                            continue
                        response.raise_for_status()
                        json.loads(response.json()["choices"][0]["message"]["content"])
                    except (httpx.TransportError, ValueError, KeyError):
                        stats["transport_errors"] += 1
                        await asyncio.sleep(2**attempt * random.random())
                        continue
                    stats["succeeded"] += 1
                    return

        started = time.perf_counter()
        await asyncio.gather(*(localize(n) for n in range(args.jobs)))
        stats["elapsed_s"] = time.perf_counter() - started
    return stats


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))

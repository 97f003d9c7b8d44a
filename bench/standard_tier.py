"""The standard tier (60 requests a minute): what the dry run promises, and a live run that keeps it.

    python bench/standard_tier.py                         # both parts, as bench/RESULTS.md records them
    python bench/standard_tier.py --dry-products 10000 --live-products 300 --limit-rps 5

1. The dry run of --dry-products × de-DE, fr-FR, es-ES, it-IT, ja-JP at --rpm 60: requests,
   minutes and the products each request carries per locale (`timing` of its JSON), beside
   one product per request.
2. A live run of --live-products × the same five locales, `--pack auto`, against
   bench/relay_server.py limited to --limit-rps requests a second (a 429 with Retry-After past
   it): jobs per request, listings valid, and whether the cost report equals what the relay
   billed (tokens and dollars).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import free_port, start_relay, stop_relay, write_catalog  # noqa: E402

LOCALES = "de-DE,fr-FR,es-ES,it-IT,ja-JP"


def dry_run(catalog: Path) -> None:
    command = [sys.executable, "-m", "localize", "estimate", str(catalog), "-l", LOCALES, "--rpm", "60", "--json"]
    report = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    timing = report["timing"]
    print(f"dry run: {report['jobs']['total']:,} jobs at --rpm 60")
    print(f"  {'locale/platform':<18}{'per request':>12}{'requests':>10}")
    for group, entry in sorted(report["by_locale_platform"].items()):
        print(f"  {group:<18}{timing['packs'][group]:>12}{entry['requests']:>10,}")
    print(
        f"  total: {timing['requests']:,} requests, {timing['minutes']} minutes "
        f"({timing['concurrency']} in flight, an answer ~{timing['answer_seconds']:.0f} s); "
        f"--pack 1: {timing['pack_1']['requests']:,} requests, {timing['pack_1']['minutes']} minutes"
    )


def live_run(catalog: Path, products: int, limit_rps: int) -> None:
    port = free_port()
    relay = start_relay(port, latency_ms=300, jitter_ms=100, limit_rps=limit_rps)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        command = [sys.executable, "-m", "localize", "run", str(catalog), "-l", LOCALES, "--out", str(out)]
        command += ["--base-url", f"http://127.0.0.1:{port}/v1", "--rpm", str(limit_rps * 60)]
        command += ["--no-progress", "--json"]
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, env={"HOLYSHEEP_API_KEY": "sk-bench"})
        finally:
            served = stop_relay(relay)
        wall = time.perf_counter() - started
        report = json.loads(done.stdout)
        valid = sum(1 for _ in (out / "results.jsonl").open(encoding="utf-8"))
    billed = {"cached_tokens": 0, **served["billed"]}  # (the bench relay has no prefix cache)
    tokens = report["tokens"]
    same_tokens = (tokens["input"], tokens["cached_input"], tokens["output"]) == (
        billed["prompt_tokens"],
        billed["cached_tokens"],
        billed["completion_tokens"],
    )
    price_in, price_cached, price_out = Decimal("0.60"), Decimal("0.15"), Decimal("2.50")  # kimi-k2, prices.yaml
    bill = (
        (billed["prompt_tokens"] - billed["cached_tokens"]) * price_in
        + billed["cached_tokens"] * price_cached
        + billed["completion_tokens"] * price_out
    ) / 1_000_000
    jobs = report["jobs"]["total"]
    print(f"live run: {products} products × 5 locales against a relay limited to {limit_rps} requests/s")
    print(
        f"  exit {done.returncode}; {jobs:,} jobs in {report['requests']:,} requests = "
        f"{jobs / report['requests']:.1f} jobs a request; {valid:,} listings valid; "
        f"{served['rejected_429']} 429s; {wall:.1f} s"
    )
    print(
        f"  report ${report['cost_usd']:.6f} against the relay's bill ${float(bill):.6f}; "
        f"tokens {'equal' if same_tokens else 'DIFFER'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-products", type=int, default=10_000)
    parser.add_argument("--live-products", type=int, default=300)
    parser.add_argument("--limit-rps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_catalog(work / "dry.csv", args.dry_products)
        dry_run(work / "dry.csv")
        write_catalog(work / "live.csv", args.live_products)
        live_run(work / "live.csv", args.live_products, args.limit_rps)


if __name__ == "__main__":
    main()

"""How many products a request should carry at most: requests saved against what a broken big
answer costs to ask again.

    python bench/pack_ceiling.py                                  # --pack 1..32, 0.5% and 1% per listing
    python bench/pack_ceiling.py --products 480 --sizes 8,16,20,32 --breaks 0.005

For each pack size N and each per-listing break rate P, one live run of --products × de-DE,ja-JP
with `--pack N` against bench/relay_server.py, whose answer of N listings is cut off (billed
whole, finish_reason "length") with probability 1 - (1 - P)^N: a long answer is likelier to
break. Prints, per run: requests per job (what the rate limit counts), input and output tokens
billed per listing (what a broken answer wastes is paid again), USD per 1,000 listings as
billed and as it would be with real listing lengths (each listing a broken answer held written
again at that length, the pack's keys and id echoes as measured), and every listing valid or
not. PACK_MAX (planning/packing.py) is where the requests stop falling much while the waste
keeps growing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import free_port, start_relay, stop_relay, write_catalog  # noqa: E402

# Output tokens of a real listing: the dry run's expected mean of a German (629) and a Japanese
# (1,796) Amazon listing, where the bench relay's stock answer is under a hundred.
REAL_LISTING_TOKENS = 1_212


def one_run(catalog: Path, out: Path, size: int, rate: float) -> dict[str, float]:
    port = free_port()
    relay = start_relay(port, latency_ms=50, jitter_ms=20, extra=["--break-per-listing", str(rate)])
    try:
        command = [sys.executable, "-m", "localize", "run", str(catalog), "-l", "de-DE,ja-JP", "--out", str(out)]
        command += ["--base-url", f"http://127.0.0.1:{port}/v1", "--rpm", "1000000", "--concurrency", "16"]
        command += ["--pack", str(size), "--no-progress", "--json"]
        done = subprocess.run(command, capture_output=True, text=True, env={"HOLYSHEEP_API_KEY": "sk-bench"})
    finally:
        served = stop_relay(relay)
    report = json.loads(done.stdout)
    jobs = report["jobs"]["total"]
    return {
        "exit": done.returncode,
        "requests_per_job": report["requests"] / jobs,
        "input_per_listing": report["tokens"]["input"] / jobs,
        "output_per_listing": report["tokens"]["output"] / jobs,
        "usd_per_1000": report["cost_usd"] / jobs * 1000,
        "valid": report["jobs"]["succeeded"] / jobs,
        "broken": served.get("broken_answers", 0),
        "rewritten": served.get("broken_listings", 0) / jobs,  # listings written again, per listing
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=480)
    parser.add_argument("--sizes", default="1,4,8,12,16,20,24,32")
    parser.add_argument("--breaks", default="0.005,0.01")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        catalog = work / "catalog.csv"
        write_catalog(catalog, args.products)
        print(f"{args.products} products × de-DE,ja-JP; an answer of N listings breaks with 1 - (1 - P)^N")
        print(
            f"real: each listing {REAL_LISTING_TOKENS:,} output tokens (the estimate's German and Japanese Amazon"
            " mean) instead of the bench relay's short one, at kimi-k2's prices"
        )
        header = f"{'P':>6} {'N':>4} {'req/job':>8} {'in/listing':>11} {'out/listing':>12} {'$/1,000':>8}"
        print(header + f" {'real $/1,000':>13} {'valid':>6} {'broken':>7}")
        for rate in (float(value) for value in args.breaks.split(",")):
            stock = 0.0
            for size in (int(value) for value in args.sizes.split(",")):
                figures = one_run(catalog, work / f"out-{rate}-{size}", size, rate)
                rewritten = figures["rewritten"]  # broken answers' listings, written and paid again
                stock = stock or figures["output_per_listing"] / (1 + rewritten)  # the first size's (1): one listing
                framing = figures["output_per_listing"] - stock * (1 + rewritten)  # the pack's keys and id echoes
                output = REAL_LISTING_TOKENS * (1 + rewritten) + framing
                real = (figures["input_per_listing"] * 0.60 + output * 2.50) / 1000
                print(
                    f"{rate:>6.3f} {size:>4} {figures['requests_per_job']:>8.3f} {figures['input_per_listing']:>11.0f}"
                    f" {figures['output_per_listing']:>12.0f} {figures['usd_per_1000']:>8.3f} {real:>13.3f}"
                    f" {figures['valid']:>6.0%} {figures['broken']:>7}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

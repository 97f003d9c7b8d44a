"""Packing under a per-minute limit: the same jobs one per request and N per request.

    python bench/packing.py                      # 400 jobs, a relay limited to 2 requests/s
    python bench/packing.py --jobs 400 --pack 8 --limit-rps 2

A relay that takes 2 requests a second (120 RPM, twice the standard tier's 60) answers every
request after ~300 ms. Both runs send to it at --rpm 120 and print, side by side: wall time,
requests, input tokens per job, jobs done, and whether the cost report equals what the relay
billed.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, localize_run, start_relay, stop_relay, write_catalog  # noqa: E402

LOCALES = "de-DE,fr-FR,es-ES,it-IT"


def one_run(catalog: Path, out: Path, *, pack: str, limit_rps: int) -> dict:
    port = free_port()
    relay = start_relay(port, latency_ms=300, jitter_ms=100, limit_rps=limit_rps)
    try:
        command = localize_run(
            catalog,
            locales=LOCALES,
            base_url=f"http://127.0.0.1:{port}/v1",
            out=out,
            rpm=str(limit_rps * 60),
            concurrency=16,
            pack=pack,
        )
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={"HOLYSHEEP_API_KEY": "sk-bench"})
        wall = time.perf_counter() - started
    finally:
        served = stop_relay(relay)
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    billed = served["billed"]
    jobs = report.get("jobs", {})
    return {
        "pack": pack,
        "exit": done.returncode,
        "wall_s": wall,
        "requests": report.get("requests"),
        "relay_429s": served["rejected_429"],
        "jobs": jobs.get("total"),
        "succeeded": jobs.get("succeeded"),
        "failed": jobs.get("failed"),
        "input_per_job": report.get("tokens", {}).get("input", 0) / max(jobs.get("total") or 1, 1),
        "answered": billed["responses"],
        "report_equals_bill": report.get("tokens", {}).get("input") == billed["prompt_tokens"]
        and report.get("tokens", {}).get("output") == billed["completion_tokens"],
        "stderr": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--pack", default="8")
    parser.add_argument("--limit-rps", type=int, default=2)
    args = parser.parse_args()
    locales = len(LOCALES.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.csv"
        write_catalog(catalog, math.ceil(args.jobs / locales))
        single = one_run(catalog, Path(tmp) / "single", pack="1", limit_rps=args.limit_rps)
        packed = one_run(catalog, Path(tmp) / "packed", pack=args.pack, limit_rps=args.limit_rps)
    print(f"relay limited to {args.limit_rps} requests/s; {single['jobs']} jobs ({LOCALES})")
    print(f"{'':22}{'--pack 1':>14}{'--pack ' + args.pack:>14}")
    rows = [
        ("wall time (s)", "wall_s", "{:.1f}"),
        ("requests (429s incl.)", "requests", "{}"),
        ("429s from the relay", "relay_429s", "{}"),
        ("answers billed", "answered", "{}"),
        ("jobs succeeded", "succeeded", "{}"),
        ("jobs failed", "failed", "{}"),
        ("input tokens per job", "input_per_job", "{:.0f}"),
        ("report == bill", "report_equals_bill", "{}"),
        ("exit", "exit", "{}"),
    ]
    for label, key, shape in rows:
        print(f"{label:22}{shape.format(single[key]):>14}{shape.format(packed[key]):>14}")
    print(
        f"packing: {single['wall_s'] / packed['wall_s']:.1f}x sooner, "
        f"input per job x{packed['input_per_job'] / single['input_per_job']:.2f}"
    )
    for run in (single, packed):
        if run["stderr"]:
            print(f"--pack {run['pack']}: {run['stderr'][0]}")


if __name__ == "__main__":
    main()

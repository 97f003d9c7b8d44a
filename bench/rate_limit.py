"""Riding a relay's rate limit, on good days and bad: localize beside the usual snippet.

    python bench/rate_limit.py                      # every scenario
    python bench/rate_limit.py --scenario overload  # one of: known, unknown, overload, mixed

The benchmark relay (bench/relay_server.py, its own process) enforces a one-second sliding
window at its limit and answers over it with 429 + Retry-After: 1, after 80 ± 40 ms of latency.
Scenarios:

- known: a 400/s limit (window at 440/s) that localize is told, or told 1.5x too high; 3,000 jobs.
- unknown: limits of 25, 90 and 400/s that localize must find (--rpm auto, no rate.json); 1,000 jobs.
- overload: a 100/s limit, and 3% of requests answered 429 engine_overloaded_error at random; 1,000 jobs.
- mixed: 45% of first and second attempts fail (500/502/503, dropped connections, hangs past
  --timeout 3, non-JSON 200s, rate-limit 429s); 120 jobs, 16 in flight.

Each contender runs in its own process against a fresh relay. The tables give the rate of
successful answers against the limit, the 429s it provoked, wall time and, for the mixed
faults, whether every job ended valid or recorded and the cost report equals the relay's bill.
Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import free_port, localize_run, start_relay, stop_relay, write_catalog  # noqa: E402


@dataclass
class Outcome:
    name: str
    served: dict  # what the relay saw and billed
    report: dict  # localize's --json summary, or the snippet's stats
    wall_s: float


def run_contender(command: list[str]) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "HOLYSHEEP_API_KEY": "sk-bench"}, timeout=900
    )
    wall_s = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"{command[2]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), wall_s


def contend(
    name: str,
    tmp: Path,
    catalog: Path,
    jobs: int,
    *,
    limit_rps: int,
    rpm: str | None,
    concurrency: int = 64,
    timeout_s: float | None = None,
    relay_flags: list[str] | None = None,
) -> Outcome:
    """One contender against a fresh relay: localize with --rpm `rpm`, or the snippet when None."""
    port = free_port()
    relay = start_relay(port, latency_ms=80, jitter_ms=80, limit_rps=limit_rps, extra=relay_flags)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        if rpm is not None:
            out = Path(tempfile.mkdtemp(dir=tmp))  # fresh: no rate.json from an earlier contender
            command = localize_run(
                catalog, locales="de-DE,ja-JP", base_url=base_url, out=out, rpm=rpm, concurrency=concurrency
            )
            command += ["--timeout", str(timeout_s)] if timeout_s else []
        else:
            command = [sys.executable, str(HERE / "baseline_snippet.py"), "--base-url", base_url]
            command += ["--jobs", str(jobs), "--slots", str(concurrency)]
            command += ["--timeout", str(timeout_s)] if timeout_s else []
        report, wall_s = run_contender(command)
    finally:
        served = stop_relay(relay)
    return Outcome(name, served, report, wall_s)


def rate_table(title: str, limit: float, outcomes: list[Outcome]) -> None:
    print(f"\n### {title}\n")
    print("| contender | answers/s | of the limit | rate-limit 429s | overload 429s | wall s | settled at |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for o in outcomes:
        rate = o.report.get("rate") or {}
        settled = f"{rate['final_rpm'] / 60:.1f}/s ({rate['source']})" if rate else "–"
        print(
            f"| {o.name} | {o.served['answers_per_s']:.1f} | {o.served['answers_per_s'] / limit:.0%} | "
            f"{o.served['rejected_429']} | {o.served['overloaded_429']} | {o.wall_s:.1f} | {settled} |"
        )


def known(tmp: Path) -> None:
    catalog = tmp / "known.csv"
    write_catalog(catalog, 1500)
    outcomes = [
        contend("localize --rpm <limit>", tmp, catalog, 3000, limit_rps=440, rpm=str(400 * 60)),
        contend("localize --rpm <1.5 x limit>", tmp, catalog, 3000, limit_rps=400, rpm=str(600 * 60)),
        contend("snippet, Semaphore(64)", tmp, catalog, 3000, limit_rps=440, rpm=None),
    ]
    rate_table("A known limit: 400/s (the window at 440/s), 3,000 jobs", 400, outcomes)


def unknown(tmp: Path) -> None:
    catalog = tmp / "unknown.csv"
    write_catalog(catalog, 500)
    limits = (25, 90, 400)
    outcomes = [
        contend(f"localize --rpm auto, limit {limit}/s", tmp, catalog, 1000, limit_rps=limit, rpm="auto")
        for limit in limits
    ]
    print("\n### Unknown limits, found by --rpm auto from 1 request/s (no rate.json), 1,000 jobs\n")
    print("| limit | answers/s | of the limit | 429s | share of requests 429'd | wall s | found |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for o, limit in zip(outcomes, limits, strict=True):
        rate = o.report["rate"]
        found = f"{rate['limit_found_rpm'] / 60:.1f}/s" if rate.get("limit_found_rpm") else "–"
        print(
            f"| {limit}/s | {o.served['answers_per_s']:.1f} | {o.served['answers_per_s'] / limit:.0%} | "
            f"{o.served['rejected_429']} | {o.served['rejected_429'] / o.served['requests']:.1%} | {o.wall_s:.1f} | "
            f"{found} |"
        )
    snippet = contend("snippet, Semaphore(64), limit 90/s", tmp, catalog, 1000, limit_rps=90, rpm=None)
    rate_table("The snippet against the 90/s limit, for comparison", 90, [snippet])


def overload(tmp: Path) -> None:
    catalog = tmp / "overload.csv"
    write_catalog(catalog, 500)
    flags = ["--overload-share", "0.03"]
    outcomes = [
        contend("localize --rpm <limit>", tmp, catalog, 1000, limit_rps=100, rpm=str(100 * 60), relay_flags=flags),
        contend("localize --rpm auto", tmp, catalog, 1000, limit_rps=100, rpm="auto", relay_flags=flags),
        contend("snippet, Semaphore(64)", tmp, catalog, 1000, limit_rps=100, rpm=None, relay_flags=flags),
    ]
    rate_table("3% random engine_overloaded_error at a 100/s limit, 1,000 jobs", 100, outcomes)


def mixed(tmp: Path) -> None:
    catalog = tmp / "mixed.csv"
    write_catalog(catalog, 60)
    flags = ["--fault-share", "0.45", "--hang-s", "5"]
    common = dict(limit_rps=100, concurrency=16, timeout_s=3.0, relay_flags=flags)
    outcomes = [
        contend("localize --rpm auto", tmp, catalog, 120, rpm="auto", **common),
        contend("localize --rpm 6000", tmp, catalog, 120, rpm=str(100 * 60), **common),
        contend("snippet, Semaphore(16)", tmp, catalog, 120, rpm=None, **common),
    ]
    print("\n### 45% mixed faults on first and second attempts, 120 jobs, 16 in flight, --timeout 3\n")
    print("| contender | wall s | jobs ok / failed | requests | faults the relay served | report = bill |")
    print("|---|---:|---:|---:|---|---|")
    for o in outcomes:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(o.served["faults"].items()))
        if "jobs" in o.report:
            jobs = f"{o.report['jobs']['succeeded']} / {o.report['jobs']['failed']}"
            billed = o.served["billed"]
            tokens = o.report["tokens"]
            seen = tokens["input"] == billed["prompt_tokens"] and tokens["output"] == billed["completion_tokens"]
            unseen = (o.report.get("unconfirmed") or {}).get("requests", 0)
            hidden = o.served["billed_unseen"]["responses"]
            verdict = f"{'yes' if seen else 'NO'} (+{unseen} unconfirmed; the relay billed {hidden} unseen)"
        else:
            jobs = f"{o.report['succeeded']} / {120 - o.report['succeeded']}"
            verdict = "–"
        print(f"| {o.name} | {o.wall_s:.1f} | {jobs} | {o.served['requests']} | {faults} | {verdict} |")


SCENARIOS = {"known": known, "unknown": unknown, "overload": overload, "mixed": mixed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, scenario in SCENARIOS.items():
            if args.scenario in (name, "all"):
                scenario(Path(tmp))


if __name__ == "__main__":
    main()

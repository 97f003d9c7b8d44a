"""Live-run throughput: localize against the benchmark relay, in separate processes.

    python bench/live_throughput.py --products 1000 --concurrency 64 --transport aiohttp
    python bench/live_throughput.py --products 50000 --then-check   # and --check on that OUT
    python bench/live_throughput.py --products 10000 --pack auto     # several products per request

Prints requests per second, the client's CPU time per request (user + system of the
localize process), its peak RSS and the relay's counts; with --then-check, the wall time and
peak RSS of `localize run --check` on the OUT the run wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import free_port, localize_run, start_relay, stop_relay, write_catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--locales", default="de-DE,ja-JP")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rpm", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, default=80)
    parser.add_argument("--limit-rps", type=int, default=0)
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], default=None)
    parser.add_argument("--pack", default="1", help="products per request: N or auto (default 1)")
    parser.add_argument("--then-check", action="store_true", help="time --check on the finished OUT")
    args = parser.parse_args()
    checked: tuple[float, float, int] | None = None

    port = free_port()
    relay = start_relay(port, latency_ms=args.latency_ms, limit_rps=args.limit_rps)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp) / "catalog.csv"
            write_catalog(catalog, args.products)
            env = {**os.environ, "HOLYSHEEP_API_KEY": "sk-bench"}
            if args.transport:
                env["LOCALIZE_HTTP_TRANSPORT"] = args.transport
            command = localize_run(
                catalog,
                locales=args.locales,
                base_url=f"http://127.0.0.1:{port}/v1",
                out=Path(tmp) / "out",
                rpm=str(args.rpm),
                concurrency=args.concurrency,
                pack=args.pack,
            )
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            wall_s = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if args.then_check:
                checked = _time_check(command)
    finally:
        served = stop_relay(relay)
    if done.returncode not in (0, 1):
        sys.exit(f"localize failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout)
    requests = report["requests"]
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"transport            {args.transport or 'default'}")
    print(f"jobs                 {report['jobs']['total']:,} ({report['jobs']['failed']} failed)")
    print(f"requests             {requests:,} (relay saw {served['requests']:,}, 429s {served['rejected_429']:,})")
    print(f"wall time            {wall_s:.2f} s (run itself {report['elapsed_s']:.2f} s)")
    print(f"requests per second  {requests / report['elapsed_s']:.0f}")
    print(f"client CPU           {cpu_s:.2f} s = {cpu_s / requests * 1000:.2f} ms per request (incl. start-up)")
    if report["jobs"]["total"] != requests:
        print(f"                     {cpu_s / report['jobs']['total'] * 1000:.2f} ms per job (--pack {args.pack})")
    print(f"peak RSS             {after.ru_maxrss / 1024:.0f} MB")
    if checked:
        wall_s, rss_mb, code = checked
        print(f"--check              {wall_s:.2f} s, peak RSS {rss_mb:.0f} MB, exit {code}")


def _time_check(command: list[str]) -> tuple[float, float, int]:
    """Wall time, peak RSS (MB) and exit code of the same run with --check."""
    check = [part for part in command if part != "--json"] + ["--check"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as sink:
        process = subprocess.Popen(check, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    main()

"""Delivering a large OUT to a webhook receiver on loopback, in a separate process.

    python bench/deliver.py --listings 50000

Writes an OUT of N listings (results.jsonl, as a run leaves it), starts a receiver that checks
each signature, and times `localize deliver OUT --webhook URL`: messages, seconds, the
deliver process's peak RSS; then a second delivery (nothing changed: nothing sent).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from common import result_line  # noqa: E402
from webhook_receiver import SECRET, Receiver  # noqa: E402


def write_out(out: Path, listings: int) -> None:
    out.mkdir(parents=True)
    with (out / "results.jsonl").open("w", encoding="utf-8") as handle:
        for n in range(listings):
            handle.write(result_line(n, f"P{n:07d}", "de-DE"))


def deliver(out: Path, url: str) -> tuple[float, float, str]:
    env = {**os.environ, "LOCALIZE_WEBHOOK_SECRET": SECRET}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "localize", "deliver", str(out), "--webhook", url, "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = max(after.ru_maxrss, before.ru_maxrss) / 1024
    return seconds, peak_mb, done.stdout or done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Receiver(base64.b64decode(SECRET[6:])) as receiver:
        out = Path(tmp) / "out"
        write_out(out, args.listings)
        seconds, peak_mb, said = deliver(out, receiver.url)
        summary = json.loads(said)
        print(
            f"deliver {args.listings:,} listings: {summary['messages']:,} messages, {seconds:.1f} s, "
            f"{args.listings / seconds:,.0f} listings/s, peak RSS {peak_mb:.0f} MB; "
            f"receiver: {len(receiver.listings()):,} listings, {receiver.bad_signatures} bad signatures"
        )
        again, _, said = deliver(out, receiver.url)
        print(f"again (nothing changed): {json.loads(said)['messages']} messages, {again:.1f} s")


if __name__ == "__main__":
    main()

"""What one decision on the review page costs on a large OUT, in a separate process.

    python bench/review_decision.py --listings 50000

Writes an OUT of N listings (results.jsonl, as a run leaves it, across five locales), serves it
with `localize review OUT --serve`, and times POST decisions through the API as the page sends
them: approvals, unapprovals and edits, each answered with the listing. Prints the milliseconds
per decision (median and worst), and checks the files afterwards hold every decision.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import result_line

LOCALES = ("de-DE", "fr-FR", "es-ES", "it-IT", "ja-JP")


def write_out(out: Path, listings: int) -> None:
    out.mkdir(parents=True)
    with (out / "results.jsonl").open("w", encoding="utf-8") as handle:
        for n in range(listings):
            handle.write(result_line(n, f"P{n // len(LOCALES):07d}", LOCALES[n % len(LOCALES)]))


def post(url: str, path: str, body: dict) -> float:
    request = urllib.request.Request(
        url.split("/?", 1)[0] + path + "?" + url.split("?", 1)[1],
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            reply.read()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{path}: HTTP {error.code} {error.read().decode()[:300]}") from None
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=50_000)
    parser.add_argument("--decisions", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        write_out(out, args.listings)
        server = subprocess.Popen(
            [sys.executable, "-m", "localize", "review", str(out), "--serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ},
            cwd=tmp,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            first = post(url, "/api/listings/amazon/de-DE/P0000000", {"approved": True})  # opens the store
            times = []
            for n in range(1, args.decisions + 1):
                index = n * 97 % (args.listings // len(LOCALES))
                product, locale = f"P{index:07d}", LOCALES[n % 2]
                line = index * len(LOCALES) + n % 2  # write_out's numbering
                edit = {"fields": {"title": f"Nordbeat Kopfhörer {line}, geprüft"}}
                body = edit if locale == "de-DE" else {"approved": n % 3 != 0}  # the copy is German
                times.append(post(url, f"/api/listings/amazon/{locale}/{product}", body))
        finally:
            server.terminate()
            server.wait(timeout=30)
        reviews = sum(1 for _ in (out / "reviews.jsonl").open(encoding="utf-8"))
        print(
            f"{args.listings:,} listings: first decision {first:,.0f} ms; then {len(times)} decisions, "
            f"median {statistics.median(times):,.0f} ms, worst {max(times):,.0f} ms; "
            f"reviews.jsonl holds {reviews} decisions"
        )


if __name__ == "__main__":
    main()

"""The figure check: what it costs per listing, and what it catches on a relay that errs.

    python bench/figures.py                       # CPU per listing, then 200 jobs at 30% faults
    python bench/figures.py --jobs 400 --faults 0.3

1. CPU: the facts of 2,000 generated products (extracted once per product, as a run does) and
   the check of a listing that keeps them, timed in this process.
2. A live run against the benchmark relay, which changes one figure in 30% of each job's first
   and second answers: how many results hold every figure of their product (the relay's own
   reading of the product, not localize's), how many carry a `figures` warning, and how many
   neither (the goal: none).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from common import free_port, localize_run, start_relay, stop_relay, write_catalog  # noqa: E402
from fake_relay import facts_line, listing_for  # noqa: E402

from localize.checking.figures import check_facts, facts_of  # noqa: E402
from localize.planning.prompts import data_json  # noqa: E402
from localize.reading.catalog import read_catalog  # noqa: E402

LOCALES = "de-DE,fr-FR"


def cpu_per_listing(catalog: Path) -> tuple[float, float, int]:
    """(µs to extract a product's facts, µs to check one listing, listings checked)."""
    products = list(read_catalog(catalog))
    listing = listing_for("de")
    texts = []
    for product in products:
        line = facts_line(data_json(product.data()))
        texts.append([listing["title"], f"{listing['description']} {line}", *listing["bullets"]])
    for product in products:  # the unit registry and each unit's factors load once per run
        facts_of(product.data())
    started = time.process_time()
    facts = [facts_of(product.data()) for product in products]
    extracted = time.process_time() - started
    started = time.process_time()
    rounds = 5
    for _ in range(rounds):
        for product_facts, listing_texts in zip(facts, texts, strict=True):
            assert check_facts(product_facts, listing_texts) == []
    checked = time.process_time() - started
    count = len(products) * rounds
    return extracted / len(products) * 1e6, checked / count * 1e6, count


def live(catalog: Path, out: Path, *, faults: float) -> dict:
    port = free_port()
    relay = start_relay(port, latency_ms=30, jitter_ms=10, extra=["--figure-faults", str(faults)])
    try:
        command = localize_run(
            catalog, locales=LOCALES, base_url=f"http://127.0.0.1:{port}/v1", out=out, rpm="60000", concurrency=16
        )
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HOLYSHEEP_API_KEY": "sk"})
    finally:
        served = stop_relay(relay)
    if done.returncode not in (0, 1):
        sys.exit(f"localize failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    sources = {product.id: facts_line(data_json(product.data())) for product in read_catalog(catalog)}
    held = warned = neither = failed = 0
    for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines():
        result = json.loads(line)
        keeps = result["description"].endswith(sources[result["id"]])
        flagged = any(warning.startswith("figures") for warning in result["warnings"])
        held += keeps
        warned += flagged and not keeps
        neither += not keeps and not flagged
    failed = len((out / "failures.jsonl").read_text(encoding="utf-8").splitlines())
    report = json.loads(done.stdout)
    return {
        "jobs": report["jobs"]["total"],
        "answers_changed": served["figures_changed"],
        "held": held,
        "warned": warned,
        "neither": neither,
        "failed": failed,
        "figure_reasks": report["errors"].get("figures", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--faults", type=float, default=0.3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.csv"
        write_catalog(catalog, 2000)
        extract_us, check_us, count = cpu_per_listing(catalog)
        print(f"facts of a product   {extract_us:.1f} µs CPU (once per product, shared by its locales)")
        print(f"check of a listing   {check_us:.1f} µs CPU ({count:,} listings)")
        small = Path(tmp) / "small.csv"
        write_catalog(small, args.jobs // len(LOCALES.split(",")))
        outcome = live(small, Path(tmp) / "out", faults=args.faults)
    jobs = outcome["jobs"]
    print(f"live run             {jobs} jobs; the relay changed a figure in {outcome['answers_changed']} answers")
    print(f"  hold every figure  {outcome['held']} ({outcome['held'] / jobs:.1%})")
    print(f"  figures warning    {outcome['warned']}")
    print(f"  neither (silent)   {outcome['neither']}")
    print(f"  failed             {outcome['failed']}")
    print(f"  re-asks by figures {outcome['figure_reasks']}")


if __name__ == "__main__":
    main()

"""Reading JSON catalogs as written: pretty-printed, minified on one line, and a one-line object
whose "products" list follows a million other members (every one of them read and skipped).

    python bench/json_catalogs.py --products 200000 --members 1000000

Prints, per file: its size, the products read and the seconds `read_catalog` took.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from localize.reading.catalog import read_catalog


def timed(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = sum(1 for _ in read_catalog(path))
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    products = [
        {"id": f"P{n}", "name": f"Product {n}", "description": "Soft merino. " * 16} for n in range(args.products)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "pretty": (json.dumps(products, indent=1)),
            "minified": json.dumps(products, separators=(",", ":")),
            "members": json.dumps(
                {**{f"k{n}": n for n in range(args.members)}, "products": products[:1]}, separators=(",", ":")
            ),
        }
        for name, text in files.items():
            path = Path(tmp) / f"{name}.json"
            path.write_text(text, encoding="utf-8")
            count, seconds = timed(path)
            print(f"{name:9} {path.stat().st_size / 1e6:7.1f} MB  {count:9,} products  {seconds:6.2f} s")


if __name__ == "__main__":
    main()

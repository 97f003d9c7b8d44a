"""Helpers the benchmarks share: a generated catalog, a free loopback port, the benchmark relay."""

from __future__ import annotations

import csv
import json
import random
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CATEGORIES = [
    ("Electronics > Audio > Headphones", ["wireless headphones", "noise cancelling", "bluetooth"]),
    ("Apparel > Women > Shoes", ["running shoes", "trainers", "lightweight"]),
    ("Home & Kitchen > Cookware", ["dutch oven", "cast iron", "induction"]),
    ("Beauty > Skin Care > Serums", ["vitamin c serum", "face serum", "skincare"]),
    ("Toys & Games > Building Toys", ["magnetic tiles", "stem toys", "building set"]),
]
FEATURES = [
    "Hybrid active noise cancelling up to 35 dB",
    "45-hour battery life",
    "USB-C fast charging",
    "Breathable engineered mesh upper",
    "Machine washable at 30 °C",
    "Chip-resistant enamel",
    "Fragrance-free and vegan",
    "64 tiles in 6 shapes",
    "Made from recycled board",
    "Bluetooth 5.3 multipoint",
    "Foldable design with travel case",
    "Dermatologically tested",
]


def write_catalog(path: Path, products: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "sku", "name", "brand", "category", "features", "keywords", "tone", "description"])
        for number in range(products):
            category, keywords = rng.choice(CATEGORIES)
            features = rng.sample(FEATURES, k=rng.randint(3, 5))
            writer.writerow(
                [
                    f"P{number:06d}",
                    f"SKU-{number:06d}",
                    f"{rng.choice(['Nordbeat', 'Voltkit', 'Castellan', 'Luvea'])} Model {number % 997} "
                    f"{category.rsplit('> ', 1)[-1]}",
                    rng.choice(["Nordbeat", "Voltkit", "Castellan", "Luvea"]),
                    category,
                    "|".join(features),
                    "|".join(keywords),
                    rng.choice(["friendly", "technical", "warm"]),
                    "A well-made product for everyday use. " * rng.randint(1, 4),
                ]
            )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_relay(
    port: int, *, latency_ms: float, jitter_ms: float = 40, limit_rps: int = 0, extra: list[str] | None = None
) -> subprocess.Popen:
    """bench/relay_server.py in its own process, once it is listening; `extra` are its bad-day flags."""
    relay = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "relay_server.py"),
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--jitter-ms",
            str(jitter_ms),
            "--limit-rps",
            str(limit_rps),
            *(extra or []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
    return relay


def stop_relay(relay: subprocess.Popen) -> dict:
    """Stop the relay; what it served."""
    relay.terminate()
    return json.loads(relay.communicate(timeout=30)[0].strip().splitlines()[-1])


def localize_run(
    catalog: Path, *, locales: str, base_url: str, out: Path, rpm: str, concurrency: int, pack: str = "1"
) -> list[str]:
    """The `localize run` command line the benchmarks time (no progress, JSON report on stdout);
    one product per request unless `pack` says otherwise."""
    return [
        sys.executable,
        "-m",
        "localize",
        "run",
        str(catalog),
        "--locales",
        locales,
        "--base-url",
        base_url,
        "--out",
        str(out),
        "--rpm",
        rpm,
        "--pack",
        pack,
        "--concurrency",
        str(concurrency),
        "--no-progress",
        "--json",
    ]


def result_line(n: int, product: str, locale: str) -> str:
    """A listing's results.jsonl line as a run leaves it (valid for Amazon: five bullets and
    five search terms), the n-th of a generated OUT."""
    line = {
        "id": product,
        "sku": f"SKU-{n}",
        "platform": "amazon",
        "locale": locale,
        "title": f"Nordbeat Kopfhörer {n}",
        "description": "Kabellose Kopfhörer mit Geräuschunterdrückung und langer Akkulaufzeit. " * 4,
        "bullets": ["Starke Geräuschunterdrückung", "Lange Akkulaufzeit", "USB-C", "Faltbar", "Leicht"],
        "seo_tags": ["kopfhörer", "kabellos", "reise", "bluetooth", "anc"],
        "model": "kimi-k2",
        "attempts": 1,
        "input_tokens": 900,
        "output_tokens": 300,
        "cached_tokens": 0,
        "cost_usd": 0.0013,
        "warnings": [],
        "origin": "model",
        "approved": False,
    }
    return json.dumps(line, ensure_ascii=False) + "\n"

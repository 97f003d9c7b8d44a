"""The checks on their worst inputs: how long each takes on 16 KB and on 64 KB of text built to
make a pattern restart at every position (before this was measured, "1 000 000 …" of 16 KB
took 18 s and "<a <a <a …" grew with the square of its length).

    python bench/check_worst_case.py

For each input: the time of the whole check a live run does on a product and its answer
(facts of the source, the listing check with its figures, markup and formula checks, the
store-string check) on 16 KB and 64 KB, and their ratio: about 4 is linear, 16 quadratic. The
checks read at most figures.SCAN_CHARS of a text, so past that the time stays flat.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localize.checking.figures import SCAN_CHARS, check_facts, facts_of, load_units  # noqa: E402
from localize.checking.strings import check_string  # noqa: E402
from localize.checking.validate import InvalidAnswer, check_listing, strip_fences  # noqa: E402
from localize.locales import parse_locale  # noqa: E402
from localize.planning.prompts import load_prompt_set  # noqa: E402

WORST_CASES = {
    "space-grouped digits '1 000 000 …'": lambda n: "1 " + "000 " * (n // 4),
    "a list of model numbers '100 101 102 …'": lambda n: (
        "Fits models: " + " ".join(str(100 + i) for i in range(n // 4))
    ),
    "unclosed tags '<a <a <a …'": lambda n: "<a " * (n // 3),
    "a run of '<<<<'": lambda n: "<" * n,
    "unclosed placeholders '{{{{…'": lambda n: "{{" * (n // 2),
    "a fence then whitespace": lambda n: "```json\n" + " " * n,
    "figures with units '1 kg 2 kg …'": lambda n: "".join(f"{i} kg " for i in range(n // 6)),
    "images '<img src=…>' ×n": lambda n: "".join(f'<img src="https://cdn.example/{i}.png">' for i in range(n // 36)),
}


def check_once(text: str) -> None:
    """What a run does with a product whose copy is `text` and an answer that repeats it."""
    rules = load_prompt_set("shopify").rules
    locale = parse_locale("de-DE")
    facts = facts_of({"name": "Kettle", "description": text})
    listing = {
        "title": "Wasserkocher",
        "description": text,
        "bullets": ["a", "b", "c"],
        "seo_tags": ["x", "y", "z"],
        "seo_title": "Wasserkocher",
        "seo_description": "Wasserkocher",
    }
    try:
        check_listing(listing, rules, locale, source={"description": text}, facts=facts)
    except InvalidAnswer:
        pass
    try:
        check_string(text, text, locale)
    except InvalidAnswer:
        pass
    strip_fences(text)
    check_facts(facts, [text])
    json.dumps(listing)


def timed(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        check_once(text)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    load_units()
    print(f"checks read at most {SCAN_CHARS:,} characters of a text")
    print(f"{'worst case':44s} {'16 KB':>9s} {'64 KB':>9s}  ratio")
    for name, make in WORST_CASES.items():
        small, large = timed(make(16_000)), timed(make(64_000))
        print(f"{name:44s} {small * 1000:7.1f} ms {large * 1000:7.1f} ms  {large / small:5.1f}")


if __name__ == "__main__":
    main()

"""Prompt size per platform: the static system prompt (cacheable), the per-product part, and
the share a prefix cache can serve, counted with the same offline tokenizer as estimates.

    python bench/prompt_size.py [CATALOG] [--locale de-DE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from localize.cost import TOKENS_PER_MESSAGE, TokenCounter
from localize.locales import parse_locale
from localize.planning.estimate import cacheable_prefix_tokens
from localize.planning.prompts import available_platforms, load_prompt_set
from localize.reading.catalog import read_catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "catalog", nargs="?", default=str(Path(__file__).resolve().parent.parent / "sample_catalog.csv")
    )
    parser.add_argument("--locale", default="de-DE")
    args = parser.parse_args()
    locale = parse_locale(args.locale)
    counter = TokenCounter()
    products = list(read_catalog(args.catalog))
    print(f"{len(products)} products, {locale.tag}; tokens counted with {counter.name}\n")
    print("| platform | system (static) | product part, mean | prompt, mean | cacheable | cacheable share |")
    print("|---|---:|---:|---:|---:|---:|")
    for platform in available_platforms():
        prompt_set = load_prompt_set(platform)
        system = counter.count(prompt_set.render_system(locale))
        user = sum(counter.count(prompt_set.render_user(p, locale)) for p in products) / len(products)
        total = system + user + 2 * TOKENS_PER_MESSAGE + 3
        cacheable = cacheable_prefix_tokens(system)
        print(f"| {platform} | {system} | {user:.0f} | {total:.0f} | {cacheable} | {cacheable / total:.0%} |")


if __name__ == "__main__":
    main()

"""The language check on real store strings: how often it refuses correct text (false rejects)
and lets the wrong language through (false accepts), and what it costs to start.

    python bench/language_check.py                      # CLDR's names (shipped with Babel)
    python bench/language_check.py --strings DAWN/locales  # Shopify's Dawn theme strings

Each target language's strings are checked as a run checks a store string's translation
(strings.check_string, with the English string as its source; only its language finding
counts here: the script, kana for Japanese and Hangul for Korean, then the detector on texts
long enough to judge); its counterparts under the same key in Chinese (Simplified) and English
are checked as if they were the translation. A counterpart identical to the target's own
text ("Facebook", "USB-C") is left out: no check can or should refuse it. `--strings` reads a
folder of Shopify theme locale files (`ja.json`, `ja.schema.json`, `zh-CN.json`,
`en.default.json`...), such as
https://github.com/Shopify/dawn's `locales/`; without it, Babel's CLDR names of territories,
languages, currencies and units stand in.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGETS = {"ja": "ja-JP", "th": "th-TH", "ko": "ko-KR"}
COUNTERPARTS = {"zh": ("zh-CN", "zh_Hans"), "en": ("en.default", "en")}


def _flat(data: object, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flat(value, f"{prefix}{key}.")
    elif isinstance(data, str):
        yield prefix.rstrip("."), data


def theme_strings(folder: Path, name: str) -> dict[str, str]:
    strings: dict[str, str] = {}
    for suffix in (".json", ".schema.json"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            strings.update({f"{suffix}:{key}": text for key, text in _flat(json.loads(path.read_text("utf-8")))})
    return strings


def cldr_strings(locale: str) -> dict[str, str]:
    from babel import Locale

    data = Locale.parse(locale)
    strings: dict[str, str] = {}
    for kind, names in (
        ("territory", data.territories),
        ("language", data.languages),
        ("currency", data.currencies),
        ("script", data.scripts),
    ):
        strings.update({f"{kind}:{key}": str(text) for key, text in names.items()})
    return strings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strings", type=Path, help="a folder of Shopify theme locale files (Dawn's locales/)")
    args = parser.parse_args()

    started = time.perf_counter()
    from localize.checking.language import warm_up

    imported = time.perf_counter() - started
    from localize.checking.strings import _plain, check_string
    from localize.checking.validate import InvalidAnswer
    from localize.locales import parse_locale
    from localize.shops.translate_adapt import _NUMBER, _URL

    def refused(source: str, translation: str, locale: object) -> bool:
        """Whether the check refuses `translation` for its language."""
        try:
            check_string(source, translation, locale)
        except InvalidAnswer as problem:
            return problem.kind in ("wrong_language", "untranslated")
        return False

    def sent(text: str) -> bool:
        """Whether a run sends this string at all (links and bare numbers are kept as they are)."""
        return bool(_plain(text).strip()) and not _URL.match(text.strip()) and not _NUMBER.match(text.strip())

    source = f"Shopify theme strings in {args.strings}" if args.strings else "CLDR names (Babel)"
    print(f"strings: {source}")
    print(f"import of the detector: {imported * 1000:.0f} ms")
    for language in TARGETS:
        started = time.perf_counter()
        warm_up((language,))
        loaded_ms = (time.perf_counter() - started) * 1000
        print(f"loading the {language} detector (with English and its neighbours): {loaded_ms:.0f} ms")
    english = theme_strings(args.strings, "en.default") if args.strings else cldr_strings("en")
    for language, tag in TARGETS.items():
        locale = parse_locale(tag)
        own = theme_strings(args.strings, language) if args.strings else cldr_strings(language)
        texts = {key: text.strip() for key, text in own.items() if sent(text) and key in english}
        rejected = [text for key, text in texts.items() if refused(english[key], text, locale)]
        checked_at = time.perf_counter()
        for key, text in texts.items():
            refused(english[key], text, locale)
        per_string_us = (time.perf_counter() - checked_at) / max(len(texts), 1) * 1e6
        print(
            f"\n{tag}: {len(texts)} strings, false rejects {len(rejected)} ({len(rejected) / len(texts):.1%});"
            f" {per_string_us:.0f} µs a string"
        )
        for text in rejected[:5]:
            print(f"    refused: {text[:70]!r}")
        for other, (theme_name, cldr_name) in COUNTERPARTS.items():
            theirs = theme_strings(args.strings, theme_name) if args.strings else cldr_strings(cldr_name)
            pairs = [
                (key, theirs[key].strip())
                for key in texts
                if key in theirs and _plain(theirs[key]).strip() and theirs[key].strip() != texts[key]
            ]
            accepted = [text for key, text in pairs if not refused(english[key], text, locale)]
            print(
                f"  {other} counterparts: {len(pairs)}, false accepts {len(accepted)}"
                f" ({len(accepted) / max(len(pairs), 1):.1%})"
            )
            for text in accepted[:3]:
                print(f"    accepted as {tag}: {text[:70]!r}")


if __name__ == "__main__":
    main()

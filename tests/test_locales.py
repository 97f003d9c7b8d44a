"""Locale codes: normalisation, names for prompts, the script text must be in."""

from __future__ import annotations

import pytest

from localize.errors import LocaleError
from localize.locales import parse_locale, parse_locales, suggest


@pytest.mark.parametrize(
    "code,tag,display,script",
    [
        ("de-DE", "de-DE", "German (Germany)", "Latn"),
        ("ja_jp", "ja-JP", "Japanese (Japan)", "Jpan"),
        ("th-th", "th-TH", "Thai (Thailand)", "Thai"),
        ("zh-TW", "zh-TW", "Chinese (Traditional, Taiwan)", "Hant"),
        ("zh-CN", "zh-CN", "Chinese (Simplified, China)", "Hans"),
        ("ko-KR", "ko-KR", "Korean (South Korea)", "Kore"),
        ("ar-AE", "ar-AE", "Arabic (United Arab Emirates)", "Arab"),
        ("pt-BR", "pt-BR", "Portuguese (Brazil)", "Latn"),
        ("es-419", "es-419", "Spanish (Latin America)", "Latn"),
        ("sr-Latn-RS", "sr-Latn-RS", "Serbian (Latin, Serbia)", "Latn"),
        ("en-UK", "en-GB", "English (United Kingdom)", "Latn"),
        ("iw-IL", "he-IL", "Hebrew (Israel)", "Hebr"),
    ],
)
def test_parse_normalises_and_names(code: str, tag: str, display: str, script: str) -> None:
    locale = parse_locale(code)
    assert (locale.tag, locale.display_name, locale.script) == (tag, display, script)


def test_native_and_script_names_for_prompts() -> None:
    locale = parse_locale("ja-JP")
    assert locale.native_name == "日本語 (日本)"
    assert locale.script_name == "Japanese"
    assert locale.underscore == "ja_JP"
    assert parse_locale("zh-TW").script_name == "Traditional Chinese"


def test_list_keeps_order_and_drops_duplicates() -> None:
    assert [locale.tag for locale in parse_locales("ja-JP, de-DE,ja_jp,th-TH")] == ["ja-JP", "de-DE", "th-TH"]


@pytest.mark.parametrize(
    "code,suggestion",
    [
        ("jp-JP", "ja-JP"),
        ("de-JP", "de-DE"),
        ("german", "de-DE"),
        ("englsh", "en-US"),
        ("de_DEE", "de-DE"),
        ("en-USA", "en-US"),
    ],
)
def test_unknown_codes_get_the_closest_valid_suggestion(code: str, suggestion: str) -> None:
    with pytest.raises(LocaleError) as caught:
        parse_locale(code)
    assert suggestion in str(caught.value)


@pytest.mark.parametrize(
    "code,same_language,same_region",
    [
        ("de-JP", "de-DE", "ja-JP"),
        ("fr-JP", "fr-FR", "ja-JP"),
        ("th-DE", "th-TH", "de-DE"),
        ("es-TH", "es-ES", "th-TH"),
    ],
)
def test_unknown_pair_suggests_its_language_and_its_region_before_spelling(
    code: str, same_language: str, same_region: str
) -> None:
    """Whatever neighbours a CLDR release adds (en-JP in Babel 2.19), meaning ranks first."""
    with pytest.raises(LocaleError) as caught:
        parse_locale(code)
    suggested = str(caught.value).split("did you mean ")[1].rstrip("?").split(", ")
    assert suggested[0] == same_language
    assert same_region in suggested
    assert all(tag.split("-")[0] == code.split("-")[0] or tag.endswith(code[-3:]) for tag in suggested)


def test_every_suggestion_is_a_locale_we_accept() -> None:
    for code, territory in [("de-JP", "JP"), ("sr-JP", "JP"), ("zh-DE", "DE"), ("jp-JP", "JP"), ("pt-XX", "XX")]:
        for tag in suggest(code, territory):
            assert parse_locale(tag).tag

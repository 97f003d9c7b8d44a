"""BCP-47 locale codes: validation, normalisation, names for prompts, expected script."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache

from babel import Locale as BabelLocale
from babel import UnknownLocaleError, localedata
from babel.core import get_global

from .errors import LocaleError

# language[-Script][-REGION], with "_" accepted for "-"; variants and extensions are not
# listing languages, so they are rejected rather than silently dropped.
_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|\d{3}))?$")


# CLDR's English names for these two are bare "Simplified" / "Traditional".
_SCRIPT_NAMES = {"Hans": "Simplified Chinese", "Hant": "Traditional Chinese"}


@dataclass(frozen=True, slots=True)
class Locale:
    """A listing locale, as the prompts and validators need it."""

    tag: str  # normalised BCP-47: "ja-JP", "zh-TW", "sr-Latn-RS"
    language: str  # "ja"
    territory: str | None  # "JP"
    script: str  # ISO 15924 code the text must be written in: "Jpan", "Thai", "Latn"
    display_name: str  # in English, for prompts: "Japanese (Japan)"
    native_name: str  # in the locale itself: "日本語 (日本)"
    script_name: str  # in English: "Japanese", "Thai", "Latin"
    given: str | None = field(default=None, compare=False)  # a bare language it was resolved from ("ja")

    @property
    def underscore(self) -> str:
        """The tag as Amazon's `language_tag` spells it: "de_DE"."""
        return self.tag.replace("-", "_")

    @property
    def right_to_left(self) -> bool:
        """Whether the language is written right to left (Arabic, Hebrew, Persian, Urdu...), by
        CLDR's character order for it."""
        return _right_to_left(self.tag)

    @property
    def groups_with_space(self) -> bool:
        """Whether the language writes thousands with a space (`20 000`: French, Swedish,
        Polish...), by CLDR's group symbol for it."""
        return _groups_with_space(self.tag)

    def __str__(self) -> str:
        return self.tag


@cache
def _right_to_left(tag: str) -> bool:
    from babel import Locale as BabelLocale

    try:
        return BabelLocale.parse(tag, sep="-").character_order == "right-to-left"
    except (UnknownLocaleError, ValueError):
        return False


@cache
def _groups_with_space(tag: str) -> bool:
    from babel.numbers import get_group_symbol

    try:
        return get_group_symbol(tag.replace("-", "_")).isspace()
    except (UnknownLocaleError, ValueError):
        return False


def parse_locale(code: str) -> Locale:
    """Validate and normalise one locale code, or raise LocaleError with suggestions."""
    raw = code.strip()
    match = _TAG.match(raw)
    if not match:
        raise LocaleError(
            f"malformed locale code {raw!r}",
            hint=_suggest_text(raw),
        )
    return _parse_known(*match.groups())


def parse_locales(codes: str | list[str] | tuple[str, ...]) -> tuple[Locale, ...]:
    """Parse a comma-separated list (or a list) of codes, dropping duplicates, keeping order."""
    items = codes.split(",") if isinstance(codes, str) else list(codes)
    items = [item.strip() for item in items if item.strip()]
    if not items:
        raise LocaleError("no locales given", hint="pass --locales de-DE,ja-JP")
    seen: dict[str, Locale] = {}
    for item in items:
        locale = market_locale(item)
        seen.setdefault(locale.tag, locale)
    return tuple(seen.values())


def market_locale(code: str) -> Locale:
    """A listing locale: a bare language (`ja`) is its likely market (`ja-JP`, by CLDR), since
    a listing is for shoppers somewhere and the platforms' limits differ by market. The
    result remembers the code it was resolved from, so the run can say so."""
    locale = parse_locale(code)
    if locale.territory is not None or "-" in code or "_" in code:
        return locale
    likely = _likely_tag(locale.language)
    if likely == locale.tag:
        return locale
    return replace(parse_locale(likely), given=code.strip())


@cache
def _parse_known(language: str, script: str | None, territory: str | None) -> Locale:
    language = language.lower()
    script = script.title() if script else None
    territory = territory.upper() if territory else None
    tag = "-".join(part for part in (language, script, territory) if part)
    identifier = "_".join(part for part in (language, script, territory) if part)
    try:
        babel_locale = BabelLocale.parse(identifier)
    except (UnknownLocaleError, ValueError):
        raise LocaleError(f"unknown locale {tag!r}", hint=_suggest_text(tag, territory)) from None
    # Babel resolves aliases ("en-UK" is en_GB), so the tag is rebuilt from what it found.
    territory = babel_locale.territory or territory
    tag = "-".join(part for part in (babel_locale.language, script, territory) if part)
    expected_script = script or babel_locale.script or _likely_script(language, territory)
    english = BabelLocale("en")
    return Locale(
        tag=tag,
        language=language,
        territory=territory,
        script=expected_script,
        display_name=babel_locale.get_display_name("en") or tag,
        native_name=babel_locale.get_display_name(babel_locale) or tag,
        script_name=_SCRIPT_NAMES.get(expected_script) or english.scripts.get(expected_script, expected_script),
    )


def _likely_script(language: str, territory: str | None) -> str:
    """CLDR's likely subtags: ja → ja_Jpan_JP, zh_TW → zh_Hant_TW, sr → sr_Cyrl_RS."""
    likely = get_global("likely_subtags")
    for key in (f"{language}_{territory}" if territory else None, language):
        if key and key in likely:
            parts = likely[key].split("_")
            if len(parts) >= 2 and len(parts[1]) == 4:
                return str(parts[1])
    return "Latn"


@lru_cache(maxsize=1)
def _known_tags() -> tuple[str, ...]:
    return tuple(sorted(ident.replace("_", "-") for ident in localedata.locale_identifiers()))


def suggest(code: str, territory: str | None = None, limit: int = 3) -> list[str]:
    """Valid tags a mistyped code most likely meant: by language name ("japanese", "englsh"),
    keeping its language ("de-JP" → de-DE, de-AT), keeping its region (→ ja-JP); only when
    none of those exists, its spelling neighbours.

    Meaning comes before spelling so that a new CLDR release adding a neighbour (en-JP in
    Babel 2.19) cannot push the useful answers out of the message, nor add noise to them.
    """
    language = re.split(r"[-_]", code.strip())[0].lower()
    meant: list[str] = []
    names = _language_by_english_name()
    by_name = next(
        (names[m] for m in difflib.get_close_matches(code.strip().lower(), list(names), n=1, cutoff=0.8)), None
    )
    if by_name:
        meant.append(_likely_tag(by_name))
    if language in _language_by_code():
        meant += _tags_for_language(language)[:2]
    if territory and (main := _main_tag_of_region(territory)):
        meant.append(main)
    picks = [tag for tag in dict.fromkeys(meant) if _exists(tag)]
    if picks:
        return picks
    lowered = {tag.lower(): tag for tag in _known_tags()}
    return [lowered[m] for m in difflib.get_close_matches(code.lower(), list(lowered), n=limit)]


@cache
def _tags_for_language(language: str) -> tuple[str, ...]:
    """A language's locales, where it is most at home first: "de" → de-DE, de-AT, de-CH, ...

    After CLDR's likely region come the regions whose main language it is and where most
    people speak it (CLDR's territory languages), alphabetically: CLDR carries no populations.
    """
    spoken = get_global("territory_languages")
    home = [
        f"{language}-{territory}"
        for territory in sorted(spoken)
        if _main_tag_of_region(territory) == f"{language}-{territory}"
        and spoken[territory].get(language, {}).get("population_percent", 0) >= 50
    ]
    return tuple(tag for tag in dict.fromkeys([_likely_tag(language), *home]) if _exists(tag))


def _main_tag_of_region(territory: str) -> str | None:
    """The language CLDR expects in a region, as a tag: "JP" → "ja-JP", "CH" → "de-CH"."""
    parts = get_global("likely_subtags").get(f"und_{territory}", "").split("_")
    return f"{parts[0]}-{territory}" if len(parts) >= 2 else None


@cache
def _exists(tag: str) -> bool:
    """Whether Babel knows a tag (directly or through CLDR's aliases and likely subtags)."""
    try:
        BabelLocale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return False
    return True


def _likely_tag(language: str) -> str:
    """The language's most common locale per CLDR: "de" → "de-DE", "ja" → "ja-JP"."""
    parts = get_global("likely_subtags").get(language, language).split("_")
    territory = parts[-1] if len(parts) > 1 and len(parts[-1]) in (2, 3) else None
    return f"{language}-{territory}" if territory else language


@lru_cache(maxsize=1)
def _language_by_code() -> frozenset[str]:
    return frozenset(tag.split("-")[0] for tag in _known_tags())


@lru_cache(maxsize=1)
def _language_by_english_name() -> dict[str, str]:
    known = _language_by_code()
    names = BabelLocale("en").languages
    return {name.lower(): code for code, name in names.items() if code in known}


def _suggest_text(code: str, territory: str | None = None) -> str:
    picks = suggest(code, territory)
    generic = "use a BCP-47 tag such as de-DE, ja-JP or pt-BR"
    return f"did you mean {', '.join(picks)}?" if picks else generic

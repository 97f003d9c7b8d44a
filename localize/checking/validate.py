"""Check a model answer: JSON, the listing schema, the platform's limits, the locale's script.

`check_answer` is pure: it returns the listing and its warnings, or raises InvalidAnswer with
a message written to be sent back to the model when the answer is re-asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import regex
from pydantic import BaseModel, ConfigDict, ValidationError

from ..locales import Locale
from ..planning.rules import FieldRule, PlatformRules
from ..reading.glossary import Term
from .direction import MARKS as DIRECTION_MARKS
from .direction import declares_rtl, direction_marks, with_rtl, without_rtl_wrapper
from .figures import Facts, check_facts
from .language import detected_problem
from .sanitize import FORMULA_START, drop_foreign_media, formula_start, unsafe_markup

if TYPE_CHECKING:
    from ..reading.catalog import Product

# ISO 15924 codes that are unions of Unicode scripts.
_SCRIPT_PARTS = {
    "Jpan": ("Hira", "Kana", "Hani"),
    "Kore": ("Hang", "Hani"),
    "Hans": ("Hani",),
    "Hant": ("Hani",),
}
# Share of an answer's letters that must be in the locale's script. Brand names and model
# numbers stay in Latin letters, so this is a majority, not all.
MIN_SCRIPT_SHARE = 0.5
# Japanese must show kana, or it may be Chinese; Korean must be mostly Hangul.
MIN_KANA_SHARE = 0.05
MIN_HANGUL_SHARE = 0.5
# Below this many letters a text passes with a single letter in its script (the rest a brand).
SHORT_TEXT_LETTERS = 30
SCRIPT_SAMPLE_CHARS = 1000
# Japanese this short may be written in kanji alone (product types, collection titles, menu
# items); longer Japanese without kana reads as Chinese.
KANJI_ONLY_LETTERS = 20

_FENCE_LANGUAGE = re.compile(r"[a-zA-Z]*")
_TAG = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*>")  # one tag: never scans past the next "<"
_KANA = regex.compile(r"[\p{scx=Hira}\p{scx=Kana}]")
_HANGUL = regex.compile(r"\p{scx=Hang}")
_HAN = regex.compile(r"\p{scx=Hani}")
_LINK = re.compile(r"https?://[^\s)\]\"'<>]*|\]\([^()\s]*\)")
_ACRONYM = re.compile(r"[A-Z0-9][A-Z0-9 ./-]{0,5}")


class InvalidAnswer(Exception):
    """The answer cannot be used; `kind` names why, `message` says it to the model."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Listing:
    title: str
    description: str
    bullets: tuple[str, ...]
    seo_tags: tuple[str, ...]
    extra: Mapping[str, str] = field(default_factory=dict)  # the platform's extra_fields


class _ListingModel(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    title: str
    description: str
    bullets: list[str]
    seo_tags: list[str]


def check_answer(
    content: str,
    finish_reason: str | None,
    rules: PlatformRules,
    locale: Locale,
    terms: Sequence[Term] = (),
    *,
    glossary_as_warnings: bool = False,
    source: Mapping[str, Any] | None = None,
) -> tuple[Listing, list[str]]:
    """The listing in `content` and its warnings, or InvalidAnswer. Glossary `terms` are
    checked last, so an answer whose only problem is the glossary raises kind "glossary"."""
    return check_listing(
        parse_answer(content, finish_reason),
        rules,
        locale,
        terms,
        glossary_as_warnings=glossary_as_warnings,
        source=source,
    )


def parse_answer(content: str, finish_reason: str | None) -> dict[str, Any]:
    """The JSON object of a complete answer, or InvalidAnswer (truncated, not JSON, not an object)."""
    if finish_reason == "length":
        raise InvalidAnswer(
            "truncated", "the answer was cut off at the output token limit; write shorter text so the JSON is complete"
        )
    return _parse_json(content)


def check_listing(
    data: object,
    rules: PlatformRules,
    locale: Locale,
    terms: Sequence[Term] = (),
    *,
    glossary_as_warnings: bool = False,
    source: Mapping[str, Any] | str | None = None,
    facts: Facts | None = None,
    figures_as_warnings: bool = False,
    avoid: Sequence[str] = (),
    avoid_as_warnings: bool = False,
    market_keywords: Sequence[str] = (),
) -> tuple[Listing, list[str]]:
    """One listing, already parsed from an answer (a packed answer holds several): see
    check_answer. With `facts` (figures.facts_of the source), every figure, name, image and
    link of the source must survive; like the glossary, they are checked after everything
    else, so an answer whose only problems are these raises kind "figures" (or "glossary").
    With `source` (the product's data, or source_text of it), a run of its words left as they
    were is a warning."""
    if not isinstance(data, dict):
        raise InvalidAnswer("schema", f"the listing must be a JSON object, not a {type(data).__name__}")
    try:
        model = _ListingModel.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "answer"
        raise InvalidAnswer("schema", f"{field}: {error['msg'].lower()}") from None
    extra = {}
    for name in rules.extra_fields:
        value = data.get(name)
        if not isinstance(value, str):
            raise InvalidAnswer("schema", f"{name}: field required, a string")
        extra[name] = value.strip()
    listing = Listing(
        title=model.title.strip(),
        description=model.description.strip(),
        bullets=tuple(item.strip() for item in model.bullets),
        seo_tags=tuple(item.strip() for item in model.seo_tags),
        extra=extra,
    )
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    unsafe: list[tuple[str, str]] = []
    as_written = listing
    suspects = _suspect_texts(listing)
    _check_safety(suspects, unsafe, "unsafe_html", unsafe_markup, "no scripts, handlers or styles")
    listing = _repaired(listing, facts, rules, warnings)  # (the markup was checked as written)
    if locale.right_to_left and rules.description.html and not declares_rtl(listing.description):
        listing = replace(listing, description=with_rtl(listing.description))  # (a storefront is left to right)
        warnings.append('rtl_dir_added: the description\'s outer element now says dir="rtl"')
    if listing is not as_written:
        suspects = _suspect_texts(listing)
    if suspects:
        _check_safety(suspects, problems, "formula", _formula, "a spreadsheet runs it: start with a word")
        _check_safety(
            suspects,
            problems,
            "direction_marks",
            _direction_marks,
            "write the text without them (dir sets the direction)",
        )
    for name, rule in rules.fields().items():
        value = listing.extra[name] if name in listing.extra else getattr(listing, name)
        if isinstance(value, tuple):
            _check_list(name, value, rule, problems, warnings)
        else:
            _check_text(name, value, rule, problems, warnings)
    problems += unsafe
    _check_script(listing, locale, problems)
    if source:
        warnings += _leftover_source(listing, source, terms)
    if market_keywords:
        warnings += _missing_market_keywords(listing, market_keywords)
    figures = (
        [
            ("figures", message)
            for message in check_facts(facts, _fact_texts(listing), spaced_groups=locale.groups_with_space)
        ]
        if facts
        else []
    )
    if figures_as_warnings:
        warnings += [f"figures: {message}" for _, message in figures]
    else:
        problems += figures
    glossary = _check_glossary(listing, terms)
    if glossary_as_warnings:
        warnings += [f"glossary: {message}" for _, message in glossary]
    else:
        problems += glossary
    avoided = _check_avoid(listing, avoid)
    if avoid_as_warnings:
        warnings += [f"style: {message}" for _, message in avoided]
    else:
        problems += avoided
    if problems:
        raise InvalidAnswer(problems[0][0], "; ".join(message for _, message in problems))
    return listing, warnings


# A list item written with its own marker ("- Long battery life"): the marker goes, the text stays.
_LIST_MARKS = ("-", "+", "•", "*")
_LIST_MARKER = re.compile(r"^[-+•*]\s+(?=\S)")


def _repaired(listing: Listing, facts: Facts | None, rules: PlatformRules, warnings: list[str]) -> Listing:
    """What can be fixed without changing a word, fixed and said (a warning, not a re-ask): list
    markers a model wrote before an item (a spreadsheet would read `- …` as a formula); search
    terms over their byte limit, their last tags dropped; and images or links the source does
    not have (a tracking pixel, a link a supplier text slipped in), dropped."""
    changes: dict[str, Any] = {}
    bullets, seo_tags = listing.bullets, listing.seo_tags
    if any(item.startswith(_LIST_MARKS) for item in (*bullets, *seo_tags)):
        bullets = tuple(_LIST_MARKER.sub("", item) for item in bullets)
        seo_tags = tuple(_LIST_MARKER.sub("", item) for item in seo_tags)
        if bullets != listing.bullets or seo_tags != listing.seo_tags:
            warnings.append("list_markers_removed: items began with a list marker (- or •), now removed")
            changes |= {"bullets": bullets, "seo_tags": seo_tags}
    limit = rules.seo_tags.total_max_bytes
    if limit is not None and len(" ".join(seo_tags).encode()) > limit:
        kept = list(seo_tags)
        while kept and len(" ".join(kept).encode()) > limit:
            kept.pop()
        if len(kept) >= (rules.seo_tags.min_items or 1):
            trimmed = len(seo_tags) - len(kept)
            warnings.append(f"seo_tags_trimmed: the last {trimmed} search terms dropped to fit {limit} bytes")
            changes["seo_tags"] = tuple(kept)
    if facts is not None:
        known = frozenset(facts.media)
        description, dropped = drop_foreign_media(listing.description, known)
        extra = {}
        for name, value in listing.extra.items():
            extra[name], more = drop_foreign_media(value, known)
            dropped += more
        if dropped:
            warnings.append(f"media_dropped: images or links the source does not have: {', '.join(dropped[:3])}")
            changes |= {"description": description, "extra": extra}
    return replace(listing, **changes) if changes else listing  # (most listings: nothing to repair)


# What any unsafe text has: markup's "<" or a direction mark, or a formula's first character.
# Most texts have none: a listing's texts are searched together first.
_UNSAFE_CHARS = re.compile("[<" + "".join(sorted(DIRECTION_MARKS)) + "]")
_FORMULA_LINES = tuple("\n" + start for start in FORMULA_START)


def _suspect_texts(listing: Listing) -> list[tuple[str, str]]:
    """The texts of the listing that may be unsafe, each with its field's name, in field order."""
    # Each text follows a newline: one that starts like a formula shows as a newline and that start.
    joined = "\n" + "\n".join((listing.title, listing.description, *listing.bullets, *listing.seo_tags))
    joined += "".join("\n" + value for value in listing.extra.values())
    if not _UNSAFE_CHARS.search(joined) and not any(start in joined for start in _FORMULA_LINES):
        return []  # (most listings)
    texts = [
        ("title", listing.title),
        ("description", listing.description),
        *(("bullets", item) for item in listing.bullets),
        *(("seo_tags", item) for item in listing.seo_tags),
        *listing.extra.items(),
    ]
    return [(name, text) for name, text in texts if text.startswith(FORMULA_START) or _UNSAFE_CHARS.search(text)]


def _check_safety(
    texts: list[tuple[str, str]], problems: list[tuple[str, str]], kind: str, find: Callable[[str], list[str]], fix: str
) -> None:
    """What `find` names in any of the (field, text) pairs (markup that could run on a
    storefront; a start a spreadsheet runs as a formula), one problem per field: its first."""
    told: set[str] = set()
    for name, text in texts:
        if name not in told and (found := find(text)):
            told.add(name)
            problems.append((kind, f"{name} has {', '.join(found)}: {fix}"))


def _direction_marks(text: str) -> list[str]:
    found = direction_marks(text)
    return [found] if found else []


def _formula(text: str) -> list[str]:
    return [f"a start with {text[:1]!r}"] if formula_start(text) else []


def _fact_texts(listing: Listing) -> list[str]:
    """The texts a shopper reads, where the source's facts must stand (not the search tags)."""
    return [listing.title, listing.description, *listing.bullets, *listing.extra.values()]


# Words in a row copied from the source: a phrase this long left as it was is untranslated text
# (brand and model names are shorter, and glossary terms are allowed to stay).
LEFTOVER_WORDS = 5
LEFTOVER_PROSE_WORDS = 3
_WORD = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d")


def source_text(source: Mapping[str, Any]) -> str:
    """A product's descriptive texts, markup out, as the leftover-source check reads them. A
    caller checking many of a product's listings passes this to check_listing, made once."""
    return " ".join(_texts(source))


def _leftover_source(listing: Listing, source: Mapping[str, Any] | str, terms: Sequence[Term]) -> list[str]:
    """A named warning per field that repeats a run of source words verbatim."""
    text = source if isinstance(source, str) else source_text(source)
    vocabulary = _source_words(text)[1]
    warnings = []
    fields = {"title": [listing.title], "description": [listing.description], "bullets": list(listing.bullets)}
    for name, texts in fields.items():
        words = _WORD.findall(_TAG.sub(" ", " ".join(texts)).lower())
        # A run can start only where LEFTOVER_WORDS words in a row are source words: each word
        # marked 1 or 0, those places are a substring search. Most translations have none, and
        # the source's runs are not needed.
        marks = "".join(["1" if word in vocabulary else "0" for word in words])
        start = marks.find(_ALL_SOURCE)
        if start == -1:
            continue
        kept = frozenset(
            word.lower() for entry in terms if entry.translation is None for word in _WORD.findall(entry.term)
        )
        runs = _source_runs(text, kept)
        while start != -1:
            run = tuple(words[start : start + LEFTOVER_WORDS])
            if run in runs:
                warnings.append(f'source_text_left: {name} repeats the source\'s "{" ".join(run)}"')
                break
            start = marks.find(_ALL_SOURCE, start + 1)
    return warnings


_ALL_SOURCE = "1" * LEFTOVER_WORDS


@lru_cache(maxsize=64)
def _source_words(text: str) -> tuple[list[str], frozenset[str]]:
    """The source's words, lowered, in order and as a set. Remembered for the last few
    products: a product's jobs reach the validator together."""
    words = _WORD.findall(text.lower())
    return words, frozenset(words)


@lru_cache(maxsize=64)
def _source_runs(text: str, kept: frozenset[str]) -> frozenset[tuple[str, ...]]:
    """Every run of LEFTOVER_WORDS source words that reads as prose: not made only of kept
    glossary terms, and holding at least LEFTOVER_PROSE_WORDS words (three letters or more, no
    digit), so figures and model names a listing must keep ("26 cm, 5.2 L", "5 hours,
    Bluetooth 5.3") never count."""
    words = _source_words(text)[0]
    # How many prose words come before each word (a letter-only word has no digit), then each
    # window's count is a difference.
    before = list(accumulate([len(w) >= 3 and (w.isalpha() or _DIGIT.search(w) is None) for w in words], initial=0))
    windows = enumerate(zip(*(words[k:] for k in range(LEFTOVER_WORDS)), strict=False))
    runs = {run for i, run in windows if before[i + LEFTOVER_WORDS] - before[i] >= LEFTOVER_PROSE_WORDS}
    if kept:
        runs = {run for run in runs if not kept.issuperset(run)}
    return frozenset(runs)


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [_TAG.sub(" ", value)]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _texts(item)]
    return []


def _check_glossary(listing: Listing, terms: Sequence[Term]) -> list[tuple[str, str]]:
    """Kept terms must appear as written; fixed translations must be used."""
    if not terms:
        return []
    text = " ".join((listing.title, listing.description, *listing.bullets, *listing.seo_tags))
    problems = []
    for entry in terms:
        if entry.translation is None and entry.term not in text:
            problems.append(("glossary", f'keep "{entry.term}" exactly as written (it is missing)'))
        elif entry.translation is not None and entry.translation not in text:
            problems.append(("glossary", f'write "{entry.term}" as "{entry.translation}"'))
    return problems


def _missing_market_keywords(listing: Listing, keywords: Sequence[str]) -> list[str]:
    """A market's own search terms the answer's tags (or search terms) do not carry (a warning:
    the listing is right, its findability is not)."""
    tags = " ".join(listing.seo_tags).lower()
    missing = [keyword for keyword in keywords if keyword.lower() not in tags]
    if not missing:
        return []
    return ["market_keywords: the search terms lack " + ", ".join(f'"{keyword}"' for keyword in missing[:5])]


def _check_avoid(listing: Listing, words: Sequence[str]) -> list[tuple[str, str]]:
    """Words a style guide's `avoid:` forbids, wherever a shopper reads them (case aside; a word
    of a language written with spaces matched as a whole word, "cheap" not in "cheaply")."""
    if not words:
        return []
    text = " ".join((listing.title, listing.description, *listing.bullets, *listing.seo_tags, *listing.extra.values()))
    lowered = text.lower()
    found = [word for word in words if _uses(lowered, word.lower())]
    if not found:
        return []
    named = ", ".join(f'"{word}"' for word in found)
    return [("style", f"uses {named}, which the style guide says to avoid: say it another way")]


def _uses(text: str, word: str) -> bool:
    if word not in text:
        return False
    if any(ord(char) >= 0x2E80 or "\u0e00" <= char <= "\u0eff" for char in word):  # CJK, Thai, Lao: no spaces
        return True
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def strip_fences(content: str) -> str:
    """The JSON inside a ```json fence, or the text from the first { to the last }."""
    text = content.strip()
    if len(text) >= 6 and text.startswith("```") and text.endswith("```"):
        inner = text[3:-3]
        language = _FENCE_LANGUAGE.match(inner)
        return inner[language.end() if language else 0 :].strip()
    if not text.startswith("{") and "{" in text and "}" in text:
        return text[text.index("{") : text.rindex("}") + 1]
    return text


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: with a key twice, which value was meant
    cannot be told (in a packed answer, two listings for one product id)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return data


# Built once: json.loads given a hook builds a decoder a call.
_ANSWER_JSON = json.JSONDecoder(object_pairs_hook=_each_key_once)


def _parse_json(content: str) -> dict[str, Any]:
    text = strip_fences(content)
    if not text:
        raise InvalidAnswer("invalid_json", "the answer was empty; reply with the JSON object")
    try:
        data = _ANSWER_JSON.decode(text)
    except _RepeatedKey as exc:
        raise InvalidAnswer("schema", f"the answer repeats the key {exc.key!r}: write each key once") from None
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(
            "invalid_json", f"the answer is not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidAnswer("schema", f"the answer must be a JSON object, not a {type(data).__name__}")
    return data


def _check_text(name: str, text: str, rule: FieldRule, problems: list[tuple[str, str]], warnings: list[str]) -> None:
    length = len(text)
    if not text:
        problems.append(("limits", f"{name} is empty"))
        return
    if rule.max_chars is not None and length > rule.max_chars:
        problems.append(("limits", f"{name} has {length} characters; the limit is {rule.max_chars}"))
    if rule.min_chars is not None and length < rule.min_chars:
        problems.append(("limits", f"{name} has {length} characters; at least {rule.min_chars} are needed"))
    if rule.max_bytes is not None and len(text.encode()) > rule.max_bytes:
        problems.append(("limits", f"{name} is {len(text.encode())} bytes; the limit is {rule.max_bytes} UTF-8 bytes"))
    if rule.warn_over_chars is not None and length > rule.warn_over_chars:
        warnings.append(f"{name}_long: {length} characters, over the recommended {rule.warn_over_chars}")
    if "<" in text:
        _check_markup(name, without_rtl_wrapper(text), rule, problems)  # (the <div dir="rtl"> is ours)
    _check_forbidden(name, None, text, rule, problems)


def _check_list(
    name: str, items: tuple[str, ...], rule: FieldRule, problems: list[tuple[str, str]], warnings: list[str]
) -> None:
    count = len(items)
    if rule.min_items is not None and count < rule.min_items:
        problems.append(("limits", f"{name} has {count} items; at least {rule.min_items} are needed"))
    if rule.max_items is not None and count > rule.max_items:
        problems.append(("limits", f"{name} has {count} items; at most {rule.max_items} are allowed"))
    max_chars, warn_over = rule.max_chars, rule.warn_over_chars
    for number, item in enumerate(items, start=1):
        if not item:
            problems.append(("limits", f"{name}[{number}] is empty"))
            continue
        length = len(item)
        if max_chars is not None and length > max_chars:
            problems.append(("limits", f"{name}[{number}] has {length} characters; the limit is {max_chars}"))
        if warn_over is not None and length > warn_over:
            warnings.append(f"{name}_long: item {number} has {length} characters, over the recommended {warn_over}")
        if "<" in item:
            _check_markup(f"{name}[{number}]", item, rule, problems)
        _check_forbidden(name, number, item, rule, problems)
    if rule.total_max_bytes is not None:
        total = len(" ".join(items).encode())
        if total > rule.total_max_bytes:
            problems.append(
                ("limits", f"{name} joined by spaces is {total} bytes; the limit is {rule.total_max_bytes} UTF-8 bytes")
            )


def _check_markup(label: str, text: str, rule: FieldRule, problems: list[tuple[str, str]]) -> None:
    if "<" not in text:
        return
    tags = {match.lower() for match in _TAG.findall(text)}
    if not tags:
        return
    allowed = set(rule.allowed_tags)
    if rule.html and not allowed:
        allowed = tags - {"script", "style", "iframe"}
    extra = sorted(tags - allowed)
    if extra:
        what = f"only {', '.join(f'<{t}>' for t in sorted(allowed))}" if allowed else "no HTML"
        problems.append(("html", f"{label} uses {', '.join(f'<{t}>' for t in extra)}; {what} is allowed"))


def _check_forbidden(
    name: str, number: int | None, text: str, rule: FieldRule, problems: list[tuple[str, str]]
) -> None:
    """The field's forbidden characters and phrases (a phrase in any case) in `text`, the
    field's or (with `number`) one item's."""
    chars = []
    if rule.forbidden_chars and _any_of(rule.forbidden_chars).search(text):  # (a search makes no set of the text)
        chars = sorted(_char_set(rule.forbidden_chars).intersection(text))
    phrases = []
    if rule.forbidden_phrases:
        lowered = text.lower()
        phrases = [phrase for phrase, low in _lowered(rule.forbidden_phrases) if low in lowered]
    if chars or phrases:
        label = name if number is None else f"{name}[{number}]"
        if chars:
            problems.append(("limits", f"{label} contains forbidden characters {' '.join(chars)}"))
        if phrases:
            problems.append(("limits", f"{label} contains forbidden phrases: {', '.join(phrases)}"))


@lru_cache(maxsize=64)
def _char_set(chars: str) -> frozenset[str]:
    return frozenset(chars)


@lru_cache(maxsize=64)
def _any_of(chars: str) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(char) for char in chars) + "]")


@lru_cache(maxsize=64)
def _lowered(phrases: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((phrase, phrase.lower()) for phrase in phrases)


def _check_script(listing: Listing, locale: Locale, problems: list[tuple[str, str]]) -> None:
    # A sample of a thousand characters decides the language as well as the whole text.
    problem = script_problem(" ".join((listing.title, *listing.bullets, listing.description)), locale)
    if problem:
        problems.append(("wrong_language", problem))


def script_problem(text: str, locale: Locale) -> str | None:
    """Why `text` is not in the locale's language, or None: too few of its letters in the
    locale's script; Japanese without kana, or with characters only Chinese uses; Korean
    without Hangul; then, for a text long enough, the language detector. Markup is not text;
    text without letters passes."""
    text = text[:SCRIPT_SAMPLE_CHARS]
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "/" in text:
        text = _LINK.sub(" ", text)  # an address is no language: "[詳しくはこちら](https://help…)"
    if _ACRONYM.fullmatch(text.strip()):
        return None  # SKU, SNS, URL, 4L: written so in every language
    letters = in_script = kana = hangul = chinese_only = 0
    for kind, count in _kind_counts(text, locale.script).items():
        if kind & _LETTER:
            letters += count
            in_script += count if kind & _IN_SCRIPT else 0
            kana += count if kind & _KANA_CHAR else 0
            hangul += count if kind & _HANGUL_CHAR else 0
            chinese_only += count if kind & _CHINESE_ONLY else 0
    if not letters:
        return None
    share = in_script / letters
    expected = f"{locale.display_name} in {locale.script_name} script"
    # A short text (a button, a menu item) may be mostly a brand name: one letter of the
    # script is enough there.
    if share < MIN_SCRIPT_SHARE and not (letters < SHORT_TEXT_LETTERS and in_script):
        return f"only {share:.0%} of the letters are in {locale.script_name} script; write in {expected}"
    if locale.script == "Jpan" and kana / letters < MIN_KANA_SHARE:
        if chinese_only:
            return f"the text uses Chinese characters Japanese does not, and no kana; write in {expected}"
        if letters >= KANJI_ONLY_LETTERS:
            return f"the text has almost no kana, so it reads as Chinese; write in {expected}"
        return None  # 電子機器, 家具, 高品質: short Japanese is often kanji alone
    if locale.script == "Kore" and in_script and hangul / in_script < MIN_HANGUL_SHARE:
        return f"the text has almost no Hangul, so it reads as Chinese; write in {expected}"
    if locale.script not in DETECTOR_SCRIPTS:
        return None  # (its script, and Japanese's kana, told it from every language it is mistaken for)
    return detected_problem(text, locale.language, locale.display_name, letters=letters)


# The scripts a listing shares with a language it is mistaken for (language.NEIGHBOURS, and the
# source's English): only there does the detector have anything to tell. Thai, Korean, Arabic,
# Cyrillic or Japanese (with its kana) text is told from English and Chinese by its letters.
DETECTOR_SCRIPTS = frozenset({"Latn", "Hans", "Hant"})

# What a character is, as bits (classified once per distinct character).
_LETTER, _IN_SCRIPT, _KANA_CHAR, _HANGUL_CHAR, _CHINESE_ONLY = 1, 2, 4, 8, 16


def _kind_counts(text: str, script: str) -> dict[int, int]:
    """How many of the text's characters are of each kind (the bits above) for `script`: each
    character is replaced by its kind, and the few kinds are counted. Text all in Latin-1, as
    most Latin-script text is, goes through a table of bytes."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        kinds = text.translate(_kind_table(script))
        return {ord(kind): kinds.count(kind) for kind in set(kinds)}
    kind_bytes = raw.translate(_latin1_kinds(script))
    return {kind: kind_bytes.count(kind) for kind in set(kind_bytes)}


@cache
def _latin1_kinds(script: str) -> bytes:
    classify = _classifier(script)
    return bytes(classify(chr(code)) for code in range(256))


@cache
def _kind_table(script: str) -> _KindTable:
    return _KindTable(_classifier(script))


class _KindTable(dict[int, str]):
    """str.translate's table for a script: a character's code to its kind (as a character),
    classified when first seen; forgotten past TABLE_CODES (a text has at most a thousand)."""

    TABLE_CODES = 65536

    def __init__(self, classify: Callable[[str], int]) -> None:
        super().__init__()
        self._classify = classify

    def __missing__(self, code: int) -> str:
        if len(self) >= self.TABLE_CODES:
            self.clear()
        kind = self[code] = chr(self._classify(chr(code)))
        return kind


@cache
def _classifier(script: str) -> Callable[[str], int]:
    """What a character is for `script` (the bits above). The regex module is exact about
    Unicode scripts but slow per call: callers keep what it says (_KindTable)."""
    parts = "".join(rf"\p{{scx={part}}}" for part in _SCRIPT_PARTS.get(script, (script,)))
    in_script = regex.compile(rf"[{parts}]")

    def classify(char: str) -> int:
        kind = _LETTER if char.isalpha() else 0
        kind |= _IN_SCRIPT if in_script.match(char) else 0
        kind |= _KANA_CHAR if _KANA.match(char) else 0
        kind |= _HANGUL_CHAR if _HANGUL.match(char) else 0
        if _HAN.match(char) and not _in_japanese(char):
            kind |= _CHINESE_ONLY
        return kind

    return classify


def _in_japanese(char: str) -> bool:
    """Whether Japanese writes this Han character: it is in JIS X 0208 (Shift_JIS), which
    simplified Chinese forms such as 码, 进 and 务 are not."""
    try:
        char.encode("cp932")
    except UnicodeEncodeError:
        return False
    return True


# A code (an id, a SKU) this long with a digit in it names one product; a shorter one, or one
# without a digit, may be a word or a figure a listing says for its own reasons.
DISTINCT_CODE_CHARS = 4
# A product name of this many words names one product (a shorter one may be any listing's words).
DISTINCT_NAME_WORDS = 3


def names_other_product(line: Mapping[str, Any], product: Product, other: tuple[str, str, str] | None = None) -> bool:
    """Whether a listing names another product's own codes or name, and not as `product` does:
    then it is not `product`'s listing. `other` names that product; without it, the listing's
    own `id` and `sku` do (a listing written for another product with the same copy)."""
    own = {product.id, str(product.fields.get("sku") or "")}
    if other is None:
        codes = [str(line.get("id") or ""), str(line.get("sku") or "")]
        names: list[str] = []
    else:
        codes, names = [other[0], other[1]], [other[2]] if other[2] else []
    codes = [
        code
        for code in codes
        if len(code) >= DISTINCT_CODE_CHARS and any(ch.isdigit() for ch in code) and code not in own
    ]
    own_name = product.name.casefold()
    names = [
        name.casefold()
        for name in names
        if len(name.split()) >= DISTINCT_NAME_WORDS
        and name.casefold() not in own_name
        and own_name not in name.casefold()
    ]
    if not codes and not names:
        return False
    texts = [line.get("title"), line.get("description"), *(line.get("bullets") or []), *(line.get("seo_tags") or [])]
    texts += list((line.get("extra") or {}).values())
    written = " ".join(str(text) for text in texts if isinstance(text, str)).casefold()
    return any(code.casefold() in written for code in codes) or any(name in written for name in names)

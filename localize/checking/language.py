"""Which language a text is in, where its script cannot tell: Japanese from Chinese, a listing
left in the source's English, Spanish written for a Portuguese shop.

The script check (validate.script_problem) runs first and is enough for most languages: Thai,
Korean, Arabic or Cyrillic text is recognised by its letters. Texts in a shared script go to a
detector (lingua, which ships its models; only the languages in question are loaded, once per
target language): the target, English (the usual source language) and the target's
neighbours. A text of LOW_ACCURACY_CHARS or more (every listing: its title, bullets and
description together) goes to lingua's low-accuracy detector (trigrams: 5 MB a language,
built in milliseconds); only a shorter one (a store string) loads the high-accuracy models
(50 MB a language, most of a second), which short texts need. A text too short to judge
passes: a product type or a menu item written in kanji alone is correct Japanese, and a false
refusal costs re-asks and a failed job.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

# Languages a listing in the key's language is most often mistaken for (besides English, the
# usual source language): what a model slips into, or what the detector confuses.
NEIGHBOURS = {
    "pt": ("es",),
    "es": ("pt", "it", "ca"),
    "it": ("es",),
    "ca": ("es",),
    "fr": ("it",),
    "de": ("nl",),
    "nl": ("de",),
    "sv": ("da", "nb"),
    "da": ("nb", "sv"),
    "nb": ("da", "sv"),
    "id": ("ms",),
    "ms": ("id",),
    "ja": ("zh",),
    "zh": ("ja",),
}
# Fewer letters than this are not judged by the detector (too short to tell reliably: measured
# in bench/language_check.py on Shopify's own theme strings).
MIN_LETTERS = 40
# What is read of a text: a listing's language shows in its first couple of hundred characters
# (the detector's time grows with the sample: 0.13 ms for 400 characters, 0.07 for 200).
SAMPLE_CHARS = 240
# From this many characters, the low-accuracy models judge as well as the high-accuracy ones
# (lingua's own measure: they differ on words and short phrases, not on sentences).
LOW_ACCURACY_CHARS = 120
# Refused only when another language is this sure and the target's confidence this low.
OTHER_AT_LEAST = 0.9
TARGET_AT_MOST = 0.05
# The commonest function words of the languages whose listings share a script with the languages
# they are mistaken for; a language without a list (Swedish, Danish and Norwegian, too alike to
# tell this way; Indonesian and Malay) always goes to the detector.
FUNCTION_WORDS = {
    code: frozenset(words.split())
    for code, words in {
        "en": "the and with for of to is are your you this that from by it its be can",
        "de": "und der die das ist mit für ein eine einem einer nicht auch sich auf dem den zum zur über wird "
        "sind bei aus oder sie ihr ihre",
        "nl": "het een van en met voor niet ook zijn aan bij naar wordt deze dat je uw de op te",
        "fr": "le la les des et pour avec une du est dans sur au aux qui vous votre ce cette",
        "it": "il lo gli della delle dei che con per una sono è nel nella alla al anche questo questa le",
        "es": "el los las del que con para una por es más este esta sus y al",
        "pt": "os da dos das que com para uma por é não em na seu sua mais você este esta",
        "ca": "el els les amb per una que és del dels més aquest aquesta",
    }.items()
}
# What plainly_in asks of a text before it needs no detector (a 240-character listing sample has
# ten or more of them; a short or mixed text goes to the detector).
PLAIN_WORDS = 4
PLAIN_DISTINCT = 3
_WORD = re.compile(r"\w+")
# Not language: links, placeholders and markup.
_NOT_WORDS = re.compile(r"https?://[^\s)\]\"'<>]+|\{\{[^{}]*\}\}|\{%[^{%]*%\}|<[^<>]*>")


def detected_problem(text: str, language: str, display_name: str, *, letters: int) -> str | None:
    """Why `text`, written for `language` (ISO 639-1) and already in its script, reads as
    another language; None when it reads as its own, is too short to tell (fewer than
    MIN_LETTERS `letters`, as the caller counted them), or the detector does not know the
    language."""
    if letters < MIN_LETTERS:
        return None
    sample = _NOT_WORDS.sub(" ", text[: SAMPLE_CHARS * 4])[:SAMPLE_CHARS]
    if plainly_in(sample, language):
        return None  # (its own function words, and none of another's: the detector is not asked)
    detector = _detector(language, low_accuracy=len(sample) >= LOW_ACCURACY_CHARS)
    if detector is None:
        return None
    values = detector.compute_language_confidence_values(sample)
    target = _language(language)
    if target is None:
        return None
    confidence = {value.language: value.value for value in values}
    top = values[0]
    if top.language == target or top.value < OTHER_AT_LEAST or confidence.get(target, 0.0) > TARGET_AT_MOST:
        return None
    other = top.language.name.capitalize()
    return f"the text reads as {other}, not {display_name.split(' (')[0]}; write it in {display_name}"


def plainly_in(sample: str, language: str) -> bool:
    """Whether a text is plainly in `language` by its function words alone: at least
    PLAIN_WORDS of the words only it has among the languages it is mistaken for (English and
    its NEIGHBOURS), PLAIN_DISTINCT of them different, and those of every other language at
    most a third as many. Cheap (a tenth of the detector's time), and only ever says yes: a
    text that is not plainly so (short, mixed, or in another language) goes to the detector."""
    own, others = _function_words(language)
    if not own:
        return False
    counts = Counter(_WORD.findall(sample.lower()))
    mine = own.intersection(counts)
    hits = sum(counts[word] for word in mine)
    if hits < PLAIN_WORDS or len(mine) < PLAIN_DISTINCT:
        return False
    return all(3 * sum(counts[word] for word in theirs.intersection(counts)) <= hits for theirs in others)


@cache
def _function_words(language: str) -> tuple[frozenset[str], tuple[frozenset[str], ...]]:
    """The function words only `language` has among its candidates, and each candidate's that
    `language` does not have (none for a language without a list: always the detector)."""
    if language not in FUNCTION_WORDS:
        return frozenset(), ()
    candidates = [code for code in ("en", *NEIGHBOURS.get(language, ())) if code != language]
    if any(code not in FUNCTION_WORDS for code in candidates):
        return frozenset(), ()
    mine = FUNCTION_WORDS[language]
    own = mine - frozenset().union(*(FUNCTION_WORDS[code] for code in candidates))
    return own, tuple(FUNCTION_WORDS[code] - mine for code in candidates)


def warm_up(languages: tuple[str, ...]) -> None:
    """Load the detectors a listing needs now, not while the first answers are checked (the
    high-accuracy ones only when a short text needs them)."""
    for language in languages:
        _detector(language, low_accuracy=True)


@cache
def _detector(language: str, *, low_accuracy: bool) -> LanguageDetector | None:
    target = _language(language)
    if target is None:
        return None
    others = [_language(code) for code in ("en", *NEIGHBOURS.get(language, ())) if code != language]
    languages = [target, *(other for other in others if other is not None)]
    if len(languages) < 2:
        return None
    builder = LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models()
    return (builder.with_low_accuracy_mode() if low_accuracy else builder).build()


@cache
def _language(code: str) -> Language | None:
    try:
        return Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
    except (AttributeError, ValueError):
        return None

"""The quality judge's wire contract (other tools answer it; keep it exact): the request that
asks a model to annotate listings against their products, and the strict reading of its answer.

Request: a system message that begins `You are an annotator for the quality of product
listings.`; a user message with, per listing judged, the product's data as the writer got it
in `<source id="ID">…</source>` and the listing's fields as JSON in
`<listing id="ID" locale="xx-YY">…</listing>` (ids escaped as in the packed request).
Answer: `{"judgements": {"ID": {"errors": [{"span", "category", "severity"}], "score": N}}}`.

The style is GEMBA's (MicrosoftTranslator/GEMBA): error spans with a category and a severity
first, then a 0–100 score, which ranks close to the best reference-free metrics (KIMI.md §8).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..locales import Locale
from ..output.records import JudgeError, Quality, is_score
from ..planning.packing import REASONING_ROOM
from ..planning.prompts import data_json, fence_id
from ..reading.catalog import Product
from ..reading.glossary import Term
from .validate import InvalidAnswer, parse_answer

JUDGE_OPENING = "You are an annotator for the quality of product listings."

# The categories a judge may name (MQM's, as GEMBA-MQM uses them, with the marketplace's own):
# anything else it writes is kept under "other", so no error is lost to a spelling.
CATEGORIES = (
    "accuracy/addition",
    "accuracy/omission",
    "accuracy/mistranslation",
    "accuracy/untranslated",
    "fluency",
    "terminology",
    "style",
    "locale_convention",
)
SEVERITIES = ("major", "minor")
# Listings judged in one request (of one platform and locale): a judgement is a few hundred
# tokens, so a pack stays well inside any answer limit, and one bad answer costs little.
JUDGE_PACK = 8
# What one judgement takes on average (the dry run's estimate; GEMBA-style answers run 50–300).
JUDGE_OUTPUT_TOKENS = 200
# What a judge's request asks for its answer: room for each listing's spans and score, never
# less than the floor; a thinking judge let think (--thinking) gets room for its reasoning too.
JUDGE_ROOM_PER_LISTING = 700
JUDGE_MIN_MAX_TOKENS = 2048
# A span longer than this is not a span (a judge that quotes the whole description).
MAX_SPAN_CHARS = 500
MAX_ERRORS = 20  # per listing: beyond it a judge is listing everything, which says nothing more

JUDGE_SYSTEM = (
    JUDGE_OPENING
    + """ Each listing below was written for {platform} in {language} from the product data in
its <source> (the merchant's own facts; a <glossary> gives the merchant's binding terms).

Identify the errors in each listing, then score it:
- accuracy/addition: the listing claims something the source does not say (a feature, a material, a
  certification, a compatibility); accuracy/omission: it leaves out a fact a buyer needs;
  accuracy/mistranslation: it says a fact differently (a figure, a unit, a size, a name);
  accuracy/untranslated: source-language text left in the listing where {language} was due.
- fluency: grammar, spelling, punctuation, words that do not read as natural {language}.
- terminology: a wrong or inconsistent term, or a glossary term not written as the glossary says.
- style: the wrong register or tone for a listing on {platform} in {locale}, or text that reads like a machine.
- locale_convention: number, date, currency or unit formats {locale} does not use.
Severity: "major" when a buyer would be misled or the listing would be rejected or look broken;
"minor" otherwise. Each error quotes its span exactly as it stands in the listing (a few words,
never a whole field). A listing without errors has an empty list.
Then give each listing a score from 0 (unusable) to 100 (perfect, nothing to correct).

Answer with one JSON object and nothing else:
{{"judgements": {{"<id>": {{"errors": [{{"span": "...", "category": "...", "severity": "major|minor"}}],
"score": 0-100}}}}}} with one entry per listing, under the id of its <listing> tag exactly as written there."""
)


@dataclass(frozen=True, slots=True)
class ToJudge:
    """One listing in a judge's request: its product's data as the writer got it, the glossary
    entries it was bound by, and its fields."""

    id: str
    source: Mapping[str, Any]
    listing: Mapping[str, Any]
    terms: tuple[Term, ...] = ()


def sampled(key: tuple[str, str, str], rate: float) -> bool:
    """Whether a listing is in the stable sample of `rate`: a hash of its key, so the same
    listings are chosen run after run (and shard after shard)."""
    digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def why_judged(line: Mapping[str, Any], *, mode: str, rate: float, model: str) -> str | None:
    """Why a listing goes to the judge ("all", "warning", "sample"), or None: not chosen, a
    person's (written, approved, rejected, kept), or judged by this model already."""
    if line.get("origin") == "human" or line.get("approved") or line.get("rejected") or line.get("outdated"):
        return None
    judged = Quality.of(line.get("quality"))
    if judged is not None and judged.model == model:
        return None
    if mode == "all":
        return "all"
    if line.get("warnings"):
        return "warning"
    key = (str(line["id"]), str(line["platform"]), str(line["locale"]))
    return "sample" if sampled(key, rate) else None


# The fields of a result that are the listing itself (what the judge reads).
LISTING_FIELDS = ("title", "description", "bullets", "seo_tags", "extra")


def listing_fields(line: Mapping[str, Any]) -> dict[str, Any]:
    """A result line's listing, as the judge reads it."""
    return {name: line[name] for name in LISTING_FIELDS if line.get(name)}


def judged_source(product: Product, locale: Locale) -> dict[str, Any]:
    """A product's data as its listing's writer got it (the market's own keywords in place of
    the source's): what the judge compares the listing with."""
    source = product.data()
    market = product.market_keywords(locale.tag)
    if market:
        source["keywords"] = list(market)
    return source


def judge_max_tokens(listings: int, *, thinking: bool = False) -> int:
    """The max_tokens of a judge's request for `listings` listings."""
    return max(JUDGE_MIN_MAX_TOKENS, JUDGE_ROOM_PER_LISTING * listings) + (REASONING_ROOM if thinking else 0)


def judge_messages(platform: str, locale: Locale, items: Sequence[ToJudge]) -> list[dict[str, str]]:
    """The request for several listings of one (platform, locale): the contract's system and
    user messages. Texts are JSON with '<' escaped, so no field can close its tag."""
    system = JUDGE_SYSTEM.format(platform=platform, language=locale.display_name, locale=locale.tag)
    blocks = []
    for item in items:
        fenced = fence_id(item.id)
        block = f'<source id="{fenced}">\n{data_json(item.source)}\n</source>\n'
        if item.terms:
            terms = {term.term: term.translation or term.term for term in item.terms}
            block += f'<glossary id="{fenced}">\n{data_json(terms)}\n</glossary>\n'
        block += f'<listing id="{fenced}" locale="{locale.tag}">\n{data_json(item.listing)}\n</listing>'
        blocks.append(block)
    opening = "Annotate this listing." if len(items) == 1 else f"Annotate these {len(items)} listings."
    user = opening + "\n\n" + "\n\n".join(blocks)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def read_judgements(
    content: str, finish_reason: str | None, items: Sequence[ToJudge], model: str
) -> tuple[dict[str, Quality], list[str]]:
    """The judgements of an answer, by listing id, and what was wrong with the ones left out.
    The answer as a whole is read as strictly as a packed listing answer (InvalidAnswer: not
    JSON, cut off, no `judgements` object, an id asked for by no listing, an id twice); a
    judgement without a score from 0 to 100 is left out (its listing stays unjudged); an error
    whose span is not in its listing, or that names no severity we know, is dropped."""
    data = parse_answer(content, finish_reason)
    judgements = data.get("judgements")
    if not isinstance(judgements, dict):
        raise InvalidAnswer("schema", 'the answer must be {"judgements": {"<id>": {...}}}')
    by_fence = {fence_id(item.id): item for item in items}
    unknown = [key for key in judgements if key not in by_fence]
    if unknown:
        raise InvalidAnswer("schema", f"the answer judges {unknown[0]!r}, which is not a listing of this request")
    qualities: dict[str, Quality] = {}
    problems: list[str] = []
    for fenced, judgement in judgements.items():
        item = by_fence[fenced]
        if not isinstance(judgement, dict) or not is_score(judgement.get("score")):
            problems.append(f"{item.id}: no score from 0 to 100")
            continue
        texts = listing_texts(item.listing)
        errors = judgement.get("errors")
        kept = [
            error
            for error in (_error(raw, texts) for raw in (errors if isinstance(errors, list) else ())[:MAX_ERRORS])
            if error is not None
        ]
        qualities[item.id] = Quality(round(float(judgement["score"])), tuple(kept), model)
    return qualities, problems


def listing_texts(listing: Mapping[str, Any]) -> list[str]:
    """Every text of a listing a span may quote: its fields, lists and extra fields."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)

    walk(listing)
    return texts


def _error(raw: object, texts: Sequence[str]) -> JudgeError | None:
    if not isinstance(raw, dict):
        return None
    span, category, severity = raw.get("span"), raw.get("category"), raw.get("severity")
    if not isinstance(span, str) or not span.strip() or len(span) > MAX_SPAN_CHARS:
        return None
    if not isinstance(severity, str) or severity.strip().lower() not in SEVERITIES:
        return None
    span = span.strip()
    if not any(span in text for text in texts):
        return None  # a span not in the listing: an error nobody could find in it
    return JudgeError(span, _category(category), severity.strip().lower())


def _category(value: object) -> str:
    """A judge's category as one of ours: `Accuracy - Addition`, `accuracy/addition` and
    `addition` alike; anything else is "other"."""
    if not isinstance(value, str):
        return "other"
    words = value.strip().lower().replace(" - ", "/").replace(":", "/").replace(" ", "_")
    if words in CATEGORIES:
        return words
    for category in CATEGORIES:
        if words.endswith(category.split("/")[-1]) or category.startswith(words):
            return category
    return "other"

"""The lines OUT's files hold, declared once: a listing's result (results.jsonl), a store
string's (strings.jsonl) and a failure (failures.jsonl).

Every line is written through `line_of`, which puts the contract's fields in their order, then
the optional ones a record has, then people's decisions (reviews.py), and refuses a key it does
not declare: a field added where a record is built but not here would otherwise vanish from
the file without a word. Lines read back from a file another version wrote (`strict=False`)
keep what this version knows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What every result line ends with: how it was made and what it cost.
BILLED_FIELDS = ("model", "attempts", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "warnings")
RESULT_FIELDS = ("id", "sku", "platform", "locale", "title", "description", "bullets", "seo_tags", *BILLED_FIELDS)
STRING_FIELDS = ("id", "platform", "locale", "type", "field", "source", "text", *BILLED_FIELDS)
FAILURE_FIELDS = ("id", "platform", "locale", "error", "message", "attempts")
# A platform's extra answer fields (Shopify's SEO title and description) under `extra`; the job
# a twin's listing was taken from; a store string a translation memory filled; what the quality
# judge said of the listing ({score, errors, model}: --judge).
OPTIONAL_RESULT_FIELDS = ("extra", "reused_from", "memory", "quality")
# A failure an unchanged job would meet again: the run that met it, the fingerprint it was asked with.
OPTIONAL_FAILURE_FIELDS = ("run", "fingerprint")
# People's decisions folded into a result (reviews.py): who wrote it, whether a person approved
# it, a reviewer's note sending it back, a person's listing kept though its product changed.
REVIEW_FIELDS = ("origin", "approved", "rejected", "outdated")


class UnknownField(ValueError):
    """A record carries a key its line does not declare (a programming error: declare it here)."""


@dataclass(frozen=True, slots=True)
class LineKind:
    name: str
    fields: tuple[str, ...]  # written always, in this order
    optional: tuple[str, ...]  # written where the record has them
    reviewed: bool  # people's decisions are folded into it
    known: frozenset[str] = field(init=False, repr=False, compare=False)  # every key its lines may have

    def __post_init__(self) -> None:
        known = frozenset((*self.fields, *self.optional, *(REVIEW_FIELDS if self.reviewed else ())))
        object.__setattr__(self, "known", known)


RESULT = LineKind("results.jsonl", RESULT_FIELDS, OPTIONAL_RESULT_FIELDS, reviewed=True)
STRING = LineKind("strings.jsonl", STRING_FIELDS, OPTIONAL_RESULT_FIELDS, reviewed=True)
FAILURE = LineKind("failures.jsonl", FAILURE_FIELDS, OPTIONAL_FAILURE_FIELDS, reviewed=False)


def line_of(record: Mapping[str, Any], kind: LineKind, *, strict: bool = True) -> str:
    """A line of `kind`'s file: its fields in order, the optional ones a record has, people's
    decisions; UnknownField for a key it does not declare (unless not `strict`: dropped)."""
    if strict:
        _known(record, kind)
    kept = {name: record.get(name) for name in kind.fields}
    kept.update({name: record[name] for name in kind.optional if record.get(name)})
    if kind.reviewed:
        kept.update(origin=record.get("origin") or "model", approved=bool(record.get("approved")))
        if "rejected" in record:
            kept["rejected"] = record["rejected"]
        if record.get("outdated"):
            kept["outdated"] = True
    return _COMPACT.encode(kept) + "\n"


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once, not per line


# --- the lines as types: built in one place each, read back through the same type ----------------


@dataclass(frozen=True, slots=True)
class Billing:
    """How a line was made and what it cost (every result line ends with it)."""

    model: str
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    warnings: tuple[str, ...] = ()

    def free(self) -> Billing:
        """The same, taken at no cost (a twin's, a translation memory's)."""
        return Billing(self.model, warnings=self.warnings)

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in BILLED_FIELDS} | {"warnings": list(self.warnings)}

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Billing:
        return cls(
            model=str(data.get("model") or ""),
            attempts=int(data.get("attempts") or 0),
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cached_tokens=int(data.get("cached_tokens") or 0),
            cost_usd=float(data.get("cost_usd") or 0),
            warnings=tuple(str(item) for item in data.get("warnings") or ()),
        )


@dataclass(frozen=True, slots=True)
class JudgeError:
    """One error a judge found: where (a span of the listing), what and how bad."""

    span: str
    category: str
    severity: str

    def as_json(self) -> dict[str, str]:
        return {"span": self.span, "category": self.category, "severity": self.severity}


@dataclass(frozen=True, slots=True)
class Quality:
    """A listing's judgement, as results.jsonl carries it: `quality: {score, errors, model}`."""

    score: int
    errors: tuple[JudgeError, ...]
    model: str

    def as_json(self) -> dict[str, Any]:
        return {"score": self.score, "errors": [error.as_json() for error in self.errors], "model": self.model}

    @classmethod
    def of(cls, data: object) -> Quality | None:
        """A quality read back from a results line (None when it is not one)."""
        if not isinstance(data, Mapping) or not is_score(data.get("score")):
            return None
        errors = tuple(
            JudgeError(str(error["span"]), str(error["category"]), str(error["severity"]))
            for error in data.get("errors") or ()
            if isinstance(error, Mapping) and {"span", "category", "severity"} <= set(error)
        )
        return cls(round(float(data["score"])), errors, str(data.get("model") or ""))


@dataclass(frozen=True, slots=True)
class ResultLine:
    """A listing's line in results.jsonl."""

    id: str
    sku: str | None
    platform: str
    locale: str
    title: str
    description: str
    bullets: tuple[str, ...]
    seo_tags: tuple[str, ...]
    billing: Billing
    extra: Mapping[str, Any] | None = None  # the platform's extra fields (Shopify's SEO title)
    reused_from: str | None = None  # a twin's: the job whose listing it took
    quality: Quality | None = None  # the judge's (--judge)

    def as_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.id,
            "sku": self.sku,
            "platform": self.platform,
            "locale": self.locale,
            "title": self.title,
            "description": self.description,
            "bullets": list(self.bullets),
            "seo_tags": list(self.seo_tags),
            **self.billing.as_json(),
        }
        if self.extra:
            line["extra"] = dict(self.extra)
        if self.reused_from:
            line["reused_from"] = self.reused_from
        if self.quality is not None:
            line["quality"] = self.quality.as_json()
        return line

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ResultLine:
        """A line read back (people's decisions folded in or not: they are not the line's own)."""
        _known(data, RESULT)
        return cls(
            id=str(data["id"]),
            sku=None if data.get("sku") is None else str(data["sku"]),
            platform=str(data["platform"]),
            locale=str(data["locale"]),
            title=str(data.get("title") or ""),
            description=str(data.get("description") or ""),
            bullets=tuple(str(item) for item in data.get("bullets") or ()),
            seo_tags=tuple(str(item) for item in data.get("seo_tags") or ()),
            billing=Billing.of(data),
            extra=dict(data["extra"]) if isinstance(data.get("extra"), dict) and data["extra"] else None,
            reused_from=str(data["reused_from"]) if data.get("reused_from") else None,
            quality=Quality.of(data.get("quality")),
        )


@dataclass(frozen=True, slots=True)
class StringLine:
    """A store string's line in strings.jsonl (a Translate & Adapt text, a WooCommerce note)."""

    id: str
    platform: str
    locale: str
    type: str | None
    field: str | None
    source: str
    text: str
    billing: Billing
    memory: bool = False  # filled from a translation memory, not asked
    reused_from: str | None = None

    def as_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.id,
            "platform": self.platform,
            "locale": self.locale,
            "type": self.type,
            "field": self.field,
            "source": self.source,
            "text": self.text,
            **self.billing.as_json(),
        }
        if self.reused_from:
            line["reused_from"] = self.reused_from
        if self.memory:
            line["memory"] = True
        return line

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> StringLine:
        _known(data, STRING)
        return cls(
            id=str(data["id"]),
            platform=str(data["platform"]),
            locale=str(data["locale"]),
            type=None if data.get("type") is None else str(data["type"]),
            field=None if data.get("field") is None else str(data["field"]),
            source=str(data.get("source") or ""),
            text=str(data.get("text") or ""),
            billing=Billing.of(data),
            memory=bool(data.get("memory")),
            reused_from=str(data["reused_from"]) if data.get("reused_from") else None,
        )


Line = ResultLine | StringLine


def _known(data: Mapping[str, Any], kind: LineKind) -> None:
    if not kind.known.issuperset(data):
        unknown = sorted(set(data) - kind.known)
        raise UnknownField(f"a {kind.name} line with undeclared fields {unknown}: declare them in records.py")


def is_score(value: object) -> bool:
    """A judge's score: a number from 0 to 100."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 100
    )

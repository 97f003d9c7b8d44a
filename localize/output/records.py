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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What every result line ends with: how it was made and what it cost.
BILLED_FIELDS = ("model", "attempts", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "warnings")
RESULT_FIELDS = ("id", "sku", "platform", "locale", "title", "description", "bullets", "seo_tags", *BILLED_FIELDS)
STRING_FIELDS = ("id", "platform", "locale", "type", "field", "source", "text", *BILLED_FIELDS)
FAILURE_FIELDS = ("id", "platform", "locale", "error", "message", "attempts")
# A platform's extra answer fields (Shopify's SEO title and description) under `extra`; the job
# a twin's listing was taken from; a store string a translation memory filled.
OPTIONAL_RESULT_FIELDS = ("extra", "reused_from", "memory")
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

    @property
    def known(self) -> frozenset[str]:
        return frozenset((*self.fields, *self.optional, *(REVIEW_FIELDS if self.reviewed else ())))


RESULT = LineKind("results.jsonl", RESULT_FIELDS, OPTIONAL_RESULT_FIELDS, reviewed=True)
STRING = LineKind("strings.jsonl", STRING_FIELDS, OPTIONAL_RESULT_FIELDS, reviewed=True)
FAILURE = LineKind("failures.jsonl", FAILURE_FIELDS, OPTIONAL_FAILURE_FIELDS, reviewed=False)


def line_of(record: Mapping[str, Any], kind: LineKind, *, strict: bool = True) -> str:
    """A line of `kind`'s file: its fields in order, the optional ones a record has, people's
    decisions; UnknownField for a key it does not declare (unless not `strict`: dropped)."""
    if strict:
        unknown = sorted(set(record) - kind.known)
        if unknown:
            raise UnknownField(f"a {kind.name} line with undeclared fields {unknown}: declare them in records.py")
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

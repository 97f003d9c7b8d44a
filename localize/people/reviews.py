"""Human work on the listings and store strings: edits, approvals and rejections, kept in OUT/reviews.jsonl, one
decision a line, appended in the order they were made.

The file is the record of what people decided: committed with OUT, diffable, and merge-friendly
(two reviewers' lines both stay; a conflict is resolved by keeping both sides). A fresh clone
without localize.db keeps every decision, and a reviewer's change can be proposed in a pull
request: the store folds the file into the results whenever it changed (store.RunStore).

A job's state is its decisions folded in order: an edit replaces fields and makes the listing a
person's (`origin: human`), an approval marks it approved, `unapprove` takes that back, a
rejection drops both and asks for a new listing with the reviewer's note, and `regenerated`
(written by a run that replaced the listing on purpose) starts over.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from ..reading.textfile import append_lines

Action = Literal["edit", "approve", "unapprove", "reject", "regenerated"]
ACTIONS = ("edit", "approve", "unapprove", "reject", "regenerated")
# The fields of a listing a person may edit (the result's own and its platform's extra fields).
EDITABLE = ("title", "description", "bullets", "seo_tags")
# ...and of a store string (a Translate & Adapt text, a WooCommerce note): its translation.
STRING_EDITABLE = ("text",)


@dataclass(frozen=True, slots=True)
class Decision:
    """One person's decision on one listing."""

    id: str
    platform: str
    locale: str
    action: Action
    fields: Mapping[str, Any] = field(default_factory=dict)  # an edit's new values
    note: str | None = None  # a rejection's note for the writer
    user: str | None = None
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    number: int = field(default=0, compare=False)  # its line in reviews.jsonl (0: not read from it)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.id, self.platform, self.locale)

    def line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "time": self.time,
            "id": self.id,
            "platform": self.platform,
            "locale": self.locale,
            "action": self.action,
        }
        if self.fields:
            line["fields"] = dict(self.fields)
        if self.note:
            line["note"] = self.note
        if self.user:
            line["user"] = self.user
        return line


def read_decisions(path: Path) -> Iterator[Decision]:
    """Every decision of the file, in order; a line that is not one is an error naming it."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip() or raw.startswith(("<<<<<<<", "=======", ">>>>>>>")):
                continue  # blank, or a merge's marker: both sides' decisions stay
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                action = entry["action"]
                if action not in ACTIONS:
                    raise ValueError(f"unknown action {action!r}")
                for name in ("id", "platform", "locale"):
                    if not isinstance(entry[name], str) or not entry[name]:
                        raise ValueError(f"{name} must be a non-empty string")
                fields = entry.get("fields") or {}
                if not isinstance(fields, dict):
                    raise ValueError("fields is not an object")
                for name, value in fields.items():
                    _check_field(name, value)
                note, user = entry.get("note"), entry.get("user")
                if note is not None and not isinstance(note, str) or user is not None and not isinstance(user, str):
                    raise ValueError("note and user are strings")
                yield Decision(
                    entry["id"],
                    entry["platform"],
                    entry["locale"],
                    action,
                    fields,
                    note,
                    user,
                    str(entry.get("time") or ""),
                    number,
                )
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                raise InputError(
                    f"not a review decision: {exc}",
                    where=f"{path}:{number}",
                    hint='each line is {"id", "platform", "locale", "action", ...}; fix or remove it',
                ) from None


# A listing's list fields; every other field a person edits is text.
LIST_FIELDS = ("bullets", "seo_tags")


def _check_field(name: str, value: object) -> None:
    """An edited field's type, as the review API takes it: the list fields a list of strings,
    every other field a string."""
    if name in LIST_FIELDS:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"fields.{name} must be a list of strings")
    elif not isinstance(value, str):
        raise ValueError(f"fields.{name} must be a string, not {type(value).__name__}")


def append_decisions(path: Path, decisions: Iterable[Decision]) -> int:
    """Add decisions at the end of the file (written through to disk); how many."""
    return append_lines(path, (json.dumps(decision.line(), ensure_ascii=False) + "\n" for decision in decisions))


def by_job(decisions: Iterable[Decision]) -> dict[tuple[str, str, str], list[Decision]]:
    found: dict[tuple[str, str, str], list[Decision]] = {}
    for decision in decisions:
        found.setdefault(decision.key, []).append(decision)
    return found


def fold(line: Mapping[str, Any], decisions: Iterable[Decision]) -> dict[str, Any]:
    """A result line with a job's decisions applied in order: a person's fields, `origin`,
    `approved`, and a rejection's note (`rejected`)."""
    folded = dict(line)
    folded.setdefault("origin", "model")
    folded.setdefault("approved", False)
    for decision in decisions:
        if decision.action == "edit":
            extra = dict(folded.get("extra") or {})
            for name, value in decision.fields.items():
                if name in EDITABLE or name in STRING_EDITABLE:
                    folded[name] = value
                else:
                    extra[name] = value
            if extra:
                folded["extra"] = extra
            folded["origin"] = "human"
            folded.pop("rejected", None)
            folded.pop("quality", None)  # the judge read the model's text, not this one
        elif decision.action == "approve":
            folded["approved"] = True
        elif decision.action == "unapprove":
            folded["approved"] = False
        elif decision.action == "reject":
            folded["approved"] = False
            folded["rejected"] = decision.note or ""
        elif decision.action == "regenerated":
            folded = {**line, "origin": "model", "approved": False}
            folded.pop("rejected", None)
    return folded


def is_kept(line: Mapping[str, Any]) -> bool:
    """Whether a listing is a person's to keep: edited or approved, and not sent back."""
    return (line.get("origin") == "human" or bool(line.get("approved"))) and "rejected" not in line

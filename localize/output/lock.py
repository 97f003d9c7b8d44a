"""OUT/localize.lock: what each result was generated from, and why a job is stale.

The lock is JSON lines, sorted, one product or job per line, so a catalog edit shows in git as
the few lines it touched:

    {"localize_lock": 1}
    {"product": "APP-001", "fields": {"brand": "5f1c…", "name": "9a0e…"}}
    {"job": ["APP-001", "amazon", "de-DE"], "model": "kimi-k2", "params": "…", "prompt": "…", "rules": "…"}

A job is up to date when its entry matches what this run would send (the rendered messages,
which carry the product fields, the templates and the locale; the model and its parameters;
the platform rules the answer is checked against) and its result exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..planning.rules import PlatformRules

VERSION = 1
HEADER = json.dumps({"localize_lock": VERSION}) + "\n"
JobKey = tuple[str, str, str]  # (product id, platform, locale)


# One encoder each, built once: json.dumps with options builds a new one per call.
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def digest(value: Any) -> str:
    """A short, stable hash of a JSON-able value (16 hex digits: collisions are not a risk at
    catalog sizes, and lines stay short)."""
    text = value if isinstance(value, str) else _CANONICAL.encode(value)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Everything that determines a job's output."""

    row: str  # the product fields the prompt uses
    model: str
    params: str
    prompt: str  # the rendered messages: fields, templates and locale together
    rules: str
    _digest: bytes = field(init=False, default=b"", repr=False, compare=False)  # digest(), once asked

    def as_dict(self) -> dict[str, str]:
        return {"row": self.row, "model": self.model, "params": self.params, "prompt": self.prompt, "rules": self.rules}

    def digest(self) -> bytes:
        """16 bytes standing for the whole fingerprint: what a run keeps per job in memory."""
        if not self._digest:
            parts = (self.row, self.model, self.params, self.prompt, self.rules)  # as_dict's order
            object.__setattr__(self, "_digest", hashlib.sha256("|".join(parts).encode()).digest()[:16])
        return self._digest


class Fingerprinter:
    """Fingerprints for a run's jobs. The parts jobs share (parameters, platform rules, the
    system prompt of a platform and locale) are hashed once, not once per job."""

    def __init__(self, *, model: str, params: Mapping[str, Any]) -> None:
        self._model = model
        self._params = digest(dict(params))
        self._rules: dict[int, str] = {}  # id(rules) → digest; a run's rules objects live as long as it
        self._texts: dict[str, str] = {}  # system prompt → digest (its str hash is cached: cheap to look up)
        self._fields: dict[str, dict[str, str]] = {}  # the last products' field digests
        self._rows: dict[int, tuple[Mapping[str, str], str]] = {}  # their row digests, by identity

    def fields(self, product_id: str, data: Mapping[str, Any]) -> dict[str, str]:
        """A product's field digests; its jobs (one per platform and locale) share them."""
        cached = self._fields.get(product_id)
        if cached is None:
            if len(self._fields) >= 4096:
                self._fields.clear()
            cached = self._fields[product_id] = field_digests(data)
        return cached

    def of(self, fields: Mapping[str, str], messages: list[dict[str, str]], rules: PlatformRules | str) -> Fingerprint:
        """`rules`: the platform's, or for a string the version of the checks it passes."""
        if isinstance(rules, str):
            rules_digest = digest(rules)
        else:
            cached = self._rules.get(id(rules))
            if cached is None:
                # The markets a platform serves shape no answer: they stay out of the lock.
                dumped = rules.model_dump(mode="json", exclude={"markets"})
                cached = self._rules[id(rules)] = digest(dumped)
            rules_digest = cached
        prompt = hashlib.sha256()
        for message in messages:
            text = message["content"]
            if message["role"] == "system":
                text = self._texts.get(text) or self._texts.setdefault(text, digest(text))
            prompt.update(f"{message['role']}\0{text}\0".encode())
        row = self._rows.get(id(fields))
        if row is None or row[0] is not fields:
            if len(self._rows) >= 64:  # a product's jobs come together: keep only the last few
                self._rows.clear()
            row = self._rows[id(fields)] = (fields, digest(dict(fields)))
        return Fingerprint(
            row=row[1],
            model=self._model,
            params=self._params,
            prompt=prompt.hexdigest()[:16],
            rules=rules_digest,
        )


def field_digests(fields: Mapping[str, Any]) -> dict[str, str]:
    """A hash per product field, so a stale job can say which fields changed (digest's, cut
    to 8 digits; text, most fields, hashed directly)."""
    sha256 = hashlib.sha256
    return {
        name: sha256(value.encode()).hexdigest()[:8] if type(value) is str else digest(value)[:8]
        for name, value in sorted(fields.items())
    }


def stale_reason(
    old: Fingerprint | None,
    fp: Fingerprint,
    fields: Mapping[str, str],
    old_fields: Mapping[str, str] | None,
    *,
    has_result: bool,
) -> str | None:
    """Why a job must be (re)generated, or None when its result is up to date: `old` is its
    fingerprint in the lock, `old_fields` its product's recorded field digests (None for a
    product the lock does not know)."""
    if old is None:
        return "new row" if old_fields is None else "new platform or locale"
    if not has_result:
        return "no result"
    if old.row != fp.row:
        # The product's recorded fields may already be newer (a narrowed run regenerated
        # another of its jobs); then the changed fields cannot be named, only the row.
        known = old_fields or {}
        changed = sorted(n for n in set(fields) | set(known) if fields.get(n) != known.get(n))
        return "edited " + ", ".join(changed) if changed else "edited row"
    if old.model != fp.model:
        return f"changed model ({old.model} → {fp.model})"
    if old.rules != fp.rules:
        return "changed rules"
    if old.prompt != fp.prompt:
        return "changed prompt"
    if old.params != fp.params:
        return "changed parameters"
    return None


def iter_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The lock's product and job lines, each as written (ending in a newline) and as read."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:  # a bad byte: the line is refused below
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                if "product" in entry:
                    dict(entry["fields"])
                elif "job" in entry:
                    if len(entry["job"]) != 3:
                        raise ValueError("a job is (id, platform, locale)")
                    Fingerprint(**fingerprint_fields(entry))
                elif entry.get("localize_lock") == VERSION:
                    continue
                else:
                    raise ValueError("unknown entry or version")
            except (ValueError, KeyError, TypeError, RecursionError):
                conflict = raw.startswith(("<<<<<<<", "=======", ">>>>>>>", "|||||||"))
                raise InputError(
                    "a git merge conflict in the lock" if conflict else "not a lock file this version can read",
                    where=f"{path}:{number}",
                    hint=(
                        "keep both sides' lines and drop the marker lines (the lock is sorted lines: "
                        "`localize run … --check` then says which jobs are stale), or take one side with "
                        "`git checkout --theirs localize.lock`; deleting it would pay for every job again"
                        if conflict
                        else "restore it from git (`git checkout -- localize.lock`); deleting it would pay for "
                        "every job again"
                    ),
                ) from None
            yield (raw if raw.endswith("\n") else raw + "\n"), entry


def job_line(key: JobKey, fp: Fingerprint, copy: str | None = None) -> str:
    """A job's lock line; `copy` (its copy key: what it asked, codes such as the SKU aside) lets
    a later job with the same copy take its listing instead of paying for it again."""
    return _line({"job": list(key), **fp.as_dict(), **({"copy": copy} if copy else {})})


def product_line(product_id: str, fields: Mapping[str, str]) -> str:
    return _line({"product": product_id, "fields": dict(fields)})


def fingerprint_fields(entry: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(entry[name]) for name in ("row", "model", "params", "prompt", "rules")}


def _line(entry: Mapping[str, Any]) -> str:
    return _LINE.encode(entry) + "\n"

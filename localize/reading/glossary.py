"""--glossary FILE: terms to keep verbatim and terms with a fixed translation per locale.

YAML:

    keep: [Nordbeat, ANC45, USB-C]          # brand, product-line and model names
    translate:
      noise cancelling:
        de-DE: Geräuschunterdrückung
        ja-JP: ノイズキャンセリング

CSV: a `term` column and one column per locale; a row with no translation is kept verbatim.

Only the entries that occur in a product reach its prompt (tokens cost money), so editing one
entry changes only the prompts, and so the lock entries, of the products that use it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, LocaleError
from ..locales import parse_locale


@dataclass(frozen=True, slots=True)
class Term:
    """One glossary entry as a job uses it: keep `term` as is, or write it as `translation`."""

    term: str
    translation: str | None = None


@dataclass(frozen=True, slots=True)
class Glossary:
    keep: tuple[str, ...] = ()
    translate: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Terms by their first word, lowercased, so a product is checked only against the terms
    # that could occur in it: a 100,000-term glossary costs a product its own words, not a
    # scan per term. Terms that start with a non-word character are always checked.
    _by_first_word: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _always: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    _order: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _kept: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._kept.update(self.keep)
        for term in dict.fromkeys([*self.keep, *self.translate]):
            self._order[term] = len(self._order)
            first = _WORD.match(term.lower())
            if first:
                self._by_first_word.setdefault(first.group(0), []).append(term)
            else:
                self._always.append(term)

    def terms_for(self, text: str, locale: str) -> list[Term]:
        """The entries that occur in `text` (a product's data), for one locale, in glossary order."""
        words = set(_WORD.findall(text.lower()))
        candidates = {term for word in words for term in self._by_first_word.get(word, ())}
        candidates.update(self._always)
        present = sorted((term for term in candidates if _occurs(term, text)), key=self._order.__getitem__)
        found = [Term(term) for term in present if term in self._kept]
        for term in present:
            translation = self.translate.get(term, {}).get(locale)
            if translation and term not in self._kept:
                found.append(Term(term, translation))
        return found


def load_glossary(path: Path) -> Glossary:
    """Read a YAML or CSV glossary, or raise ConfigError naming the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("no such glossary file", where=str(path), hint="check the --glossary path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the glossary: {exc}", where=str(path)) from None
    if path.suffix.lower() == ".csv":
        return _from_csv(path, text)
    return _from_yaml(path, text)


def _from_yaml(path: Path, text: str) -> Glossary:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if not isinstance(data, dict) or set(data) - {"keep", "translate"}:
        raise ConfigError("expected `keep:` (a list) and `translate:` (term → locale → text)", where=str(path))
    keep = data.get("keep") or []
    translate = data.get("translate") or {}
    if not isinstance(keep, list) or not all(isinstance(term, (str, int)) for term in keep):
        raise ConfigError("`keep:` must be a list of terms", where=str(path))
    if not isinstance(translate, dict):
        raise ConfigError("`translate:` must map each term to {locale: translation}", where=str(path))
    table: dict[str, dict[str, str]] = {}
    for term, by_locale in translate.items():
        if not isinstance(by_locale, dict):
            raise ConfigError(f"`translate: {term}` must map locales to translations", where=str(path))
        table[str(term)] = {_locale(path, code): str(value) for code, value in by_locale.items()}
    return Glossary(keep=tuple(str(term) for term in keep), translate=table)


def _from_csv(path: Path, text: str) -> Glossary:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "term" not in (rows[0].keys() if rows else ()):
        raise ConfigError("a CSV glossary needs a `term` column, then one column per locale", where=str(path))
    locales = {name: _locale(path, name) for name in rows[0] if name and name != "term"}
    keep: list[str] = []
    table: dict[str, dict[str, str]] = {}
    for row in rows:
        term = (row.get("term") or "").strip()
        if not term:
            continue
        translations = {locales[n]: v.strip() for n, v in row.items() if n in locales and v and v.strip()}
        if translations:
            table[term] = translations
        else:
            keep.append(term)
    return Glossary(keep=tuple(keep), translate=table)


def _locale(path: Path, code: Any) -> str:
    try:
        return parse_locale(str(code)).tag
    except LocaleError as exc:  # say which file the code came from
        raise ConfigError(str(exc), where=str(path)) from None


_WORD = re.compile(r"\w+")


def _occurs(term: str, text: str) -> bool:
    return bool(_pattern(term).search(text))


@cache
def _pattern(term: str) -> re.Pattern[str]:
    """The term as a whole word, case-insensitively ("ANC45" but not "ANC450")."""
    return re.compile(r"(?<!\w)" + re.escape(term) + r"(?!\w)", re.IGNORECASE)

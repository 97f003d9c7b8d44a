"""A person's edit of a listing or a store string, held to the hard rules a model's answer is
(its platform's limits and schema, a store string's placeholders, tags and language): what the
review API checks before it saves an edit, and what a run checks of every edit in
OUT/reviews.jsonl (a line written by hand, or merged from a pull request).

A figure or glossary finding is a warning on a person's listing, never a refusal: a person may
know better than the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..checking.figures import facts_of
from ..checking.strings import check_edit
from ..checking.validate import InvalidAnswer, check_listing
from ..errors import InputError
from ..locales import parse_locale
from ..output.layout import REVIEWS
from ..output.store import STRING_PLATFORM
from .reviews import EDITABLE, STRING_EDITABLE

if TYPE_CHECKING:
    from ..output.store import RunStore
    from ..planning.jobs import PromptSets
    from ..reading.catalog import Product


class EditRefused(Exception):
    """An edit that breaks a hard rule: what is wrong with it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_edit_fields(
    current: Mapping[str, Any], fields: Mapping[str, Any], prompt_sets: PromptSets, product: Product | None = None
) -> list[str]:
    """The warnings of a person's edit of `current` (a result line) with `fields`, or
    EditRefused when it breaks a hard rule; `product` (its source, when known) checks figures."""
    if current["platform"] == STRING_PLATFORM:
        return _check_string(current, fields)
    unknown = [name for name in fields if name not in EDITABLE and name not in (current.get("extra") or {})]
    if unknown:
        raise EditRefused([f"{name}: not a field of this listing" for name in unknown])
    data = {name: current.get(name) for name in EDITABLE}
    data.update(current.get("extra") or {})
    data.update(fields)
    locale = parse_locale(str(current["locale"]))
    prompt_set = prompt_sets.get(str(current["platform"]))
    source = product.data() if product is not None else None
    terms = prompt_set.terms_for(product, locale) if product is not None else []
    try:
        _, warnings = check_listing(
            data,
            prompt_set.rules_for(locale),
            locale,
            terms,
            source=source,
            facts=facts_of(source) if source is not None else None,
            figures_as_warnings=True,
            glossary_as_warnings=True,
        )
    except InvalidAnswer as exc:
        raise EditRefused([f"{exc.kind}: {exc.message}"]) from None
    return warnings


def _check_string(current: Mapping[str, Any], fields: Mapping[str, Any]) -> list[str]:
    """A person's translation of a store string: only its text, kept sound for the store."""
    unknown = [name for name in fields if name not in STRING_EDITABLE]
    if unknown:
        raise EditRefused([f"{name}: a store string has only its text" for name in unknown])
    try:
        return check_edit(str(current.get("source") or ""), fields["text"], parse_locale(str(current["locale"])))
    except InvalidAnswer as exc:
        raise EditRefused([f"{exc.kind}: {exc.message}"]) from None


def check_people(store: RunStore, prompt_sets: PromptSets) -> None:
    """Every listing and store string people edited, as their decisions leave it, held to the
    hard rules: the first that breaks one stops the run (exit 2), naming its reviews.jsonl line."""
    for key, edit in store.edits():
        line = store.result(key)
        if line is None:
            continue  # an edit of a listing OUT no longer holds: nothing is published from it
        fields = {name: line.get(name) for name in (*EDITABLE, *STRING_EDITABLE) if name in edit.fields}
        fields.update({name: value for name, value in (line.get("extra") or {}).items() if name in edit.fields})
        try:
            check_edit_fields(line, fields, prompt_sets)
        except EditRefused as refused:
            raise InputError(
                f"a person's edit of {key[0]} ({key[1]}, {key[2]}) breaks a hard rule: {refused}",
                where=f"{store.out / REVIEWS}:{edit.number}",
                hint="fix or remove that line (the review page refuses such an edit)",
            ) from None

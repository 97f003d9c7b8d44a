"""A job made ready to send, or to compare with the lock, in one place: its messages, what its
answer is checked against, and the fingerprint behind "is this job current?".

The live run, batch, --check and the dry run all prepare their jobs here, so the key a result
is stored under and the key it is looked up by are made by one piece of code and cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..checking.strings import STRINGS, STRINGS_RULES, render_strings
from ..config import Settings
from ..locales import Locale
from ..output.lock import Fingerprint, Fingerprinter
from ..reading.catalog import Product
from .jobs import Job, PromptSets, request_params
from .prompts import Message
from .rules import PlatformRules

# A product's codes: they name it, they are not its copy (GTIN, MPN and the like never reach the
# model: fields.NOT_COPY).
CODE_FIELDS = frozenset({"sku"})
# A copy key's fields: none (the copy is in its prompt). One object, so its digest is made once.
_NO_FIELDS: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """A job, what it sends and the inputs its result is generated from."""

    job: Job
    messages: list[Message]  # the job's own request (a pack renders its jobs together)
    rules: PlatformRules | None  # the platform's, for a listing; None for a store string
    fields: Mapping[str, str]  # its product's field digests (what --check names as edited)
    fp: Fingerprint
    adapted: bool = False  # its prompt carries a sibling market's listing (--adapt): asked alone


class Preparer:
    """Prepares a run's jobs; the parts they share (parameters, rules, system prompts, a
    product's field digests) are hashed once."""

    def __init__(self, settings: Settings, prompt_sets: PromptSets) -> None:
        self._prompt_sets = prompt_sets
        self._fingerprints = Fingerprinter(model=settings.model, params=request_params(settings))
        self._bare: tuple[Product | None, Product | None] = (None, None)  # the last product, without its codes

    def listing(self, job: Job, sibling: tuple[Locale, Mapping[str, Any]] | None = None) -> PreparedJob:
        """A listing job (PromptError when its templates cannot render it); with `sibling`, one
        adapted from a sibling market's listing (which is then in its fingerprint too)."""
        prompt_set = self._prompt_sets.get(job.platform)
        messages = prompt_set.render_messages(job.product, job.locale, sibling)
        rules = prompt_set.rules_for(job.locale)
        fields = self._fingerprints.fields(job.product.id, job.product.data())
        fp = self._fingerprints.of(fields, messages, rules)
        return PreparedJob(job, messages, rules, fields, fp, adapted=sibling is not None)

    def copy_key(self, prepared: PreparedJob) -> str:
        """What a job asks, its codes aside (the id, the SKU: they name a product, they are not
        its copy), with everything its answer depends on: the platform's rules, the model, the
        parameters and the prompt rendered without those codes. Two jobs with one copy key get
        one answer (issue: the same copy is not paid for twice)."""
        job = prepared.job
        product = job.product
        bare = self._bare[1]
        if self._bare[0] is not product or bare is None:  # one per product: its locales' renders share it
            bare = replace(product, id="", fields={k: v for k, v in product.fields.items() if k not in CODE_FIELDS})
            self._bare = (product, bare)
        if job.platform == STRINGS:
            messages = render_strings([bare], job.locale).messages
            return self._fingerprints.of(_NO_FIELDS, messages, STRINGS_RULES).digest().hex()
        assert prepared.rules is not None
        messages = prepared.messages
        if len(bare.fields) != len(product.fields) or product.id in messages[-1]["content"]:
            messages = self._prompt_sets.get(job.platform).render_messages(bare, job.locale)  # codes out
        return self._fingerprints.of(_NO_FIELDS, messages, prepared.rules).digest().hex()

    def string(self, product: Product, locale: Locale) -> PreparedJob:
        """A store string of a Translate & Adapt export, in one locale: checked by strings.py,
        whose check version stands for the rules in its fingerprint."""
        messages = render_strings([product], locale).messages
        fields = self._fingerprints.fields(product.id, product.data())
        return PreparedJob(
            Job(product, STRINGS, locale),
            messages,
            None,
            fields,
            self._fingerprints.of(fields, messages, STRINGS_RULES),
        )

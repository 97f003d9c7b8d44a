"""What differs between a product's listing and a store's text (a Translate & Adapt string):
the request several of them share, the answer's shape, the checks, the result line. The job
runner (pipeline.py) asks the job's kind and never tests which one it holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..config import Settings
from ..output.records import Billing, Line, ResultLine, StringLine
from ..planning.jobs import Job, PromptSets
from ..planning.packing import read_pack
from ..planning.prompts import PackedPrompt
from ..planning.rules import PlatformRules
from ..reading.catalog import Product
from ..reading.glossary import Term
from ..sending.relay import Completion
from .figures import Facts, facts_of, load_units
from .language import warm_up
from .strings import check_string, read_strings, render_strings
from .validate import InvalidAnswer, Listing, check_listing, parse_answer, source_text

# Products whose facts a run keeps at once (packs interleave a product's locales).
FACTS_KEPT = 512


def load_checks(settings: Settings) -> None:
    """Load what the checks need (pint's unit registry, the language detectors of the run's
    locales) before a run sends: loaded on the first answers, a quarter second each would hold
    up every request in flight."""
    load_units()
    warm_up(tuple(dict.fromkeys(locale.language for locale in settings.locales)))


class JobKind(Protocol):
    # A job asked alone still answers in the packed shape (a string's translation under its key).
    packed_alone: bool

    def render_pack(self, products: Sequence[Product], job: Job) -> PackedPrompt:
        """One request for several jobs of `job`'s platform and locale."""
        ...

    def read_pack(self, completion: Completion, ids: list[str]) -> dict[str, object]:
        """Each id's part of a packed answer (None where it has none)."""
        ...

    def answer_alone(self, job: Job, completion: Completion) -> object:
        """What a job's own request got back."""
        ...

    def as_own_answer(self, job: Job, data: object) -> object:
        """A job's part of a packed answer, as its own request would have answered it."""
        ...

    def judge(
        self, job: Job, data: object, rules: PlatformRules | None, terms: list[Term], *, last: bool
    ) -> tuple[Listing | str, list[str]]:
        """The result and its warnings, or InvalidAnswer."""
        ...

    def result_line(self, job: Job, value: Listing | str, billing: Billing) -> Line:
        """The job's line in results.jsonl (or strings.jsonl)."""
        ...


class ListingKind:
    """A product's listing on a platform: checked against the platform's rules and the
    product's facts."""

    packed_alone = False

    def __init__(self, settings: Settings, prompt_sets: PromptSets) -> None:
        self._settings = settings
        self._prompt_sets = prompt_sets
        self._sources: dict[int, tuple[Product, Facts, str]] = {}  # the last products', by identity

    def render_pack(self, products: Sequence[Product], job: Job) -> PackedPrompt:
        return self._prompt_sets.get(job.platform).render_pack(products, job.locale)

    def read_pack(self, completion: Completion, ids: list[str]) -> dict[str, object]:
        return read_pack(completion.content, completion.finish_reason, ids)

    def answer_alone(self, job: Job, completion: Completion) -> object:
        return parse_answer(completion.content, completion.finish_reason)

    def as_own_answer(self, job: Job, data: object) -> object:
        return data

    def judge(
        self, job: Job, data: object, rules: PlatformRules | None, terms: list[Term], *, last: bool
    ) -> tuple[Listing | str, list[str]]:
        """On the last ask, a figures or glossary finding becomes a warning where localize.yaml
        says so, and a word a style guide avoids always does."""
        assert rules is not None  # a listing job always has its platform's rules
        facts, source = self._source(job.product)
        avoid = self._prompt_sets.get(job.platform).style_for(job.locale).avoid
        market = job.product.market_keywords(job.locale.tag)
        try:
            return check_listing(
                data, rules, job.locale, terms, source=source, facts=facts, avoid=avoid, market_keywords=market
            )
        except InvalidAnswer as exc:
            if not last or exc.kind not in ("figures", "glossary", "style"):
                raise
            return check_listing(
                data,
                rules,
                job.locale,
                terms,
                source=source,
                facts=facts,
                figures_as_warnings=self._settings.figures == "warn",
                glossary_as_warnings=self._settings.glossary_violation == "warn",
                avoid=avoid,
                avoid_as_warnings=True,  # a guide's word asked away until the last ask, then said
                market_keywords=market,
            )

    def _source(self, product: Product) -> tuple[Facts, str]:
        """A product's facts and its text (validate.source_text), read once for all its jobs.
        Its jobs come close together, though packs interleave them with other products': the
        last few hundred are kept."""
        held = self._sources.get(id(product))
        if held is None or held[0] is not product:
            if len(self._sources) >= FACTS_KEPT:
                self._sources.clear()
            data = product.data()
            held = self._sources[id(product)] = (product, facts_of(data), source_text(data))
        return held[1], held[2]

    def result_line(self, job: Job, value: Listing | str, billing: Billing) -> Line:
        assert isinstance(value, Listing)
        sku = job.product.fields.get("sku")
        return ResultLine(
            id=job.product.id,
            sku=None if sku is None else str(sku),
            platform=job.platform,
            locale=job.locale.tag,
            title=value.title,
            description=value.description,
            bullets=tuple(value.bullets),
            seo_tags=tuple(value.seo_tags),
            billing=billing,
            extra=dict(value.extra) if value.extra else None,
        )


class StringKind:
    """A store's text: its placeholders, tags and language checked by strings.py."""

    packed_alone = True

    def render_pack(self, products: Sequence[Product], job: Job) -> PackedPrompt:
        return render_strings(list(products), job.locale)

    def read_pack(self, completion: Completion, ids: list[str]) -> dict[str, object]:
        return read_strings(completion.content, completion.finish_reason, ids)

    def answer_alone(self, job: Job, completion: Completion) -> object:
        return read_strings(completion.content, completion.finish_reason, [job.product.id])[job.product.id]

    def as_own_answer(self, job: Job, data: object) -> object:
        return {"strings": {job.product.id: data}}

    def judge(
        self, job: Job, data: object, rules: PlatformRules | None, terms: list[Term], *, last: bool
    ) -> tuple[Listing | str, list[str]]:
        if data is None:
            raise InvalidAnswer("missing", f"the answer has no translation for {job.product.id!r}")
        return check_string(job.product.name, data, job.locale)

    def result_line(self, job: Job, value: Listing | str, billing: Billing) -> Line:
        assert isinstance(value, str)
        fields = job.product.fields
        return StringLine(
            id=job.product.id,
            platform=job.platform,
            locale=job.locale.tag,
            type=str(fields["resource_type"]),
            field=str(fields["field"]),
            source=job.product.name,
            text=value,
            billing=billing,
        )

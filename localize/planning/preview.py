"""`localize prompt`: exactly the request a run would send for one job, read the way the run
reads the catalog (the same column map, fields, repeats and platform for each row), or for one
of a Translate & Adapt export's store strings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checking.quality import ToJudge, judge_max_tokens, judge_messages, judged_source, listing_fields
from ..checking.strings import render_strings, string_product
from ..config import Settings
from ..errors import InputError
from ..locales import Locale, parse_locale
from ..output.layout import RESULTS
from ..output.store import iter_jsonl
from ..reading.catalog import folded_into, read_catalog
from ..shops import SHOPS
from .jobs import Job, PromptSets, catalog_options, chat_request_body, plan_jobs


@dataclass(frozen=True, slots=True)
class Preview:
    body: dict[str, Any]  # the exact request body
    note: str | None = None  # what the request is, where it is not the id asked (a folded variation)


def request_for(settings: Settings, catalog: Path, product_id: str, locale: str, platform: str | None) -> Preview:
    """The exact request body the relay would receive for one job: a product's listing on
    `platform` (by default the platform a run gives the row), or, in a Translate & Adapt
    export, a store string named by its TYPE/Identification/Field key. A shop export's row
    folded into its product (a variation) shows that product's request."""
    target = parse_locale(locale)
    settings = settings.model_copy(update={"locales": (target,)})
    if catalog.is_file() and product_id.count("/") >= 2:  # TYPE/Identification/Field: a store string
        found = _string_request(settings, catalog, product_id, target)
        if found is not None:
            return Preview(found)
    try:
        return Preview(_listing_request(settings, catalog, product_id, platform))
    except InputError:
        parent = folded_into(catalog, product_id, columns=settings.columns)
        if parent is None or parent == product_id:
            raise
    body = _listing_request(settings, catalog, parent, platform)
    return Preview(body, f"{product_id!r} is folded into product {parent!r} (its options are part of it): its request")


def _listing_request(settings: Settings, catalog: Path, product_id: str, platform: str | None) -> dict[str, Any]:
    job = _job(settings, catalog, product_id, platform)
    sibling = _sibling(settings, job.product.id, job.platform, job.locale.tag)
    messages = PromptSets(settings).get(job.platform).render_messages(job.product, job.locale, sibling)
    return chat_request_body(settings, messages)


def _job(settings: Settings, catalog: Path, product_id: str, platform: str | None) -> Job:
    """The job of `product_id` a run would send in the settings' one locale (on `platform`, or
    the row's own), read in one pass (a pipe works too)."""
    for product in read_catalog(catalog, **catalog_options(settings)):
        if product.id != product_id:
            continue
        wanted = settings.model_copy(update={"platforms": (platform.lower(),)}) if platform else settings
        # A job an up-to-date export row would not need is still shown: what a run would send for it.
        jobs = plan_jobs(product, wanted.model_copy(update={"force": True}), catalog)
        if not jobs:
            raise InputError(
                f"product {product_id!r} has no job on platform {platform}",
                where=str(catalog),
                hint="its platform column names the platforms it is listed on",
            )
        return jobs[0]
    if product_id.count("/") >= 2:
        raise InputError(
            f"no store string {product_id!r} in the export",
            where=str(catalog),
            hint="name it as TYPE/Identification/Field, e.g. COLLECTION/4401/title",
        )
    raise InputError(f"no product with id {product_id!r}", where=str(catalog), hint="check the id column")


def judge_request_for(settings: Settings, catalog: Path, product_id: str, locale: str, platform: str | None) -> Preview:
    """The judge's request (--judge) for OUT's listing of one product, locale and platform, as
    a run would send it alone: its source as the writer got it, its listing as people left it."""
    settings = settings.model_copy(update={"locales": (parse_locale(locale),)})
    job = _job(settings, catalog, product_id, platform)
    line = _result_line(settings, job.key)
    if line is None:
        raise InputError(
            f"OUT holds no listing of {product_id!r} in {job.locale.tag} on {job.platform} to judge",
            where=str(settings.out / RESULTS),
            hint="run it first, or name the run's OUT with --out",
        )
    terms = tuple(PromptSets(settings).get(job.platform).terms_for(job.product, job.locale))
    item = ToJudge(job.product.id, judged_source(job.product, job.locale), listing_fields(line), terms)
    judge = settings.model_copy(update={"model": settings.judge_model or settings.model})
    return Preview(chat_request_body(judge, judge_messages(job.platform, job.locale, [item]), judge_max_tokens(1)))


def _result_line(settings: Settings, key: tuple[str, str, str]) -> dict[str, Any] | None:
    results = settings.out / RESULTS
    if not results.is_file():
        return None
    return next(
        (line for line in iter_jsonl(results) if (line.get("id"), line.get("platform"), line.get("locale")) == key),
        None,
    )


def _sibling(settings: Settings, product_id: str, platform: str, tag: str) -> tuple[Locale, dict[str, Any]] | None:
    """--adapt: the sibling market's listing OUT holds for this product (as people left it, as
    results.jsonl has it), which a run would put in this job's prompt; None without one."""
    sibling = settings.adapt.get(tag)
    if sibling is None:
        return None
    line = _result_line(settings, (product_id, platform, sibling))
    return None if line is None or "rejected" in line else (parse_locale(sibling), line)


def _string_request(settings: Settings, catalog: Path, key: str, locale: Any) -> dict[str, Any] | None:
    """The request for one of the texts beside the listings that the run's import files carry."""
    strings = (string for shop in SHOPS if shop.asked(settings, catalog) for string in shop.strings(catalog))
    for string in strings:
        if string.key.replace("'", "") == key.replace("'", ""):
            return chat_request_body(settings, render_strings([string_product(string)], locale).messages)
    return None

"""Catalog rows → jobs: which (product, platform, locale) a run has, and their prompts."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_MAX_TOKENS, PriceOverride, Settings
from ..cost import Price, load_prices
from ..errors import CatalogError, InputError, LocaleError, PlatformError
from ..locales import Locale, parse_locale
from ..reading.catalog import Product, count_duplicates, read_catalog, recognised
from ..reading.fields import FieldSelection
from ..reading.glossary import load_glossary
from ..reading.style import StyleGuides, style_folder
from ..shops import borrowed, written_for
from ..shops.translate_adapt import is_export_file, locale_of_code, read_export, shop_locale
from .prompts import Message, PromptSet, load_prompt_set

DEFAULT_PLATFORM = "amazon"


@dataclass(frozen=True, slots=True)
class Job:
    """One request's worth of work: a product on a platform in a locale."""

    product: Product
    platform: str
    locale: Locale

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.product.id, self.platform, self.locale.tag)


class PromptSets:
    """Each platform's templates, loaded once; unknown platforms fail with the row that named them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loaded: dict[str, PromptSet] = {}
        self._glossary = load_glossary(settings.glossary) if settings.glossary else None
        self._style = StyleGuides(settings.style) if settings.style else None
        for platform in settings.platforms or ():
            self.get(platform)  # fail on a bad --platform before reading the catalog

    def get(self, platform: str) -> PromptSet:
        if platform not in self._loaded:
            self._loaded[platform] = load_prompt_set(
                platform,
                prompts_dir=self._settings.prompts_dir,
                rule_overrides=self._settings.rules.get(platform),
                glossary=self._glossary,
                units=self._settings.units,
                style=self._style,
            )
        return self._loaded[platform]


def plan_jobs(product: Product, settings: Settings, catalog: Path) -> list[Job]:
    """The jobs one row asks for. A row's own `platform` / `locales` columns narrow the run's."""
    if settings.platforms is None:
        platforms = product.platforms or default_platforms(product, settings)
    elif product.platforms:
        platforms = tuple(p for p in settings.platforms if p in {x.lower() for x in product.platforms})
    else:
        platforms = settings.platforms
    locales = settings.locales
    if product.locales:
        wanted = {_row_locale(code, product, catalog).tag for code in product.locales}
        locales = tuple(locale for locale in locales if locale.tag in wanted)
    needs = product.translations
    if needs is not None and not settings.force:
        # A Shopify export: a language whose rows all hold a current translation needs no job
        # (a language the export does not have yet needs one).
        locales = tuple(locale for locale in locales if needs.get(shop_locale(locale, needs), True))
    return [Job(product, platform.lower(), locale) for platform in platforms for locale in locales]


def default_platforms(product: Product, settings: Settings) -> tuple[str, ...]:
    """A row's platforms when neither it nor --platform names one: a shop export's own shop,
    else the shops whose import files the run writes (--format magento: copy written for
    Magento), else amazon."""
    if product.default_platform:
        return (product.default_platform,)
    return _written_for(tuple(settings.formats)) or (DEFAULT_PLATFORM,)


_written_for = functools.lru_cache(maxsize=8)(written_for)  # asked once per row: answered once per run


def catalog_options(settings: Settings) -> dict[str, Any]:
    """How the run reads its catalog: column names, repeated ids, the columns sent."""
    return {
        "columns": settings.columns,
        "duplicates": settings.duplicates,
        "fields": FieldSelection.parse(settings.fields),
        "source_locale": settings.source_locale.tag.replace("-", "_") if settings.source_locale else None,
    }


def in_shard(product_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether a product belongs to shard K of N: a hash of its id, so the split is stable
    across runs, machines and catalog order, and every product lands in exactly one shard."""
    if shard is None:
        return True
    k, n = shard
    return int.from_bytes(hashlib.sha256(product_id.encode()).digest()[:8], "big") % n == k - 1


def products_on(settings: Settings, catalog: Path, platform: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The catalog's products a run lists on `platform` (in its --shard): id and fields, as a
    shop's import file needs them (its product type, its SKU, its price): every column, not
    only those sent to the model."""
    options = {**catalog_options(settings), "fields": FieldSelection(every=True)}
    for product in read_catalog(catalog, **options):
        if in_shard(product.id, settings.shard) and platform in (
            settings.platforms or product.platforms or default_platforms(product, settings)
        ):
            yield product.id, product.fields


def iter_jobs(settings: Settings, catalog: Path, prompt_sets: PromptSets) -> Iterator[tuple[Product, list[Job]]]:
    """Stream the catalog, with each row's jobs (none for rows outside --shard); a row naming
    an unknown platform fails here."""
    for product in read_catalog(catalog, **catalog_options(settings)):
        jobs = plan_jobs(product, settings, catalog) if in_shard(product.id, settings.shard) else []
        for platform in {job.platform for job in jobs}:
            try:
                prompt_sets.get(platform)
            except PlatformError as exc:
                raise CatalogError(catalog, exc.message, line=product.line, column="platform", hint=exc.hint) from None
        yield product, jobs


def preflight(settings: Settings, catalog: Path, prompt_sets: PromptSets) -> int:
    """Read the whole catalog and render each (platform, locale)'s first prompt before anything
    is sent, so bad input stops the run while it is still free. Returns the job count."""
    total = 0
    rendered: set[tuple[str, str]] = set()
    for _product, jobs in iter_jobs(settings, catalog, prompt_sets):
        total += len(jobs)
        for job in jobs:
            if (job.platform, job.locale.tag) not in rendered:
                prompt_sets.get(job.platform).render_messages(job.product, job.locale)
                rendered.add((job.platform, job.locale.tag))
    return total


def _row_locale(code: str, product: Product, catalog: Path) -> Locale:
    try:
        return parse_locale(code)
    except LocaleError as exc:
        raise CatalogError(catalog, exc.message, line=product.line, column="locales", hint=exc.hint) from None


def request_params(settings: Settings, max_tokens: int | None = None) -> dict[str, Any]:
    """The request fields beside model and messages that shape the answer (the lock hashes them,
    with the run's --max-tokens: a cap shapes no answer that passes its checks, and a request's
    own, sized for its pack, would make a job's fingerprint hang on its pack-mates).
    A model that thinks by default (prices.yaml `thinks`) is asked with thinking disabled, at
    the temperature it then requires, unless --thinking lets it think (reasoning is billed as
    output, and nobody asked for it otherwise; KIMI.md §7)."""
    params: dict[str, Any] = {
        "temperature": settings.temperature,
        # Always explicit: the API's default is "a decent integer such as 1024" (KIMI.md §4),
        # which truncates long listings into broken JSON.
        "max_tokens": max_tokens or settings.max_tokens or DEFAULT_MAX_TOKENS,
        "response_format": {"type": "json_object"},
    }
    price = thinking_of(settings.model, tuple(sorted(settings.prices.items())))
    if price is not None and price.thinks:
        if settings.thinking:
            params["temperature"] = price.thinking_temperature or params["temperature"]
        else:
            params["thinking"] = {"type": "disabled"}
            params["temperature"] = price.plain_temperature or params["temperature"]
    return params


@functools.cache
def thinking_of(model: str, overrides: tuple[tuple[str, PriceOverride], ...]) -> Price | None:
    """The price table's entry for a model (None when it has none): whether it thinks by default."""
    return load_prices(dict(overrides)).get(model)


def chat_request_body(settings: Settings, messages: list[Message], max_tokens: int | None = None) -> dict[str, Any]:
    """The JSON body of POST {base_url}/chat/completions: one job, or a pack asking `max_tokens`."""
    body: dict[str, Any] = {"model": settings.model, "messages": messages, **request_params(settings, max_tokens)}
    if settings.user:
        body["user"] = settings.user
    return body


def style_beside(settings: Settings, catalog: Path) -> Settings:
    """The settings with the run's style guides: `style:` (or --style), else the `style/`
    folder beside the catalog when there is one."""
    folder = style_folder(settings.style, catalog)
    return settings if folder == settings.style else settings.model_copy(update={"style": folder})


def locales_from_export(settings: Settings, catalog: Path) -> tuple[Settings, str | None]:
    """Without --locales, a Shopify translations export is localized into its own languages
    (`sv` → `sv-SE` by CLDR's likely region): the settings with them, and a note saying so."""
    if settings.locales or not catalog.is_file() or not is_export_file(catalog):
        return settings, None
    codes = list(dict.fromkeys(row.code for row in read_export(catalog) if row.code))
    if not codes:
        return settings, None
    locales = {code: locale_of_code(code) for code in codes}
    note = "Locales from the export: " + ", ".join(f"{code} → {locale.tag}" for code, locale in locales.items())
    return settings.model_copy(update={"locales": tuple(dict.fromkeys(locales.values()))}), note


def locale_notes(settings: Settings) -> list[str]:
    """What the run should say about its locales before it starts: a bare language resolved to
    its likely market, and a market a platform asked for does not serve."""
    notes = [
        f"note: {locale.given} → {locale.tag} (the language's main market; pass language-REGION for another)"
        for locale in settings.locales
        if locale.given
    ]
    prompt_sets = PromptSets(settings) if settings.platforms else None
    for platform in settings.platforms or ():
        assert prompt_sets is not None
        markets = prompt_sets.get(platform).rules.markets
        if markets is None:
            continue
        for locale in settings.locales:
            if locale.territory not in markets:
                notes.append(
                    f"warning: {platform} does not sell in {locale.territory or locale.tag} ({locale.tag}); "
                    f"it serves {', '.join(markets)}"
                )
    return notes


def run_notes(settings: Settings, catalog: Path, export_note: str | None) -> list[str]:
    """What a run (or its --dry-run, --check) says before it starts: which shop export the
    catalog is, the locales taken from it (`export_note`, from locales_from_export), bare
    languages resolved, markets a platform does not serve, and rows skipped as repeats."""
    source = catalog_options(settings)["source_locale"]
    notes = [
        line for line in (recognised(catalog, columns=settings.columns, source_locale=source), export_note) if line
    ]
    return notes + locale_notes(settings) + _duplicate_notes(settings, catalog) + _borrowed_notes(settings)


def _borrowed_notes(settings: Settings) -> list[str]:
    """An import file --platform writes no copy for, said before anything is sent: written
    from another platform's listings (`-p amazon --format magento`: plain text, no SEO
    description), or from none at all."""
    notes = []
    for shop, platform in borrowed(settings.formats, settings.platforms or ()):
        if platform is None:
            notes.append(
                f"warning: no listings for the {shop.title} import file: none of the run's platforms writes for "
                f"{shop.title}; add -p {shop.platform}"
            )
        else:
            notes.append(
                f"warning: the {shop.title} import file is written from the {platform} listings ({platform}'s "
                f"rules, HTML and fields), not copy written for {shop.title}; add -p {shop.platform} to write that"
            )
    return notes


def _duplicate_notes(settings: Settings, catalog: Path) -> list[str]:
    """With --duplicates first, how many rows were skipped (a file read twice: not for pipes)."""
    if settings.duplicates != "first" or not catalog.is_file():
        return []
    skipped = count_duplicates(catalog, columns=settings.columns)
    return (
        [f"note: {skipped:,} rows repeat an earlier id and are skipped (each id's first row kept)"] if skipped else []
    )


def require_locales(settings: Settings) -> None:
    if not settings.locales:
        raise InputError("no locales given", hint="pass --locales de-DE,ja-JP or set locales: in localize.yaml")


def check_max_tokens(settings: Settings, price: Price) -> None:
    """--max-tokens that leaves no room for any prompt in the model's context window: refused
    before anything is sent (every request would fail unsent as too large)."""
    window = price.context_tokens
    if settings.max_tokens is not None and window and settings.max_tokens >= window:
        raise InputError(
            f"--max-tokens {settings.max_tokens:,} leaves no room for a prompt in {price.model}'s context window"
            f" of {window:,} tokens",
            hint="leave --max-tokens out: each request then asks for what its own pack needs",
        )

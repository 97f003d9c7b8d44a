"""Command line: options → Settings → pipeline → print. Errors become exit codes here only."""

# No `from __future__ import annotations` here: Typer reads these annotations at run time,
# including through the signature `estimate` borrows from `run`.

import asyncio
import errno
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any

import typer
import typer.core
from rich import box
from rich.console import Console
from rich.table import Table

from . import __version__, config, shops
from .errors import DiskFull, InputError, LocalizeError
from .output import deliver as webhooks
from .output import reports
from .output.layout import RESULTS, RESULTS_CSV, RESULTS_JSON, REVIEWS, STRINGS_FILE
from .output.merge import merge_outputs
from .output.store import STRING_PLATFORM
from .people.approvals import approve_listings
from .people.review import REVIEW_LIMIT, write_review
from .people.serve import ReviewServer
from .planning import estimate, jobs, preview
from .planning import staleness as staleness_of
from .progress import ProgressView
from .reading.memory import export_memory
from .reading.textfile import sheet_of
from .redact import redact_environment_keys
from .sending import pipeline
from .sending.batch import BatchProgress
from .sending.relay import RelayFatal
from .shops import Imports
from .shops import ImportSummary as ShopifyImport

stdout = Console(highlight=False, soft_wrap=True)
# Off a terminal (CI logs) Rich would assume 80 columns and squeeze the tables.
stderr = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 120)


class ExitCode(IntEnum):
    OK = 0
    PARTIAL = 1  # some jobs failed; the rest are written. --check: outputs are stale
    BAD_INPUT = 2  # bad input, options or config: found before anything is sent
    BUDGET = 3  # --max-cost reached
    RELAY_FATAL = 4  # bad key, unknown model, relay unreachable
    DISK_FULL = 5  # OUT's disk is full: sending stopped, finished work kept
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished work kept


EXIT_FOR: dict[type[BaseException], ExitCode] = {
    InputError: ExitCode.BAD_INPUT,
    RelayFatal: ExitCode.RELAY_FATAL,
    DiskFull: ExitCode.DISK_FULL,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    for cls in type(exc).__mro__:
        if cls in EXIT_FOR:
            return EXIT_FOR[cls]
    return ExitCode.BAD_INPUT


@contextmanager
def exit_codes() -> Iterator[None]:
    """The one place a LocalizeError becomes a one-line message and an exit code."""
    try:
        yield
    except LocalizeError as exc:
        if os.environ.get("LOCALIZE_DEBUG"):
            raise
        stderr.print(f"error: {_redacted(str(exc))}", markup=False)
        raise typer.Exit(exit_code_for(exc)) from None
    except OSError as exc:  # the disk, not our input: an unwritable --out, a full disk
        if os.environ.get("LOCALIZE_DEBUG"):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR) and exc.filename and os.path.isfile(exc.filename):
            reason = "is a file, not a directory"  # mkdir's "File exists" says it less plainly
        message = _redacted(f"{where}{reason}")
        if pipeline.is_disk_full(exc):
            stderr.print(f"error: {message} (free some space and run again; finished work is kept)", markup=False)
            raise typer.Exit(ExitCode.DISK_FULL) from None
        stderr.print(f"error: {message} (check that --out is a writable directory)", markup=False)
        raise typer.Exit(ExitCode.BAD_INPUT) from None


class _Command(typer.core.TyperCommand):
    """Usage lines as Click writes them (`CATALOG`, `OUT...`), not as Typer 0.29 does (`{CATALOG}`)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name if param.nargs == 1 or name.endswith("...") else f"{name}...")
        return pieces

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Options whose value may be left out (`--judge` alone, or `--judge all`): the
        value they mean without one is put in, so the next argument is never taken for it."""
        given = list(args)
        takes_value = {opt for param in self.params if not getattr(param, "is_flag", True) for opt in param.opts}
        for at in range(len(given) - 1, -1, -1):
            name = given[at]
            if name not in OPTIONAL_VALUES or name not in takes_value:
                continue  # (`localize prompt --judge` is a plain flag)
            if at + 1 == len(given) or given[at + 1] not in OPTIONAL_VALUES[name][1]:
                given.insert(at + 1, OPTIONAL_VALUES[name][0])
        return super().parse_args(ctx, given)


# Options that may stand without their value: (the value then, the values they take).
OPTIONAL_VALUES = {"--judge": ("sample", ("all", "sample", "off"))}


def _redacted(text: str) -> str:
    """The last net before the terminal: the relay seam already redacts what the relay says."""
    return redact_environment_keys(text, config.API_KEY_VARIABLES)


app = typer.Typer(
    name="localize",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(requested: bool) -> None:
    if requested:
        _write(f"localize {__version__}\n")
        raise typer.Exit()


@app.callback()
def _app(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Batch-localize product catalogs with Kimi K2 through the HolySheep relay.

    Start with `localize run CATALOG -l de-DE,ja-JP --dry-run` to see what a run would cost.
    """


# --- options shared by `run` and `estimate` ------------------------------------------------

CatalogArg = typer.Argument(..., metavar="CATALOG", help="Catalog file: CSV, JSON or JSONL.", show_default=False)


@app.command(cls=_Command, short_help="Localize a catalog (or price it with --dry-run).")
def run(
    catalog: Path = CatalogArg,
    locales: str | None = typer.Option(None, "--locales", "-l", help="BCP-47 codes, comma separated: de-DE,ja-JP."),
    platform: str | None = typer.Option(
        None,
        "--platform",
        "-p",
        help="amazon | shopee | lazada | shopify | woocommerce | magento | akeneo, comma list allowed. "
        "Default: each row's platform column, a shop export's own shop, else amazon.",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output directory. [default: localized]"),
    config_file: Path | None = typer.Option(
        None, "--config", "-c", help="YAML config. [default: ./localize.yaml if present]"
    ),
    model: str | None = typer.Option(None, "--model", help="Model id sent to the relay. [default: kimi-k2]"),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Relay base URL (env LOCALIZE_BASE_URL). [default: https://api.holysheep.ai/v1]"
    ),
    rpm: str | None = typer.Option(None, "--rpm", help="Requests per minute, or 'auto'. [default: 60]"),
    tpm: int | None = typer.Option(None, "--tpm", help="Tokens per minute (optional second limiter)."),
    pack: str | None = typer.Option(
        None, "--pack", help="Products of one platform and locale per request: N, or 'auto'. [default: auto]"
    ),
    duplicates: str | None = typer.Option(
        None, "--duplicates", help="Repeated ids: 'error' lists them and stops, 'first' keeps each id's first row."
    ),
    fields: str | None = typer.Option(
        None, "--fields", help="Columns sent to the model: NAME,... only these; -NAME leave out; +NAME add."
    ),
    batch: bool = typer.Option(
        False, "--batch", help="Send through the relay's batch API: cheaper, answers within hours."
    ),
    batch_auto: bool = typer.Option(False, "--batch-auto", help="Like --batch where the relay batches, else live."),
    no_wait: bool = typer.Option(False, "--no-wait", help="With --batch: submit and exit; the same command collects."),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        help="Max requests in flight. [default: as many as --rpm needs while answers are written, 16 to 512]",
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", help="Retries per request for 429/5xx/timeouts. [default: 5]"
    ),
    max_reasks: int | None = typer.Option(
        None, "--max-reasks", help="Re-asks of an invalid answer per job. [default: 2]"
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds per request asking up to 4,096 tokens; longer asks wait longer. [default: 120]"
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Output token cap of every request. [default: each request asks for its own pack]"
    ),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature, 0-1. [default: 0.6]"),
    thinking: bool = typer.Option(
        False, "--thinking", help="Let a model that thinks by default think (reasoning is billed as output)."
    ),
    max_cost: str | None = typer.Option(None, "--max-cost", help="Never spend more than this many USD."),
    output_format: str | None = typer.Option(
        None,
        "--format",
        help="Extra files: csv | json | shopify | amazon | shopee | lazada | woocommerce | magento | akeneo. "
        "[default: jsonl]",
    ),
    template: list[str] = typer.Option(
        [], "--template", help="LOCALE=FILE: the seller's Shopee / Lazada template a market's file fills (repeatable)."
    ),
    sheet: str | None = typer.Option(
        None, "--sheet", help="Which sheet of an .xlsx/.xlsm/.ods catalog. [default: the first]"
    ),
    prompts: Path | None = typer.Option(
        None, "--prompts", help="Folder with your own <platform>/system.j2, user.j2, rules.yaml."
    ),
    user: str | None = typer.Option(None, "--user", help="Tag sent as the request's `user` field."),
    shard: str | None = typer.Option(None, "--shard", help="K/N: only the K-th of N stable slices of the catalog."),
    column_map: str | None = typer.Option(
        None, "--map", help="Rename the catalog's columns to ours: id=Handle,name=Title,..."
    ),
    style: Path | None = typer.Option(
        None,
        "--style",
        help="Folder of style guides: brand.md, de-DE.md, de.md, amazon.md. [default: style/ beside CATALOG]",
    ),
    adapt: list[str] = typer.Option(
        [], "--adapt", help="LOCALE=SIBLING: write LOCALE by adapting SIBLING's listing, e.g. es-MX=es-ES (repeatable)."
    ),
    glossary: Path | None = typer.Option(
        None, "--glossary", help="YAML or CSV: terms to keep verbatim and fixed translations per locale."
    ),
    force: bool = typer.Option(False, "--force", help="Regenerate even jobs whose inputs did not change."),
    refresh_outdated: bool = typer.Option(
        False, "--refresh-outdated", help="Regenerate listings a person edited or approved whose product changed."
    ),
    require_approved: bool = typer.Option(
        False, "--require-approved", help="With --check: exit 1 while any listing is unapproved."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Send again the failed jobs whose inputs did not change (held otherwise)."
    ),
    source_locale: str | None = typer.Option(
        None, "--source-locale", help="The catalog's language. [default: a shop's export says; else English]"
    ),
    memory: list[Path] = typer.Option(
        [], "--memory", help="A TMX translation memory whose texts fill store strings (repeatable)."
    ),
    store_view: list[str] = typer.Option(
        [], "--store-view", help="LOCALE=CODE: the Magento store view a locale imports into (repeatable)."
    ),
    overwrite_existing: bool = typer.Option(
        False, "--overwrite-existing", help="Import files replace translations the shop's export already has."
    ),
    webhook: str | None = typer.Option(
        None, "--webhook", help="Deliver the results to this URL at the end (LOCALIZE_WEBHOOK_SECRET signs them)."
    ),
    allow_http: bool = typer.Option(False, "--allow-http", help="A --webhook over plain http to another machine."),
    judge: str | None = typer.Option(
        None,
        "--judge",
        metavar="[all]",
        help="Have a model judge the listings: those with warnings and a sample of the rest; 'all': every one.",
    ),
    judge_sample: str | None = typer.Option(
        None, "--judge-sample", help="Share of listings without warnings judged: 0.1 or 10%. [default: 10%]"
    ),
    judge_model: str | None = typer.Option(None, "--judge-model", help="The judge's model. [default: --model]"),
    min_quality: int | None = typer.Option(
        None, "--min-quality", help="With --check: exit 1 naming judged listings scored below N (0-100)."
    ),
    check: bool = typer.Option(False, "--check", help="CI: exit 1 if any output is missing or stale; sends nothing."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Estimate only: no API key needed, nothing sent."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary / estimate as JSON on stdout."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Plain log lines (automatic without a TTY)."),
) -> None:
    """Localize CATALOG into every locale and platform (or estimate it with --dry-run)."""
    if min_quality is not None and not check:  # (a run writes and judges; only --check compares)
        raise _USAGE_ERROR("--min-quality is read by --check: add --check to compare OUT's scores with it")
    flags = dict(
        locales=locales,
        platform=platform,
        out=out,
        model=model,
        base_url=base_url,
        rpm=rpm,
        tpm=tpm,
        pack=pack,
        duplicates=duplicates,
        fields=fields,
        batch="on" if batch else "auto" if batch_auto else None,
        no_wait=no_wait or None,
        concurrency=concurrency,
        max_retries=max_retries,
        max_reasks=max_reasks,
        timeout=timeout,
        max_tokens=max_tokens,
        temperature=temperature,
        thinking=thinking or None,
        max_cost=max_cost,
        format=output_format,
        prompts=prompts,
        user=user,
        shard=shard,
        map=column_map,
        glossary=glossary,
        style=style,
        adapt=tuple(adapt) or None,
        force=force or None,
        retry_failed=retry_failed or None,
        refresh_outdated=refresh_outdated or None,
        require_approved=require_approved or None,
        source_locale=source_locale,
        overwrite_existing=overwrite_existing or None,
        store_view=",".join(store_view) or None,
        template=tuple(template) or None,
        sheet=sheet,
        memory=tuple(memory) or None,
        webhook=webhook,
        allow_http=allow_http or None,
        judge=judge,
        judge_sample=judge_sample,
        judge_model=judge_model,
        min_quality=min_quality,
    )
    with exit_codes():
        loaded = _settings(flags=flags, config_path=config_file)
        with sheet_of(catalog, loaded.sheet):
            settings, note = jobs.locales_from_export(jobs.style_beside(loaded, catalog), catalog)
            for line in jobs.run_notes(settings, catalog, note):
                stderr.print(line, markup=False)
            if check:
                _check(settings, catalog, as_json=as_json)
            elif dry_run:
                _dry_run(settings, catalog, as_json=as_json, quiet=no_progress or as_json or not stderr.is_terminal)
            else:
                _live_run(settings, catalog, as_json=as_json, live=not no_progress and stderr.is_terminal)


def _settings(**options: Any) -> config.Settings:
    """The settings, from the layers config.py merges; the shops' own keys and --format values
    asked of their registry (config knows no shop), and every shop setting given read now."""
    settings = config.load(**options, shop_keys=shops.setting_keys(), formats=shops.import_formats())
    shops.check_settings(settings)
    return settings


def _check(settings: config.Settings, catalog: Path, *, as_json: bool) -> None:
    staleness = staleness_of.check(settings, catalog)
    _print_check(staleness, as_json=as_json)
    unapproved = staleness.unapproved if settings.require_approved else 0
    if unapproved:
        listings, texts = unapproved - staleness.unapproved_strings, staleness.unapproved_strings
        named = " and ".join(
            [
                *([_plural(listings, "listing")] if listings else []),
                *([_plural(texts, "store string")] if texts else []),
            ]
        )
        stderr.print(
            f"{named} {'is' if unapproved == 1 else 'are'} not approved yet: approve them on the review page or "
            f"with localize approve {settings.out} (--require-approved)",
            markup=False,
        )
    low = staleness.low_quality  # (both lists are empty without --min-quality)
    if low:
        shown = ", ".join(f"{key[0]} [{key[1]} {key[2]}] {score}" for key, score in low[:MIN_QUALITY_SHOWN])
        more = f", and {len(low) - MIN_QUALITY_SHOWN:,} more" if len(low) > MIN_QUALITY_SHOWN else ""
        stderr.print(
            f"{_plural(len(low), 'judged listing')} scored below {settings.min_quality} (--min-quality): {shown}{more};"
            " read them first (localize review), then approve or edit them",
            markup=False,
        )
    if staleness.unjudged:
        stderr.print(
            f"{_plural(len(staleness.unjudged), 'listing')} not judged (not failing --min-quality): run with --judge "
            "all to judge every one",
            markup=False,
        )
    raise typer.Exit(ExitCode.PARTIAL if staleness.stale or unapproved or low else ExitCode.OK)


def _dry_run(settings: config.Settings, catalog: Path, *, as_json: bool, quiet: bool) -> None:
    result = estimate.estimate(settings, catalog, on_progress=None if quiet else _dry_run_progress)
    if as_json:
        stdout.print_json(json.dumps(result.report(), ensure_ascii=False))
    else:
        _print_estimate(result, catalog, settings.out)


def _live_run(settings: config.Settings, catalog: Path, *, as_json: bool, live: bool) -> None:
    _require_api_key(settings)
    if settings.webhook:  # a delivery that cannot happen is said before the run pays for anything
        webhooks.check_ready(settings.webhook, allow_http=settings.allow_http)
    if settings.sends_key_in_clear:
        stderr.print(
            f"warning: {settings.base_url} is plain http to another machine: the API key and the catalog "
            "cross the network unencrypted (use https://)",
            markup=False,
        )
    with ProgressView(stderr, live=live) as view:
        summary = asyncio.run(pipeline.run(settings, catalog, on_progress=view.update, on_batch=_batch_status()))
    for note in summary.notes:
        stderr.print(note, markup=False)
    if summary.pending:
        for batch in summary.pending:
            stderr.print(
                f"Batch {batch.batch_id} submitted {_age(batch.age_s)} ago: {batch.requests:,} requests,"
                f" {batch.status} (completion window {_age(batch.window_s)}).",
                markup=False,
            )
        stderr.print(
            f"Recorded in {settings.out / 'batches.jsonl'}: run the same command again without --no-wait to wait"
            " for it, or with it to collect what has finished; nothing is uploaded twice.",
            markup=False,
        )
        if summary.budget_reached:
            raise typer.Exit(ExitCode.BUDGET)
        raise typer.Exit(ExitCode.PARTIAL if summary.overdue else ExitCode.OK)
    tokens = summary.report["tokens"]
    if summary.fatal is not None and not summary.report["jobs"]["succeeded"] and not tokens["input"] + tokens["output"]:
        raise summary.fatal  # a wrong key, an unknown model: the one line that matters, not a zero bill
    _print_run(summary, as_json=as_json)
    for line in _import_lines(summary.imports):
        stderr.print(line, markup=False)
    if summary.shopify is not None:
        stderr.print(_shopify_lines(summary.shopify), markup=False)
    undelivered = False
    if settings.webhook and summary.fatal is None and not summary.interrupted:
        done = webhooks.deliver(
            settings.out,
            settings.webhook,
            allow_http=settings.allow_http,
            backoff_s=settings.backoff_s,
            finished=summary.report,
        )
        _print_delivery(done, settings.out, as_json=False, dry=False)
        undelivered = not done.complete
    if summary.fatal is not None:
        raise summary.fatal
    if summary.interrupted:
        stderr.print(
            "Interrupted: what finished is saved. Run the same command again to continue; "
            "finished jobs will not be sent again.",
            markup=False,
        )
        raise typer.Exit(ExitCode.INTERRUPTED)
    if summary.budget_reached:
        raise typer.Exit(ExitCode.BUDGET)
    nothing_filled = summary.shopify is not None and not summary.shopify.written
    raise typer.Exit(ExitCode.PARTIAL if summary.failed or nothing_filled or undelivered else ExitCode.OK)


def _age(seconds: float) -> str:
    """A batch's age or window, as a person reads it: 40 s, 12 min, 5.5 h, 3 d."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.0f} d"


def _import_lines(imports: Imports) -> list[str]:
    """Each import file the run wrote (the Translate & Adapt one has lines of its own), and each
    it removed, and why."""
    lines = []
    for file in imports.files:
        if isinstance(file, ShopifyImport):
            continue
        parts = [f"{file.rows:,} row{'' if file.rows == 1 else 's'}"]
        if file.kept:
            parts.append(f"{file.kept:,} kept as the shop has them")
        if file.failed:
            parts.append(f"{file.failed:,} missing (their jobs failed or did not run)")
        lines.append(
            f"Import file ({file.shop}): {file.path}: "
            + ", ".join(parts)
            + "."
            + "".join(f" {note}" for note in file.notes)
        )
    lines += [f"Removed {path}: its --format was not asked for this run." for path in imports.removed]
    return lines


def _shopify_lines(shopify: ShopifyImport) -> str:
    """What the import file does with the export's rows, in a line or two."""
    if not shopify.written:
        return (
            f"No Shopify import file: none of the {shopify.needed:,} rows that need a translation could be "
            "filled (see the failures above); the export is unchanged."
        )
    parts = [f"{shopify.filled:,} rows filled", f"{shopify.kept:,} kept (a current translation)"]
    if shopify.failed:
        parts.append(f"{shopify.failed:,} failed (left with what they had)")
    if shopify.added:
        parts.append(f"{shopify.added:,} added for a language the export did not have")
    if shopify.completed:
        parts.append(f"{shopify.completed:,} added where a language's rows lacked the text")
    line = f"Shopify import file: {shopify.path} (Settings → Languages → Import): " + ", ".join(parts) + "."
    if shopify.left:
        left = ", ".join(f"{why} {count:,}" for why, count in sorted(shopify.left.items()))
        line += f"\nLeft as they were: {left}."
    if shopify.other_languages:
        line += f" Rows in languages not asked for: {shopify.other_languages:,}, written back as they were."
    if shopify.needs_look:
        first = shopify.needs_look[0]
        line += (
            f"\nKept, needs a look: {len(shopify.needs_look):,} translations a person wrote break the store"
            f" (kept as they are; see localize review or cost_report.json): {first['type']} {first['id']}"
            f" {first['field']} [{first['locale']}]: {first['problem']}"
        )
    return line


def _batch_status() -> Callable[[BatchProgress], None]:
    """A line whenever a batch's status or counts change."""
    last: list[tuple[str, int, int]] = []

    def show(progress: BatchProgress) -> None:
        state = (progress.status, progress.completed, progress.failed)
        if last and last[-1] == state:
            return
        last.append(state)
        stderr.print(
            f"batch {progress.batch_id}: {progress.status}, {progress.completed:,} of {progress.total:,} answered"
            + (f", {progress.failed:,} failed" if progress.failed else ""),
            markup=False,
        )

    return show


def _estimate(**kwargs: Any) -> None:
    run(**{**kwargs, "dry_run": True})


_estimate.__signature__ = inspect.signature(run).replace(  # type: ignore[attr-defined]  # Typer reads it
    parameters=[p for p in inspect.signature(run).parameters.values() if p.name != "dry_run"]
)
app.command(
    "estimate",
    cls=_Command,
    help="Same as `run --dry-run`: render every prompt, count tokens, price the run.",
    short_help="Price a run without sending anything (run --dry-run).",
)(_estimate)


@app.command(cls=_Command, short_help="Print the exact request for one product and locale.")
def prompt(
    catalog: Path = CatalogArg,
    product_id: str = typer.Option(
        ..., "--id", help="The product's id; in a Translate & Adapt export, a string's TYPE/Identification/Field."
    ),
    locale: str = typer.Option(..., "--locale", "-l", help="One BCP-47 code, e.g. ja-JP."),
    platform: str | None = typer.Option(
        None,
        "--platform",
        "-p",
        help="amazon | shopee | lazada | shopify | woocommerce | magento | akeneo. [default: as a run gives the row]",
    ),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config."),
    model: str | None = typer.Option(None, "--model", help="Model id. [default: kimi-k2]"),
    thinking: bool = typer.Option(False, "--thinking", help="Let a model that thinks by default think."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Folder with your own templates."),
    column_map: str | None = typer.Option(None, "--map", help="Rename the catalog's columns: id=Handle,..."),
    duplicates: str | None = typer.Option(
        None, "--duplicates", help="Repeated ids: 'error' lists them and stops, 'first' keeps each id's first row."
    ),
    fields: str | None = typer.Option(
        None, "--fields", help="Columns sent to the model: NAME,... only these; -NAME leave out; +NAME add."
    ),
    glossary: Path | None = typer.Option(None, "--glossary", help="YAML or CSV glossary."),
    style: Path | None = typer.Option(None, "--style", help="Folder of style guides. [default: style/ beside CATALOG]"),
    adapt: list[str] = typer.Option(
        [], "--adapt", help="LOCALE=SIBLING: show the adapted request (OUT's sibling listing)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="The run's OUT, for --adapt's sibling listings and --judge's listing."
    ),
    judge: bool = typer.Option(False, "--judge", help="Show the quality judge's request for OUT's listing instead."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="The judge's model. [default: --model]"),
    source_locale: str | None = typer.Option(
        None, "--source-locale", help="The catalog's language. [default: a shop's export says; else English]"
    ),
    sheet: str | None = typer.Option(
        None, "--sheet", help="Which sheet of an .xlsx/.xlsm/.ods catalog. [default: the first]"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the exact JSON request body."),
) -> None:
    """Print exactly what a run would send for one product (or store string), locale and platform."""
    with exit_codes():
        flags = dict(
            model=model,
            thinking=thinking or None,
            prompts=prompts,
            map=column_map,
            glossary=glossary,
            style=style,
            adapt=tuple(adapt) or None,
            out=out,
            judge_model=judge_model,
            duplicates=duplicates,
            fields=fields,
            source_locale=source_locale,
            sheet=sheet,
        )
        settings = jobs.style_beside(_settings(flags=flags, config_path=config_file), catalog)
        shows = preview.judge_request_for if judge else preview.request_for
        with sheet_of(catalog, settings.sheet):
            shown = shows(settings, catalog, product_id, locale, platform)
    body = shown.body
    if shown.note:
        stderr.print(f"note: {shown.note}", markup=False)
    if as_json:
        stdout.print_json(json.dumps(body, ensure_ascii=False))
        return
    for message in body["messages"]:
        content = message["content"]
        _write(f"──── {message['role']} ────\n{content}" + ("" if content.endswith("\n") else "\n"))
    stderr.print(
        f"model {body['model']} · temperature {body['temperature']} · max_tokens {body['max_tokens']} · "
        + ("thinking disabled · " if body.get("thinking") == {"type": "disabled"} else "")
        + "response_format json_object (use --json for the exact request body)",
        markup=False,
    )


@app.command(cls=_Command, short_help="Rebuild the cost report from OUT's audit log.")
def report(
    out: Path = typer.Argument(..., metavar="OUT", help="A run's output directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    all_runs: bool = typer.Option(False, "--all", help="Every run logged in OUT, not only the last."),
) -> None:
    """Rebuild and print the cost report from OUT's audit log (requests.jsonl)."""
    with exit_codes():
        rebuilt = reports.rebuild_report(out, all_runs=all_runs)
    _print_report(rebuilt, as_json=as_json)


def _serve(out: Path, *, host: str, port: int) -> None:
    """The review workbench: its URL (with a fresh token) the first line on stdout; runs until
    interrupted (exit 0)."""
    with exit_codes():
        server = ReviewServer(out, _settings(flags={}), host=host, port=port)
        server.settle()  # decisions a stopped server could not write: in the files before it serves
    try:
        if server.exposed:
            stderr.print(
                f"warning: listening on {host}: anyone who can reach it and has the token can edit", markup=False
            )
        print(server.url, flush=True)
        stderr.print("Serving the review page; Ctrl-C stops.", markup=False)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        with exit_codes():  # the last decisions written: a full disk is a line and exit 5, not a traceback
            server.shutdown()


@app.command(cls=_Command, short_help="Approve listings in OUT (for scripts and CI).")
def approve(
    out: Path = typer.Argument(..., metavar="OUT", help="A run's output directory."),
    every: bool = typer.Option(False, "--all", help="Every listing in OUT."),
    ids: list[str] = typer.Option([], "--id", help="A product id (repeatable)."),
    locale: str | None = typer.Option(None, "--locale", help="Only this locale."),
    platform: str | None = typer.Option(None, "--platform", "-p", help="Only this platform."),
    user: str | None = typer.Option(None, "--user", help="Who approves, recorded beside the decision."),
) -> None:
    """Approve listings: each approval is a line in OUT/reviews.jsonl, folded into results.jsonl."""
    with exit_codes():
        count = approve_listings(out, every=every, ids=ids, locale=locale, platform=platform, user=user)
    stderr.print(f"Approved {count:,} listings in {out} (recorded in {out / REVIEWS}).", markup=False)


@app.command(cls=_Command, short_help="Deliver OUT's listings to a webhook (Standard Webhooks, signed).")
def deliver(
    out: Path = typer.Argument(..., metavar="OUT", help="A run's output directory."),
    webhook: str | None = typer.Option(
        None, "--webhook", help="The receiver's URL. [default: webhook: in localize.yaml, or LOCALIZE_WEBHOOK_URL]"
    ),
    approved_only: bool = typer.Option(False, "--approved-only", help="Only listings a person approved."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be sent; send nothing."),
    allow_http: bool = typer.Option(False, "--allow-http", help="Plain http to another machine."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config."),
    as_json: bool = typer.Option(False, "--json", help="Print the delivery's summary as JSON on stdout."),
) -> None:
    """POST every listing and store string OUT holds that the receiver has not acknowledged,
    signed with LOCALIZE_WEBHOOK_SECRET, each version once (OUT/deliveries.jsonl)."""
    with exit_codes():
        settings = _settings(flags={"webhook": webhook, "allow_http": allow_http or None}, config_path=config_file)
        done = webhooks.deliver(
            out,
            settings.webhook,
            approved_only=approved_only,
            dry=dry_run,
            allow_http=settings.allow_http,
            backoff_s=settings.backoff_s,
            on_message=_delivery_progress(stderr.is_terminal),
        )
    _print_delivery(done, out, as_json=as_json, dry=dry_run)
    raise typer.Exit(ExitCode.OK if done.complete else ExitCode.PARTIAL)


def _delivery_progress(live: bool) -> Callable[[webhooks.Delivered], None] | None:
    """A line every few messages on a terminal (a long delivery says where it stands)."""
    if not live:
        return None

    def show(done: webhooks.Delivered) -> None:
        if done.messages % 10 == 0 and done.messages:
            stderr.print(f"delivered: {done.messages:,} messages, {done.listings + done.strings:,} items", markup=False)

    return show


def _print_delivery(done: webhooks.Delivered, out: Path, *, as_json: bool, dry: bool) -> None:
    if as_json:
        stdout.print_json(json.dumps(done.as_json(), ensure_ascii=False))
    if dry:
        parts = [f"{event} {count:,}" for event, count in done.planned.items()] or ["nothing"]
        stderr.print(
            f"Dry run: nothing sent. {done.messages:,} messages to {done.destination}: {', '.join(parts)}.",
            markup=False,
        )
        return
    stderr.print(
        f"Delivered {_plural(done.listings, 'listing')} and {_plural(done.strings, 'store string')} in "
        f"{_plural(done.messages, 'message')} to {done.destination}; {done.left:,} left.",
        markup=False,
    )
    for refusal in done.refused[:3]:
        stderr.print(f"The receiver refused a message: {refusal}", markup=False)
    if done.finished_lost:
        stderr.print(
            f"{done.destination} did not acknowledge run.finished (the run's results are delivered).", markup=False
        )
    if done.gone:
        stderr.print(f"{done.destination} answered 410 Gone: nothing more is sent to it.", markup=False)
    elif done.left:
        stderr.print(
            f"{done.left:,} left undelivered: run localize deliver {out} --webhook <the same URL> again to send "
            "exactly those (the receiver drops a message it has by its webhook-id).",
            markup=False,
        )


memory_app = typer.Typer(help="Translation memories (TMX).", no_args_is_help=True)
app.add_typer(memory_app, name="memory")


@memory_app.command("export", cls=_Command, short_help="Write a run's translations and people's work as TMX.")
def memory_export(
    out: Path = typer.Argument(..., metavar="OUT", help="A run's output directory."),
    tmx: Path = typer.Option(..., "--tmx", help="The TMX file to write."),
    source_locale: str = typer.Option("en", "--source-locale", help="The language the store texts are in."),
) -> None:
    """Write OUT's store-text translations, the titles people edited or approved and the
    translations a person made in the shop's export as TMX 1.4, for CAT tools and other memories."""
    with exit_codes():
        count = export_memory(out, tmx, source_locale=source_locale)
    stderr.print(f"Wrote {count:,} translation units to {tmx}.", markup=False)


@app.command(cls=_Command, short_help="Write OUT/review.html: the source beside each locale.")
def review(
    out: Path = typer.Argument(..., metavar="OUT", help="A run's output directory."),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="The catalog, for the source copy. [default: the run's]"
    ),
    column_map: str | None = typer.Option(None, "--map", help="The catalog's column map, as for run."),
    limit: int = typer.Option(
        REVIEW_LIMIT, "--limit", min=0, help="Products on the page, failures and warnings first (0: all)."
    ),
    serve: bool = typer.Option(False, "--serve", help="Serve the page to edit, approve and reject, until Ctrl-C."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="With --serve: the port (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="With --serve: the address to listen on."),
) -> None:
    """Write OUT/review.html: the source beside every locale and platform, warnings, costs, filters."""
    if serve:
        _serve(out, host=host, port=port)
        return
    with exit_codes():
        settings = _settings(flags=dict(map=column_map))
        with sheet_of(catalog, settings.sheet):
            written = write_review(out, catalog=catalog, columns=settings.columns, limit=limit)
    if written.shown < written.total:
        stderr.print(
            f"Showing {written.shown:,} of {written.total:,} products, those with failures or warnings first "
            "(--limit 0 for all).",
            markup=False,
        )
    stdout.print(str(written.path), markup=False)


@app.command(cls=_Command, short_help="Combine the outputs of sharded runs into one OUT.")
def merge(
    inputs: list[Path] = typer.Argument(..., metavar="OUT...", help="The --out directories of sharded runs."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the combined outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the combined cost report as JSON on stdout."),
) -> None:
    """Combine sharded runs: results, failures, locks, audit logs and cost reports."""
    with exit_codes():
        combined = merge_outputs(inputs, out)
    _print_report(combined, as_json=as_json)
    stderr.print(f"Merged {len(inputs)} runs into {out}", markup=False)
    if combined.get("removed"):
        stderr.print(
            f"Removed from {out}: {', '.join(combined['removed'])} (made from results that are no longer these);"
            " run the same `localize run ... --format ...` on it to write them again: every job is up to date,"
            " nothing is sent.",
            markup=False,
        )


@app.command(cls=_Command, short_help="The models: limits, prices, and which the relay lists.")
def models(
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config."),
    base_url: str | None = typer.Option(None, "--base-url", help="Relay base URL (env LOCALIZE_BASE_URL)."),
    offline: bool = typer.Option(False, "--offline", help="Only the price table: no key needed, nothing sent."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON on stdout."),
) -> None:
    """The models: context window, output limit, thinking default, live and batch prices, and
    whether the relay lists them (GET /models, which checks the key too; --offline skips it)."""
    with exit_codes():
        settings = _settings(flags=dict(base_url=base_url), config_path=config_file)
        if not offline:
            _require_api_key(settings, dry_run_hint=False, offline_hint=True)
        listed = asyncio.run(reports.list_models(settings, ask_relay=not offline))
    if as_json:
        stdout.print_json(json.dumps(listed))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("Model", "Context", "Output", "Thinks", "Live in/cached/out", "Batch in/cached/out", "Relay"):
        table.add_column(column, justify="right" if column in ("Context", "Output") else "left")
    for entry in listed:
        table.add_row(
            entry["id"],
            _tokens_or_dash(entry["context_tokens"]),
            _tokens_or_dash(entry["max_output_tokens"]),
            "—" if entry["thinks"] is None else ("yes (off unless --thinking)" if entry["thinks"] else "no"),
            _prices_or(entry["usd_per_million"], "no price: add one under prices: in localize.yaml"),
            _prices_or(entry["batch_usd_per_million"], "—"),
            {True: "listed", False: "not listed", None: "not asked"}[entry["listed"]],
        )
    wide = stdout if stdout.is_terminal else Console(highlight=False, width=200)  # piped: a line a model, for grep
    wide.print(table)
    wide.print("USD per 1M tokens (input / cached input / output).", markup=False)


def _tokens_or_dash(tokens: int | None) -> str:
    return f"{tokens:,}" if tokens else "—"


def _prices_or(prices: dict[str, float] | None, missing: str) -> str:
    if prices is None:
        return missing
    return f"${prices['input']:.2f} / ${prices['cached_input']:.2f} / ${prices['output']:.2f}"


# --- printing ------------------------------------------------------------------------------


def _write(text: str) -> None:
    """Data on stdout exactly as given (Rich would expand tabs and wrap)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _dry_run_progress(products: int) -> None:
    stderr.print(f"  … {products:,} products rendered", markup=False)


def _money(amount: float) -> str:
    return f"${amount:,.4f}" if amount < 1 else f"${amount:,.2f}"


def _print_estimate(result: estimate.Estimate, catalog: Path, out: Path) -> None:
    report = result.report()
    platforms = sorted(name for name in report["by_platform"] if name != STRING_PLATFORM)  # strings: said apart
    locales = sorted(report["by_locale"])
    timing = report["timing"]
    packs = sorted({size for group, size in timing["packs"].items() if not group.endswith(f"/{STRING_PLATFORM}")})
    texts = [size for group, size in timing["packs"].items() if group.endswith(f"/{STRING_PLATFORM}")]
    packing = "one request each" if packs in ([], [1]) else f"up to {packs[-1]} products per request"
    if texts:
        strings = report["by_platform"].get(STRING_PLATFORM, {}).get("jobs", 0)
        packing += f"; {_plural(strings, 'store string job')}, up to {max(texts)} a request"
    stderr.print(
        f"Dry run: nothing sent. {catalog.name}: {_plural(result.products, 'product')} → "
        f"{_plural(result.jobs + result.up_to_date + result.settled_unsent, 'job')} "
        f"({_plural(len(platforms), 'platform')} × "
        f"{_plural(len(locales), 'locale')}), {packing}.",
        markup=False,
    )
    if result.up_to_date:
        kept = (
            f" ({result.outdated:,} of them a person's listings kept though their product changed: "
            "--refresh-outdated regenerates them)"
            if result.outdated
            else ""
        )
        stderr.print(
            f"{result.up_to_date:,} jobs are up to date in {out}/{kept} and would not be sent; the table prices "
            "the rest.",
            markup=False,
        )
    if result.settled_unsent:
        kinds = {
            "reused": "the same copy as another product's (asked once)",
            "from_memory": "filled from the translation memory",
            "held": "failures held (unchanged since they failed; --retry-failed sends them)",
        }
        parts = [f"{count:,} {kinds[name]}" for name, count in result.unsent().items() if count and name in kinds]
        stderr.print(f"Not sent, not priced: {'; '.join(parts)}.", markup=False)
    if result.products_without_jobs:
        stderr.print(
            f"note: {result.products_without_jobs:,} products have no jobs: their platform/locales "
            "columns name none of the run's.",
            markup=False,
        )
    table = Table(title=f"Estimated cost (USD), {report['model']}", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("Locale", no_wrap=True)
    table.add_column("Platform", no_wrap=True)
    for header in ("Jobs", "Requests", "Input tok", "Output tok", "Low", "Expected", "High"):
        table.add_column(header, justify="right", no_wrap=True)
    for entry in report["by_locale_platform"].values():
        table.add_row(*_row(entry["locale"], entry["platform"], entry))
    table.add_section()
    table.add_row(*_row("Total", "", report, jobs=report["jobs"]["total"]), style="bold")
    stderr.print(table)
    price = report["price"]
    per_m = price["usd_per_million"]
    stderr.print(
        f"Prices for {price['model']} (as of {price['as_of']}): ${per_m['input']:.2f} input, "
        f"${per_m['cached_input']:.2f} cached input, ${per_m['output']:.2f} output per 1M tokens.\n"
        "Low: prefix cache hits and short answers. Expected: no cache hits, answers at the "
        "target lengths. High: no cache, long answers, tokenizer margin.\n"
        f"Input tokens are counted offline with {report['method']['tokenizer']}, a stand-in "
        "for Kimi's tokenizer; output tokens are estimated from the platform's target lengths.",
        markup=False,
    )
    stderr.print(_timing_line(timing), markup=False)
    batch = report.get("batch") or {}
    if batch.get("available"):
        stderr.print(
            f"By batch (--batch): {_money(batch['cost_usd'])} expected, {batch['saving']:.0%} less than live "
            f"({_money(batch['range']['low'])}–{_money(batch['range']['high'])}); answers within "
            f"{batch['completion_window']}, the batch API's completion window.",
            markup=False,
        )
    judge = report.get("judge")
    if judge:
        chosen = "every listing" if judge["mode"] == "all" else f"a {judge['sample']:.0%} sample"
        more = ", plus the listings the run marks with a warning" if judge["mode"] == "sample" else ""
        stderr.print(
            f"Judge (--judge, {judge['model']}): {_plural(judge['listings'], 'listing')} ({chosen}{more}) in "
            f"{_plural(judge['requests'], 'request')}, {_money(judge['cost_usd'])} expected, on top of the listings.",
            markup=False,
        )
    styles = report.get("style") or {}
    if styles:
        said = "; ".join(
            f"{group} {' + '.join(entry['guides'])} ({entry['tokens_per_request']:,} tokens a request)"
            for group, entry in styles.items()
        )
        stderr.print(f"Style guides in the system message: {said}.", markup=False)
    columns = report.get("by_column") or {}
    if columns:
        listed = ", ".join(f"{name} {tokens:,}" for name, tokens in list(columns.items())[:8])
        stderr.print(
            f"Input tokens by column: {listed}. Leave one out with --fields -NAME (or fields: in localize.yaml).",
            markup=False,
        )
    left_out = report.get("left_out") or {}
    if left_out:
        said = "; ".join(
            f"{kind}: {', '.join(names[:12])}{f' and {len(names) - 12} more' if len(names) > 12 else ''}"
            for kind, names in left_out.items()
        )
        stderr.print(f"Left out of the prompt ({said}). Let one in with --fields +NAME.", markup=False)
    over = report.get("over_context_window")
    if over:
        largest = over["largest"][0]
        stderr.print(
            f"{over['jobs']:,} jobs do not fit {report['model']}'s context window of {over['context_tokens']:,} tokens"
            f" with {over['max_tokens']:,} tokens for the answer (largest: {largest['id']}, about"
            f" {largest['input_tokens']:,} tokens): a run refuses them unsent."
            " Leave long columns out with --fields -NAME.",
            markup=False,
        )
    calibration = report["method"].get("calibration")
    if calibration:
        ratios = ", ".join(f"{locale} x{ratio:.2f}" for locale, ratio in calibration["input_ratio"].items())
        stderr.print(
            f"Calibrated from the live run {calibration['run']} ({calibration['source']}): billed/counted "
            f"input {ratios}; output sizes from {sum(calibration['answers'].values()):,} accepted answers.",
            markup=False,
        )


def _print_check(staleness: staleness_of.Staleness, *, as_json: bool) -> None:
    if as_json:
        stdout.print_json(json.dumps(staleness.as_json(), ensure_ascii=False))
        return
    for (product_id, platform, locale), reason in staleness.stale:
        _write(f"{product_id}\t{platform}\t{locale}\t{reason}\n")
    for (product_id, platform, locale), score in staleness.low_quality:
        _write(f"{product_id}\t{platform}\t{locale}\tquality {score}\n")
    fresh = staleness.total - len(staleness.stale)
    if staleness.stale:
        stderr.print(
            f"{len(staleness.stale):,} of {staleness.total:,} jobs are missing or stale ({fresh:,} fresh): "
            "run without --check to regenerate them",
            markup=False,
        )
    else:
        stderr.print(f"All {staleness.total:,} jobs are up to date.", markup=False)


def _print_run(summary: pipeline.RunSummary, *, as_json: bool) -> None:
    _print_report(summary.report, as_json=as_json)
    modes = summary.report.get("by_mode") or {}
    if modes and not as_json:
        parts = [
            f"{mode}: {entry['requests']:,} requests, {_money(entry['cost_usd'])}"
            + (" at the batch price" if mode == "batch" else "")
            for mode, entry in modes.items()
        ]
        stderr.print("Sent " + "; ".join(parts) + ".", markup=False)
    jobs = summary.report["jobs"]
    written = [RESULTS, RESULTS_CSV, RESULTS_JSON, STRINGS_FILE]
    files = ", ".join(str(summary.out / name) for name in written if (summary.out / name).is_file())
    stderr.print(
        f"Results: {files or summary.out / RESULTS} · review them: localize review {summary.out}", markup=False
    )
    if jobs["failed"]:
        stderr.print(f"Failures: {summary.out / 'failures.jsonl'} ({jobs['failed']:,} jobs)", markup=False)
    if jobs.get("reused"):
        saved = (summary.report.get("reused") or {}).get("saved_usd", 0.0)
        stderr.print(
            f"Reused: {jobs['reused']:,} listings taken from a product with the same copy (codes such as the SKU "
            f"aside), not paid for again: about {_money(saved)} saved.",
            markup=False,
        )
    if jobs.get("held"):
        since = ", ".join(summary.report.get("held_since") or []) or "an earlier run"
        stderr.print(
            f"Held: {jobs['held']:,} failed jobs not sent again: nothing about them changed since run {since} "
            "(their answers failed the checks). Edit the product, the prompt or the glossary, or pass "
            "--retry-failed to send them again.",
            markup=False,
        )


def _cost_said(report: Mapping[str, Any]) -> str:
    """The run's cost: what the relay reported, and beside it what answers without usage cost
    counted offline, so the summary agrees with the progress line (which counts both)."""
    reported = _money(report["cost_usd"])
    gone = report.get("unreported")
    if not gone:
        return reported
    counted = Decimal(str(report["cost_usd"])) + Decimal(str(gone["estimated_cost_usd"]))
    return (
        f"{reported} reported + about {_money(gone['estimated_cost_usd'])} counted offline for "
        f"{gone['requests']:,} answers without usage = about {_money(float(counted))}"
    )


def _print_report(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        stdout.print_json(json.dumps(report, ensure_ascii=False))
        return
    jobs = report["jobs"]
    tokens = report["tokens"]
    if report["requests"] == 0 and jobs.get("up_to_date") == jobs["total"]:
        stderr.print(f"All {jobs['total']:,} jobs are up to date: nothing was sent.", markup=False)
        _print_kept_outdated(jobs)
        return
    kept = f", {jobs['outdated']:,} of them outdated" if jobs.get("outdated") else ""
    up_to_date = f", {jobs['up_to_date']:,} up to date{kept}" if jobs.get("up_to_date") else ""
    if jobs.get("in_batch"):
        up_to_date += f", {jobs['in_batch']:,} left to a running batch"
    stderr.print(
        f"{jobs['succeeded']:,} of {jobs['total']:,} jobs succeeded, {jobs['failed']:,} failed{up_to_date}; "
        f"{report['requests']:,} requests; {tokens['input']:,} input tokens ({tokens['cached_input']:,} cached, "
        f"{report.get('cached_share', 0):.0%}), "
        f"{tokens['output']:,} output"
        + (f" ({tokens['reasoning']:,} reasoning)" if tokens.get("reasoning") else "")
        + f"; cost {_cost_said(report)}",
        markup=False,
    )
    _print_kept_outdated(jobs)
    judged = (report.get("by_purpose") or {}).get("judge")
    if judged:
        stderr.print(
            f"Of that, the judge (--judge): {_plural(judged['jobs'], 'listing')} judged in "
            f"{_plural(judged['requests'], 'request')}, {_money(judged['cost_usd'])}.",
            markup=False,
        )
    rate = report.get("rate") or {}
    if rate.get("effective_rpm"):
        stderr.print(_rate_line(rate), markup=False)
    if report.get("budget_usd") is not None:
        stderr.print(
            f"Budget: {_money(report['cost_usd'])} spent of the {_money(report['budget_usd'])} cap", markup=False
        )
    if "relay_cost_usd" in report:
        verdict = "DISAGREES with ours" if report["relay_cost_disagrees"] else "agrees"
        stderr.print(f"The relay's own figure: {_money(report['relay_cost_usd'])} ({verdict})", markup=False)
    if report.get("usage_mismatch"):
        count = report["usage_mismatch"]["requests"]
        stderr.print(
            f"The relay's usage did not add up in {_plural(count, 'answer')} (a total above prompt + completion, "
            "or reasoning tokens beyond the completion: reasoning billed outside completion_tokens); "
            "each is counted at the larger output, as the relay bills it.",
            markup=False,
        )
    if report.get("unreported"):
        gone = report["unreported"]
        stderr.print(
            f"Not in these totals: {gone['requests']:,} answers came without usage the relay could be held to; "
            f"counted offline they are {gone['counted_input_tokens']:,} input and {gone['counted_output_tokens']:,} "
            f"output tokens, about {_money(gone['estimated_cost_usd'])} (--max-cost booked them at their worst case).",
            markup=False,
        )
    if report.get("unconfirmed"):
        gone = report["unconfirmed"]
        stderr.print(
            f"Not in these totals: {gone['requests']:,} requests got no answer after sending; the relay may have "
            f"billed them (about {gone['counted_input_tokens']:,} input tokens plus their answers).",
            markup=False,
        )
    if not report["by_locale"]:
        return  # nothing was billed: no table of nothing
    table = Table(title="Billed by locale and platform", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("")
    for header in ("Jobs", "Requests", "Input tok", "Cached", "Output tok", "Cost"):
        table.add_column(header, justify="right", no_wrap=True)
    for section in ("by_locale", "by_platform"):
        for key, entry in report[section].items():
            t = entry["tokens"]
            table.add_row(
                key,
                f"{entry['jobs']:,}",
                f"{entry['requests']:,}",
                f"{t['input']:,}",
                f"{t['cached_input']:,}",
                f"{t['output']:,}",
                _money(entry["cost_usd"]),
            )
        table.add_section()
    stderr.print(table)
    if report.get("errors"):
        stderr.print(
            "Attempts that failed: " + ", ".join(f"{k} {v}" for k, v in report["errors"].items()), markup=False
        )


def _print_kept_outdated(jobs: dict[str, Any]) -> None:
    """A person's listings the run kept though their product changed: said, with the way out."""
    if jobs.get("outdated"):
        count = jobs["outdated"]
        stderr.print(
            f"Kept: {_plural(count, 'listing')} a person edited or approved {'is' if count == 1 else 'are'} outdated "
            "(the product changed since): review them, or --refresh-outdated regenerates them.",
            markup=False,
        )


def _rate_line(rate: dict[str, Any]) -> str:
    """How fast the run went, where its rate came from, and what the relay's bad moments cost.
    A run too short to have a steady part says how many requests in how long instead: its
    opening burst would read as a rate over the limit."""
    sent, span_s = rate.get("requests") or 0, rate.get("span_s") or 0.0
    if 0 < sent < STEADY_REQUESTS or 0 < span_s < STEADY_S:
        line = f"Rate: {_plural(sent, 'request')} in {span_s:.1f} s, too short a run for a steady rate"
    else:
        line = f"Rate: {rate['effective_rpm'] / 60:.1f} requests/s effective"
    source = rate.get("source")
    settled = f"{rate['final_rpm'] / 60:.1f}/s"
    if source == "headers":
        line += f"; settled at {settled}, just under the limit the relay's rate-limit headers state"
    elif source == "found":
        line += (
            f"; the relay took about {rate['limit_found_rpm'] / 60:.1f}/s, so it settled at {settled} "
            f"({_plural(rate['slowdowns'], 'slowdown')}, {_plural(rate['rate_limited'], 'rate-limit 429')})"
        )
    elif source == "configured":
        line += f" (--rpm allows {settled})"
    else:
        line += "; the relay refused no rate, so no limit was found"
    if rate.get("stray_429s"):
        line += f"; {_plural(rate['stray_429s'], 'stray 429')} retried without slowing the rest"
    if rate.get("overload_retries"):
        line += f"; {_plural(rate['overload_retries'], 'overload or transient failure')} retried"
        if rate.get("overload_slowdowns"):
            line += f" ({_plural(rate['overload_slowdowns'], 'brief slowdown')})"
    if rate.get("requested_rpm") == "auto" and rate.get("next_auto_rpm"):
        line += f"; --rpm auto will start near {rate['next_auto_rpm']:.0f} per minute next time"
    return line


# A run with fewer requests, or shorter, has no steady part to measure a rate on.
STEADY_REQUESTS = 50
STEADY_S = 5.0
# Listings below --min-quality named on the error line (all of them on stdout).
MIN_QUALITY_SHOWN = 5


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _timing_line(timing: dict[str, Any]) -> str:
    """How long the run takes at --rpm, beside one product per request."""
    single = timing["pack_1"]
    if timing["minutes"] is None:
        line = f"Time: {timing['requests']:,} requests at the rate --rpm auto finds"
    else:
        line = f"Time at --rpm {timing['rpm']}: {timing['requests']:,} requests, {_minutes(timing['minutes'])}"
    if timing["answer_seconds"] >= 60:
        line += (
            f" ({timing['concurrency']:,} in flight: an answer takes about"
            f" {timing['answer_seconds'] / 60:.0f} min to write)"
        )
    if single["requests"] == timing["requests"]:
        return line + "."
    more = single["input_tokens"] / timing["input_tokens"] - 1 if timing["input_tokens"] else 0.0
    line += f"; one job per request (--pack 1) would be {single['requests']:,} requests"
    if single["minutes"] is not None:
        line += f", {_minutes(single['minutes'])}"
    return line + f", with {more:.0%} more input tokens."


def _minutes(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"about {minutes:.0f} min"
    return f"about {minutes / 60:.1f} h"


def _row(first: str, second: str, entry: dict[str, Any], *, jobs: int | None = None) -> list[str]:
    jobs = entry["jobs"] if jobs is None else jobs
    tokens = entry["tokens"]
    rng = entry["range"]
    return [
        first,
        second,
        f"{jobs:,}",
        f"{entry['requests']:,}",
        f"{tokens['input']:,}",
        f"{tokens['output']:,}",
        _money(rng["low"]),
        _money(rng["expected"]),
        _money(rng["high"]),
    ]


def _require_api_key(settings: config.Settings, *, dry_run_hint: bool = True, offline_hint: bool = False) -> None:
    if settings.api_key is None:
        variables = f"set {config.API_KEY_VARIABLES[0]} (or {config.API_KEY_VARIABLES[1]})"
        hint = f"{variables}, or add --dry-run for an estimate that needs none" if dry_run_hint else variables
        if offline_hint:
            hint += ", or add --offline for the price table alone"
        raise InputError("no API key", hint=hint)


# --- entry point ---------------------------------------------------------------------------


# Typer re-exports Click's BadParameter; its parents are Click's UsageError and ClickException,
# from whichever Click this Typer uses (newer Typers vendor their own copy).
_USAGE_ERROR: Any = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")
_CLICK_EXCEPTION: Any = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: Click's usage errors become one line and exit 2, like ours."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args=args, prog_name="localize", standalone_mode=False)
    except _USAGE_ERROR as exc:
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and not args[1:] and type(exc).__name__ == "NoArgsIsHelpError":
            stderr.print(ctx.get_help(), markup=False)
            sys.exit(ExitCode.BAD_INPUT)
        command = ctx.command_path if ctx is not None else "localize"
        stderr.print(f"error: {exc.format_message()} (see `{command} --help`)", markup=False)
        sys.exit(ExitCode.BAD_INPUT)
    except _CLICK_EXCEPTION as exc:
        stderr.print(f"error: {exc.format_message()}", markup=False)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        stderr.print("interrupted", markup=False)
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)

"""`localize review OUT`: OUT/review.html, one self-contained page for a person to check a run.

Per product: the source copy beside every locale and platform, length used against the limit,
warnings and failures highlighted, cost per job; filters by locale, platform and warning; the
cost of OUT's listings in all on top. No CDN, no external file: it works offline and as a CI artifact.
Filters can be preset from the address (`review.html#locale=ja-JP&warning=any`).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ..checking.figures import Facts, facts_of
from ..checking.sanitize import clean_html
from ..errors import InputError, LocalizeError
from ..locales import parse_locale
from ..output.layout import COST_JSON, DB, FAILURES, RESULTS, REVIEW
from ..output.records import JudgeError, Quality
from ..output.run_report import RunOrigin
from ..output.store import STRING_PLATFORM, RunStore, atomic_write
from ..planning.prompts import load_prompt_set
from ..planning.rules import FieldRule
from ..reading.catalog import read_catalog
from ..reading.fields import FieldSelection

# Products on one page unless asked otherwise: about a megabyte, which a browser opens at once
# (all 50,000 of a large catalog were 100 MB that none could).
REVIEW_LIMIT = 1000
_LIQUID = re.compile(r"\{\{(?:[^{}]|\{(?!\{)|\}(?!\}))*\}\}|\{%(?:[^{%]|\{(?!%)|%(?!\}))*%\}")


@dataclass(frozen=True, slots=True)
class Review:
    path: Path
    shown: int  # products on the page
    total: int  # products with a result or a failure in OUT


def write_review(
    out: Path, *, catalog: Path | None = None, columns: Mapping[str, str] | None = None, limit: int = REVIEW_LIMIT
) -> Review:
    """Write OUT/review.html from OUT's results, failures and cost report (and the source copy
    from the catalog, the one the run recorded unless another is given). At most `limit`
    products (0: all), those with a failure or a warning first; only they are held in memory."""
    page, shown, total = _render(out, catalog=catalog, columns=columns, limit=limit, serve=False)
    atomic_write(out / REVIEW, page)
    return Review(out / REVIEW, shown, total)


def review_html(
    out: Path,
    *,
    catalog: Path | None = None,
    columns: Mapping[str, str] | None = None,
    limit: int = REVIEW_LIMIT,
    serve: bool = False,
    nonce: str | None = None,
) -> str:
    """The review page as `--serve` shows it: the static page, with edit, approve and reject on
    each listing through the server's API (serve.py). `nonce`: the page's script carries it,
    and the server's Content-Security-Policy runs no other script."""
    return _render(out, catalog=catalog, columns=columns, limit=limit, serve=serve, nonce=nonce)[0]


def _render(
    out: Path,
    *,
    catalog: Path | None,
    columns: Mapping[str, str] | None,
    limit: int,
    serve: bool,
    nonce: str | None = None,
) -> tuple[str, int, int]:
    if not any((out / name).exists() for name in (RESULTS, FAILURES, DB)):
        raise InputError("no results here", where=str(out), hint="pass a run's --out directory")
    report = _read_json(out / COST_JSON)  # shown on the page as it is (each part checked for its type)
    origin = RunOrigin.read(out)
    catalog = catalog or origin.catalog
    columns = columns or origin.columns  # the run's own mapping, as it recorded it
    fields = FieldSelection.parse(origin.fields)
    jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    # Read from the state, not only the exported files: during a first run the jobs finished
    # so far are in the database before any results.jsonl is written.
    with RunStore(out, read_only=True) as store:
        billed = store.billed()
        shown, total = _choose(store, limit)
        if not total:
            raise InputError(
                "no results here yet", where=str(out), hint="wait for a job to finish, or pass a run's --out"
            )
        for record in itertools.chain(store.results(), store.string_results()):
            if str(record["id"]) in shown:
                jobs[str(record["id"])].append({**record, "status": "ok"})
        for record in store.failures():
            if str(record["id"]) in shown:
                jobs[str(record["id"])].append({**record, "status": "failed"})
    sources = _sources(catalog, columns, fields, shown) if catalog and catalog.is_file() else {}
    page = _page(jobs, sources, report, billed, total=total, serve=serve, nonce=nonce)
    return page, len(jobs), total


def _choose(store: RunStore, limit: int) -> tuple[set[str], int]:
    """The products the page shows (at most `limit`, 0: all): every one with a failure or a
    warning first, then the rest in id order; and how many OUT has."""
    problems: set[str] = set()
    everything: set[str] = set()
    scores: dict[str, int] = {}
    for record in itertools.chain(store.results(), store.string_results()):
        product_id = str(record["id"])
        everything.add(product_id)
        if record.get("warnings"):
            problems.add(product_id)
        scores[product_id] = min(scores.get(product_id, UNJUDGED), lowest_score([record]))
    for record in store.failures():
        everything.add(str(record["id"]))
        problems.add(str(record["id"]))
    if not limit or len(everything) <= limit:
        return everything, len(everything)
    ordered = sorted(everything, key=lambda pid: (scores.get(pid, UNJUDGED), pid not in problems, pid))
    return set(ordered[:limit]), len(everything)


# Where a listing no judge scored (or a person's, which stands over the judge) sorts: after every score.
UNJUDGED = 101


def lowest_score(entries: Iterable[Mapping[str, Any]]) -> int:
    """The lowest score the judge gave these listings that no person wrote or approved
    (UNJUDGED when none): what the page and the API put first."""
    scores = [
        quality.score
        for entry in entries
        if not entry.get("approved") and entry.get("origin") != "human"
        for quality in (Quality.of(entry.get("quality")),)
        if quality is not None
    ]
    return min(scores, default=UNJUDGED)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _sources(
    catalog: Path, columns: Mapping[str, str] | None, fields: FieldSelection, shown: set[str]
) -> dict[str, dict[str, Any]]:
    try:
        products = read_catalog(catalog, columns=columns, duplicates="first", fields=fields)
        return {product.id: product.data() for product in products if product.id in shown}
    except InputError:
        return {}  # the review still shows the results; the catalog may have moved on


def _page(
    jobs: Mapping[str, list[dict[str, Any]]],
    sources: Mapping[str, Any],
    report: Mapping[str, Any],
    billed: tuple[float, int],
    *,
    total: int,
    serve: bool = False,
    nonce: str | None = None,
) -> str:
    locales = sorted({job["locale"] for entries in jobs.values() for job in entries})
    platforms = sorted({job["platform"] for entries in jobs.values() for job in entries})
    kinds = sorted(
        {_warning_kind(w) for entries in jobs.values() for job in entries for w in job.get("warnings") or []}
    )
    limits = _Limits()
    sections = "\n".join(
        _product(
            product_id, sources.get(product_id), sorted(entries, key=lambda j: (j["platform"], j["locale"])), limits
        )
        for product_id, entries in sorted(jobs.items(), key=lambda item: (lowest_score(item[1]), item[0]))
    )
    summary = _summary(report, sum(len(entries) for entries in jobs.values()), billed) + _kept_needs_look(report)
    if len(jobs) < total:
        summary += (
            f"<p class=partial>Showing {len(jobs):,} of {total:,} products: the judge's lowest scores first, then "
            "every one with a failure or a warning, then by id. <code>localize review OUT --limit 0</code> shows all.</p>"
        )
    return _TEMPLATE.format(
        summary=summary,
        locale_options=_options(locales),
        platform_options=_options(platforms),
        warning_options=_options(kinds),
        sections=sections,
        script=_SCRIPT + (_SERVED_SCRIPT if serve else ""),
        nonce=f' nonce="{escape(nonce)}"' if nonce else "",
        style=_STYLE,
    )


def _kept_needs_look(report: Mapping[str, Any]) -> str:
    """The translations a person wrote that the run kept as they are, though they break the
    store: a table to look through (the run never changes them)."""
    shopify = _mapping(report.get("shopify_import"))
    rows = shopify.get("kept_needs_look") or []
    if not rows:
        return ""
    if not isinstance(rows, list):
        return ""
    rows = [row for row in rows if isinstance(row, dict)]
    count = max(int(_amount(shopify.get("kept_needs_look_count"))), len(rows))
    body = "".join(
        f"<tr><td>{escape(str(row.get('type', '')))}</td><td>{escape(str(row.get('id', '')))}</td>"
        f"<td>{escape(str(row.get('field', '')))}</td><td>{escape(str(row.get('locale', '')))}</td>"
        f"<td>{escape(str(row.get('problem', '')))}</td></tr>"
        for row in rows
    )
    more = f"<p>and {count - len(rows):,} more in cost_report.json</p>" if count > len(rows) else ""
    return (
        f'<section class="kept" id="kept-needs-look"><h2>Kept, needs a look ({count:,})</h2>'
        "<p>Translations a person wrote, kept as they are in the import file: each breaks something.</p>"
        "<table><tr><th>type</th><th>id</th><th>field</th><th>language</th><th>problem</th></tr>"
        f"{body}</table>{more}</section>"
    )


def _summary(report: Mapping[str, Any], total: int, billed: tuple[float, int]) -> str:
    """The header's line: what OUT's listings cost in all (every run's billed attempts), then
    what the last run did (a re-run that sent nothing costs nothing, the listings still did)."""
    in_all, runs = billed
    cost = f"cost <b>${in_all:.4f}</b> in all (billed over {runs:,} run{'' if runs == 1 else 's'})"
    if not report:
        return f"<p class=summary>{total:,} jobs · {cost}</p>"
    jobs, tokens = _mapping(report.get("jobs")), _mapping(report.get("tokens"))
    last = (
        f"the last run: {_count(jobs.get('succeeded'))} succeeded, {_count(jobs.get('failed'))} failed, "
        f"{_count(jobs.get('up_to_date'))} up to date, {_count(report.get('requests'))} requests, "
        f"{_count(tokens.get('input'))} input tokens ({_count(tokens.get('cached_input'))} cached), "
        f"{_count(tokens.get('output'))} output, ${_amount(report.get('cost_usd')):.4f}"
    )
    parts = [f"<b>{escape(str(report.get('model', '')))}</b>", cost, last]
    return "<p class=summary>" + " · ".join(parts) + "</p>"


def _count(value: Any) -> str:
    """A count from the report as the page shows it (anything else in its place: 0)."""
    return f"{value:,}" if type(value) is int else "0"


def _mapping(value: Any) -> Mapping[str, Any]:
    """A part of the report that should be an object (anything else in its place: empty)."""
    return value if isinstance(value, Mapping) else {}


def _amount(value: Any) -> float:
    return float(value) if type(value) in (int, float) else 0.0


def _options(values: Iterable[str]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)


def _product(product_id: str, source: Mapping[str, Any] | None, entries: list[dict[str, Any]], limits: _Limits) -> str:
    if entries and entries[0]["platform"] == STRING_PLATFORM:
        return _string(product_id, entries)
    facts = facts_of(source) if source else None
    rows = "\n".join(_job(job, limits, facts) for job in entries)
    source_html = ""
    if source:
        name = escape(str(source.get("name", "")))
        body = escape(str(source.get("description", "")))[:600]
        points = [str(item) for key in ("features", "bullets") for item in _as_list(source.get(key))]
        listed = (
            "<ul class=points>" + "".join(f"<li>{escape(item)}</li>" for item in points) + "</ul>" if points else ""
        )
        source_html = f"<div class=source><div class=label>source</div><b>{name}</b><p>{body}</p>{listed}</div>"
    return (
        f'<section class=product data-id="{escape(product_id)}"><h2>{escape(product_id)}</h2>{source_html}'
        f"<table><thead><tr><th>platform</th><th>locale</th><th>listing</th><th>warnings</th><th>cost</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></section>"
    )


def _row_attrs(job: Mapping[str, Any]) -> str:
    """A job row's class and the data attributes the filters read."""
    kinds = " ".join(sorted({_warning_kind(w) for w in job.get("warnings") or []}))
    states = []
    if job.get("outdated"):
        states.append("outdated")
    if job["status"] != "failed" and not job.get("approved"):
        states.append("unapproved")
    if job.get("origin") == "human":
        states.append("human")
    classes = ["job", job["status"]]  # ok (succeeded) or failed; and what a person should look at
    if job["status"] != "failed" and (job.get("warnings") or "rejected" in job):
        classes.append("warning")
    if job["status"] != "failed" and job.get("outdated"):
        classes.append("outdated")
    return (
        f'class="{" ".join(classes)}" data-states="{" ".join(states)}" data-locale="{escape(job["locale"])}" '
        f'data-platform="{escape(job["platform"])}" data-warnings="{escape(kinds)}" '
        f'data-approved="{"1" if job.get("approved") else "0"}" data-origin="{escape(str(job.get("origin") or "model"))}"'
        f' data-quality="{lowest_score([job]) if job["status"] != "failed" else UNJUDGED}"'
    )


def _failure(job: Mapping[str, Any]) -> str:
    return f"<span class=error>{escape(str(job.get('error')))}: {escape(str(job.get('message')))}</span>"


def _job(job: Mapping[str, Any], limits: _Limits, facts: Facts | None = None) -> str:
    warnings = list(job.get("warnings") or [])
    attrs = _row_attrs(job)
    if job["status"] == "failed":
        listing = _failure(job)
        return f"<tr {attrs}><td>{escape(job['platform'])}</td><td>{escape(job['locale'])}</td><td>{listing}</td><td></td><td></td></tr>"
    rules = limits.get(job["platform"], job["locale"])
    description = str(job.get("description", ""))
    extra = job.get("extra") or {}
    quality = Quality.of(job.get("quality"))
    listing = (
        f"<div class=title>{escape(str(job.get('title', '')))} {_used(job.get('title', ''), rules.get('title'))}</div>"
        # As the shop will show it (sanitised: sanitize.clean_html), and as the code that is imported.
        f"<div class=rendered>{clean_html(description)}</div>"
        f"<details class=code><summary>HTML {_used(description, rules.get('description'))}</summary>"
        f'<div class=description data-field="description">{escape(description)}</div></details>'
        '<ul data-field="bullets">' + "".join(f"<li>{escape(str(b))}</li>" for b in job.get("bullets") or []) + "</ul>"
        f'<div class=tags data-field="seo_tags">{escape(", ".join(job.get("seo_tags") or []))}</div>'
        + "".join(
            f"<div class=extra><span class=label>{escape(str(name))}</span> "
            f'<span data-field="{escape(str(name))}">{escape(str(value))}</span></div>'
            for name, value in extra.items()
        )
    )
    listing = _judged(listing, quality.errors if quality is not None else ())
    warned = _quality(quality) + "".join(f"<div class=warning>{escape(w)}</div>" for w in warnings)
    if facts and not any(_warning_kind(w) == "figures" for w in warnings):
        count = len(facts.figures) + len(facts.names) + len(facts.media)
        checked = ", ".join([f.text for f in facts.figures] + list(facts.names))
        warned += f'<div class=checked title="{escape(checked)}">figures ✓ {count} checked</div>'
    cost = f"${float(job.get('cost_usd') or 0):.5f}"
    return (
        f"<tr {attrs}><td>{escape(job['platform'])}</td><td>{escape(job['locale'])}</td>"
        f"<td{_direction(job['locale'])}>{listing}</td><td>{warned}{_origin(job)}</td><td class=cost>{cost}</td></tr>"
    )


_TAG_OR_TEXT = re.compile(r"(<[^>]*>)")


def _judged(html_text: str, errors: Iterable[JudgeError]) -> str:
    """The listing's HTML with each span the judge named marked where it stands in the text
    (never inside a tag): `<mark class="judge major">`, its category as the title."""
    for error in errors:
        if not error.span:
            continue  # (a hand-edited line: an empty span marks nothing)
        needle = escape(error.span)
        severity = "major" if error.severity == "major" else "minor"
        mark = f'<mark class="judge {severity}" title="{escape(error.category)}">{needle}</mark>'
        html_text = "".join(
            part if part.startswith("<") else part.replace(needle, mark) for part in _TAG_OR_TEXT.split(html_text)
        )
    return html_text


def _quality(quality: Quality | None) -> str:
    """The judge's score and its errors, in the warnings cell."""
    if quality is None:
        return ""
    level = "low" if quality.score < LOW_SCORE else "ok"
    found = "".join(
        f"<div class=judge-error>{escape(e.severity)} {escape(e.category)}: “{escape(e.span)}”</div>"
        for e in quality.errors
    )
    return (
        f'<div class="quality {level}" data-score="{quality.score}">quality {quality.score}'
        f" <span class=label>({escape(quality.model)})</span></div>{found}"
    )


# A judge's score under this is shown as low (the page's colour, not a gate: --min-quality is).
LOW_SCORE = 80


@functools.cache
def _direction(tag: str) -> str:
    """The listing cell's dir attribute: a right-to-left locale's listing reads right to left."""
    try:
        return ' dir="rtl"' if parse_locale(tag).right_to_left else ""
    except LocalizeError:
        return ""


def _origin(job: Mapping[str, Any]) -> str:
    """Where a result came from when no request wrote it: another product's listing with the
    same copy, or the translation memory."""
    if job.get("reused_from"):
        return f"<div class=reused>reused from {escape(str(job['reused_from']))} (the same copy)</div>"
    if job.get("memory"):
        return "<div class=reused>from the translation memory</div>"
    return ""


def _string(key: str, entries: list[dict[str, Any]]) -> str:
    """A store text (Shopify's export): its source beside each locale's translation, the
    placeholders and Liquid tags marked so a reviewer sees they survived."""
    source = next((str(entry["source"]) for entry in entries if entry.get("source")), "")
    rows = []
    for job in entries:
        warnings = list(job.get("warnings") or [])
        attrs = _row_attrs(job)
        if job["status"] == "failed":
            text = _failure(job)
        else:
            text = f'<div class=translation data-field="text">{_marked(str(job.get("text", "")))}</div>'
        warned = "".join(f"<div class=warning>{escape(w)}</div>" for w in warnings) + _origin(job)
        cost = f"${float(job.get('cost_usd') or 0):.5f}" if job["status"] == "ok" else ""
        rows.append(
            f"<tr {attrs}><td>{escape(job['locale'])}</td><td>{text}</td><td>{warned}</td><td class=cost>{cost}</td></tr>"
        )
    return (
        f'<section class="product string" data-id="{escape(key)}"><h2>{escape(key)}</h2>'
        f"<div class=source><div class=label>source</div>{_marked(source)}</div>"
        "<table><thead><tr><th>locale</th><th>translation</th><th>warnings</th><th>cost</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _marked(text: str) -> str:
    """Text shown as written (its HTML as code), Liquid placeholders and tags highlighted."""
    return _LIQUID.sub(lambda match: f"<mark class=ph>{match.group(0)}</mark>", escape(text))


def _used(text: Any, rule: FieldRule | None) -> str:
    """ "123 / 200": characters used against the limit (over the limit or the warning mark: flagged)."""
    length = len(str(text))
    if rule is None or rule.max_chars is None:
        return f"<span class=used>{length}</span>"
    over = length > rule.max_chars or (rule.warn_over_chars is not None and length > rule.warn_over_chars)
    return f'<span class="used{" over" if over else ""}">{length} / {rule.max_chars}</span>'


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] if value else []


def _warning_kind(warning: str) -> str:
    return warning.split(":", 1)[0].strip()


class _Limits:
    """The built-in rules per platform and locale, for "used / limit" (loaded once each)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], dict[str, FieldRule]] = {}

    def get(self, platform: str, locale: str) -> dict[str, FieldRule]:
        key = (platform, locale)
        if key not in self._cache:
            try:
                self._cache[key] = load_prompt_set(platform).rules_for(parse_locale(locale)).fields()
            except InputError:
                self._cache[key] = {}  # a platform from the user's own --prompts
        return self._cache[key]


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde;padding:12px 20px;z-index:1}
h1{font-size:18px;margin:0 0 6px} h2{font-size:15px;margin:0 0 8px}
.summary{margin:0 0 8px;color:#445} label{margin-right:14px} .partial{margin:0 0 8px;color:#8a5a00}
main{padding:16px 20px} section.product{background:#fff;border:1px solid #dde;border-radius:6px;padding:12px;margin:0 0 14px}
.source{background:#f0f4ff;border-left:3px solid #6b8cff;padding:6px 10px;margin:0 0 8px}
.label{font-size:11px;text-transform:uppercase;color:#6b7590}
table{border-collapse:collapse;width:100%} th,td{text-align:left;vertical-align:top;border-top:1px solid #eef;padding:6px}
th{font-size:12px;color:#6b7590} .title{font-weight:600} .tags{color:#6b7590;font-size:12px}
.used{font-size:11px;color:#6b7590;margin-left:4px} .used.over{color:#b00020;font-weight:600}
.warning{background:#fff4d6;border-left:3px solid #f0a500;padding:2px 6px;margin:2px 0;font-size:12px}
tr.failed td{background:#fff0f0} .error{color:#b00020} .cost{white-space:nowrap;font-variant-numeric:tabular-nums}
#shown{color:#445} mark.ph{background:#e3f1e6;color:#1b5e20;border-radius:3px;padding:0 2px}
.string .source,.translation{white-space:pre-wrap}
.checked{color:#1b5e20;font-size:12px}
.reused{color:#0d47a1;font-size:12px}
.tools{margin-top:6px} .decision{font-size:12px;color:#445} .decision.error{color:#b00020}
.edit-title{outline:1px dashed #c5cbe0;padding:0 2px} tr.current td{background:#eef3ff}
.rendered{border-left:2px solid #e3e7f2;padding-left:6px} details.code summary{font-size:12px;color:#6b7590}
.extra{font-size:12px} .extra .label{color:#6b7590} ul.points{font-size:12px;color:#445;margin:4px 0}
.quality{font-size:12px;font-weight:600} .quality.low{color:#b00020} .quality.ok{color:#1b5e20}
.judge-error{font-size:12px;color:#445} mark.judge{border-radius:3px;padding:0 1px}
mark.judge.major{background:#ffd6d6} mark.judge.minor{background:#fff0b3}
"""

_SCRIPT = """
(function () {
  const select = (id) => document.getElementById(id);
  const filters = ["locale", "platform", "warning", "status"];
  function apply() {
    const want = Object.fromEntries(filters.map((f) => [f, select(f).value]));
    let shown = 0;
    document.querySelectorAll("tr.job").forEach((row) => {
      const kinds = row.dataset.warnings ? row.dataset.warnings.split(" ") : [];
      const ok = (!want.locale || row.dataset.locale === want.locale)
        && (!want.status || row.classList.contains(want.status) || (row.dataset.states || "").split(" ").includes(want.status))
        && (!want.platform || row.dataset.platform === want.platform)
        && (!want.warning || (want.warning === "any" ? kinds.length > 0 : kinds.includes(want.warning)));
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    document.querySelectorAll("section.product").forEach((section) => {
      section.hidden = !section.querySelector("tr.job:not([hidden])");
    });
    select("shown").textContent = shown + " of " + document.querySelectorAll("tr.job").length + " jobs shown";
    const hash = filters.filter((f) => want[f]).map((f) => f + "=" + encodeURIComponent(want[f])).join("&");
    history.replaceState(null, "", location.pathname + location.search + (hash ? "#" + hash : ""));
  }
  new URLSearchParams(location.hash.slice(1)).forEach((value, key) => {
    if (filters.includes(key)) select(key).value = value;
  });
  filters.forEach((f) => select(f).addEventListener("change", apply));
  apply();
  document.body.dataset.ready = "1";
})();
"""

# With --serve: edit the title in place (saved when it loses focus), approve, reject with a
# note, and approve every listing without findings; each through the API (serve.py), the
# answer shown on the row. Keyboard: j/k move between listings, a approves, r rejects.
_SERVED_SCRIPT = """
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const rows = Array.from(document.querySelectorAll("tr.job.ok, tr.job.warning"));
  let at = 0;
  async function decide(row, body) {
    const id = row.closest("section").dataset.id;
    const url = "/api/listings/" + [row.dataset.platform, row.dataset.locale, id].map(encodeURIComponent).join("/");
    const said = row.querySelector(".decision");
    const reply = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json",
      "X-Localize-Token": token}, body: JSON.stringify(body)});
    const data = await reply.json();
    if (reply.ok && body.fields && data.twins && data.twins.length) offerToTwins(row, body.fields, data.twins);
    if (reply.ok) {
      row.dataset.approved = data.listing.approved ? "1" : "0";
      row.classList.toggle("warning", data.listing.status === "warning");
      row.classList.toggle("outdated", data.listing.status === "outdated");
      row.dataset.origin = data.listing.origin;
      said.className = "decision ok";
      said.textContent = (data.listing.approved ? "approved" : "not approved") +
        (data.listing.origin === "human" ? " · edited" : "") +
        (data.listing.warnings.some((w) => w.startsWith("rejected:")) ? " · sent back" : "") +
        (data.listing.warnings.length ? " · " + data.listing.warnings.join("; ") : "");
    } else {
      said.className = "decision error";
      said.textContent = (data.problems || [data.error]).join("; ");
    }
    return reply.ok;
  }
  function offerToTwins(row, fields, twins) {
    // The same copy was written once for these products too (reused): offer them the edit.
    const offer = document.createElement("button");
    offer.className = "twins";
    offer.textContent = "Apply this edit to its " + twins.length + " twin" + (twins.length === 1 ? "" : "s");
    offer.addEventListener("click", async function () {
      for (const id of twins) {
        const url = "/api/listings/" + [row.dataset.platform, row.dataset.locale, id].map(encodeURIComponent).join("/");
        await fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-Localize-Token": token},
          body: JSON.stringify({fields: fields})});
      }
      offer.textContent = "Applied to " + twins.length;
      offer.disabled = true;
    });
    row.querySelector(".tools").appendChild(offer);
  }
  function editTitle(row, title) {
    const text = title.firstChild;
    const editor = document.createElement("span");
    editor.className = "edit-title";
    editor.contentEditable = "true";
    editor.textContent = text ? text.textContent.trim() : "";
    editor.dataset.saved = editor.textContent;
    if (text) title.replaceChild(editor, text); else title.prepend(editor);
    const used = title.querySelector(".used");
    const limit = used ? parseInt((used.textContent.split("/")[1] || "").trim(), 10) : NaN;
    editor.addEventListener("input", function () {  // the length check as you type
      if (!used || isNaN(limit)) return;
      const length = editor.textContent.trim().length;
      used.textContent = length + " / " + limit;
      used.classList.toggle("over", length > limit);
    });
    editor.addEventListener("blur", function () {
      const value = editor.textContent.trim();
      if (value !== editor.dataset.saved) {
        decide(row, {fields: {title: value}}).then(function (ok) { if (ok) editor.dataset.saved = value; });
      }
    });
  }
  rows.forEach(function (row, index) {
    const cell = row.cells[row.cells.length - 2];
    const tools = document.createElement("div");
    tools.className = "tools";
    const state = row.dataset.approved === "1" ? "approved" : "not approved";
    tools.innerHTML = '<button class="approve">Approve</button> <button class="reject">Reject</button> ' +
      '<div class="decision">' + state + (row.dataset.origin === "human" ? " · edited" : "") + "</div>";
    cell.appendChild(tools);
    tools.querySelector(".approve").addEventListener("click", () => decide(row, {approved: true}));
    tools.querySelector(".reject").addEventListener("click", function () {
      const note = prompt("What should the writer change?");
      if (note) decide(row, {reject: note});
    });
    const title = row.querySelector(".title");  // a listing's; a store string has its text instead
    if (title) editTitle(row, title);
    // The other fields, edited in place too: the description as its HTML, each highlight, the
    // search tags as a comma list, the platform's extra fields; saved when they lose focus.
    row.querySelectorAll("[data-field]").forEach(function (node) {
      const name = node.dataset.field;
      const read = () => name === "bullets"
        ? Array.from(node.querySelectorAll("li")).map((li) => li.textContent.trim()).filter(Boolean)
        : name === "seo_tags" ? node.textContent.split(",").map((tag) => tag.trim()).filter(Boolean)
        : node.textContent.trim();
      if (name === "bullets") node.querySelectorAll("li").forEach((li) => { li.contentEditable = "true"; });
      else node.contentEditable = "true";
      node.dataset.saved = JSON.stringify(read());
      node.addEventListener("focusout", function () {
        const value = read();
        if (JSON.stringify(value) === node.dataset.saved) return;
        decide(row, {fields: {[name]: value}}).then(function (ok) { if (ok) node.dataset.saved = JSON.stringify(value); });
      });
    });
    row.addEventListener("click", () => { at = index; });
  });
  const bulk = document.createElement("button");
  bulk.id = "approve-clean";
  bulk.textContent = "Approve all without findings";
  const bulkSaid = document.createElement("span");
  bulkSaid.id = "approve-clean-said";
  bulk.addEventListener("click", async function () {
    // Only listings without findings: a warning, an outdated listing or a failure waits for a person.
    let approved = 0, skipped = 0;
    for (const row of rows) {
      if (row.dataset.approved === "1") continue;
      const clean = row.classList.contains("ok") && !row.classList.contains("warning")
        && !row.classList.contains("outdated");
      if (!clean) { skipped += 1; continue; }
      if (await decide(row, {approved: true})) approved += 1;
    }
    bulkSaid.textContent = " Approved " + approved + "; left " + skipped +
      " with findings (a warning or outdated) for a person to read.";
  });
  document.querySelector("main").prepend(bulk, bulkSaid);
  document.addEventListener("keydown", function (event) {
    if (event.target.isContentEditable || !rows.length) return;
    if (event.key === "j" || event.key === "k") {
      at = Math.max(0, Math.min(rows.length - 1, at + (event.key === "j" ? 1 : -1)));
      rows[at].scrollIntoView({block: "center"});
      rows.forEach((row, index) => row.classList.toggle("current", index === at));
    } else if (event.key === "a") {
      decide(rows[at], {approved: true});
    } else if (event.key === "r") {
      const note = prompt("What should the writer change?");
      if (note) decide(rows[at], {reject: note});
    }
  });
  document.body.dataset.served = "1";
})();
"""

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>localize review</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{style}</style></head>
<body><header><h1>localize review</h1>{summary}
<label>Locale <select id="locale"><option value="">all</option>{locale_options}</select></label>
<label>Platform <select id="platform"><option value="">all</option>{platform_options}</select></label>
<label>Status <select id="status"><option value="">all</option><option value="failed">failed</option><option value="ok">succeeded</option><option value="outdated">outdated</option><option value="unapproved">unapproved</option><option value="human">edited by a person</option></select></label>
<label>Warnings <select id="warning"><option value="">all jobs</option><option value="any">any warning</option>{warning_options}</select></label>
<span id="shown"></span></header>
<main>
{sections}
</main><script{nonce}>{script}</script></body></html>
"""

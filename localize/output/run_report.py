"""What a finished run leaves in OUT beside its results: the cost report (cost_report.json and
.md), what it measured for later estimates (calibration.json) and the rate the next
`--rpm auto` starts from (rate.json). Each file carries a version and is read back here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..cost import REPORT_VERSION, build_report, report_markdown
from ..planning.calibration import Calibration
from .layout import CALIBRATION, COST_JSON, COST_MD, RATE
from .store import RunStore, atomic_write

if TYPE_CHECKING:
    from ..config import Settings
    from ..sending.relay import Pacer
    from ..shops import Imports


def write_run_reports(
    settings: Settings,
    catalog: Path,
    store: RunStore,
    run_id: str,
    jobs: dict[str, int],
    pacer: Pacer,
    *,
    elapsed_s: float,
    imports: Imports,
    held_since: list[str] | None = None,
    reused_saved_usd: Decimal | None = None,
) -> dict[str, Any]:
    """cost_report.json / .md for this run (a sum over its audit log, with what the Shopify
    import file holds where one was written), what it measured for later estimates, and the
    rate --rpm auto should start at next time."""

    def this_run() -> Iterator[dict[str, Any]]:
        return store.attempts(run_id)

    report = build_report(
        this_run(), model=settings.model, jobs=jobs, elapsed_s=elapsed_s, budget_usd=settings.max_cost_usd
    )
    report["run"] = run_id
    report["catalog"] = str(catalog.resolve())  # so `localize review` can show the source copy
    if settings.columns:
        report["columns"] = dict(settings.columns)  # ...read with the run's own mapping
    if settings.fields:
        report["fields"] = list(settings.fields)
    report["rate"] = _rate_summary(settings, pacer)
    if settings.shard:
        report["shard"] = list(settings.shard)  # so `localize merge` knows whose products these are
    if reused_saved_usd is not None:
        # Listings taken from a job with the same copy (jobs.reused): what they cost where written.
        report["reused"] = {"jobs": jobs.get("reused", 0), "saved_usd": float(round(reused_saved_usd, 6))}
    if held_since:
        report["held_since"] = held_since  # the runs that met the failures held (jobs.held)
    if "not_started" in jobs:
        report["interrupted"] = True
    if imports.files or imports.removed:
        report["import_files"] = [file.as_json() for file in imports.files]
        report["import_files_removed"] = [str(path) for path in imports.removed]
    if imports.shopify is not None:
        report["shopify_import"] = imports.shopify.as_json()
    if report["rate"].get("next_auto_rpm"):
        rate = {"version": RATE_VERSION, "rpm": report["rate"]["next_auto_rpm"], "run": run_id}
        atomic_write(settings.out / RATE, json.dumps(rate) + "\n")
    calibration = Calibration.from_attempts(this_run(), model=settings.model, run=run_id)
    if not calibration.is_empty:
        atomic_write(settings.out / CALIBRATION, json.dumps(calibration.to_json(), indent=2) + "\n")
    write_report(settings.out, report)
    return report


class CostReport(BaseModel):
    """cost_report.json as a type: every key a run or a merge writes, declared once. A report
    is checked against it before it is written (a key not declared here is an error, caught by
    the tests, not a silent addition), and read back through it (`read`, its version checked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = REPORT_VERSION
    model: str
    currency: str = "USD"
    estimated: bool = False
    jobs: dict[str, int]
    requests: int
    tokens: dict[str, int]
    cached_share: float
    cost_usd: float
    cost_cny: float
    by_locale: dict[str, dict[str, Any]]
    by_platform: dict[str, dict[str, Any]]
    by_user: dict[str, dict[str, Any]]
    by_resource_type: dict[str, dict[str, Any]] | None = None
    by_mode: dict[str, dict[str, Any]] | None = None
    by_model: dict[str, dict[str, Any]] | None = None
    by_purpose: dict[str, dict[str, Any]] | None = None
    errors: dict[str, int]
    latency_ms: dict[str, float | None]
    elapsed_s: float
    relay_cost_usd: float | None = None
    relay_cost_disagrees: bool | None = None
    usage_mismatch: dict[str, int] | None = None
    unconfirmed: dict[str, int] | None = None
    unreported: dict[str, float] | None = None
    budget_usd: float | None = None
    # A run's: what it read and how, so `review`, the review server and `merge` can read it back.
    run: str | None = None
    catalog: str | None = None
    columns: dict[str, str] | None = None
    fields: list[str] | None = None
    shard: list[int] | None = None
    rate: dict[str, Any] | None = None
    reused: dict[str, float] | None = None
    held_since: list[str] | None = None
    interrupted: bool | None = None
    import_files: list[dict[str, Any]] | None = None
    import_files_removed: list[str] | None = None
    shopify_import: dict[str, Any] | None = None
    # A merge's: the runs it combined, and from where.
    runs: list[str] | None = None
    merged_from: list[str] | None = None


def write_report(out: Path, report: dict[str, Any]) -> None:
    """cost_report.json and its Markdown twin (a run's, a merge's), checked against CostReport."""
    try:
        CostReport.model_validate(report)
    except ValidationError as exc:  # a programming error: the tests meet it first
        raise ValueError(f"cost_report.json does not match CostReport: {exc.errors()[0]}") from None
    atomic_write(out / COST_JSON, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    atomic_write(out / COST_MD, report_markdown(report))


@dataclass(frozen=True, slots=True)
class RunOrigin:
    """What a run's cost report records about where its listings come from, read back in one
    place: the catalog it read (as a path; None when gone or unrecorded), its column map, the
    columns it sent (--fields), its shard, its id. Those who show the source copy (`review`,
    the review server, `memory export`) and `merge` read it so."""

    catalog: Path | None = None
    columns: Mapping[str, str] | None = None
    fields: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None
    run: str | None = None

    @classmethod
    def read(cls, out: Path) -> RunOrigin:
        """OUT's (the CostReport fields a reader needs, each checked for its type, an older
        report's too), or an empty one when OUT has no report, a damaged one, or a newer
        version's: nothing in those is read on trust."""
        try:
            report = json.loads((out / COST_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(report, dict) or not isinstance(report.get("version", 1), int):
            return cls()
        if report.get("version", 1) > REPORT_VERSION:
            return cls()  # a newer version's report: nothing in it is read on trust
        catalog, columns, fields, shard = (report.get(name) for name in ("catalog", "columns", "fields", "shard"))
        return cls(
            catalog=Path(catalog) if isinstance(catalog, str) and catalog else None,
            columns={str(k): str(v) for k, v in columns.items()} if isinstance(columns, dict) and columns else None,
            fields=tuple(str(name) for name in fields) if isinstance(fields, list) else (),
            shard=(int(shard[0]), int(shard[1])) if isinstance(shard, list) and _is_shard(shard) else None,
            run=str(report["run"]) if isinstance(report.get("run"), str) else None,
        )


def _is_shard(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in value)
    )


def previous_rate_rpm(settings: Settings) -> float | None:
    try:
        rate = json.loads((settings.out / RATE).read_text())
        if rate.get("version", 1) > RATE_VERSION:
            return None  # a newer version's: start from the tier's rate
        return float(rate["rpm"]) * AUTO_RESTART_SHARE
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _rate_summary(settings: Settings, pacer: Pacer) -> dict[str, Any]:
    report = pacer.controller.report()
    effective = pacer.effective_rps()
    next_auto = report.final_rps if report.source in ("found", "headers") else None
    if settings.rpm == "auto" and next_auto is None:
        next_auto = report.sustained_rps
    return {
        "requested_rpm": settings.rpm,
        "effective_rpm": round(effective * 60, 1) if effective else None,
        "requests": pacer.sent,  # sent, retries included, between the first send and the last answer
        "span_s": round((pacer.last_done or 0.0) - (pacer.first_sent or 0.0), 2) if effective else None,
        "final_rpm": round(report.final_rps * 60, 1),
        # configured (--rpm), found (from 429s), headers (the relay's x-ratelimit-*), probing (auto, no limit met)
        "source": report.source,
        "limit_found_rpm": round(report.limit_found_rps * 60, 1) if report.limit_found_rps else None,
        "slowdowns": report.slowdowns,
        "rate_limited": report.rate_limited,
        "stray_429s": report.stray_429s,
        "overload_retries": report.overloaded,
        "overload_slowdowns": report.overload_slowdowns,
        "pauses": len(pacer.pauses_s),
        # Where the next --rpm auto starts (at 90% of it): the limit met, else the fastest rate taken.
        "next_auto_rpm": round(next_auto * 60, 1) if next_auto else None,
    }


# rate.json's version: a file without one is version 1 ({"rpm", "run"}).
RATE_VERSION = 1


# --rpm auto starts a little under the rate the previous run ended at.
AUTO_RESTART_SHARE = 0.9

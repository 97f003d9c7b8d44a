"""--check: which jobs a run would send, and why, without sending anything (and, with
--min-quality, which judged listings score too low; with --require-approved, which wait for a
person)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..checking.strings import STRINGS, memory_for, store_strings
from ..output.records import Quality
from ..output.store import RunStore
from ..people.edits import check_people
from ..reading.textfile import read_once
from .jobs import PromptSets, iter_jobs, require_locales
from .plan import Outcome, Plan, Planner

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import Settings
    from ..output.lock import JobKey


@dataclass(frozen=True, slots=True)
class Staleness:
    """--check: the jobs whose results are missing or out of date, and why."""

    total: int
    stale: list[tuple[JobKey, str]]
    unapproved: int = 0  # listings and store strings no person approved yet (--require-approved)
    unapproved_strings: int = 0  # of which store strings
    # --min-quality: judged listings scored below it (lowest first), and those no judge scored.
    low_quality: list[tuple[JobKey, int]] = field(default_factory=list)
    unjudged: list[JobKey] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        checked: dict[str, Any] = {
            "total": self.total,
            "fresh": self.total - len(self.stale),
            "stale": [{"id": k[0], "platform": k[1], "locale": k[2], "reason": why} for k, why in self.stale],
        }
        if self.low_quality or self.unjudged:
            checked["low_quality"] = [
                {"id": k[0], "platform": k[1], "locale": k[2], "score": score} for k, score in self.low_quality
            ]
            checked["unjudged"] = [{"id": k[0], "platform": k[1], "locale": k[2]} for k in self.unjudged]
        return checked


def check(settings: Settings, catalog: Path) -> Staleness:
    """Which jobs a run would send, and why: renders every prompt, compares with the lock.
    Sends nothing and needs no key."""
    require_locales(settings)
    with read_once(catalog), RunStore(settings.out, read_only=True) as store:
        return _check(settings, catalog, store)


def _check(settings: Settings, catalog: Path, store: RunStore) -> Staleness:
    prompt_sets = PromptSets(settings)
    check_people(store, prompt_sets)
    planner = Planner(settings, prompt_sets, store, memory=memory_for(settings, catalog))
    plans = itertools.chain(
        (planner.listing(job) for _, jobs in iter_jobs(settings, catalog, prompt_sets) for job in jobs),
        (
            planner.string(product, locale)
            for product, locales in store_strings(settings, catalog)
            for locale in locales
        ),
    )
    total = 0
    stale: list[tuple[JobKey, str]] = []
    listings: set[JobKey] = set()
    for plan in plans:
        total += 1
        reason = _stale_reason(store, plan)
        if reason is not None:
            stale.append((plan.job.key, reason))
        elif plan.job.platform != STRINGS:
            listings.add(plan.job.key)
    waiting = [line for line in store.reviewable() if not line.get("approved")] if settings.require_approved else []
    texts = sum(1 for line in waiting if line["platform"] == STRINGS)
    low, unjudged = _below(store, listings, settings.min_quality) if settings.min_quality is not None else ([], [])
    return Staleness(total, stale, len(waiting), texts, low, unjudged)


def _below(store: RunStore, listings: set[JobKey], minimum: int) -> tuple[list[tuple[JobKey, int]], list[JobKey]]:
    """--min-quality: the current listings a judge scored below `minimum` (lowest first), and
    those no judge scored. A person's listing (written or approved by one) stands over the judge."""
    low: list[tuple[JobKey, int]] = []
    unjudged: list[JobKey] = []
    for line in store.results():
        key = (str(line["id"]), str(line["platform"]), str(line["locale"]))
        if key not in listings or line.get("approved") or line.get("origin") == "human":
            continue
        quality = Quality.of(line.get("quality"))
        if quality is None:
            unjudged.append(key)
        elif quality.score < minimum:
            low.append((key, quality.score))
    low.sort(key=lambda item: (item[1], item[0]))
    return low, unjudged


def _stale_reason(store: RunStore, plan: Plan) -> str | None:
    """Why a job's output is missing or out of date (None when it is current): what its plan says."""
    if plan.prepared is None:
        return f"its prompt cannot be built ({plan.problem})"
    decided = plan.decided
    reason = store.stale_reason(plan.job.key, plan.prepared.fp, plan.prepared.fields)
    if decided.note is not None:
        return "rejected by a reviewer"
    if decided.refill:
        return "its translation memory changed"
    if plan.outcome is Outcome.OUTDATED:
        return f"outdated ({reason}; kept: a person {'edited' if decided.edited else 'approved'} it)"
    if plan.outcome is Outcome.HELD:
        return f"failed (unchanged since run {decided.held_since})"
    return reason

"""`localize approve OUT`: approve listings from a script or CI, as the review page does: each
approval a line in OUT/reviews.jsonl (reviews.py), folded into results.jsonl."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..output.layout import RESULTS
from ..output.store import RunStore
from .reviews import Decision


def approve_listings(
    out: Path,
    *,
    every: bool = False,
    ids: Iterable[str] = (),
    locale: str | None = None,
    platform: str | None = None,
    user: str | None = None,
) -> int:
    """Approve the listings and store strings of OUT that match (all with `every`; a store
    string's platform is `strings`); how many were approved now."""
    ids = set(ids)
    if not (every or ids or locale or platform):
        raise InputError("say which listings to approve", hint="pass --all, or --id ID, --locale L, --platform P")
    if not (out / RESULTS).is_file():
        raise InputError("no results here", where=str(out), hint="pass a run's --out directory")
    with RunStore(out) as store:
        chosen = [
            Decision(str(line["id"]), str(line["platform"]), str(line["locale"]), "approve", user=user)
            for line in store.reviewable()
            if not line.get("approved")
            and (not ids or str(line["id"]) in ids)
            and (locale is None or line["locale"] == locale)
            and (platform is None or line["platform"] == platform)
        ]
        return store.decide(chosen, export=True)

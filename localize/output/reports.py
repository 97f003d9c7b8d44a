"""Reading what runs left behind (`localize report`) and asking the relay what it serves
(`localize models`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Settings
from ..cost import build_report, load_prices
from ..errors import InputError
from ..sending.relay import RelayClient, RelayError, RelayFatal
from .layout import REQUESTS
from .store import RunStore


def rebuild_report(out: Path, *, all_runs: bool = False) -> dict[str, Any]:
    """The cost report from OUT's audit log alone (the last run's, or every run's)."""
    log = out / REQUESTS
    if not log.is_file():
        raise InputError("no audit log here", where=str(out), hint=f"expected {log}; pass a run's --out directory")
    with RunStore(out, read_only=True) as store:
        runs = store.runs()
        if not runs:
            raise InputError("the audit log is empty", where=str(log))
        wanted = runs if all_runs else runs[-1:]
        models: set[str] = set()
        # Each job once, by its last outcome: a job sent again in a later run (its product
        # changed, a failure retried) is one job, not two.
        outcome: dict[tuple[str, str, str], str] = {}

        def records() -> Iterator[dict[str, Any]]:
            for run in wanted:
                for record in store.attempts(run):
                    models.add(str(record.get("model")))
                    if record.get("job_outcome") in ("succeeded", "failed"):
                        key = (str(record.get("id")), str(record.get("platform")), str(record.get("locale")))
                        outcome[key] = str(record["job_outcome"])
                    yield record

        report = build_report(records(), model="", jobs={}, elapsed_s=0.0)
    report["model"] = ", ".join(sorted(models))
    outcomes = Counter(outcome.values())
    succeeded, failed = outcomes["succeeded"], outcomes["failed"]
    report["jobs"] = {"total": succeeded + failed, "succeeded": succeeded, "failed": failed, "up_to_date": 0}
    report["runs"] = wanted
    report.pop("elapsed_s")
    return report


async def list_models(settings: Settings) -> list[dict[str, Any]]:
    """What the relay serves, each marked with whether the price table knows it."""
    prices = load_prices(settings.prices)
    client = RelayClient(settings)
    try:
        ids = await client.models()
    except RelayError as exc:
        if isinstance(exc, RelayFatal):
            raise
        raise RelayFatal(exc.kind, exc.message, status=exc.status, hint="check --base-url and the network") from None
    finally:
        await client.aclose()
    return [{"id": model, "priced": model in prices} for model in ids]

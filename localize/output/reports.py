"""Reading what runs left behind (`localize report`) and asking the relay what it serves
(`localize models`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Settings
from ..cost import Price, build_report, load_prices
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


async def list_models(settings: Settings, *, ask_relay: bool = True) -> list[dict[str, Any]]:
    """Every model the price table knows and every one the relay serves (GET /models, which
    checks the key too): its context window, output limit, whether it thinks by default, its
    live and batch prices, and whether the relay lists it (None: not asked, --offline)."""
    prices = load_prices(settings.prices)
    listed: set[str] | None = None
    if ask_relay:
        client = RelayClient(settings)
        try:
            listed = set(await client.models())
        except RelayError as exc:
            if isinstance(exc, RelayFatal):
                raise
            raise RelayFatal(
                exc.kind, exc.message, status=exc.status, hint="check --base-url and the network"
            ) from None
        finally:
            await client.aclose()
    return [
        model_entry(model, prices.get(model), None if listed is None else model in listed)
        for model in sorted(set(prices) | (listed or set()))
    ]


def model_entry(model: str, price: Price | None, listed: bool | None) -> dict[str, Any]:
    """One row of `localize models`."""

    def per_million(entry: Price | None) -> dict[str, float] | None:
        if entry is None:
            return None
        return {"input": float(entry.input), "cached_input": float(entry.cached_input), "output": float(entry.output)}

    return {
        "id": model,
        "priced": price is not None,
        "listed": listed,
        "context_tokens": price.context_tokens if price else None,
        "max_output_tokens": price.max_output_tokens if price else None,
        "thinks": price.thinks if price else None,
        "usd_per_million": per_million(price),
        "batch_usd_per_million": per_million(price.batch if price else None),
        "as_of": price.as_of.isoformat() if price and price.as_of else None,
    }

"""`localize merge OUT1 OUT2 ... --out OUT`: combine the outputs of sharded runs.

In CI each shard usually starts from the committed outputs, so every shard directory holds
the whole catalog's results: old ones for the other shards' products, fresh ones for its own.
For each job the merge therefore takes the entry from the shard that owns the product
(recorded as "shard" in its cost report); without shard information, later inputs win.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cost import build_report, report_markdown
from .errors import InputError
from .estimate import Calibration
from .jobs import in_shard
from .lock import LOCK, Lock
from .store import (
    CALIBRATION,
    COST_JSON,
    COST_MD,
    FAILURE_FIELDS,
    FAILURES,
    REQUESTS,
    RESULT_FIELDS,
    RESULTS,
    OutHold,
    atomic_write,
    has_unfinished_run,
    iter_jsonl,
    output_line,
)


def merge_outputs(inputs: list[Path], out: Path) -> dict[str, Any]:
    """Write OUT from the inputs; returns the merged cost report. As in a single run's output,
    a failure is recorded beside a job's result but never deletes it."""
    # key → (from the shard that owns the product?, record), one table per kind
    results: dict[tuple[str, str, str], tuple[bool, dict[str, Any]]] = {}
    failures: dict[tuple[str, str, str], tuple[bool, dict[str, Any]]] = {}
    lock = Lock()
    for path in inputs:
        _require_finished(path)
        shard = _shard_of(path)
        source_lock = Lock.load(path / LOCK)
        for table, name in ((results, RESULTS), (failures, FAILURES)):
            for record in iter_jsonl(path / name):
                key = (str(record["id"]), str(record["platform"]), str(record["locale"]))
                owner = shard is not None and in_shard(key[0], shard)
                held = table.get(key)
                if held is not None and held[0] and not owner:
                    continue  # the owning shard's word stands
                table[key] = (owner, record)
                if table is results and key in source_lock.jobs:
                    lock.record(key, source_lock.jobs[key], source_lock.products.get(key[0], {}))
    hold = OutHold.take(out)  # a run writing OUT meanwhile would be overwritten
    try:
        atomic_write(out / RESULTS, "".join(output_line(results[key][1], RESULT_FIELDS) for key in sorted(results)))
        atomic_write(out / FAILURES, "".join(output_line(failures[key][1], FAILURE_FIELDS) for key in sorted(failures)))
        atomic_write(out / LOCK, "".join(lock.lines()))
        atomic_write(out / REQUESTS, "".join(_unique_lines(path / REQUESTS for path in inputs)))
        report = _merged_report(inputs, out)
        atomic_write(out / COST_JSON, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        atomic_write(out / COST_MD, report_markdown(report))
        _merge_calibration(inputs, out, report["model"])
    finally:
        hold.release()
    return report


def _shard_of(path: Path) -> tuple[int, int] | None:
    if not path.is_dir():
        raise InputError("no such output directory", where=str(path), hint="pass the --out directories of the runs")
    try:
        shard = json.loads((path / COST_JSON).read_text(encoding="utf-8")).get("shard")
    except (OSError, ValueError):
        return None
    return (int(shard[0]), int(shard[1])) if isinstance(shard, list) and len(shard) == 2 else None


def _require_finished(path: Path) -> None:
    if has_unfinished_run(path):
        raise InputError(
            "holds a run that did not finish",
            where=str(path),
            hint="run its command again (finished jobs are not re-sent), then merge",
        )


def _unique_lines(paths: Iterator[Path]) -> Iterator[str]:
    """The audit logs' lines, each once: shards that started from the same committed log
    share its history."""
    seen: set[bytes] = set()
    for path in paths:
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                digest = hashlib.sha256(raw.encode()).digest()[:12]
                if digest not in seen:
                    seen.add(digest)
                    yield raw if raw.endswith("\n") else raw + "\n"


def _merged_report(inputs: list[Path], out: Path) -> dict[str, Any]:
    """The bill of the runs that produced the inputs (each input's last run), jobs summed."""
    reports = []
    for path in inputs:
        try:
            reports.append(json.loads((path / COST_JSON).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    runs = {str(report.get("run")) for report in reports}
    jobs = {
        name: sum(int(r["jobs"].get(name, 0)) for r in reports)
        for name in ("total", "succeeded", "failed", "up_to_date")
    }
    models = sorted({str(r.get("model")) for r in reports}) or [""]
    report = build_report(
        (record for record in iter_jsonl(out / REQUESTS) if record.get("run") in runs),
        model=", ".join(models),
        jobs=jobs,
        elapsed_s=max((float(r.get("elapsed_s") or 0) for r in reports), default=0.0),
    )
    report["runs"] = sorted(runs)
    report["merged_from"] = [str(path) for path in inputs]
    return report


def _merge_calibration(inputs: list[Path], out: Path, model: str) -> None:
    merged: Calibration | None = None
    runs: set[str] = set()
    for path in inputs:
        calibration = Calibration.load(path / CALIBRATION, model=model)
        if calibration is None or calibration.run in runs:
            continue  # shards that sent nothing keep the same older calibration
        runs.add(calibration.run)
        if merged is None:
            merged = Calibration(model=model, run=calibration.run)
        for name in ("counted_input", "billed_input", "output_tokens", "answers"):
            target = getattr(merged, name)
            for key, value in getattr(calibration, name).items():
                target[key] = target.get(key, 0) + value
    if merged is not None:
        atomic_write(out / CALIBRATION, json.dumps(merged.to_json(), indent=2) + "\n")

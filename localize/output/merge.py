"""`localize merge OUT1 OUT2 ... --out OUT`: combine the outputs of sharded runs.

In CI each shard usually starts from the committed outputs, so every shard directory holds
the whole catalog's results: old ones for the other shards' products, fresh ones for its own.
For each job the merge therefore takes the entry from the shard that owns the product
(recorded as "shard" in its cost report); without shard information, later inputs win.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..cost import build_report
from ..errors import InputError
from ..planning.calibration import Calibration
from ..planning.jobs import in_shard
from ..shops import file_names
from .layout import CALIBRATION, COST_JSON, FAILURES, LOCK, REQUESTS, RESULTS, REVIEW, REVIEWS, STRINGS_FILE
from .lock import HEADER, JobKey
from .run_report import RunOrigin, write_report
from .store import EXTRA_FORMATS, STRING_PLATFORM, RunStore, atomic_write, has_unfinished_run


def merge_outputs(inputs: list[Path], out: Path) -> dict[str, Any]:
    """Write OUT from the inputs; returns the merged cost report. As in a single run's output,
    a failure is recorded beside a job's result but never deletes it."""
    # key → (from the shard that owns the product?, line), one table per file
    results: dict[JobKey, tuple[bool, str]] = {}
    failures: dict[JobKey, tuple[bool, str]] = {}
    job_locks: dict[JobKey, str] = {}
    product_locks: dict[str, str] = {}
    audit: dict[bytes, str] = {}  # each attempt once: shards that started from one log share its history
    # Decisions in the order they were made. Shards that started from one OUT share its history:
    # a line is taken as often as the shard that has it most holds it, so shared lines come once
    # and a decision repeated within a shard (approve, unapprove, approve) stays repeated.
    reviews: list[str] = []
    taken: Counter[str] = Counter()
    for path in inputs:
        _require_finished(path)
        shard = _shard_of(path)
        with RunStore(path, read_only=True) as source:
            for key, lock_line, result, failure, product_line in source.job_lines():
                owner = shard is not None and in_shard(key[0], shard)
                if _takes(results, key, owner, result):
                    if lock_line is not None and product_line is not None:
                        job_locks[key] = lock_line
                        product_locks[key[0]] = product_line
                _takes(failures, key, owner, failure)
            for line in source.audit_lines():
                audit.setdefault(hashlib.sha256(line.encode()).digest()[:16], line)
        # People's decisions: every shard's, each once, in the order they were made.
        seen: Counter[str] = Counter()
        for line in (path / REVIEWS).read_text(encoding="utf-8").splitlines() if (path / REVIEWS).is_file() else ():
            if line.strip():
                seen[line] += 1
                if seen[line] > taken[line]:
                    taken[line] += 1
                    reviews.append(line)
    formats = [fmt for fmt, name in EXTRA_FORMATS.items() if any((path / name).exists() for path in inputs)]
    with RunStore(out) as store:  # OUT held from the first file written to the last, as a run holds it
        listings = [key for key in sorted(results) if key[1] != STRING_PLATFORM]
        strings = [key for key in sorted(results) if key[1] == STRING_PLATFORM]
        products = "".join(product_locks[key] for key in sorted(product_locks))
        files = {
            RESULTS: "".join(results[key][1] for key in listings),
            FAILURES: "".join(failures[key][1] for key in sorted(failures)),
            LOCK: HEADER + products + "".join(job_locks[key] for key in sorted(job_locks)),
            REQUESTS: "".join(audit.values()),
        }
        if strings:
            files[STRINGS_FILE] = "".join(results[key][1] for key in strings)
        else:
            (out / STRINGS_FILE).unlink(missing_ok=True)  # an earlier one would no longer match
        if reviews:
            ordered = sorted(reviews, key=_decided_at)  # stable: lines of one time keep the order they came in
            files[REVIEWS] = "".join(line + "\n" for line in ordered)
        store.replace_files(files)
        report = _merged_report(inputs, (json.loads(line) for line in audit.values()))
        write_report(out, report)
        _merge_calibration(inputs, out, report["model"])
        # The same finish as a run's: the exported files (people's decisions folded in), the
        # extra formats the shards wrote (results.csv, results.json) written again.
        store.close()
        store.finish(formats=formats)
        # A merge has no settings to write a shop's import file with: those the shards left go.
        removed = sorted(name for name in {*file_names(), REVIEW} if _remove(out / name))
    return {**report, "removed": removed} if removed else report


def _decided_at(line: str) -> str:
    try:
        return str(json.loads(line).get("time") or "")
    except (ValueError, AttributeError):
        return ""


def _remove(path: Path) -> bool:
    if path.is_dir():
        shutil.rmtree(path)
        return True
    if path.exists():
        path.unlink()
        return True
    return False


def _takes(table: dict[JobKey, tuple[bool, str]], key: JobKey, owner: bool, line: str | None) -> bool:
    """Record an input's line for a job unless the owning shard's word already stands."""
    if line is None:
        return False
    held = table.get(key)
    if held is not None and held[0] and not owner:
        return False
    table[key] = (owner, line)
    return True


def _shard_of(path: Path) -> tuple[int, int] | None:
    if not path.is_dir():
        raise InputError("no such output directory", where=str(path), hint="pass the --out directories of the runs")
    return RunOrigin.read(path).shard


def _require_finished(path: Path) -> None:
    """A run's OUT whose last run finished: a typo or an empty folder would otherwise merge as
    a shard with no results, and drop that shard's work without a word."""
    if not path.is_dir():
        raise InputError("no such directory", where=str(path), hint="pass each shard run's --out directory")
    if has_unfinished_run(path):
        raise InputError(
            "holds a run that did not finish",
            where=str(path),
            hint="run its command again (finished jobs are not re-sent), then merge",
        )
    if not any((path / name).exists() for name in (RESULTS, FAILURES, STRINGS_FILE, LOCK)):
        raise InputError(
            "no run's outputs here (no results.jsonl, failures.jsonl or localize.lock)",
            where=str(path),
            hint="pass each shard run's --out directory",
        )


def _merged_report(inputs: list[Path], audit: Iterator[dict[str, Any]]) -> dict[str, Any]:
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
        (record for record in audit if record.get("run") in runs),
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

"""OUT's state: the database, and the text files it exports (results, failures, the lock, the
audit log, the batch records). The reports, calibration and import files are written beside
them by the modules that make them.

The run's state lives in SQLite (OUT/localize.db); the audit log (requests.jsonl) is appended
per attempt; results.jsonl, failures.jsonl and localize.lock are exported from the database at
the end of a run, sorted and replaced atomically, so no output is ever half-written.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import itertools
import json
import math
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checking.sanitize import safe_cell
from ..errors import InputError, OutInUse
from ..people.reviews import Decision, append_decisions, by_job, fold, read_decisions
from .audit import AuditRecord
from .layout import (
    BATCHES,
    DB,
    FAILURES,
    HOLD,
    LOCK,
    REQUESTS,
    RESULTS,
    RESULTS_CSV,
    RESULTS_JSON,
    REVIEWS,
    STRINGS_FILE,
)
from .lock import HEADER, Fingerprint, JobKey, fingerprint_fields, iter_lines, job_line, product_line
from .lock import stale_reason as lock_stale_reason
from .records import FAILURE, OPTIONAL_RESULT_FIELDS, RESULT, RESULT_FIELDS, STRING, Line, StringLine, line_of

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (setting it back at once)

# The extra formats a run writes beside results.jsonl (--format), by name.
EXTRA_FORMATS = {"csv": RESULTS_CSV, "json": RESULTS_JSON}
# A store's other texts (strings.py) are jobs on this pseudo-platform; their results go to
# strings.jsonl, not results.jsonl.
STRING_PLATFORM = "strings"


# Which job a batch line serves, and the fingerprint (Fingerprint.digest, hex) it was asked for.
LineJob = tuple[JobKey, str]
BATCH_RECORD_VERSION = 2


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch recorded in OUT/batches.jsonl and not yet collected.

    `lines` maps each line's custom_id to the jobs it serves and the fingerprints they were
    asked with, so a later run uses the answers of the jobs still wanted, whatever else in
    the catalog changed. None for a record an older version wrote (its answers are matched by
    custom_id alone)."""

    file: str  # the uploaded input file
    batch: str | None  # None: recorded before the batch was made (it may or may not exist)
    created: str  # when the file was uploaded, ISO 8601 UTC
    window: str  # the completion window asked for ("24h")
    lines: Mapping[str, tuple[LineJob, ...]] | None

    @property
    def requests(self) -> int:
        return len(self.lines) if self.lines is not None else 0

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "version": BATCH_RECORD_VERSION,
            "batch": self.batch,
            "file": self.file,
            "created": self.created,
            "window": self.window,
        }
        if self.lines is not None:
            record["requests"] = len(self.lines)
            record["lines"] = {
                line_id: [[*key, fp] for key, fp in jobs] for line_id, jobs in sorted(self.lines.items())
            }
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> BatchRecord:
        batch = record.get("batch")
        lines = record.get("lines")
        jobs: dict[str, tuple[LineJob, ...]] | None = None
        if isinstance(lines, Mapping):
            jobs = {
                str(line_id): tuple(((str(i), str(p), str(loc)), str(fp)) for i, p, loc, fp in served)
                for line_id, served in lines.items()
            }
        elif record.get("version", 1) != 1:
            raise ValueError("a record of this version lists its lines")
        return cls(
            file=_required_text(record["file"]),
            batch=str(batch) if batch else None,
            created=str(record.get("created") or ""),
            window=str(record.get("window") or "24h"),
            lines=jobs,
        )


@dataclass(frozen=True, slots=True)
class JobResult:
    """A job's valid listing: its results.jsonl line, and the inputs it was generated from
    (`fingerprint` for its lock line, `fields` for its product's)."""

    key: JobKey
    line: Line  # its results.jsonl or strings.jsonl line (records.py)
    fingerprint: Fingerprint
    fields: Mapping[str, str]
    copy: str | None = None  # its copy key (Preparer.copy_key)


@dataclass(frozen=True, slots=True)
class JobFailure:
    """A job without a valid result: why, and after how many attempts."""

    key: JobKey
    error: str
    message: str
    attempts: int
    run: str | None = None  # set with `fingerprint` on a failure an unchanged job would meet again
    fingerprint: str | None = None

    def line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.key[0],
            "platform": self.key[1],
            "locale": self.key[2],
            "error": self.error,
            "message": self.message,
            "attempts": self.attempts,
        }
        if self.fingerprint is not None:
            line.update(run=self.run, fingerprint=self.fingerprint)
        return line


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- One row per product the lock records: its localize.lock line, as written.
CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, lock_line TEXT NOT NULL) WITHOUT ROWID;
-- One row per (product, platform, locale) job: its lines in localize.lock, results.jsonl and
-- failures.jsonl as they are exported, and the digest of the inputs its result came from.
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT NOT NULL,
    platform TEXT NOT NULL,
    locale TEXT NOT NULL,
    lock_line TEXT,
    current BLOB,
    result TEXT,
    failure TEXT,
    PRIMARY KEY (id, platform, locale)
) WITHOUT ROWID;
-- A result's copy key (its lock line's "copy"): a job asking the same copy takes that listing.
CREATE TABLE IF NOT EXISTS copies (
    id TEXT NOT NULL,
    platform TEXT NOT NULL,
    locale TEXT NOT NULL,
    copy TEXT NOT NULL,
    PRIMARY KEY (id, platform, locale)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copies_by_copy ON copies (copy);
-- One row per request attempt, written before it is sent (logged = 0) and completed after.
CREATE TABLE IF NOT EXISTS attempts (
    run TEXT NOT NULL,
    id TEXT NOT NULL,
    platform TEXT NOT NULL,
    locale TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    time TEXT,
    status INTEGER,
    error TEXT,
    latency_ms REAL,
    input_tokens INTEGER,
    cached_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    logged INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    PRIMARY KEY (run, id, platform, locale, attempt)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = "1"
# Product lines a run remembers having written (its products' jobs come close together).
PRODUCTS_REMEMBERED = 4096
# Results of listings (platform != strings) or of strings (platform = strings), in file order.
_RESULTS_QUERY = (
    f"SELECT result FROM jobs WHERE result IS NOT NULL AND platform {{platform}} '{STRING_PLATFORM}'"
    " ORDER BY id, platform, locale"
)
# The same, with each job's key (to fold people's decisions in: reviews.py).
_KEYED_RESULTS_QUERY = _RESULTS_QUERY.replace("SELECT result", "SELECT id, platform, locale, result")
# The files the database is exported to, and rebuilt from when they change behind its back.
_EXPORTED = (RESULTS, FAILURES, LOCK, STRINGS_FILE)


class RunStore:
    """OUT's state, on SQLite (OUT/localize.db, WAL): which jobs are current, their results,
    failures and lock lines, and every attempt. The text files (results.jsonl, failures.jsonl,
    localize.lock, requests.jsonl) stay the committed contract: they are exported from the
    database at the end of a run, and the database is rebuilt from them when it is missing or
    they changed since (a fresh clone, a `git pull`). Only this class opens OUT's state.

    A finished job is one transaction; WAL with synchronous=NORMAL survives a killed process
    (a machine crash may lose the last moments, never corrupt the file). Of each current job,
    only its key and a 16-byte digest of its fingerprint stay in memory."""

    def __init__(self, out: Path, *, read_only: bool = False) -> None:
        """Open OUT's state; unless read_only (estimates, --check), take OUT for this run
        (OutInUse if another run holds it) and open the audit log."""
        self.out = out
        self.notices: list[str] = []  # what a run should say about OUT's state (a database rebuilt)
        self._no_held: bool | None = None  # no failure an earlier run could hold (found at the first ask)
        self._no_copies: bool | None = None  # no listing an earlier run wrote has a copy key (likewise)
        # People's decisions (OUT/reviews.jsonl), by job: few, held whole.
        self._reviews_size = _size(out / REVIEWS)
        self._reviews = by_job(read_decisions(out / REVIEWS))
        self._hold: OutHold | None = None
        self._requests: io.TextIOWrapper | None = None
        self._in_transaction = False  # inside together(): writes join its transaction
        # The product lines this run wrote last, by id (its fields' digests): a product's other
        # jobs write the same line, and need not write it again.
        self._products_written: dict[str, Mapping[str, str]] = {}
        if read_only:
            self._open_for_reading()
        else:
            self._hold = OutHold.take(out)
            _ignore_database_in_git(out)
            self._db = _connect(out / DB, on_rebuild=self.notices.append)
            self._refresh()
            with self._transaction():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('unfinished', 'a run writes OUT')")
        self._current: dict[JobKey, bytes] = {
            (row[0], row[1], row[2]): row[3]
            for row in self._db.execute(
                "SELECT id, platform, locale, current FROM jobs WHERE current IS NOT NULL AND result IS NOT NULL"
            )
        }
        # Failures on record: an up-to-date job clears its own (a write only where there is one).
        failed = self._db.execute("SELECT id, platform, locale FROM jobs WHERE failure IS NOT NULL")
        self._failed = {(row[0], row[1], row[2]) for row in failed}
        # People's listings kept though their product changed (few: only those with decisions).
        self._outdated: set[JobKey] = {
            key for key in self._reviews if (line := self._result_line(key)) is not None and line.get("outdated")
        }
        if read_only:
            return
        unlogged = self._unlogged_attempts()
        self._requests = _open_append(out / REQUESTS)
        with self._transaction():
            for record in unlogged:
                self._log(record)

    def _open_for_reading(self) -> None:
        """Readers (--check, estimates) bring a stale database up to date when no run holds
        OUT; beside a writing run they read what it committed (it refreshed the database
        itself); where nothing can be written or read (a read-only checkout without one), they
        hold the state of the text files in memory."""
        if not self.out.is_dir():
            self._db = _connect(":memory:")  # nothing here yet: an empty state, and no file made
            return
        hold = OutHold.try_take(self.out)
        if hold is not None:
            try:
                _ignore_database_in_git(self.out)
                self._db = _connect(self.out / DB, on_rebuild=self.notices.append)
                self._refresh()
                return
            except (sqlite3.Error, OSError):
                pass  # cannot write here after all: read instead
            finally:
                hold.release()
        try:
            self._db = _connect(self.out / DB, read_only=True)
            self._db.execute("SELECT 1 FROM jobs LIMIT 1")
        except sqlite3.Error:
            self._db = _connect(":memory:")
            self._refresh()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @contextmanager
    def together(self) -> Iterator[None]:
        """The writes inside, in one transaction: all of them, or (an error) none."""
        with self._transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction (or a part of the one together() holds); a full disk under the
        database is the same error as anywhere else."""
        if self._in_transaction:
            yield
            return
        self._in_transaction = True
        try:
            with self._db:
                yield
        except BaseException as exc:
            self._products_written.clear()  # (what they say was written is rolled back)
            if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):  # SQLITE_FULL
                raise OSError(errno.ENOSPC, f"No space left on device ({exc})", str(self.out / DB)) from exc
            raise
        finally:
            self._in_transaction = False

    # --- questions --------------------------------------------------------------------------

    def is_current(self, key: JobKey, fp: Fingerprint) -> bool:
        """Whether the job has a result generated from exactly these inputs."""
        return self._current.get(key) == fp.digest()

    def stale_reason(self, key: JobKey, fp: Fingerprint, fields: Mapping[str, str]) -> str | None:
        """Why this job must be (re)generated, or None when its result is up to date (--check)."""
        if self.is_current(key, fp):
            return None  # most jobs: no query, no parsing
        row = self._db.execute(
            "SELECT lock_line, result IS NOT NULL FROM jobs WHERE id = ? AND platform = ? AND locale = ?", key
        ).fetchone()
        product = self._db.execute("SELECT lock_line FROM products WHERE id = ?", (key[0],)).fetchone()
        old = Fingerprint(**fingerprint_fields(json.loads(row[0]))) if row is not None and row[0] else None
        old_fields = dict(json.loads(product[0])["fields"]) if product is not None else None
        return lock_stale_reason(old, fp, fields, old_fields, has_result=bool(row and row[1]))

    def written_copy(self, copy: str) -> dict[str, Any] | None:
        """The listing of a job that asked this very copy (Preparer.copy_key), as people left it
        (a person's correction is what its twins take), never one a reviewer sent back. A copy
        this run writes is known to the run already (Planner): a run whose OUT held no copy at
        its first ask asks no more."""
        if self._no_copies is None:
            self._no_copies = self._db.execute("SELECT 1 FROM copies LIMIT 1").fetchone() is None
        if self._no_copies:
            return None
        rows = self._db.execute(
            "SELECT id, platform, locale FROM copies JOIN jobs USING (id, platform, locale)"
            " WHERE copies.copy = ? AND jobs.result IS NOT NULL ORDER BY id LIMIT 20",
            (copy,),
        )
        for key in rows.fetchall():
            line = self.result((key[0], key[1], key[2]))
            if line is not None and "rejected" not in line:
                return line
        return None

    def held_failure(self, key: JobKey, fp: Fingerprint) -> dict[str, Any] | None:
        """The failure an earlier run met asking this job exactly as it stands now (same
        fingerprint): sending it again would most likely pay for the same failure."""
        if self._no_held is None:  # most runs: no failure to hold, and no query per job
            self._no_held = (
                self._db.execute("SELECT 1 FROM jobs WHERE failure LIKE '%\"fingerprint\"%' LIMIT 1").fetchone() is None
            )
        if self._no_held:
            return None
        row = self._db.execute(
            "SELECT failure FROM jobs WHERE id = ? AND platform = ? AND locale = ? AND failure IS NOT NULL", key
        ).fetchone()
        if row is None:
            return None
        failure: dict[str, Any] = json.loads(row[0])
        return failure if failure.get("fingerprint") == fp.digest().hex() else None

    # --- what a run does --------------------------------------------------------------------

    def mark_current(self, key: JobKey) -> None:
        """An up-to-date job: clear a failure an earlier run recorded for it, and the outdated
        mark of a person's listing whose product is as it was again."""
        if key in self._failed:
            self._failed.discard(key)
            self._clear_failure(key)
        if key in self._outdated:
            self._set_outdated(key, False)

    def _result_line(self, key: JobKey) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT result FROM jobs WHERE id = ? AND platform = ? AND locale = ? AND result IS NOT NULL", key
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_outdated(self, key: JobKey) -> None:
        """A person's listing whose product changed since: kept, and marked in results.jsonl."""
        if key not in self._outdated:
            self._set_outdated(key, True)

    def _set_outdated(self, key: JobKey, outdated: bool) -> None:
        line = self._result_line(key)
        if line is None:
            return
        line.pop("outdated", None)
        if outdated:
            line["outdated"] = True
            self._outdated.add(key)
        else:
            self._outdated.discard(key)
        with self._transaction():
            self._db.execute(
                "UPDATE jobs SET result = ? WHERE id = ? AND platform = ? AND locale = ?",
                (line_of(line, RESULT, strict=False), *key),
            )

    def _clear_failure(self, key: JobKey) -> None:
        with self._transaction():
            self._db.execute("UPDATE jobs SET failure = NULL WHERE id = ? AND platform = ? AND locale = ?", key)

    def log_sent(self, attempts: Iterable[Mapping[str, Any]]) -> None:
        """Attempts about to go out (run, job, attempt number), in one transaction: if the
        process is killed before they end, the next run logs them as possibly billed instead
        of forgetting them."""
        with self._transaction():
            for attempt in attempts:
                self._insert_attempt(attempt, logged=False)

    def log_attempt(self, record: Mapping[str, Any]) -> None:
        """One request attempt, as it ends: a line in the audit log, and its row completed."""
        with self._transaction():
            self._log(record)

    def _log(self, record: Mapping[str, Any]) -> None:
        """The audit line written through, then the attempt's row (inside a transaction)."""
        assert self._requests is not None
        line = _line(record)
        self._requests.write(line)
        self._requests.flush()
        self._insert_attempt(record, logged=True, text=line[:-1])

    def _insert_attempt(self, record: Mapping[str, Any], *, logged: bool, line: int = 0, text: str = "") -> None:
        reported = record.get("usage")
        usage = reported if isinstance(reported, dict) else {}
        self._db.execute(
            "INSERT OR REPLACE INTO attempts (run, id, platform, locale, attempt, time, status, error,"
            " latency_ms, input_tokens, cached_tokens, output_tokens, cost_usd, logged, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *_attempt_key(record, line),
                _text(record.get("time")),
                _number(record.get("status")),
                _text(record.get("error")),
                _number(record.get("latency_ms")),
                _number(usage.get("input")),
                _number(usage.get("cached_input")),
                _number(usage.get("output")),
                _number(record.get("cost_usd")),
                int(logged),
                text or _AS_WRITTEN.encode(dict(record)),
            ),
        )

    def record_result(self, result: JobResult, *, attempt: Mapping[str, Any] | None = None) -> None:
        """A finished job with a valid listing, in one transaction with the attempt that
        answered it (logged as log_attempt does): it replaces the job's result, lock line and
        failure."""
        self.record_results([(result, attempt)])

    def record_results(self, results: Iterable[tuple[JobResult, Mapping[str, Any] | None]]) -> None:
        """Finished jobs, each as record_result records it, all in one transaction (the answers
        of one turn of the event loop: sending.group_commit)."""
        with self._transaction():
            for result, attempt in results:
                self._record_result(result, attempt)

    def _record_result(self, result: JobResult, attempt: Mapping[str, Any] | None) -> None:
        key = result.key
        if attempt is not None:
            self._log(attempt)
        if self._products_written.get(key[0]) != result.fields:
            if len(self._products_written) >= PRODUCTS_REMEMBERED:
                self._products_written.clear()
            self._db.execute(
                "INSERT OR REPLACE INTO products (id, lock_line) VALUES (?, ?)",
                (key[0], product_line(key[0], result.fields)),
            )
            self._products_written[key[0]] = result.fields
        self._db.execute(
            "INSERT OR REPLACE INTO jobs (id, platform, locale, lock_line, current, result, failure)"
            " VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (
                *key,
                job_line(key, result.fingerprint, result.copy),
                result.fingerprint.digest(),
                line_of(result.line.as_json(), STRING if isinstance(result.line, StringLine) else RESULT),
            ),
        )
        if result.copy:
            self._db.execute("INSERT OR REPLACE INTO copies VALUES (?, ?, ?, ?)", (*key, result.copy))
        else:
            self._db.execute("DELETE FROM copies WHERE id = ? AND platform = ? AND locale = ?", key)

    def record_quality(self, key: JobKey, quality: Mapping[str, Any], *, attempt: Mapping[str, Any]) -> None:
        """The judge's quality of a listing, on its result line, in one transaction with the
        attempt that judged it (a result replaced since, by a new listing, keeps none)."""
        with self._transaction():
            self._log(attempt)
            line = self._result_line(key)
            if line is None:
                return
            line["quality"] = dict(quality)
            self._db.execute(
                "UPDATE jobs SET result = ? WHERE id = ? AND platform = ? AND locale = ?",
                (line_of(line, RESULT), *key),
            )

    def record_failure(self, failure: JobFailure, *, attempt: Mapping[str, Any] | None = None) -> None:
        """A finished job without a valid result, in one transaction with its last answered
        attempt: recorded beside an earlier result, never instead of it."""
        with self._transaction():
            if attempt is not None:
                self._log(attempt)
            self._db.execute(
                "INSERT INTO jobs (id, platform, locale, failure) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id, platform, locale) DO UPDATE SET failure = excluded.failure",
                (*failure.key, line_of(failure.line(), FAILURE)),
            )

    def close(self) -> None:
        """Flush and close the audit log (a full disk raises here, once it is closed)."""
        if self._requests is not None and not self._requests.closed:
            try:
                self._requests.flush()
                os.fsync(self._requests.fileno())
            finally:
                _close_quietly(self._requests)

    def release(self) -> None:
        """Close the database and let other runs have OUT (after the final files are written).
        Safe to call again."""
        self._db.close()
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    def finish(self, *, formats: Iterable[str]) -> None:
        """Export results.jsonl, failures.jsonl and the lock, each sorted and replaced
        atomically, then the extra formats; the database remembers what it exported. A crash
        in here is repaired by the next run, which exports again."""
        rows = self._db.execute
        with _atomic(self.out / RESULTS) as written:
            for job_id, platform, locale, line in rows(_KEYED_RESULTS_QUERY.format(platform="!=")):
                written.write(self._folded((job_id, platform, locale), line))
        if rows(_RESULTS_QUERY.format(platform="=") + " LIMIT 1").fetchone() is not None:
            with _atomic(self.out / STRINGS_FILE) as written:
                for job_id, platform, locale, line in rows(_KEYED_RESULTS_QUERY.format(platform="=")):
                    written.write(self._folded((job_id, platform, locale), line))
        else:
            (self.out / STRINGS_FILE).unlink(missing_ok=True)
        with _atomic(self.out / FAILURES) as written:
            for (line,) in rows("SELECT failure FROM jobs WHERE failure IS NOT NULL ORDER BY id, platform, locale"):
                written.write(line)
        with _atomic(self.out / LOCK) as written:
            written.write(HEADER)
            for (line,) in rows("SELECT lock_line FROM products ORDER BY id"):
                written.write(line)
            for (line,) in rows("SELECT lock_line FROM jobs WHERE lock_line IS NOT NULL ORDER BY id, platform, locale"):
                written.write(line)
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('exported', ?)", (_signature(self.out),))
            self._db.execute("DELETE FROM meta WHERE key = 'unfinished'")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('history', ?)", (_history_signature(self.out),))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('reviews', ?)", (str(_size(self.out / REVIEWS)),))
        formats = set(formats)
        # The extra formats are written when asked for and removed when not: a results.csv an
        # earlier run left would no longer match results.jsonl.
        if "csv" in formats:
            atomic_write(self.out / RESULTS_CSV, results_csv(self.results()))
        else:
            (self.out / RESULTS_CSV).unlink(missing_ok=True)
        if "json" in formats:
            records = list(self.results())
            atomic_write(self.out / RESULTS_JSON, json.dumps(records, ensure_ascii=False, indent=2) + "\n")
        else:
            (self.out / RESULTS_JSON).unlink(missing_ok=True)

    def attempts(self, run: str) -> Iterator[dict[str, Any]]:
        """The audit records of one run's finished attempts (its requests.jsonl lines)."""
        query = "SELECT record FROM attempts WHERE run = ? AND logged = 1 ORDER BY time, id, platform, locale, attempt"
        return (json.loads(text) for (text,) in self._db.execute(query, (run,)))

    def billed(self) -> tuple[float, int]:
        """What OUT's runs cost in all (the audit log's sum, every run's every billed attempt)
        and how many runs logged one."""
        query = "SELECT COALESCE(SUM(cost_usd), 0), COUNT(DISTINCT run) FROM attempts WHERE logged = 1"
        cost, runs = self._db.execute(query).fetchone()
        return float(cost), int(runs)

    def runs(self) -> list[str]:
        """The runs the audit log knows, oldest first."""
        query = "SELECT run FROM attempts WHERE logged = 1 GROUP BY run ORDER BY MIN(time), run"
        return [run for (run,) in self._db.execute(query)]

    def results(self) -> Iterator[dict[str, Any]]:
        """Every listing's result (its results.jsonl line, people's decisions folded in), in
        the file's order."""
        for job_id, platform, locale, line in self._db.execute(_KEYED_RESULTS_QUERY.format(platform="!=")):
            yield json.loads(self._folded((job_id, platform, locale), line))

    def edits(self) -> Iterator[tuple[JobKey, Decision]]:
        """Each job people edited, with its last edit (its line in reviews.jsonl)."""
        for key, decisions in self._reviews.items():
            edits = [decision for decision in decisions if decision.action == "edit"]
            if edits:
                yield key, edits[-1]

    def reviewed(self, key: JobKey) -> dict[str, Any] | None:
        """A listing's result as people left it (None without a result or a decision)."""
        return self.result(key) if key in self._reviews else None

    def decide(self, decisions: Iterable[Decision], *, export: bool = False) -> int:
        """Record people's decisions (reviews.jsonl) and fold them into the results from now on;
        with `export` (outside a run), write the exported files again at once, in the formats
        OUT holds (`localize approve`)."""
        decisions = list(decisions)
        self.sync_reviews()
        count = append_decisions(self.out / REVIEWS, decisions)
        for decision in decisions:
            self._reviews.setdefault(decision.key, []).append(decision)
        self._reviews_size = _size(self.out / REVIEWS)
        if export:
            self.export()
        return count

    def export(self) -> None:
        """Write the exported files again, in the formats OUT holds (outside a run)."""
        self.close()
        self.finish(formats=[fmt for fmt, name in EXTRA_FORMATS.items() if (self.out / name).exists()])

    def sync_reviews(self) -> None:
        """Read reviews.jsonl again if another process added to it since (a run's
        `regenerated` lines, `localize approve` beside the review server)."""
        if _size(self.out / REVIEWS) != self._reviews_size:
            self._reviews_size = _size(self.out / REVIEWS)
            self._reviews = by_job(read_decisions(self.out / REVIEWS))

    def reviews_unexported(self) -> bool:
        """Whether reviews.jsonl holds decisions the exported files do not show yet (the review
        server writes them a moment after the last decision; a crash before that leaves them
        here, for the next export)."""
        return str(_size(self.out / REVIEWS)) != (self._meta("reviews") or "0")

    def replace_files(self, files: Mapping[str, str]) -> None:
        """Write OUT's text files whole (a merge: name → text) and rebuild the state from them,
        OUT held throughout."""
        self.close()  # the audit log's handle: its file is replaced
        for name, text in files.items():
            atomic_write(self.out / name, text)
        self._import_text_files()
        self._import_history()
        self._reviews_size = _size(self.out / REVIEWS)
        self._reviews = by_job(read_decisions(self.out / REVIEWS))
        if self._hold is not None:
            self._requests = _open_append(self.out / REQUESTS)

    def locales(self) -> list[str]:
        """The locale tags OUT holds results in."""
        return [str(row[0]) for row in self._db.execute("SELECT DISTINCT locale FROM jobs WHERE result IS NOT NULL")]

    def twins(self, key: JobKey) -> list[str]:
        """The products whose listing on the same platform and locale is the same copy as this
        one's (reused from it, or from the one it was reused from)."""
        product_id, platform, locale = key
        own = self._result_line(key) or {}
        source = str(own.get("reused_from") or product_id)
        query = (
            "SELECT id FROM jobs WHERE platform = ? AND locale = ? AND result IS NOT NULL AND id != ?"
            " AND (id = ? OR json_extract(result, '$.reused_from') = ?) ORDER BY id"
        )
        return [str(row[0]) for row in self._db.execute(query, (platform, locale, product_id, source, source))]

    def regenerated(self, key: JobKey) -> None:
        """A run replaced a listing people had decided on: their decisions no longer apply to it."""
        self.decide([Decision(*key, "regenerated")])

    def result(self, key: JobKey) -> dict[str, Any] | None:
        """One listing's result, people's decisions folded in (None without one)."""
        line = self._result_line(key)
        if line is None or key not in self._reviews:
            return line
        return fold(line, self._reviews[key])

    def _folded(self, key: JobKey, line: str) -> str:
        decisions = self._reviews.get(key)
        if decisions is None:
            return line
        return line_of(fold(json.loads(line), decisions), STRING if key[1] == STRING_PLATFORM else RESULT, strict=False)

    def string_results(self) -> Iterator[dict[str, Any]]:
        """Every string's translation (its strings.jsonl line, people's decisions folded in),
        in the file's order."""
        for job_id, platform, locale, line in self._db.execute(_KEYED_RESULTS_QUERY.format(platform="=")):
            yield json.loads(self._folded((job_id, platform, locale), line))

    def reviewable(self) -> Iterator[dict[str, Any]]:
        """What a person reviews and approves: every listing, then every store string."""
        return itertools.chain(self.results(), self.string_results())

    def failures(self) -> Iterator[dict[str, Any]]:
        """Every job's recorded failure (its failures.jsonl line), in the file's order."""
        query = "SELECT failure FROM jobs WHERE failure IS NOT NULL ORDER BY id, platform, locale"
        return (json.loads(line) for (line,) in self._db.execute(query))

    def job_lines(self) -> Iterator[tuple[JobKey, str | None, str | None, str | None, str | None]]:
        """Per job: its key, then its lines in localize.lock, results.jsonl and failures.jsonl,
        and its product's lock line (None where it has none), in the files' order."""
        query = (
            "SELECT jobs.id, platform, locale, jobs.lock_line, result, failure, products.lock_line"
            " FROM jobs LEFT JOIN products ON products.id = jobs.id ORDER BY jobs.id, platform, locale"
        )
        for row in self._db.execute(query):
            yield (row[0], row[1], row[2]), row[3], row[4], row[5], row[6]

    def audit_lines(self) -> Iterator[str]:
        """Every logged attempt as its requests.jsonl line, oldest first."""
        query = "SELECT record FROM attempts WHERE logged = 1 ORDER BY time, run, id, platform, locale, attempt"
        return (_line(json.loads(text)) for (text,) in self._db.execute(query))

    # --- batches ------------------------------------------------------------------------------

    def batch_records(self) -> list[BatchRecord]:
        """The batches recorded in OUT/batches.jsonl and not yet collected, oldest first; a line
        that is not a record is an error naming it (a hand edit or a bad merge)."""
        path = self.out / BATCHES
        records = []
        for number, record in enumerate(iter_jsonl(path, strict=True), start=1):
            try:
                records.append(BatchRecord.from_json(record))
            except (KeyError, TypeError, ValueError):
                raise InputError(
                    "not a batch record this version can read",
                    where=f"{path}:{number}",
                    hint="restore the file from git; a batch it named can be collected by its id in the relay's"
                    " console",
                ) from None
        return records

    def record_batch(self, record: BatchRecord) -> None:
        """A batch's record, replacing any of the same input file: written (and synced) before
        the next step, so a run that stops between uploading, making the batch and collecting
        it leaves what the next run needs to collect it instead of paying again."""
        kept = [old.to_json() for old in self.batch_records() if old.file != record.file]
        atomic_write(self.out / BATCHES, "".join(_line(line) for line in [*kept, record.to_json()]))

    def forget_batch(self, file_id: str) -> None:
        """A batch collected (or an input file no batch was made of): no longer pending."""
        kept = [old.to_json() for old in self.batch_records() if old.file != file_id]
        if kept:
            atomic_write(self.out / BATCHES, "".join(_line(line) for line in kept))
        else:
            (self.out / BATCHES).unlink(missing_ok=True)

    def batch_logged(self, batch_id: str) -> set[JobKey]:
        """The jobs whose answer from this batch is already in the audit log (a run that
        collected it and stopped before forgetting it): not to be settled or counted again."""
        query = (
            "SELECT DISTINCT id, platform, locale FROM attempts"
            " WHERE logged = 1 AND json_extract(record, '$.batch') = ?"
        )
        return {(row[0], row[1], row[2]) for row in self._db.execute(query, (batch_id,))}

    # --- the database and the text files -----------------------------------------------------

    def _refresh(self) -> None:
        """Rebuild the state from the text files when they are not what the database last
        exported (or it never did), and the attempts from the audit log when it grew or changed
        since (a killed run, a `git pull`)."""
        if self._meta("exported") != _signature(self.out):
            self._import_text_files()
        if self._meta("history") != _history_signature(self.out):
            self._import_history()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _import_text_files(self) -> None:
        self._products_written.clear()  # (the lines it says were written are replaced)
        with self._transaction():
            self._db.execute("DELETE FROM products")
            self._db.execute("DELETE FROM jobs")
            self._db.execute("DELETE FROM copies")
            for raw, entry in iter_lines(self.out / LOCK):
                if "product" in entry:
                    self._db.execute("INSERT OR REPLACE INTO products VALUES (?, ?)", (str(entry["product"]), raw))
                else:
                    key = (str(entry["job"][0]), str(entry["job"][1]), str(entry["job"][2]))
                    self._db.execute(
                        "INSERT OR REPLACE INTO jobs (id, platform, locale, lock_line, current) VALUES (?, ?, ?, ?, ?)",
                        (*key, raw, Fingerprint(**fingerprint_fields(entry)).digest()),
                    )
                    if entry.get("copy"):
                        self._db.execute(
                            "INSERT OR REPLACE INTO copies VALUES (?, ?, ?, ?)", (*key, str(entry["copy"]))
                        )
            for name, column, fields in (
                (RESULTS, "result", RESULT),
                (STRINGS_FILE, "result", STRING),
                (FAILURES, "failure", FAILURE),
            ):
                for number, record in enumerate(iter_jsonl(self.out / name, strict=True), start=1):
                    self._db.execute(
                        f"INSERT INTO jobs (id, platform, locale, {column}) VALUES (?, ?, ?, ?)"
                        f" ON CONFLICT (id, platform, locale) DO UPDATE SET {column} = excluded.{column}",
                        (*_record_key(record, self.out / name, number), line_of(record, fields, strict=False)),
                    )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('exported', ?)", (_signature(self.out),))

    def _import_history(self) -> None:
        """The attempts of the audit log, as it now is (attempts sent but never logged stay).
        A line that names no job (an older or hand-edited log) is kept under its line number."""
        with self._transaction():
            self._db.execute("DELETE FROM attempts WHERE logged = 1")
            for number, record in enumerate(iter_jsonl(self.out / REQUESTS), start=1):
                self._insert_attempt(record, logged=True, line=number)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('history', ?)", (_history_signature(self.out),))

    def _unlogged_attempts(self) -> list[dict[str, Any]]:
        """Attempts a killed run sent but never logged, as audit records: the relay may have
        billed them, and the report must say so."""
        return [
            AuditRecord.killed(json.loads(text)).to_json()
            for (text,) in self._db.execute("SELECT record FROM attempts WHERE logged = 0 ORDER BY time")
        ]


def _connect(
    path: Path | str, *, read_only: bool = False, on_rebuild: Callable[[str], None] | None = None
) -> sqlite3.Connection:
    if read_only:  # beside a writing run: read what it has committed, write nothing
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    try:
        return _open_database(path)
    except _NewerSchema as newer:
        raise InputError(
            f"written by a newer localize (state schema {newer.version}; this version reads {SCHEMA_VERSION})",
            where=str(path),
            hint="upgrade localize; or move the file aside, and it is rebuilt from the text files "
            "(only attempts a killed newer run had not logged yet would be lost)",
        ) from None
    except sqlite3.DatabaseError as exc:
        if path == ":memory:":
            raise
        # Damaged, or not a database: it is only a cache of the text files, so start it
        # again from them (said once, so a recurring fault is seen).
        for stale in Path(path).parent.glob(Path(path).name + "*"):
            stale.unlink()
        if on_rebuild is not None:
            on_rebuild(f"note: {path} could not be used ({exc}): rebuilt from the text files")
        return _open_database(path)


class _NewerSchema(Exception):
    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.version = version


def _open_database(path: Path | str) -> sqlite3.Connection:
    # One connection may serve several threads in turn (the review server's, under its lock).
    db = sqlite3.connect(path, timeout=30, check_same_thread=False)
    try:
        if path != ":memory:":
            # A damaged file may open and fail only later, at export, after the run has paid:
            # its structure is checked first (about 0.15 s for a 450 MB state of 100,000 jobs).
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"damaged: {verdict}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL: a killed process loses nothing committed
        db.executescript(_SCHEMA)
        with db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except BaseException:
        db.close()
        raise
    if version != SCHEMA_VERSION:
        db.close()
        if str(version).isdigit() and int(version) > int(SCHEMA_VERSION):
            raise _NewerSchema(str(version))
        raise sqlite3.DatabaseError(f"state schema {version!r}")
    return db


def has_unfinished_run(out: Path) -> bool:
    """Whether OUT holds a run that did not get to export its files (killed, or still going)."""
    if not (out / DB).exists():
        return False
    try:
        db = _connect(out / DB, read_only=True)
        try:
            return db.execute("SELECT 1 FROM meta WHERE key = 'unfinished'").fetchone() is not None
        finally:
            db.close()
    except sqlite3.Error:
        return False


def _ignore_database_in_git(out: Path) -> None:
    """OUT is committed for its text files; the database is a cache rebuilt from them."""
    ignore = out / ".gitignore"
    if not ignore.exists():
        ignore.write_text(f"# localize's working state, rebuilt from the text files when missing\n{DB}*\n")


def _required_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _size(path: Path) -> int:
    """A file's size in bytes (0 when there is none): an append-only log's progress."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _signature(out: Path) -> str:
    """What the exported text files hold now: a hash of each (a changed file changes it)."""
    parts = []
    for name in _EXPORTED:
        path = out / name
        digest = hashlib.sha256()
        if path.exists():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        parts.append(f"{name}:{digest.hexdigest() if path.exists() else '-'}")
    return " ".join(parts)


class OutHold:
    """An exclusive hold on OUT for one writing run: an advisory lock on OUT/.localize-run,
    which the OS drops when the process ends however it ends (kill -9 included), so a stale
    hold never blocks the next run. Readers (--check, estimate, review) do not take it."""

    NAME = HOLD

    def __init__(self, handle: io.TextIOWrapper) -> None:
        self._handle = handle

    @classmethod
    def take(cls, out: Path) -> OutHold:
        out.mkdir(parents=True, exist_ok=True)
        handle = (out / cls.NAME).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutInUse(out, holder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{_command()}, pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
        handle.flush()
        return cls(handle)

    @classmethod
    def try_take(cls, out: Path) -> OutHold | None:
        """The hold, or None when a run has it (or OUT cannot be written: a read-only checkout)."""
        try:
            return cls.take(out)
        except (OutInUse, OSError):
            return None

    def release(self) -> None:
        """Empty the file again (it is committed with OUT, and must not change run to run)."""
        try:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.flush()
        except OSError:
            pass  # a full disk: the content is only a courtesy
        finally:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            _close_quietly(self._handle)


def _command() -> str:
    """Which localize command holds OUT, for the one another command meets (`localize review
    --serve`, `localize run`...), without its arguments (they may hold paths or a URL)."""
    args = [arg for arg in sys.argv[1:3] if not arg.startswith("-")][:1]
    serving = " --serve" if "--serve" in sys.argv else ""
    return f"localize {args[0]}{serving}" if args else "localize"


def _attempt_key(record: Mapping[str, Any], line: int) -> tuple[str, str, str, str, int]:
    """(run, id, platform, locale, attempt); a record that names no job attempt is keyed by its
    line in the audit log instead (a negative attempt number)."""
    run, job_id, platform = record.get("run"), record.get("id"), record.get("platform")
    locale, attempt = record.get("locale"), record.get("attempt")
    if (
        isinstance(run, str)
        and isinstance(job_id, str)
        and isinstance(platform, str)
        and isinstance(locale, str)
        and type(attempt) is int
    ):
        return (run, job_id, platform, locale, attempt)
    return (str(run or ""), "", "", "", -line)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | int | None:
    """A figure for the attempts table's columns (the record itself keeps what was logged)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    return value if math.isfinite(value) else None


def _history_signature(out: Path) -> str:
    """The audit log's size and modification time: it only grows while runs append to it."""
    try:
        stat = (out / REQUESTS).stat()
    except OSError:
        return "-"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _record_key(record: Mapping[str, Any], path: Path, number: int) -> JobKey:
    """A results or failures line's job, or one error naming the line that has none."""
    key = [record.get(name) for name in ("id", "platform", "locale")]
    if not all(isinstance(part, str) and part for part in key):
        names = ("id", "platform", "locale")
        missing = [name for name, part in zip(names, key, strict=True) if not isinstance(part, str) or not part]
        raise InputError(
            f"the line names no job (no {', '.join(missing)})",
            where=f"{path}:{number}",
            hint="mend the line (every line carries id, platform and locale) or restore the file from git",
        )
    return (str(key[0]), str(key[1]), str(key[2]))


def _open_append(path: Path) -> io.TextIOWrapper:
    """Open for appending; a torn last line (a killed writer) is ended first, so the next
    record starts on a line of its own."""
    if path.exists() and path.stat().st_size:
        with path.open("rb") as existing:
            existing.seek(-1, os.SEEK_END)
            torn = existing.read(1) != b"\n"
        if torn:
            with path.open("ab") as repair:
                repair.write(b"\n")
    return path.open("a", encoding="utf-8")


def iter_jsonl(path: Path, *, strict: bool = False) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file, skipping a torn last line (and anything but a regular
    file). `strict`: any other line that is not a JSON object is an error naming it."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        lines = iter(enumerate(handle, start=1))
        for number, raw in lines:
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):
                record = None
            if isinstance(record, dict):
                yield record
            elif strict and raw.strip() and (raw.endswith("\n") or next(lines, None) is not None):
                raise InputError(
                    "not a JSON object on this line",
                    where=f"{path}:{number}",
                    hint=_conflict_hint(raw) or "mend or remove the line (the file is JSON lines, one object each)",
                )


def _conflict_hint(raw: str) -> str | None:
    """What to do about a line git left in a merge conflict."""
    if raw.startswith(("<<<<<<<", "=======", ">>>>>>>", "|||||||")):
        return (
            "the file holds git conflict markers: resolve the conflict (keep both sides' lines, "
            "drop the marker lines) or take one side with `git checkout --theirs FILE`"
        )
    return None


def results_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """Results as CSV, safe to open in a spreadsheet: lists joined by " | ", formula-like
    cells neutralised with a leading apostrophe (OWASP CSV injection advice)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_FIELDS + OPTIONAL_RESULT_FIELDS)
    for record in records:
        writer.writerow([_csv_cell(record.get(name)) for name in RESULT_FIELDS + OPTIONAL_RESULT_FIELDS])
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " | ".join(str(item) for item in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    return safe_cell(value)


def atomic_write(path: Path, text: str) -> None:
    with _atomic(path) as out:
        out.write(text)


class _atomic:
    """Write to a temp file beside `path`, fsync, then rename over it."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> io.TextIOWrapper:
        fd, name = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=self._path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it 0600; outputs get the usual mode
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self._file

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        try:
            if exc_type is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if exc_type is None:
                os.replace(self._tmp, self._path)
        except BaseException:
            # A full disk fails the flush or the close: leave no hidden temp file filling it.
            _close_quietly(self._file)
            self._tmp.unlink(missing_ok=True)
            raise
        if exc_type is not None:
            self._tmp.unlink(missing_ok=True)
            return
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _close_quietly(handle: io.TextIOWrapper) -> None:
    try:
        handle.close()
    except OSError:
        pass


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once, not per line


def _line(record: Mapping[str, Any]) -> str:
    return _COMPACT.encode(record) + "\n"


_AS_WRITTEN = json.JSONEncoder(ensure_ascii=False)  # json.dumps(..., ensure_ascii=False), built once

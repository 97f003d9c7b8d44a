"""What a run writes: the audit log, the job journal, and the final sorted files.

Lines are appended as things happen (requests.jsonl per attempt, journal.jsonl per finished
job); the final files are built from them at the end, sorted, and replaced atomically, so no
output is ever half-written. Sorting keeps only keys and file offsets in memory.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import OutInUse
from .lock import HEADER, LOCK, Fingerprint, JobKey, Lock, fingerprint_fields, iter_entries, job_line, product_line

REQUESTS = "requests.jsonl"
JOURNAL = "journal.jsonl"
RESULTS = "results.jsonl"
FAILURES = "failures.jsonl"
COST_JSON = "cost_report.json"
COST_MD = "cost_report.md"
CALIBRATION = "calibration.json"
RATE = "rate.json"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (setting it back at once)
SYNC_EVERY_S = 0.25  # fsync the logs at most this often: a machine crash loses no more

RESULT_FIELDS = (
    "id",
    "sku",
    "platform",
    "locale",
    "title",
    "description",
    "bullets",
    "seo_tags",
    "model",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "warnings",
)
# A platform's extra answer fields (Shopify's seo_title, seo_description), only where present.
OPTIONAL_RESULT_FIELDS = ("extra",)
FAILURE_FIELDS = ("id", "platform", "locale", "error", "message", "attempts")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class RunStore:
    """OUT for one run: which jobs are current (from the lock, the results and the journal of
    a run that was killed), the append-only logs, and the final files built from them.

    Only 16 bytes per current job stay in memory: new lock entries go to the journal and are
    merged into the lock file at the end, so a 100k-job run stays flat."""

    def __init__(self, out: Path, *, read_only: bool = False) -> None:
        """Load OUT's state; unless read_only (estimates), take OUT for this run (OutInUse
        if another run holds it) and open its logs."""
        self.out = out
        self._hold: OutHold | None = None
        if not read_only:
            self._hold = OutHold.take(out)
        with_results = {_key(record) for record in iter_jsonl(out / RESULTS)}
        self._current: dict[JobKey, bytes] = {}  # job → Fingerprint.digest(), for jobs with a result
        for entry in iter_entries(out / LOCK):
            if "job" in entry:
                key = (str(entry["job"][0]), str(entry["job"][1]), str(entry["job"][2]))
                if key in with_results:
                    self._current[key] = Fingerprint(**fingerprint_fields(entry)).digest()
        del with_results
        # Jobs with a failure on record: if one turns out to be up to date, its record is cleared.
        self._failed = {_key(record) for record in iter_jsonl(out / FAILURES)}
        for record in iter_jsonl(out / JOURNAL):  # a run that did not get to finish
            key = _key(record)
            if record.get("type") == "result":
                self._current[key] = Fingerprint(**record["lock"]).digest()
                self._failed.discard(key)
            elif record.get("type") == "failure":
                self._current.pop(key, None)
                self._failed.add(key)
        if read_only:
            return
        out.mkdir(parents=True, exist_ok=True)
        unlogged = _unlogged_attempts(out)
        self._requests = _open_append(out / REQUESTS)
        for record in unlogged:
            self._requests.write(_line(record))
        self._requests.flush()
        self._journal = _open_append(out / JOURNAL)
        self._last_sync = time.monotonic()

    def is_current(self, key: JobKey, fp: Fingerprint) -> bool:
        """Whether the job has a result generated from exactly these inputs."""
        return self._current.get(key) == fp.digest()

    def mark_current(self, key: JobKey) -> None:
        """An up-to-date job: clear a failure an earlier run recorded for it."""
        if key in self._failed:
            self._failed.discard(key)
            self.log_job({"type": "current", "id": key[0], "platform": key[1], "locale": key[2]})

    def log_sent(self, attempt: Mapping[str, Any]) -> None:
        """An attempt about to go out (run, job, attempt number): if the process is killed
        before it ends, the next run logs it as possibly billed instead of forgetting it."""
        self._journal.write(_line({"type": "sent", **attempt}))
        self._journal.flush()

    def log_attempt(self, record: Mapping[str, Any]) -> None:
        """One request attempt, as it ends."""
        self._requests.write(_line(record))
        self._requests.flush()

    def log_job(self, record: Mapping[str, Any]) -> None:
        """A finished job: {"type": "result" | "failure", ...}; a result carries its "lock"
        fingerprint and product "fields" digests. Written through to the OS at once, so a
        killed process loses nothing; fsync'd in batches, so the disk is not the bottleneck."""
        self._journal.write(_line(record))
        self._journal.flush()
        now = time.monotonic()
        if now - self._last_sync >= SYNC_EVERY_S:
            os.fsync(self._journal.fileno())
            os.fsync(self._requests.fileno())
            self._last_sync = now

    def close(self) -> None:
        """Flush and close both logs; the first error (a full disk) is raised once both are closed."""
        failure: OSError | None = None
        for handle in (self._requests, self._journal):
            if handle.closed:
                continue
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                failure = failure or exc
            finally:
                _close_quietly(handle)
        if failure is not None:
            raise failure

    def release(self) -> None:
        """Let other runs have OUT (after the final files are written)."""
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    def finish(self, *, formats: Iterable[str]) -> None:
        """Fold the journal into results.jsonl, failures.jsonl and the lock (each sorted and
        replaced atomically), write the extra formats, then empty the journal. Call after
        close(). A crash anywhere in here is repaired by the next run replaying the journal."""
        _merge(self.out)
        _merge_lock(self.out)
        formats = set(formats)
        if "csv" in formats:
            atomic_write(self.out / "results.csv", results_csv(iter_jsonl(self.out / RESULTS)))
        if "json" in formats:
            records = list(iter_jsonl(self.out / RESULTS))
            atomic_write(self.out / "results.json", json.dumps(records, ensure_ascii=False, indent=2) + "\n")
        with (self.out / JOURNAL).open("w") as journal:
            os.fsync(journal.fileno())


class OutHold:
    """An exclusive hold on OUT for one writing run: an advisory lock on OUT/.localize-run,
    which the OS drops when the process ends however it ends (kill -9 included), so a stale
    hold never blocks the next run. Readers (--check, estimate, review) do not take it."""

    NAME = ".localize-run"

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
        handle.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
        handle.flush()
        return cls(handle)

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


def load_lock(out: Path) -> tuple[Lock, set[JobKey]]:
    """The whole lock (with any unfinished run's journal applied) and the jobs with results:
    what --check needs to say why a job is stale."""
    lock = Lock.load(out / LOCK)
    results = {_key(record) for record in iter_jsonl(out / RESULTS)}
    for record in iter_jsonl(out / JOURNAL):
        key = _key(record)
        if record.get("type") == "result":
            results.add(key)
            lock.record(key, Fingerprint(**record["lock"]), record["fields"])
    return lock, results


def _merge_lock(out: Path) -> None:
    """The lock from its old file and the journal, sorted; only offsets are held in memory.
    Old lines are copied as they are, so an unchanged lock is rewritten byte for byte."""
    sources = [out / LOCK, out / JOURNAL]
    products: dict[str, int] = {}  # id → _pack(source, offset, length)
    jobs: dict[str, int] = {}  # _sort_key(job) → _pack(source, offset, length)
    for number, offset, length, entry in _scan(sources):
        where = _pack(number, offset, length)
        if number == 0 and "product" in entry:
            products[str(entry["product"])] = where
        elif number == 0 and "job" in entry:
            jobs[_sort_key((str(entry["job"][0]), str(entry["job"][1]), str(entry["job"][2])))] = where
        elif number == 1 and entry.get("type") == "result":
            products[str(entry["id"])] = where
            jobs[_sort_key(_key(entry))] = where
    with _Reader(sources) as reader, _atomic(out / LOCK) as written:
        written.write(HEADER)
        for product_id in sorted(products):
            source, raw = reader.read(products[product_id])
            written.write(raw.decode() if source == 0 else product_line(product_id, json.loads(raw)["fields"]))
        for sort_key in sorted(jobs):
            source, raw = reader.read(jobs[sort_key])
            key = (*sort_key.split("\0"),)
            written.write(raw.decode() if source == 0 else job_line(key, Fingerprint(**json.loads(raw)["lock"])))  # type: ignore[arg-type]


def _merge(out: Path) -> None:
    """results.jsonl and failures.jsonl from their old contents and the journal. A new result
    replaces the old one and clears the job's failure; a failure is recorded but never deletes
    an earlier valid result (the lock keeps that result's old inputs, so --check still calls it
    stale). Only keys and offsets are held in memory."""
    sources = [out / RESULTS, out / FAILURES, out / JOURNAL]
    results: dict[str, int] = {}  # _sort_key(job) → _pack(source, offset, length)
    failures: dict[str, int] = {}
    for number, offset, length, record in _scan(sources):
        kind = record.get("type", "result" if number == 0 else "failure")
        key = _sort_key(_key(record))
        if kind == "result":
            results[key] = _pack(number, offset, length)
            failures.pop(key, None)
        elif kind == "failure":
            failures[key] = _pack(number, offset, length)
        elif kind == "current":  # found up to date: an old failure no longer stands
            failures.pop(key, None)
    with _Reader(sources) as reader:
        for target, fields, index in ((RESULTS, RESULT_FIELDS, results), (FAILURES, FAILURE_FIELDS, failures)):
            with _atomic(out / target) as written:
                for key in sorted(index):
                    written.write(output_line(json.loads(reader.read(index[key])[1]), fields))


def _scan(sources: list[Path]) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """(source number, offset, length, record) for each JSON-object line of the sources that
    exist; a torn line (a killed writer) is skipped."""
    for number, path in enumerate(sources):
        if not path.exists():
            continue
        with path.open("rb") as handle:
            offset = 0
            for raw in handle:
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    yield number, offset, len(raw), record
                offset += len(raw)


class _Reader:
    """Reads back lines that _scan indexed, by their packed position."""

    def __init__(self, sources: list[Path]) -> None:
        self._handles = [path.open("rb") if path.exists() else None for path in sources]

    def read(self, packed: int) -> tuple[int, bytes]:
        source, offset, length, _ = _unpack(packed)
        handle = self._handles[source]
        assert handle is not None  # indexed, so it exists
        handle.seek(offset)
        return source, handle.read(length)

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            if handle is not None:
                handle.close()


def output_line(record: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    """A results.jsonl or failures.jsonl line: the contract's fields in order, then the
    optional ones a record has (journal-only keys such as "lock" and "type" are dropped)."""
    kept = {name: record.get(name) for name in fields}
    if fields is RESULT_FIELDS:
        kept.update({name: record[name] for name in OPTIONAL_RESULT_FIELDS if record.get(name)})
    return _line(kept)


def _sort_key(key: JobKey) -> str:
    """A job key as one string that sorts like the tuple (ids hold no NUL), for compact indexes."""
    return "\0".join(key)


def _pack(source: int, offset: int, length: int, flag: bool = False) -> int:
    """(source file, offset, length, a flag) in one int: an index of 100k jobs stays small."""
    if length >= 1 << 23:
        raise ValueError(f"a record of {length} bytes is beyond what the index holds (8 MB)")
    return (offset << 26) | (length << 3) | (source << 1) | int(flag)


def _unpack(packed: int) -> tuple[int, int, int, bool]:
    return (packed >> 1) & 0b11, packed >> 26, (packed >> 3) & ((1 << 23) - 1), bool(packed & 1)


def _unlogged_attempts(out: Path) -> list[dict[str, Any]]:
    """Attempts a killed run sent but never logged (sent in the journal, no line in the audit
    log), as audit records: the relay may have billed them, and the report must say so."""
    sent: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in iter_jsonl(out / JOURNAL):
        if record.get("type") == "sent":
            sent[_attempt_key(record)] = record
    if not sent:
        return []
    runs = {key[0] for key in sent}
    for record in iter_jsonl(out / REQUESTS):
        if record.get("run") in runs:
            sent.pop(_attempt_key(record), None)
    return [
        {
            **{name: value for name, value in record.items() if name != "type"},
            "status": None,
            "error": "killed",
            "message": "sent when its run was killed; the relay may have billed it",
            "latency_ms": None,
            "usage": None,
            "cost_usd": 0.0,
            "relay_cost_usd": None,
            "request_id": None,
            "maybe_billed": True,
        }
        for record in sent.values()
    ]


def _attempt_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (record.get("run"), record.get("id"), record.get("platform"), record.get("locale"), record.get("attempt"))


def _key(record: Mapping[str, Any]) -> JobKey:
    return (str(record["id"]), str(record["platform"]), str(record["locale"]))


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


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file, skipping a torn last line."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if isinstance(record, dict):
                yield record


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
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


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


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"

"""Whether a run sends a job, decided in one place for the live run, the dry run and --check:
up to date, a person's listing kept (outdated when its product changed), a failure held, or
sent (with a reviewer's note when a person sent the listing back, or because the translation
memory that filled a store string now says otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..checking.strings import memory_text
from ..locales import parse_locale
from ..output.store import STRING_PLATFORM
from ..people.reviews import is_kept

if TYPE_CHECKING:
    from ..config import Settings
    from ..output.lock import Fingerprint, JobKey
    from ..output.store import RunStore
    from ..reading.memory import Memory

Action = Literal["send", "up_to_date", "outdated", "held"]


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    note: str | None = None  # send: a reviewer's note, asked with the job
    reviewed: bool = False  # send: people decided on the listing (a new one starts their record over)
    held_since: str | None = None  # held: the run that met the failure
    edited: bool = False  # outdated: a person edited it (else approved it)
    refill: bool = False  # send: a store string the memory filled, which the memory now fills otherwise


def verdict(
    store: RunStore,
    key: JobKey,
    fp: Fingerprint,
    settings: Settings,
    *,
    memory: Memory | None = None,
    source: str | None = None,
) -> Verdict:
    """A person's listing is never regenerated, --force or not (only --refresh-outdated asks);
    a listing sent back is asked again; a failure of the checks is held while nothing changed;
    a store string (its `source` text) that a translation memory filled is settled again when
    this run's `memory` fills it otherwise (a unit corrected, gone or now failing the checks)."""
    reviewed = store.reviewed(key)
    note = reviewed.get("rejected") if reviewed is not None else None
    persons = reviewed is not None and is_kept(reviewed)  # never regenerated while current, --force or not
    if note is None and (persons or not settings.force) and store.is_current(key, fp):
        if _memory_moved(store, key, memory, source):
            return Verdict("send", refill=True)
        return Verdict("up_to_date")
    if persons and not settings.refresh_outdated:
        assert reviewed is not None
        return Verdict("outdated", edited=reviewed.get("origin") == "human")
    if not (settings.force or settings.retry_failed):
        held = store.held_failure(key, fp)
        if held is not None:
            return Verdict("held", held_since=str(held.get("run") or ""))
    return Verdict("send", note=note, reviewed=reviewed is not None)


def _memory_moved(store: RunStore, key: JobKey, memory: Memory | None, source: str | None) -> bool:
    """Whether a store string the memory filled in an earlier run would be filled otherwise now.
    Without a memory this run, earlier fills stay; a person's text is never replaced."""
    if memory is None or source is None or key[1] != STRING_PLATFORM:
        return False
    line = store.result(key)
    if line is None or not line.get("memory") or is_kept(line):
        return False
    return memory_text(memory, source, parse_locale(key[2]))[0] != line.get("text")

"""What becomes of each job before anything is sent: the one planning stage.

Every way a job settles is an `Outcome`; a `Planner` gives each prepared job its `Plan`, and
counts them in a `Tally`. The live run, a batch, `--check` and the dry run all ask the same
Planner, so they cannot disagree about what is sent or how copies are grouped. A new way to
settle a job is one outcome and one branch here; the runner keeps the exchange (send, re-ask,
bill, judge, record) and what each outcome does to OUT.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..checking.strings import STRINGS, memory_text
from ..checking.validate import names_other_product
from ..errors import PromptError
from ..locales import parse_locale
from ..reading.catalog import CONTROL_FIELDS
from .jobs import Job, PromptSets
from .prepared import CODE_FIELDS, PreparedJob, Preparer
from .prompts import Message
from .seen import DigestSet
from .verdicts import Verdict, verdict

if TYPE_CHECKING:
    from ..config import Settings
    from ..locales import Locale
    from ..output.lock import JobKey
    from ..output.store import RunStore
    from ..reading.catalog import Product
    from ..reading.memory import Memory
    from ..sending.batch import Harvest, HarvestedAnswer


class Outcome(str, Enum):
    """How a job settles."""

    UP_TO_DATE = "up_to_date"  # its result is current
    OUTDATED = "outdated"  # a person's listing, kept though its product changed since
    HELD = "held"  # a failure held: nothing changed since it failed (--retry-failed sends it)
    IN_BATCH = "in_batch"  # a batch still running asks it already (--no-wait)
    FROM_MEMORY = "from_memory"  # a store string a translation memory fills
    REUSED = "reused"  # the same copy as another job's listing: written already, or on its way
    NO_PROMPT = "no_prompt"  # its prompt cannot be built (a template error)
    SEND = "send"  # asked of the model


NO_VERDICT = Verdict("send")
# The copies a run's table holds before it first grows (a megabyte: most catalogs never grow it).
COPIES_AT_FIRST = 1 << 16


@dataclass(slots=True)  # (not frozen: a frozen dataclass's __init__ costs a dry run a second a million jobs)
class Plan:
    """A job's outcome and what the runner needs to carry it out."""

    outcome: Outcome
    job: Job
    prepared: PreparedJob | None = None  # None for a prompt that cannot be built, or a dry run's light plan
    messages: list[Message] | None = None  # SEND: what it asks (a reviewer's note not yet added)
    decided: Verdict = NO_VERDICT  # (frozen: one value for every plan without a verdict of its own)
    copy: str | None = None  # SEND (a copy's first job) and REUSED: the copy key
    written: Mapping[str, Any] | None = None  # REUSED: the listing written for its copy (None: on its way)
    memory: str | None = None  # FROM_MEMORY: the memory's text
    harvested: HarvestedAnswer | None = None  # SEND: a recorded batch's answer to exactly this job
    error: PromptError | None = None  # NO_PROMPT: why

    @property
    def problem(self) -> str:
        return str(self.error) if self.error is not None else ""


@dataclass(slots=True)
class Tally:
    """How many jobs settled each way, and what the run should say about them."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    held_since: set[str] = field(default_factory=set)  # the runs that met the failures held
    memory_refused: dict[JobKey, str] = field(default_factory=dict)  # memory units failing the checks: why

    def __getitem__(self, outcome: Outcome) -> int:
        return self.counts[outcome]

    def add(self, plan: Plan) -> Plan:
        self.counts[plan.outcome] += 1
        if plan.outcome is Outcome.HELD:
            self.held_since.add(plan.decided.held_since or "")
        return plan


class Planner:
    """Plans a run's jobs in catalog order (the first job of a copy is sent, its twins reuse it).
    With a `store` (OUT's state) a job is compared with the lock, people's decisions and the
    failures held; without one (a dry run with no OUT yet) every job is new, and the plan is
    light: its messages, no fingerprint."""

    def __init__(
        self,
        settings: Settings,
        prompt_sets: PromptSets,
        store: RunStore | None,
        *,
        memory: Memory | None = None,
        harvest: Harvest | None = None,
    ) -> None:
        self._settings = settings
        self._prompt_sets = prompt_sets
        self._store = store
        self._memory = memory
        self.harvest = harvest
        self.preparer = Preparer(settings, prompt_sets)
        self._copies = DigestSet(COPIES_AT_FIRST)  # the copies this run's jobs ask (their keys' first 64 bits)
        self._last_product: Product | None = None
        self._last_digest = 0
        self.tally = Tally()

    def listing(self, job: Job) -> Plan:
        if self._store is None:
            return self.tally.add(self._light(job))
        try:
            prepared = self.preparer.listing(job, self._sibling(job))
        except PromptError as exc:
            return self.tally.add(Plan(Outcome.NO_PROMPT, job, error=exc))
        return self.tally.add(self._plan(prepared))

    def _sibling(self, job: Job) -> tuple[Locale, Mapping[str, Any]] | None:
        """--adapt: the sibling market's listing of this product on this platform, as people
        left it (a person's correction is what the adaptation starts from); None without one
        (the job is then written from the product, as any other)."""
        tag = self._settings.adapt.get(job.locale.tag)
        if tag is None or self._store is None:
            return None
        line = self._store.result((job.product.id, job.platform, tag))
        if line is None or "rejected" in line:
            return None
        return parse_locale(tag), line

    def string(self, product: Product, locale: Locale) -> Plan:
        return self.tally.add(self._plan(self.preparer.string(product, locale)))

    def _plan(self, prepared: PreparedJob) -> Plan:
        job = prepared.job
        store = self._store
        source = job.product.name if job.platform == STRINGS else None
        decided = (
            verdict(store, job.key, prepared.fp, self._settings, memory=self._memory, source=source)
            if store is not None
            else NO_VERDICT
        )
        if decided.action != "send":
            return Plan(Outcome(decided.action), job, prepared, decided=decided)
        harvested = None
        if self.harvest is not None:
            fp = prepared.fp.digest().hex()
            if self.harvest.is_in_flight(job.key, fp):
                return Plan(Outcome.IN_BATCH, job, prepared, decided=decided)
            harvested = self.harvest.take(job.key, fp)
        send = Plan(Outcome.SEND, job, prepared, prepared.messages, decided, harvested=harvested)
        if harvested is not None:
            return send  # answered already: the answer is taken, not a copy's
        if job.platform == STRINGS:
            text, refused = memory_text(self._memory, job.product.name, job.locale)
            if refused is not None:
                self.tally.memory_refused[job.key] = refused
            if text is not None:
                return Plan(Outcome.FROM_MEMORY, job, prepared, decided=decided, memory=text)
        if decided.reviewed or prepared.adapted:
            return send  # a listing people sent back is written anew, an adapted one from its sibling
        copy = self.preparer.copy_key(prepared)
        if int(copy[:16], 16) in self._copies:
            return Plan(Outcome.REUSED, job, prepared, decided=decided, copy=copy)  # its first job is on its way
        written = None if self._settings.force or store is None else store.written_copy(copy)
        if written is not None and not names_other_product(written, job.product):
            return Plan(Outcome.REUSED, job, prepared, decided=decided, copy=copy, written=written)
        self._copies.add(int(copy[:16], 16))
        return Plan(Outcome.SEND, job, prepared, prepared.messages, decided, copy=copy)

    def _light(self, job: Job) -> Plan:
        """A dry run's plan with no OUT to compare with: rendered, grouped by its copy (its
        product's fields but its codes, on one platform and locale), no fingerprint."""
        try:
            messages = self._prompt_sets.get(job.platform).render_messages(job.product, job.locale)
        except PromptError as exc:
            return Plan(Outcome.NO_PROMPT, job, error=exc)
        if self._last_product is not job.product:  # a product's jobs come together: digested once
            self._last_product, self._last_digest = job.product, product_copy(job.product)
        if not self._copies.add(hash((job.platform, job.locale.tag, self._last_digest))):
            return Plan(Outcome.REUSED, job)
        return Plan(Outcome.SEND, job, messages=messages)


def product_copy(product: Product) -> int:
    """What a product's listings are written from, its codes aside, as a 64-bit hash that holds
    within this process: within one run (one set of templates and settings) two jobs of one
    platform and locale with the same are one copy, as Preparer.copy_key tells them, without
    rendering the prompt again (nor encoding the fields: a dry run meets a million of them)."""
    items = [
        (name, value if type(value) is str else _frozen(value))  # (most are text: no call)
        for name, value in product.fields.items()  # (a market's own keywords too: they are in its prompt)
        if name not in CODE_FIELDS and name not in CONTROL_FIELDS
    ]
    items.sort()
    return hash(tuple(items))


def _frozen(value: Any) -> Any:
    """A field's value as something hashable, equal where the values are equal."""
    if type(value) is list and all(type(item) is str for item in value):
        return tuple(value)  # (a catalog's list fields: features, keywords)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((str(key), _frozen(item)) for key, item in value.items()))
    if isinstance(value, str):
        return value
    return type(value).__name__, value  # 1, 1.0 and True hash alike; as JSON they differ

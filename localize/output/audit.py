"""One line of the audit log (OUT/requests.jsonl): one request attempt for one job, as it ended.

Every line the run writes is an `AuditRecord`, so its fields, their order and their meaning are
defined here once. A line carries `"v"`, the version of this shape; a line without one was
written before there was a version (version 1: the same fields, as dicts). Lines are read as
dicts by the cost report and `localize report`, which accept every version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

AUDIT_VERSION = 2


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What one attempt cost and how it ended. `usage` is the relay's (None when it reported
    none or the attempt got no answer); the counts and estimates beside it are our own."""

    run: str
    id: str
    platform: str
    locale: str
    attempt: int
    model: str
    user: str | None
    status: int | None  # the HTTP status (a batch line's own), None when nothing came back
    error: str | None  # the error kind; None for an answer that was used
    message: str | None
    latency_ms: float | None
    usage: Mapping[str, int] | None
    cost_usd: float
    relay_cost_usd: float | None = None  # the charge the relay stated, on a pack's lead
    request_id: str | None = None
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    # Written only when set:
    pack: Mapping[str, Any] | None = None  # one request for `size` jobs; `lead` is the id whose record counts it
    batch: str | None = None  # answered (or asked) by the batch API, at its price
    resource_type: str | None = None  # a store string's resource (the report sums strings by type)
    maybe_billed: bool = False  # sent, no answer: the relay may have billed it
    usage_unreported: bool = False  # answered, without usage: cost_usd is 0, our estimate beside it
    usage_mismatch: bool = False  # the usage did not add up (reasoning outside completion_tokens): the larger billed
    counted_input: int | None = None  # our offline count of the prompt, to calibrate estimates
    counted_output: int | None = None
    estimated_cost_usd: float | None = None
    job_outcome: str | None = None  # the job's last attempt: "succeeded", "failed", ...
    purpose: str | None = None  # "judge": a quality judge's request about the job's listing (not writing it)
    judge_outcome: str | None = None  # a judge's last attempt for the listing: "judged" or "unjudged"

    @classmethod
    def killed(cls, sent: Mapping[str, Any]) -> AuditRecord:
        """The line of an attempt a killed run had sent (`sent`: its job, attempt and offline
        count, recorded before it went out) and never logged: the relay may have billed it."""
        known = {name: sent[name] for name in _FIELDS if name in sent}
        outcome = {
            "status": None,
            "error": "killed",
            "message": "sent when its run was killed; the relay may have billed it",
            "latency_ms": None,
            "usage": None,
            "cost_usd": 0.0,
            "maybe_billed": True,
        }
        return cls(**{**known, **outcome})

    def to_json(self) -> dict[str, Any]:
        """The log line's object: the contract's fields in their order, then those set."""
        line: dict[str, Any] = {
            "v": AUDIT_VERSION,
            "time": self.time,
            "run": self.run,
            "id": self.id,
            "platform": self.platform,
            "locale": self.locale,
            "attempt": self.attempt,
            "model": self.model,
            "user": self.user,
        }
        if self.purpose is not None:
            line["purpose"] = self.purpose
        if self.pack is not None:
            line["pack"] = dict(self.pack)
        if self.resource_type is not None:
            line["resource_type"] = self.resource_type
        if self.batch is not None:
            line["batch"] = self.batch
        line.update(
            {
                "status": self.status,
                "error": self.error,
                "message": self.message,
                "latency_ms": self.latency_ms,
                "usage": dict(self.usage) if self.usage is not None else None,
                "cost_usd": self.cost_usd,
                "relay_cost_usd": self.relay_cost_usd,
                "request_id": self.request_id,
            }
        )
        if self.maybe_billed:
            line["maybe_billed"] = True
        if self.usage_mismatch:
            line["usage_mismatch"] = True
        if self.usage_unreported:
            line["usage_unreported"] = True
        for name in ("counted_input", "counted_output", "estimated_cost_usd", "job_outcome", "judge_outcome"):
            value = getattr(self, name)
            if value is not None:
                line[name] = value
        return line


_FIELDS = frozenset(item.name for item in fields(AuditRecord))

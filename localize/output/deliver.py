"""`localize deliver OUT --webhook URL`: what OUT holds, POSTed to the merchant's own system as
Standard Webhooks (standardwebhooks.com), each listing version once per destination.

Wire contract (receivers read it; keep it exact, README "Deliver"):
- a POST with a JSON body `{"type", "timestamp", "data"}` and the headers `webhook-id`,
  `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
  "id.timestamp.body">` under LOCALIZE_WEBHOOK_SECRET (`whsec_` + base64);
- `listings.ready`: `data.listings`, at most MESSAGE_LISTINGS a message, each with `id`, `sku`,
  `platform`, `locale`, `version`, `approved`, `origin`, `outdated` and the result's fields
  (`title`, `description`, `bullets`, `seo_tags`, `extra`), and `quality` (the judge's, or
  null); `strings.ready`: `data.strings`,
  each with `key`, `locale`, `text`, `version`, `approved`, `origin`; `run.finished` (run
  --webhook): the run's id, `jobs`, `cost_usd`, `failures` and `delivered`;
- a message's `webhook-id` is fixed by its content and destination: a message sent again (a
  timeout, a dropped answer, a kill -9) carries the same id, so the receiver can drop it.

The ledger (OUT/deliveries.jsonl, committed with OUT) records each version a destination
acknowledged with a 2xx, appended and flushed as each answer comes: a later delivery sends only
what the destination has not acknowledged, and a killed one re-sends at most what was in flight.
A destination is the URL without its query or credentials (a token in the query is neither
printed nor written).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import random
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from ..config import is_loopback
from ..errors import ConfigError, InputError
from ..reading.textfile import append_lines
from ..redact import REDACTED
from .layout import DB, DELIVERIES, RESULTS
from .store import STRING_PLATFORM, OutHold, RunStore, iter_jsonl

SECRET_ENV = "LOCALIZE_WEBHOOK_SECRET"
URL_ENV = "LOCALIZE_WEBHOOK_URL"
MESSAGE_LISTINGS = 100  # listings (or strings) a message carries at most: a few hundred kB
ANSWER_CAP = 64_000  # bytes of a receiver's answer read at most
TRIES = 6  # per message: the first and five more, for 429 / 5xx / 408 / timeouts / dropped connections
RETRY_AFTER_CAP_S = 30.0  # a receiver's Retry-After is obeyed up to this
TIMEOUT_S = 20.0  # a receiver that says nothing this long is tried again
# What a listing's version is made of: the fields delivered (a person's edit, a regenerated
# listing, an approval, the judge's quality change it; cost and attempts do not).
VERSIONED = ("id", "sku", "platform", "locale", "title", "description", "bullets", "seo_tags", "extra")
VERSIONED_STRING = ("id", "locale", "text")


@dataclass(frozen=True, slots=True)
class Destination:
    url: str  # as given (query and all): only ever sent to
    shown: str  # scheme://host[:port]/path: printed and written

    @property
    def key(self) -> str:
        return self.shown

    def scrubbed(self, text: str) -> str:
        """A receiver's words as they may be printed: without the URL's query or credentials
        (a token) or the signing secret, should it echo them."""
        parts = urllib.parse.urlsplit(self.url)
        hidden = [parts.query, parts.password or "", os.environ.get(SECRET_ENV, "")]
        hidden += [value for _, value in urllib.parse.parse_qsl(parts.query)]
        for secret in sorted((value for value in hidden if len(value) >= 4), key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


@dataclass(frozen=True, slots=True)
class Item:
    """One listing or store string as a message carries it."""

    key: tuple[str, str, str]  # (id, platform, locale)
    version: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    type: str
    items: tuple[Item, ...]
    data: dict[str, Any]

    def webhook_id(self, destination: Destination) -> str:
        """Fixed by the message's content and destination: a re-send carries the same id."""
        text = destination.key + "\n" + self.type + "\n" + json.dumps(self.data, sort_keys=True, ensure_ascii=False)
        return "msg_" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(slots=True)
class Delivered:
    """What a delivery did: per event, the items sent and acknowledged; what is left."""

    destination: str
    messages: int = 0
    listings: int = 0
    strings: int = 0
    left: int = 0  # items not acknowledged (the next `deliver` sends exactly those)
    gone: bool = False  # the destination answered 410: delivering to it stopped
    refused: list[str] = field(default_factory=list)  # what a receiver said when it refused (4xx)
    planned: dict[str, int] = field(default_factory=dict)  # --dry-run: items per event
    finished_lost: bool = False  # run --webhook: run.finished was not acknowledged

    @property
    def complete(self) -> bool:
        """Whether the destination acknowledged everything (what a 0 exit says)."""
        return not (self.left or self.gone or self.finished_lost)

    def as_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "messages": self.messages,
            "listings": self.listings,
            "strings": self.strings,
            "left": self.left,
            "gone": self.gone,
            **({"planned": self.planned} if self.planned else {}),
            **({"finished_lost": True} if self.finished_lost else {}),
        }


def destination(url: str | None, *, allow_http: bool) -> Destination:
    """The webhook URL checked: http(s) only, plain http only to a loopback address unless
    allowed; InputError (exit 2) otherwise."""
    if not url:
        raise ConfigError("no webhook URL", hint=f"pass --webhook URL, set webhook: in localize.yaml or {URL_ENV}")
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        parts.port  # noqa: B018 - read to check it: urllib raises on a port that is not one
    except ValueError:
        raise ConfigError(
            "the webhook URL's port is not a port number", hint="e.g. https://pim.example.com:8443/hooks"
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            "the webhook URL must be http(s)://host/…", where=_shown(parts), hint="e.g. https://pim.example.com/hooks"
        )
    if parts.scheme == "http" and not is_loopback(host) and not allow_http:
        raise ConfigError(
            "the webhook URL is plain http to another machine: listings and signatures would cross the network "
            "unencrypted",
            where=_shown(parts),
            hint="use https://, or pass --allow-http if that network is yours",
        )
    return Destination(url, _shown(parts))


def signer() -> Webhook:
    """The signing key from LOCALIZE_WEBHOOK_SECRET (`whsec_` + base64), never from a file or
    a flag; ConfigError (exit 2) when it is missing or not in that format."""
    secret = os.environ.get(SECRET_ENV, "")
    hint = f"set {SECRET_ENV}=whsec_<base64 of at least 24 random bytes> (the receiver verifies with the same)"
    if not secret:
        raise ConfigError(f"no webhook secret: {SECRET_ENV} is not set", hint=hint)
    key = _key_of(secret)
    if len(key) < 16:
        raise ConfigError(
            f"{SECRET_ENV} is not a Standard Webhooks secret (whsec_ + base64, 16 bytes or more)", hint=hint
        )
    return Webhook(key)


def plan(out: Path, destination: Destination, *, approved_only: bool = False) -> list[Message]:
    """The messages that bring `destination` up to date with OUT: every listing and store
    string whose version it has not acknowledged (approved ones only with `approved_only`),
    a job that failed never, in OUT's order, MESSAGE_LISTINGS to a message."""
    if not any((out / name).is_file() for name in (RESULTS, DB)):
        raise InputError("no results here", where=str(out), hint="pass a run's --out directory")
    acknowledged = _acknowledged(out / DELIVERIES, destination.key)
    listings: list[Item] = []
    strings: list[Item] = []
    with RunStore(out, read_only=True) as store:
        failed = {(str(f["id"]), str(f["platform"]), str(f["locale"])) for f in store.failures()}
        for line in store.reviewable():
            key = (str(line["id"]), str(line["platform"]), str(line["locale"]))
            if key in failed or (approved_only and not line.get("approved")):
                continue
            item = _item(line)
            if (item.key, item.version) in acknowledged:
                continue
            (strings if key[1] == STRING_PLATFORM else listings).append(item)
    return [*_messages("listings.ready", "listings", listings), *_messages("strings.ready", "strings", strings)]


def run_finished(report: Mapping[str, Any], delivered: int) -> Message:
    """The last message of `run --webhook`: what the run did and cost."""
    jobs = dict(report.get("jobs") or {})
    data = {
        "run": report.get("run"),
        "jobs": jobs,
        "cost_usd": report.get("cost_usd", 0.0),
        "failures": int(jobs.get("failed") or 0),
        "delivered": delivered,
    }
    return Message("run.finished", (), data)


def send(
    out: Path,
    destination: Destination,
    messages: Iterable[Message],
    webhook: Webhook,
    *,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
    on_message: Callable[[Delivered], None] | None = None,
) -> Delivered:
    """POST each message, signed, until the destination acknowledges it with a 2xx (each
    acknowledged item appended to the ledger at once) or its tries are spent; 410 stops the
    delivery to it. OUT is held meanwhile, as a run holds it."""
    done = Delivered(destination.shown)
    hold = OutHold.take(out)
    try:
        with httpx.Client(transport=transport, follow_redirects=False, timeout=TIMEOUT_S) as client:
            for message in messages:
                if done.gone:
                    done.left += len(message.items)
                    continue
                status = _post(client, destination, message, webhook, backoff_s=backoff_s, sleep=sleep, done=done)
                if status is not None and 200 <= status < 300:
                    _record(out / DELIVERIES, destination, message)
                    done.messages += 1
                    done.listings += sum(1 for item in message.items if item.key[1] != STRING_PLATFORM)
                    done.strings += sum(1 for item in message.items if item.key[1] == STRING_PLATFORM)
                else:
                    done.left += len(message.items)
                    done.gone = done.gone or status == 410
                if on_message is not None:
                    on_message(done)
    finally:
        hold.release()
    return done


def dry_run(destination: Destination, messages: Iterable[Message]) -> Delivered:
    """What a delivery would send: messages and items per event; nothing is sent."""
    done = Delivered(destination.shown)
    for message in messages:
        done.messages += 1
        done.planned[message.type] = done.planned.get(message.type, 0) + len(message.items)
    return done


# --- the exchange ----------------------------------------------------------------------------


def _post(
    client: httpx.Client,
    destination: Destination,
    message: Message,
    webhook: Webhook,
    *,
    backoff_s: float,
    sleep: Callable[[float], None],
    done: Delivered,
) -> int | None:
    """One message, tried again on 429 / 5xx / 408 / timeouts / dropped connections; its last
    status (None: no answer). A model's text is data in the body, never a header."""
    message_id = message.webhook_id(destination)
    status: int | None = None
    for attempt in range(TRIES):
        now = datetime.now(timezone.utc)
        body = json.dumps(
            {"type": message.type, "timestamp": now.isoformat(timespec="seconds"), "data": message.data},
            ensure_ascii=False,
        ).encode()
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": webhook.sign(message_id, now, body),
            "user-agent": "localize-webhooks",
        }
        wait: float | None = None
        try:
            with client.stream("POST", destination.url, content=body, headers=headers) as reply:
                status = reply.status_code
                said = _read_capped(reply)
                if status == 429:
                    wait = _retry_after(reply.headers.get("retry-after"))
        except httpx.HTTPError:
            status = None  # a timeout, a refused or dropped connection: tried again
            said = ""
        if status is not None and (200 <= status < 300 or status == 410):
            return status
        if status is not None and 300 <= status < 500 and status not in (408, 429):
            why = "a redirect, not followed" if status < 400 else destination.scrubbed(said)[:200]
            done.refused.append(f"HTTP {status}: {why}".strip())
            return status  # the receiver refuses this message as it is (or sends it elsewhere): not tried again
        if attempt + 1 < TRIES:
            sleep(wait if wait is not None else random.uniform(0, backoff_s * 2**attempt))
    return status


def _read_capped(reply: httpx.Response) -> str:
    body = bytearray()
    for chunk in reply.iter_bytes():
        body += chunk
        if len(body) >= ANSWER_CAP:
            break
    return bytes(body[:ANSWER_CAP]).decode("utf-8", "replace")


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or seconds != seconds or seconds < 0:  # (NaN)
        return None
    return min(seconds, RETRY_AFTER_CAP_S)


# --- the ledger --------------------------------------------------------------------------------


def _acknowledged(path: Path, destination_key: str) -> set[tuple[tuple[str, str, str], str]]:
    """The (job, version) pairs a destination acknowledged, from the committed ledger."""
    found = set()
    for entry in iter_jsonl(path):
        if entry.get("destination") != destination_key:
            continue
        for item in entry.get("items") or ():
            if isinstance(item, list) and len(item) == 4:
                found.add(((str(item[0]), str(item[1]), str(item[2])), str(item[3])))
    return found


def _record(path: Path, destination: Destination, message: Message) -> None:
    """A message the destination acknowledged: its items, appended and flushed to disk before
    the next message goes out."""
    entry = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "destination": destination.key,
        "type": message.type,
        "webhook_id": message.webhook_id(destination),
        "items": [[*item.key, item.version] for item in message.items],
    }
    append_lines(path, [json.dumps(entry, ensure_ascii=False) + "\n"])


# --- what a message carries ---------------------------------------------------------------------


def _item(line: Mapping[str, Any]) -> Item:
    key = (str(line["id"]), str(line["platform"]), str(line["locale"]))
    if key[1] == STRING_PLATFORM:
        version = _digest({name: line.get(name) for name in VERSIONED_STRING})
        body = {
            "key": key[0],
            "locale": key[2],
            "text": line.get("text"),
            "version": version,
            "approved": bool(line.get("approved")),
            "origin": line.get("origin") or "model",
        }
        return Item(key, version, body)
    versioned = {name: line.get(name) for name in VERSIONED}
    if isinstance(line.get("quality"), dict):  # judged since it was delivered: sent again, with it
        versioned["quality"] = line["quality"]
    version = _digest(versioned)
    body = {
        "id": key[0],
        "sku": line.get("sku"),
        "platform": key[1],
        "locale": key[2],
        "version": version,
        "approved": bool(line.get("approved")),
        "origin": line.get("origin") or "model",
        "outdated": bool(line.get("outdated")),
        "title": line.get("title"),
        "description": line.get("description"),
        "bullets": list(line.get("bullets") or []),
        "seo_tags": list(line.get("seo_tags") or []),
        "extra": dict(line.get("extra") or {}),
        # The judge's {score, errors, model} (--judge), null when unjudged.
        "quality": dict(line["quality"]) if isinstance(line.get("quality"), dict) else None,
    }
    return Item(key, version, body)


def _digest(value: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def _messages(event: str, name: str, items: list[Item]) -> Iterator[Message]:
    for start in range(0, len(items), MESSAGE_LISTINGS):
        chunk = tuple(items[start : start + MESSAGE_LISTINGS])
        yield Message(event, chunk, {name: [item.body for item in chunk]})


def _shown(parts: urllib.parse.SplitResult) -> str:
    """A URL as it may be printed and written: no credentials, no query, no fragment."""
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{shown}{port}{parts.path or '/'}"


def _key_of(secret: str) -> bytes:
    """The key a `whsec_` + base64 secret holds (b"" for anything else)."""
    if not secret.startswith("whsec_"):
        return b""
    body = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""


def deliver(
    out: Path,
    url: str | None,
    *,
    approved_only: bool = False,
    dry: bool = False,
    allow_http: bool = False,
    backoff_s: float = 1.0,
    finished: Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
    on_message: Callable[[Delivered], None] | None = None,
) -> Delivered:
    """Bring the destination up to date with OUT (`localize deliver`, `run --webhook`): the URL
    and the secret checked before anything is sent, then every version not yet acknowledged,
    then, after a run (`finished`: its cost report), `run.finished`."""
    where = destination(url, allow_http=allow_http)
    webhook = None if dry else signer()
    messages = plan(out, where, approved_only=approved_only)
    if webhook is None:
        return dry_run(where, messages)
    done = send(
        out, where, messages, webhook, backoff_s=backoff_s, sleep=sleep, transport=transport, on_message=on_message
    )
    if finished is not None and not done.gone:
        last = send(
            out,
            where,
            [run_finished(finished, done.listings + done.strings)],
            webhook,
            backoff_s=backoff_s,
            sleep=sleep,
            transport=transport,
        )
        done.messages += last.messages
        done.gone = last.gone
        done.refused += last.refused
        done.finished_lost = not last.messages
    return done


def check_ready(url: str | None, *, allow_http: bool) -> None:
    """Before a run that delivers at its end spends anything: the URL and the secret."""
    destination(url, allow_http=allow_http)
    signer()

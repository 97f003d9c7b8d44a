"""`localize review OUT --serve`: the review page as a workbench, and the JSON API it (and any
script) uses to edit, approve and reject listings. Decisions go to OUT/reviews.jsonl through
the store (reviews.py), as `localize approve` writes them.

Safe by default: it listens on loopback unless told otherwise; every request needs the token the
first stdout line carries (compared in constant time); writes take JSON only, from no other
origin, bodies capped; ids are looked up, never turned into paths; and while a run holds OUT, a
write is refused with 409 (the run's files would otherwise be overwritten under it).

API (the README documents it; tests drive it):
- GET  /api/listings → {"listings": [{"id", "platform", "locale", "fields", "origin", "approved",
  "status": "ok"|"warning"|"failed"|"outdated", "warnings"}]}, exactly as DESIGN.md has it; a
  listing the judge scored adds "quality": {score, errors, model}, and those come first, lowest first
- POST /api/listings/{platform}/{locale}/{id} with {"fields": {...}} (checked as a model's
  answer: a hard rule broken → 422 {"problems": [...]}, nothing saved; a figure or glossary
  finding → saved with its warning), {"approved": true|false}, or {"reject": "note"}.
- A store string (a Translate & Adapt text, a WooCommerce note) is an item like a listing:
  `platform: "strings"`, its key as the id (URL-encoded in the path), `fields: {"text": …}`.
"""

from __future__ import annotations

import hmac
import json
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checking.language import warm_up
from ..config import is_loopback
from ..errors import InputError, OutInUse
from ..output.layout import DB, RESULTS
from ..output.run_report import RunOrigin
from ..output.store import STRING_PLATFORM, OutHold, RunStore
from ..planning.jobs import PromptSets
from ..reading.catalog import read_catalog
from .edits import EditRefused, check_edit_fields
from .review import lowest_score, review_html
from .reviews import EDITABLE, STRING_EDITABLE, Decision

if TYPE_CHECKING:
    from ..config import Settings
    from ..reading.catalog import Product

MAX_BODY = 256_000  # bytes: a listing is a few kB
IDLE_S = 30.0  # a connection silent this long is closed: half-open connections hold no thread
TOKEN_HEADER = "X-Localize-Token"


@dataclass(frozen=True, slots=True)
class Problem(Exception):
    """An answer other than 200, with what to say."""

    status: int
    body: Mapping[str, Any]


class ReviewServer:
    """Serves one OUT until shut down."""

    def __init__(
        self, out: Path, settings: Settings, *, host: str = "127.0.0.1", port: int = 0, idle_s: float = IDLE_S
    ) -> None:
        """InputError (exit 2) for an OUT without results, or an address it cannot listen on."""
        if not any((out / name).is_file() for name in (RESULTS, DB)):
            raise InputError("no results here", where=str(out), hint="pass a run's --out directory")
        self.out = out
        self.exposed = not is_loopback(host)  # reachable from other machines: the CLI warns
        self.settings = settings
        self.token = secrets.token_urlsafe(24)
        self._writing = threading.Lock()  # one write at a time: each takes OUT as a run does
        self._store: RunStore | None = None  # OUT's state, read by every decision (opened once)
        self._export_timer: threading.Timer | None = None
        self._serving: threading.Thread | None = None  # the thread in serve_forever
        self.export_after_s = settings.review_export_s
        server = self
        handler = type("Handler", (_Handler,), {"server_state": server, "timeout": idle_s})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port}: {exc.strerror}", hint="pick another --port or --host"
            ) from None
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        address, port = self.httpd.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/?token={self.token}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def hosts(self, local_address: str) -> set[str]:
        """The Host headers that name this server, for a connection that arrived on
        `local_address`: that address, the machine's names, and on loopback `localhost`. Any
        other Host is refused (a DNS-rebinding page names its own)."""
        names = {local_address, str(self.httpd.server_address[0]), socket.gethostname()}  # (no DNS asked)
        if is_loopback(local_address):
            names |= {"localhost", "127.0.0.1", "::1"}
        found = set()
        for name in names:
            shown = f"[{name}]" if ":" in name else name
            found.add(f"{shown}:{self.port}".lower())
            if self.port == 80:
                found.add(shown.lower())
        return found

    def settle(self) -> None:
        """Write the decisions an earlier server could not (killed before it wrote the files),
        and load the language checks an edit needs meanwhile (not while a person waits)."""
        with self._writing:
            languages = tuple(dict.fromkeys(tag.split("-")[0] for tag in self._reader().locales()))
            threading.Thread(target=warm_up, args=(languages,), daemon=True).start()
            self._export()

    def serve_forever(self) -> None:
        self._serving = threading.current_thread()
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._serving = None

    def shutdown(self) -> None:
        """Stop serving, and write the files the last decisions changed. From another thread
        it stops the loop; on the serving thread (after Ctrl-C) the loop has ended already, and
        one interrupted before it began has nothing to stop."""
        serving = self._serving
        if serving is not None and serving is not threading.current_thread():
            self.httpd.shutdown()
        self.httpd.server_close()
        with self._writing:
            if self._export_timer is not None:
                self._export_timer.cancel()
            self._export()
            if self._store is not None:
                self._store.release()
                self._store = None

    def _reader(self) -> RunStore:
        """OUT's state for decisions, opened at the first (under self._writing)."""
        if self._store is None:
            self._store = RunStore(self.out, read_only=True)
        self._store.sync_reviews()
        return self._store

    def _export_soon(self) -> None:
        """Write the exported files once decisions pause (each decision is on disk already, in
        reviews.jsonl: a crash before this loses nothing, the next export folds it in)."""
        if self._export_timer is not None:
            self._export_timer.cancel()
        self._export_timer = threading.Timer(self.export_after_s, self._export_when_quiet)
        self._export_timer.daemon = True
        self._export_timer.start()

    def _export_when_quiet(self) -> None:
        with self._writing:
            try:
                self._export()
            except OSError:
                pass  # a full disk: the decisions are in reviews.jsonl; the next export (or shutdown) tries again

    def _export(self) -> None:
        """results.jsonl and OUT's other exported files, with every decision folded in (under
        self._writing); while a run holds OUT, its own finish does it."""
        if self._store is None or not self._store.reviews_unexported():
            return
        try:
            with RunStore(self.out) as store:
                store.export()
        except OutInUse:
            pass

    # --- what the API does -----------------------------------------------------------------

    def listings(self) -> list[dict[str, Any]]:
        """Every listing, then every store string (`platform: "strings"`, its key as the id,
        `fields: {"text": …}`), then each job that failed without a result."""
        with RunStore(self.out, read_only=True) as store:
            found = [_listing(line) for line in store.reviewable()]
            have = {(item["id"], item["platform"], item["locale"]) for item in found}
            for failure in store.failures():
                key = (str(failure["id"]), str(failure["platform"]), str(failure["locale"]))
                if key not in have:
                    found.append(
                        {
                            "id": key[0],
                            "platform": key[1],
                            "locale": key[2],
                            "fields": {},
                            "origin": "model",
                            "approved": False,
                            "status": "failed",
                            "warnings": [f"{failure.get('error')}: {failure.get('message')}"],
                        }
                    )
        # The judge's lowest scores first (a person's listing stands over the judge); the rest in order.
        return sorted(found, key=lambda item: lowest_score([item]))

    def decide(self, platform: str, locale: str, product_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (product_id, platform, locale)
        actions = [name for name in ("fields", "approved", "reject") if name in body]
        if len(actions) != 1:
            raise Problem(400, {"error": 'send one of {"fields": {...}}, {"approved": true|false}, {"reject": "note"}'})
        with self._writing:
            return self._decide(key, actions, body)

    def _decide(self, key: tuple[str, str, str], actions: list[str], body: Mapping[str, Any]) -> dict[str, Any]:
        """One decision: checked, appended to reviews.jsonl (on disk before the answer), and the
        exported files written a moment later (_export_soon): a click costs what it changes."""
        product_id, platform, locale = key
        store = self._reader()
        hold = OutHold.try_take(self.out)
        if hold is None:
            raise Problem(409, {"error": "a run is writing OUT: try again when it has finished"})
        try:
            current = store.result(key)
            if current is None:
                what = "store string" if platform == STRING_PLATFORM else "listing"
                raise Problem(404, {"error": f"no {what} {product_id!r} on {platform} in {locale}"})
            warnings: list[str] = []
            if actions == ["fields"]:
                fields = body["fields"]
                if not isinstance(fields, dict) or not fields:
                    raise Problem(400, {"error": "fields must be an object of the fields to change"})
                warnings = self._check(current, fields)
                decision = Decision(*key, "edit", fields=fields)
            elif actions == ["approved"]:
                if not isinstance(body["approved"], bool):
                    raise Problem(400, {"error": "approved is true or false"})
                decision = Decision(*key, "approve" if body["approved"] else "unapprove")
            else:
                if not isinstance(body["reject"], str) or not body["reject"].strip():
                    raise Problem(400, {"error": "reject carries the note for the writer, a non-empty string"})
                decision = Decision(*key, "reject", note=body["reject"][:2000])
            store.decide([decision])
        finally:
            hold.release()
        self._export_soon()
        updated = store.result(key)
        assert updated is not None
        listing = _listing(updated)
        listing["warnings"] = [*listing["warnings"], *warnings]
        return {"listing": listing, "twins": store.twins(key)}

    def _check(self, current: Mapping[str, Any], fields: Mapping[str, Any]) -> list[str]:
        """A person's edit, checked as a model's answer would be: a hard rule broken is a 422."""
        product = self._product(str(current["id"])) if current["platform"] != STRING_PLATFORM else None
        try:
            return check_edit_fields(current, fields, PromptSets(self.settings), product)
        except EditRefused as refused:
            raise Problem(422, {"problems": refused.problems}) from None

    def _product(self, product_id: str) -> Product | None:
        """The product's source in the catalog the run read (None when it is gone)."""
        origin = RunOrigin.read(self.out)
        catalog = origin.catalog
        if catalog is None or not catalog.is_file():  # gone, or a pipe that would never end: checked without it
            return None
        try:
            found = read_catalog(catalog, columns=origin.columns, duplicates="first")
            return next((product for product in found if product.id == product_id), None)
        except (OSError, InputError):
            return None


def _listing(line: Mapping[str, Any]) -> dict[str, Any]:
    """A result line as the API shows it (a store string's fields: its text)."""
    if line["platform"] == STRING_PLATFORM:
        fields: dict[str, Any] = {name: line.get(name) for name in STRING_EDITABLE}
    else:
        fields = {name: line.get(name) for name in EDITABLE}
        fields.update(line.get("extra") or {})
    warnings = list(line.get("warnings") or [])
    if "rejected" in line:  # sent back: a new listing comes with the next run
        warnings.append(f"rejected: {line['rejected']}")
    status = "outdated" if line.get("outdated") else "warning" if warnings else "ok"
    listing = {
        "id": str(line["id"]),
        "platform": str(line["platform"]),
        "locale": str(line["locale"]),
        "fields": fields,
        "origin": line.get("origin") or "model",
        "approved": bool(line.get("approved")),
        "status": status,
        "warnings": warnings,
    }
    if isinstance(line.get("quality"), dict):
        listing["quality"] = dict(line["quality"])  # the judge's {score, errors, model} (--judge)
    return listing


class _Handler(BaseHTTPRequestHandler):
    server_state: ReviewServer
    protocol_version = "HTTP/1.1"
    nonce: str | None = None  # the served page's script nonce (its Content-Security-Policy names it)
    timeout = None  # seconds a connection may stay silent (the server sets IDLE_S)

    def log_message(self, *args: Any) -> None:  # the first stdout line is the URL: keep the rest quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the browser went away before the answer: its right

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(self._post)

    def _answer(self, route: Any) -> None:
        self.nonce = None  # one per page answer: a kept-alive connection's next answer makes its own
        if urllib.parse.urlsplit(self.path).path == "/favicon.ico":
            status, content_type, body = 204, "image/x-icon", b""  # asked by every browser, token or not
        else:
            try:
                self._authorise()
                status, content_type, body = route()
            except Problem as problem:
                status, content_type = problem.status, "application/json"
                body = json.dumps(problem.body).encode()
                self.close_connection = True  # a body left unread must not be read as the next request
            except InputError as exc:  # OUT's files unreadable (a broken reviews.jsonl line, say)
                status, content_type = 500, "application/json"
                body = json.dumps({"error": exc.message, "where": exc.where, "hint": exc.hint}).encode()
                self.close_connection = True
            except OSError as exc:  # a full disk, a file OUT cannot hold: nothing was half-written
                status, content_type = 507, "application/json"
                error = f"cannot write OUT: {exc.strerror or exc}"
                body = json.dumps({"error": error, "hint": "free some space, then decide again"}).encode()
                self.close_connection = True
        self.send_response(status)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        script = f"'nonce-{self.nonce}'" if self.nonce else "'none'"
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'self'; img-src * data:; style-src 'unsafe-inline'; script-src {script}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        self.end_headers()
        self.wfile.write(body)

    def _authorise(self) -> None:
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.server_state.hosts(str(self.connection.getsockname()[0])):
            raise Problem(403, {"error": "this server answers only to its own address (the URL localize printed)"})
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        given = self.headers.get(TOKEN_HEADER) or (query.get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), self.server_state.token.encode()):
            raise Problem(403, {"error": "a token is needed: use the URL localize printed"})

    def _get(self) -> tuple[int, str, bytes]:
        path = urllib.parse.urlsplit(self.path).path
        state = self.server_state
        if path == "/api/listings":
            return 200, "application/json", json.dumps({"listings": state.listings()}, ensure_ascii=False).encode()
        if path == "/":
            self.nonce = secrets.token_urlsafe(18)  # the page's one script runs; nothing else on it does
            return 200, "text/html; charset=utf-8", review_html(state.out, serve=True, nonce=self.nonce).encode()
        raise Problem(404, {"error": "not found"})

    def _post(self) -> tuple[int, str, bytes]:
        parts = urllib.parse.urlsplit(self.path).path.split("/")
        if len(parts) != 6 or parts[1:3] != ["api", "listings"]:
            raise Problem(404, {"error": "not found"})
        origin = self.headers.get("Origin")
        host = (self.headers.get("Host") or "").strip().lower()
        if origin is not None and origin.lower() != f"http://{host}":  # Host is this server's (_authorise)
            raise Problem(403, {"error": "writes come from the review page only"})
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise Problem(415, {"error": "send JSON (Content-Type: application/json)"})
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            raise Problem(400, {"error": "a Content-Length is needed"}) from None
        if length < 0:
            raise Problem(400, {"error": "a Content-Length is a byte count"})
        if length > MAX_BODY:
            raise Problem(413, {"error": f"a request body of at most {MAX_BODY:,} bytes"})
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, RecursionError):  # not JSON, or nested past any decision's depth
            raise Problem(400, {"error": "the body is not JSON"}) from None
        if not isinstance(body, dict):
            raise Problem(400, {"error": "the body must be a JSON object"})
        platform, locale, product_id = (urllib.parse.unquote(part) for part in parts[3:6])
        answer = self.server_state.decide(platform, locale, product_id, body)
        return 200, "application/json", json.dumps(answer, ensure_ascii=False).encode()

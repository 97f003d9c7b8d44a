"""An OpenAI-compatible relay on loopback: a real HTTP server that bills what it answers.

With nothing queued it answers every chat request with a valid listing in the language the
system prompt asks for. Tests queue bad days with `relay.enqueue(...)`: any status with any
body and headers, a dropped connection, a hang past the client's timeout, code fences,
truncation, the wrong language. It records every request and counts every token it bills,
so tests can compare a cost report with the bill.
"""

from __future__ import annotations

import html
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LISTINGS = {
    "de": {
        "title": "Nordbeat Kopfhörer mit Geräuschunterdrückung",
        "description": "Kabellose Kopfhörer mit hybrider Geräuschunterdrückung und langer Akkulaufzeit für Reisen.",
        "bullets": [
            "Starke Geräuschunterdrückung",
            "Lange Akkulaufzeit",
            "Schnelles Laden über USB-C",
            "Zwei Geräte gleichzeitig",
            "Faltbar mit Reiseetui",
        ],
        "seo_tags": ["kopfhörer", "kabellos", "reise", "bluetooth", "geräuschunterdrückung"],
    },
    "ja": {
        "title": "Nordbeat ノイズキャンセリング ワイヤレスヘッドホン",
        "description": "ハイブリッド方式のノイズキャンセリングと長時間バッテリーを備えた、"
        "旅行に最適なワイヤレスヘッドホンです。",
        "bullets": [
            "強力なノイズキャンセリング",
            "長時間バッテリー",
            "USB-Cで急速充電",
            "2台同時接続",
            "折りたたみ式で持ち運びに便利",
        ],
        "seo_tags": ["ヘッドホン", "ワイヤレス", "旅行", "ブルートゥース", "ノイズキャンセリング"],
    },
    "th": {
        "title": "หูฟังไร้สาย Nordbeat ตัดเสียงรบกวน",
        "description": "หูฟังไร้สายพร้อมระบบตัดเสียงรบกวนแบบไฮบริดและแบตเตอรี่ใช้งานได้ยาวนาน เหมาะสำหรับการเดินทาง",
        "bullets": [
            "ตัดเสียงรบกวนได้ดีเยี่ยม",
            "แบตเตอรี่ใช้งานได้นาน",
            "ชาร์จเร็วผ่าน USB-C",
            "เชื่อมต่อสองอุปกรณ์พร้อมกัน",
            "พับเก็บได้พร้อมกระเป๋า",
        ],
        "seo_tags": ["หูฟัง", "ไร้สาย", "เดินทาง", "บลูทูธ", "ตัดเสียงรบกวน"],
    },
    "fr": {
        "title": "Casque sans fil Nordbeat à réduction de bruit",
        "description": "Casque sans fil avec réduction de bruit hybride et une longue autonomie, pensé pour le voyage.",
        "bullets": [
            "Réduction de bruit efficace",
            "Longue autonomie de la batterie",
            "Charge rapide par USB-C",
            "Deux appareils à la fois",
            "Pliable avec étui de voyage",
        ],
        "seo_tags": ["casque", "sans fil", "voyage", "bluetooth", "réduction de bruit"],
    },
    "pt": {
        "title": "Fones de ouvido sem fio Nordbeat com cancelamento de ruído",
        "description": "Fones de ouvido sem fio com cancelamento de ruído híbrido e bateria de longa duração, "
        "feitos para viagens.",
        "bullets": [
            "Cancelamento de ruído potente",
            "Bateria de longa duração",
            "Carregamento rápido por USB-C",
            "Dois aparelhos ao mesmo tempo",
            "Dobráveis com estojo de viagem",
        ],
        "seo_tags": ["fones de ouvido", "sem fio", "viagem", "bluetooth", "cancelamento de ruído"],
    },
    "es": {
        "title": "Auriculares inalámbricos Nordbeat con cancelación de ruido",
        "description": "Auriculares inalámbricos con cancelación de ruido híbrida y una batería de larga duración, "
        "pensados para viajar.",
        "bullets": [
            "Cancelación de ruido potente",
            "Batería de larga duración",
            "Carga rápida por USB-C",
            "Dos dispositivos a la vez",
            "Plegables con estuche de viaje",
        ],
        "seo_tags": ["auriculares", "inalámbricos", "viaje", "bluetooth", "cancelación de ruido"],
    },
    "it": {
        "title": "Cuffie wireless Nordbeat con cancellazione del rumore",
        "description": "Cuffie senza fili con cancellazione ibrida del rumore e una batteria di lunga durata, "
        "pensate per chi viaggia.",
        "bullets": [
            "Cancellazione del rumore efficace",
            "Batteria di lunga durata",
            "Ricarica rapida tramite USB-C",
            "Due dispositivi insieme",
            "Pieghevoli con custodia da viaggio",
        ],
        "seo_tags": ["cuffie", "senza fili", "viaggio", "bluetooth", "cancellazione del rumore"],
    },
    "ar": {
        "title": "سماعات نوردبيت اللاسلكية بخاصية إلغاء الضوضاء",
        "description": "سماعات لاسلكية بإلغاء هجين للضوضاء وبطارية تدوم طويلاً، مثالية للسفر.",
        "bullets": [
            "إلغاء قوي للضوضاء",
            "بطارية تدوم طويلاً",
            "شحن سريع عبر USB-C",
            "جهازان في الوقت نفسه",
            "قابلة للطي مع حقيبة سفر",
        ],
        "seo_tags": ["سماعات", "لاسلكية", "سفر", "بلوتوث", "إلغاء الضوضاء"],
    },
    "sv": {
        "title": "Nordbeat trådlösa hörlurar med brusreducering",
        "description": "Trådlösa hörlurar med hybrid brusreducering och lång batteritid, gjorda för resor.",
        "bullets": [
            "Kraftfull brusreducering",
            "Lång batteritid",
            "Snabbladdning via USB-C",
            "Två enheter samtidigt",
            "Hopfällbara med reseetui",
        ],
        "seo_tags": ["hörlurar", "trådlösa", "resor", "bluetooth", "brusreducering"],
    },
    "en": {
        "title": "Nordbeat Wireless Noise Cancelling Headphones",
        "description": "Wireless headphones with hybrid noise cancelling and a long battery life, made for travel.",
        "bullets": [
            "Strong noise cancelling",
            "Long battery life",
            "Fast USB-C charging",
            "Two devices at once",
            "Folds into a travel case",
        ],
        "seo_tags": ["headphones", "wireless", "travel", "bluetooth", "anc"],
    },
}
JUDGE_OPENING = "You are an annotator for the quality of product listings."
_JUDGED_SOURCE = re.compile(r'<source id="([^"]*)">\n(.*?)\n</source>', re.DOTALL)
_JUDGED_LISTING = re.compile(r'<listing id="([^"]*)" locale="([^"]*)">\n(.*?)\n</listing>', re.DOTALL)
# What the stand-in judge sees (a real one reads; this one matches): English left in a listing in
# another language, a claim the source does not make, a figure the source does not have, and the
# informal register in a German listing.
_ENGLISH_RUN = re.compile(r"\b(?:the|and|with|your|you|keeps|all|this)\b(?:\s+[A-Za-z]+){1,4}", re.IGNORECASE)
CLAIMS = ("wasserdicht", "waterproof", "imperméable", "zertifiziert", "certified", "medizinisch")
_INFORMAL_DE = re.compile(r"\b(?:du|dich|dir|dein|deine|deinen|deinem)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,\u202f\u00a0 ]\d{3})*(?:[.,]\d+)?")


def judge_answer(user: str, mode: str = "honest") -> str:
    """The stand-in judge's answer to a judge request: GEMBA-style errors and a score per
    listing (100 - 25 a major error - 5 a minor one), or the bad day `mode` names."""
    sources = {html.unescape(pid): json.loads(text) for pid, text in _JUDGED_SOURCE.findall(user)}
    judgements: dict[str, Any] = {}
    for fenced, locale, text in _JUDGED_LISTING.findall(user):
        listing = json.loads(text)
        texts = [value for value in _walk_texts(listing)]
        source_text = json.dumps(sources.get(html.unescape(fenced)), ensure_ascii=False).lower()
        errors = []
        for value in texts:
            if not locale.startswith("en"):
                errors += [_error(m.group(0), "accuracy/untranslated", "major") for m in _ENGLISH_RUN.finditer(value)]
            errors += [
                _error(value[value.lower().index(claim) :][: len(claim)], "accuracy/addition", "major")
                for claim in CLAIMS
                if claim in value.lower() and claim not in source_text
            ]
            digits = re.sub(r"\D", "", source_text)
            errors += [
                _error(m.group(0), "accuracy/mistranslation", "major")
                for m in _NUMBER.finditer(value)
                if re.sub(r"\D", "", m.group(0)) not in digits
            ]
            if locale.startswith("de"):
                errors += [_error(m.group(0), "style", "minor") for m in _INFORMAL_DE.finditer(value)]
        score = max(0, 100 - sum(25 if e["severity"] == "major" else 5 for e in errors))
        judgements[fenced] = {"errors": errors, "score": score}
    if mode == "nonsense":
        return "These listings look fine to me overall."
    if mode == "unknown_id" and judgements:
        judgements["not-asked"] = {"errors": [], "score": 90}
    if mode == "no_score":
        judgements = {key: {"errors": value["errors"]} for key, value in judgements.items()}
    if mode == "bad_span":
        for value in judgements.values():
            value["errors"].append({"span": "words nowhere in it", "category": "fluency", "severity": "major"})
    return json.dumps({"judgements": judgements}, ensure_ascii=False)


JUDGE_REFUSALS = {  # judge_mode → (status, error type, message)
    "fail": (503, "engine_overloaded_error", "The engine is currently overloaded"),
    "model_not_found": (404, "resource_not_found_error", "Not found the model or Permission denied"),
}


def _asks_judge(body: Any) -> bool:
    messages = body.get("messages") if isinstance(body, dict) else None
    return bool(messages) and str(messages[0].get("content", "")).startswith(JUDGE_OPENING)


def _error(span: str, category: str, severity: str) -> dict[str, str]:
    return {"span": span, "category": category, "severity": severity}


def _walk_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _walk_texts(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _walk_texts(item)]
    return []


_TARGET = re.compile(r"(?:Target locale: |, locale )([A-Za-z0-9-]+)")
_STRINGS = re.compile(r"<strings>(.*)</strings>", re.DOTALL)
_MARKUP = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|<[^>]*>|\d+(?:[.,]\d+)*)", re.DOTALL)
# What a string's words become in each language: a phrase, repeated to about the source's length.
WORDS = {"de": "warme Mütze ", "fr": "bonnet chaud ", "ja": "あたたかい帽子 ", "th": "หมวกอุ่น ", "en": "warm hat "}


def translate_string(text: str, locale: str) -> str:
    """A stand-in translation: every run of words becomes the language's phrase, about as long;
    placeholders, Liquid tags, HTML tags and numbers stay exactly where they were."""
    phrase = WORDS.get(locale.split("-")[0], WORDS["en"])
    parts = []
    for part in _MARKUP.split(text):
        if _MARKUP.fullmatch(part) or not part.strip():
            parts.append(part)
        else:
            words = (phrase * (len(part.strip()) // len(phrase) + 1)).strip()
            parts.append(part[: len(part) - len(part.lstrip())] + words + part[len(part.rstrip()) :])
    return "".join(parts)


_PACKED_ID = re.compile(r'<product_data id="([^"]*)">')
_PRODUCT = re.compile(r'<product_data(?: id="([^"]*)")?>\n(.*?)\n</product_data>', re.DOTALL)
# What a careful model keeps of a product: its figures with units and its model names, copied
# as written (the relay's own reading, independent of localize's figure check).
_FACT = re.compile(
    r"\d[\d.,]*(?:\s?[-–]\s?\d[\d.,]*)?\s?-?\s?"
    r"(?:mAh|kWh|Wh|W|V|GHz|MHz|Hz|dB|mm|cm|km|m|ml|litres?|liters?|l|L|kg|g|lb|oz|%|hours?|minutes?|h|°C|°F|inch|in|GB|TB)"
    r"(?![A-Za-z])"
    r"|\b(?:Bluetooth|Wi-?Fi|USB)\s?\d+(?:\.\d+)?\b|\bUSB-[AC]\b"
    r"|(?<![\w-])(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{2,}(?:-[A-Z0-9]+)*(?![\w-])"
)


_MEDIA = re.compile(r"<(?:img|a)\b[^>]*>(?:[^<]*</a>)?")


def facts_line(product_json: str) -> str:
    """The figures and model names of a product's data, as a listing would mention them."""
    try:
        data = json.loads(product_json)
    except ValueError:
        return ""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key != "sku":
                    walk(item)

    walk(data)
    found = [match.group(0) for text in texts for match in _FACT.finditer(text)]
    media = [match.group(0) for text in texts for match in _MEDIA.finditer(text)]
    return ", ".join(dict.fromkeys(found)) + "".join(dict.fromkeys(media))


def listing_for(locale: str) -> dict[str, Any]:
    return dict(LISTINGS.get(locale.split("-")[0], LISTINGS["en"]))


def asked_listing(locale: str, system: str) -> dict[str, Any]:
    """The stock listing with the fields this platform's system prompt asks for besides (Shopify:
    an SEO title and description)."""
    listing = listing_for(locale)
    if '"seo_title": string' in system:
        listing["seo_title"] = listing["title"][:60]
        listing["seo_description"] = listing["description"][:150]
    return listing


@dataclass
class Reply:
    """A scripted HTTP response: any status, body (dict → JSON, str → as is) and headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    """A billed 200 answer whose content is scripted: a listing, or raw text; `usage` replaces
    the usage object (MISSING leaves it out)."""

    listing: dict[str, Any] | None = None
    content: str | None = None
    fenced: bool = False
    finish_reason: str = "stop"
    language: str | None = None  # answer in this language instead of the requested one
    cost_usd: float | None = None  # a relay-stated charge, in usage.cost_usd
    headers: dict[str, str] = field(default_factory=dict)  # e.g. x-ratelimit-* headers
    usage: Any = None  # a usage object as the relay sends it, instead of the counted one
    # For a packed request: per product id, the listing to answer with instead of the usual one
    # (changes merged into it), or OMIT to leave that product out of the answer.
    pack: dict[str, Any] = field(default_factory=dict)
    # What the listing does with the product's figures, names, images and links: "keep" them,
    # "change" the first figure's number, "nudge" it by one in its last digit, "drop" them all,
    # or keep them and "invent" a 12 h.
    facts: str = "keep"
    # For a strings request: per key, the translation to answer with instead (or OMIT).
    strings: dict[str, Any] = field(default_factory=dict)
    # Reasoning tokens billed with the answer: inside completion_tokens (as OpenAI reports
    # them) or, as some relays do, beside it (only total_tokens and the details count them).
    reasoning: int = 0
    reasoning_inside: bool = True
    # The reasoning's text in message.reasoning_content (some relays send it, and no count of it).
    reasoning_text: str | None = None


DROP = "drop"  # close the connection without a response
HANG = "hang"  # answer only after the client has given up
MISSING = object()  # Answer(usage=MISSING): no usage object at all
OMIT = object()  # Answer(pack={"id": OMIT}): no listing for that product
DRIP = "drip"  # send the headers, then the body a byte at a time, slower than any timeout


class _Server(ThreadingHTTPServer):
    # A backlog for a run's first wave of connections: with the default of 5, a burst of new
    # connections can overflow it, and one of them is reset after it was accepted.
    request_queue_size = 128


class FakeRelay:
    def __init__(
        self,
        *,
        hang_s: float = 2.0,
        cached_field: str = "both",
        latency_s: float = 0.0,
        caching: bool = True,
        prompt_factor: int = 1,
        poison: str | None = None,
        poison_locale: str | None = None,
        poison_kind: str = "broken",
        batch: bool = True,
        batch_fate: str = "completed",
        batch_steps: int = 2,
        batch_errors: int = 0,
        batch_models: tuple[str, ...] | None = None,
        batch_stalls: dict[str, int] | None = None,
        batch_output: str | None = None,
        batch_age_s: float = 0.0,
        endless_list: bool = False,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.authorizations: list[str] = []
        self.billed = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "responses": 0}
        # Answers finished after the client gave up: billed by a real relay, never seen by the client.
        self.billed_unseen = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "responses": 0}
        self.statuses: list[int] = []
        self._queue: list[Any] = []
        self._seen_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._hang_s = hang_s
        self._cached_field = cached_field
        self._latency_s = latency_s
        self._caching = caching
        self._prompt_factor = prompt_factor  # bill this many times the prompt tokens (a relay that overbills)
        self._poison = poison  # a product text that breaks every answer to a request holding it
        self._poison_locale = poison_locale  # ...only in this language (the code the system prompt names)
        # ...with broken JSON ("broken": the relay's kind of failure), or JSON that fails every check ("invalid")
        self._poison_kind = poison_kind
        self._counter = 0
        # The batch API (/v1/files, /v1/batches), OpenAI-shaped as Moonshot serves it: a batch
        # moves validating → in_progress (batch_steps polls) → finalizing → completed, or ends
        # `batch_fate` ("expired" after answering half its lines, "failed", "cancelled").
        self.batch = batch
        self.batch_fate = batch_fate
        self.batch_steps = batch_steps
        self.batch_errors = batch_errors  # this many lines of each batch go to its error file
        self.batch_models = batch_models  # the models it batches (None: every one)
        # A bad day: per kind of exchange (probe, upload, create, poll, download), how many
        # answer 503 before one goes through.
        self.batch_stalls = dict(batch_stalls or {})
        # The next batch's bad output file, counted as completed all the same: "repeat" (the second answer
        # carries the first line's custom_id), "drop" (the last two answers left out), "garble"
        # (one answer replaced by bytes that are not UTF-8), "huge" (padded past any need), "rotate"
        # (every answer under the next line's custom_id).
        self.batch_output = batch_output
        self.batch_age_s = batch_age_s  # batches say they were made this long ago (created_at)
        self.endless_list = endless_list  # the list of batches always has more
        self.newer_batches = 0  # batches of other work on the account, made after ours (listed first)
        self.batch_refuses_key = False  # the file upload answers 401, echoing the key
        self.batch_stall_retry_after: str | None = None  # a stall is a 429 with this Retry-After, not a 503
        self.batch_stall_reply: Reply | None = None  # a stall answers this instead (a quota 429, a 408)
        # The model an answer says answered (an alias the relay resolved); None: the one asked.
        self.answering_model: str | None = None
        self.honours_max_tokens = True  # an answer past the request's max_tokens is cut there ("length")
        # Faults planted in listings: per text found in a product's data, changes merged into every
        # listing written for that product (alone or in a pack), as a fluent model's mistakes would be
        # ("facts": what the listing does with the product's figures, as Answer.facts).
        self.plant: dict[str, dict[str, Any]] = {}
        # The quality judge (requests whose system message opens with the judge's contract): "honest"
        # annotates as judge_answer does; "nonsense" answers prose; "unknown_id" judges a listing not
        # asked; "no_score" leaves the score out; "bad_span" quotes text not in the listing; "fail"
        # answers 503; "model_not_found" answers 404.
        self.judge_mode = "honest"
        self.judge_requests = 0
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.uploads = 0
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (ConnectionResetError, BrokenPipeError):
                    pass  # the client dropped a kept-alive connection: its right

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith(("/v1/files", "/v1/batches")):
                    self._respond(relay._batch_api("GET", self.path, self.headers, b""), None)
                    return
                behaviour = relay._next(self.path, None, self.headers.get("Authorization", ""))
                if behaviour is None:
                    behaviour = Reply(
                        200,
                        {"object": "list", "data": [{"id": "kimi-k2"}, {"id": "kimi-k2.6"}, {"id": "mystery-model"}]},
                    )
                self._respond(behaviour, None)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.path.startswith(("/v1/files", "/v1/batches")):
                    self._respond(relay._batch_api("POST", self.path, self.headers, raw), None)
                    return
                body = json.loads(raw or b"null")
                behaviour = relay._next(self.path, body, self.headers.get("Authorization", ""))
                if behaviour is None and relay.judge_mode in JUDGE_REFUSALS and _asks_judge(body):
                    status, kind, message = JUDGE_REFUSALS[relay.judge_mode]
                    behaviour = Reply(status, {"error": {"message": message, "type": kind}})
                if relay._latency_s:
                    time.sleep(relay._latency_s)  # the fake's latency, not test synchronisation
                self._respond(behaviour if behaviour is not None else Answer(), body)

            def _respond(self, behaviour: Any, body: Any) -> None:
                if behaviour == DROP:
                    self.close_connection = True
                    self.connection.close()
                    return
                if behaviour == DRIP:
                    self._drip()
                    return
                unseen = behaviour == HANG
                if unseen:
                    behaviour = Answer()
                # Billed as soon as it is generated, whether or not the client is still there.
                reply = relay._bill(behaviour, body, unseen=unseen) if isinstance(behaviour, Answer) else behaviour
                if unseen:
                    time.sleep(relay._hang_s)  # the fake's latency, not test synchronisation
                if isinstance(reply.body, bytes):
                    data = reply.body
                else:
                    payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body, ensure_ascii=False)
                    data = payload.encode()
                with relay._lock:
                    relay.statuses.append(reply.status)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a hang past its timeout)

            def _drip(self) -> None:
                self.close_connection = True
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    for _ in range(40):  # never finishes before the client's --timeout
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)  # the fake's pace, not test synchronisation
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def enqueue(self, *behaviours: Any) -> None:
        """Script the next responses, in order; each is a Reply, an Answer, DROP or HANG."""
        with self._lock:
            self._queue.extend(behaviours)

    def bill_usd(self, prices: tuple[str, str, str] = ("0.60", "0.15", "2.50")) -> Decimal:
        """What the relay billed, in USD at (input, cached input, output) per million tokens:
        K2's list price by default."""
        billed = self.billed
        uncached = billed["prompt_tokens"] - billed["cached_tokens"]
        price = [Decimal(value) for value in prices]
        tokens = (uncached, billed["cached_tokens"], billed["completion_tokens"])
        return sum((count * each for count, each in zip(tokens, price, strict=True)), Decimal(0)) / 10**6

    def forget_queue(self) -> None:
        """Drop what is scripted and not yet used: the relay answers normally again."""
        with self._lock:
            self._queue.clear()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [body for body in self.requests if body is not None]

    def _next(self, path: str, body: Any, authorization: str) -> Any:
        with self._lock:
            self.paths.append(path)
            self.authorizations.append(authorization)
            if body is not None:
                self.requests.append(body)
            return self._queue.pop(0) if self._queue else None

    def _bill(self, answer: Answer, body: dict[str, Any], *, unseen: bool = False) -> Reply:
        messages = body["messages"]
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        match = _TARGET.search(system)
        locale = answer.language or (match.group(1) if match else "en")
        content = answer.content
        user = "".join(m["content"] for m in messages if m["role"] == "user")
        packed = _PACKED_ID.findall(user)  # as written in the fences (escaped), as an honest model copies them
        poisoned = self._poison is not None and self._poison in user
        if poisoned and self._poison_locale in (None, match.group(1) if match else None):
            broken = (
                ('{"listings": {"', '{"title": ')
                if self._poison_kind == "broken"
                else ('{"listings": {}}', '{"title": 7}')
            )
            content = broken[0] if packed else broken[1]
        asked = _STRINGS.search(user)
        if content is None and system.startswith(JUDGE_OPENING):  # the quality judge's wire contract
            with self._lock:
                self.judge_requests += 1
            content = judge_answer(user, self.judge_mode)
        if content is None and asked is not None:  # the string-translation wire contract
            texts = json.loads(asked.group(1))
            translated = {key: answer.strings.get(key, translate_string(text, locale)) for key, text in texts.items()}
            content = json.dumps(
                {"strings": {k: v for k, v in translated.items() if v is not OMIT}}, ensure_ascii=False
            )
        if content is None:
            listing = dict(answer.listing) if answer.listing else asked_listing(locale, system)
            first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
            facts = {html.unescape(pid or ""): facts_line(block) for pid, block in _PRODUCT.findall(first_user)}
            blocks = {html.unescape(pid or ""): block for pid, block in _PRODUCT.findall(first_user)}
            if packed:  # the packed-request wire contract: a listing per product id
                listings = {}
                for fenced in packed:
                    product_id = html.unescape(fenced)
                    change = answer.pack.get(product_id, {})
                    if change is not OMIT:
                        planted = self._planted(blocks.get(product_id, ""))
                        faults = replace(answer, facts=planted.pop("facts", answer.facts))
                        written = self._with_facts(listing, facts.get(product_id), faults)
                        listings[fenced] = {"id": fenced, **written, **planted, **change}
                content = json.dumps({"listings": listings}, ensure_ascii=False)
            else:
                planted = self._planted(blocks.get("", ""))
                faults = replace(answer, facts=planted.pop("facts", answer.facts))
                written = {**self._with_facts(listing, facts.get(""), faults), **planted}
                content = json.dumps(written, ensure_ascii=False)
            if answer.fenced:
                content = f"```json\n{content}\n```"
        finish_reason = answer.finish_reason
        limit = body.get("max_tokens")
        if self.honours_max_tokens and isinstance(limit, int) and len(content) // 4 + 1 > limit:  # as a model is
            content, finish_reason = content[: (limit - 1) * 4], "length"
        # Deterministic stand-in tokenizer: a token per 4 characters, 4 per message.
        prompt_tokens = (sum(len(m["content"]) // 4 + 4 for m in messages) + 3) * self._prompt_factor
        completion_tokens = len(content) // 4 + 1 + (answer.reasoning if answer.reasoning_inside else 0)
        billed_output = completion_tokens + (0 if answer.reasoning_inside else answer.reasoning)
        with self._lock:
            # Prefix caching: a system prompt seen before is served from cache in 256-token chunks.
            seen = self._caching and system in self._seen_prefixes
            cached = (len(system) // 4) // 256 * 256 if seen else 0
            self._seen_prefixes.add(system)
            bill = self.billed_unseen if unseen else self.billed
            bill["prompt_tokens"] += prompt_tokens
            bill["cached_tokens"] += cached
            bill["completion_tokens"] += billed_output
            bill["responses"] += 1
            self._counter += 1
            number = self._counter
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + billed_output,
        }
        if answer.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": answer.reasoning}
        if self._cached_field in ("both", "top"):
            usage["cached_tokens"] = cached
        if self._cached_field in ("both", "details"):
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        if answer.cost_usd is not None:
            usage["cost_usd"] = answer.cost_usd
        payload: dict[str, Any] = {"usage": usage}
        if answer.usage is MISSING:
            payload = {}
        elif answer.usage is not None:
            payload = {"usage": answer.usage}
        return Reply(
            200,
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "model": self.answering_model or body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": finish_reason,
                        "message": {
                            "role": "assistant",
                            "content": content,
                            **({"reasoning_content": answer.reasoning_text} if answer.reasoning_text else {}),
                        },
                    }
                ],
                **payload,
            },
            {"Msh-Request-Id": f"req-{number}", **answer.headers},
        )

    def _planted(self, block: str) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for text, change in self.plant.items():
            if text in block:
                changes.update(change)
        return changes

    @staticmethod
    def _with_facts(listing: dict[str, Any], facts: str | None, answer: Answer) -> dict[str, Any]:
        """The listing with the product's figures and names in its description, as a model
        that keeps the facts writes it (unless the answer's listing was scripted), or with the
        fault the answer asks for."""
        if answer.listing is not None or answer.facts == "drop":
            return listing
        facts = facts or ""
        if answer.facts == "change":  # one digit more: 20000 mAh becomes 200000 mAh
            facts = re.sub(r"\d+", lambda match: match.group(0) + "0", facts, count=1)
        if answer.facts == "nudge":  # the smallest step: 20000 mAh becomes 20001 mAh, 1.7 l 1.8 l
            facts = re.sub(r"\d(?=\D|$)", lambda match: str((int(match.group(0)) + 1) % 10), facts, count=1)
        if answer.facts == "invent":
            facts += ", 12 h"
        return {**listing, "description": f"{listing['description']} {facts}".rstrip()}

    # --- the batch API --------------------------------------------------------------------

    def _batch_api(self, method: str, path: str, headers: Any, raw: bytes) -> Reply:
        with self._lock:
            self.paths.append(path)
            self.authorizations.append(headers.get("Authorization", ""))
            self._last_key = headers.get("Authorization", "").removeprefix("Bearer ")
        if not self.batch:
            return Reply(404, {"error": {"type": "not_found_error", "message": f"{path} not found"}})
        parts = path.split("?")[0].strip("/").split("/")  # v1, files|batches, id, content|cancel
        kind = {
            ("POST", "files"): "upload",
            ("POST", "batches"): "create",
            ("GET", "files"): "download",
        }.get((method, parts[1]), "poll" if len(parts) >= 3 else "probe")
        with self._lock:
            stalled = self.batch_stalls.get(kind, 0) > 0
            if stalled:
                self.batch_stalls[kind] -= 1
        if stalled and self.batch_stall_reply is not None:
            return self.batch_stall_reply
        if stalled and self.batch_stall_retry_after is not None:  # a rate limit that says when to come back
            error = {"type": "rate_limit_reached_error", "message": "too many requests"}
            return Reply(429, {"error": error}, {"Retry-After": self.batch_stall_retry_after})
        if stalled:
            return Reply(503, {"error": {"type": "engine_overloaded_error", "message": "try again later"}})
        if self.batch_refuses_key and kind == "upload":
            message = f"Invalid API key: {self._last_key}"
            return Reply(401, {"error": {"type": "invalid_authentication_error", "message": message}})
        if parts[1] == "files" and method == "POST":
            return self._upload(headers.get("Content-Type", ""), raw)
        if parts[1] == "files" and len(parts) == 4 and parts[3] == "content":
            content = self.files.get(parts[2])
            return Reply(200, content) if content is not None else Reply(404, {"error": {"message": "no such file"}})
        if parts[1] == "batches" and method == "POST" and len(parts) == 2:
            return self._create(json.loads(raw))
        batch = self.batches.get(parts[2]) if len(parts) >= 3 else None
        if batch is None and len(parts) == 2 and self.endless_list:
            with self._lock:
                self.list_pages = getattr(self, "list_pages", 0) + 1
                page = [{"id": f"batch-other-{self.list_pages}", "object": "batch", "input_file_id": "file-other"}]
            return Reply(200, {"object": "list", "data": page, "has_more": True})
        if batch is None and len(parts) == 2:  # the list, newest first, in pages (limit, after)
            import urllib.parse

            query = dict(urllib.parse.parse_qsl(path.partition("?")[2]))
            made = time.time()
            newer = [
                {"id": f"batch-new-{n}", "object": "batch", "input_file_id": "file-other", "created_at": made}
                for n in range(self.newer_batches)
            ]
            listed = newer + [self._public(b) for b in reversed(self.batches.values())]
            start = next((i + 1 for i, b in enumerate(listed) if b["id"] == query.get("after")), 0)
            page = listed[start : start + int(query.get("limit", 20))]
            return Reply(200, {"object": "list", "data": page, "has_more": start + len(page) < len(listed)})
        if batch is None:
            return Reply(404, {"error": {"message": "no such batch"}})
        if len(parts) == 4 and parts[3] == "cancel":
            batch["status"] = "cancelled"
            return Reply(200, batch)
        return Reply(200, self._advance(batch))

    def _upload(self, content_type: str, raw: bytes) -> Reply:
        import email

        message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.get_payload()
        }
        if fields.get("purpose") != b"batch" or not fields.get("file"):
            return Reply(400, {"error": {"type": "invalid_request_error", "message": "purpose must be batch"}})
        with self._lock:
            self.uploads += 1
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = fields["file"]
        return Reply(200, {"id": file_id, "object": "file", "purpose": "batch", "bytes": len(fields["file"])})

    def _create(self, request: dict[str, Any]) -> Reply:
        content = self.files.get(request.get("input_file_id", ""))
        if content is None:
            return Reply(400, {"error": {"type": "invalid_request_error", "message": "no such input file"}})
        for line in content.decode().splitlines():
            body = json.loads(line)["body"]
            if self.batch_models is not None and body.get("model") not in self.batch_models:
                # Echoing the caller's key, as some gateways do in their errors.
                message = f"model {body.get('model')} does not support batch inference for {self._last_key}"
                return Reply(400, {"error": {"type": "invalid_request_error", "message": message}})
            sampling = sorted({"temperature", "top_p", "n", "presence_penalty", "frequency_penalty"} & set(body))
            if sampling:
                message = f"batch requests may not set sampling parameters: {', '.join(sampling)}"
                return Reply(400, {"error": {"type": "invalid_request_error", "message": message}})
        with self._lock:
            batch_id = f"batch-{len(self.batches) + 1}"
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": request.get("endpoint"),
                "input_file_id": request["input_file_id"],
                "completion_window": request.get("completion_window"),
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "request_counts": {"total": len(content.splitlines()), "completed": 0, "failed": 0},
                "created_at": int(time.time() - self.batch_age_s),
                "_polls": 0,
            }
        return Reply(200, self._public(self.batches[batch_id]))

    def _advance(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One poll: the batch moves a step on its way; at its end its files are written."""
        with self._lock:
            batch["_polls"] += 1
            status = batch["status"]
            if status == "validating":
                batch["status"] = "in_progress"
            elif status == "in_progress" and batch["_polls"] > self.batch_steps:
                batch["status"] = "finalizing"
        if status == "finalizing":
            self._finish(batch)  # bills each answer, taking the lock itself
        return self._public(batch)

    def _finish(self, batch: dict[str, Any]) -> None:
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]].decode().splitlines()]
        if self.batch_fate in ("failed", "cancelled"):
            batch["status"] = self.batch_fate
            return
        answered = lines[: len(lines) // 2] if self.batch_fate == "expired" else lines
        errors = answered[: self.batch_errors]
        outputs = []
        for line in answered[self.batch_errors :]:
            behaviour = self._queue.pop(0) if self._queue else Answer()
            reply = self._bill(behaviour if isinstance(behaviour, Answer) else Answer(), line["body"])
            outputs.append(
                {
                    "id": f"resp-{line['custom_id']}",
                    "custom_id": line["custom_id"],
                    "response": {"status_code": 200, "request_id": f"req-{line['custom_id']}", "body": reply.body},
                    "error": None,
                }
            )
        completed = len(outputs)
        encoded = [json.dumps(o, ensure_ascii=False).encode() for o in outputs]
        fault, self.batch_output = self.batch_output, None  # once: a batch submitted again is sound
        if fault == "repeat" and len(outputs) >= 2:  # two answers under the first line's id
            encoded[1] = json.dumps({**outputs[1], "custom_id": outputs[0]["custom_id"]}, ensure_ascii=False).encode()
        elif fault == "drop":
            encoded = encoded[:-2]
        elif fault == "garble":
            encoded[0] = b'{"custom_id": "\xff\xfe' + encoded[0][20:]
        elif fault == "huge":
            encoded.append(b" " * 2_000_000)
        elif fault == "rotate" and len(outputs) >= 2:  # each answer under the next line's id
            ids = [o["custom_id"] for o in outputs]
            encoded = [
                json.dumps({**o, "custom_id": ids[(n + 1) % len(ids)]}, ensure_ascii=False).encode()
                for n, o in enumerate(outputs)
            ]
        random.Random(len(encoded)).shuffle(encoded)  # output order is not input order
        failed = [
            {
                "id": f"err-{line['custom_id']}",
                "custom_id": line["custom_id"],
                "response": {"status_code": 500, "body": {"error": {"message": "engine error"}}},
                "error": {"code": "server_error", "message": "engine error"},
            }
            for line in errors
        ]
        batch["output_file_id"] = f"file-{len(self.files) + 1}"
        self.files[batch["output_file_id"]] = b"".join(line + b"\n" for line in encoded)
        if failed:
            batch["error_file_id"] = f"file-{len(self.files) + 1}"
            self.files[batch["error_file_id"]] = "".join(json.dumps(e) + "\n" for e in failed).encode()
        batch["request_counts"] = {"total": len(lines), "completed": completed, "failed": len(failed)}
        batch["status"] = "expired" if self.batch_fate == "expired" else "completed"

    def complete_batches(self) -> None:
        """Every batch still running finishes now (as if the relay worked through the night)."""
        for batch in list(self.batches.values()):
            if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                self._finish(batch)

    def batch_jobs(self) -> int:
        """How many jobs the uploaded batch files asked for (a packed line asks for several)."""
        jobs = 0
        for batch in self.batches.values():
            for line in self.files[batch["input_file_id"]].decode().splitlines():
                user = json.loads(line)["body"]["messages"][-1]["content"]
                strings = _STRINGS.search(user)
                jobs += len(json.loads(strings.group(1))) if strings else max(1, user.count("<product_data id="))
        return jobs

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in batch.items() if not key.startswith("_")}

    def __enter__(self) -> FakeRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

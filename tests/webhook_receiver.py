"""A merchant's webhook receiver on loopback: verifies each message's Standard Webhooks
signature with its own code (HMAC-SHA256 of "id.timestamp.body", not the sender's library),
keeps what it accepted, drops a message id it has already (as the spec intends), and has bad
days on demand: any status with any headers, a dropped connection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_BYTES = b"localize-test-webhook-key-0123456789"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
DROP = "drop"
HANG = "hang"  # take the message and answer nothing until the receiver closes


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"


class Receiver:
    def __init__(self, secret: bytes = SECRET_BYTES, port: int = 0) -> None:
        self.secret = secret
        self.accepted: dict[str, dict[str, Any]] = {}  # webhook-id → the message, once
        self.posts: list[tuple[str, dict[str, str]]] = []  # every POST: its id and headers
        self.bad_signatures = 0
        self.paths: list[str] = []
        self._queue: list[Any] = []
        self._lock = threading.Lock()
        self.hanging = threading.Event()  # set when a HANG began
        self._closed = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                behaviour = receiver._next(self.path, headers)
                if behaviour == HANG:
                    receiver.hanging.set()
                    receiver._closed.wait(60)
                    self.close_connection = True
                    return
                if behaviour == DROP:
                    self.close_connection = True
                    return
                reply = behaviour if isinstance(behaviour, Reply) else receiver._receive(headers, body)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/localize?token=s3cret-query-token"

    def enqueue(self, *behaviours: Any) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def _next(self, path: str, headers: dict[str, str]) -> Any:
        with self._lock:
            self.paths.append(path)
            self.posts.append((headers.get("webhook-id", ""), headers))
            return self._queue.pop(0) if self._queue else None

    def _receive(self, headers: dict[str, str], body: bytes) -> Reply:
        """Verify as a receiver would: the signature over id.timestamp.body, then the id once."""
        message_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        expected = base64.b64encode(
            hmac.new(self.secret, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        signatures = [part.split(",", 1)[1] for part in headers.get("webhook-signature", "").split() if "," in part]
        if not any(hmac.compare_digest(expected, given) for given in signatures):
            with self._lock:
                self.bad_signatures += 1
            return Reply(401, body=b'{"error": "bad signature"}')
        with self._lock:
            self.accepted.setdefault(message_id, json.loads(body))
        return Reply(204, body=b"")

    def listings(self) -> list[dict[str, Any]]:
        return [item for message in self.accepted.values() for item in message["data"].get("listings", [])]

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

"""Keep the API key out of everything we write or print.

Some gateways echo the key in their errors ("Invalid API key provided: sk-…"), and a relay's
text reaches records, files, the review page and the terminal. Every such string passes
through a Redactor where it enters (relay.py), and the CLI's error line passes through one too.
"""

from __future__ import annotations

import os
import re

REDACTED = "[redacted]"

# Whatever a gateway might echo besides the exact key: an Authorization value, or a key-shaped
# token (OpenAI-style sk-…, also the masked "sk-abcd****wxyz" forms some gateways print).
_SECRET_SHAPES = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+|\bsk-[A-Za-z0-9_\-*.]{6,}")


class Redactor:
    """Removes `secret` from text, and with `shapes` anything key-shaped too (for the relay's
    own words; a listing may legitimately contain "sk-" and keeps it)."""

    def __init__(self, secret: str | None, *, shapes: bool = True) -> None:
        self._secret = secret.strip() if secret and secret.strip() else None
        self._shapes = shapes

    def __call__(self, text: str) -> str:
        if self._secret and self._secret in text:
            text = text.replace(self._secret, REDACTED)
        if self._shapes and ("sk-" in text or "earer" in text):  # cheap test first: most text has neither
            text = _SECRET_SHAPES.sub(lambda m: (m.group(1) or "") + REDACTED, text)
        return text


def redact_environment_keys(text: str, variables: tuple[str, ...]) -> str:
    """The last net, for messages printed at the CLI: any key set in `variables`."""
    for name in variables:
        text = Redactor(os.environ.get(name), shapes=False)(text)
    return text

"""Right-to-left listings: the direction an HTML description declares, and the invisible
direction marks a listing must not carry.

An Arabic, Hebrew, Persian or Urdu description is shown right to left only if its markup says
so: a storefront's theme is usually left to right. The description's outer element carries
`dir="rtl"` (added when the model left it out, wrapping the text in a `<div>` when it has no
single outer element). Direction marks in the text itself (U+200E LRM, U+200F RLM, the
embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069) are invisible: a stray
mark moves punctuation and digits around, breaks search and a spreadsheet cell, and an
override (U+202D, U+202E) shows the text in another order than it is stored in ("Trojan
Source"). Marks are refused (a check failure, re-asked): the dir attribute does their work.
"""

from __future__ import annotations

import re

LRM, RLM = "\u200e", "\u200f"
_EMBEDDINGS = {"\u202a": "LRE", "\u202b": "RLE"}  # closed by U+202C PDF
_OVERRIDES = {"\u202d": "LRO", "\u202e": "RLO"}
_ISOLATES = {"\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI"}  # closed by U+2069 PDI
PDF, PDI = "\u202c", "\u2069"
MARKS = frozenset({LRM, RLM, PDF, PDI, *_EMBEDDINGS, *_OVERRIDES, *_ISOLATES})
_ANY_MARK = re.compile("[" + "".join(sorted(MARKS)) + "]")
# The description's outer element: one element from its first character to its last.
_OUTER = re.compile(r"\A\s*<([a-zA-Z][a-zA-Z0-9]*)(\s[^<>]*)?>(.*)</\1\s*>\s*\Z", re.DOTALL)
_DIR = re.compile(r"""\sdir\s*=\s*(["']?)([a-zA-Z]*)\1""")
# What we wrap a description without one outer element in (the checks allow it).
RTL_WRAPPER = ('<div dir="rtl">', "</div>")


def direction_marks(text: str) -> str | None:
    """What is wrong with the direction marks in `text`, or None: a left-to-right or
    right-to-left mark, an override, or an embedding or isolate not closed in order."""
    if not _ANY_MARK.search(text):
        return None
    open_: list[str] = []
    for char in _ANY_MARK.findall(text):
        if char in (LRM, RLM):
            return f"a {'left-to-right' if char == LRM else 'right-to-left'} mark (U+{ord(char):04X})"
        if char in _OVERRIDES:
            return f"a direction override (U+{ord(char):04X}, {_OVERRIDES[char]}), which shows the text reordered"
        if char in _EMBEDDINGS or char in _ISOLATES:
            open_.append(char)
        elif not open_ or (char == PDF) != (open_[-1] in _EMBEDDINGS):
            return f"an unpaired closing direction mark (U+{ord(char):04X})"
        else:
            open_.pop()
    if open_:
        return f"an unclosed direction mark (U+{ord(open_[-1]):04X})"
    return None


def declares_rtl(html: str) -> bool:
    """Whether the description's outer element says `dir="rtl"`."""
    outer = _OUTER.match(html)
    if outer is None or _nested_twin(outer.group(1), outer.group(3)):
        return False
    found = _DIR.search(outer.group(2) or "")
    return found is not None and found.group(2).lower() == "rtl"


def with_rtl(html: str) -> str:
    """The description with `dir="rtl"` on its outer element: added to the one element that
    holds it all, else a `<div dir="rtl">` around it."""
    if declares_rtl(html):
        return html
    outer = _OUTER.match(html)
    if outer is not None and not _nested_twin(outer.group(1), outer.group(3)):
        attributes = _DIR.sub("", outer.group(2) or "")
        start = html.index("<")
        return f'{html[:start]}<{outer.group(1)} dir="rtl"{attributes}>{outer.group(3)}</{outer.group(1)}>'
    return f"{RTL_WRAPPER[0]}{html.strip()}{RTL_WRAPPER[1]}"


def without_rtl_wrapper(html: str) -> str:
    """The description inside the wrapper with_rtl adds (the checks read what the model wrote)."""
    stripped = html.strip()
    if stripped.startswith(RTL_WRAPPER[0]) and stripped.endswith(RTL_WRAPPER[1]):
        return stripped[len(RTL_WRAPPER[0]) : -len(RTL_WRAPPER[1])]
    return html


def _nested_twin(tag: str, inner: str) -> bool:
    """Whether `<p>a</p><p>b</p>` fooled the outer match: the first element closes before the
    last (its tag closes inside what the match took for its content)."""
    depth = 0
    for match in re.finditer(rf"<(/?){tag}\b[^<>]*>", inner, re.IGNORECASE):
        depth += -1 if match.group(1) else 1
        if depth < 0:
            return True
    return False

"""What reaches a shop's file: HTML a storefront can render without running anything, and
spreadsheet cells that cannot run either.

A model's answer and a catalog cell are untrusted on their way into an import file: storefront
themes print description HTML raw, and merchants open import CSVs in a spreadsheet. The
validator refuses a listing with script-bearing markup or a formula-shaped field (re-asked), and
drops images and links the source does not have; every writer then passes each HTML field
through `clean_html` and each CSV cell through `safe_cell`, whatever results.jsonl holds (a hand
edit, an older run).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection

import nh3

# The tags the shops we write for render in a product description (Shopify, WooCommerce,
# Magento, Akeneo, Lazada rich text); anything else is reduced to its text.
STOREFRONT_TAGS = frozenset(
    {"p", "br", "ul", "ol", "li", "strong", "b", "em", "i", "u", "h2", "h3", "h4", "span", "blockquote",
     "img", "a", "table", "thead", "tbody", "tr", "th", "td", "div"}
)  # fmt: skip
# The direction a block is written in (a right-to-left listing's dir="rtl"): kept on any tag, these values only.
_DIRECTIONS = {"dir": {"rtl", "ltr", "auto"}}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
}
_URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "action", "formaction", "xlink:href", "poster", "background"})
# Links and images may point at the web (or a relative path on the shop); nothing that runs.
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.-]*)\s*:")
_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!]")
# A cell a spreadsheet reads as a formula (OWASP, "CSV Injection"); a plain signed number is data.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d[\d.,]*%?")


def has_markup(text: str) -> bool:
    return "<" in text and _TAG.search(text) is not None


def clean_html(text: str, tags: Collection[str] = STOREFRONT_TAGS) -> str:
    """`text` with only `tags` (and on them only harmless attributes, URLs only http(s), mailto
    or relative); scripts and styles go with their content. Text without markup is returned
    as written, so a plain `Salt & Pepper` is not turned into an entity."""
    if not has_markup(text):
        return text
    return nh3.clean(
        text,
        tags=set(tags),
        attributes={tag: names for tag, names in _ATTRIBUTES.items() if tag in tags},
        tag_attribute_values={tag: _DIRECTIONS for tag in tags},
        url_schemes=set(URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )


def plain_text(text: str) -> str:
    """A field that is not HTML: any markup in it reduced to its text."""
    return clean_html(text, tags=())


# Where a block of HTML ends, a line does in plain text.
_BLOCK_END = re.compile(r"<\s*br\s*/?\s*>|</\s*(?:p|li|h[1-6]|div|tr|blockquote|ul|ol)\s*>", re.IGNORECASE)
_LIST_ITEM = re.compile(r"<\s*li\b[^>]*>", re.IGNORECASE)


def text_with_breaks(text: str) -> str:
    """A description as plain text for a marketplace that shows no HTML (Shopee): its blocks
    and list items on lines of their own, entities read, tags gone."""
    if not has_markup(text):
        return text.strip()
    text = _LIST_ITEM.sub("• ", _BLOCK_END.sub("\n", text))
    plain = html.unescape(nh3.clean(text, tags=set(), strip_comments=True))
    lines = [" ".join(line.split()) for line in plain.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def unsafe_markup(text: str) -> list[str]:
    """What in `text`'s markup could run on a storefront: event handlers (`on…`), inline
    styles, URLs with a scheme other than http(s) or mailto (`javascript:`, `data:`), and the
    tags that carry code. Empty for text without markup. Read by html5ever (through nh3), which
    tokenizes as a browser does and in one pass: `<img/onerror=…>` and `title="a>" onerror=…`
    are seen, and an unclosed `<a <a <a …` costs no more than its length."""
    if not has_markup(text):
        return []
    found = [f"<{tag.lower()}>" for tag in _CODE_TAG.findall(text)]

    def seen(tag: str, attribute: str, value: str) -> str | None:
        if attribute.startswith("on"):
            found.append(f"an {attribute} handler on <{tag}>")
        elif attribute == "style":
            found.append(f"an inline style on <{tag}>")
        else:
            scheme = _SCHEME.match(value)
            if scheme and scheme.group(1).lower() not in URL_SCHEMES:
                found.append(f"a {scheme.group(1).lower()}: URL in <{tag} {attribute}>")
        return None

    nh3.clean(
        text,
        tags=_EVERY_TAG,
        attributes={"*": set(_URL_ATTRIBUTES | {"style"})},
        generic_attribute_prefixes={"on"},
        attribute_filter=seen,
        url_schemes=set(URL_SCHEMES | _SCRIPT_SCHEMES),
        link_rel=None,
    )
    return list(dict.fromkeys(found))


# Tags whose content is code, and schemes that run it: found so they can be named.
_CODE_TAG = re.compile(r"<\s*(script|style|iframe|object|embed|form|svg|math|base|meta|link)\b", re.IGNORECASE)
_SCRIPT_SCHEMES = frozenset({"javascript", "vbscript", "data", "livescript", "file", "blob", "filesystem"})
# Every tag an attribute may hide on (nh3's defaults and the ones its allow-list leaves out).
_EVERY_TAG = set(nh3.ALLOWED_TAGS) | {
    "img", "a", "div", "span", "body", "video", "audio", "source", "track", "input", "button", "select",
    "textarea", "details", "marquee", "object", "embed", "svg", "iframe", "frameset", "frame", "html",
}  # fmt: skip


def drop_foreign_media(text: str, known: Collection[str]) -> tuple[str, list[str]]:
    """`text` without the images and links whose URL the source does not have (an image
    removed, a link reduced to its text), and those URLs. Unchanged when there are none."""
    if not has_markup(text):
        return text, []
    dropped: list[str] = []

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute in ("src", "href") and value not in known:
            dropped.append(value)
            return None
        return value

    cleaned = _clean_with(text, keep)
    if not dropped:
        return text, []
    cleaned = re.sub(r"<img(?![^>]*\bsrc=)[^>]*>", "", cleaned)  # an image with no source shows nothing
    cleaned = re.sub(r"<a>(.*?)</a>", r"\1", cleaned, flags=re.DOTALL)  # a link with nowhere to go is text
    return cleaned, list(dict.fromkeys(dropped))


def _clean_with(text: str, attribute_filter: Callable[[str, str, str], str | None]) -> str:
    return nh3.clean(
        text,
        tags=set(STOREFRONT_TAGS),
        attributes=_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=set(URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )


def formula_start(text: str) -> bool:
    """Whether a spreadsheet would read `text` as a formula (a plain signed number is data)."""
    return text.startswith(FORMULA_START) and _NUMBER.fullmatch(text) is None


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one that starts like a formula gets a leading
    apostrophe (OWASP's advice; the apostrophe is part of the value a shop's importer reads)."""
    text = "" if value is None else str(value)
    return "'" + text if formula_start(text) else text

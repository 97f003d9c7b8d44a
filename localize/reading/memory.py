"""A translation memory: texts already translated (by a person, another tool, an earlier run),
used for the same source text instead of a request.

`--memory FILE` (repeatable; `memory:` in localize.yaml) reads TMX 1.4, the exchange format of
CAT tools, Weglot and Langify exports. A TMX file is untrusted input, so it is parsed with
defusedxml: a document that declares an entity (the "billion laughs"), refers to an external one,
or is not well formed is refused in one line, as is one over MAX_BYTES. A unit serves a target
locale with its variant in that locale (`pt-BR` serves only `pt-BR`), else with its bare
language's where that language is written in the locale's script (`sv` serves `sv-SE`; `zh`,
simplified, never serves `zh-TW`). Texts match exactly after whitespace is normalised, and a
translation serves only if it passes the checks a model's translation gets (strings.py): the
same placeholders, tags and numbers, no markup that runs, the locale's script, a sane length.

`localize memory export OUT --tmx FILE` writes a run's store texts and human translations back
as TMX, for other tools.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element  # types only: parsing goes through defusedxml
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from ..errors import InputError, LocaleError
from ..locales import Locale, parse_locale
from ..output.layout import RESULTS, STRINGS_FILE
from ..output.run_report import RunOrigin
from ..output.store import RunStore, iter_jsonl
from ..shops import recognise
from .catalog import read_catalog
from .textfile import table_header

# A memory larger than this is not one a run should read whole (a mistake, or an attack).
MAX_BYTES = 64_000_000
_SPACE = re.compile(r"\s+")
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def normal(text: str) -> str:
    """A text as the memory matches it: whitespace runs as one space, none at either end."""
    return _SPACE.sub(" ", text).strip()


@dataclass(slots=True)
class Memory:
    """Source text (normalised) → per language tag (`sv`, `sv-SE`): its translation."""

    units: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where the units came from, for messages

    def add(self, source: str, language: str, translation: str) -> None:
        source, translation = normal(source), translation.strip()
        if not source or not translation:
            return  # (a unit that breaks the store is kept here, refused where it would serve, and named)
        self.units.setdefault(source, {}).setdefault(language.lower(), translation)

    def find(self, source: str, locale: Locale) -> str | None:
        """The translation of `source` for `locale`: its own tag's, else its bare language's
        where that language is written in the locale's script (`de` serves `de-DE`; `zh`,
        simplified, never serves `zh-TW`); a regional variant serves only its own region."""
        variants = self.units.get(normal(source))
        if not variants:
            return None
        own = variants.get(locale.tag.lower())
        if own is not None:
            return own
        general = variants.get(locale.language.lower())
        return general if general is not None and _script_of(locale.language) == locale.script else None

    def __len__(self) -> int:
        return len(self.units)


@functools.lru_cache(maxsize=64)
def _script_of(language: str) -> str | None:
    """The script a bare language is written in (CLDR's likely script: `zh` → Hans)."""
    try:
        return parse_locale(language).script
    except LocaleError:
        return None


def load(paths: Iterable[Path]) -> Memory:
    """Every unit of the TMX files, in order (the first translation of a text wins)."""
    memory = Memory()
    for path in paths:
        for source, language, translation in read_tmx(path):
            memory.add(source, language, translation)
        memory.sources.append(str(path))
    return memory


def read_tmx(path: Path) -> Iterator[tuple[str, str, str]]:
    """(source text, target language, translation) for every unit and target variant of a
    TMX file; the source language is the header's `srclang` (or a unit's own)."""
    root = _parse(path)
    header = root.find("header")
    default_source = (header.get("srclang") if header is not None else None) or ""
    body = root.find("body")
    for unit in body.findall("tu") if body is not None else ():  # body/tu/tuv: TMX nests nothing deeper
        if unit.find("tu") is not None or any(tuv.find(".//tu") is not None for tuv in unit.findall("tuv")):
            raise InputError(
                "the translation memory nests a <tu> inside a <tu> (TMX never does)",
                where=str(path),
                hint="export it again from its tool as TMX 1.4",
            )
        source_language = (unit.get("srclang") or default_source).lower()
        variants = [
            (str(tuv.get(_XML_LANG) or tuv.get("lang") or "").lower().replace("_", "-"), _segment(tuv))
            for tuv in unit.findall("tuv")
        ]
        if source_language in ("", "*all*"):
            source_language = variants[0][0] if variants else ""
        source = next((text for language, text in variants if _same_language(language, source_language)), None)
        if source is None:
            continue
        for language, text in variants:
            if language and not _same_language(language, source_language):
                yield source, language, text


def _parse(path: Path) -> Element:
    where = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read the translation memory: {exc.strerror}", where=where) from None
    if size > MAX_BYTES:
        raise InputError(
            f"the translation memory is {size / 1e6:,.0f} MB, more than {MAX_BYTES // 1_000_000} MB",
            where=where,
            hint="export only the language pairs this catalog needs",
        )
    try:
        root = safe_xml.parse(str(path), forbid_dtd=True).getroot()
    except DefusedXmlException as exc:
        what = {"DTDForbidden": "a DTD", "EntitiesForbidden": "an entity"}.get(
            type(exc).__name__, "an external reference"
        )
        raise InputError(
            f"the translation memory declares {what} (refused: a TMX is untrusted XML)",
            where=where,
            hint="a TMX needs no DTD or entities; export it again from its tool",
        ) from None
    except safe_xml.ParseError as exc:
        line, column = exc.position
        raise InputError(f"not well-formed XML: {exc.msg}", where=f"{where}:{line}:{column}") from None
    except (OSError, UnicodeDecodeError, LookupError, ValueError) as exc:  # an encoding Python does not know too
        raise InputError(f"cannot read the translation memory: {exc}", where=where) from None
    if root is None or root.tag != "tmx":
        if root is None:
            raise InputError("not a TMX file (no root element)", where=where, hint="pass a TMX 1.4 file")
        raise InputError(f"not a TMX file (its root element is <{root.tag}>)", where=where, hint="pass a TMX 1.4 file")
    return root


def _segment(tuv: Element) -> str:
    """A variant's text: its <seg>'s, inline markup's text included, tags of placeholders kept."""
    seg = tuv.find("seg")
    return "".join(seg.itertext()) if seg is not None else ""


def _same_language(tag: str, other: str) -> bool:
    """Whether two tags name one language (`en-US` and `en`): a unit's source, not a target."""
    return tag.replace("_", "-").split("-")[0] == other.replace("_", "-").split("-")[0]


def write_tmx(path: Path, units: Iterable[tuple[str, str, str, str]], *, source_language: str = "en") -> int:
    """A TMX 1.4 file of (source language, source, target language, translation) units; the
    number written."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<tmx version="1.4">',
        f'  <header creationtool="localize" creationtoolversion="1" datatype="plaintext" segtype="block"'
        f' adminlang="en" srclang={quoteattr(source_language)} o-tmf="localize"/>',
        "  <body>",
    ]
    count = 0
    for src_lang, source, language, translation in units:
        lines += [
            "    <tu>",
            f"      <tuv xml:lang={quoteattr(src_lang)}><seg>{escape(source)}</seg></tuv>",
            f"      <tuv xml:lang={quoteattr(language)}><seg>{escape(translation)}</seg></tuv>",
            "    </tu>",
        ]
        count += 1
    lines += ["  </body>", "</tmx>", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return count


def export_memory(out: Path, tmx: Path, *, source_locale: str = "en") -> int:
    """A run's work as TMX, for other tools: its store-text translations (strings.jsonl), the
    titles of the listings people edited or approved (the product's name → the title), and the
    translations a person made in the shop's export the run read; the number of units written."""
    if not any((out / name).is_file() for name in (STRINGS_FILE, RESULTS)):
        raise InputError("nothing to export here", where=str(out), hint="pass a run's --out directory")
    units: list[tuple[str, str, str, str]] = [
        (source_locale, str(line["source"]), str(line["locale"]), str(line["text"]))
        for line in iter_jsonl(out / STRINGS_FILE)
        if line.get("source") and line.get("text")
    ]
    catalog, columns = _run_catalog(out)
    names = {}
    if catalog is not None:
        try:
            names = {product.id: product.name for product in read_catalog(catalog, columns=columns, duplicates="first")}
        except InputError:
            names = {}  # the catalog moved on: the strings are still worth exporting
        header = table_header(catalog) or []
        shop = recognise(header)
        if shop is not None:
            units += [
                (source_locale, text, code, translation) for text, code, translation in shop.translations(catalog)
            ]
    if (out / RESULTS).is_file():
        with RunStore(out, read_only=True) as store:
            for line in store.results():
                kept = line.get("origin") == "human" or line.get("approved")
                if kept and names.get(str(line["id"])) and line.get("title"):
                    units.append((source_locale, names[str(line["id"])], str(line["locale"]), str(line["title"])))
    return write_tmx(tmx, dict.fromkeys(units), source_language=source_locale)


def _run_catalog(out: Path) -> tuple[Path | None, Mapping[str, str] | None]:
    """The catalog the run read, and its column map, as its cost report recorded them."""
    origin = RunOrigin.read(out)
    catalog = origin.catalog if origin.catalog is not None and origin.catalog.is_file() else None
    return catalog, origin.columns

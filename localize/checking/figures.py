"""Figures are facts: the numbers with units, the model and standard names, and the images and
links of a product's source copy, and the check that a listing keeps every one of them.

Figures are compared as values, not strings: `20.000 mAh` (German grouping), `1,7 l` (a decimal
comma), `２００００ｍＡｈ` (full-width) and `20000 mAh` are one figure, and `27 in (68.6 cm)` keeps
27 inches. Units come from pint's registry (conversion factors, dimensions); the table below
only names the ways listings write them, in the languages we write.

Compared by precision, never by a percentage: in one unit a listing's value must equal a
reading of the source's (`20100 mAh` is not `20000 mAh`); across units two figures are one fact
when they agree within what both written precisions allow, half a unit in the last written
digit of each, converted (`1.2 kg (2.6 lb)` holds, `27 in (60 cm)` does not).
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

# How a unit is written → pint's name for it (None: a label compared as written, such as dB).
# Matched case-insensitively ("12 L", "65w", "20000MAH").
UNIT_NAMES: dict[str, str | None] = {
    "mah": "milliampere_hour",
    "ah": "ampere_hour",
    "wh": "watt_hour",
    "kwh": "kilowatt_hour",
    "w": "watt",
    "kw": "kilowatt",
    "v": "volt",
    "hz": "hertz",
    "khz": "kilohertz",
    "mhz": "megahertz",
    "ghz": "gigahertz",
    "db": None,
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "km": "kilometer",
    "in": "inch",
    "inch": "inch",
    "inches": "inch",
    "zoll": "inch",
    "pouces": "inch",
    "pouce": "inch",
    "インチ": "inch",
    "″": "inch",
    "ft": "foot",
    "feet": "foot",
    "l": "liter",
    "liter": "liter",
    "litre": "liter",
    "liters": "liter",
    "litres": "liter",
    "リットル": "liter",
    "ml": "milliliter",
    "cl": "centiliter",
    "kg": "kilogram",
    "g": "gram",
    "gramm": "gram",
    "grammes": "gram",
    "グラム": "gram",
    "mg": "milligram",
    "lb": "pound",
    "lbs": "pound",
    "oz": "ounce",
    "fl oz": "fluid_ounce",
    "fl. oz": "fluid_ounce",
    "fl.oz": "fluid_ounce",
    "%": "percent",
    "h": "hour",
    "hr": "hour",
    "hrs": "hour",
    "hour": "hour",
    "hours": "hour",
    "std": "hour",
    "stunde": "hour",
    "stunden": "hour",
    "heure": "hour",
    "heures": "hour",
    "hora": "hour",
    "horas": "hour",
    "ore": "hour",
    "uur": "hour",
    "時間": "hour",
    "ชั่วโมง": "hour",
    "min": "minute",
    "minute": "minute",
    "minutes": "minute",
    "minuten": "minute",
    "minuti": "minute",
    "minutos": "minute",
    "分": "minute",
    "分間": "minute",
    "นาที": "minute",
    "gb": None,
    "tb": None,
    "mb": None,
    "°c": "degree_Celsius",
    "℃": "degree_Celsius",
    "°f": "degree_Fahrenheit",
    "℉": "degree_Fahrenheit",
    "mph": "mile_per_hour",
    "km/h": "kilometer_per_hour",
}
# What the checks read of one text: a description longer than this holds its facts earlier, and
# every pattern then stays within a bounded time, however long a supplier's text is.
SCAN_CHARS = 32_000
# The most problems one check reports (the re-ask quotes them).
MAX_PROBLEMS = 20

_NUMBER = r"\d+(?:[.,\u00a0\u202f ]\d{3})*(?:[.,]\d+)?"
_UNIT = "|".join(sorted((re.escape(name) for name in UNIT_NAMES), key=len, reverse=True))
_FIGURE = re.compile(
    # Not inside a longer number or a Latin word; Japanese and Thai set figures between letters.
    # Nor at a digit group a number before it could have taken ("1 000 000"): starting again at
    # every group made a long run of them quadratic.
    rf"(?<![0-9A-Za-z.,])(?!(?<=\d[.,\u00a0\u202f ])\d{{3}}(?!\d))"
    rf"(?P<low>{_NUMBER})(?:\s?(?:-|–|—|~|〜|to|bis|à)\s?(?P<high>{_NUMBER}))?"
    rf"[\s\u00a0\u202f]?-?\s?(?P<unit>{_UNIT})(?![A-Za-z])",
    re.IGNORECASE,
)
# Model and standard names: letters and digits mixed in one token (ANC45, WH-1000XM5, IPX5),
# and standards with a version or a plug type (Bluetooth 5.3, Wi-Fi 6, USB-C).
_MODEL = re.compile(r"(?<![\w-])(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{2,}(?:-[A-Z0-9]+)*(?![\w-])")
_STANDARD = re.compile(r"\b(?:Bluetooth|Wi-?Fi|USB|HDMI|DisplayPort|Thunderbolt)\s?\d+(?:\.\d+)?\b|\bUSB-[AC]\b")
# Within one tag ([^<>], not [^>]: an unclosed "<a <a <a …" must not scan to the end from each).
_MEDIA = re.compile(r"<\s*(?:img|a|source|iframe)\b[^<>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]+>")
_TABLE = re.compile(r"<\s*table\b", re.IGNORECASE)
# Source columns that are not copy: codes a listing need not repeat.
SKIPPED_FIELDS = frozenset({"sku", "gtin", "ean", "upc", "isbn", "barcode", "mpn", "tone", "price", "url", "image"})


@dataclass(frozen=True, slots=True)
class Figure:
    """A number with a unit, as written, and the values it may stand for in the unit's base,
    each with half a unit in its last written digit (its precision), also in the base: a number
    like `20.000` is 20000 in German and 20 in English, and `2 500` is 2500 or, after a count,
    500: every reading is kept."""

    text: str
    dimension: str
    unit: str  # the unit (pint's name, or a label as written): one unit compares exactly
    readings: frozenset[tuple[float, float]]  # (value, precision)

    @property
    def values(self) -> frozenset[float]:
        return frozenset(value for value, _ in self.readings)


@dataclass(frozen=True, slots=True)
class Facts:
    """What a listing must keep of its product."""

    figures: tuple[Figure, ...]
    names: tuple[str, ...]
    media: tuple[str, ...]
    tables: int = 0  # HTML tables in the source copy
    # The figures by dimension, and the names as compared, made once: each of the product's
    # listings is checked against them.
    index: _FigureIndex = field(init=False, repr=False, compare=False)
    squeezed_names: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", _FigureIndex(self.figures))
        object.__setattr__(self, "squeezed_names", tuple((name, _squeeze(name)) for name in self.names))

    def __bool__(self) -> bool:
        return bool(self.figures or self.names or self.media or self.tables)


def facts_of(data: Mapping[str, Any]) -> Facts:
    """The facts in a product's source copy (every text a prompt shows but its codes), read
    from the first SCAN_CHARS of each text."""
    texts = [text[:SCAN_CHARS] for key, value in data.items() if key not in SKIPPED_FIELDS for text in _texts(value)]
    media = tuple(dict.fromkeys(src for text in texts for src in _MEDIA.findall(text)))
    plain = [_plain(text) for text in texts]
    figures = _unique(figure for text in plain for figure in extract_figures(text))
    names = tuple(dict.fromkeys(name for text in plain for name in extract_names(text)))
    tables = sum(len(_TABLE.findall(text)) for text in texts)
    return Facts(figures, names, media, tables)


def check_facts(facts: Facts, texts: Sequence[str], *, spaced_groups: bool = False) -> list[str]:
    """What a listing (its texts) got wrong about the facts, each said so the model can fix it:
    a figure missing, changed or invented, a name or an image or link left out. At most
    MAX_PROBLEMS are said (a re-ask need not list thousands). `spaced_groups`: the listing's
    language writes `2 500` for 2500 (extract_figures)."""
    if not facts:
        return []
    texts = [text[:SCAN_CHARS] for text in texts]
    plain = " ".join(_plain(text) for text in texts)
    written = _unique(extract_figures(plain, spaced_groups=spaced_groups))
    in_listing, in_source = _FigureIndex(written), facts.index
    problems: list[str] = []
    named: set[str] = set()  # the listing's figures a problem has named already
    for figure in facts.figures:
        if in_listing.has(figure):
            continue
        near = in_listing.texts(figure.dimension)
        if near:
            problems.append(f"the source says {figure.text}; the listing says {', '.join(near)}")
            named.update(near)
        else:
            problems.append(f"the source says {figure.text}; the listing does not give it")
    for other in written:
        if not in_source.has(other):
            kin = in_source.texts(other.dimension)
            if not kin:
                problems.append(f"the listing says {other.text}, which the source does not (an invented spec)")
            elif other.text not in named:
                problems.append(f"the listing says {other.text}; the source says {', '.join(kin)}")
    squeezed = _squeeze(plain)
    missing = [name for name, squeezed_name in facts.squeezed_names if squeezed_name not in squeezed]
    if missing:
        problems.append(f"keep the names exactly as in the source: {', '.join(missing[:MAX_PROBLEMS])}")
    joined = " ".join(texts)
    dropped = [src for src in facts.media if src not in joined]
    if dropped:
        problems.append(f"keep every image and link of the source with the same address: {', '.join(dropped[:10])}")
    tables = len(_TABLE.findall(joined))
    if tables < facts.tables:
        problems.append(f"keep the source's {facts.tables} table(s) as HTML tables, translating their cells")
    return problems[:MAX_PROBLEMS]


class _FigureIndex:
    """Figures by dimension: whether one matches is a scan of its dimension's few figures, or,
    for a dimension with many (a spec sheet's), a search of their sorted values."""

    def __init__(self, figures: Iterable[Figure]) -> None:
        self._figures: dict[str, list[Figure]] = {}
        for figure in figures:
            self._figures.setdefault(figure.dimension, []).append(figure)
        self._values: dict[str, list[tuple[float, int]]] = {}
        self._reach: dict[str, float] = {}  # the widest precision of a dimension's figures
        for dimension, group in self._figures.items():
            if len(group) > _SCANNED_FIGURES:
                self._values[dimension] = sorted(
                    (value, index) for index, figure in enumerate(group) for value, _ in figure.readings
                )
                self._reach[dimension] = max(precision for figure in group for _, precision in figure.readings)

    def has(self, figure: Figure) -> bool:
        group = self._figures.get(figure.dimension)
        if not group:
            return False
        values = self._values.get(figure.dimension)
        if values is None:
            return any(_same(figure, other) for other in group)
        for value, precision in figure.readings:
            reach = precision + self._reach[figure.dimension] + 1e-9  # every value _same could accept
            start = bisect.bisect_left(values, (value - reach, -1))
            for candidate, index in itertools.islice(values, start, None):
                if candidate > value + reach:
                    break
                if _same(figure, group[index]):
                    return True
        return False

    def texts(self, dimension: str) -> list[str]:
        """The first few figures of a dimension, as written."""
        return [figure.text for figure in self._figures.get(dimension, ())[:3]]


# A dimension with up to this many figures is scanned; with more, searched.
_SCANNED_FIGURES = 8


def extract_figures(text: str, *, spaced_groups: bool = False) -> list[Figure]:
    """Numbers with units in a text (full-width digits and ranges like `5–10 kg` read).
    `spaced_groups`: the text's language groups thousands with a space (French, Swedish...), so
    `2 500 ml` is 2500 ml only; elsewhere it may also be a count and 500 ml, and both are read."""
    text = unicodedata.normalize("NFKC", text)
    found = []
    for match in _FIGURE.finditer(text):
        unit = _unit(match.group("unit"))
        if unit is None:
            continue
        name, dimension, factor, offset = unit
        for part in ("low", "high"):
            number = match.group(part)
            if number is None:
                continue
            readings = frozenset(
                (round(value * factor + offset, 9), precision * abs(factor))
                for value, precision in _readings(number, spaced_groups=spaced_groups)
            )
            found.append(Figure(f"{number} {match.group('unit')}", dimension, name, readings))
    return found


def extract_names(text: str) -> list[str]:
    """Model and standard names in a text."""
    text = unicodedata.normalize("NFKC", text)
    return [*(_STANDARD.findall(text)), *(name for name in _MODEL.findall(text) if not _is_figure_token(name))]


def _is_figure_token(token: str) -> bool:
    """`45H` or `20000MAH` written without a space is a figure, not a model name."""
    match = re.fullmatch(r"(\d+)([A-Z]+)", token)
    return match is not None and match.group(2).lower() in UNIT_NAMES


def _same(a: Figure, b: Figure) -> bool:
    """One fact: in one unit, equal values (notation aside); across units, within what both
    written precisions allow."""
    if a.dimension != b.dimension:
        return False
    if a.unit == b.unit:
        return bool(a.values & b.values)
    return any(abs(x - y) <= hx + hy + 1e-12 for x, hx in a.readings for y, hy in b.readings)


def _readings(number: str, *, spaced_groups: bool = False) -> set[tuple[float, float]]:
    """What a written number may stand for, each with its precision (half a unit in its last
    digit): `20.000` is 20000 or 20.000, `1,7` is 1.7, `1,700` is 1700 or 1.700; with both marks,
    the last is the decimal one. `2 500` is 2500, or (unless `spaced_groups`) a count then 500."""
    readings = set()
    head, space, last = number.rpartition(" ")
    if space and not spaced_groups and head.isdigit() and not last.startswith("0"):
        readings.add((float(last), 0.5))  # "Pack of 2 500 ml", "DX-2 600W", "iPhone 13 128 GB"
    number = re.sub(r"[\u00a0\u202f ]", "", number)
    marks = [char for char in number if char in ".,"]
    if not marks:
        return readings | {(float(number), 0.5)}
    if len(set(marks)) == 2:
        decimal = marks[-1]
        group = "," if decimal == "." else "."
        plain = number.replace(group, "")
        return readings | {(float(plain.replace(decimal, ".")), _half_digit(plain.rpartition(decimal)[2]))}
    mark = marks[0]
    whole, _, tail = number.rpartition(mark)
    if all(len(group) == 3 for group in number.split(mark)[1:]):
        readings.add((float(number.replace(mark, "")), 0.5))  # a thousands separator
    if len(marks) == 1:
        readings.add((float(f"{whole}.{tail}"), _half_digit(tail)))  # a decimal mark
    return readings


def _half_digit(decimals: str) -> float:
    return 0.5 * 10.0 ** -len(decimals)


@cache
def _unit(written: str) -> tuple[str, str, float, float] | None:
    """(unit name, dimension, factor to the base unit, offset) of a unit as written; None
    where the table does not know it."""
    key = re.sub(r"\s+", " ", written.lower())
    if key not in UNIT_NAMES:
        return None
    name = UNIT_NAMES[key]
    if name is None:
        return (key, key, 1.0, 0.0)  # a label: compared as written
    registry = _registry()
    quantity = registry.Quantity(1.0, name)
    base = quantity.to_base_units()
    zero = registry.Quantity(0.0, name).to_base_units().magnitude
    return (name, str(base.dimensionality), float(base.magnitude) - float(zero), float(zero))


def load_units() -> None:
    """Load the unit registry now (a quarter second) rather than on the first unit read: a live
    run loads it before it sends, not in the middle of its first answers, where it would hold
    up every request in flight."""
    _registry()


@cache
def _registry() -> Any:
    import pint  # loaded once, when first needed: a quarter second a CLI run without figures skips

    # Pint's own cache of its parsed definitions (in the user's cache folder) saves a tenth of a
    # second a run. It is only a cache: one that cannot be written, or is read while another run
    # writes it, is passed over and the definitions parsed as without it.
    try:
        return pint.UnitRegistry(cache_folder=":auto:")
    except Exception:  # noqa: BLE001 (whatever a cache read half-written raises)
        return pint.UnitRegistry()


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)


def _plain(text: str) -> str:
    return html.unescape(_TAGS.sub(" ", text)) if "<" in text or "&" in text else text


def _squeeze(text: str) -> str:
    return _SPACES_AND_HYPHENS.sub("", unicodedata.normalize("NFKC", text)).lower()


_SPACES_AND_HYPHENS = re.compile(r"[\s\-‐]")


def _unique(figures: Iterable[Figure]) -> tuple[Figure, ...]:
    seen: dict[tuple[str, str, frozenset[tuple[float, float]]], Figure] = {}
    for figure in figures:
        seen.setdefault((figure.dimension, figure.unit, figure.readings), figure)
    return tuple(seen.values())

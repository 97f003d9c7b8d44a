"""Style guides: a brand's voice and each market's habits, as Markdown files in one folder.

    style/
      brand.md      the voice for every market
      de.md         a language's habits (formality, forms of address, punctuation)
      de-DE.md      a market's (used instead of de.md when both exist)
      amazon.md     a platform's (optional)

A guide may open with YAML front matter; its `avoid:` list names words the listings must not
use (checked in every answer, like the glossary). The text goes into the system message of
exactly the jobs it applies to, so it is part of the prefix the relay caches and of those jobs'
fingerprints: editing `de-DE.md` makes the German jobs stale and no others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..locales import Locale

# What one guide may hold: it is sent with every request of its jobs (a few hundred tokens is
# a paragraph of voice; a whole brand book belongs in a summary).
MAX_GUIDE_CHARS = 4_000
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
DEFAULT_FOLDER = "style"


@dataclass(frozen=True, slots=True)
class Guide:
    """One guide file: its text (front matter removed) and the words it forbids."""

    name: str  # the file name: "de-DE.md"
    text: str
    avoid: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobStyle:
    """What a (platform, locale) is written with: the guides that apply, in order."""

    guides: tuple[Guide, ...] = ()

    @property
    def text(self) -> str:
        return "\n\n".join(guide.text for guide in self.guides if guide.text)

    @property
    def avoid(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(word for guide in self.guides for word in guide.avoid))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(guide.name for guide in self.guides)


class StyleGuides:
    """A folder of guides, each read once."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ConfigError("no such folder", where=f"style: {folder}", hint="point style: at a folder of .md guides")
        self.folder = folder
        # (by name in any case: de-DE.md, de-de.md)
        self._guides = {path.stem.lower(): _read(path) for path in sorted(folder.glob("*.md")) if path.is_file()}

    def for_job(self, platform: str, locale: Locale) -> JobStyle:
        """The brand's guide, the platform's, and the market's (or else the language's)."""
        market = self._guides.get(locale.tag.lower()) or self._guides.get(locale.language.lower())
        found = (self._guides.get("brand"), self._guides.get(platform.lower()), market)
        return JobStyle(tuple(guide for guide in found if guide is not None))


def style_folder(configured: Path | None, catalog: Path) -> Path | None:
    """The guides a run uses: `style:` (or --style), else a `style/` folder beside the catalog."""
    if configured is not None:
        return configured
    beside = catalog.parent / DEFAULT_FOLDER
    return beside if beside.is_dir() else None


def _read(path: Path) -> Guide:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read as UTF-8 text ({exc.__class__.__name__})", where=str(path)) from None
    avoid: tuple[str, ...] = ()
    matter = _FRONT_MATTER.match(text)
    if matter is not None:
        try:
            front = yaml.safe_load(matter.group(1)) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"its front matter is not YAML ({exc.__class__.__name__})", where=str(path)) from None
        words = front.get("avoid", []) if isinstance(front, dict) else None
        if not isinstance(words, list) or not all(isinstance(word, str) and word.strip() for word in words):
            raise ConfigError("avoid: must be a list of words", where=str(path), hint="avoid: [cheap, billig]")
        avoid = tuple(word.strip() for word in words)
        text = text[matter.end() :]
    text = text.strip()
    if len(text) > MAX_GUIDE_CHARS:
        raise ConfigError(
            f"{len(text):,} characters, over the {MAX_GUIDE_CHARS:,} a guide may have",
            where=str(path),
            hint="it goes with every request of its jobs: keep the voice to a few paragraphs",
        )
    return Guide(path.name, text, avoid)

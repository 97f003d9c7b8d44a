"""A platform's listing rules (prompts/<platform>/rules.yaml), with a user's overrides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError

Confidence = Literal["H", "M", "L"]


class FieldRule(BaseModel):
    """Limits for one output field. For list fields the char limits apply to each item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_chars: int = Field(ge=1, description="what the prompt asks for; also sizes estimates")
    max_chars: int | None = Field(None, ge=1, description="hard limit in code points")
    min_chars: int | None = Field(None, ge=0)
    max_bytes: int | None = Field(None, ge=1, description="hard limit in UTF-8 bytes")
    warn_over_chars: int | None = Field(None, ge=1, description="soft limit: a warning, not an error")
    min_items: int | None = Field(None, ge=0)
    max_items: int | None = Field(None, ge=1)
    total_max_bytes: int | None = Field(None, ge=1, description="all items joined by spaces")
    html: bool = False
    allowed_tags: tuple[str, ...] = ()
    forbidden_chars: str = ""
    forbidden_phrases: tuple[str, ...] = ()
    source: str = Field(min_length=1, description="where the limit comes from")
    confidence: Confidence
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FieldRule:
        if self.max_chars is not None and self.target_chars > self.max_chars:
            raise ValueError(f"target_chars {self.target_chars} exceeds max_chars {self.max_chars}")
        if self.min_items is not None and self.max_items is not None:
            if self.min_items > self.max_items:
                raise ValueError(f"min_items {self.min_items} exceeds max_items {self.max_items}")
        return self

    @property
    def expected_items(self) -> int:
        """How many items a list field is expected to hold (1 for a text field)."""
        if self.max_items is None:
            return max(self.min_items or 1, 1)
        return self.max_items if self.min_items is None else (self.min_items + self.max_items) // 2


class TemplateRules(BaseModel):
    """A marketplace's own upload template (--format shopee / lazada): where a seller downloads
    it, and which of its columns takes each of our fields (a field code or a column's label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, str] = Field(min_length=1)
    download: str = Field(min_length=1, description="where in the seller centre the template is downloaded")
    source: str = Field(min_length=1)
    confidence: Confidence


class PlatformRules(BaseModel):
    """Everything the prompt and the validator need to know about one marketplace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: str
    label: str
    title: FieldRule
    description: FieldRule
    bullets: FieldRule
    seo_tags: FieldRule
    guidance: tuple[str, ...] = ()
    markets: tuple[str, ...] | None = Field(None, description="the countries it sells in (None: any)")
    extra_fields: dict[str, FieldRule] = Field(
        default_factory=dict, description="more text fields a platform's answer carries, e.g. Shopify's SEO title"
    )
    template: TemplateRules | None = Field(None, description="the marketplace's own upload template, if it has one")
    locale_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="field overrides for one locale tag, e.g. Amazon JP"
    )

    def for_locale(self, tag: str) -> PlatformRules:
        """These rules with the overrides for one locale applied (itself when there are none)."""
        override = self.locale_overrides.get(tag)
        if not override:
            return self
        merged = _deep_merge(self.model_dump(exclude={"locale_overrides"}), override)
        return PlatformRules.model_validate(merged)

    def fields(self) -> dict[str, FieldRule]:
        """Every field of the answer: the four every platform has, then its extra text fields."""
        return {
            "title": self.title,
            "description": self.description,
            "bullets": self.bullets,
            "seo_tags": self.seo_tags,
            **self.extra_fields,
        }


def _find_builtin() -> Path:
    package = Path(__file__).resolve().parent.parent
    # Installed: packaged as localize/prompts. From a source checkout: the repo's prompts/.
    for candidate in (package / "prompts", package.parent / "prompts"):
        if (candidate / "amazon" / "rules.yaml").is_file():
            return candidate
    raise RuntimeError(f"built-in prompts not found beside {package}; reinstall localize")


BUILTIN_PROMPTS = _find_builtin()


def rules_file(platform: str, prompts_dir: Path | None = None) -> Path:
    """A platform's rules.yaml: the user's (--prompts DIR) where it has one, else the built-in."""
    if prompts_dir is not None and (prompts_dir / platform / "rules.yaml").is_file():
        return prompts_dir / platform / "rules.yaml"
    return BUILTIN_PROMPTS / platform / "rules.yaml"


def load_rules(path: Path, overrides: Mapping[str, Any] | None = None) -> PlatformRules:
    """Read rules.yaml and apply a user's overrides (from localize.yaml `rules:`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {_yaml_problem(exc)}", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read rules: {exc}", where=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of rules", where=str(path))
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return PlatformRules.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top)"
        source = f"{path} with overrides from localize.yaml" if overrides else str(path)
        raise ConfigError(f"{field}: {first['msg']}", where=source) from None


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem

"""calibration.json: what a live run measured (the relay's billed input against our offline
count per locale, the real size of accepted answers per platform and locale), read by later
dry runs and budgets. The live run writes it; the dry run reads it: neither stands on the other."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# calibration.json's version: a file without one is version 1 (the same fields).
CALIBRATION_VERSION = 1


@dataclass(slots=True)
class Calibration:
    """What a live run measured, for later estimates of the same kind of catalog: per locale,
    the relay's billed input against our offline count; per (platform, locale), the real size
    of accepted answers."""

    model: str
    run: str
    source: str = ""
    counted_input: dict[str, int] = field(default_factory=dict)
    billed_input: dict[str, int] = field(default_factory=dict)
    output_tokens: dict[str, int] = field(default_factory=dict)  # "locale/platform" → sum
    answers: dict[str, int] = field(default_factory=dict)  # "locale/platform" → accepted answers

    @classmethod
    def from_attempts(cls, attempts: Iterable[Mapping[str, Any]], *, model: str, run: str) -> Calibration:
        result = cls(model=model, run=run)
        for record in attempts:
            usage = record.get("usage")
            if not isinstance(usage, Mapping) or not record.get("counted_input") or record.get("purpose"):
                continue  # (a judge's request says nothing of how listings are billed)
            locale = str(record.get("locale"))
            result.counted_input[locale] = result.counted_input.get(locale, 0) + int(record["counted_input"])
            result.billed_input[locale] = result.billed_input.get(locale, 0) + int(usage.get("input") or 0)
            if record.get("job_outcome") == "succeeded":
                key = f"{locale}/{record.get('platform')}"
                result.output_tokens[key] = result.output_tokens.get(key, 0) + int(usage.get("output") or 0)
                result.answers[key] = result.answers.get(key, 0) + 1
        return result

    @property
    def is_empty(self) -> bool:
        return not self.counted_input

    def input_ratio(self, locale: str) -> float | None:
        counted = self.counted_input.get(locale)
        return self.billed_input.get(locale, 0) / counted if counted else None

    def output_per_job(self, locale: str, platform: str) -> float | None:
        key = f"{locale}/{platform}"
        return self.output_tokens[key] / self.answers[key] if self.answers.get(key) else None

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "run": self.run,
            "input_ratio": {locale: round(self.input_ratio(locale) or 0, 4) for locale in sorted(self.counted_input)},
            "answers": dict(sorted(self.answers.items())),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CALIBRATION_VERSION,
            "model": self.model,
            "run": self.run,
            "counted_input": self.counted_input,
            "billed_input": self.billed_input,
            "output_tokens": self.output_tokens,
            "answers": self.answers,
        }

    @classmethod
    def load(cls, path: Path, *, model: str) -> Calibration | None:
        """The calibration in `path` if it is for `model`; None when absent or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("model") != model or data.get("version", 1) > CALIBRATION_VERSION:
                return None  # another model's, or a newer version's: estimates go uncalibrated
            return cls(
                model=model,
                run=str(data["run"]),
                source=str(path),
                counted_input={k: int(v) for k, v in data["counted_input"].items()},
                billed_input={k: int(v) for k, v in data["billed_input"].items()},
                output_tokens={k: int(v) for k, v in data["output_tokens"].items()},
                answers={k: int(v) for k, v in data["answers"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

"""Settings from defaults < localize.yaml < environment < command-line flags.

Each value remembers where it came from, so an error can say "--rpm" or
"localize.yaml: rpm" or "LOCALIZE_RPM" rather than a field name the user never typed.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Collection, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from .errors import ConfigError
from .locales import Locale, parse_locale, parse_locales

DEFAULT_CONFIG_NAMES = ("localize.yaml", "localize.yml")
DEFAULT_BASE_URL = "https://api.holysheep.ai/v1"
API_KEY_VARIABLES = ("HOLYSHEEP_API_KEY", "LOCALIZE_API_KEY")
# The most products --pack accepts in one request: each answer must fit in one max_tokens.
PACK_LIMIT = 50
# What a request asks for its answer when nothing sizes it: always explicit, since the API's
# default ("a decent integer such as 1024", KIMI.md §4) cuts long listings into broken JSON.
DEFAULT_MAX_TOKENS = 4096

# What --format writes besides results.jsonl: its results as CSV or JSON, or a shop's import file (shops/).
RESULT_FORMATS = ("jsonl", "csv", "json")


class BatchPrice(BaseModel):
    """A model's price through the batch API, USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0)
    cached_input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    as_of: date | None = None
    source: str | None = None


class PriceOverride(BaseModel):
    """A price table entry, USD per million tokens; `batch` where the model batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0, description="input tokens on a cache miss")
    cached_input: Decimal = Field(ge=0, description="input tokens served from the prefix cache")
    output: Decimal = Field(ge=0)
    as_of: date | None = None
    source: str | None = None
    batch: BatchPrice | None = None
    context_tokens: int | None = Field(None, gt=0, description="the model's context window, prompt and answer")
    max_output_tokens: int | None = Field(None, gt=0, description="the most tokens one answer may hold")
    output_limit_source: str | None = None
    thinks: bool = Field(False, description="thinks by default: the request turns it off unless --thinking")
    thinking_temperature: float | None = Field(None, ge=0, le=2, description="the temperature thinking requires")
    plain_temperature: float | None = Field(
        None, ge=0, le=2, description="the temperature the model requires with thinking disabled"
    )


class Settings(BaseModel):
    """Everything a command needs to know, validated once."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    locales: tuple[Locale, ...] = ()
    platforms: tuple[str, ...] | None = Field(None, description="None: each row's own platform column, else amazon")
    out: Path = Path("localized")
    model: str = Field("kimi-k2", min_length=1)
    base_url: str = DEFAULT_BASE_URL
    rpm: int | Literal["auto"] = 60
    tpm: int | None = Field(None, ge=1)
    pack: int | Literal["auto"] = Field("auto", description="products of one (platform, locale) per request")
    concurrency: int = Field(16, ge=1, le=1000)
    max_retries: int = Field(5, ge=0, le=50)
    max_reasks: int = Field(2, ge=0, le=10, description="re-asks of an invalid answer per job")
    backoff_s: float = Field(1.0, ge=0, le=60, description="first retry's back-off ceiling; doubles")
    http_transport: Literal["aiohttp", "httpx"] = Field(
        "aiohttp", description="the HTTP client under the relay client: aiohttp (less CPU per request) or httpx"
    )
    timeout_s: float = Field(120.0, gt=0, le=3600)
    # None: each request asks for what its own pack needs (planning/packing.request_max_tokens);
    # a number caps every request, and packs are sized to fit it.
    max_tokens: int | None = Field(None, ge=16, le=1_048_576)
    temperature: float = Field(0.6, ge=0, le=1)
    thinking: bool = Field(False, description="let a model that thinks by default think (billed as output)")
    max_cost_usd: Decimal | None = Field(None, gt=0)
    formats: tuple[str, ...] = ("jsonl",)
    prompts_dir: Path | None = None
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    user: str | None = Field(None, min_length=1, max_length=256)
    shard: tuple[int, int] | None = Field(None, description="(K, N): the K-th of N stable slices")
    columns: dict[str, str] = Field(default_factory=dict, description="our field name → the catalog's column")
    glossary: Path | None = None
    style: Path | None = Field(None, description="a folder of style guides (brand.md, de-DE.md, ...)")
    glossary_violation: Literal["fail", "warn"] = Field(
        "fail", description="an answer that breaks the glossary after every re-ask: a failure, or a warning"
    )
    fields: tuple[str, ...] = Field(
        (), description="columns that reach the model: NAME (only these), -NAME (not this), +NAME (this too)"
    )
    source_locale: Locale | None = Field(None, description="the catalog's language (a shop's export: found from it)")
    memory: tuple[Path, ...] = Field((), description="TMX translation memories: their texts fill store strings")
    overwrite_existing: bool = Field(False, description="import files replace the translations a shop's export has")
    # What the shops read (shops/*.py declare their keys: amazon_seller_id, magento_store_views,
    # templates, ...), as given, and where each came from; each shop reads its own.
    shop: dict[str, Any] = Field(default_factory=dict)
    shop_origin: dict[str, str] = Field(default_factory=dict)
    sheet: str | None = Field(None, min_length=1, description="which sheet of a workbook catalog (default: the first)")
    batch: Literal["off", "on", "auto"] = Field(
        "off", description="send through the batch API: on; auto: where the relay batches, else live"
    )
    batch_window: str = Field("24h", description="the batch API's completion window")
    # A small batch is often done in seconds: the first poll comes soon, later ones back off (x1.5).
    batch_poll_s: float = Field(2.0, gt=0, le=3600, description="the first wait between polls of a batch")
    no_wait: bool = Field(False, description="--batch: submit, record, and exit; the same command collects")
    batch_reasks: Literal["live", "batch"] = Field(
        "live", description="--batch: re-ask invalid answers live (fast), or in a follow-up batch (cheaper)"
    )
    duplicates: Literal["error", "first"] = Field(
        "error", description="repeated ids: list them and stop, or keep each id's first row"
    )
    figures: Literal["warn", "strict"] = Field(
        "warn", description="a listing that still changes a figure after every re-ask: a warning, or a failure"
    )
    units: dict[str, Literal["metric", "imperial"]] = Field(
        default_factory=dict, description="per locale, the units the market reads beside the source's"
    )
    adapt: dict[str, str] = Field(
        default_factory=dict, description="per locale, the sibling whose listing it is adapted from: {es-MX: es-ES}"
    )
    judge: Literal["off", "sample", "all"] = Field(
        "off", description="the quality judge: off; sample (listings with warnings and --judge-sample of the rest); all"
    )
    judge_sample: float = Field(0.1, ge=0, le=1, description="the share of listings without warnings judged")
    judge_model: str | None = Field(None, min_length=1, description="the judge's model (default: the run's)")
    min_quality: int | None = Field(
        None, ge=0, le=100, description="--check: exit 1 naming judged listings scored below this"
    )
    force: bool = False
    retry_failed: bool = Field(False, description="send again the failed jobs whose inputs did not change")
    refresh_outdated: bool = Field(
        False, description="regenerate listings a person edited or approved whose source changed"
    )
    require_approved: bool = Field(False, description="--check: exit 1 while any listing is unapproved")
    review_export_s: float = Field(
        1.0, ge=0, le=86400, description="the review server writes the exported files this long after a decision"
    )
    webhook: str | None = Field(None, description="deliver the results to this URL (Standard Webhooks)")
    allow_http: bool = Field(False, description="a webhook over plain http to another machine")
    check: bool = False
    api_key: SecretStr | None = None
    config_path: Path | None = None

    @field_validator("locales", mode="before")
    @classmethod
    def _parse_locales(cls, value: Any) -> Any:
        if isinstance(value, (str, list)):
            return parse_locales(value)
        return value

    @field_validator("memory", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        return (value,) if isinstance(value, (str, Path)) else value

    @field_validator("source_locale", mode="before")
    @classmethod
    def _parse_source_locale(cls, value: Any) -> Any:
        return parse_locale(value) if isinstance(value, str) else value

    @field_validator("fields", mode="before")
    @classmethod
    def _split_fields(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("platforms", "formats", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            items = [item.strip().lower() for item in value.split(",") if item.strip()]
            if not items:
                raise ValueError("is empty")
            return tuple(dict.fromkeys(items))
        return value

    @field_validator("units", mode="before")
    @classmethod
    def _parse_units(cls, value: Any) -> Any:
        """Keys are locales as --locales reads them (`en_us` is en-US)."""
        if not isinstance(value, dict):
            return value
        return {parse_locale(str(code)).tag: system for code, system in value.items()}

    @field_validator("adapt", mode="before")
    @classmethod
    def _parse_adapt(cls, value: Any) -> Any:
        """{es-MX: es-ES} from localize.yaml, or es-MX=es-ES pairs from --adapt (repeatable)."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            pairs = {}
            for item in value:
                target, sep, sibling = str(item).partition("=")
                if not sep or not target.strip() or not sibling.strip():
                    raise ValueError(f"must be LOCALE=SIBLING such as es-MX=es-ES, not {str(item).strip()!r}")
                pairs[target] = sibling
            value = pairs
        if not isinstance(value, dict):
            return value
        adapted = {parse_locale(str(target)).tag: parse_locale(str(sibling)).tag for target, sibling in value.items()}
        for target, sibling in adapted.items():
            if target == sibling or sibling in adapted:
                raise ValueError(f"{target} is adapted from {sibling}, which must be written from the product itself")
        return adapted

    @field_validator("judge", mode="before")
    @classmethod
    def _parse_judge(cls, value: Any) -> Any:
        """`judge: true` in localize.yaml is the sample; `--judge` alone too; `--judge all`."""
        if value is True:
            return "sample"
        if value is False or value is None:
            return "off"
        if isinstance(value, str) and value.strip().lower() in ("all", "sample", "off"):
            return value.strip().lower()
        raise ValueError(f"takes 'all' or nothing (got {value!r}); put the catalog before --judge")

    @field_validator("judge_sample", mode="before")
    @classmethod
    def _parse_share(cls, value: Any) -> Any:
        """0.1, or 10%."""
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100
            except ValueError:
                raise ValueError(f"must be a share such as 0.1 or 10%, not {value!r}") from None
        return value

    @field_validator("rpm", mode="before")
    @classmethod
    def _parse_rpm(cls, value: Any) -> Any:
        return _whole_or_auto(value, "requests per minute", high=None)

    @field_validator("pack", mode="before")
    @classmethod
    def _parse_pack(cls, value: Any) -> Any:
        return _whole_or_auto(value, "products per request", high=PACK_LIMIT)

    @field_validator("columns", mode="before")
    @classmethod
    def _parse_columns(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in value.split(","):
            ours, sep, theirs = item.partition("=")
            if not sep or not ours.strip() or not theirs.strip():
                raise ValueError(f"must be OURS=THEIRS pairs such as id=Handle,name=Title, not {item.strip()!r}")
            pairs[ours.strip()] = theirs.strip()
        return pairs

    @field_validator("shard", mode="before")
    @classmethod
    def _parse_shard(cls, value: Any) -> Any:
        if value is None or isinstance(value, tuple):
            return value
        text = str(value).strip()
        k, sep, n = text.partition("/")
        if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
            raise ValueError(f"must be K/N with 1 <= K <= N, such as 1/4, not {text!r}")
        return (int(k), int(n))

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, not {value!r}")
        return value.rstrip("/")

    @property
    def sends_key_in_clear(self) -> bool:
        """Whether the key would cross a network unencrypted: plain http to a host that is not
        this machine (loopback stays here; a local proxy is fine)."""
        url = urllib.parse.urlsplit(self.base_url)
        return url.scheme == "http" and not is_loopback(url.hostname or "")


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine's (localhost, 127.0.0.0/8, ::1)."""
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Names a user writes (flags, YAML keys) → Settings fields.
_KEY_ALIASES = {
    "platform": "platforms",
    "timeout": "timeout_s",
    "max_cost": "max_cost_usd",
    "format": "formats",
    "prompts": "prompts_dir",
    "map": "columns",
}
# Environment variables read, beside the API key.
_ENV = {
    "LOCALIZE_FIELDS": "fields",
    "LOCALIZE_BASE_URL": "base_url",
    "LOCALIZE_MODEL": "model",
    "LOCALIZE_RPM": "rpm",
    "LOCALIZE_TPM": "tpm",
    "LOCALIZE_PACK": "pack",
    "LOCALIZE_CONCURRENCY": "concurrency",
    "LOCALIZE_MAX_RETRIES": "max_retries",
    "LOCALIZE_TIMEOUT": "timeout_s",
    "LOCALIZE_MAX_TOKENS": "max_tokens",
    "LOCALIZE_MAX_COST": "max_cost_usd",
    "LOCALIZE_USER": "user",
    "LOCALIZE_HTTP_TRANSPORT": "http_transport",
    "LOCALIZE_WEBHOOK_URL": "webhook",
}
_FLAG_FOR = {
    "platforms": "--platform",
    "timeout_s": "--timeout",
    "max_cost_usd": "--max-cost",
    "formats": "--format",
    "prompts_dir": "--prompts",
    "columns": "--map",
}


def _whole_or_auto(value: Any, unit: str, *, high: int | None) -> int | str:
    """A count of at least 1 (at most `high`), from YAML or a flag's text, or 'auto'."""
    bounds = f"1 to {high}" if high is not None else "at least 1"
    problem = f"must be a whole number of {unit} ({bounds}) or 'auto', not {value!r}"
    if isinstance(value, str):
        value = value.strip().lower()
        if value == "auto":
            return "auto"
        try:
            value = int(value)
        except ValueError:
            raise ValueError(problem) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high is not None and value > high):
        raise ValueError(problem)
    return value


def load(
    *,
    flags: Mapping[str, Any],
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    shop_keys: Collection[str] = (),
    formats: Collection[str] | None = None,
) -> Settings:
    """Merge the layers and validate. `flags` holds only options the user actually passed.
    `shop_keys`: the keys and flags the shops own (the registry's, asked by the CLI: config
    knows no shop), kept for them in Settings.shop; `formats`: the --format values the shops
    write (None: not checked here)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    shop: dict[str, Any] = {}
    shop_origin: dict[str, str] = {}

    path = _find_config(config_path, cwd or Path.cwd())
    if path is not None:
        for key, value in _read_yaml(path).items():
            field = _KEY_ALIASES.get(key, key)
            if field not in Settings.model_fields and key in shop_keys:
                shop[key], shop_origin[key] = value, f"{path}: {key}"
                continue
            values[field] = value
            origin[field] = f"{path}: {key}"
        values["config_path"] = path

    for variable, field in _ENV.items():
        if environ.get(variable, "").strip():
            values[field] = environ[variable].strip()
            origin[field] = variable
    for variable in API_KEY_VARIABLES:
        if environ.get(variable, "").strip():
            key = environ[variable].strip()
            if any(ord(char) < 33 or ord(char) == 127 for char in key):
                # Never echo the value: it is a secret, and would go to a CI log.
                raise ConfigError(
                    "the API key contains a line break, space or control character",
                    where=variable,
                    hint="copy the key again as one word, e.g. export HOLYSHEEP_API_KEY=sk-...",
                )
            values["api_key"] = key
            break

    for key, value in flags.items():
        if value is None:
            continue
        if key in shop_keys and _KEY_ALIASES.get(key, key) not in Settings.model_fields:
            shop[key], shop_origin[key] = value, "--" + key.replace("_", "-")
            continue
        field = _KEY_ALIASES.get(key, key)
        if field == "columns" and isinstance(values.get("columns"), dict):
            # --map adds to (and overrides entries of) the config's columns: map.
            value = {**values["columns"], **Settings._parse_columns(value)}
        values[field] = value
        origin[field] = _FLAG_FOR.get(field, "--" + key.replace("_", "-"))

    if shop:
        values.update(shop=shop, shop_origin=shop_origin)
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        raise _config_error(exc, origin, shop_keys) from None
    if formats is not None:
        known = [*RESULT_FORMATS, *formats]
        unknown = [name for name in settings.formats if name not in known]
        if unknown:
            said = f"input should be {', '.join(map(repr, known[:-1]))} or {known[-1]!r} (got {unknown[0]!r})"
            raise ConfigError(said, where=origin.get("formats", "--format"))
    return settings


def _find_config(explicit: Path | None, cwd: Path) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError("no such config file", where=str(explicit), hint="check the --config path")
        return explicit
    for name in DEFAULT_CONFIG_NAMES:
        if (cwd / name).is_file():
            return cwd / name
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {problem}", where=where, hint="fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", where=str(path), hint="save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", where=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of settings (key: value)", where=str(path))
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"setting names must be text, found {key!r}", where=str(path))
    return data


def _config_error(exc: ValidationError, origin: Mapping[str, str], shop_keys: Collection[str] = ()) -> ConfigError:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    field = loc[0] if loc else ""
    if error["type"] == "extra_forbidden":
        known = sorted(
            (set(Settings.model_fields) - {"api_key", "config_path", "shop", "shop_origin"}) | set(shop_keys)
        )
        return ConfigError(
            f"unknown setting {field!r}",
            where=origin.get(field, "config"),
            hint=f"known settings: {', '.join(known)}",
        )
    where = origin.get(field, field)
    if not where.startswith("-"):  # a flag's bad value is named by "(got ...)", not by its position
        where += "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in loc[1:])
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if "not " not in message and not isinstance(got, (dict, list)):
        message += f" (got {got!r})"
    return ConfigError(message[0].lower() + message[1:], where=where)

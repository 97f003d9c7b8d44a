"""Render (product, platform, locale) into chat messages from sandboxed Jinja2 templates.

Each platform is a folder: system.j2 (static instructions: rules, output contract, locale),
user.j2 (the product, fenced as data) and rules.yaml. The system message depends only on
platform and locale, so every request for the same pair shares it as a cacheable prefix.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.sandbox import SandboxedEnvironment

from ..errors import PlatformError, PromptError
from ..locales import Locale
from ..reading.catalog import Product
from ..reading.glossary import Glossary, Term
from ..reading.style import JobStyle, StyleGuides
from .rules import BUILTIN_PROMPTS, PlatformRules, load_rules

TEMPLATE_FILES = ("system.j2", "user.j2", "rules.yaml")
Message = dict[str, str]


def available_platforms(prompts_dir: Path | None = None) -> list[str]:
    """Platforms with a complete template folder, built in or in the user's directory."""
    found = set()
    for root in _roots(prompts_dir):
        for folder in root.iterdir():
            if folder.is_dir() and all((folder / name).is_file() for name in TEMPLATE_FILES):
                found.add(folder.name)
    return sorted(found)


@dataclass(frozen=True, slots=True)
class PromptSet:
    """One platform's templates and rules, ready to render."""

    platform: str
    rules: PlatformRules
    environment: SandboxedEnvironment
    glossary: Glossary | None = None
    units: Mapping[str, str] = field(default_factory=dict)  # locale tag → "metric" | "imperial"
    style: StyleGuides | None = None  # the brand's and the markets' guides (reading/style.py)
    _rules_by_locale: dict[str, PlatformRules] = field(default_factory=dict, repr=False)
    _system_by_locale: dict[tuple[str, bool], str] = field(default_factory=dict, repr=False)
    _user_by_product: dict[int, tuple[Product, list[Term], str]] = field(default_factory=dict, repr=False)
    _facts: dict[str, bool] = field(default_factory=dict, repr=False)
    # user.j2 rendered around a mark where the product's data goes, per (locale, glossary terms).
    _user_skeletons: dict[tuple[str, tuple[Term, ...]], str] = field(default_factory=dict, repr=False)

    def rules_for(self, locale: Locale) -> PlatformRules:
        """The platform's rules with this locale's overrides (Amazon JP's search-term bytes)."""
        rules = self._rules_by_locale.get(locale.tag)
        if rules is None:
            rules = self._rules_by_locale[locale.tag] = self.rules.for_locale(locale.tag)
        return rules

    def render_system(self, locale: Locale, *, packed: bool = False) -> str:
        """The static part: platform rules, output contract, target locale. Rendered once per
        locale: it does not depend on the product. `packed`: the answer holds a listing per
        product of a pack (see render_pack)."""
        system = self._system_by_locale.get((locale.tag, packed))
        if system is None:
            rules = self.rules_for(locale)
            system = self._render(
                "system.j2",
                platform=self.platform,
                rules=rules,
                locale=locale,
                packed=packed,
                units=self.units.get(locale.tag),
            )
            if packed and '"listings"' not in system:  # a template of the user's own that ignores `packed`
                system += PACK_CONTRACT
            if locale.right_to_left and rules.description.html:
                system += RTL_NOTE
            guides = self.style_for(locale).text
            if guides:  # last: the guides vary by market, the rules above by platform
                system += STYLE_SECTION.format(guides=guides)
            self._system_by_locale[(locale.tag, packed)] = system
        return system

    def render_user(self, product: Product, locale: Locale) -> str:
        """The product, fenced as data, after the glossary entries that occur in it. A user
        template that does not mention the locale or its rules (the built-in ones) renders the
        same text for each of a product's locales, so it is rendered once per product."""
        terms = self.terms_for(product, locale)
        cached = self._user_by_product.get(id(product))  # (only a text no locale shapes is kept)
        if cached is not None and cached[0] is product and cached[1] == terms:
            return cached[2]
        if self._user_reads_locale() or product.has_market_keywords:  # (each market its own keywords)
            return self._render_user(product, locale, terms)
        if len(self._user_by_product) >= 16:  # a product's jobs come together: keep only the last few
            self._user_by_product.clear()
        text = self._render_user(product, locale, terms)
        self._user_by_product[id(product)] = (product, terms, text)
        return text

    def _render_user(self, product: Product, locale: Locale, terms: list[Term]) -> str:
        data = product.data()
        market = product.market_keywords(locale.tag)
        if market:  # the market's own search terms, in place of the source's to translate
            data["keywords"] = list(market)
        if self._user_fact("data_in_place"):
            # The text around the data is the same for every product with these terms: rendered
            # once, and each product's data put in its place (exactly what rendering would write).
            key = (locale.tag, tuple(terms))
            skeleton = self._user_skeletons.get(key)
            if skeleton is None:
                if len(self._user_skeletons) >= 256:
                    self._user_skeletons.clear()
                skeleton = self._user_skeletons[key] = self._render_user_with(_DATA_MARK, {}, locale, terms)
            text = skeleton.replace(_DATA_MARK_TEXT, data_json(data))
        else:
            text = self._render_user_with(data, dict(product.fields), locale, terms)
        return text + MARKET_KEYWORDS_NOTE if market else text

    def _render_user_with(self, data: object, product: dict[str, Any], locale: Locale, terms: list[Term]) -> str:
        return self._render(
            "user.j2",
            platform=self.platform,
            rules=self.rules_for(locale),
            locale=locale,
            product=product,
            data=data,
            glossary=terms,
            packed=False,
            units=self.units.get(locale.tag),
        )

    def _user_reads_locale(self) -> bool:
        """Whether user.j2 refers to `locale`, its `rules` or `units` (or pulls in other
        templates, which might): then its text may differ by locale."""
        return self._user_fact("reads_locale")

    def _user_fact(self, name: str) -> bool:
        """What user.j2's syntax tells (reads_locale, data_in_place), read once; a template that
        does not parse is taken to read everything (rendering will report it)."""
        if name not in self._facts:
            path = f"{self.platform}/user.j2"
            try:
                source = self.environment.loader.get_source(self.environment, path)[0]  # type: ignore[union-attr]
                tree = self.environment.parse(source)
            except TemplateError:
                self._facts.update(reads_locale=True, data_in_place=False)
                return self._facts[name]
            pulls_in = any(tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)))
            reads = pulls_in or bool({"locale", "rules", "units"} & meta.find_undeclared_variables(tree))
            self._facts.update(reads_locale=reads, data_in_place=not pulls_in and _data_in_place(tree))
        return self._facts[name]

    def style_for(self, locale: Locale) -> JobStyle:
        """The style guides this platform's listings in `locale` are written with."""
        return self.style.for_job(self.platform, locale) if self.style is not None else JobStyle()

    def terms_for(self, product: Product, locale: Locale) -> list[Term]:
        """The glossary entries this product's text uses, for one locale."""
        if self.glossary is None:
            return []
        return self.glossary.terms_for(data_json(product.data()), locale.tag)

    def render_messages(
        self, product: Product, locale: Locale, sibling: tuple[Locale, Mapping[str, Any]] | None = None
    ) -> list[Message]:
        """Exactly the `messages` the relay receives for this job; with `sibling` (--adapt), the
        listing written for a sibling market, to adapt rather than write anew."""
        user = self.render_user(product, locale)
        if sibling is not None:
            user += adapt_note(sibling[0], locale, sibling[1], self.rules_for(locale))
        return [{"role": "system", "content": self.render_system(locale)}, {"role": "user", "content": user}]

    def render_pack(self, products: Sequence[Product], locale: Locale) -> PackedPrompt:
        """The `messages` of one request for several products (the packed-request wire
        contract): the (platform, locale) system message describing a `{"listings": {...}}`
        answer, and a user message with each product's own text, its fence tagged with its id."""
        blocks = []
        for product in products:
            text = self.render_user(product, locale)
            if "<product_data>" not in text:
                raise PromptError(
                    "to pack products, user.j2 must fence the product in <product_data> … </product_data>",
                    where=f"{self.platform}/user.j2",
                    hint="fence it as the built-in templates do, or run with --pack 1",
                )
            blocks.append(text.replace("<product_data>", f'<product_data id="{fence_id(product.id)}">', 1))
        header = PACK_HEADER.format(count=len(products))
        user = header + "\n".join(blocks)
        messages = [
            {"role": "system", "content": self.render_system(locale, packed=True)},
            {"role": "user", "content": user},
        ]
        return PackedPrompt(messages, header, tuple(blocks))

    def _render(self, name: str, **context: Any) -> str:
        path = f"{self.platform}/{name}"
        try:
            return self.environment.get_template(path).render(**context).strip() + "\n"
        except UndefinedError as exc:
            raise PromptError(
                f"undefined variable: {exc.message}",
                where=_template_where(exc, path),
                hint="guard optional fields with {% if product.x is defined %}",
            ) from None
        except TemplateSyntaxError as exc:
            raise PromptError(exc.message or "syntax error", where=f"{exc.filename}:{exc.lineno}") from None
        except TemplateNotFound as exc:
            raise PromptError(f"template {exc.name} not found", where=path) from None
        except TemplateError as exc:  # includes the sandbox's SecurityError
            raise PromptError(str(exc), where=_template_where(exc, path)) from None


def load_prompt_set(
    platform: str,
    *,
    prompts_dir: Path | None = None,
    rule_overrides: Mapping[str, Any] | None = None,
    glossary: Glossary | None = None,
    units: Mapping[str, str] | None = None,
    style: StyleGuides | None = None,
) -> PromptSet:
    """Load a platform's templates (the user's first, then the built-ins) and its rules."""
    known = available_platforms(prompts_dir)
    if platform not in known:
        where = f" or add {prompts_dir}/{platform}/" if prompts_dir else " or add your own with --prompts DIR"
        raise PlatformError(f"unknown platform {platform!r}", hint=f"choose from {', '.join(known)}{where}")
    rules_path = next(
        root / platform / "rules.yaml" for root in _roots(prompts_dir) if (root / platform / "rules.yaml").is_file()
    )
    rules = load_rules(rules_path, rule_overrides)
    return PromptSet(
        platform=platform,
        rules=rules,
        environment=_environment(prompts_dir),
        glossary=glossary,
        units=dict(units or {}),
        style=style,
    )


@dataclass(frozen=True, slots=True)
class PackedPrompt:
    """A packed request's messages, and the parts of its user message: a header, then one
    block per product (what each product's share of the prompt is measured on)."""

    messages: list[Message]
    header: str
    blocks: tuple[str, ...]


# Opens a packed request's user message.
PACK_HEADER = (
    "This message holds {count} products. Write one listing for each, under the id of its <product_data> tag.\n\n"
)
# Appended to a packed request's system message when the platform's template does not describe
# the packed answer itself (a template of the user's own that predates packing).
# A right-to-left market's HTML description (checking/direction.py adds it where it is missing).
RTL_NOTE = (
    '\nThis language is written right to left: give the description\'s outer element dir="rtl", and'
    " write no direction marks (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).\n"
)

# --adapt: after the product, the listing written for its sibling market, to adapt.
ADAPT_NOTE = (
    "A listing of this product for {sibling} exists, below. Adapt it to {target}: the spelling,"
    " vocabulary, units and currency words this market uses; keep what it says and its structure."
    " The product data above stays the source of every fact.\n<sibling_listing>\n{listing}\n</sibling_listing>\n"
)


def adapt_note(sibling: Locale, target: Locale, listing: Mapping[str, Any], rules: PlatformRules) -> str:
    """The sibling's listing as the adapted job's prompt carries it: its fields, fenced as data."""
    fields = {name: listing[name] for name in rules.fields() if name in listing}
    return ADAPT_NOTE.format(sibling=sibling.display_name, target=target.display_name, listing=data_json(fields))


# After a product whose catalog row gives this market its own search terms (`keywords[de-DE]`).
MARKET_KEYWORDS_NOTE = (
    "Its keywords are this market's own search terms, chosen by the merchant: use them as written"
    " (in the search terms or tags), do not translate them.\n"
)

# The style guides that apply to a job (brand, platform, market), after the rules: the system
# message stays one per (platform, locale), so the relay's prefix cache still serves it.
STYLE_SECTION = (
    "\n\nThe brand's style guide for this market. Follow it wherever it does not conflict with the"
    " rules above (limits, facts and the JSON shape come first):\n<style_guide>\n{guides}\n</style_guide>\n"
)

PACK_CONTRACT = (
    '\nThe user message holds several products, each between <product_data id="…"> and </product_data>. '
    'Answer with one JSON object {"listings": {"<id>": {<the listing described above>}, ...}}: '
    "one listing per product, under the id of its <product_data> tag exactly as written there.\n"
)


def fence_id(product_id: str) -> str:
    """A catalog id as it stands in `<product_data id="…">`: escaped, so it cannot end the
    attribute or the tag."""
    return html.escape(product_id, quote=True)


_DATA_JSON = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def data_json(value: Any) -> str:
    """JSON for a data block, with '<' escaped so the text can never close its fence."""
    if value is _DATA_MARK:
        return _DATA_MARK_TEXT
    return _DATA_JSON.encode(value).replace("<", "\\u003c")


# Where a product's data goes in user.j2 rendered once for many products: JSON escapes every
# control character, so no product's data (nor a template's text) holds this mark.
_DATA_MARK = object()
_DATA_MARK_TEXT = "\x00localize:data\x00"
# Nodes whose output reaches the text as written (a filter block, a macro or a `set` block
# would change or move it).
_AS_WRITTEN = (nodes.Template, nodes.Output, nodes.If, nodes.For)


def _data_in_place(tree: nodes.Template) -> bool:
    """Whether user.j2 writes the product only as `{{ data | data_json }}`, whole and as
    written, and reads nothing else of it (no other use of `data`, no `product`): then its
    text is the same around every product's data."""
    placed: set[int] = set()

    def walk(node: nodes.Node, as_written: bool) -> None:
        if isinstance(node, nodes.Output) and as_written:
            for child in node.nodes:
                if (
                    isinstance(child, nodes.Filter)
                    and child.name == "data_json"
                    and isinstance(child.node, nodes.Name)
                    and child.node.name == "data"
                    and not child.args
                    and not child.kwargs
                    and child.dyn_args is None
                    and child.dyn_kwargs is None
                ):
                    placed.add(id(child.node))
        for inner in node.iter_child_nodes():
            walk(inner, as_written and isinstance(node, _AS_WRITTEN))

    walk(tree, True)
    for name in tree.find_all(nodes.Name):
        if name.name == "product" or (name.name == "data" and id(name) not in placed):
            return False
    return True


def _roots(prompts_dir: Path | None) -> list[Path]:
    if prompts_dir is None:
        return [BUILTIN_PROMPTS]
    if not prompts_dir.is_dir():
        raise PromptError("no such directory", where=str(prompts_dir), hint="--prompts takes a folder")
    return [prompts_dir, BUILTIN_PROMPTS]


class _Environment(SandboxedEnvironment):
    """Jinja's sandbox, with each template's globals as a plain dict rather than a ChainMap over
    the environment's: ours never change once it is set up, and every render copies them into
    its context, which from a ChainMap was a third of a render's time."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


@lru_cache(maxsize=8)
def _environment(prompts_dir: Path | None) -> SandboxedEnvironment:
    # Product text reaches templates, so they render sandboxed; a typo in a variable is an
    # error rather than an empty string silently sent to the model.
    env = _Environment(
        loader=FileSystemLoader([str(root) for root in _roots(prompts_dir)]),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates do not change during a run; skip the mtime checks
    )
    env.filters["data_json"] = data_json
    return env


def _template_where(exc: BaseException, fallback: str) -> str:
    """file:line of the template frame that failed (Jinja rewrites tracebacks to show it)."""
    where = fallback
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where

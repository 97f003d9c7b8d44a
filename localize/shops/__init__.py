"""The shops: each one's export read as a catalog, its import file written from a run's
listings, and what that file needs checked before anything is sent.

Adding a shop is one module beside these (a `Shop` subclass: base.py) and one line in SHOPS.
A CSV catalog is read as the first shop's export whose header it recognises, in SHOPS' order.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .akeneo import Akeneo
from .amazon import Amazon
from .base import Delivery, ImportFile, Lint, ProductRows, Shop, ShopOption, StoreString, option_value
from .lazada import Lazada
from .magento import Magento
from .shopee import Shopee
from .shopify import ShopifyProducts
from .translate_adapt import ImportSummary, TranslateAdapt
from .woocommerce import WooCommerce

if TYPE_CHECKING:
    from ..config import Settings

SHOPS: list[Shop] = [
    ShopifyProducts(),
    WooCommerce(),
    Magento(),
    Akeneo(),
    TranslateAdapt(),
    Amazon(),
    Shopee(),
    Lazada(),
]


def recognise(header: list[str]) -> Shop | None:
    """The shop whose export has this CSV header, or None (a catalog in our own columns)."""
    return next((shop for shop in SHOPS if shop.recognises(header)), None)


def import_formats() -> list[str]:
    """The --format values that write a shop's import file."""
    return [shop.import_format for shop in SHOPS if shop.import_format]


def options() -> dict[str, ShopOption]:
    """Every setting a shop reads, by its localize.yaml key (one declaration each)."""
    return {option.key: option for shop in SHOPS for option in shop.options}


def setting_keys() -> frozenset[str]:
    """The localize.yaml keys and flag names the shops own (config keeps them for the shops)."""
    found = options()
    return frozenset(found) | {option.flag for option in found.values() if option.flag}


def check_settings(settings: Settings) -> None:
    """Every shop setting the run was given, read now (ConfigError, exit 2, where one cannot be)."""
    for option in options().values():
        if option.key in settings.shop or (option.flag and option.flag in settings.shop):
            option_value(option, settings)


def file_names() -> list[str]:
    """Every name a shop's import files take in OUT (what a merge, which writes none, removes)."""
    return [name for shop in SHOPS for name in shop.files]


def written_for(formats: Iterable[str]) -> tuple[str, ...]:
    """The platforms whose listings the asked import files want, in SHOPS' order: each shop's
    own (a Magento file from listings written for Magento: HTML, SEO fields)."""
    asked = set(formats)
    return tuple(dict.fromkeys(shop.platform for shop in SHOPS if shop.import_format in asked and shop.platform))


def borrowed(formats: Iterable[str], platforms: Iterable[str]) -> list[tuple[Shop, str | None]]:
    """The asked import files that --platform writes no copy for (`-p amazon --format
    magento`): each with the platform whose listings it is written from instead (as
    web_shop_listings chooses: shopify's, else the run's only platform's), None when there are none."""
    have = list(dict.fromkeys(platforms))
    found: list[tuple[Shop, str | None]] = []
    for shop in SHOPS:
        if shop.import_format not in set(formats) or not shop.platform or not have or shop.platform in have:
            continue
        if shop.platform == "amazon":  # a feed is written from amazon listings only
            found.append((shop, None))
        elif "shopify" not in have:
            found.append((shop, have[0] if len(have) == 1 else None))
    return found


def check_imports(settings: Settings, catalog: Path, products: ProductRows) -> None:
    """Before anything is sent: what each asked-for import file needs (exit 2 if missing)."""
    for shop in SHOPS:
        if shop.import_format and shop.import_format in settings.formats:
            shop.check(settings, catalog, products)


@dataclass(slots=True)
class Imports:
    """The import files a run wrote, and those it removed (asked for no more)."""

    files: list[ImportFile] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    @property
    def shopify(self) -> ImportSummary | None:
        """The Translate & Adapt file's account, row by row, where the run made one."""
        return next((file for file in self.files if isinstance(file, ImportSummary)), None)


def write_imports(delivery: Delivery) -> Imports:
    """Write the import files the run asks for, and remove the others' (a file that no longer
    matches results.jsonl must not stay in OUT)."""
    done = Imports()
    for shop in SHOPS:
        if shop.asked(delivery.settings, delivery.catalog):
            done.files += shop.write(delivery)
            continue
        for name in shop.files:
            path = delivery.out / name
            if path.is_dir():
                shutil.rmtree(path)
                done.removed.append(path)
            elif path.exists():
                path.unlink()
                done.removed.append(path)
    return done


__all__ = ["SHOPS", "Delivery", "ImportFile", "ImportSummary", "Imports", "Lint", "Shop", "StoreString", "recognise"]

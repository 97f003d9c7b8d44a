"""Adding a shop is one module and a line in the registry: this file is that module for a small
made-up shop ("Kiosk"), registered the way shops/__init__.py registers the real ones, and driven
through the CLI like any other: its export read as a catalog, its pre-check run before anything
is sent, its import file written from the listings, named in the cost report and removed when no
longer asked for."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write
from fake_relay import FakeRelay

from localize import shops
from localize.config import Settings
from localize.errors import ConfigError
from localize.output.store import atomic_write, iter_jsonl
from localize.reading.textfile import Records
from localize.shops.base import Delivery, ImportFile, ProductRows, Row, Shop, csv_text, web_shop_listings


class Kiosk(Shop):
    """Kiosk exports `Kiosk code;Item;Blurb`; it imports `code;language;item;blurb;bullets` rows."""

    name = "kiosk"
    title = "Kiosk"
    import_format = "kiosk"
    files = ("kiosk_import.csv",)

    def recognises(self, columns: list[str]) -> bool:
        return columns[:1] == ["Kiosk code"]

    def products(self, header: list[str], records: Records, *, source_locale: str | None = None) -> Iterator[Row]:
        for line, record in records:
            yield line, {"id": record["Kiosk code"], "name": record["Item"], "description": record["Blurb"]}

    def describe(self, header: list[str], records: Records, *, source_locale: str | None = None) -> str:
        return f"Kiosk export: {sum(1 for _ in records)} items"

    def check(self, settings: Settings, catalog: Path, products: ProductRows) -> None:
        if any(locale.language == "ja" for locale in settings.locales):
            raise ConfigError("--format kiosk has no Japanese shelf", hint="leave ja-JP out of --locales")

    def write(self, delivery: Delivery) -> list[ImportFile]:
        listings = web_shop_listings(delivery.results, self.name)
        rows = [[item.id, item.locale, item.title, item.description, item.bullets_html] for item in listings]
        path = delivery.out / self.files[0]
        atomic_write(path, csv_text(["code", "language", "item", "blurb", "bullets"], rows, delimiter=";"))
        return [ImportFile(self.name, path, len(rows))]


@pytest.fixture(autouse=True)
def kiosk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-kiosk-test")
    write(tmp_path / "localize.yaml", "rpm: 60000\nbackoff_s: 0.001\n")
    monkeypatch.setattr(shops, "SHOPS", [*shops.SHOPS, Kiosk()])  # the registry line


EXPORT = (
    "Kiosk code;Item;Blurb\n"
    "K-1;Travel mug 350 ml;Keeps coffee hot for 6 hours. Dishwasher safe lid.\n"
    "K-2;Canvas tote;Holds 12 kg of groceries, 38 x 42 cm, organic cotton.\n"
)


def run(run_cli, relay: FakeRelay, catalog: Path, *args: str):
    return run_cli("run", catalog, "--base-url", relay.base_url, "--out", "out", "-p", "shopify", *args)


def test_a_new_shop_reads_its_export_and_writes_its_import_file(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    export = write(tmp_path / "kiosk.csv", EXPORT)
    result = run(run_cli, relay, export, "-l", "de-DE,fr-FR", "--format", "kiosk")
    assert result.exit_code == 0, result.stderr
    assert "Kiosk export: 2 items" in result.stderr
    assert f"Import file (kiosk): {Path('out/kiosk_import.csv')}: 4 rows." in result.stderr
    listings = {(r["id"], r["locale"]): r for r in iter_jsonl(Path("out/results.jsonl"))}
    assert set(listings) == {("K-1", "de-DE"), ("K-1", "fr-FR"), ("K-2", "de-DE"), ("K-2", "fr-FR")}
    text = Path("out/kiosk_import.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert [(row["code"], row["language"]) for row in rows] == sorted(listings)
    mug = next(row for row in rows if (row["code"], row["language"]) == ("K-1", "de-DE"))
    assert mug["item"] == listings[("K-1", "de-DE")]["title"] and mug["bullets"].startswith("<ul><li>")
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    assert report["import_files"] == [
        {"shop": "kiosk", "path": str(Path("out/kiosk_import.csv")), "rows": 4, "kept": 0, "failed": 0}
    ]
    again = run(run_cli, relay, export, "-l", "de-DE,fr-FR")  # not asked for: removed, and said so
    assert again.exit_code == 0, again.stderr
    assert not Path("out/kiosk_import.csv").exists()
    assert f"Removed {Path('out/kiosk_import.csv')}: its --format was not asked for this run." in again.stderr
    report = json.loads(Path("out/cost_report.json").read_text(encoding="utf-8"))
    assert report["import_files_removed"] == [str(Path("out/kiosk_import.csv"))]


def test_a_new_shops_pre_check_stops_the_run_before_anything_is_sent(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    export = write(tmp_path / "kiosk.csv", EXPORT)
    result = run(run_cli, relay, export, "-l", "de-DE,ja-JP", "--format", "kiosk")
    assert result.exit_code == 2
    assert "--format kiosk has no Japanese shelf" in result.stderr and relay.chat_requests == []


def test_an_unknown_format_lists_the_new_shop_among_those_known(run_cli, relay: FakeRelay, tmp_path: Path) -> None:
    export = write(tmp_path / "kiosk.csv", EXPORT)
    result = run(run_cli, relay, export, "-l", "de-DE", "--format", "kisok")
    assert result.exit_code == 2 and "'kiosk'" in result.stderr.splitlines()[-1]

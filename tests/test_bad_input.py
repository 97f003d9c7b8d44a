"""Bad input: exit 2, one line on stderr saying what, where and how to fix; no traceback."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest
from conftest import write


def assert_bad_input(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


def estimate(run_cli, catalog, *extra: str):
    return run_cli("estimate", catalog, "--locales", "de-DE", *extra)


CSV_CASES = {
    "empty": ("", ["the file is empty", "add a header row"]),
    "header_only": ("id,name,brand\n", ["header but no products"]),
    "id_with_a_line_break": ('id,name\n"A\n1",Mug\n', [":2", "holds a line break", "'A\\n1'"]),
    "missing_id_column": (
        "sku,name\n1,Mug\n",
        [":1:", "missing required column 'id'", "the header has: sku, name", "--map id=sku"],
    ),
    "missing_name_column": ("id,Title\n1,Mug\n", [":1:", "missing required column 'name'", "--map name=Title"]),
    "missing_both_columns": (
        "ref,label x\n1,Mug\n",
        ["missing required columns 'id' and 'name'", "id=COLUMN,name=COLUMN"],
    ),
    "duplicate_id": ("id,name\nA,Mug\nB,Cup\nA,Bowl\n", [":4:", "duplicate id 'A'", "first at line 2"]),
    "empty_id": ("id,name\nA,Mug\n,Cup\n", [":3", "column id", "empty id"]),
    "empty_name": ("id,name\nA,\n", [":2", "column name", "empty name"]),
    "unclosed_quote": ('id,name\nA,Mug\nB,"Cup\nC,Bowl\n', [":3:", "broken quoting"]),
    "text_after_quote": ('id,name\nA,"Mug"x\n', [":2:", "broken quoting"]),
    "extra_field": ("id,name\nA,Mug,red\n", [":2:", "3 fields but the header has 2"]),
    "duplicate_column": ("id,name,name\nA,Mug,Cup\n", [":1:", "duplicate column 'name'"]),
}


@pytest.mark.parametrize("content,fragments", CSV_CASES.values(), ids=CSV_CASES.keys())
def test_bad_csv_exits_2_with_location(run_cli, tmp_path: Path, content: str, fragments: list[str]) -> None:
    catalog = write(tmp_path / "catalog.csv", content)
    assert_bad_input(estimate(run_cli, catalog), "catalog.csv", *fragments)


def test_latin1_bytes_exit_2_naming_line_and_utf8(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "catalog.csv", "id,name\nA,Mug\nB,Caf\xe9 cup\n".encode("latin-1"))
    assert_bad_input(estimate(run_cli, catalog), "catalog.csv:3", "0xe9", "not UTF-8", "save the file as UTF-8")


def _zip(*names: str) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in names:
            zipped.writestr(name, "id,name\n1,Hat\n")
    return archive.getvalue()


NOT_TEXT = {
    "xlsx_named_as_csv": ("catalog.csv", _zip("[Content_Types].xml", "xl/workbook.xml"), "not well-formed XML"),
    "xlsx": ("catalog.xlsx", _zip("docProps/app.xml"), "not an Excel workbook"),
    "legacy_xls": ("catalog.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "spreadsheet workbook"),
    "zip": ("catalog.zip", _zip("catalog.csv"), "a compressed file"),
    "gzip": ("catalog.csv.gz", gzip.compress(b"id,name\n1,Hat\n"), "a compressed file"),
    "bzip2": ("catalog.csv.bz2", bz2.compress(b"id,name\n1,Hat\n"), "a compressed file"),
}


@pytest.mark.parametrize("name,content,fragment", NOT_TEXT.values(), ids=NOT_TEXT.keys())
def test_a_workbook_or_archive_is_named_as_such(
    run_cli, tmp_path: Path, name: str, content: bytes, fragment: str
) -> None:
    """What merchants pass by mistake: said for what it is, with what to do instead."""
    result = estimate(run_cli, write(tmp_path / name, content))
    hint = "unpack it" if fragment == "a compressed file" else "CSV UTF-8"
    assert_bad_input(result, name, fragment, hint)


def test_a_csv_whose_header_starts_like_a_magic_number_is_still_read(run_cli, tmp_path: Path) -> None:
    from localize.reading.catalog import read_catalog

    catalog = write(tmp_path / "catalog.csv", "BZh,id,name\nx,1,Hat\n")
    assert estimate(run_cli, catalog).exit_code == 0
    (product,) = read_catalog(catalog)  # read as the CSV it is: the column named BZh holds x
    assert (product.id, product.name, product.fields.get("BZh")) == ("1", "Hat", "x")


def test_missing_file_exits_2(run_cli, tmp_path: Path) -> None:
    assert_bad_input(estimate(run_cli, tmp_path / "nope.csv"), "nope.csv", "no such file")


def test_directory_exits_2(run_cli, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    assert_bad_input(estimate(run_cli, tmp_path / "folder"), "folder", "is a directory")


JSON_CASES = {
    "syntax": ('[{"id": 1, "name": "A"},\n {"id": 2 "name": "B"}]', ["catalog.json:2:11", "invalid JSON"]),
    "truncated": ('[{"id": 1, "name": "A"},\n {"id": 2,', ["catalog.json:2", "invalid JSON"]),
    "object_without_products": ('{"items": []}', ['no "products" list']),
    "products_not_a_list": ('{"products": {"id": 1}}', ['"products" is not a list']),
    "scalar": ('"hello"', ["not a list or an object"]),
    "list_of_numbers": ("[1, 2]", ["catalog.json:1", "must be an object, found int"]),
    "missing_name": ('[{"id": 1}]', ["product has no 'name'"]),
    "id_is_object": ('[{"id": {"x": 1}, "name": "A"}]', ["column id", "'id' must be a string"]),
    "features_not_list": ('[{"id": 1, "name": "A", "features": {"a": 1}}]', ["column features", "list of strings"]),
    "trailing_data": ('[{"id": 1, "name": "A"}] []', ["unexpected data after the end"]),
}


@pytest.mark.parametrize("content,fragments", JSON_CASES.values(), ids=JSON_CASES.keys())
def test_bad_json_exits_2(run_cli, tmp_path: Path, content: str, fragments: list[str]) -> None:
    catalog = write(tmp_path / "catalog.json", content)
    assert_bad_input(estimate(run_cli, catalog), "catalog.json", *fragments)


def test_bad_jsonl_line_exits_2_with_line(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "catalog.jsonl", '{"id": 1, "name": "A"}\n{"id": 2, name: "B"}\n')
    assert_bad_input(estimate(run_cli, catalog), "catalog.jsonl:2", "invalid JSON", "one complete JSON object")


LOCALE_CASES = {
    "unknown_language": ("jp-JP", ["unknown locale 'jp-JP'", "did you mean ja-JP"]),
    "unknown_pair": ("de-JP", ["unknown locale 'de-JP'", "ja-JP", "de-DE"]),
    "malformed": ("de--DE", ["malformed locale code 'de--DE'", "did you mean de-DE"]),
    "a_language_name": ("japanese", ["malformed locale code 'japanese'", "ja-JP"]),
    "nonsense": ("xx-YY", ["unknown locale 'xx-YY'", "BCP-47"]),
    "empty_list": (",", ["no locales given"]),
}


@pytest.mark.parametrize("code,fragments", LOCALE_CASES.values(), ids=LOCALE_CASES.keys())
def test_bad_locale_exits_2_with_suggestions(run_cli, sample: Path, code: str, fragments: list[str]) -> None:
    assert_bad_input(run_cli("estimate", sample, "--locales", code), *fragments)


def test_missing_locales_option_exits_2(run_cli, sample: Path) -> None:
    assert_bad_input(run_cli("estimate", sample), "no locales given", "--locales")


def test_unknown_platform_exits_2_listing_known(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE", "--platform", "ebay")
    assert_bad_input(
        result, "unknown platform 'ebay'", "akeneo, amazon, lazada, magento, shopee, shopify, woocommerce", "--prompts"
    )


def test_unknown_platform_in_a_row_names_the_line(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", "id,name,platform\nA,Mug,amazon\nB,Cup,etsy\n")
    assert_bad_input(estimate(run_cli, catalog), "c.csv:3", "column platform", "unknown platform 'etsy'")


def test_bad_locale_in_a_row_names_the_line(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", "id,name,locales\nA,Mug,de-DE|jp-JP\n")
    assert_bad_input(estimate(run_cli, catalog), "c.csv:2", "column locales", "unknown locale 'jp-JP'")


OPTION_CASES = {
    "rpm_zero": (["--rpm", "0"], ["--rpm", "at least 1"]),
    "rpm_word": (["--rpm", "fast"], ["--rpm", "'auto'"]),
    "negative_concurrency": (["--concurrency", "-4"], ["--concurrency", "greater than or equal to 1", "-4"]),
    "zero_concurrency": (["--concurrency", "0"], ["--concurrency"]),
    "negative_retries": (["--max-retries", "-1"], ["--max-retries"]),
    "zero_timeout": (["--timeout", "0"], ["--timeout", "greater than 0"]),
    "temperature_above_one": (["--temperature", "1.5"], ["--temperature", "less than or equal to 1"]),
    "negative_budget": (["--max-cost", "-5"], ["--max-cost", "greater than 0"]),
    "budget_not_a_number": (["--max-cost", "lots"], ["--max-cost"]),
    "unknown_format": (["--format", "xml"], ["--format", "jsonl", "csv"]),
    "bad_base_url": (["--base-url", "api.example"], ["--base-url", "http://"]),
    "tpm_zero": (["--tpm", "0"], ["--tpm"]),
    "concurrency_not_a_number": (["--concurrency", "many"], ["--concurrency", "see `localize estimate --help`"]),
    "unknown_option": (["--colour", "red"], ["No such option", "--colour"]),
}


@pytest.mark.parametrize("extra,fragments", OPTION_CASES.values(), ids=OPTION_CASES.keys())
def test_nonsensical_option_exits_2(run_cli, sample: Path, extra: list[str], fragments: list[str]) -> None:
    assert_bad_input(run_cli("estimate", sample, "-l", "de-DE", *extra), *fragments)


def test_invalid_yaml_config_exits_2_with_line(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "model: kimi-k2\nrpm: [60\n")
    assert_bad_input(run_cli("estimate", sample, "-l", "de-DE"), "localize.yaml:", "invalid YAML")


def test_config_value_error_names_file_and_key(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "concurrency: -3\n")
    assert_bad_input(run_cli("estimate", sample, "-l", "de-DE"), "localize.yaml: concurrency", "-3")


def test_config_unknown_key_lists_known_ones(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "rmp: 60\n")
    assert_bad_input(run_cli("estimate", sample, "-l", "de-DE"), "unknown setting 'rmp'", "rpm")


def test_config_that_is_not_a_mapping_exits_2(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "- just\n- a list\n")
    assert_bad_input(run_cli("estimate", sample, "-l", "de-DE"), "localize.yaml", "mapping")


def test_missing_config_file_exits_2(run_cli, sample: Path, tmp_path: Path) -> None:
    assert_bad_input(
        run_cli("estimate", sample, "-l", "de-DE", "--config", tmp_path / "x.yaml"), "x.yaml", "no such config"
    )


def test_environment_value_error_names_the_variable(run_cli, sample: Path, monkeypatch) -> None:
    monkeypatch.setenv("LOCALIZE_RPM", "0")
    assert_bad_input(run_cli("estimate", sample, "-l", "de-DE"), "LOCALIZE_RPM")


def test_rule_override_that_breaks_a_limit_exits_2(run_cli, sample: Path, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "rules:\n  amazon:\n    title: {max_chars: 10}\n")
    assert_bad_input(
        run_cli("estimate", sample, "-l", "de-DE"), "rules.yaml", "title", "target_chars 75 exceeds max_chars 10"
    )


def test_unknown_model_exits_2_naming_known_ids_and_how_to_add(run_cli, sample: Path) -> None:
    result = run_cli("estimate", sample, "-l", "de-DE", "--model", "kimi-k9")
    assert_bad_input(result, "no price known for model 'kimi-k9'", "kimi-k2", "kimi-k2.6", "prices:")


def test_live_run_without_key_exits_2_naming_the_variable(run_cli, sample: Path, relay) -> None:
    result = run_cli("run", sample, "-l", "de-DE", "--base-url", relay.base_url)
    assert_bad_input(result, "no API key", "HOLYSHEEP_API_KEY", "--dry-run")
    assert relay.requests == []


def test_template_with_undefined_variable_names_template_line(run_cli, sample: Path, tmp_path: Path) -> None:
    user = tmp_path / "mine" / "amazon"
    user.mkdir(parents=True)
    write(user / "user.j2", "Product:\n{{ product.colour }}\n")
    result = run_cli("estimate", sample, "-l", "de-DE", "--prompts", tmp_path / "mine")
    assert_bad_input(result, "user.j2:2", "undefined", "colour")


def test_template_syntax_error_names_template_line(run_cli, sample: Path, tmp_path: Path) -> None:
    user = tmp_path / "mine" / "amazon"
    user.mkdir(parents=True)
    write(user / "system.j2", "Hello\n{% if %}\n")
    result = run_cli("estimate", sample, "-l", "de-DE", "--prompts", tmp_path / "mine")
    assert_bad_input(result, "system.j2:2")


def test_prompt_for_unknown_id_exits_2(run_cli, sample: Path) -> None:
    assert_bad_input(run_cli("prompt", sample, "--id", "NOPE", "--locale", "de-DE"), "no product with id 'NOPE'")


def test_bad_input_with_json_flag_still_prints_nothing_on_stdout(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "c.csv", "id,title\n1,Mug\n")
    result = run_cli("estimate", catalog, "-l", "de-DE", "--json")
    assert_bad_input(result, "missing required column 'name'")
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_mapped_column_missing_exits_2_naming_the_files_columns(run_cli, tmp_path: Path) -> None:
    catalog = write(tmp_path / "pim.csv", "Handle,Title\nmug-1,Mug\n")
    result = run_cli("estimate", catalog, "-l", "de-DE", "--map", "id=Handle,name=Name")
    assert_bad_input(result, "pim.csv:1", "column 'Name' (mapped to name) is not in the file", "Handle, Title")


def test_malformed_map_exits_2(run_cli, sample: Path) -> None:
    assert_bad_input(run_cli("estimate", sample, "-l", "de-DE", "--map", "id:Handle"), "--map", "OURS=THEIRS")


def test_columns_in_config_and_map_flag_combine(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "localize.yaml", "columns:\n  id: Handle\n  name: Label\n")
    catalog = write(tmp_path / "pim.csv", "Handle,Title,Label\nmug-1,Stoneware Mug,ignored\n")
    result = run_cli("prompt", catalog, "--id", "mug-1", "--locale", "de-DE", "--map", "name=Title", "--json")
    assert result.exit_code == 0, result.stderr
    assert '"name": "Stoneware Mug"' in json.loads(result.stdout)["messages"][1]["content"]


def test_an_out_path_that_is_a_file_exits_2_without_a_traceback(
    run_cli, sample: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-test")
    write(tmp_path / "taken", "a file, not a directory")
    result = run_cli("run", sample, "-l", "de-DE", "--out", tmp_path / "taken", "--base-url", "http://127.0.0.1:9/v1")
    assert_bad_input(result, "taken: is a file, not a directory", "writable directory")


def test_models_without_a_key_says_which_variable_to_set(run_cli) -> None:
    assert_bad_input(run_cli("models"), "no API key", "HOLYSHEEP_API_KEY")
    assert "--offline" in run_cli("models").stderr  # the price table needs no key
    assert "--dry-run" not in run_cli("models").stderr  # models has no dry run to offer

"""OUT's lines are declared once (records.py): a record our code builds with a field the line
does not declare is an error, not a silent drop; a line another version wrote keeps what this
one knows."""

from __future__ import annotations

import json

import pytest

from localize.output.records import FAILURE, RESULT, STRING, UnknownField, line_of

LISTING = {
    "id": "A1",
    "sku": "S1",
    "platform": "amazon",
    "locale": "de-DE",
    "title": "Titel",
    "description": "Text",
    "bullets": ["a"],
    "seo_tags": ["b"],
    "model": "kimi-k2",
    "attempts": 1,
    "input_tokens": 10,
    "output_tokens": 5,
    "cached_tokens": 0,
    "cost_usd": 0.001,
    "warnings": [],
}


def test_a_result_line_puts_the_contract_first_and_people_last() -> None:
    line = json.loads(line_of({**LISTING, "reused_from": "A0", "approved": True}, RESULT))
    assert list(line)[:15] == list(LISTING) and line["reused_from"] == "A0"
    assert (line["origin"], line["approved"]) == ("model", True) and list(line)[-2:] == ["origin", "approved"]


def test_an_undeclared_field_is_an_error_where_our_code_builds_a_line() -> None:
    with pytest.raises(UnknownField, match=r"undeclared fields \['confidence'\]"):
        line_of({**LISTING, "confidence": {"score": 90}}, RESULT)
    with pytest.raises(UnknownField):
        line_of({"id": "A1", "platform": "amazon", "locale": "de-DE", "error": "x", "approved": True}, FAILURE)


def test_a_line_another_version_wrote_keeps_what_this_one_knows() -> None:
    line = json.loads(line_of({**LISTING, "from_the_future": 1}, RESULT, strict=False))
    assert "from_the_future" not in line and line["title"] == "Titel"
    text = {"id": "K", "platform": "strings", "locale": "de-DE", "type": "T", "field": "f", "source": "s", "text": "t"}
    assert json.loads(line_of(text, STRING))["text"] == "t"


def test_a_runs_origin_is_read_back_in_one_place(tmp_path) -> None:
    """What readers take from cost_report.json (the catalog, its column map, the shard) comes
    through one typed reader: a damaged report, one of the wrong shape or a newer version's is
    read as none, not trusted."""
    from localize.output.run_report import RunOrigin

    out = tmp_path
    assert RunOrigin.read(out) == RunOrigin()
    report = {"version": 1, "catalog": "/data/c.csv", "columns": {"id": "Handle"}, "shard": [1, 2], "run": "R1"}
    (out / "cost_report.json").write_text(json.dumps(report))
    origin = RunOrigin.read(out)
    assert (str(origin.catalog), origin.columns, origin.shard, origin.run) == (
        "/data/c.csv",
        {"id": "Handle"},
        (1, 2),
        "R1",
    )
    for bad in ({**report, "version": 99}, {**report, "shard": ["1", 2], "catalog": 7}, [report]):
        (out / "cost_report.json").write_text(json.dumps(bad))
        read = RunOrigin.read(out)
        assert read.shard is None and read.catalog is None
    (out / "cost_report.json").write_text("{not json")
    assert RunOrigin.read(out) == RunOrigin()


def test_a_line_is_built_and_read_back_through_one_type() -> None:
    from localize.output.records import Billing, ResultLine, StringLine

    line = ResultLine.of({**LISTING, "extra": {"seo_title": "S"}, "origin": "human", "approved": True})
    assert line.billing == Billing("kimi-k2", 1, 10, 5, 0, 0.001, ()) and line.extra == {"seo_title": "S"}
    assert json.loads(line_of(line.as_json(), RESULT)) == {
        **LISTING,
        "extra": {"seo_title": "S"},
        "origin": "model",  # people's decisions are folded in at export, not the line's own
        "approved": False,
    }
    assert line.billing.free() == Billing("kimi-k2")
    with pytest.raises(UnknownField):
        ResultLine.of({**LISTING, "confidence": 80})
    judged = {
        **LISTING,
        "quality": {"score": 62, "errors": [{"span": "x", "category": "fluency", "severity": "minor"}]},
    }
    assert ResultLine.of({**judged, "quality": {**judged["quality"], "model": "m"}}).as_json()["quality"] == {
        "score": 62,
        "errors": [{"span": "x", "category": "fluency", "severity": "minor"}],
        "model": "m",
    }
    text = {"id": "K", "platform": "strings", "locale": "de-DE", "type": "T", "field": "f", "source": "s", "text": "t"}
    assert StringLine.of({**text, "memory": True}).as_json()["memory"] is True


def test_a_cost_report_with_an_undeclared_key_is_not_written(tmp_path) -> None:
    from localize.cost import build_report
    from localize.output.run_report import write_report

    report = build_report([], model="kimi-k2", jobs={"total": 0}, elapsed_s=0.0)
    write_report(tmp_path, {**report, "run": "R1"})
    assert json.loads((tmp_path / "cost_report.json").read_text())["run"] == "R1"
    with pytest.raises(ValueError, match="CostReport"):
        write_report(tmp_path, {**report, "judge_cost": 1.0})

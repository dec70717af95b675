"""Writing a publication: CSV, JSON and a static site; every text escaped in HTML; withheld
cells shown as such; nothing fetched from elsewhere; all files replaced at once or not at all."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from regfed.reports import (
    WITHHELD,
    AccountRecord,
    Publication,
    PublishRefused,
    RegistryRecords,
    Serials,
    build_publication,
    default_policies,
    files_of,
    write_publication,
)
from regfed.reports import write as write_module
from regfed.reports.html import MAX_HTML_ROWS
from regfed.reports.records import IssuanceRecord, MovementRecord

pytestmark = pytest.mark.unit

HOSTILE = "<script>alert('x')</script> & \"Keystone\" <b>Trading</b>"


def publication(missing: dict[str, str] | None = None, moves: int = 1) -> Publication:
    pa = RegistryRecords("PA", 3, "2027-01-10T00:00:00.000000Z")
    pa.accounts = [
        AccountRecord(
            "PA", "PA-000004-88", "general", "", "", HOSTILE, "open", "", "2027-01-01", ("ARP",),
            (("=cmd|' /C calc'!A0", "primary"),),
        ),
        AccountRecord(
            "PA", "PA-000001-97", "state", "allocation", "", "PA allocation", "open", "",
            "2027-01-01", ("ARP",),
        ),
    ]  # fmt: skip
    block = Serials("PA", "ARP", "allowance", 2025, 5_120_001, 5_120_001 + moves)
    pa.issuances = [IssuanceRecord("PA", block, "PA-000001-97", "2027-01-01T00:00:00Z", 1)]
    pa.movements = [
        MovementRecord(
            "PA", "retirement", 2 + i, "2027-01-02T00:00:00Z", f"op-{i}", "PA-000004-88",
            "PA-000003-91", Serials("PA", "ARP", "allowance", 2025, 5_120_001 + i, 5_120_001 + i),
            None, HOSTILE if i == 0 else "",
        )
        for i in range(moves)
    ]  # fmt: skip
    ny = RegistryRecords("NY", 1, "2027-01-10T00:00:00.000000Z")
    ny.issuances = [
        IssuanceRecord(
            "NY", Serials("NY", "RGGI", "allowance", 2025, 7_340_011, 7_340_110), "NY-000001-02",
            "2027-01-01T00:00:00Z", 1,
        )
    ]  # fmt: skip
    return build_publication(
        {"PA": pa, "NY": ny},
        [],
        default_policies(),
        missing=missing or {},
        generated_at="2027-01-10T12:00:00.000000Z",
    )


class Page(HTMLParser):
    """What a browser would make of a page: its text, its tags, and what it would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.fetches: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.fetches.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_html_escapes_what_people_typed() -> None:
    files = files_of(publication())
    for name, text in files.items():
        if not name.endswith(".html"):
            continue
        assert "<script" not in text and "<b>Trading" not in text, name
        page = parse(text)
        assert "script" not in page.tags, name
    accounts = parse(files["accounts.html"])
    assert HOSTILE in "".join(accounts.text)  # shown as text, exactly as typed
    retirements = parse(files["retirements.html"])
    assert HOSTILE in "".join(retirements.text)


def test_the_site_fetches_nothing_but_its_own_pages_and_files() -> None:
    files = files_of(publication())
    for name, text in files.items():
        if not name.endswith(".html"):
            continue
        for target in parse(text).fetches:
            assert "/" not in target and ":" not in target, (name, target)
            assert target in files, (name, target)


def test_withheld_cells_say_so_and_json_keeps_numbers_numbers() -> None:
    built = publication()
    files = files_of(built)
    rows = list(csv.DictReader(io.StringIO(files["issuance-allocation.csv"])))
    ny = next(r for r in rows if r["registry"] == "NY")
    assert (ny["serial_start"], ny["to_account"], ny["quantity"]) == (
        "(withheld)",
        "(withheld)",
        "100",
    )
    document = json.loads(files["issuance-allocation.json"])
    ny_json = next(r for r in document["rows"] if r["registry"] == "NY")
    assert ny_json["serial_start"] is None and ny_json["quantity"] == 100
    assert ny_json["withheld"] == ["to_account", "serial_start", "serial_end"]
    pa_json = next(r for r in document["rows"] if r["registry"] == "PA")
    assert pa_json["serial_start"] == 5_120_001 and "withheld" not in pa_json
    assert document["withheld"] == {"RGGI": {"party": 1, "serials": 1}}
    assert "(withheld)" in files["issuance-allocation.html"]
    rows_built = built.report("issuance-allocation").rows
    assert [r["to_account"] for r in rows_built] == [WITHHELD, "PA-000001-97"]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    rows = list(csv.DictReader(io.StringIO(files_of(publication())["accounts.csv"])))
    [holder] = [r for r in rows if r["account"] == "PA-000004-88"]
    assert holder["representatives"].startswith("'=cmd")
    assert holder["name"] == HOSTILE  # nothing else is changed


def test_every_page_names_what_is_missing() -> None:
    files = files_of(publication(missing={"NJ": "UNREACHABLE: no connection"}))
    for name, text in files.items():
        if name.endswith(".html"):
            assert "NJ" in "".join(parse(text).text) and "UNREACHABLE" in text, name
        if name.endswith(".json"):
            assert json.loads(text)["missing"] == {"NJ": "UNREACHABLE: no connection"}, name
    assert "Incomplete publication" not in files_of(publication())["index.html"]


def test_a_long_report_shows_its_first_rows_and_points_to_the_files() -> None:
    files = files_of(publication(moves=MAX_HTML_ROWS + 5))
    page = files["retirements.html"]
    assert page.count("<tr>") == MAX_HTML_ROWS + 1  # and the header
    assert "5 more in the files" in page
    assert len(list(csv.DictReader(io.StringIO(files["retirements.csv"])))) == MAX_HTML_ROWS + 5


def test_publishing_replaces_an_earlier_publication_at_once(tmp_path: Path) -> None:
    target = tmp_path / "site"
    first = write_publication(publication(), target)
    assert sorted(p.name for p in first) == sorted(p.name for p in target.iterdir())
    (target / "stale.html").write_text("from an earlier release")
    write_publication(publication(missing={"NJ": "down"}), target)
    assert not (target / "stale.html").exists()
    assert json.loads((target / "publication.json").read_text())["missing"] == {"NJ": "down"}
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no staging folder left


def test_a_failed_publish_leaves_the_earlier_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "site"
    write_publication(publication(), target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    real = write_module.files_of

    def failing(built: Publication) -> dict[str, Any]:
        files = real(built)
        files["zz-unwritable/x.csv"] = "no such folder"  # fails after the others are written
        return files

    monkeypatch.setattr(write_module, "files_of", failing)
    with pytest.raises(OSError):
        write_publication(publication(missing={"NJ": "down"}), target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_a_folder_holding_something_else_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "documents"
    target.mkdir()
    (target / "thesis.tex").write_text("mine")
    with pytest.raises(PublishRefused, match="not empty"):
        write_publication(publication(), target)
    assert [p.name for p in target.iterdir()] == ["thesis.tex"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(PublishRefused, match="is a file"):
        write_publication(publication(), a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_publication(publication(), empty)
    assert (empty / "index.html").is_file()


def test_the_site_is_readable_by_everyone(tmp_path: Path) -> None:
    target = tmp_path / "site"
    write_publication(publication(), target)
    assert os.stat(target).st_mode & 0o005 == 0o005


def test_numbers_read_as_numbers() -> None:
    page = files_of(publication())["issuance-allocation.html"]
    assert re.search(r"<td class=\"num\">5120001</td>", page)  # a serial as written
    assert re.search(r"<td class=\"num\">100</td>", page)

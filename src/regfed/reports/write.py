"""Writing a publication to a folder: per report a CSV and a JSON file and an HTML page, an
``index.html`` and ``publication.json``, all or nothing.

Everything is written into a fresh folder beside the target and renamed into place only when
complete, so a publish that fails leaves the previous publication (or nothing) where it was,
never a half-written site. A target that exists and is not an earlier publication (nor empty)
is refused rather than replaced.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .html import index_page, report_page
from .tables import WITHHELD, Cell, Publication, Report

FORMAT = "regfed-report/1"
#: The file that marks a folder as a publication (and so as safe to replace).
MARKER = "publication.json"
#: A spreadsheet runs a cell starting with one of these as a formula: text cells (names and
#: reasons people typed) that start so get a leading apostrophe in the CSV only.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class PublishRefused(Exception):
    """The target cannot take a publication; the message says what to do."""


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if value is WITHHELD:
        return "(withheld)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def report_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow([_csv_cell(row.get(c)) for c in report.columns])
    return out.getvalue()


def _json_row(report: Report, row: dict[str, Cell]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    withheld = []
    for column in report.columns:
        value = row.get(column)
        if value is WITHHELD:
            withheld.append(column)
            value = None
        out[column] = value
    if withheld:
        out["withheld"] = withheld
    return out


def _header(publication: Publication) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "generated_at": publication.generated_at,
        "registries": [r.__dict__ for r in publication.registries],
        "missing": dict(publication.missing),
    }


def report_json(publication: Publication, report: Report) -> str:
    document = {
        **_header(publication),
        "report": report.name,
        "title": report.title,
        "description": report.description,
        "columns": list(report.columns),
        "withheld": report.withheld.to_dict(),
        "withheld_notes": report.withheld.sentences(),
        "rows": [_json_row(report, row) for row in report.rows],
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def publication_json(publication: Publication) -> str:
    document = {
        **_header(publication),
        "policies": publication.policies.to_dict(),
        "reports": {
            r.name: {
                "title": r.title,
                "rows": len(r.rows),
                "files": [f"{r.name}.csv", f"{r.name}.json", f"{r.name}.html"],
                "withheld": r.withheld.to_dict(),
                **({"documents": sorted(r.files)} if r.files else {}),
            }
            for r in publication.reports
        },
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def files_of(publication: Publication) -> dict[str, str]:
    """Every file of the publication: name -> text (UTF-8)."""
    files = {"index.html": index_page(publication), MARKER: publication_json(publication)}
    for report in publication.reports:
        files[f"{report.name}.csv"] = report_csv(report)
        files[f"{report.name}.json"] = report_json(publication, report)
        files[f"{report.name}.html"] = report_page(publication, report)
    return files


def attachments_of(publication: Publication) -> dict[str, bytes]:
    """Every file a report publishes beside its tables (documents): path -> bytes."""
    return {path: data for r in publication.reports for path, data in sorted(r.files.items())}


def check_target(target: Path) -> None:
    """Refuse a target that is a file, or a folder holding something else than a publication."""
    if not target.exists():
        return
    if not target.is_dir():
        raise PublishRefused(f"{target} is a file: name a folder for the publication")
    if any(target.iterdir()) and not (target / MARKER).is_file():
        raise PublishRefused(
            f"{target} is not empty and holds no earlier publication ({MARKER}): name a new "
            "or empty folder, or the folder of an earlier `regfed report publish`"
        )


def write_publication(publication: Publication, target: Path) -> list[Path]:
    """Write every file into ``target`` at once (see the module's docstring); the paths
    written, in ``target``."""
    target = Path(os.path.abspath(target))
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a published site is for everyone
        files = files_of(publication)
        for name, text in files.items():
            with open(staging / name, "w", encoding="utf-8", newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
        attachments = attachments_of(publication)
        for name, data in attachments.items():
            (staging / name).parent.mkdir(mode=0o755, exist_ok=True)
            with open(staging / name, "wb") as binary:
                binary.write(data)
                binary.flush()
                os.fsync(binary.fileno())
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [target / name for name in [*files, *attachments]]


def _swap(staging: Path, target: Path) -> None:
    """``staging`` becomes ``target``; an earlier publication there is removed once replaced
    (and put back if the replacement fails)."""
    if not target.exists():
        os.rename(staging, target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "FORMAT",
    "MARKER",
    "PublishRefused",
    "attachments_of",
    "check_target",
    "files_of",
    "report_csv",
    "report_json",
    "write_publication",
]

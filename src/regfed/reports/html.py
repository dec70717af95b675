"""The publication as a small static site: ``index.html`` and one page per report, plain HTML
with a little inline CSS, no script and nothing fetched from elsewhere, so it works offline
from ``file://``. Every text that reaches a page is escaped (account names, reasons and
representatives are what people typed)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from .policy import FIELDS
from .tables import WITHHELD, Cell, Publication, Report

#: Rows shown on a page; the CSV and JSON files always have all of them.
MAX_HTML_ROWS = 2000

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 80rem;
       padding: 0 1rem; color: #1a1a1a; line-height: 1.4; }
nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #c8c8c8; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #eef1f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.withheld { color: #777; font-style: italic; }
.missing { background: #fff1cc; border: 1px solid #e0b000; padding: .6rem .8rem; }
.note { color: #444; }
footer { margin-top: 2rem; color: #666; font-size: .85rem; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


#: Columns whose text is a published file's path in the site: shown as a link.
LINKS = ("file",)


def _cell(value: Cell, column: str) -> str:
    if column in LINKS and isinstance(value, str):
        return f'<td><a href="{esc(value)}">{esc(value.rpartition("/")[2])}</a></td>'
    if value is WITHHELD:
        return '<td class="withheld">(withheld)</td>'
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        # Serial numbers and years as written; quantities grouped for reading.
        plain = column.startswith("serial") or column in ("vintage", "sequence")
        return f'<td class="num">{value if plain else f"{value:,}"}</td>'
    return f"<td>{esc(value)}</td>"


def table(columns: Sequence[str], rows: Iterable[Sequence[str]], head: bool = True) -> str:
    lines = ["<table>"]
    if head:
        lines.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>")
    lines += ["<tr>" + "".join(row) + "</tr>" for row in rows]
    lines.append("</table>")
    return "\n".join(lines)


def _missing(publication: Publication) -> str:
    if not publication.missing:
        return ""
    items = "".join(
        f"<li><b>{esc(code)}</b>: {esc(why)}</li>" for code, why in publication.missing.items()
    )
    return (
        '<div class="missing"><p><b>Incomplete publication.</b> These did not answer, so '
        f"nothing of theirs is in any report:</p><ul>{items}</ul></div>"
    )


def _page(publication: Publication, title: str, body: str) -> str:
    links = ['<a href="index.html">Index</a>'] + [
        f'<a href="{esc(r.name)}.html">{esc(r.title)}</a>' for r in publication.reports
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<nav>{' '.join(links)}</nav>\n<h1>{esc(title)}</h1>\n{_missing(publication)}\n"
        f"{body}\n<footer>Published {esc(publication.generated_at)} by the federation's "
        "oversight node from each registry's records, under each program's disclosure policy."
        "</footer>\n</body>\n</html>\n"
    )


def _withheld(report: Report) -> str:
    sentences = report.withheld.sentences()
    if not sentences:
        return '<p class="note">Nothing withheld.</p>'
    items = "".join(f"<li>{esc(s)}</li>" for s in sentences)
    return f'<p class="note">Withheld under the disclosure policies:</p><ul>{items}</ul>'


def report_page(publication: Publication, report: Report) -> str:
    shown = report.rows[:MAX_HTML_ROWS]
    rows = ([_cell(row.get(c), c) for c in report.columns] for row in shown)
    more = len(report.rows) - len(shown)
    files = (
        f'<p>Data: <a href="{esc(report.name)}.csv">{esc(report.name)}.csv</a>, '
        f'<a href="{esc(report.name)}.json">{esc(report.name)}.json</a>. '
        f"{len(report.rows):,} rows.</p>"
    )
    note = f'<p class="note">The first {len(shown):,} rows; {more:,} more in the files.</p>'
    body = (
        f"<p>{esc(report.description)}</p>\n{files}\n{_withheld(report)}\n"
        + (note if more else "")
        + (table(report.columns, rows) if shown else "<p>No records.</p>")
    )
    return _page(publication, report.title, body)


def _documents(publication: Publication) -> str:
    count = sum(len(r.files) for r in publication.reports)
    if not count:
        return ""
    return (
        f"<p>{count:,} public document{'' if count == 1 else 's'} in this publication, each "
        "in the folder <code>documents/</code> named by its SHA-256 "
        '(<a href="documents.html">list</a>): <code>sha256sum</code> checks a copy.</p>\n'
    )


def index_page(publication: Publication) -> str:
    reads = [
        [f"<td>{esc(r.registry)}</td>", _cell(r.journal_position, "seq"), _cell(r.read_at, "")]
        for r in publication.registries
    ]
    reports = [
        [
            f'<td><a href="{esc(r.name)}.html">{esc(r.title)}</a></td>',
            _cell(len(r.rows), "rows"),
            f"<td>{esc('; '.join(r.withheld.sentences()) or '-')}</td>",
        ]
        for r in publication.reports
    ]
    policies = [
        [f"<td>{esc(p)}</td>"]
        + [
            f"<td>{'published' if publication.policies.of(p).allows(f) else 'withheld'}</td>"
            for f in FIELDS
        ]
        for p in publication.policies.programs
    ]
    meaning = "".join(f"<li><b>{esc(f)}</b>: {esc(what)}</li>" for f, what in FIELDS.items())
    runs = publication.report("reconciliation").rows
    latest = (
        f"<p>Latest reconciliation run: <b>{esc(runs[0]['status'])}</b> "
        f"({esc(runs[0]['run_id'])}, {esc(runs[0]['finished_at'] or runs[0]['started_at'])}).</p>"
        if runs
        else "<p>No reconciliation run is known.</p>"
    )
    body = (
        "<p>The public records of every registry of the federation: who holds accounts, what "
        "was issued, allocated, transferred and retired, emissions and compliance, the projects "
        "that earn credits, their verifiers, public documents and the credits issued, as each "
        "program's disclosure policy allows.</p>\n"
        + _documents(publication)
        + latest
        + "\n<h2>Reports</h2>\n"
        + table(("report", "rows", "withheld"), reports)
        + "\n<h2>Registries read</h2>\n"
        + table(("registry", "journal position", "read at"), reads)
        + "\n<h2>Disclosure policies</h2>\n"
        + table(("program", *FIELDS), policies)
        + f"\n<ul>{meaning}</ul>\n"
        '<p class="note">Registry codes, programs, unit types, vintages, quantities, times and '
        "statuses are always published. Something touching several programs is published only "
        "if every one of them allows it; what is withheld is counted, never dropped. Any other "
        "program publishes only quantities until a policy is configured for it.</p>"
    )
    return _page(publication, "Public reports", body)


__all__ = ["MAX_HTML_ROWS", "esc", "index_page", "report_page"]

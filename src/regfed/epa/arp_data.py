"""EPA's Acid Rain Program state-level compliance file, read strictly.

One row per state and year: ``allocated`` (allowances allocated to the state's compliance
accounts for that year), ``totalAllowancesDeducted`` (surrendered for compliance) and
``carriedOver`` (banked afterwards, in every account of the state). Anything else than what the
file is documented to hold (data/camd/README.md) is refused with the line it is on: a wrong
header, another program, a malformed or negative number, a state and year twice.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

COLUMNS = (
    "programCode",
    "stateCode",
    "year",
    "allocated",
    "totalAllowancesDeducted",
    "carriedOver",
    "stateName",
    "programDescription",
)
_STATE = re.compile(r"[A-Z]{2}", re.ASCII)
_WHOLE = re.compile(r"[0-9]{1,12}", re.ASCII)
MAX_BYTES = 16 * 1024 * 1024


class ArpDataError(ValueError):
    """The file is not EPA's ARP state-level compliance data as documented."""

    def __init__(self, message: str, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}")
        self.line = line


@dataclass(frozen=True, slots=True)
class StateYear:
    state: str
    year: int
    allocated: int
    deducted: int
    carried_over: int
    state_name: str


def _whole(text: str, column: str, line: int) -> int:
    if not _WHOLE.fullmatch(text):
        raise ArpDataError(
            f"{column} {text!r} is not a whole number of allowances (0 or more)", line
        )
    return int(text)


def parse_arp(text: str) -> tuple[StateYear, ...]:
    """The rows of the file's text, sorted by year then state."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise ArpDataError(f"the header must be {','.join(COLUMNS)}; got {header}", 1)
    rows: dict[tuple[str, int], StateYear] = {}
    for line, record in enumerate(reader, start=2):
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(COLUMNS):
            raise ArpDataError(f"{len(record)} fields where {len(COLUMNS)} are expected", line)
        program, state, year_text, allocated, deducted, carried, name, _description = (
            cell.strip() for cell in record
        )
        if program != "ARP":
            raise ArpDataError(f"program {program!r}: this file holds the Acid Rain Program", line)
        if not _STATE.fullmatch(state):
            raise ArpDataError(f"state code {state!r} is not two capital letters", line)
        year = _whole(year_text, "year", line)
        if not 1990 <= year <= 2100:
            raise ArpDataError(f"year {year} is outside 1990-2100", line)
        row = StateYear(
            state,
            year,
            _whole(allocated, "allocated", line),
            _whole(deducted, "totalAllowancesDeducted", line),
            _whole(carried, "carriedOver", line),
            name,
        )
        if (state, year) in rows:
            raise ArpDataError(f"{state} {year} appears twice", line)
        rows[(state, year)] = row
    if not rows:
        raise ArpDataError("the file has no rows")
    return tuple(sorted(rows.values(), key=lambda r: (r.year, r.state)))


def read_arp(path: Path) -> tuple[StateYear, ...]:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ArpDataError(f"cannot read {path}: {error.strerror}") from None
    if size > MAX_BYTES:
        raise ArpDataError(f"{path} is {size:,} bytes; EPA's file is under 100 KB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ArpDataError(f"{path} is not UTF-8 text: {error.reason}") from None
    return parse_arp(text)

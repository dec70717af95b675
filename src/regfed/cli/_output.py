"""Printing for people (tables) and for scripts (``--json``), and typed errors on exit."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from regfed.node import RegistryError

EXIT_REFUSED = 2
EXIT_FAILED = 1


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def whole_number(text: str) -> int:
    """An argparse type: an integer written in the digits 0-9. Plain ``int`` would also take
    ``'١٢٣'`` or ``'1_000'``, which no registry figure should be typed as."""
    if not _WHOLE_NUMBER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number written in digits 0-9")
    return int(text)


def emit_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(none)"
    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c), c) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in cols]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(cols), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


PLAIN_NUMBERS = frozenset({"vintage", "seq", "year", "epa_year", "journal_seq", "index"})


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if _is_number(value) and isinstance(value, int) and column not in PLAIN_NUMBERS:
        return f"{value:,}"
    return str(value)


def report_error(error: RegistryError, as_json: bool) -> int:
    if as_json:
        emit_json({"ok": False, "error": error.to_dict()})
    else:
        print(f"error: {error.code} ({error.number}): {error.message}", file=sys.stderr)
        if error.details:
            details = ", ".join(f"{k}={v}" for k, v in error.details.items() if k != "blocks")
            if details:
                print(f"  details: {details}", file=sys.stderr)
            for block in error.details.get("blocks", [])[:10]:
                print(f"  block: {_block_label(block)}", file=sys.stderr)
        if error.hint:
            print(f"  what to do: {error.hint}", file=sys.stderr)
    return EXIT_REFUSED


def _block_label(block: Mapping[str, Any]) -> str:
    return (
        f"{block['issuer']}/{block['program']}/{block['unit_type']}/{block['vintage']}"
        f":{block['start']}-{block['end']}"
    )


def block_label(block: Mapping[str, Any]) -> str:
    return _block_label(block)

"""docs/ledger.md's error table lists exactly the codes the code can raise."""

from __future__ import annotations

import re
from pathlib import Path

from regfed.node.domain.errors import all_error_types

DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"


def test_error_table_matches_the_code() -> None:
    rows = re.findall(r"^\| (\d{4}) \| ([A-Z_]+) \| (yes|no) \|$", DOC.read_text(), re.M)
    documented = [(int(n), code, flag == "yes") for n, code, flag in rows]
    actual = [(c.number, c.code, c.retryable) for c in all_error_types()]
    assert documented == actual

"""The disclosure policies applied cell by cell (:class:`Judge`), and rows merged by key
(:class:`Merged`): what every report builder (:mod:`.build`, :mod:`.credits`) shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .policy import PolicySet
from .records import RegistryRecords, Serials
from .tables import WITHHELD, Cell, Tally


def class_cells(s: Serials) -> dict[str, Cell]:
    return {
        "issuer": s.issuer,
        "program": s.program,
        "unit_type": s.unit_type,
        "vintage": s.vintage,
    }


class Judge:
    """The policies applied to cells, counting what they withhold."""

    def __init__(
        self, policies: PolicySet, records: Mapping[str, RegistryRecords], as_of: str = ""
    ) -> None:
        self.policies = policies
        #: The publication's day (YYYY-MM-DD): what is due by then and missing is late.
        self.as_of = as_of[:10]
        self.touched: dict[str, tuple[str, ...]] = {
            a.number: a.programs for r in records.values() for a in r.accounts
        }

    def programs_of(self, account: str) -> set[str]:
        touched = self.touched.get(account)
        if not touched:  # none yet, or unknown: it could be any program's
            return set(self.policies.programs)
        return set(touched)

    def party(self, account: str, program: str, tally: Tally, what: str = "party") -> Cell:
        if not account:
            return None
        refusing = self.policies.refusing("parties", {program} | self.programs_of(account))
        if refusing:
            tally.add(refusing, what)
            return WITHHELD
        return account

    def holder(self, account: str, tally: Tally, what: str = "party") -> Cell:
        """An account number named outside any one program's record (a verifier's declared
        conflict): shown only if every program the account touched allows ``parties``."""
        refusing = self.policies.refusing("parties", self.programs_of(account))
        if refusing:
            tally.add(refusing, what)
            return WITHHELD
        return account

    def text_of(self, text: str, account: str, program: str, tally: Tally, what: str) -> Cell:
        """Free text written by or about an account's holder: shown as its account is."""
        if not text:
            return None
        return WITHHELD if self.party(account, program, tally, what) is WITHHELD else text

    def serials(self, s: Serials, tally: Tally) -> tuple[dict[str, Cell], Any]:
        """The block's serial and quantity cells, and its part of a merge key (None when its
        serials are withheld, so the blocks of one record merge)."""
        if self.policies.of(s.program).serials:
            cells: dict[str, Cell] = {"serial_start": s.start, "serial_end": s.end}
            key: Any = (s.start, s.end)
        else:
            tally.add([s.program], "serials")
            cells, key = {"serial_start": WITHHELD, "serial_end": WITHHELD}, None
        return {**cells, "quantity": s.quantity}, key


class Merged:
    """Rows by key, a repeated key adding its quantity to the row already there."""

    def __init__(self) -> None:
        self.rows: dict[Any, dict[str, Cell]] = {}

    def add(self, key: Any, row: dict[str, Cell]) -> None:
        have = self.rows.get(key)
        if have is None:
            self.rows[key] = row
        else:
            quantity = have["quantity"]
            assert isinstance(quantity, int) and isinstance(row["quantity"], int)
            have["quantity"] = quantity + row["quantity"]

    def sorted(self, *columns: str) -> list[dict[str, Cell]]:
        return sorted(self.rows.values(), key=lambda r: tuple(str(r.get(c)) for c in columns))


__all__ = ["Judge", "Merged", "class_cells"]

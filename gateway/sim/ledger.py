"""A registry's holdings in the simulator: one entry per serial (the worlds are small), so the
invariants can be checked per serial by brute force, independently of the block arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field

from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass

from ..protocol import LedgerOp, Lot

# (issuer, serial): the simulator uses one program, type and vintage.
Serial = tuple[str, int]

_EXPECTED = {
    LedgerOp.ESCROW: "held",
    LedgerOp.RELEASE: "escrowed",
    LedgerOp.DEBIT: "escrowed",
    LedgerOp.UNPIN: "incoming",
}


class LedgerMismatch(Exception):
    """A ledger operation found serials in a state the protocol says they cannot be in."""


@dataclass(frozen=True, slots=True)
class Entry:
    account: str
    state: str  # held, escrowed, incoming
    transfer_id: str | None = None


@dataclass
class SimLedger:
    entries: dict[Serial, Entry] = field(default_factory=dict)

    def serials(self, lot: Lot) -> list[Serial]:
        return [
            (b.unit_class.issuer, s)
            for b in lot.blocks
            for s in range(b.serials.start, b.serials.end + 1)
        ]

    def verdict(self, lot: Lot) -> str | None:
        """What a destination's ledger check says of a proposal."""
        if any(s in self.entries for s in self.serials(lot)):
            return "SERIALS_ALREADY_PRESENT"
        return None

    def apply(self, op: LedgerOp, lot: Lot, transfer_id: str) -> None:
        for serial in self.serials(lot):
            entry = self.entries.get(serial)
            expected = _EXPECTED.get(op)
            if expected is not None:
                account = lot.from_account if op is not LedgerOp.UNPIN else lot.to_account
                want = Entry(account, expected, None if expected == "held" else transfer_id)
                if entry != want:
                    raise LedgerMismatch(
                        f"{op.value} of {transfer_id} finds serial {serial} as {entry}, "
                        f"expected {want}"
                    )
            if op is LedgerOp.ESCROW:
                self.entries[serial] = Entry(lot.from_account, "escrowed", transfer_id)
            elif op is LedgerOp.RELEASE:
                self.entries[serial] = Entry(lot.from_account, "held")
            elif op is LedgerOp.DEBIT:
                del self.entries[serial]
            elif op is LedgerOp.PIN:
                # A broken guard may pin over present serials; the invariants will say so.
                self.entries[serial] = Entry(lot.to_account, "incoming", transfer_id)
            elif op is LedgerOp.UNPIN:
                del self.entries[serial]
            elif op is LedgerOp.CREDIT:
                self.entries[serial] = Entry(lot.to_account, "held")

    def held_runs(self, account: str) -> list[UnitBlock]:
        """The account's held serials as maximal contiguous blocks."""
        mine = sorted(s for s, e in self.entries.items() if e == Entry(account, "held"))
        runs: list[UnitBlock] = []
        for issuer, serial in mine:
            last = runs[-1] if runs else None
            if last and last.unit_class.issuer == issuer and last.serials.end + 1 == serial:
                runs[-1] = UnitBlock(last.unit_class, SerialRange(last.serials.start, serial))
            else:
                runs.append(
                    UnitBlock(
                        UnitClass(issuer, "SIM", "allowance", 2025), SerialRange(serial, serial)
                    )
                )
        return runs
